//! [`Session`]: one connection on the bus, whatever its transport, opened by a [`Caller`] and checked as that
//! caller. It subscribes (with exact resume), publishes and answers under the connection's publish rate limit,
//! and hands its transport the next thing to send.
//!
//! Exact resume: [`SessionHandle::subscribe_all`] with `since` registers its subscriptions under the bus lock,
//! reading `L = last_seq` once, and queues one replay marker for `(since, L]` over all of them ahead of any live
//! event `> L`. When [`Session::next`] meets the marker it pages those events from the log with one query over
//! every pattern, in global `seq` order, so the client gets every event after `since` exactly once and in `seq`
//! order, then the live ones, however many arrive during the switch. A client cut off mid-replay that comes back
//! with the highest `seq` it saw therefore misses nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::queue::{Conn, Outbound, Sub};
use super::signed::announce;
use super::{Bus, ClientInfo};
use crate::caller::Caller;
use crate::error::{Error, ErrorKind, Result};
use crate::hub::Published;
use crate::idempotency::RequestKey;
use crate::limits::{MAX_SUBSCRIPTIONS, socket_publish_limiter};
use crate::model::{Event, NewEvent, Pattern, Reach, Scope};
use crate::presence::MEMBER_REMOVED;

/// Events fetched from the log per replay page.
const REPLAY_PAGE: usize = 500;

/// Where a client left off: resume after `since`, if it is from this log's `epoch`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    /// The last `seq` the client has.
    pub since: Option<u64>,
    /// The epoch that `since` belongs to; a different one means the log was reset.
    pub epoch: Option<String>,
}

impl Resume {
    /// Resume after `since`.
    pub fn after(since: u64) -> Self {
        Resume {
            since: Some(since),
            epoch: None,
        }
    }
}

/// Replay `(since, until]` of every pattern in `scope` from the log, in `seq` order, leaving out what other
/// subscriptions already cover.
pub(super) struct Replay {
    scope: Scope,
    since: u64,
    until: u64,
    /// `(pattern, covered_from, private_ok)` of the connection's other subscriptions at the time: an event they
    /// match with `seq > covered_from` has been (or will be) delivered through them.
    skip: Vec<(Pattern, u64, bool)>,
}

/// What a session hands its transport next.
#[derive(Debug)]
pub enum Delivery {
    /// A replayed or live event.
    Event(Event),
    /// A frame the transport queued (ack, error, pong), already encoded.
    Control(Bytes),
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

/// The shareable side of a [`Session`]: subscribe, unsubscribe, publish, queue control frames.
#[derive(Clone)]
pub struct SessionHandle {
    caller: Caller,
    pub(super) conn: Arc<Conn>,
}

impl Session {
    pub(super) fn new(caller: Caller, conn: Arc<Conn>) -> Self {
        Session {
            handle: SessionHandle { caller, conn },
            pending: VecDeque::new(),
            replay: None,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let conn = &self.handle.conn;
        conn.closed.store(true, Ordering::Release);
        conn.clear();
        self.handle.bus().disconnect(conn);
        let hub = self.handle.caller.hub();
        for (channel, user) in hub.presence().leave_all(conn.key) {
            announce(
                hub,
                &channel,
                MEMBER_REMOVED,
                json!({ "user_id": user }),
                None,
            );
        }
    }
}

impl std::ops::Deref for Session {
    type Target = SessionHandle;
    fn deref(&self) -> &SessionHandle {
        &self.handle
    }
}

impl SessionHandle {
    pub(super) fn bus(&self) -> &Bus {
        self.caller.hub().bus()
    }

    /// The connection id.
    pub fn id(&self) -> &str {
        &self.conn.info.id
    }

    /// Who the connection is.
    pub fn info(&self) -> &ClientInfo {
        &self.conn.info
    }

    /// The caller this connection acts as.
    pub fn caller(&self) -> &Caller {
        &self.caller
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
        self.conn.subs().iter().map(|s| s.pattern.clone()).collect()
    }

    /// Subscribes to `pattern`, if the caller may. `ack` builds the transport's acknowledgement from the outcome;
    /// it is queued ahead of the replayed and live events of this subscription.
    ///
    /// # Errors
    /// `Forbidden` when the caller may not subscribe to `pattern`; `Invalid` (`limit_exceeded`) past
    /// [`MAX_SUBSCRIPTIONS`].
    pub fn subscribe(
        &self,
        pattern: Pattern,
        resume: &Resume,
        ack: impl FnOnce(Subscribed) -> Option<Bytes>,
    ) -> Result<Subscribed> {
        let private_ok = self.caller.may_subscribe(&pattern)?;
        self.subscribe_as(pattern, private_ok, resume, ack)
    }

    /// Subscribes to every pattern of `patterns` at once, if the caller may subscribe to each (otherwise to none).
    /// With `since`, one replay covers them all: every logged event after `since` that any of them matches, once,
    /// in `seq` order. `ack` is called for each pattern, in order (a pattern the session holds already is
    /// `duplicate` and not replayed); the frames it returns are queued ahead of the replay.
    ///
    /// # Errors
    /// `Forbidden` when the caller may not subscribe to one of them; `Invalid` (`limit_exceeded`) when they would
    /// take the session past [`MAX_SUBSCRIPTIONS`]. Nothing is subscribed then.
    pub fn subscribe_all(
        &self,
        patterns: &[Pattern],
        resume: &Resume,
        ack: impl FnMut(&Pattern, Subscribed) -> Option<Bytes>,
    ) -> Result<Vec<Subscribed>> {
        let checked = patterns
            .iter()
            .map(|p| Ok((p.clone(), self.caller.may_subscribe(p)?)))
            .collect::<Result<Vec<_>>>()?;
        self.subscribe_checked(checked, resume, ack)
    }

    pub(super) fn subscribe_as(
        &self,
        pattern: Pattern,
        private_ok: bool,
        resume: &Resume,
        ack: impl FnOnce(Subscribed) -> Option<Bytes>,
    ) -> Result<Subscribed> {
        let mut ack = Some(ack);
        let out = self.subscribe_checked(vec![(pattern, private_ok)], resume, |_, s| {
            ack.take().and_then(|a| a(s))
        })?;
        out.into_iter()
            .next()
            .ok_or_else(|| Error::internal("a subscribe returned no outcome"))
    }

    /// Registers `(pattern, private_ok)` subscriptions already checked, under the bus lock, with one replay.
    fn subscribe_checked(
        &self,
        list: Vec<(Pattern, bool)>,
        resume: &Resume,
        mut ack: impl FnMut(&Pattern, Subscribed) -> Option<Bytes>,
    ) -> Result<Vec<Subscribed>> {
        let bus = self.bus();
        let mut idx = bus.index();
        let mut subs = self.conn.subs();
        let mut new: Vec<&Pattern> = Vec::new();
        for (p, _) in &list {
            if !new.contains(&p) && !subs.iter().any(|s| &s.pattern == p) {
                new.push(p);
            }
        }
        if subs.len() + new.len() > MAX_SUBSCRIPTIONS {
            return Err(Error::new(
                ErrorKind::Invalid,
                "limit_exceeded",
                format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
            ));
        }
        let last = bus.last_seq();
        let log = bus.reader();
        let recovered = resume.since.map(|since| {
            let epoch_ok = resume.epoch.as_deref().is_none_or(|e| e == log.epoch());
            epoch_ok && since >= log.pruned_through() && since <= last
        });
        let since = resume.since.unwrap_or(last);
        let covered_from = if recovered == Some(true) { since } else { last };
        // What the connection's earlier subscriptions deliver already (or will): the replay leaves it out.
        let skip: Vec<(Pattern, u64, bool)> = subs
            .iter()
            .map(|s| (s.pattern.clone(), s.covered_from, s.private_ok))
            .collect();
        let mut reach = Vec::new();
        let mut out = Vec::with_capacity(list.len());
        for (pattern, private_ok) in list {
            let duplicate = subs.iter().any(|s| s.pattern == pattern);
            let o = Subscribed {
                recovered: if duplicate { None } else { recovered },
                duplicate,
            };
            if let Some(frame) = ack(&pattern, o) {
                self.conn.push(Outbound::Control(frame));
            }
            out.push(o);
            if duplicate {
                continue;
            }
            idx.add(&pattern, self.conn.key, private_ok);
            reach.push(Reach {
                pattern: pattern.clone(),
                private_ok,
            });
            subs.push(Sub {
                pattern,
                private_ok,
                covered_from,
            });
        }
        if recovered == Some(true) && since < last && !reach.is_empty() {
            self.conn.push(Outbound::Replay(Box::new(Replay {
                scope: Scope(reach),
                since,
                until: last,
                skip,
            })));
        }
        Ok(out)
    }

    /// Removes a subscription. Returns whether it existed. Leaving a presence channel announces the user's
    /// departure when it was the user's last connection there.
    pub fn unsubscribe(&self, pattern: &Pattern) -> bool {
        {
            let mut idx = self.bus().index();
            let mut subs = self.conn.subs();
            let before = subs.len();
            subs.retain(|s| &s.pattern != pattern);
            if subs.len() == before {
                return false;
            }
            idx.remove(pattern, self.conn.key);
        }
        if let Pattern::Exact(channel) = pattern
            && channel.starts_with("presence-")
        {
            let hub = self.caller.hub();
            if let Some(user) = hub.presence().leave(self.conn.key, channel) {
                announce(
                    hub,
                    channel,
                    MEMBER_REMOVED,
                    json!({ "user_id": user }),
                    None,
                );
            }
        }
        true
    }

    /// Takes one publish from the connection's allowance (SPEC §10: 100/s, burst 200).
    pub(super) fn spend(&self) -> Result<()> {
        let limiter = self
            .conn
            .limiter
            .get_or_init(|| Box::new(socket_publish_limiter()));
        limiter.check().map_err(|_| Error::rate_limited())
    }

    /// Publishes as this connection's caller, within the connection's publish rate limit. Everything but the
    /// commit is checked now; the future commits, so a transport can pipeline publishes and ack them in order.
    pub fn publish(
        &self,
        ev: NewEvent,
    ) -> impl Future<Output = Result<Published>> + Send + 'static {
        self.publish_as(&self.caller, ev)
    }

    /// [`SessionHandle::publish`] with an idempotency key: a retry with the same key (and the same event) answers
    /// the first publish's seq and publishes nothing.
    pub fn publish_keyed(
        &self,
        ev: NewEvent,
        key: RequestKey,
    ) -> impl Future<Output = Result<Published>> + Send + 'static {
        self.publish_as(&self.caller.with_idempotency_key(key), ev)
    }

    fn publish_as(
        &self,
        caller: &Caller,
        ev: NewEvent,
    ) -> impl Future<Output = Result<Published>> + Send + 'static + use<> {
        let spent = self.spend();
        let publish = spent.is_ok().then(|| caller.publish(ev));
        async move {
            spent?;
            match publish {
                Some(p) => p.await,
                None => Err(Error::rate_limited()),
            }
        }
    }

    /// Answers a pending question as this connection's caller, within the same rate limit as publishes.
    pub fn answer(
        &self,
        question_id: String,
        answer: Value,
    ) -> impl Future<Output = Result<Published>> + Send + 'static {
        let spent = self.spend();
        let caller = self.caller.clone();
        async move {
            spent?;
            caller.answer(&question_id, answer).await
        }
    }
}

impl Session {
    /// The shareable handle of this session.
    pub fn handle(&self) -> &SessionHandle {
        &self.handle
    }

    fn count_sent(&self, e: Event) -> Delivery {
        self.handle.conn.sent.fetch_add(1, Ordering::Relaxed);
        Delivery::Event(e)
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
                return Some(self.count_sent(ev));
            }
            if self.replay.is_some() {
                // Boxed: replays are rare, and every connection's task would otherwise carry this future's size.
                if let Err(e) = Box::pin(self.page_in()).await {
                    tracing::error!(client = %self.handle.conn.info.id, error = %e, "replay failed; closing");
                    return None;
                }
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
                Outbound::Event(e) => return Some(self.count_sent(e)),
                Outbound::Control(b) => return Some(Delivery::Control(b)),
                Outbound::Replay(r) => self.replay = Some(*r),
            }
        }
    }

    /// Reads the next page of the current replay into `pending`, or ends the replay when nothing is left.
    async fn page_in(&mut self) -> Result<()> {
        let Some(r) = &mut self.replay else {
            return Ok(());
        };
        let scope = r.scope.clone();
        let log = self.handle.bus().reader().clone();
        let page = log
            .events(scope, r.since, Some(r.until), REPLAY_PAGE)
            .await?;
        let Some(last) = page.last() else {
            self.replay = None;
            return Ok(());
        };
        r.since = last.seq();
        let r = &*r;
        self.pending.extend(page.into_iter().filter(|e| {
            let private = crate::model::is_private(e.channel());
            !r.skip
                .iter()
                .any(|(p, from, ok)| e.seq() > *from && (*ok || !private) && p.matches(e.channel()))
        }));
        Ok(())
    }

    /// What [`Session::next`] would return now without waiting, so a transport can write everything queued in
    /// one batch. `None` when nothing is ready (or a replay must be paged in first: `next` does that).
    pub fn try_next(&mut self) -> Option<Delivery> {
        if self.handle.conn.cut.is_cancelled() {
            return None;
        }
        if let Some(ev) = self.pending.pop_front() {
            return Some(self.count_sent(ev));
        }
        if self.replay.is_some() {
            return None;
        }
        match self.handle.conn.pop()? {
            Outbound::Event(e) => Some(self.count_sent(e)),
            Outbound::Control(b) => Some(Delivery::Control(b)),
            Outbound::Replay(r) => {
                self.replay = Some(*r);
                None
            }
        }
    }
}
