//! The writer: one thread owns the only write connection. It takes a batch of queued writes, runs each in its own
//! savepoint inside one transaction, commits, and only then hands the batch's events, in `seq` order, to the
//! [`CommitSink`] (the bus), and answers the callers. A write that fails rolls back its savepoint: no row, no
//! event. [`Writer`] is the handle that queues writes; when the last one is dropped the thread checkpoints and
//! ends.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use async_trait::async_trait;
use futures_util::FutureExt;

use super::rows::SqliteRows;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Event;
use crate::store::apply::apply;
use crate::store::{CommitSink, Committed, LogWriter, Write, shutting_down};

/// How many queued writes one transaction may carry.
const MAX_BATCH: usize = 256;

/// Least time between two background checkpoints.
const CHECKPOINT_GAP: Duration = Duration::from_millis(250);

type Reply = oneshot::Sender<Result<Committed>>;

enum Job {
    Write(Box<Write>, Reply),
    Shutdown(oneshot::Sender<()>),
}

/// Queues writes for the writer thread. Cheap to clone; the thread ends when the last clone is dropped (or on
/// [`Writer::shutdown`]).
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn` and the checkpoint thread on `checkpointer`.
    pub(super) fn start(
        conn: Connection,
        checkpointer: Connection,
        sink: Arc<dyn CommitSink>,
        pruned_through: Arc<AtomicU64>,
    ) -> Result<Writer> {
        let (tx, rx) = mpsc::channel(4096);
        let (kick, kicks) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("switchboard-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, kicks))
            .map_err(Error::internal)?;
        std::thread::Builder::new()
            .name("switchboard-writer".into())
            .spawn(move || writer_loop(conn, rx, sink, pruned_through, kick))
            .map_err(Error::internal)?;
        Ok(Writer { jobs: tx })
    }
}

#[async_trait]
impl LogWriter for Writer {
    async fn write(&self, w: Write) -> Result<Committed> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Write(Box::new(w), tx))
            .await
            .map_err(|_| shutting_down())?;
        rx.await.map_err(|_| shutting_down())?
    }

    /// Also checkpoints before the writer thread ends.
    async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Copies committed WAL frames into the database file when the writer says it wrote something, at most every
/// [`CHECKPOINT_GAP`]. PASSIVE: it never blocks the writer or the readers. Ends when the writer drops its sender.
fn checkpoint_loop(conn: Connection, kicks: std::sync::mpsc::Receiver<()>) {
    while kicks.recv().is_ok() {
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
            tracing::warn!(error = %e, "background checkpoint failed");
        }
        std::thread::sleep(CHECKPOINT_GAP);
    }
}

fn writer_loop(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    sink: Arc<dyn CommitSink>,
    pruned_through: Arc<AtomicU64>,
    checkpoint: std::sync::mpsc::SyncSender<()>,
) {
    let mut batch: Vec<(Box<Write>, Reply)> = Vec::with_capacity(MAX_BATCH);
    let mut shutdown = None;
    while shutdown.is_none() {
        match jobs.blocking_recv() {
            Some(Job::Write(w, tx)) => batch.push((w, tx)),
            Some(Job::Shutdown(done)) => shutdown = Some(done),
            // Every handle is gone.
            None => break,
        }
        while batch.len() < MAX_BATCH && shutdown.is_none() {
            match jobs.try_recv() {
                Ok(Job::Write(w, tx)) => batch.push((w, tx)),
                Ok(Job::Shutdown(done)) => shutdown = Some(done),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let results = run_batch(&mut conn, &mut batch, &pruned_through);
        // A kick already pending covers this batch too.
        let _ = checkpoint.try_send(());
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
        for ((_, reply), mut result) in batch.drain(..).zip(results) {
            if let Ok(c) = &mut result {
                c.delivered = delivered.by_ref().take(c.events.len()).collect();
            }
            // The caller may have gone away (a dropped request); the write stands regardless.
            let _ = reply.send(result);
        }
    }
    drop(checkpoint);
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "checkpoint on shutdown failed");
    }
    drop(conn);
    if let Some(done) = shutdown {
        let _ = done.send(());
    }
    tracing::debug!("store writer stopped");
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
            let e = if e.kind() == ErrorKind::Internal {
                e
            } else {
                Error::internal(e)
            };
            batch.iter().map(|_| Err(e.clone())).collect()
        }
    }
}
