//! [`PgReader`]: the read side of the PostgreSQL store, on the hub's connection pool. Agents are paged by `pos`,
//! an identity column in creation order (SQLite's `rowid`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;

use crate::bus::ChannelSnapshot;
use crate::error::{Error, Result};
use crate::idempotency::KeptKey;
use crate::model::{Agent, AgentPage, AgentQuery, Event, Scope};
use crate::questions::{PendingQuestion, QuestionRow};
use crate::store::LogReader;
use crate::store::row::{
    self, AGENT_COLS, EVENT_COLS, Placeholder, QUESTION_COLS, like_pattern, scope_sql,
};

type Param = Box<dyn ToSql + Sync + Send>;

pub(super) struct PgReader {
    pool: Pool,
    epoch: String,
    /// Raised by this hub's prunes and by the tail, which reads the mark other hubs' prunes leave.
    pruned_through: Arc<AtomicU64>,
    /// This hub among those sharing the database: random, per process.
    hub_id: String,
    /// The other live hubs' occupied channels, as last read.
    peers: Mutex<Vec<ChannelSnapshot>>,
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PgReader {
    pub(super) fn new(pool: Pool, epoch: String, pruned_through: Arc<AtomicU64>) -> Self {
        PgReader {
            pool,
            epoch,
            pruned_through,
            hub_id: uuid::Uuid::new_v4().to_string(),
            peers: Mutex::new(Vec::new()),
        }
    }

    async fn rows(&self, sql: &str, params: &[Param]) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        Ok(client.query(&stmt, &refs).await?)
    }

    async fn events_where(&self, sql: &str, params: &[Param]) -> Result<Vec<Event>> {
        self.rows(sql, params)
            .await?
            .iter()
            .map(row::event)
            .collect()
    }
}

/// A scope's condition and its parameters, after the query's own `before`.
fn scope_args(scope: &Scope, before: Vec<Param>) -> (String, Vec<Param>) {
    let (cond, args) = scope_sql(scope, before.len() + 1, Placeholder::Dollar);
    let mut all = before;
    all.extend(args.into_iter().map(|a| Box::new(a) as Param));
    (cond, all)
}

#[async_trait]
impl LogReader for PgReader {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn pruned_through(&self) -> u64 {
        self.pruned_through.load(Ordering::Acquire)
    }

    async fn get_agent(&self, id: String) -> Result<Option<Agent>> {
        let sql = format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1");
        self.rows(&sql, &[Box::new(id)])
            .await?
            .first()
            .map(row::agent)
            .transpose()
    }

    async fn list_agents(&self, q: AgentQuery) -> Result<AgentPage> {
        let after: i64 = match &q.cursor {
            Some(c) => c
                .parse()
                .map_err(|_| Error::invalid("cursor", "not a cursor from next_cursor"))?,
            None => 0,
        };
        let limit = q.page_size();
        let like = q.q.as_ref().map(|s| like_pattern(s));
        let sql = format!(
            "SELECT {AGENT_COLS}, pos FROM agents WHERE pos > $1 AND ($2::text IS NULL OR status = $2)
             AND ($3::text IS NULL OR name LIKE $3 ESCAPE '\\' OR description LIKE $3 ESCAPE '\\')
             ORDER BY pos LIMIT $4"
        );
        let rows = self
            .rows(
                &sql,
                &[
                    Box::new(after),
                    Box::new(q.status.clone()),
                    Box::new(like),
                    Box::new(limit as i64 + 1),
                ],
            )
            .await?;
        let mut agents = Vec::with_capacity(rows.len().min(limit));
        let mut last_pos = 0i64;
        for r in &rows {
            if agents.len() == limit {
                return Ok(AgentPage {
                    agents,
                    next_cursor: Some(last_pos.to_string()),
                });
            }
            agents.push(row::agent(r)?);
            last_pos = r.try_get(10)?;
        }
        Ok(AgentPage {
            agents,
            next_cursor: None,
        })
    }

    async fn events(
        &self,
        scope: Scope,
        since: u64,
        until: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let (cond, args) = scope_args(
            &scope,
            vec![
                Box::new(signed(since)),
                Box::new(signed(until.unwrap_or(u64::MAX))),
                Box::new(limit as i64),
            ],
        );
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE seq > $1 AND seq <= $2 AND ({cond}) ORDER BY seq LIMIT $3"
        );
        self.events_where(&sql, &args).await
    }

    async fn latest_events(&self, scope: Scope, limit: usize) -> Result<Vec<Event>> {
        let (cond, args) = scope_args(&scope, vec![Box::new(limit as i64)]);
        let sql = format!(
            "SELECT * FROM (SELECT {EVENT_COLS} FROM events WHERE {cond} ORDER BY seq DESC LIMIT $1) AS newest
             ORDER BY seq"
        );
        self.events_where(&sql, &args).await
    }

    async fn event(&self, seq: u64) -> Result<Option<Event>> {
        let sql = format!("SELECT {EVENT_COLS} FROM events WHERE seq = $1");
        Ok(self
            .events_where(&sql, &[Box::new(signed(seq))])
            .await?
            .pop())
    }

    async fn pending_questions(&self) -> Result<Vec<PendingQuestion>> {
        let sql = format!(
            "SELECT {QUESTION_COLS} FROM questions WHERE state = 'pending' ORDER BY asked_at, question_id"
        );
        self.rows(&sql, &[])
            .await?
            .iter()
            .map(|r| row::question(r).map(|q| q.info))
            .collect()
    }

    async fn question(&self, question_id: String) -> Result<Option<QuestionRow>> {
        let sql = format!("SELECT {QUESTION_COLS} FROM questions WHERE question_id = $1");
        self.rows(&sql, &[Box::new(question_id)])
            .await?
            .first()
            .map(row::question)
            .transpose()
    }

    async fn question_by_key(&self, channel: String, key: String) -> Result<Option<QuestionRow>> {
        let sql = format!(
            "SELECT {QUESTION_COLS} FROM questions WHERE channel = $1 AND key = $2 ORDER BY asked_at DESC LIMIT 1"
        );
        self.rows(&sql, &[Box::new(channel), Box::new(key)])
            .await?
            .first()
            .map(row::question)
            .transpose()
    }

    async fn watch_roots(&self) -> Result<Vec<PathBuf>> {
        let rows = self
            .rows("SELECT root FROM watches ORDER BY added_at, root", &[])
            .await?;
        rows.iter()
            .map(|r| Ok(PathBuf::from(r.try_get::<_, String>(0)?)))
            .collect()
    }

    async fn kept_key(&self, id: String) -> Result<Option<KeptKey>> {
        let rows = self
            .rows(
                "SELECT body, outcome, created_at FROM idempotency_keys WHERE id = $1",
                &[Box::new(id)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(KeptKey {
                    body: r.try_get(0)?,
                    outcome: r.try_get(1)?,
                    created_at: r.try_get(2)?,
                })
            })
            .next()
            .transpose()
    }

    fn shared(&self) -> bool {
        true
    }

    fn peer_channels(&self) -> Vec<ChannelSnapshot> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn share(&self, mine: Vec<ChannelSnapshot>) -> Result<()> {
        let theirs = super::peers::share(&self.pool, &self.hub_id, &mine).await;
        // A hub that cannot reach the database cannot vouch for the others' counts either.
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match theirs {
            Ok(t) => {
                *peers = t;
                Ok(())
            }
            Err(e) => {
                peers.clear();
                Err(e)
            }
        }
    }

    async fn unshare(&self) {
        // Best effort, and brief: with the database away, the entries lapse on their own within seconds.
        let done = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            super::peers::unshare(&self.pool, &self.hub_id),
        )
        .await;
        if !matches!(done, Ok(Ok(()))) {
            tracing::debug!("could not withdraw this hub's channel counts");
        }
    }
}
