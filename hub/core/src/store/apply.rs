//! What each [`Write`] does inside its savepoint: the rows it writes and the events it logs with them (agents,
//! batches, questions, watch roots, published events, retention). Written once, over [`Rows`]: the handful of
//! statements each store runs inside its open transaction. The SQLite writer drives it on its thread (its
//! statements never wait); the PostgreSQL writer awaits it.

use serde_json::json;

use super::{Committed, Retention, Write};
use crate::error::{Error, Result};
use crate::idempotency::{KEY_TTL, KeptKey, KeyRecord, Outcome};
use crate::model::{Agent, Event, EventDraft, Source};
use crate::questions::{Answer, PendingQuestion};

/// The statements a write runs, inside the store's open transaction (and the write's savepoint).
pub(super) trait Rows {
    /// Logs an event with the next `seq`, and returns that `seq`.
    async fn insert_event(&mut self, e: &NewRow<'_>) -> Result<u64>;
    async fn write_agent(&mut self, a: &Agent, insert: bool) -> Result<()>;
    async fn get_agent(&mut self, id: &str) -> Result<Option<Agent>>;
    async fn delete_agent(&mut self, id: &str) -> Result<()>;
    async fn insert_question(&mut self, q: &PendingQuestion, options: Option<String>)
    -> Result<()>;
    /// Answers the question if it is still pending; how many rows changed.
    async fn answer_question(&mut self, id: &str, answer: &str, by: &str, at: &str) -> Result<u64>;
    /// Withdraws the question if it is still pending; how many rows changed.
    async fn withdraw_question(&mut self, id: &str) -> Result<u64>;
    async fn keep_watch(&mut self, root: &str, at: &str) -> Result<()>;
    async fn forget_watch(&mut self, root: &str) -> Result<()>;
    /// The highest `seq` ever given out, pruned or not.
    async fn last_seq(&mut self) -> Result<u64>;
    /// The first `seq` logged at or after `ts`.
    async fn first_seq_since(&mut self, ts: &str) -> Result<Option<u64>>;
    /// The log's pruned mark as recorded.
    async fn pruned_through(&mut self) -> Result<u64>;
    /// Deletes every event with `seq ≤ through`, records the mark, and returns how many went.
    async fn prune_through(&mut self, through: u64) -> Result<u64>;
    /// The idempotency key `id`, as kept, if it is.
    async fn kept_key(&mut self, id: &str) -> Result<Option<KeptKey>>;
    /// Keeps (or, for an expired one, replaces) an idempotency key with the outcome of its write.
    async fn keep_key(&mut self, k: &KeyRecord, outcome: &str) -> Result<()>;
    /// Forgets idempotency keys made at or before `before`; how many went.
    async fn forget_keys(&mut self, before: &str) -> Result<u64>;
}

/// An event row to insert.
pub(super) struct NewRow<'a> {
    pub(super) id: &'a str,
    pub(super) draft: &'a EventDraft,
    pub(super) data: &'a str,
    pub(super) ts: &'a str,
}

async fn insert_event(tx: &mut impl Rows, d: &EventDraft, ts: &str) -> Result<Event> {
    let id = uuid::Uuid::now_v7().to_string();
    let data = serde_json::to_string(&d.data).map_err(Error::internal)?;
    let seq = tx
        .insert_event(&NewRow {
            id: &id,
            draft: d,
            data: &data,
            ts,
        })
        .await?;
    Event::from_parts(
        seq,
        id,
        d.channel.clone(),
        d.event.clone(),
        data,
        d.source,
        ts.to_owned(),
    )
    .map(|e| e.replay_of(d.replay_of).except(d.except.as_deref()))
}

/// A write's one event.
async fn one_event(tx: &mut impl Rows, ev: &EventDraft, now: &str) -> Result<Committed> {
    Ok(Committed {
        events: vec![insert_event(tx, ev, now).await?],
        ..Default::default()
    })
}

/// Where `agents.bulk_created` goes (SPEC §3).
pub(crate) const BULK_CHANNEL: &str = "agents";

/// The agent's own event, on `agent:<id>`.
fn agent_event(agent: &Agent, event: &str, data: serde_json::Value, source: Source) -> EventDraft {
    EventDraft {
        channel: format!("agent:{}", agent.id),
        event: event.into(),
        data,
        source,
        except: None,
        replay_of: None,
    }
}

/// An agent write's outcome: the agent and its one event.
async fn agent_committed(
    tx: &mut impl Rows,
    agent: Agent,
    ev: &EventDraft,
    now: &str,
) -> Result<Committed> {
    Ok(Committed {
        events: vec![insert_event(tx, ev, now).await?],
        agent: Some(agent),
        ..Default::default()
    })
}

/// Now, as the stores write timestamps.
pub(super) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Applies one write inside the caller's savepoint. A keyed write whose key is kept (and alive) is not applied
/// again: it answers what the first one did. Otherwise its outcome is kept with the key, in this transaction.
pub(super) async fn apply(tx: &mut impl Rows, w: Write) -> Result<Committed> {
    let Write::Keyed(w, key) = w else {
        return apply_one(tx, w).await;
    };
    if let Some(first) = key.check(tx.kept_key(&key.id).await?)? {
        return Ok(Committed::replay(first));
    }
    let c = apply_one(tx, *w).await?;
    let outcome = Outcome {
        agent: c.agent.clone(),
        agents: c.agents.clone(),
        seqs: c.events.iter().map(Event::seq).collect(),
    };
    let text = serde_json::to_string(&outcome).map_err(Error::internal)?;
    tx.keep_key(&key, &text).await?;
    Ok(c)
}

async fn apply_one(tx: &mut impl Rows, w: Write) -> Result<Committed> {
    let now = now_rfc3339();
    match w {
        Write::Keyed(..) => Err(Error::internal("a keyed write inside a keyed write")),
        Write::CreateAgent(new, source) => {
            let agent = new.into_agent(uuid::Uuid::now_v7().to_string(), &now)?;
            tx.write_agent(&agent, true).await?;
            let data = json!({"id": agent.id, "name": agent.name, "version": agent.version});
            let ev = agent_event(&agent, "agent.created", data, source);
            agent_committed(tx, agent, &ev, &now).await
        }
        Write::CreateAgents(news, source) => {
            let mut agents = Vec::with_capacity(news.len());
            let mut events = Vec::with_capacity(news.len() + 1);
            for (i, new) in news.into_iter().enumerate() {
                let agent = new
                    .into_agent(uuid::Uuid::now_v7().to_string(), &now)
                    .map_err(|e| e.at_index(i))?;
                tx.write_agent(&agent, true).await?;
                let data = json!({"id": agent.id, "name": agent.name, "version": agent.version});
                let ev = agent_event(&agent, "agent.created", data, source);
                events.push(insert_event(tx, &ev, &now).await?);
                agents.push(agent);
            }
            let ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
            let bulk = EventDraft {
                channel: BULK_CHANNEL.into(),
                event: "agents.bulk_created".into(),
                data: json!({"count": agents.len(), "ids": ids}),
                source,
                except: None,
                replay_of: None,
            };
            events.push(insert_event(tx, &bulk, &now).await?);
            Ok(Committed {
                events,
                agents,
                ..Default::default()
            })
        }
        Write::UpdateAgent {
            id,
            patch,
            expected_version,
            source,
        } => {
            let mut agent = tx
                .get_agent(&id)
                .await?
                .ok_or_else(|| Error::not_found(format!("no agent with id {id}")))?;
            if let Some(expected) = expected_version.or(patch.expected_version)
                && expected != agent.version
            {
                return Err(Error::conflict(expected, agent.version));
            }
            let changed = patch.apply(&mut agent)?;
            agent.version += 1;
            agent.updated_at = now.clone();
            tx.write_agent(&agent, false).await?;
            let data = json!({"id": agent.id, "name": agent.name, "version": agent.version, "changed": changed});
            let ev = agent_event(&agent, "agent.updated", data, source);
            agent_committed(tx, agent, &ev, &now).await
        }
        Write::DeleteAgent { id, source } => {
            let agent = tx
                .get_agent(&id)
                .await?
                .ok_or_else(|| Error::not_found(format!("no agent with id {id}")))?;
            tx.delete_agent(&id).await?;
            let data = json!({"id": agent.id, "name": agent.name});
            let ev = agent_event(&agent, "agent.deleted", data, source);
            agent_committed(tx, agent, &ev, &now).await
        }
        Write::Publish(drafts) => {
            let mut events = Vec::with_capacity(drafts.len());
            for d in &drafts {
                events.push(insert_event(tx, d, &now).await?);
            }
            Ok(Committed {
                events,
                ..Default::default()
            })
        }
        Write::Prune(r) => prune(tx, r).await,
        Write::AskQuestion(q, ev) => {
            let options = q
                .options
                .as_ref()
                .map(|o| serde_json::to_string(o).map_err(Error::internal))
                .transpose()?;
            tx.insert_question(&q, options).await?;
            one_event(tx, &ev, &now).await
        }
        Write::AnswerQuestion {
            question_id,
            answer,
            event,
        } => {
            let Answer {
                answer,
                answered_by,
            } = answer;
            let text = serde_json::to_string(&answer).map_err(Error::internal)?;
            let n = tx
                .answer_question(&question_id, &text, answered_by.as_str(), &now)
                .await?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "no pending question {question_id:?}: never asked, answered already, or withdrawn"
                )));
            }
            one_event(tx, &event, &now).await
        }
        Write::WithdrawQuestion { question_id, event } => {
            if tx.withdraw_question(&question_id).await? == 0 {
                return Ok(Committed::default());
            }
            one_event(tx, &event, &now).await
        }
        Write::Watch {
            root,
            add,
            keep,
            source,
        } => {
            if keep && add {
                tx.keep_watch(&root, &now).await?;
            } else if !add {
                tx.forget_watch(&root).await?;
            }
            let ev = EventDraft {
                channel: crate::watcher::CHANNEL.into(),
                event: if add { "watch.added" } else { "watch.removed" }.into(),
                data: json!({"root": root}),
                source,
                except: None,
                replay_of: None,
            };
            one_event(tx, &ev, &now).await
        }
    }
}

/// Removes what retention no longer keeps and records how far it went.
/// Most events one prune write deletes.
pub(crate) const PRUNE_CHUNK: u64 = 2_000;

async fn prune(tx: &mut impl Rows, r: Retention) -> Result<Committed> {
    let last = tx.last_seq().await?;
    let by_count = last.saturating_sub(r.max_events);
    let cutoff =
        chrono::Utc::now() - chrono::Duration::from_std(r.max_age).unwrap_or(chrono::Duration::MAX);
    let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // The first event young enough to keep; everything before it is too old.
    let by_age = tx.first_seq_since(&cutoff).await?.map_or(last, |s| s - 1);
    let mark = tx.pruned_through().await?;
    // One chunk a write, so a large prune does not hold every other write up (the soak showed a minute's worth of
    // events, pruned at once, as a p99 spike); `Hub::prune` repeats until a chunk comes back short.
    let through = by_count.max(by_age).max(mark).min(mark + PRUNE_CHUNK);
    let pruned = tx.prune_through(through).await?;
    let expired =
        chrono::Utc::now() - chrono::Duration::from_std(KEY_TTL).unwrap_or(chrono::Duration::MAX);
    tx.forget_keys(&expired.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .await?;
    Ok(Committed {
        pruned,
        ..Default::default()
    })
}
