//! The bus: who is connected, what each connection subscribes to, and delivery of committed events.
//!
//! - [`queue`]: one connection's record: its bounded outbound queue, cut-off and counters.
//! - [`index`]: the subscription index (exact channels and prefix patterns).
//! - [`session`]: [`Session`], a connection as its transport sees it: subscribe with exact resume, publish, next.
//! - `signed`: Pusher's additions to a session: signed private and presence subscriptions, presence, sign-in and
//!   client events.
//!
//! Every connection (any transport, MCP included) is a [`Session`] with one bounded outbound queue, and counts
//! against the connection cap. The store's writer thread calls [`Bus::committed`](CommitSink::committed) after
//! each commit; under the bus lock it stamps `last_seq` and puts each event (an `Arc`, serialised at most once) on
//! the queue of every matching session without waiting. A full queue marks the session slow: it is closed with
//! [`CLOSE_SLOW_CONSUMER`] and never makes the writer or anyone else wait. The bus reads the log (to replay) but
//! does not own the writer: the writer owns the bus, as its sink.

mod index;
mod queue;
mod session;
mod signed;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use crate::caller::Caller;
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{DEFAULT_MAX_CONNECTIONS, DEFAULT_QUEUE_CAPACITY};
use crate::model::{Event, Pattern, is_private};
use crate::store::{CommitSink, Reader};
use index::Index;
pub use queue::{CLOSE_SLOW_CONSUMER, CLOSE_TERMINATED};
use queue::{Conn, Outbound};
pub use session::{Delivery, Resume, Session, SessionHandle, Subscribed};
pub(crate) use signed::parse_member;

/// Who a connection is, for `/api/clients` and logs.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Connection id: random, or chosen by the client (`/ws/{client_id}`).
    pub id: String,
    /// `ws`, `sse`, `socketio`, `pusher`, `mcp`…
    pub transport: &'static str,
    /// The `Origin` the client connected from, if any.
    pub origin: Option<String>,
}

impl ClientInfo {
    /// A connection of `transport` with a random id.
    pub fn new(transport: &'static str) -> Self {
        ClientInfo {
            id: uuid::Uuid::new_v4().to_string(),
            transport,
            origin: None,
        }
    }
}

/// The bus's limits.
#[derive(Debug, Clone, Copy)]
pub struct BusConfig {
    /// Events a connection may have queued before it counts as slow.
    pub queue_capacity: usize,
    /// Most connections at once, of every transport.
    pub max_connections: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_connections: DEFAULT_MAX_CONNECTIONS,
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
    reader: Reader,
    counters: Counters,
}

/// Cheap-to-clone handle on the bus.
#[derive(Clone)]
pub(crate) struct Bus {
    inner: Arc<BusInner>,
}

/// A snapshot of one connection for `/api/clients`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClientSnapshot {
    /// The connection id.
    pub id: String,
    /// `ws`, `sse`, `mcp`…
    pub transport: &'static str,
    /// The `Origin` it connected from.
    pub origin: Option<String>,
    /// The `sub` of its JWT.
    pub user: Option<String>,
    /// The subscriptions the asking caller may see.
    pub subscriptions: Vec<String>,
    /// RFC 3339 UTC.
    pub connected_at: String,
    /// Events sent to it.
    pub sent: u64,
    /// Frames received from it.
    pub received: u64,
    /// Items waiting in its queue.
    pub queued: usize,
    /// The user it signed in as (Pusher `pusher:signin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_in_as: Option<String>,
    /// Its presence memberships: `{channel, user_id}`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub presence: Vec<Membership>,
}

/// One presence membership of a connection.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Membership {
    /// The presence channel.
    pub channel: String,
    /// The user it is in there as.
    pub user_id: String,
}

/// An occupied channel.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChannelSnapshot {
    /// The channel name.
    pub name: String,
    /// How many connections an event on it reaches (by name or by pattern).
    pub subscribers: usize,
    /// For a `presence-` channel, its members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<crate::presence::PresenceMember>>,
}

/// Bus-wide counters for `/metrics`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BusStats {
    /// Open connections.
    pub connections: usize,
    /// Connections ever opened.
    pub connections_total: u64,
    /// Events handed to connections.
    pub deliveries: u64,
    /// Connections cut off for not reading.
    pub slow_consumers: u64,
    /// The newest `seq` delivered.
    pub last_seq: u64,
}

impl Bus {
    /// A bus over the log `reader`, whose newest `seq` is `last_seq`.
    pub(crate) fn new(config: BusConfig, reader: Reader, last_seq: u64) -> Self {
        Bus {
            inner: Arc::new(BusInner {
                config,
                index: Mutex::new(Index::default()),
                last_seq: AtomicU64::new(last_seq),
                next_key: AtomicU64::new(1),
                reader,
                counters: Counters::default(),
            }),
        }
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.inner.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn reader(&self) -> &Reader {
        &self.inner.reader
    }

    /// The highest `seq` handed to subscribers.
    pub(crate) fn last_seq(&self) -> u64 {
        self.inner.last_seq.load(Ordering::Acquire)
    }

    /// Registers a connection for `caller`, unless the hub is at its connection cap. Drop the session to
    /// unregister it.
    ///
    /// # Errors
    /// `Unavailable` (`too_many_connections`) at the cap.
    pub(crate) fn connect(&self, caller: Caller, info: ClientInfo) -> Result<Session> {
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        let user = caller.principal().user().map(str::to_owned);
        let conn = Arc::new(Conn::new(key, info, user, self.inner.config.queue_capacity));
        {
            let mut idx = self.index();
            let max = self.inner.config.max_connections;
            if idx.conns.len() >= max {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "too_many_connections",
                    format!("the hub is at its limit of {max} connections"),
                ));
            }
            idx.conns.insert(key, conn.clone());
        }
        self.inner
            .counters
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        Ok(Session::new(caller, conn))
    }

    fn disconnect(&self, conn: &Conn) {
        let subs = std::mem::take(&mut *conn.subs());
        let mut idx = self.index();
        for s in &subs {
            idx.remove(&s.pattern, conn.key);
        }
        idx.conns.remove(&conn.key);
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.index().conns.len()
    }

    /// Open connections per transport, sorted by transport.
    pub(crate) fn by_transport(&self) -> Vec<(&'static str, usize)> {
        let mut counts = std::collections::BTreeMap::<&'static str, usize>::new();
        for c in self.index().conns.values() {
            *counts.entry(c.info.transport).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// Every connection, oldest first, showing the subscriptions `visible` accepts.
    pub(crate) fn clients(
        &self,
        presence: &crate::presence::Presence,
        visible: impl Fn(&Pattern) -> bool,
    ) -> Vec<ClientSnapshot> {
        let conns: Vec<Arc<Conn>> = self.index().conns.values().cloned().collect();
        let mut out: Vec<ClientSnapshot> = conns
            .iter()
            .map(|c| ClientSnapshot {
                id: c.info.id.clone(),
                transport: c.info.transport,
                origin: c.info.origin.clone(),
                user: c.user.clone(),
                subscriptions: c
                    .subs()
                    .iter()
                    .filter(|s| visible(&s.pattern))
                    .map(|s| s.pattern.to_string())
                    .collect(),
                connected_at: c
                    .connected_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                sent: c.sent.load(Ordering::Relaxed),
                received: c.received.load(Ordering::Relaxed),
                queued: c.queued(),
                signed_in_as: presence.signed_in(c.key),
                presence: presence
                    .memberships(c.key)
                    .into_iter()
                    .filter(|(ch, _)| visible(&Pattern::Exact(ch.clone())))
                    .map(|(channel, user_id)| Membership { channel, user_id })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.connected_at.cmp(&b.connected_at).then(a.id.cmp(&b.id)));
        out
    }

    /// The channels someone subscribes to by name that `visible` accepts, with how many connections an event on
    /// each reaches, sorted by name.
    pub(crate) fn channels(&self, visible: impl Fn(&str) -> bool) -> Vec<ChannelSnapshot> {
        let idx = self.index();
        let mut out: Vec<ChannelSnapshot> = idx
            .named_channels()
            .filter(|c| visible(c))
            .map(|name| ChannelSnapshot {
                name: name.to_owned(),
                subscribers: idx.subscribers(name),
                members: None,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Adds `more` (other hubs' snapshots, one entry per hub and channel) to `list`: subscribers add up, and
    /// presence members join by `user_id` (a user on two hubs is one member). Sorted by name.
    pub(crate) fn merge_channels(
        list: &mut Vec<ChannelSnapshot>,
        more: impl IntoIterator<Item = ChannelSnapshot>,
    ) {
        for c in more {
            match list.iter_mut().find(|l| l.name == c.name) {
                Some(l) => {
                    l.subscribers += c.subscribers;
                    if let Some(theirs) = c.members {
                        let mine = l.members.get_or_insert_with(Vec::new);
                        for m in theirs {
                            if !mine.iter().any(|x| x.user_id == m.user_id) {
                                mine.push(m);
                            }
                        }
                    }
                }
                None => list.push(c),
            }
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Cuts off the connections `keys` (their transports close with `code`). Returns how many were open.
    pub(crate) fn terminate(&self, keys: &[u64], code: u16) -> usize {
        let idx = self.index();
        keys.iter()
            .filter_map(|k| idx.conns.get(k))
            .map(|c| c.cut_with(code))
            .count()
    }

    /// How many connections an event on `channel` reaches.
    pub(crate) fn subscriber_count(&self, channel: &str) -> usize {
        self.index().subscribers(channel)
    }

    pub(crate) fn stats(&self) -> BusStats {
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
            let except = ev.excluded();
            let mut n = 0;
            for (key, private_ok) in idx.matching(ev.channel()) {
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
                if except.is_some_and(|x| x == conn.info.id) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::PresenceMember;
    use serde_json::json;

    fn member(id: &str) -> PresenceMember {
        PresenceMember {
            user_id: id.into(),
            user_info: json!({"name": id}),
        }
    }

    #[test]
    fn merging_adds_up_subscribers_and_joins_members_by_user() {
        let mut list = vec![ChannelSnapshot {
            name: "presence-room".into(),
            subscribers: 2,
            members: Some(vec![member("ann")]),
        }];
        let theirs = [
            ChannelSnapshot {
                name: "presence-room".into(),
                subscribers: 3,
                members: Some(vec![member("ann"), member("bob")]),
            },
            ChannelSnapshot {
                name: "a".into(),
                subscribers: 1,
                members: None,
            },
        ];
        Bus::merge_channels(&mut list, theirs);
        let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "presence-room"]);
        assert_eq!(list[1].subscribers, 5);
        let users: Vec<&str> = list[1]
            .members
            .iter()
            .flatten()
            .map(|m| m.user_id.as_str())
            .collect();
        assert_eq!(users, ["ann", "bob"], "a user on two hubs is one member");
    }
}
