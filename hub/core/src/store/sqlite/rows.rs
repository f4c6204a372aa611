//! [`Rows`] on the SQLite writer's open transaction. Every statement is synchronous, so the futures
//! [`apply`](crate::store::apply) makes of them are ready at their first poll; the writer thread polls them once.

use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OptionalExtension, params};

use super::schema;
use crate::error::Result;
use crate::idempotency::{KeptKey, KeyRecord};
use crate::model::Agent;
use crate::questions::PendingQuestion;
use crate::store::apply::{NewRow, Rows};

/// The writer's connection, inside its transaction, and the pruned mark it raises.
pub(super) struct SqliteRows<'a> {
    pub(super) tx: &'a Connection,
    pub(super) pruned_through: &'a AtomicU64,
}

impl Rows for SqliteRows<'_> {
    async fn insert_event(&mut self, e: &NewRow<'_>) -> Result<u64> {
        let d = e.draft;
        self.tx.prepare_cached(
            "INSERT INTO events (id, channel, event, data, source, ts, replay_of) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![e.id, d.channel, d.event, e.data, d.source.as_str(), e.ts, d.replay_of])?;
        Ok(self.tx.last_insert_rowid() as u64)
    }

    async fn write_agent(&mut self, a: &Agent, insert: bool) -> Result<()> {
        let config = serde_json::to_string(&a.config).map_err(crate::error::Error::internal)?;
        let tags = serde_json::to_string(&a.tags).map_err(crate::error::Error::internal)?;
        let sql = if insert {
            "INSERT INTO agents (id, name, description, model, status, config, tags, version, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        } else {
            "UPDATE agents SET name = ?2, description = ?3, model = ?4, status = ?5, config = ?6, tags = ?7,
             version = ?8, created_at = ?9, updated_at = ?10 WHERE id = ?1"
        };
        self.tx.prepare_cached(sql)?.execute(params![
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

    async fn get_agent(&mut self, id: &str) -> Result<Option<Agent>> {
        schema::get_agent(self.tx, id)
    }

    async fn delete_agent(&mut self, id: &str) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM agents WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    async fn insert_question(
        &mut self,
        q: &PendingQuestion,
        options: Option<String>,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
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
        Ok(())
    }

    async fn answer_question(&mut self, id: &str, answer: &str, by: &str, at: &str) -> Result<u64> {
        Ok(self
            .tx
            .prepare_cached(
                "UPDATE questions SET state = 'answered', answer = ?2, answered_by = ?3, answered_at = ?4
                 WHERE question_id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, answer, by, at])? as u64)
    }

    async fn withdraw_question(&mut self, id: &str) -> Result<u64> {
        Ok(self
            .tx
            .prepare_cached(
                "UPDATE questions SET state = 'withdrawn' WHERE question_id = ?1 AND state = 'pending'",
            )?
            .execute([id])? as u64)
    }

    async fn keep_watch(&mut self, root: &str, at: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO watches (root, added_at) VALUES (?1, ?2) ON CONFLICT (root) DO NOTHING",
            )?
            .execute(params![root, at])?;
        Ok(())
    }

    async fn forget_watch(&mut self, root: &str) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM watches WHERE root = ?1")?
            .execute([root])?;
        Ok(())
    }

    async fn last_seq(&mut self) -> Result<u64> {
        schema::last_seq(self.tx)
    }

    async fn first_seq_since(&mut self, ts: &str) -> Result<Option<u64>> {
        Ok(self
            .tx
            .query_row(
                "SELECT seq FROM events WHERE ts >= ?1 ORDER BY seq LIMIT 1",
                [ts],
                |r| r.get(0),
            )
            .optional()?)
    }

    async fn pruned_through(&mut self) -> Result<u64> {
        Ok(self.pruned_through.load(Ordering::Acquire))
    }

    async fn prune_through(&mut self, through: u64) -> Result<u64> {
        let pruned = self
            .tx
            .execute("DELETE FROM events WHERE seq <= ?1", [through])? as u64;
        self.tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'pruned_through'",
            [through.to_string()],
        )?;
        self.pruned_through.fetch_max(through, Ordering::AcqRel);
        Ok(pruned)
    }

    async fn kept_key(&mut self, id: &str) -> Result<Option<KeptKey>> {
        schema::kept_key(self.tx, id)
    }

    async fn keep_key(&mut self, k: &KeyRecord, outcome: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO idempotency_keys (id, body, outcome, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET body = ?2, outcome = ?3, created_at = ?4",
            )?
            .execute(params![k.id, k.body, outcome, k.at])?;
        Ok(())
    }

    async fn forget_keys(&mut self, before: &str) -> Result<u64> {
        Ok(self
            .tx
            .prepare_cached("DELETE FROM idempotency_keys WHERE created_at <= ?1")?
            .execute([before])? as u64)
    }
}
