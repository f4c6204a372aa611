//! [`Rows`] on the PostgreSQL writer's open transaction (or the write's savepoint in it). Every event takes its
//! `seq` from the single-row counter in the same statement that inserts it; the counter row stays locked until
//! the transaction ends, so no other hub's writer can take the next `seq` before this one commits or rolls back.

use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::Transaction;

use crate::error::{Error, Result};
use crate::idempotency::{KeptKey, KeyRecord};
use crate::model::Agent;
use crate::questions::PendingQuestion;
use crate::store::apply::{NewRow, Rows};
use crate::store::row::{self, AGENT_COLS};

/// The transaction a write runs in, and this hub's pruned mark.
pub(super) struct PgRows<'a, 't> {
    pub(super) tx: &'a Transaction<'t>,
    pub(super) pruned_through: &'a AtomicU64,
}

fn seq(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(Error::internal)
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PgRows<'_, '_> {
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        let stmt = self.tx.prepare_cached(sql).await?;
        Ok(self.tx.execute(&stmt, params).await?)
    }
}

impl Rows for PgRows<'_, '_> {
    async fn insert_event(&mut self, e: &NewRow<'_>) -> Result<u64> {
        let d = e.draft;
        let stmt = self
            .tx
            .prepare_cached(
                "WITH s AS (UPDATE log_seq SET last = last + 1 RETURNING last)
                 INSERT INTO events (seq, id, channel, event, data, source, ts, replay_of, except_conn)
                 SELECT s.last, $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::bigint, $8::text
                 FROM s
                 RETURNING seq",
            )
            .await?;
        let replay_of = d.replay_of.map(signed);
        let r = self
            .tx
            .query_one(
                &stmt,
                &[
                    &e.id,
                    &d.channel,
                    &d.event,
                    &e.data,
                    &d.source.as_str(),
                    &e.ts,
                    &replay_of,
                    &d.except,
                ],
            )
            .await?;
        seq(r.get(0))
    }

    async fn write_agent(&mut self, a: &Agent, insert: bool) -> Result<()> {
        let config = serde_json::to_string(&a.config).map_err(Error::internal)?;
        let tags = serde_json::to_string(&a.tags).map_err(Error::internal)?;
        let sql = if insert {
            "INSERT INTO agents (id, name, description, model, status, config, tags, version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        } else {
            "UPDATE agents SET name = $2, description = $3, model = $4, status = $5, config = $6, tags = $7,
             version = $8, created_at = $9, updated_at = $10 WHERE id = $1"
        };
        self.execute(
            sql,
            &[
                &a.id,
                &a.name,
                &a.description,
                &a.model,
                &a.status,
                &config,
                &tags,
                &a.version,
                &a.created_at,
                &a.updated_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn get_agent(&mut self, id: &str) -> Result<Option<Agent>> {
        // FOR UPDATE: two hubs updating one agent take turns, so `version` counts every change once.
        let sql = format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1 FOR UPDATE");
        let stmt = self.tx.prepare_cached(&sql).await?;
        self.tx
            .query_opt(&stmt, &[&id])
            .await?
            .map(|r| row::agent(&r))
            .transpose()
    }

    async fn delete_agent(&mut self, id: &str) -> Result<()> {
        self.execute("DELETE FROM agents WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    async fn insert_question(
        &mut self,
        q: &PendingQuestion,
        options: Option<String>,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO questions (question_id, question, channel, options, key, via, asked_at, expires_at, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')",
            &[
                &q.question_id,
                &q.question,
                &q.channel,
                &options,
                &q.key,
                &q.via.as_str(),
                &q.asked_at,
                &q.expires_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn answer_question(&mut self, id: &str, answer: &str, by: &str, at: &str) -> Result<u64> {
        self.execute(
            "UPDATE questions SET state = 'answered', answer = $2, answered_by = $3, answered_at = $4
             WHERE question_id = $1 AND state = 'pending'",
            &[&id, &answer, &by, &at],
        )
        .await
    }

    async fn withdraw_question(&mut self, id: &str) -> Result<u64> {
        self.execute(
            "UPDATE questions SET state = 'withdrawn' WHERE question_id = $1 AND state = 'pending'",
            &[&id],
        )
        .await
    }

    async fn keep_watch(&mut self, root: &str, at: &str) -> Result<()> {
        self.execute(
            "INSERT INTO watches (root, added_at) VALUES ($1, $2) ON CONFLICT (root) DO NOTHING",
            &[&root, &at],
        )
        .await?;
        Ok(())
    }

    async fn forget_watch(&mut self, root: &str) -> Result<()> {
        self.execute("DELETE FROM watches WHERE root = $1", &[&root])
            .await?;
        Ok(())
    }

    async fn last_seq(&mut self) -> Result<u64> {
        let r = self.tx.query_one("SELECT last FROM log_seq", &[]).await?;
        seq(r.get(0))
    }

    async fn first_seq_since(&mut self, ts: &str) -> Result<Option<u64>> {
        self.tx
            .query_opt(
                "SELECT seq FROM events WHERE ts >= $1 ORDER BY seq LIMIT 1",
                &[&ts],
            )
            .await?
            .map(|r| seq(r.get(0)))
            .transpose()
    }

    async fn pruned_through(&mut self) -> Result<u64> {
        let r = self
            .tx
            .query_one("SELECT value FROM meta WHERE key = 'pruned_through'", &[])
            .await?;
        let mark: u64 = r.get::<_, String>(0).parse().unwrap_or(0);
        Ok(mark.max(self.pruned_through.load(Ordering::Acquire)))
    }

    async fn prune_through(&mut self, through: u64) -> Result<u64> {
        let pruned = self
            .execute("DELETE FROM events WHERE seq <= $1", &[&signed(through)])
            .await?;
        self.execute(
            // Another hub may have pruned further meanwhile: the mark only rises.
            "UPDATE meta SET value = GREATEST(value::bigint, $1::bigint)::text WHERE key = 'pruned_through'",
            &[&signed(through)],
        )
        .await?;
        self.pruned_through.fetch_max(through, Ordering::AcqRel);
        Ok(pruned)
    }

    async fn kept_key(&mut self, id: &str) -> Result<Option<KeptKey>> {
        let stmt = self
            .tx
            .prepare_cached("SELECT body, outcome, created_at FROM idempotency_keys WHERE id = $1")
            .await?;
        Ok(self.tx.query_opt(&stmt, &[&id]).await?.map(|r| KeptKey {
            body: r.get(0),
            outcome: r.get(1),
            created_at: r.get(2),
        }))
    }

    async fn keep_key(&mut self, k: &KeyRecord, outcome: &str) -> Result<()> {
        self.execute(
            "INSERT INTO idempotency_keys (id, body, outcome, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET body = $2, outcome = $3, created_at = $4",
            &[&k.id, &k.body, &outcome, &k.at],
        )
        .await?;
        Ok(())
    }

    async fn forget_keys(&mut self, before: &str) -> Result<u64> {
        self.execute(
            "DELETE FROM idempotency_keys WHERE created_at <= $1",
            &[&before],
        )
        .await
    }
}
