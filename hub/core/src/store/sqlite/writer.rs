//! The writer: one thread owns the only write connection. It takes a batch of queued writes, runs each in its own
//! savepoint inside one transaction, commits, and only then hands the batch's events, in `seq` order, to the
//! [`CommitSink`] (the bus), and answers the callers. A write that fails rolls back its savepoint: no row, no
//! event. [`Writer`] is the handle that queues writes; when the last one is dropped the thread checkpoints and
//! ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::mpsc;

use futures_util::FutureExt;

use super::rows::SqliteRows;
use super::schema::BUSY_TIMEOUT;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Event;
use crate::store::apply::apply;
use crate::store::queue::{Batch, Job, Queue, Reply};
use crate::store::{CommitSink, Committed, Write};

/// Least time between two background checkpoints.
const CHECKPOINT_GAP: Duration = Duration::from_millis(250);
/// Past this much log in the WAL the writer itself checkpoints it to its end and has it start over. The background
/// checkpoint copies frames as they come, but SQLite only starts the WAL over when a write begins after everything
/// in it has been copied, which under a steady stream of writes may not happen for a long time: the soak saw
/// 110 MB. Starting over (RESTART) keeps the file: writing into it again is cheaper than growing a truncated one.
const WAL_LIMIT: u64 = 16 * 1024 * 1024;
/// How long the restarting checkpoint waits for readers on older snapshots.
const RESTART_PATIENCE: Duration = Duration::from_millis(20);

/// Starts the writer thread on `conn` and the checkpoint thread on `checkpointer`; returns the queue that feeds
/// them. The thread checkpoints and ends when the queue's last handle is dropped, or on shutdown.
pub(super) fn start(
    conn: Connection,
    checkpointer: Connection,
    sink: Arc<dyn CommitSink>,
    pruned_through: Arc<AtomicU64>,
) -> Result<Queue> {
    let (queue, rx) = Queue::new();
    let (kick, kicks) = std::sync::mpsc::sync_channel(1);
    let checkpointing = Arc::new(Mutex::new(()));
    let restart = Arc::new(AtomicBool::new(false));
    let (held, wanted) = (checkpointing.clone(), restart.clone());
    std::thread::Builder::new()
        .name("switchboard-checkpoint".into())
        .spawn(move || checkpoint_loop(checkpointer, kicks, &held, &wanted))
        .map_err(Error::internal)?;
    let checkpoints = Checkpoints {
        kick,
        running: checkpointing,
        restart,
    };
    std::thread::Builder::new()
        .name("switchboard-writer".into())
        .spawn(move || writer_loop(conn, rx, sink, pruned_through, checkpoints))
        .map_err(Error::internal)?;
    Ok(queue)
}

/// The writer's side of the background checkpoint: a kick after each commit, and the lock a checkpoint holds
/// while it runs, so the writer's own restarting checkpoint waits for it on a mutex (woken at once) rather than in
/// SQLite's busy handler (which sleeps in steps).
struct Checkpoints {
    kick: std::sync::mpsc::SyncSender<()>,
    running: Arc<Mutex<()>>,
    /// Set by the background checkpoint when the WAL holds more than [`WAL_LIMIT`] of log.
    restart: Arc<AtomicBool>,
}

fn lock(m: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Copies committed WAL frames into the database file when the writer says it wrote something, at most every
/// [`CHECKPOINT_GAP`]. PASSIVE: it never blocks the writer or the readers. Ends when the writer drops its sender.
/// When the WAL holds more than [`WAL_LIMIT`] of log, it asks the writer to start it over.
fn checkpoint_loop(
    conn: Connection,
    kicks: std::sync::mpsc::Receiver<()>,
    running: &Mutex<()>,
    restart: &AtomicBool,
) {
    let page: u64 = conn
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap_or(4096);
    while kicks.recv().is_ok() {
        let held = lock(running);
        // (busy, frames of log in the WAL, frames copied)
        let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE);", [], |r| {
            r.get::<_, i64>(1)
        });
        drop(held);
        match r {
            Ok(frames) if u64::try_from(frames).unwrap_or(0) * page > WAL_LIMIT => {
                restart.store(true, Ordering::Release);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "background checkpoint failed"),
        }
        std::thread::sleep(CHECKPOINT_GAP);
    }
}

fn writer_loop(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    sink: Arc<dyn CommitSink>,
    pruned_through: Arc<AtomicU64>,
    checkpoints: Checkpoints,
) {
    let mut shutdown = None;
    loop {
        let mut batch = Batch::take(jobs.blocking_recv(), &mut jobs);
        let last = batch.last();
        shutdown = batch.shutdown.take().or(shutdown);
        if batch.writes.is_empty() {
            if last {
                break;
            }
            continue;
        }
        let results = run_batch(&mut conn, &mut batch.writes, &pruned_through);
        // A kick already pending covers this batch too.
        let _ = checkpoints.kick.try_send(());
        let events: Vec<Event> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .flat_map(|c| c.events.iter().cloned())
            .collect();
        let mut delivered = if events.is_empty() {
            Vec::new()
        } else {
            sink.committed(&events)
        }
        .into_iter();
        for ((_, reply), mut result) in batch.writes.drain(..).zip(results) {
            if let Ok(c) = &mut result {
                c.delivered = delivered.by_ref().take(c.events.len()).collect();
            }
            // The caller may have gone away (a dropped request); the write stands regardless.
            let _ = reply.send(result);
        }
        if last {
            break;
        }
        if checkpoints.restart.swap(false, Ordering::AcqRel) {
            restart_wal(&conn, &checkpoints.running);
        }
    }
    drop(checkpoints);
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "checkpoint on shutdown failed");
    }
    drop(conn);
    if let Some(done) = shutdown {
        let _ = done.send(());
    }
    tracing::debug!("store writer stopped");
}

/// Checkpoints the WAL to its end so the next write starts it over. Most of its frames are copied already by the
/// background checkpoint, so this holds the writer up only briefly. A reader still on an older snapshot makes it
/// give up after [`RESTART_PATIENCE`] rather than hold the writer; the next background checkpoint asks again.
fn restart_wal(conn: &Connection, running: &Mutex<()>) {
    let _held = lock(running);
    let restart = || -> rusqlite::Result<()> {
        conn.busy_timeout(RESTART_PATIENCE)?;
        let r = conn.execute_batch("PRAGMA wal_checkpoint(RESTART);");
        conn.busy_timeout(BUSY_TIMEOUT)?;
        r
    };
    if let Err(e) = restart() {
        tracing::debug!(error = %e, "restarting checkpoint failed");
    }
}

/// Runs the batch in one transaction. On a commit failure every write in it fails.
fn run_batch(
    conn: &mut Connection,
    batch: &mut [(Box<Write>, Reply)],
    pruned: &AtomicU64,
) -> Vec<Result<Committed>> {
    let work = |conn: &mut Connection, batch: &mut [(Box<Write>, _)]| -> Result<Vec<_>> {
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(batch.len());
        for (w, _) in batch.iter_mut() {
            let w = std::mem::replace(&mut **w, Write::Publish(Vec::new()));
            // Savepoint statements prepared once per connection: rusqlite's `Savepoint` parses its SQL on every
            // use, which cost more than the write's own inserts.
            tx.prepare_cached("SAVEPOINT write")?.execute([])?;
            let mut rows = SqliteRows {
                tx: &tx,
                pruned_through: pruned,
            };
            // Ready at once: SQLite's statements never wait.
            let r = apply(&mut rows, w)
                .now_or_never()
                .unwrap_or_else(|| Err(Error::internal("a SQLite write did not finish at once")));
            if r.is_err() {
                tx.prepare_cached("ROLLBACK TO write")?.execute([])?;
            }
            tx.prepare_cached("RELEASE write")?.execute([])?;
            out.push(r);
        }
        tx.commit()?;
        Ok(out)
    };
    match work(conn, batch) {
        Ok(v) => v,
        Err(e) => {
            // A full disk (507) or a lock held too long (503) says what the client can do; anything else failing
            // the whole transaction is the hub's fault.
            let e = match e.kind() {
                ErrorKind::Internal | ErrorKind::InsufficientStorage | ErrorKind::Unavailable => e,
                _ => Error::internal(e),
            };
            batch.iter().map(|_| Err(e.clone())).collect()
        }
    }
}
