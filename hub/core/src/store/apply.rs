//! What each [`Write`] does inside its savepoint: the rows it writes and the events it logs with them (agents,
//! batches, questions, watch roots, published events, retention). The writer thread (`writer.rs`) runs these one
//! savepoint each and commits the batch.

use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::Retention;
use super::schema::{get_agent, now_rfc3339};
use super::writer::{Committed, Write};
use crate::error::{Error, Result};
use crate::model::{Agent, Event, EventDraft, Source};

fn insert_event(tx: &Connection, d: &EventDraft, ts: &str) -> Result<Event> {
    let id = uuid::Uuid::now_v7().to_string();
    let data = serde_json::to_string(&d.data).map_err(Error::internal)?;
    tx.prepare_cached(
        "INSERT INTO events (id, channel, event, data, source, ts, replay_of) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![id, d.channel, d.event, data, d.source.as_str(), ts, d.replay_of])?;
    let seq = tx.last_insert_rowid() as u64;
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

fn write_agent(tx: &Connection, a: &Agent, insert: bool) -> Result<()> {
    let config = serde_json::to_string(&a.config).map_err(Error::internal)?;
    let tags = serde_json::to_string(&a.tags).map_err(Error::internal)?;
    let sql = if insert {
        "INSERT INTO agents (id, name, description, model, status, config, tags, version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    } else {
        "UPDATE agents SET name = ?2, description = ?3, model = ?4, status = ?5, config = ?6, tags = ?7,
         version = ?8, created_at = ?9, updated_at = ?10 WHERE id = ?1"
    };
    tx.prepare_cached(sql)?.execute(params![
        a.id,
        a.name,
        a.description,
        a.model,
        a.status,
        config,
        tags,
        a.version,
        a.created_at,
        a.updated_at
    ])?;
    Ok(())
}

/// The agent's own event, on `agent:<id>`.
/// A write's one event.
fn one_event(tx: &Connection, ev: &EventDraft, now: &str) -> Result<Committed> {
    Ok(Committed {
        events: vec![insert_event(tx, ev, now)?],
        ..Default::default()
    })
}

/// Where `agents.bulk_created` goes (SPEC §3).
pub(crate) const BULK_CHANNEL: &str = "agents";

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
fn agent_committed(tx: &Connection, agent: Agent, ev: &EventDraft, now: &str) -> Result<Committed> {
    Ok(Committed {
        events: vec![insert_event(tx, ev, now)?],
        agent: Some(agent),
        ..Default::default()
    })
}

/// Applies one write inside the caller's savepoint.
pub(super) fn apply(tx: &Connection, w: Write, pruned_through: &AtomicU64) -> Result<Committed> {
    let now = now_rfc3339();
    match w {
        Write::CreateAgent(new, source) => {
            let agent = new.into_agent(uuid::Uuid::now_v7().to_string(), &now)?;
            write_agent(tx, &agent, true)?;
            let data = json!({"id": agent.id, "name": agent.name, "version": agent.version});
            let ev = agent_event(&agent, "agent.created", data, source);
            agent_committed(tx, agent, &ev, &now)
        }
        Write::CreateAgents(news, source) => {
            let mut agents = Vec::with_capacity(news.len());
            let mut events = Vec::with_capacity(news.len() + 1);
            for (i, new) in news.into_iter().enumerate() {
                let agent = new
                    .into_agent(uuid::Uuid::now_v7().to_string(), &now)
                    .map_err(|e| e.at_index(i))?;
                write_agent(tx, &agent, true)?;
                let data = json!({"id": agent.id, "name": agent.name, "version": agent.version});
                events.push(insert_event(
                    tx,
                    &agent_event(&agent, "agent.created", data, source),
                    &now,
                )?);
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
            events.push(insert_event(tx, &bulk, &now)?);
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
            let mut agent = get_agent(tx, &id)?
                .ok_or_else(|| Error::not_found(format!("no agent with id {id}")))?;
            if let Some(expected) = expected_version.or(patch.expected_version)
                && expected != agent.version
            {
                return Err(Error::conflict(expected, agent.version));
            }
            let changed = patch.apply(&mut agent)?;
            agent.version += 1;
            agent.updated_at = now.clone();
            write_agent(tx, &agent, false)?;
            let data = json!({"id": agent.id, "name": agent.name, "version": agent.version, "changed": changed});
            let ev = agent_event(&agent, "agent.updated", data, source);
            agent_committed(tx, agent, &ev, &now)
        }
        Write::DeleteAgent { id, source } => {
            let agent = get_agent(tx, &id)?
                .ok_or_else(|| Error::not_found(format!("no agent with id {id}")))?;
            tx.prepare_cached("DELETE FROM agents WHERE id = ?1")?
                .execute([&id])?;
            let data = json!({"id": agent.id, "name": agent.name});
            let ev = agent_event(&agent, "agent.deleted", data, source);
            agent_committed(tx, agent, &ev, &now)
        }
        Write::Publish(drafts) => {
            let events = drafts
                .iter()
                .map(|d| insert_event(tx, d, &now))
                .collect::<Result<Vec<_>>>()?;
            Ok(Committed {
                events,
                ..Default::default()
            })
        }
        Write::Prune(r) => prune(tx, r, pruned_through),
        Write::AskQuestion(q, ev) => {
            let options = q
                .options
                .as_ref()
                .map(|o| serde_json::to_string(o).map_err(Error::internal))
                .transpose()?;
            tx.prepare_cached(
                "INSERT INTO questions (question_id, question, channel, options, key, via, asked_at, expires_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending')",
            )?
            .execute(params![
                q.question_id,
                q.question,
                q.channel,
                options,
                q.key,
                q.via.as_str(),
                q.asked_at,
                q.expires_at
            ])?;
            one_event(tx, &ev, &now)
        }
        Write::AnswerQuestion {
            question_id,
            answer,
            event,
        } => {
            let text = serde_json::to_string(&answer.answer).map_err(Error::internal)?;
            let n = tx
                .prepare_cached(
                    "UPDATE questions SET state = 'answered', answer = ?2, answered_by = ?3, answered_at = ?4
                     WHERE question_id = ?1 AND state = 'pending'",
                )?
                .execute(params![question_id, text, answer.answered_by.as_str(), now])?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "no pending question {question_id:?}: never asked, answered already, or withdrawn"
                )));
            }
            one_event(tx, &event, &now)
        }
        Write::WithdrawQuestion { question_id, event } => {
            let n = tx
                .prepare_cached(
                    "UPDATE questions SET state = 'withdrawn' WHERE question_id = ?1 AND state = 'pending'",
                )?
                .execute([&question_id])?;
            if n == 0 {
                return Ok(Committed::default());
            }
            one_event(tx, &event, &now)
        }
        Write::Watch {
            root,
            add,
            keep,
            source,
        } => {
            if keep && add {
                tx.prepare_cached(
                    "INSERT INTO watches (root, added_at) VALUES (?1, ?2) ON CONFLICT (root) DO NOTHING",
                )?
                .execute(params![root, now])?;
            } else if !add {
                tx.prepare_cached("DELETE FROM watches WHERE root = ?1")?
                    .execute([&root])?;
            }
            let ev = EventDraft {
                channel: crate::watcher::CHANNEL.into(),
                event: if add { "watch.added" } else { "watch.removed" }.into(),
                data: json!({"root": root}),
                source,
                except: None,
                replay_of: None,
            };
            one_event(tx, &ev, &now)
        }
    }
}

/// Removes what retention no longer keeps and records how far it went.
fn prune(tx: &Connection, r: Retention, pruned_through: &AtomicU64) -> Result<Committed> {
    let last: u64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
    let by_count = last.saturating_sub(r.max_events);
    let cutoff =
        chrono::Utc::now() - chrono::Duration::from_std(r.max_age).unwrap_or(chrono::Duration::MAX);
    let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // The first event young enough to keep; everything before it is too old.
    let first_young: Option<u64> = tx
        .query_row(
            "SELECT seq FROM events WHERE ts >= ?1 ORDER BY seq LIMIT 1",
            [&cutoff],
            |r| r.get(0),
        )
        .optional()?;
    let by_age = first_young.map_or(last, |s| s - 1);
    let through = by_count
        .max(by_age)
        .max(pruned_through.load(Ordering::Acquire));
    let pruned = tx.execute("DELETE FROM events WHERE seq <= ?1", [through])? as u64;
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'pruned_through'",
        [through.to_string()],
    )?;
    pruned_through.fetch_max(through, Ordering::AcqRel);
    Ok(Committed {
        pruned,
        ..Default::default()
    })
}
