//! The SQLite file's shape: embedded, versioned migrations, and how each connection is opened.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Result};
use crate::idempotency::KeptKey;
use crate::model::Agent;
use crate::store::row::{self, AGENT_COLS};

/// How long a connection waits for a lock another holds before giving up with `database_locked`.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations, applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: agents, the event log and the log's epoch.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
     INSERT INTO meta (key, value) VALUES ('epoch', lower(hex(randomblob(8)))), ('pruned_through', '0');
     CREATE TABLE agents (
         id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, model TEXT, status TEXT NOT NULL,
         config TEXT NOT NULL, tags TEXT NOT NULL, version INTEGER NOT NULL,
         created_at TEXT NOT NULL, updated_at TEXT NOT NULL) STRICT;
     CREATE INDEX agents_status ON agents (status);
     CREATE TABLE events (
         seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, channel TEXT NOT NULL, event TEXT NOT NULL,
         data TEXT NOT NULL, source TEXT NOT NULL, ts TEXT NOT NULL) STRICT;
     CREATE INDEX events_channel ON events (channel, seq);",
    // 2: a replayed event names the seq it copies; the file watcher's roots outlive a restart.
    "ALTER TABLE events ADD COLUMN replay_of INTEGER;
     CREATE TABLE watches (root TEXT PRIMARY KEY, added_at TEXT NOT NULL) STRICT;",
    // 3: `ask_user` questions outlive the asker's call and a restart.
    "CREATE TABLE questions (
         question_id TEXT PRIMARY KEY, question TEXT NOT NULL, channel TEXT NOT NULL, options TEXT, key TEXT,
         via TEXT NOT NULL, asked_at TEXT NOT NULL, expires_at TEXT NOT NULL,
         state TEXT NOT NULL CHECK (state IN ('pending', 'answered', 'withdrawn')),
         answer TEXT, answered_by TEXT, answered_at TEXT) STRICT;
     CREATE INDEX questions_pending ON questions (state, expires_at);
     CREATE INDEX questions_key ON questions (channel, key, asked_at) WHERE key IS NOT NULL;",
    // 4: `Idempotency-Key`s, each kept with the outcome of its write (SPEC §3).
    "CREATE TABLE idempotency_keys (
         id TEXT PRIMARY KEY, body TEXT NOT NULL, outcome TEXT NOT NULL, created_at TEXT NOT NULL) STRICT;
     CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);",
];

/// Opens the one write connection and brings the schema up to date.
pub(super) fn open_writer(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a 2xx answer means the change survives a power cut, not only a crash. Batching amortises the fsync.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Checkpoints run on their own thread (`writer::checkpoint_loop`): done here, after a commit, one would hold up
    // every write queued behind it for the length of its fsync (hundreds of ms seen under load).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // After a checkpoint resets the WAL, it is truncated back to this: a burst does not leave a large file behind.
    conn.pragma_update(None, "journal_size_limit", 32 * 1024 * 1024)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Every statement the writer runs stays prepared: rusqlite keeps 16 by default, fewer than the writes use.
    conn.set_prepared_statement_cache_capacity(64);
    migrate(&mut conn)?;
    // Take the write lock once, now: a process holding it (another program in a write transaction) stops the start
    // here, with a clear message, instead of failing every write later.
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
    Ok(conn)
}

/// A connection for the background checkpoint.
pub(super) fn open_checkpointer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// A pooled read-only connection.
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    Ok(open_reader_raw(path)?)
}

/// A read-only connection, with SQLite's own error on failure.
pub(super) fn open_reader_raw(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let have: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if have > MIGRATIONS.len() {
        return Err(Error::internal(format_args!(
            "database schema version {have} is newer than this build ({}); upgrade switchboard",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied migration");
    }
    Ok(())
}

/// What the log's `meta` rows and sequence say when the store opens.
pub(super) struct LogState {
    pub(super) epoch: String,
    pub(super) pruned_through: u64,
    pub(super) last_seq: u64,
}

pub(super) fn log_state(conn: &Connection) -> Result<LogState> {
    let meta = |key: &str| -> Result<String> {
        Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))?)
    };
    Ok(LogState {
        epoch: meta("epoch")?,
        pruned_through: meta("pruned_through")?.parse().unwrap_or(0),
        last_seq: last_seq(conn)?,
    })
}

/// The highest `seq` ever given out (0 for an empty log), pruned or not.
pub(super) fn last_seq(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
        [],
        |r| r.get(0),
    )?)
}

pub(super) fn get_agent(conn: &Connection, id: &str) -> Result<Option<Agent>> {
    let sql = format!("SELECT {AGENT_COLS} FROM agents WHERE id = ?1");
    conn.prepare_cached(&sql)?
        .query_row([id], |r| Ok(row::agent(r)))
        .optional()?
        .transpose()
}

pub(super) fn kept_key(conn: &Connection, id: &str) -> Result<Option<KeptKey>> {
    Ok(conn
        .prepare_cached("SELECT body, outcome, created_at FROM idempotency_keys WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(KeptKey {
                body: r.get(0)?,
                outcome: r.get(1)?,
                created_at: r.get(2)?,
            })
        })
        .optional()?)
}
