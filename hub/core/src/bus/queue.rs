//! One connection's record on the bus ([`Conn`]): its bounded outbound queue, the cut-off, its subscriptions and
//! counters.
//!
//! The queue is a `VecDeque` behind a mutex plus an [`AtomicWaker`], empty (no allocation) while the connection is
//! idle. A tokio mpsc channel allocates a 32-slot block per connection up front; at 10k connections that was
//! 1.8 KB each. A push to a full queue never waits: it marks the connection slow and cancels its `cut` token, so
//! the writer thread and every other subscriber carry on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::Poll;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use governor::DefaultDirectRateLimiter;
use tokio_util::sync::CancellationToken;

use super::ClientInfo;
use super::session::Replay;
use crate::model::{Event, Pattern};

/// WebSocket close code for a client whose outbound queue overflowed.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code for a connection the app terminated (Pusher's `terminate_connections`).
pub const CLOSE_TERMINATED: u16 = 4009;

/// One item on a connection's outbound queue.
pub(super) enum Outbound {
    Event(Event),
    /// A transport frame (ack, error, pong), already encoded.
    Control(Bytes),
    /// Boxed: rare, and much larger than the other variants, which every queued item would otherwise pay for.
    Replay(Box<Replay>),
}

/// One subscription of a connection.
#[derive(Debug, Clone)]
pub(super) struct Sub {
    pub(super) pattern: Pattern,
    pub(super) private_ok: bool,
    /// The connection has every event of this subscription with `seq` above this.
    pub(super) covered_from: u64,
}

/// A connection as the bus knows it.
pub(super) struct Conn {
    /// The bus's key for it (connection ids are chosen by clients and may repeat).
    pub(super) key: u64,
    pub(super) info: ClientInfo,
    /// The `sub` of the caller's JWT, if any.
    pub(super) user: Option<String>,
    /// When it connected; formatted only when `/api/clients` asks (a string per idle connection costs more).
    pub(super) connected_at: chrono::DateTime<chrono::Utc>,
    queue: Mutex<VecDeque<Outbound>>,
    capacity: usize,
    /// Wakes the connection's task when something is queued.
    waker: AtomicWaker,
    /// The session is gone: pushes are refused.
    pub(super) closed: AtomicBool,
    /// Cancelled when the bus gives up on this connection (slow consumer).
    pub(super) cut: CancellationToken,
    pub(super) close_code: AtomicU16,
    pub(super) subs: Mutex<Vec<Sub>>,
    /// Highest `seq` queued live, so overlapping subscriptions deliver an event once. Written under the bus lock.
    pub(super) delivered_seq: AtomicU64,
    pub(super) sent: AtomicU64,
    pub(super) received: AtomicU64,
    /// The publish limiter, made on the first publish (most connections never publish). Boxed: it is larger than
    /// the pointer every idle connection would otherwise carry.
    pub(super) limiter: OnceLock<Box<DefaultDirectRateLimiter>>,
}

impl Conn {
    pub(super) fn new(key: u64, info: ClientInfo, user: Option<String>, capacity: usize) -> Self {
        Conn {
            key,
            info,
            user,
            connected_at: chrono::Utc::now(),
            queue: Mutex::new(VecDeque::new()),
            capacity,
            waker: AtomicWaker::new(),
            closed: AtomicBool::new(false),
            cut: CancellationToken::new(),
            close_code: AtomicU16::new(0),
            subs: Mutex::new(Vec::new()),
            delivered_seq: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            limiter: OnceLock::new(),
        }
    }

    pub(super) fn subs(&self) -> MutexGuard<'_, Vec<Sub>> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives up on the connection: its transport closes with [`CLOSE_SLOW_CONSUMER`].
    pub(super) fn mark_slow(&self) {
        if self
            .close_code
            .compare_exchange(0, CLOSE_SLOW_CONSUMER, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::info!(client = %self.info.id, transport = self.info.transport, "closing slow consumer");
        }
        self.cut.cancel();
    }

    /// Cuts the connection off with `code`, unless it is already being closed for another reason.
    pub(super) fn cut_with(&self, code: u16) {
        let _ = self
            .close_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.cut.cancel();
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<Outbound>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many items wait to be sent.
    pub(super) fn queued(&self) -> usize {
        self.queue().len()
    }

    /// Drops everything queued (the session is going away).
    pub(super) fn clear(&self) {
        self.queue().clear();
    }

    /// Queues `item` without waiting. A full queue cuts the connection off instead; returns whether it was queued.
    pub(super) fn push(&self, item: Outbound) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let mut q = self.queue();
        if q.len() >= self.capacity {
            drop(q);
            self.mark_slow();
            return false;
        }
        q.push_back(item);
        drop(q);
        self.waker.wake();
        true
    }

    pub(super) fn pop(&self) -> Option<Outbound> {
        let mut q = self.queue();
        let item = q.pop_front();
        // Give a burst's memory back once it is written out.
        if q.is_empty() && q.capacity() > 64 {
            *q = VecDeque::new();
        }
        item
    }

    /// The next queued item, waiting for one.
    pub(super) async fn recv(&self) -> Outbound {
        std::future::poll_fn(|cx| {
            if let Some(item) = self.pop() {
                return Poll::Ready(item);
            }
            self.waker.register(cx.waker());
            match self.pop() {
                Some(item) => Poll::Ready(item),
                None => Poll::Pending,
            }
        })
        .await
    }
}
