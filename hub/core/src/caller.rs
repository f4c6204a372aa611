//! [`Caller`]: one caller (a [`Principal`], and the [`Source`] its changes are marked with) and every operation
//! that reads or changes the hub, each checked against the caller here.
//!
//! The Pusher operations (signing channel subscriptions and sign-ins, terminating a user) are in `caller/pusher.rs`;
//! replaying a logged event is in `caller/log.rs`; the file watcher's roots are in `caller/watch.rs`; asking and
//! answering questions is in `caller/ask.rs`.
//!
//! This is the only way in. A transport authenticates once per request or connection, asks the hub for
//! `hub.caller(principal, source)`, and translates frames into calls on it; it never checks a permission itself.
//! So every transport, present and future, gets the same rules (SPEC §10) by construction:
//!
//! | operation | needs |
//! |---|---|
//! | read agents, subscribe to or read a channel | the channel in the caller's reach: anything for the owner; for a JWT what its `channels` claim covers (everything when absent), plus `global` and `user:<sub>`; for an anonymous caller everything but `private-`/`presence-` channels. A pattern reaches private channels only for the owner or when the pattern is itself private (`private-team`, `private-*`) |
//! | create an agent | publish on `agent:*` |
//! | change or delete an agent | publish on `agent:<id>` |
//! | publish, ask a question | publish on the channel |
//! | see a pending question | its channel in reach (otherwise it does not exist) |
//! | answer a question | its channel in reach, and publish on it |
//! | the hub token, terminating a user's connections, the file watcher's roots | the owner only |
//! | a Pusher channel signature (`/pusher/auth`) | read access to the channel; for a presence channel as a JWT with a `sub`, that user only |
//! | a Pusher sign-in signature (`/pusher/user-auth`) | the owner (any user), or a JWT as its own `sub` |
//! | a signed Pusher HTTP API request | the app secret: the owner |
//!
//! On a Pusher connection a `private-`/`presence-` subscription is allowed by its signature alone, and a client
//! event (`client-…`) by being subscribed there ([`SessionHandle::subscribe_signed`],
//! [`SessionHandle::client_event`]); the signature was only made after the check above, or by the app's own
//! backend, which holds the secret. Event names starting `presence.`, `pusher:` or `pusher_internal:` are the
//! hub's own: nobody publishes them.

use std::future::Future;
use std::sync::Arc;

use crate::auth::{Principal, Secret};
use bytes::Bytes;

use crate::bus::{
    Bus, ChannelSnapshot, ClientInfo, ClientSnapshot, Resume, Session, SessionHandle, Subscribed,
};
use crate::error::{Error, Result};
use crate::hub::{Hub, Published};
use crate::idempotency::{CallerKey, KEY_TTL, KeyRecord, RequestKey};
use crate::limits::{DEFAULT_EVENTS_PAGE, MAX_AGENTS_PAGE, MAX_BATCH_AGENTS, MAX_EVENTS_PAGE};
use crate::model::{
    Agent, AgentPage, AgentPatch, AgentQuery, EventDraft, EventsPage, EventsQuery, NewAgent,
    NewEvent, Pattern, Reach, Scope, Source, check_channel,
};
use crate::store::{Committed, Write};

mod ask;
mod log;
mod pusher;
mod watch;

/// Longest question, in characters.
const MAX_QUESTION_CHARS: usize = 4000;

/// A caller of the hub: who it is and what it causes, and the `Idempotency-Key` of its request, if it sent one.
/// Cheap to clone.
#[derive(Clone)]
pub struct Caller {
    hub: Hub,
    principal: Principal,
    source: Source,
    key: Option<Arc<CallerKey>>,
}

fn agent_channel(id: &str) -> Pattern {
    Pattern::Exact(format!("agent:{id}"))
}

fn all_agents() -> Pattern {
    Pattern::Prefix("agent:".into())
}

impl Caller {
    pub(crate) fn new(hub: Hub, principal: Principal, source: Source) -> Self {
        Caller {
            hub,
            principal,
            source,
            key: None,
        }
    }

    /// This caller, for one request sent with an `Idempotency-Key` (SPEC §3): its write is done once. A retry with
    /// the same key (from the same caller, on the same method and path) and the same body gets the first outcome
    /// and changes nothing; with another body it is 422 `idempotency_conflict`; while the first is still being
    /// written, 409 `idempotency_in_flight`. The key is kept with the write, in its transaction, for 24 hours.
    pub fn with_idempotency_key(&self, key: RequestKey) -> Caller {
        Caller {
            key: Some(CallerKey::new(&self.principal, key)),
            ..self.clone()
        }
    }

    /// Whether this caller's keyed write was done before, so what it answered is the first outcome again.
    pub fn replayed(&self) -> bool {
        self.key.as_ref().is_some_and(|k| k.replayed())
    }

    /// The record of this caller's key as the writer checks it, stamped with the hub's clock.
    fn key_record(&self, key: &CallerKey) -> Result<KeyRecord> {
        let now = self.hub.now();
        let ttl = chrono::Duration::from_std(KEY_TTL).map_err(Error::internal)?;
        let stamp = |t: chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        Ok(KeyRecord {
            id: key.id.clone(),
            body: key.body.clone(),
            at: stamp(now),
            expired_by: stamp(now - ttl),
        })
    }

    /// For a keyed caller whose write was done before: what it answered, read before any check that the first write
    /// changed the answer of (a question answered once is no longer pending). The writer checks again.
    ///
    /// # Errors
    /// 422 `idempotency_conflict` for the same key with another body.
    pub(crate) async fn done_before(&self) -> Result<Option<Committed>> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let kept = self.hub.reader().kept_key(key.id.clone()).await?;
        let first = self.key_record(key)?.check(kept)?;
        Ok(first.map(|o| {
            key.mark_replayed();
            Committed::replay(o)
        }))
    }

    /// Hands `w` to the writer; with a key, as a keyed write, claimed on this hub while it is written.
    pub(crate) async fn write(&self, w: Write) -> Result<Committed> {
        let Some(key) = &self.key else {
            return self.hub.write(w).await;
        };
        let _claim = self.hub.keys_in_flight().claim(&key.id)?;
        let record = self.key_record(key)?;
        let c = self.hub.write(Write::Keyed(Box::new(w), record)).await?;
        if c.replayed.is_some() {
            key.mark_replayed();
        }
        Ok(c)
    }

    /// Commits one checked event (keyed, if this caller is) and hands it to subscribers.
    pub(crate) async fn commit(&self, draft: EventDraft) -> Result<Published> {
        Published::of(&self.write(Write::Publish(vec![draft])).await?)
    }

    /// Who is calling.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// What this caller's changes are marked with.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The hub, for its status (version, uptime, counts); nothing on it reads or changes agents or events.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// May this caller subscribe to `p`? On success, whether the subscription includes private channels.
    pub(crate) fn may_subscribe(&self, p: &Pattern) -> Result<bool> {
        self.principal.may_subscribe(p)
    }

    /// One page of agents.
    ///
    /// # Errors
    /// 403 without read access to `agent:*`; 422 for a bad limit or cursor.
    pub async fn list_agents(&self, q: AgentQuery) -> Result<AgentPage> {
        self.principal.may_subscribe(&all_agents())?;
        if !(1..=MAX_AGENTS_PAGE).contains(&q.page_size()) {
            return Err(Error::invalid(
                "limit",
                format_args!("must be 1–{MAX_AGENTS_PAGE}"),
            ));
        }
        self.hub.reader().list_agents(q).await
    }

    /// One agent.
    ///
    /// # Errors
    /// 403 without read access to `agent:<id>`; 404 unknown id.
    pub async fn get_agent(&self, id: &str) -> Result<Agent> {
        self.principal.may_subscribe(&agent_channel(id))?;
        self.hub
            .reader()
            .get_agent(id.to_owned())
            .await?
            .ok_or_else(|| Error::not_found(format!("no agent with id {id}")))
    }

    /// Creates an agent; `agent.created` is published on `agent:<id>` in the same transaction.
    ///
    /// # Errors
    /// 403 without publish on `agent:*`; 422 naming a bad field.
    pub async fn create_agent(&self, new: NewAgent) -> Result<Agent> {
        self.principal.may_publish(&all_agents())?;
        let c = self.write(Write::CreateAgent(new, self.source)).await?;
        c.agent
            .ok_or_else(|| Error::internal("create returned no agent"))
    }

    /// Creates up to [`MAX_BATCH_AGENTS`] agents in one transaction, all or none: an `agent.created` each, then
    /// `agents.bulk_created {count, ids}` on `agents`.
    ///
    /// # Errors
    /// 403 without publish on `agent:*`; 422 for an empty or oversized batch, or naming the first bad item as
    /// `[index].field`.
    pub async fn create_agents(&self, new: Vec<NewAgent>) -> Result<Vec<Agent>> {
        self.principal.may_publish(&all_agents())?;
        if new.is_empty() || new.len() > MAX_BATCH_AGENTS {
            return Err(Error::invalid(
                "agents",
                format_args!("a batch is 1–{MAX_BATCH_AGENTS} agents, got {}", new.len()),
            ));
        }
        Ok(self
            .write(Write::CreateAgents(new, self.source))
            .await?
            .agents)
    }

    /// Applies a merge-patch; `agent.updated` is published in the same transaction. `if_match` (from `If-Match`)
    /// wins over the patch's `expected_version`.
    ///
    /// # Errors
    /// 403 without publish on `agent:<id>`; 404 unknown id; 412 version mismatch; 422 bad field.
    pub async fn update_agent(
        &self,
        id: &str,
        patch: AgentPatch,
        if_match: Option<i64>,
    ) -> Result<Agent> {
        self.principal.may_publish(&agent_channel(id))?;
        let w = Write::UpdateAgent {
            id: id.to_owned(),
            patch,
            expected_version: if_match,
            source: self.source,
        };
        let c = self.write(w).await?;
        c.agent
            .ok_or_else(|| Error::internal("update returned no agent"))
    }

    /// Deletes an agent and returns it as it was; `agent.deleted` is published in the same transaction.
    ///
    /// # Errors
    /// 403 without publish on `agent:<id>`; 404 unknown id.
    pub async fn delete_agent(&self, id: &str) -> Result<Agent> {
        self.principal.may_publish(&agent_channel(id))?;
        let w = Write::DeleteAgent {
            id: id.to_owned(),
            source: self.source,
        };
        let c = self.write(w).await?;
        c.agent
            .ok_or_else(|| Error::internal("delete returned no agent"))
    }

    /// Validates `ev` and checks the caller may publish it.
    fn draft(&self, ev: NewEvent) -> Result<EventDraft> {
        if ["presence.", "pusher:", "pusher_internal:"]
            .iter()
            .any(|p| ev.event.starts_with(p))
        {
            return Err(Error::invalid(
                "event",
                "names starting presence., pusher: or pusher_internal: are the hub's own",
            ));
        }
        let draft = EventDraft::new(ev, self.source)?;
        self.principal
            .may_publish(&Pattern::Exact(draft.channel.clone()))?;
        Ok(draft)
    }

    /// Publishes one event. Everything but the commit is checked now; the future commits and hands it to
    /// subscribers, so a socket transport can pipeline publishes and acknowledge them in order.
    ///
    /// # Errors
    /// The future fails with 403 without publish on the channel, 422 naming a bad field, 413 for data over
    /// 64 KiB, or `Unavailable` while shutting down.
    pub fn publish(
        &self,
        ev: NewEvent,
    ) -> impl Future<Output = Result<Published>> + Send + 'static + use<> {
        let draft = self.draft(ev);
        let this = self.clone();
        async move { this.commit(draft?).await }
    }

    /// [`Caller::publish`], except that connection `except` (a Pusher `socket_id`) does not get the event live.
    pub fn publish_except(
        &self,
        ev: NewEvent,
        except: Option<String>,
    ) -> impl Future<Output = Result<Published>> + Send + 'static {
        let draft = self.draft(ev).map(|mut d| {
            d.except = except;
            d
        });
        let this = self.clone();
        async move { this.commit(draft?).await }
    }

    /// The scope of a comma-separated list of patterns (`agent:*,project:42`), each checked: a read of several
    /// merges them in `seq` order.
    ///
    /// # Errors
    /// 422 for a bad or empty pattern; 403 for one out of reach.
    fn scope_of(&self, list: &str) -> Result<Scope> {
        let reach = list
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| {
                let pattern = Pattern::parse(c)?;
                let private_ok = self.principal.may_subscribe(&pattern)?;
                Ok(Reach {
                    pattern,
                    private_ok,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if reach.is_empty() {
            return Err(Error::invalid("channel", "names no channel or pattern"));
        }
        Ok(Scope(reach))
    }

    /// A page of the log: after `since` oldest first, or the newest `limit`. Without a channel, everything the
    /// caller may read; with several (comma-separated), their events merged in `seq` order.
    ///
    /// # Errors
    /// 403 for a channel out of reach; 422 for a bad pattern or limit.
    pub async fn events(&self, q: EventsQuery) -> Result<EventsPage> {
        let limit = q.limit.unwrap_or(DEFAULT_EVENTS_PAGE);
        if !(1..=MAX_EVENTS_PAGE).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format_args!("must be 1–{MAX_EVENTS_PAGE}"),
            ));
        }
        let scope = match q.channel.as_deref() {
            None => self.principal.scope(),
            Some(list) => self.scope_of(list)?,
        };
        // Read before the query, so a client that resumes from `last_seq` misses nothing committed meanwhile.
        let last_seq = self.hub.last_seq();
        let log = self.hub.reader();
        let events = match (q.since, q.until) {
            (None, None) => log.latest_events(scope, limit).await?,
            (since, until) => log.events(scope, since.unwrap_or(0), until, limit).await?,
        };
        Ok(EventsPage {
            events,
            last_seq,
            epoch: log.epoch().to_owned(),
        })
    }

    /// Opens a client connection. It counts against the connection cap. `setup` runs first, on the registered
    /// session: the transport queues its greeting. Then the session subscribes to `channels` (what the client
    /// asked for at connect time), `global` and (for a JWT with a `sub`) `user:<sub>`, all at once: with
    /// `resume.since`, one replay covers every one of them in `seq` order (SPEC §4, one order for a resume).
    /// `ack` makes the transport's acknowledgement of each of `channels` (not of the joins); it is queued ahead
    /// of the replay. An error closes the session again.
    ///
    /// # Errors
    /// `Unavailable` (`too_many_connections`) at the connection cap, 403 for a channel out of reach, 422 past the
    /// subscription limit, or what `setup` returned.
    pub fn open(
        &self,
        info: ClientInfo,
        channels: &[Pattern],
        resume: &Resume,
        setup: impl FnOnce(&SessionHandle) -> Result<()>,
        mut ack: impl FnMut(&Pattern, Subscribed) -> Option<Bytes>,
    ) -> Result<Session> {
        let session = self.hub.bus().connect(self.clone(), info)?;
        setup(session.handle())?;
        let asked = channels.len();
        let all: Vec<Pattern> = channels
            .iter()
            .cloned()
            .chain(self.principal.joins())
            .collect();
        let mut n = 0;
        session.subscribe_all(&all, resume, |p, s| {
            n += 1;
            if n <= asked { ack(p, s) } else { None }
        })?;
        Ok(session)
    }

    /// Opens a connection that follows `pattern` (everything the caller may read when `None`) and joins nothing
    /// else: for the hub's own watchers of changes, such as MCP's resource notifications and `wait_for_event`. It
    /// counts against the connection cap like any other.
    ///
    /// # Errors
    /// `Unavailable` at the connection cap; 403 for a pattern out of reach.
    pub fn follow(
        &self,
        info: ClientInfo,
        pattern: Option<Pattern>,
        resume: &Resume,
    ) -> Result<Session> {
        let session = self.hub.bus().connect(self.clone(), info)?;
        let patterns = match pattern {
            Some(p) => vec![p],
            None => self
                .principal
                .scope()
                .0
                .into_iter()
                .map(|r| r.pattern)
                .collect(),
        };
        session.subscribe_all(&patterns, resume, |_, _| None)?;
        Ok(session)
    }

    /// The occupied channels this caller may see: every channel someone subscribes to by name, with how many
    /// connections an event on it reaches. With hubs sharing a PostgreSQL store, the counts and presence members
    /// of every live hub (as shared at most a couple of seconds ago).
    pub fn channels(&self) -> Vec<ChannelSnapshot> {
        let mut list = self.hub.local_channels(|c| self.principal.sees(c));
        let peers = self.hub.reader().peer_channels();
        Bus::merge_channels(
            &mut list,
            peers.into_iter().filter(|c| self.principal.sees(&c.name)),
        );
        list
    }

    /// One channel's subscriber count.
    ///
    /// # Errors
    /// 422 for a bad name; 403 for a channel out of reach.
    pub fn channel(&self, name: &str) -> Result<ChannelSnapshot> {
        check_channel("name", name)?;
        self.principal
            .may_subscribe(&Pattern::Exact(name.to_owned()))?;
        let mut one = vec![ChannelSnapshot {
            name: name.to_owned(),
            subscribers: self.hub.bus().subscriber_count(name),
            members: name
                .starts_with("presence-")
                .then(|| self.hub.presence().members(name)),
        }];
        let peers = self.hub.reader().peer_channels();
        Bus::merge_channels(&mut one, peers.into_iter().filter(|c| c.name == name));
        Ok(one.remove(0))
    }

    /// The connected clients, showing the subscriptions and presence memberships this caller may see.
    pub fn clients(&self) -> Vec<ClientSnapshot> {
        self.hub.bus().clients(self.hub.presence(), |p| {
            self.principal.may_subscribe(p).is_ok()
        })
    }

    /// The hub token, for the owner only (SPEC §10: the hub's own window, and callers that presented it).
    pub fn hub_token(&self) -> Option<&Secret> {
        self.principal
            .may_read_token()
            .then(|| self.hub.auth().token())
    }
}
