//! The default store: one SQLite file in WAL mode, `<data dir>/switchboard.db`.
//!
//! - [`schema`]: embedded, versioned migrations; how each connection is opened.
//! - [`writer`]: the single writer thread (batched transactions, a savepoint per write, commit, then the
//!   [`CommitSink`]), fed by the shared write queue. Dropping the queue's last handle ends the thread.
//! - `rows`: the statements [`apply`](super::apply) runs, on the writer's transaction.
//! - [`query`]: the reader: pooled read-only connections, the log's epoch and its pruned mark.
//!
//! Here the writer hands each committed batch to the bus itself: with one process there is nobody else's
//! commit to tail.

mod query;
mod rows;
mod schema;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::{CommitSink, LogWriter, Opened};
use crate::error::{Error, Result};
use query::SqliteReader;

/// Opens (creating if needed) `<dir>/switchboard.db` and runs migrations. Blocking: call it off the async threads.
///
/// # Errors
/// `Internal` when the directory or database cannot be opened or migrated.
pub(super) fn open(dir: &Path) -> Result<Opened> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format_args!("creating {}: {e}", dir.display())))?;
    let path = dir.join("switchboard.db");
    let conn = schema::open_writer(&path).map_err(|e| {
        if e.code() == "database_locked" {
            Error::new(
                e.kind(),
                e.code(),
                format!(
                    "{} is locked by another process (another switchboard on this data dir, or a program holding a \
                     write lock on it); stop that process, or use another --data-dir",
                    path.display()
                ),
            )
        } else {
            e
        }
    })?;
    let state = schema::log_state(&conn)?;
    let checkpointer = schema::open_checkpointer(&path)?;
    let pruned_through = Arc::new(AtomicU64::new(state.pruned_through));
    let reader = SqliteReader::new(path, state.epoch, pruned_through.clone());
    Ok(Opened {
        reader: Arc::new(reader),
        last_seq: state.last_seq,
        start: Box::new(move |sink: Arc<dyn CommitSink>| {
            let queue = writer::start(conn, checkpointer, sink, pruned_through)?;
            Ok(Box::new(queue) as Box<dyn LogWriter>)
        }),
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
