//! The durable store: one SQLite file in WAL mode, split by who uses it.
//!
//! - [`schema`]: embedded, versioned migrations; how connections are opened; rows to values.
//! - [`writer`]: the single writer thread (batched transactions, a savepoint per write, commit, then the
//!   [`CommitSink`]) and the [`Writer`] handle that queues writes. Dropping the last handle ends the thread.
//! - `apply`: what each write does inside its savepoint: its rows and the events logged with them.
//! - [`query`]: the [`Reader`]: pooled read-only connections, the log's epoch and its pruned mark.
//!
//! Neither side owns the other, and neither owns the bus: [`open`] migrates and yields the reader, the bus is
//! built on that reader, and [`Opened::start`] starts the writer with the bus as its sink.

mod apply;
mod query;
mod schema;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};
pub(crate) use query::Reader;
pub(crate) use writer::{CommitSink, Committed, Write, Writer};

/// How long events are kept: the newest `max_events`, and none older than `max_age`.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Keep at most this many of the newest events.
    pub max_events: u64,
    /// Remove events older than this.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_events: 100_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// A migrated database whose writer has not started yet.
pub(crate) struct Opened {
    /// The read side.
    pub(crate) reader: Reader,
    /// The highest `seq` ever given out when the store opened.
    pub(crate) last_seq: u64,
    conn: Connection,
    checkpointer: Connection,
    pruned_through: Arc<AtomicU64>,
}

/// Opens (creating if needed) `<dir>/switchboard.db` and runs migrations. Blocking: call it off the async threads.
///
/// # Errors
/// `Internal` when the directory or database cannot be opened or migrated.
pub(crate) fn open(dir: &Path) -> Result<Opened> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format_args!("creating {}: {e}", dir.display())))?;
    let path = dir.join("switchboard.db");
    let conn = schema::open_writer(&path)?;
    let state = schema::log_state(&conn)?;
    let checkpointer = schema::open_checkpointer(&path)?;
    let pruned_through = Arc::new(AtomicU64::new(state.pruned_through));
    Ok(Opened {
        reader: Reader::new(path, state.epoch, pruned_through.clone()),
        last_seq: state.last_seq,
        conn,
        checkpointer,
        pruned_through,
    })
}

/// What `switchboard doctor` reports about a data dir's database, read without starting a hub.
#[derive(Debug, Clone)]
pub struct DatabaseReport {
    /// The database file.
    pub path: std::path::PathBuf,
    /// What `PRAGMA integrity_check` said: `ok`, or the first problems it found.
    pub integrity: String,
    /// Size of the database file, in bytes.
    pub size: u64,
    /// Size of its write-ahead log, in bytes (0 when there is none).
    pub wal_size: u64,
}

impl DatabaseReport {
    /// Did the integrity check pass?
    pub fn ok(&self) -> bool {
        self.integrity == "ok"
    }
}

/// Checks `<dir>/switchboard.db` read-only, so it is safe beside a running hub.
///
/// # Errors
/// `NotFound` when there is no database; `Internal` (with SQLite's words) when it cannot be opened or read at all,
/// as with a file that is not a database.
pub fn inspect(dir: &Path) -> Result<DatabaseReport> {
    let path = dir.join("switchboard.db");
    let size = std::fs::metadata(&path)
        .map_err(|_| Error::not_found(format!("no database at {}", path.display())))?
        .len();
    let wal_size = std::fs::metadata(dir.join("switchboard.db-wal")).map_or(0, |m| m.len());
    let check = || -> rusqlite::Result<String> {
        let conn = schema::open_reader_raw(&path)?;
        let mut stmt = conn.prepare("PRAGMA integrity_check(10)")?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows.join("; "))
    };
    // Said as SQLite says it, not through `Error::internal`: this is a finding to show, not a fault of the hub's.
    let integrity = check().unwrap_or_else(|e| e.to_string());
    Ok(DatabaseReport {
        path,
        size,
        wal_size,
        integrity,
    })
}

impl Opened {
    /// Starts the writer thread; committed events go to `sink`.
    ///
    /// # Errors
    /// `Internal` if a thread cannot be spawned.
    pub(crate) fn start(self, sink: Arc<dyn CommitSink>) -> Result<Writer> {
        Writer::start(self.conn, self.checkpointer, sink, self.pruned_through)
    }
}
