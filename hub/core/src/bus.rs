//! The bus: who is connected, what each connection subscribes to, and delivery of committed events.
//!
//! Every connection (any transport) is a [`Session`] with one bounded outbound queue. The store's writer thread
//! calls [`Bus::committed`] after each commit; under the bus lock it stamps `last_seq` and puts each event (an
//! `Arc`, serialised at most once) on the queue of every matching session without waiting. A full queue marks the
//! session slow: it is closed with [`CLOSE_SLOW_CONSUMER`] and never makes the writer or anyone else wait.
//!
//! Exact resume: [`Session::subscribe`] with `since` registers the subscription under the same lock, reading
//! `L = last_seq`, and queues a replay marker for `(since, L]` ahead of any live event `> L`. When
//! [`Session::next`] meets the marker it pages those events from the log, so the client gets every event after `since`
//! exactly once and in order, then the live ones, however many arrive during the switch.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Event, Pattern, is_private};
use crate::store::{CommitSink, Store};

/// WebSocket close code for a client whose outbound queue overflowed.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Most subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 256;
/// Events fetched from the log per replay page.
const REPLAY_PAGE: usize = 500;

/// Who a connection is, for `/api/clients` and logs.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Connection id: random, or chosen by the client (`/ws/{client_id}`).
    pub id: String,
    /// `ws`, `sse`, `socketio`, `pusher`, `mcp`…
    pub transport: &'static str,
    pub origin: Option<String>,
    /// The `sub` of the client's JWT, if any.
    pub user: Option<String>,
}

/// How many events each connection may have queued before it counts as slow.
#[derive(Debug, Clone, Copy)]
pub struct BusConfig {
    pub queue_capacity: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
        }
    }
}

/// One item on a session's outbound queue.
enum Outbound {
    Event(Event),
    /// A transport frame (ack, error, pong), already encoded.
    Control(Bytes),
    /// Boxed: rare, and much larger than the other variants, which every queued item would otherwise pay for.
    Replay(Box<Replay>),
}

/// Replay `(since, until]` of `pattern` from the log, leaving out what other subscriptions already cover.
struct Replay {
    pattern: Pattern,
    since: u64,
    until: u64,
    private_ok: bool,
    /// `(pattern, covered_from)` of the connection's other subscriptions at the time: an event they match with
    /// `seq > covered_from` has been (or will be) delivered through them.
    skip: Vec<(Pattern, u64, bool)>,
}

/// What a session hands its transport next.
#[derive(Debug)]
pub enum Delivery {
    Event(Event),
    Control(Bytes),
}

#[derive(Debug, Clone)]
struct Sub {
    pattern: Pattern,
    private_ok: bool,
    /// The connection has every event of this subscription with `seq` above this.
    covered_from: u64,
}

struct Conn {
    key: u64,
    info: ClientInfo,
    connected_at: String,
    /// The outbound queue: bounded by `capacity`, empty (no allocation) when the connection is idle. A tokio
    /// mpsc channel allocates a 32-slot block per connection up front; at 10k connections that was 1.8 KB each.
    queue: Mutex<VecDeque<Outbound>>,
    capacity: usize,
    /// Wakes the connection's task when something is queued.
    waker: AtomicWaker,
    /// The session is gone: pushes are refused.
    closed: AtomicBool,
    /// Cancelled when the bus gives up on this connection (slow consumer).
    cut: CancellationToken,
    close_code: AtomicU16,
    subs: Mutex<Vec<Sub>>,
    /// Highest `seq` queued live, so overlapping subscriptions deliver an event once. Written under the bus lock.
    delivered_seq: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
}

impl Conn {
    fn mark_slow(&self) {
        if self
            .close_code
            .compare_exchange(0, CLOSE_SLOW_CONSUMER, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::info!(client = %self.info.id, transport = self.info.transport, "closing slow consumer");
        }
        self.cut.cancel();
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Outbound>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, item: Outbound) -> bool {
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

    fn pop(&self) -> Option<Outbound> {
        let mut q = self.queue();
        let item = q.pop_front();
        // Give a burst's memory back once it is written out.
        if q.is_empty() && q.capacity() > 64 {
            *q = VecDeque::new();
        }
        item
    }

    /// The next queued item, waiting for one.
    async fn recv(&self) -> Outbound {
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

#[derive(Default)]
struct Index {
    conns: HashMap<u64, Arc<Conn>>,
    exact: HashMap<String, Vec<(u64, bool)>>,
    prefix: BTreeMap<String, Vec<(u64, bool)>>,
}

impl Index {
    fn slot(&mut self, p: &Pattern) -> &mut Vec<(u64, bool)> {
        match p {
            Pattern::Exact(c) => self.exact.entry(c.clone()).or_default(),
            Pattern::Prefix(x) => self.prefix.entry(x.clone()).or_default(),
        }
    }
    fn remove(&mut self, p: &Pattern, key: u64) {
        let (empty, name) = match p {
            Pattern::Exact(c) => {
                let v = self.exact.get_mut(c);
                (
                    v.map(|v| {
                        v.retain(|(k, _)| *k != key);
                        v.is_empty()
                    })
                    .unwrap_or(false),
                    c,
                )
            }
            Pattern::Prefix(x) => {
                let v = self.prefix.get_mut(x);
                (
                    v.map(|v| {
                        v.retain(|(k, _)| *k != key);
                        v.is_empty()
                    })
                    .unwrap_or(false),
                    x,
                )
            }
        };
        if empty {
            match p {
                Pattern::Exact(_) => self.exact.remove(name),
                Pattern::Prefix(_) => self.prefix.remove(name),
            };
        }
    }
}

#[derive(Default)]
struct Counters {
    deliveries: AtomicU64,
    slow_consumers: AtomicU64,
    connections_total: AtomicU64,
}

struct BusInner {
    config: BusConfig,
    index: Mutex<Index>,
    last_seq: AtomicU64,
    next_key: AtomicU64,
    store: OnceLock<Store>,
    counters: Counters,
}

/// Cheap-to-clone handle on the bus.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<BusInner>,
}

/// A snapshot of one connection for `/api/clients`.
#[derive(Debug, Clone, Serialize)]
pub struct ClientSnapshot {
    pub id: String,
    pub transport: &'static str,
    pub origin: Option<String>,
    pub user: Option<String>,
    pub subscriptions: Vec<String>,
    pub connected_at: String,
    pub sent: u64,
    pub received: u64,
    pub queued: usize,
}

/// A subscription key with how many connections hold it.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelSnapshot {
    pub name: String,
    pub subscribers: usize,
}

/// Bus-wide counters for `/metrics`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BusStats {
    pub connections: usize,
    pub connections_total: u64,
    pub deliveries: u64,
    pub slow_consumers: u64,
    pub last_seq: u64,
}

impl Bus {
    pub fn new(config: BusConfig) -> Self {
        Bus {
            inner: Arc::new(BusInner {
                config,
                index: Mutex::new(Index::default()),
                last_seq: AtomicU64::new(0),
                next_key: AtomicU64::new(1),
                store: OnceLock::new(),
                counters: Counters::default(),
            }),
        }
    }

    /// Gives the bus the log it replays from and the log's position. Called once, right after the store opens
    /// and before anything is written.
    pub fn attach(&self, store: Store) {
        self.inner
            .last_seq
            .store(store.opened_at_seq(), Ordering::Release);
        let _ = self.inner.store.set(store);
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.inner.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The highest `seq` handed to subscribers.
    pub fn last_seq(&self) -> u64 {
        self.inner.last_seq.load(Ordering::Acquire)
    }

    /// Registers a connection. Drop the session to unregister it.
    pub fn connect(&self, info: ClientInfo) -> Session {
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            key,
            info,
            connected_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            queue: Mutex::new(VecDeque::new()),
            capacity: self.inner.config.queue_capacity,
            waker: AtomicWaker::new(),
            closed: AtomicBool::new(false),
            cut: CancellationToken::new(),
            close_code: AtomicU16::new(0),
            subs: Mutex::new(Vec::new()),
            delivered_seq: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
        });
        self.index().conns.insert(key, conn.clone());
        self.inner
            .counters
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        Session {
            handle: SessionHandle {
                bus: self.clone(),
                conn,
            },
            pending: VecDeque::new(),
            replay: None,
        }
    }

    fn disconnect(&self, conn: &Conn) {
        let subs = std::mem::take(&mut *conn.subs.lock().unwrap_or_else(|p| p.into_inner()));
        let mut idx = self.index();
        for s in &subs {
            idx.remove(&s.pattern, conn.key);
        }
        idx.conns.remove(&conn.key);
    }

    pub fn connection_count(&self) -> usize {
        self.index().conns.len()
    }

    pub fn clients(&self) -> Vec<ClientSnapshot> {
        let conns: Vec<Arc<Conn>> = self.index().conns.values().cloned().collect();
        let mut out: Vec<ClientSnapshot> = conns
            .iter()
            .map(|c| ClientSnapshot {
                id: c.info.id.clone(),
                transport: c.info.transport,
                origin: c.info.origin.clone(),
                user: c.info.user.clone(),
                subscriptions: c
                    .subs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|s| s.pattern.to_string())
                    .collect(),
                connected_at: c.connected_at.clone(),
                sent: c.sent.load(Ordering::Relaxed),
                received: c.received.load(Ordering::Relaxed),
                queued: c.queue().len(),
            })
            .collect();
        out.sort_by(|a, b| a.connected_at.cmp(&b.connected_at).then(a.id.cmp(&b.id)));
        out
    }

    /// Every subscription key (channel or pattern) with its number of subscribers.
    pub fn channels(&self) -> Vec<ChannelSnapshot> {
        let idx = self.index();
        let mut out: Vec<ChannelSnapshot> = idx
            .exact
            .iter()
            .map(|(k, v)| ChannelSnapshot {
                name: k.clone(),
                subscribers: v.len(),
            })
            .chain(idx.prefix.iter().map(|(k, v)| ChannelSnapshot {
                name: format!("{k}*"),
                subscribers: v.len(),
            }))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// How many connections would receive an event on `channel`.
    pub fn subscriber_count(&self, channel: &str) -> usize {
        let idx = self.index();
        let mut seen = std::collections::HashSet::new();
        for (key, private_ok) in Self::matching(&idx, channel) {
            if private_ok || !is_private(channel) {
                seen.insert(key);
            }
        }
        seen.len()
    }

    fn matching<'a>(idx: &'a Index, channel: &'a str) -> impl Iterator<Item = (u64, bool)> + 'a {
        let exact = idx.exact.get(channel).into_iter().flatten().copied();
        let prefixes = (0..=channel.len())
            .filter(|i| channel.is_char_boundary(*i))
            .filter_map(move |i| idx.prefix.get(&channel[..i]))
            .flatten()
            .copied();
        exact.chain(prefixes)
    }

    pub fn stats(&self) -> BusStats {
        let c = &self.inner.counters;
        BusStats {
            connections: self.connection_count(),
            connections_total: c.connections_total.load(Ordering::Relaxed),
            deliveries: c.deliveries.load(Ordering::Relaxed),
            slow_consumers: c.slow_consumers.load(Ordering::Relaxed),
            last_seq: self.last_seq(),
        }
    }
}

impl CommitSink for Bus {
    fn committed(&self, events: &[Event]) -> Vec<usize> {
        let idx = self.index();
        let mut counts = Vec::with_capacity(events.len());
        let mut total = 0u64;
        let mut slow = 0u64;
        for ev in events {
            self.inner.last_seq.store(ev.seq(), Ordering::Release);
            let private = is_private(ev.channel());
            let mut n = 0;
            for (key, private_ok) in Self::matching(&idx, ev.channel()) {
                if private && !private_ok {
                    continue;
                }
                let Some(conn) = idx.conns.get(&key) else {
                    continue;
                };
                if conn.cut.is_cancelled() || conn.delivered_seq.load(Ordering::Relaxed) >= ev.seq()
                {
                    continue;
                }
                conn.delivered_seq.store(ev.seq(), Ordering::Relaxed);
                if conn.push(Outbound::Event(ev.clone())) {
                    n += 1;
                } else if conn.cut.is_cancelled() {
                    slow += 1;
                }
            }
            total += n as u64;
            counts.push(n);
        }
        drop(idx);
        self.inner
            .counters
            .deliveries
            .fetch_add(total, Ordering::Relaxed);
        self.inner
            .counters
            .slow_consumers
            .fetch_add(slow, Ordering::Relaxed);
        counts
    }
}

/// Options of one subscribe call.
#[derive(Debug, Clone, Default)]
pub struct SubscribeOpts {
    /// Resume after this `seq`.
    pub since: Option<u64>,
    /// The epoch the client's `since` belongs to; a different one means the log was reset.
    pub epoch: Option<String>,
    /// May this subscription see `private-`/`presence-` channels? (Exact private channels are refused unless so.)
    pub private_ok: bool,
}

/// The result of a subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    /// With `since`: whether every event after it can be replayed. `false` means the client must refetch.
    pub recovered: Option<bool>,
    /// The subscription existed already; nothing changed.
    pub duplicate: bool,
}

/// One connection on the bus, owned by its transport's task. Dropping it unregisters the connection. Its
/// [`SessionHandle`] (also reachable through `Deref`) can be cloned where frames are queued from elsewhere.
pub struct Session {
    handle: SessionHandle,
    pending: VecDeque<Event>,
    replay: Option<Replay>,
}

/// The shareable side of a [`Session`]: subscribe, unsubscribe, queue control frames.
#[derive(Clone)]
pub struct SessionHandle {
    bus: Bus,
    conn: Arc<Conn>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.handle.conn.closed.store(true, Ordering::Release);
        self.handle.conn.queue().clear();
        self.handle.bus.disconnect(&self.handle.conn);
    }
}

impl std::ops::Deref for Session {
    type Target = SessionHandle;
    fn deref(&self) -> &SessionHandle {
        &self.handle
    }
}

impl SessionHandle {
    pub fn id(&self) -> &str {
        &self.conn.info.id
    }

    pub fn info(&self) -> &ClientInfo {
        &self.conn.info
    }

    /// Resolves when the bus has cut this session off (slow consumer); [`SessionHandle::close_code`] says why.
    pub fn cut(&self) -> CancellationToken {
        self.conn.cut.clone()
    }

    /// The close code the bus chose, if it cut the session off.
    pub fn close_code(&self) -> Option<u16> {
        match self.conn.close_code.load(Ordering::Acquire) {
            0 => None,
            c => Some(c),
        }
    }

    /// Counts one frame received from the client.
    pub fn record_received(&self) {
        self.conn.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Queues a control frame (ack, error, pong) behind everything already queued.
    ///
    /// Returns `false` if the queue was full: the session is then cut off as a slow consumer.
    pub fn send_control(&self, frame: Bytes) -> bool {
        self.conn.push(Outbound::Control(frame))
    }

    /// The subscriptions this session holds.
    pub fn subscriptions(&self) -> Vec<Pattern> {
        self.conn
            .subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|s| s.pattern.clone())
            .collect()
    }

    /// Subscribes to `pattern`. `ack` builds the transport's acknowledgement from the outcome; it is queued ahead
    /// of the replayed and live events of this subscription.
    ///
    /// # Errors
    /// `Forbidden` for a private channel without `private_ok`; `Invalid` (`limit_exceeded`) past
    /// [`MAX_SUBSCRIPTIONS`].
    pub fn subscribe(
        &self,
        pattern: Pattern,
        opts: SubscribeOpts,
        ack: impl FnOnce(Subscribed) -> Option<Bytes>,
    ) -> Result<Subscribed> {
        if let Pattern::Exact(c) = &pattern
            && is_private(c)
            && !opts.private_ok
        {
            return Err(Error::forbidden(format!("channel {c} needs authorization")));
        }
        let mut idx = self.bus.index();
        let mut subs = self.conn.subs.lock().unwrap_or_else(|p| p.into_inner());
        if subs.iter().any(|s| s.pattern == pattern) {
            let out = Subscribed {
                recovered: None,
                duplicate: true,
            };
            if let Some(frame) = ack(out) {
                self.conn.push(Outbound::Control(frame));
            }
            return Ok(out);
        }
        if subs.len() >= MAX_SUBSCRIPTIONS {
            return Err(Error::new(
                ErrorKind::Invalid,
                "limit_exceeded",
                format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
            ));
        }
        let last = self.bus.last_seq();
        let store = self.bus.inner.store.get();
        let recovered = opts.since.map(|since| {
            let epoch_ok = match (&opts.epoch, store) {
                (Some(e), Some(s)) => e == s.epoch(),
                _ => true,
            };
            let pruned = store.map_or(0, |s| s.pruned_through());
            epoch_ok && since >= pruned && since <= last && store.is_some()
        });
        let out = Subscribed {
            recovered,
            duplicate: false,
        };
        if let Some(frame) = ack(out) {
            self.conn.push(Outbound::Control(frame));
        }
        let since = opts.since.unwrap_or(last);
        if recovered == Some(true) && since < last {
            let skip = subs
                .iter()
                .map(|s| (s.pattern.clone(), s.covered_from, s.private_ok))
                .collect();
            self.conn.push(Outbound::Replay(Box::new(Replay {
                pattern: pattern.clone(),
                since,
                until: last,
                private_ok: opts.private_ok,
                skip,
            })));
        }
        let covered_from = if recovered == Some(true) { since } else { last };
        idx.slot(&pattern).push((self.conn.key, opts.private_ok));
        subs.push(Sub {
            pattern,
            private_ok: opts.private_ok,
            covered_from,
        });
        Ok(out)
    }

    /// Removes a subscription. Returns whether it existed.
    pub fn unsubscribe(&self, pattern: &Pattern) -> bool {
        let mut idx = self.bus.index();
        let mut subs = self.conn.subs.lock().unwrap_or_else(|p| p.into_inner());
        let before = subs.len();
        subs.retain(|s| &s.pattern != pattern);
        if subs.len() == before {
            return false;
        }
        idx.remove(pattern, self.conn.key);
        true
    }
}

impl Session {
    /// The shareable handle of this session.
    pub fn handle(&self) -> &SessionHandle {
        &self.handle
    }

    /// The next thing to send: a replayed or live event, or a control frame. `None` once the bus has cut this
    /// session off; the transport then closes with [`SessionHandle::close_code`].
    ///
    /// Cancel-safe: an item taken from the queue is kept until returned.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            if self.handle.conn.cut.is_cancelled() {
                return None;
            }
            if let Some(ev) = self.pending.pop_front() {
                self.handle.conn.sent.fetch_add(1, Ordering::Relaxed);
                return Some(Delivery::Event(ev));
            }
            if let Some(r) = &mut self.replay {
                let store = self.handle.bus.inner.store.get()?.clone();
                // Boxed: replays are rare, and every connection's task would otherwise carry this future's size.
                let page = match Box::pin(store.events(
                    Some(r.pattern.clone()),
                    r.since,
                    Some(r.until),
                    REPLAY_PAGE,
                ))
                .await
                {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(client = %self.handle.conn.info.id, error = %e, "replay failed; closing");
                        return None;
                    }
                };
                let Some(last) = page.last() else {
                    self.replay = None;
                    continue;
                };
                r.since = last.seq();
                let r = &*r;
                self.pending.extend(page.into_iter().filter(|e| {
                    let private = is_private(e.channel());
                    (r.private_ok || !private)
                        && !r.skip.iter().any(|(p, from, ok)| {
                            e.seq() > *from && (*ok || !private) && p.matches(e.channel())
                        })
                }));
                continue;
            }
            // Fast path: something is queued already (no waker registered, no token waiter).
            let conn = &self.handle.conn;
            let item = match conn.pop() {
                Some(item) => item,
                None => tokio::select! {
                    biased;
                    () = conn.cut.cancelled() => return None,
                    item = conn.recv() => item,
                },
            };
            match item {
                Outbound::Event(e) => {
                    self.handle.conn.sent.fetch_add(1, Ordering::Relaxed);
                    return Some(Delivery::Event(e));
                }
                Outbound::Control(b) => return Some(Delivery::Control(b)),
                Outbound::Replay(r) => self.replay = Some(*r),
            }
        }
    }

    /// What [`Session::next`] would return now without waiting, so a transport can write everything queued in
    /// one batch. `None` when nothing is ready (or a replay must be paged in first: `next` does that).
    pub fn try_next(&mut self) -> Option<Delivery> {
        if self.handle.conn.cut.is_cancelled() {
            return None;
        }
        if let Some(ev) = self.pending.pop_front() {
            self.handle.conn.sent.fetch_add(1, Ordering::Relaxed);
            return Some(Delivery::Event(ev));
        }
        if self.replay.is_some() {
            return None;
        }
        match self.handle.conn.pop()? {
            Outbound::Event(e) => {
                self.handle.conn.sent.fetch_add(1, Ordering::Relaxed);
                Some(Delivery::Event(e))
            }
            Outbound::Control(b) => Some(Delivery::Control(b)),
            Outbound::Replay(r) => {
                self.replay = Some(*r);
                None
            }
        }
    }
}
