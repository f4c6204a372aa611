//! [`Reader`]: the read side of the store. A small pool of read-only connections used on the blocking pool, so
//! reads never wait for the writer, plus what the log knows about itself (its epoch and how far retention has
//! pruned it). Cheap to clone; the bus holds one to replay from.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::OptionalExtension;
use rusqlite::{Connection, ToSql, params_from_iter};

use super::schema::{
    AGENT_COLS, EVENT_COLS, agent_from_row, event_from_row, open_reader, to_event,
};
use crate::error::{Error, Result};
use crate::model::{Agent, AgentPage, AgentQuery, Event, Pattern, Scope};
use crate::questions::{PendingQuestion, QUESTION_COLS, QuestionRow};

/// Read-only connections kept for reuse.
const POOL: usize = 8;

/// Cheap-to-clone handle on the read side of the database.
#[derive(Clone)]
pub(crate) struct Reader {
    inner: Arc<ReaderInner>,
}

struct ReaderInner {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
    epoch: String,
    /// Every event with `seq` ≤ this has been removed by retention. Shared with the writer, which raises it.
    pruned_through: Arc<AtomicU64>,
}

impl Reader {
    pub(super) fn new(path: PathBuf, epoch: String, pruned_through: Arc<AtomicU64>) -> Self {
        Reader {
            inner: Arc::new(ReaderInner {
                path,
                pool: Mutex::new(Vec::new()),
                epoch,
                pruned_through,
            }),
        }
    }

    /// The random id made when this database was created.
    pub(crate) fn epoch(&self) -> &str {
        &self.inner.epoch
    }

    /// Every event with `seq` at or below this has been removed by retention.
    pub(crate) fn pruned_through(&self) -> u64 {
        self.inner.pruned_through.load(Ordering::Acquire)
    }

    /// Runs `f` on a pooled read-only connection on the blocking pool.
    ///
    /// # Errors
    /// Whatever `f` returns, or `Internal` if the blocking task fails.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&inner.path)?,
            };
            let r = f(&conn);
            let mut pool = inner.pool.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < POOL {
                pool.push(conn);
            }
            r
        })
        .await
        .map_err(Error::internal)?
    }

    /// # Errors
    /// `Internal` on a database fault.
    pub(crate) async fn get_agent(&self, id: String) -> Result<Option<Agent>> {
        self.read(move |c| super::schema::get_agent(c, &id)).await
    }

    /// One page of agents in creation order, and the cursor of the next page. `q.limit` is already checked.
    ///
    /// # Errors
    /// `Invalid` for a malformed cursor; `Internal` on a database fault.
    pub(crate) async fn list_agents(&self, q: AgentQuery) -> Result<AgentPage> {
        let after: i64 = match &q.cursor {
            Some(c) => c
                .parse()
                .map_err(|_| Error::invalid("cursor", "not a cursor from next_cursor"))?,
            None => 0,
        };
        let limit = q.page_size();
        self.read(move |c| {
            let like = q.q.as_ref().map(|s| {
                let s = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                format!("%{s}%")
            });
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
                agents.push(agent_from_row(r)?);
                last_rowid = r.get(10)?;
            }
            Ok(AgentPage {
                agents,
                next_cursor: None,
            })
        })
        .await
    }

    /// Logged events with `since < seq ≤ until` (no upper bound when `until` is `None`) in `scope`, oldest first,
    /// at most `limit`.
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub(crate) async fn events(
        &self,
        scope: Scope,
        since: u64,
        until: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.read(move |c| {
            let (cond, mut args) = scope_sql(&scope, 4);
            let sql = format!(
                "SELECT {EVENT_COLS} FROM events WHERE seq > ?1 AND seq <= ?2 AND ({cond}) ORDER BY seq LIMIT ?3"
            );
            let until = until.unwrap_or(i64::MAX as u64).min(i64::MAX as u64);
            let mut all: Vec<Box<dyn ToSql>> = vec![
                Box::new(since.min(i64::MAX as u64) as i64),
                Box::new(until as i64),
                Box::new(limit as i64),
            ];
            all.append(&mut args);
            query_events(c, &sql, all)
        })
        .await
    }

    /// The pending questions, oldest first (to rebuild the hub's memory of them when it opens).
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub(crate) async fn pending_questions(&self) -> Result<Vec<PendingQuestion>> {
        self.read(|c| {
            let sql = format!(
                "SELECT {QUESTION_COLS} FROM questions WHERE state = 'pending' ORDER BY asked_at, question_id"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([], QuestionRow::from_sql)?;
            Ok(rows.map(|r| r.map(|q| q.info)).collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// The question `question_id`, whatever its state.
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub(crate) async fn question(&self, question_id: String) -> Result<Option<QuestionRow>> {
        self.read(move |c| {
            let sql = format!("SELECT {QUESTION_COLS} FROM questions WHERE question_id = ?1");
            Ok(c.prepare_cached(&sql)?
                .query_row([&question_id], QuestionRow::from_sql)
                .optional()?)
        })
        .await
    }

    /// The newest question asked on `channel` with `key`, whatever its state.
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub(crate) async fn question_by_key(
        &self,
        channel: String,
        key: String,
    ) -> Result<Option<QuestionRow>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {QUESTION_COLS} FROM questions WHERE channel = ?1 AND key = ?2 ORDER BY asked_at DESC LIMIT 1"
            );
            Ok(c.prepare_cached(&sql)?
                .query_row([&channel, &key], QuestionRow::from_sql)
                .optional()?)
        })
        .await
    }

    /// The file watcher's roots kept in the database, oldest first.
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub(crate) async fn watch_roots(&self) -> Result<Vec<PathBuf>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT root FROM watches ORDER BY added_at, root")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows
                .map(|r| r.map(PathBuf::from))
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// The logged event at `seq`, if it is still kept.
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub(crate) async fn event(&self, seq: u64) -> Result<Option<Event>> {
        self.read(move |c| {
            let sql = format!("SELECT {EVENT_COLS} FROM events WHERE seq = ?1");
            c.prepare_cached(&sql)?
                .query_row([seq.min(i64::MAX as u64) as i64], event_from_row)
                .optional()?
                .map(to_event)
                .transpose()
        })
        .await
    }

    /// The newest `limit` events in `scope`, oldest first.
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub(crate) async fn latest_events(&self, scope: Scope, limit: usize) -> Result<Vec<Event>> {
        self.read(move |c| {
            let (cond, mut args) = scope_sql(&scope, 2);
            let sql = format!(
                "SELECT * FROM (SELECT {EVENT_COLS} FROM events WHERE {cond} ORDER BY seq DESC LIMIT ?1) ORDER BY seq"
            );
            let mut all: Vec<Box<dyn ToSql>> = vec![Box::new(limit as i64)];
            all.append(&mut args);
            query_events(c, &sql, all)
        })
        .await
    }
}

fn query_events(c: &Connection, sql: &str, args: Vec<Box<dyn ToSql>>) -> Result<Vec<Event>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), event_from_row)?;
    rows.map(|r| to_event(r?)).collect()
}

/// The SQL condition for a scope, with its parameters numbered from `?first`. An empty scope matches nothing.
fn scope_sql(scope: &Scope, first: usize) -> (String, Vec<Box<dyn ToSql>>) {
    const PUBLIC: &str =
        "substr(channel, 1, 8) <> 'private-' AND substr(channel, 1, 9) <> 'presence-'";
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let parts: Vec<String> = scope
        .0
        .iter()
        .map(|r| {
            let matches = match &r.pattern {
                Pattern::Prefix(p) if p.is_empty() => "1".to_owned(),
                Pattern::Exact(c) => {
                    args.push(Box::new(c.clone()));
                    format!("channel = ?{}", first + args.len() - 1)
                }
                Pattern::Prefix(p) => {
                    args.push(Box::new(p.clone()));
                    let n = first + args.len() - 1;
                    format!("substr(channel, 1, length(?{n})) = ?{n}")
                }
            };
            if r.private_ok {
                format!("({matches})")
            } else {
                format!("({matches} AND {PUBLIC})")
            }
        })
        .collect();
    if parts.is_empty() {
        ("0".to_owned(), args)
    } else {
        (parts.join(" OR "), args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Reach;

    #[test]
    fn scope_sql_numbers_parameters_and_guards_private_channels() {
        let scope = Scope(vec![
            Reach {
                pattern: Pattern::all(),
                private_ok: false,
            },
            Reach {
                pattern: Pattern::Exact("private-a".into()),
                private_ok: true,
            },
            Reach {
                pattern: Pattern::Prefix("agent:".into()),
                private_ok: true,
            },
        ]);
        let (sql, args) = scope_sql(&scope, 3);
        assert_eq!(args.len(), 2);
        assert!(
            sql.contains("channel = ?3") && sql.contains("length(?4)"),
            "{sql}"
        );
        assert!(sql.starts_with("(1 AND substr"), "{sql}");
        assert_eq!(scope_sql(&Scope(Vec::new()), 1).0, "0");
    }
}
