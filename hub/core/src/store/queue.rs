//! The write queue both stores' writers take their batches from. [`Queue`] is the [`LogWriter`] the hub holds.
//! It queues each write with a reply channel, and [`Batch::take`] gathers what is queued into one transaction's
//! worth. The writer (a thread for SQLite, a task for PostgreSQL) ends when the last handle is dropped, or on
//! [`LogWriter::shutdown`].

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::{Committed, LogWriter, Write, shutting_down};
use crate::error::Result;

/// How many queued writes one transaction may carry.
pub(super) const MAX_BATCH: usize = 256;

/// Where a write's outcome goes.
pub(super) type Reply = oneshot::Sender<Result<Committed>>;

pub(super) enum Job {
    Write(Box<Write>, Reply),
    Shutdown(oneshot::Sender<()>),
}

/// Queues writes for the writer.
pub(super) struct Queue {
    jobs: mpsc::Sender<Job>,
}

impl Queue {
    /// A queue and the receiving end its writer takes batches from.
    pub(super) fn new() -> (Queue, mpsc::Receiver<Job>) {
        let (jobs, rx) = mpsc::channel(4096);
        (Queue { jobs }, rx)
    }
}

#[async_trait]
impl LogWriter for Queue {
    async fn write(&self, w: Write) -> Result<Committed> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Write(Box::new(w), tx))
            .await
            .map_err(|_| shutting_down())?;
        rx.await.map_err(|_| shutting_down())?
    }

    async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// One transaction's worth of queued writes, and the shutdown request if one came.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) writes: Vec<(Box<Write>, Reply)>,
    pub(super) shutdown: Option<oneshot::Sender<()>>,
    /// Every handle is gone: nothing more will come.
    pub(super) closed: bool,
}

impl Batch {
    /// Starts from `first` (what the writer waited for; `None` when the queue closed) and takes whatever else is
    /// queued, up to [`MAX_BATCH`] writes, stopping at a shutdown request.
    pub(super) fn take(first: Option<Job>, jobs: &mut mpsc::Receiver<Job>) -> Batch {
        let mut b = Batch::default();
        match first {
            Some(job) => b.add(job),
            None => b.closed = true,
        }
        while !b.closed && b.shutdown.is_none() && b.writes.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => b.add(job),
                Err(_) => break,
            }
        }
        b
    }

    fn add(&mut self, job: Job) {
        match job {
            Job::Write(w, tx) => self.writes.push((w, tx)),
            Job::Shutdown(done) => self.shutdown = Some(done),
        }
    }

    /// The writer should stop after this batch.
    pub(super) fn last(&self) -> bool {
        self.closed || self.shutdown.is_some()
    }
}
