//! The PostgreSQL writer: one task per hub takes the queued writes in batches and commits each batch in one PostgreSQL
//! transaction. The transaction first locks the `seq` counter row, so batches from every hub take turns (and two
//! of them can never wait on each other's agent rows), then runs the writes (in a savepoint each only when one of
//! them is refused: see [`run_batch`]), notifies the other hubs, and commits. Callers are answered once the tail has handed the batch's
//! events to this hub's bus; the next batch does not wait for that.
//!
//! If the connection fails mid-batch, every write in it fails with `Unavailable`. A failure at `COMMIT` leaves the
//! outcome unknown to the hub; the error says so, and the tail delivers the events if the commit did happen.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::mpsc;

use super::NOTIFY_CHANNEL;
use super::rows::PgRows;
use super::tail::Tail;
use crate::error::{Error, ErrorKind, Result};
use crate::store::apply::apply;
use crate::store::queue::{Batch, Job, Queue, Reply};
use crate::store::{Committed, Write};

/// How long an answer waits for the tail to deliver a committed write before answering without the counts.
const DELIVERY_WAIT: Duration = Duration::from_secs(10);

/// Starts the writer task; returns the queue that feeds it. The task (and the tail) end when the queue's last
/// handle is dropped, or on shutdown.
pub(super) fn start(pool: Pool, tail: Arc<Tail>, pruned_through: Arc<AtomicU64>) -> Queue {
    let (queue, rx) = Queue::new();
    tokio::spawn(writer_loop(pool, rx, tail, pruned_through));
    queue
}

async fn writer_loop(
    pool: Pool,
    mut jobs: mpsc::Receiver<Job>,
    tail: Arc<Tail>,
    pruned_through: Arc<AtomicU64>,
) {
    let mut shutdown = None;
    loop {
        let first = jobs.recv().await;
        let mut batch = Batch::take(first, &mut jobs);
        let last = batch.last();
        shutdown = batch.shutdown.take().or(shutdown);
        if !batch.writes.is_empty() {
            let (writes, replies): (Vec<_>, Vec<_>) =
                batch.writes.into_iter().map(|(w, r)| (*w, r)).unzip();
            let results = run_batch(&pool, writes, &pruned_through).await;
            tail.kick();
            tokio::spawn(answer(tail.clone(), replies, results));
        }
        if last {
            break;
        }
    }
    tail.stop();
    if let Some(done) = shutdown {
        let _ = done.send(());
    }
    tracing::debug!("store writer stopped");
}

/// Answers each caller once the tail has delivered the batch's events, with how many subscribers each reached.
async fn answer(tail: Arc<Tail>, replies: Vec<Reply>, mut results: Vec<Result<Committed>>) {
    let newest = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|c| c.events.iter().map(|e| e.seq()))
        .max();
    if let Some(newest) = newest {
        let mut delivered = tail.delivered();
        let waited =
            tokio::time::timeout(DELIVERY_WAIT, delivered.wait_for(|d| *d >= newest)).await;
        if !matches!(waited, Ok(Ok(_))) {
            tracing::warn!(
                seq = newest,
                "answering a committed write before this hub delivered it"
            );
        }
        for c in results.iter_mut().flatten() {
            c.delivered = c
                .events
                .iter()
                .map(|e| tail.count(e.seq()).unwrap_or(0))
                .collect();
        }
    }
    for (reply, result) in replies.into_iter().zip(results) {
        // The caller may have gone away (a dropped request); the write stands regardless.
        let _ = reply.send(result);
    }
}

/// Runs the batch in one transaction. When the transaction itself fails, every write in it fails.
///
/// Savepoints cost two round trips a write, so the first attempt runs without them. Only if a write is refused
/// (not found, a version conflict…) is the transaction rolled back and the batch run again with a savepoint per
/// write, so the refused one leaves nothing behind and the others commit.
async fn run_batch(pool: &Pool, writes: Vec<Write>, pruned: &AtomicU64) -> Vec<Result<Committed>> {
    let n = writes.len();
    let mut attempt = try_batch(pool, &writes, pruned, false).await;
    if matches!(attempt, Ok(None)) {
        attempt = try_batch(pool, &writes, pruned, true).await;
    }
    match attempt {
        Ok(Some(v)) => v,
        Ok(None) => unreachable_refusal(n),
        Err(e) => {
            let e = match e.kind() {
                ErrorKind::Unavailable | ErrorKind::Internal | ErrorKind::InsufficientStorage => e,
                _ => Error::internal(e),
            };
            (0..n).map(|_| Err(e.clone())).collect()
        }
    }
}

/// With savepoints a refusal never aborts the batch; should it, every write fails rather than some silently.
fn unreachable_refusal(n: usize) -> Vec<Result<Committed>> {
    let e = Error::internal("a batch with savepoints was abandoned");
    (0..n).map(|_| Err(e.clone())).collect()
}

/// One attempt at the batch. `Ok(None)`: without savepoints, a write was refused and the transaction rolled back.
async fn try_batch(
    pool: &Pool,
    writes: &[Write],
    pruned: &AtomicU64,
    savepoints: bool,
) -> Result<Option<Vec<Result<Committed>>>> {
    let mut client = pool.get().await?;
    let mut tx = client.transaction().await?;
    tx.execute("SELECT last FROM log_seq FOR UPDATE", &[])
        .await?;
    let mut out = Vec::with_capacity(writes.len());
    for w in writes {
        let r = if savepoints {
            let sp = tx.savepoint("write").await?;
            let r = run_one(&sp, w.clone(), pruned).await;
            if r.is_ok() {
                sp.commit().await?;
            } else {
                sp.rollback().await?;
            }
            r
        } else {
            run_one(&tx, w.clone(), pruned).await
        };
        match &r {
            // The connection itself failed: the whole transaction is gone.
            Err(e) if e.code() == "store_unavailable" => return Err(e.clone()),
            Err(_) if !savepoints && writes.len() > 1 => {
                tx.rollback().await?;
                return Ok(None);
            }
            _ => {}
        }
        out.push(r);
    }
    // A lone write that was refused: nothing to commit.
    if out.iter().all(|r| r.is_err()) {
        tx.rollback().await?;
        return Ok(Some(out));
    }
    let newest = out
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|c| c.events.iter().map(|e| e.seq()))
        .max();
    if let Some(newest) = newest {
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&NOTIFY_CHANNEL, &newest.to_string()],
        )
        .await?;
    }
    tx.commit().await.map_err(|e| {
        if super::is_connection_error(&e) {
            tracing::warn!(error = %super::describe(&e), "the connection failed at COMMIT");
            Error::new(
                ErrorKind::Unavailable,
                "store_unavailable",
                "the database connection was lost while committing; the change may or may not have been saved",
            )
        } else {
            e.into()
        }
    })?;
    Ok(Some(out))
}

async fn run_one(tx: &Transaction<'_>, w: Write, pruned: &AtomicU64) -> Result<Committed> {
    let mut rows = PgRows {
        tx,
        pruned_through: pruned,
    };
    apply(&mut rows, w).await
}
