//! [`SqliteReader`]: the read side of the SQLite store. A small pool of read-only connections used on the blocking pool, so
//! reads never wait for the writer, plus what the log knows about itself (its epoch and how far retention has
//! pruned it). Cheap to clone; the bus holds one to replay from.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::OptionalExtension;
use rusqlite::{Connection, ToSql, params_from_iter};

use super::schema::open_reader;
use crate::error::{Error, Result};
use crate::idempotency::KeptKey;
use crate::model::{Agent, AgentPage, AgentQuery, Event, Scope};
use crate::questions::{PendingQuestion, QuestionRow};
use crate::store::LogReader;
use crate::store::row::{
    self, AGENT_COLS, EVENT_COLS, Placeholder, QUESTION_COLS, like_pattern, scope_sql,
};

/// Read-only connections kept for reuse.
const POOL: usize = 8;

/// The read side of the database.
pub(super) struct SqliteReader {
    path: PathBuf,
    pool: Arc<Mutex<Vec<Connection>>>,
    epoch: String,
    /// Every event with `seq` ≤ this has been removed by retention. Shared with the writer, which raises it.
    pruned_through: Arc<AtomicU64>,
}

impl SqliteReader {
    pub(super) fn new(path: PathBuf, epoch: String, pruned_through: Arc<AtomicU64>) -> Self {
        SqliteReader {
            path,
            pool: Arc::new(Mutex::new(Vec::new())),
            epoch,
            pruned_through,
        }
    }

    /// Runs `f` on a pooled read-only connection on the blocking pool.
    ///
    /// # Errors
    /// Whatever `f` returns, or `Internal` if the blocking task fails.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (pool, path) = (self.pool.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&path)?,
            };
            let r = f(&conn);
            let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < POOL {
                pool.push(conn);
            }
            r
        })
        .await
        .map_err(Error::internal)?
    }
}

fn query_events(c: &Connection, sql: &str, args: Vec<Box<dyn ToSql>>) -> Result<Vec<Event>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| Ok(row::event(r)))?;
    rows.map(|r| r?).collect()
}

/// A scope's condition and its parameters, after `before` parameters of the query's own.
fn scope_args(scope: &Scope, before: Vec<Box<dyn ToSql>>) -> (String, Vec<Box<dyn ToSql>>) {
    let (cond, args) = scope_sql(scope, before.len() + 1, Placeholder::Question);
    let mut all = before;
    all.extend(args.into_iter().map(|a| Box::new(a) as Box<dyn ToSql>));
    (cond, all)
}

#[async_trait]
impl LogReader for SqliteReader {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn pruned_through(&self) -> u64 {
        self.pruned_through.load(Ordering::Acquire)
    }

    async fn get_agent(&self, id: String) -> Result<Option<Agent>> {
        self.read(move |c| super::schema::get_agent(c, &id)).await
    }

    async fn list_agents(&self, q: AgentQuery) -> Result<AgentPage> {
        let after: i64 = match &q.cursor {
            Some(c) => c
                .parse()
                .map_err(|_| Error::invalid("cursor", "not a cursor from next_cursor"))?,
            None => 0,
        };
        let limit = q.page_size();
        self.read(move |c| {
            let like = q.q.as_ref().map(|s| like_pattern(s));
            let sql = format!(
                "SELECT {AGENT_COLS}, rowid FROM agents WHERE rowid > ?1 AND (?2 IS NULL OR status = ?2)
                 AND (?3 IS NULL OR name LIKE ?3 ESCAPE '\\' OR description LIKE ?3 ESCAPE '\\')
                 ORDER BY rowid LIMIT ?4"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params![after, q.status, like, limit as i64 + 1])?;
            let mut agents = Vec::new();
            let mut last_rowid = 0i64;
            while let Some(r) = rows.next()? {
                if agents.len() == limit {
                    return Ok(AgentPage {
                        agents,
                        next_cursor: Some(last_rowid.to_string()),
                    });
                }
                agents.push(row::agent(r)?);
                last_rowid = r.get(10)?;
            }
            Ok(AgentPage {
                agents,
                next_cursor: None,
            })
        })
        .await
    }

    async fn events(
        &self,
        scope: Scope,
        since: u64,
        until: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.read(move |c| {
            let until = until.unwrap_or(i64::MAX as u64).min(i64::MAX as u64);
            let (cond, args) = scope_args(
                &scope,
                vec![
                    Box::new(since.min(i64::MAX as u64) as i64),
                    Box::new(until as i64),
                    Box::new(limit as i64),
                ],
            );
            let sql = format!(
                "SELECT {EVENT_COLS} FROM events WHERE seq > ?1 AND seq <= ?2 AND ({cond}) ORDER BY seq LIMIT ?3"
            );
            query_events(c, &sql, args)
        })
        .await
    }

    async fn latest_events(&self, scope: Scope, limit: usize) -> Result<Vec<Event>> {
        self.read(move |c| {
            let (cond, args) = scope_args(&scope, vec![Box::new(limit as i64)]);
            let sql = format!(
                "SELECT * FROM (SELECT {EVENT_COLS} FROM events WHERE {cond} ORDER BY seq DESC LIMIT ?1) ORDER BY seq"
            );
            query_events(c, &sql, args)
        })
        .await
    }

    async fn event(&self, seq: u64) -> Result<Option<Event>> {
        self.read(move |c| {
            let sql = format!("SELECT {EVENT_COLS} FROM events WHERE seq = ?1");
            c.prepare_cached(&sql)?
                .query_row([seq.min(i64::MAX as u64) as i64], |r| Ok(row::event(r)))
                .optional()?
                .transpose()
        })
        .await
    }

    async fn pending_questions(&self) -> Result<Vec<PendingQuestion>> {
        self.read(|c| {
            let sql = format!(
                "SELECT {QUESTION_COLS} FROM questions WHERE state = 'pending' ORDER BY asked_at, question_id"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([], |r| Ok(row::question(r)))?;
            rows.map(|r| r?.map(|q| q.info)).collect()
        })
        .await
    }

    async fn question(&self, question_id: String) -> Result<Option<QuestionRow>> {
        self.read(move |c| {
            let sql = format!("SELECT {QUESTION_COLS} FROM questions WHERE question_id = ?1");
            c.prepare_cached(&sql)?
                .query_row([&question_id], |r| Ok(row::question(r)))
                .optional()?
                .transpose()
        })
        .await
    }

    async fn question_by_key(&self, channel: String, key: String) -> Result<Option<QuestionRow>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {QUESTION_COLS} FROM questions WHERE channel = ?1 AND key = ?2 ORDER BY asked_at DESC LIMIT 1"
            );
            c.prepare_cached(&sql)?
                .query_row([&channel, &key], |r| Ok(row::question(r)))
                .optional()?
                .transpose()
        })
        .await
    }

    async fn kept_key(&self, id: String) -> Result<Option<KeptKey>> {
        self.read(move |c| super::schema::kept_key(c, &id)).await
    }

    async fn watch_roots(&self) -> Result<Vec<PathBuf>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT root FROM watches ORDER BY added_at, root")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows
                .map(|r| r.map(PathBuf::from))
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}
