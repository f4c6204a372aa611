//! The durable store: one SQLite file in WAL mode with embedded, versioned migrations.
//!
//! One writer thread owns the only write connection. It takes a batch of queued writes, runs each in its own
//! savepoint inside one transaction, commits, and only then hands the batch's events, in `seq` order, to the
//! [`CommitSink`] (the bus), and answers the callers. A write that fails rolls back its savepoint: no row, no event.
//! Reads use a small pool of read-only connections on the blocking pool, so they never wait for the writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Agent, AgentPatch, Event, EventDraft, NewAgent, Pattern, Source};

/// Migrations, applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: agents, the event log and the log's epoch.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
     INSERT INTO meta (key, value) VALUES ('epoch', lower(hex(randomblob(8)))), ('pruned_through', '0');
     CREATE TABLE agents (
         id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, model TEXT, status TEXT NOT NULL,
         config TEXT NOT NULL, tags TEXT NOT NULL, version INTEGER NOT NULL,
         created_at TEXT NOT NULL, updated_at TEXT NOT NULL) STRICT;
     CREATE INDEX agents_status ON agents (status);
     CREATE TABLE events (
         seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, channel TEXT NOT NULL, event TEXT NOT NULL,
         data TEXT NOT NULL, source TEXT NOT NULL, ts TEXT NOT NULL) STRICT;
     CREATE INDEX events_channel ON events (channel, seq);",
];

/// How many queued writes one transaction may carry.
const MAX_BATCH: usize = 256;

/// Receives each committed batch's events, in `seq` order, before callers are answered. Returns how many
/// subscribers each event reached.
pub trait CommitSink: Send + Sync + 'static {
    fn committed(&self, events: &[Event]) -> Vec<usize>;
}

/// How long events are kept: the newest `max_events`, and none older than `max_age`.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_events: u64,
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_events: 100_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// One write for the writer thread.
#[derive(Debug)]
pub enum Write {
    CreateAgent(NewAgent, Source),
    UpdateAgent {
        id: String,
        patch: AgentPatch,
        expected_version: Option<i64>,
        source: Source,
    },
    DeleteAgent {
        id: String,
        source: Source,
    },
    Publish(Vec<EventDraft>),
    Prune(Retention),
}

/// What a committed write produced.
#[derive(Debug, Default)]
pub struct Committed {
    /// The agent after a create or update, or as it was before a delete.
    pub agent: Option<Agent>,
    pub events: Vec<Event>,
    /// Per event, how many subscribers it was handed to.
    pub delivered: Vec<usize>,
    /// Events removed by a prune.
    pub pruned: u64,
}

enum Job {
    Write(Box<Write>, oneshot::Sender<Result<Committed>>),
    Shutdown(oneshot::Sender<()>),
}

/// A filter for listing agents.
#[derive(Debug, Clone, Default)]
pub struct AgentQuery {
    pub status: Option<String>,
    /// Case-insensitive substring of name or description.
    pub q: Option<String>,
    pub limit: usize,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Cheap-to-clone handle on the database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    path: PathBuf,
    jobs: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
    epoch: String,
    /// Every event with `seq` ≤ this has been removed by retention.
    pruned_through: Arc<AtomicU64>,
    /// The last `seq` when the store opened.
    opened_at_seq: u64,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn open_writer(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a 2xx answer means the change survives a power cut, not only a crash. Batching amortises the fsync.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Checkpoints run on their own thread (`checkpoint_loop`): done here, after a commit, one would hold up every
    // write queued behind it for the length of its fsync (hundreds of ms seen under load).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Least time between two background checkpoints.
const CHECKPOINT_GAP: Duration = Duration::from_millis(250);

/// Copies committed WAL frames into the database file when the writer says it wrote something, at most every
/// [`CHECKPOINT_GAP`]. PASSIVE: it never blocks the writer or the readers. Ends when the writer drops its sender.
fn checkpoint_loop(conn: Connection, kicks: std::sync::mpsc::Receiver<()>) {
    while kicks.recv().is_ok() {
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
            tracing::warn!(error = %e, "background checkpoint failed");
        }
        std::thread::sleep(CHECKPOINT_GAP);
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let have: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if have > MIGRATIONS.len() {
        return Err(Error::internal(format_args!(
            "database schema version {have} is newer than this build ({}); upgrade switchboard",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied migration");
    }
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

fn agent_from_row(r: &Row<'_>) -> rusqlite::Result<Agent> {
    let config: String = r.get(5)?;
    let tags: String = r.get(6)?;
    Ok(Agent {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        model: r.get(3)?,
        status: r.get(4)?,
        config: serde_json::from_str(&config).unwrap_or_default(),
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        version: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

const AGENT_COLS: &str =
    "id, name, description, model, status, config, tags, version, created_at, updated_at";

fn get_agent(conn: &Connection, id: &str) -> Result<Option<Agent>> {
    let sql = format!("SELECT {AGENT_COLS} FROM agents WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], agent_from_row)
        .optional()?)
}

fn event_from_row(
    r: &Row<'_>,
) -> rusqlite::Result<(u64, String, String, String, String, String, String)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn to_event(parts: (u64, String, String, String, String, String, String)) -> Result<Event> {
    let (seq, id, channel, event, data, source, ts) = parts;
    let source = Source::parse(&source).unwrap_or(Source::System);
    Event::from_parts(seq, id, channel, event, data, source, ts)
}

fn insert_event(tx: &Connection, d: &EventDraft, ts: &str) -> Result<Event> {
    let id = uuid::Uuid::new_v4().to_string();
    let data = serde_json::to_string(&d.data).map_err(Error::internal)?;
    tx.prepare_cached(
        "INSERT INTO events (id, channel, event, data, source, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, d.channel, d.event, data, d.source.as_str(), ts])?;
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

/// Applies one write inside the caller's savepoint.
fn apply(tx: &Connection, w: Write, pruned_through: &AtomicU64) -> Result<Committed> {
    let now = now_rfc3339();
    match w {
        Write::CreateAgent(new, source) => {
            let agent = new.into_agent(uuid::Uuid::new_v4().to_string(), &now)?;
            write_agent(tx, &agent, true)?;
            let ev = EventDraft {
                channel: format!("agent:{}", agent.id),
                event: "agent.created".into(),
                data: json!({"id": agent.id, "name": agent.name, "version": agent.version}),
                source,
            };
            let events = vec![insert_event(tx, &ev, &now)?];
            Ok(Committed {
                agent: Some(agent),
                events,
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
            let ev = EventDraft {
                channel: format!("agent:{}", agent.id),
                event: "agent.updated".into(),
                data: json!({"id": agent.id, "name": agent.name, "version": agent.version, "changed": changed}),
                source,
            };
            let events = vec![insert_event(tx, &ev, &now)?];
            Ok(Committed {
                agent: Some(agent),
                events,
                ..Default::default()
            })
        }
        Write::DeleteAgent { id, source } => {
            let agent = get_agent(tx, &id)?
                .ok_or_else(|| Error::not_found(format!("no agent with id {id}")))?;
            tx.prepare_cached("DELETE FROM agents WHERE id = ?1")?
                .execute([&id])?;
            let ev = EventDraft {
                channel: format!("agent:{}", agent.id),
                event: "agent.deleted".into(),
                data: json!({"id": agent.id, "name": agent.name}),
                source,
            };
            let events = vec![insert_event(tx, &ev, &now)?];
            Ok(Committed {
                agent: Some(agent),
                events,
                ..Default::default()
            })
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
        Write::Prune(r) => {
            let last: u64 =
                tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
            let by_count = last.saturating_sub(r.max_events);
            let cutoff = chrono::Utc::now()
                - chrono::Duration::from_std(r.max_age).unwrap_or(chrono::Duration::MAX);
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
    }
}

fn writer_loop(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    sink: Arc<dyn CommitSink>,
    pruned_through: Arc<AtomicU64>,
    checkpoint: std::sync::mpsc::SyncSender<()>,
) {
    let mut batch: Vec<(Box<Write>, oneshot::Sender<Result<Committed>>)> =
        Vec::with_capacity(MAX_BATCH);
    let mut shutdown = None;
    while shutdown.is_none() {
        match jobs.blocking_recv() {
            Some(Job::Write(w, tx)) => batch.push((w, tx)),
            Some(Job::Shutdown(done)) => shutdown = Some(done),
            None => break,
        }
        while batch.len() < MAX_BATCH && shutdown.is_none() {
            match jobs.try_recv() {
                Ok(Job::Write(w, tx)) => batch.push((w, tx)),
                Ok(Job::Shutdown(done)) => shutdown = Some(done),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let results = run_batch(&mut conn, &mut batch, &pruned_through);
        // A kick already pending covers this batch too.
        let _ = checkpoint.try_send(());
        let events: Vec<Event> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .flat_map(|c| c.events.iter().cloned())
            .collect();
        let mut delivered = if events.is_empty() {
            Vec::new()
        } else {
            sink.committed(&events)
        }
        .into_iter();
        for ((_, reply), mut result) in batch.drain(..).zip(results) {
            if let Ok(c) = &mut result {
                c.delivered = delivered.by_ref().take(c.events.len()).collect();
            }
            // The caller may have gone away (a dropped request); the write stands regardless.
            let _ = reply.send(result);
        }
    }
    drop(checkpoint);
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "checkpoint on shutdown failed");
    }
    drop(conn);
    if let Some(done) = shutdown {
        let _ = done.send(());
    }
    tracing::debug!("store writer stopped");
}

/// Runs the batch in one transaction. On a commit failure every write in it fails.
fn run_batch(
    conn: &mut Connection,
    batch: &mut [(Box<Write>, oneshot::Sender<Result<Committed>>)],
    pruned: &AtomicU64,
) -> Vec<Result<Committed>> {
    let work =
        |conn: &mut Connection, batch: &mut [(Box<Write>, _)]| -> Result<Vec<Result<Committed>>> {
            let mut tx = conn.transaction()?;
            let mut out = Vec::with_capacity(batch.len());
            for (w, _) in batch.iter_mut() {
                let w = std::mem::replace(&mut **w, Write::Publish(Vec::new()));
                let sp = tx.savepoint()?;
                let r = apply(&sp, w, pruned);
                if r.is_ok() {
                    sp.commit()?;
                } else {
                    drop(sp); // rolls back
                }
                out.push(r);
            }
            tx.commit()?;
            Ok(out)
        };
    match work(conn, batch) {
        Ok(v) => v,
        Err(e) => {
            let e = if e.kind() == ErrorKind::Internal {
                e
            } else {
                Error::internal(e)
            };
            batch.iter().map(|_| Err(e.clone())).collect()
        }
    }
}

impl Store {
    /// Opens (creating if needed) `<dir>/switchboard.db`, runs migrations and starts the writer thread.
    ///
    /// # Errors
    /// `Internal` when the directory or database cannot be opened or migrated.
    pub fn open(dir: &Path, sink: Arc<dyn CommitSink>) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format_args!("creating {}: {e}", dir.display())))?;
        let path = dir.join("switchboard.db");
        let conn = open_writer(&path)?;
        let epoch: String =
            conn.query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
                r.get(0)
            })?;
        let pruned: String = conn.query_row(
            "SELECT value FROM meta WHERE key = 'pruned_through'",
            [],
            |r| r.get(0),
        )?;
        let pruned_through = Arc::new(AtomicU64::new(pruned.parse().unwrap_or(0)));
        let opened_at_seq: u64 = conn.query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
            [],
            |r| r.get(0),
        )?;
        let (tx, rx) = mpsc::channel(4096);
        let pt = pruned_through.clone();
        let checkpointer = Connection::open(&path)?;
        checkpointer.busy_timeout(Duration::from_secs(5))?;
        let (kick, kicks) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("switchboard-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, kicks))
            .map_err(Error::internal)?;
        std::thread::Builder::new()
            .name("switchboard-writer".into())
            .spawn(move || writer_loop(conn, rx, sink, pt, kick))
            .map_err(Error::internal)?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                path,
                jobs: tx,
                readers: Mutex::new(Vec::new()),
                epoch,
                pruned_through,
                opened_at_seq,
            }),
        })
    }

    /// The random id made when this database was created.
    pub fn epoch(&self) -> &str {
        &self.inner.epoch
    }

    /// The last `seq` when the store opened.
    pub fn opened_at_seq(&self) -> u64 {
        self.inner.opened_at_seq
    }

    /// Every event with `seq` at or below this has been removed by retention.
    pub fn pruned_through(&self) -> u64 {
        self.inner.pruned_through.load(Ordering::Acquire)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues a write and waits until it is committed (and its events handed to the sink) or refused.
    ///
    /// # Errors
    /// The write's own validation error, or `Unavailable` when the store is shutting down.
    pub async fn write(&self, w: Write) -> Result<Committed> {
        let (tx, rx) = oneshot::channel();
        let gone = || {
            Error::new(
                ErrorKind::Unavailable,
                "shutting_down",
                "the hub is shutting down",
            )
        };
        self.inner
            .jobs
            .send(Job::Write(Box::new(w), tx))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Finishes every write queued so far, checkpoints and stops the writer thread.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.jobs.send(Job::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Runs `f` on a pooled read-only connection on the blocking pool.
    ///
    /// # Errors
    /// Whatever `f` returns, or `Internal` if the blocking task fails.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&inner.path)?,
            };
            let r = f(&conn);
            let mut pool = inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < 8 {
                pool.push(conn);
            }
            r
        })
        .await
        .map_err(Error::internal)?
    }

    /// # Errors
    /// `Internal` on a database fault.
    pub async fn get_agent(&self, id: String) -> Result<Option<Agent>> {
        self.read(move |c| get_agent(c, &id)).await
    }

    /// One page of agents in creation order, and the cursor of the next page.
    ///
    /// # Errors
    /// `Invalid` for a malformed cursor; `Internal` on a database fault.
    pub async fn list_agents(&self, q: AgentQuery) -> Result<(Vec<Agent>, Option<String>)> {
        let after: i64 = match &q.cursor {
            Some(c) => c
                .parse()
                .map_err(|_| Error::invalid("cursor", "not a cursor from next_cursor"))?,
            None => 0,
        };
        self.read(move |c| {
            let like = q.q.as_ref().map(|s| format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
            let sql = format!(
                "SELECT {AGENT_COLS}, rowid FROM agents WHERE rowid > ?1 AND (?2 IS NULL OR status = ?2)
                 AND (?3 IS NULL OR name LIKE ?3 ESCAPE '\\' OR description LIKE ?3 ESCAPE '\\')
                 ORDER BY rowid LIMIT ?4"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![after, q.status, like, q.limit as i64 + 1])?;
            let mut out = Vec::new();
            let mut last_rowid = 0i64;
            while let Some(r) = rows.next()? {
                if out.len() == q.limit {
                    return Ok((out, Some(last_rowid.to_string())));
                }
                out.push(agent_from_row(r)?);
                last_rowid = r.get(10)?;
            }
            Ok((out, None))
        })
        .await
    }

    /// Logged events with `since < seq ≤ until` (no upper bound when `until` is `None`) matching `pattern`, oldest
    /// first, at most `limit`.
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub async fn events(
        &self,
        pattern: Option<Pattern>,
        since: u64,
        until: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.read(move |c| {
            events_between(
                c,
                pattern.as_ref(),
                since,
                until.unwrap_or(i64::MAX as u64),
                limit,
            )
        })
        .await
    }

    /// The newest `limit` events matching `pattern`, oldest first.
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub async fn latest_events(
        &self,
        pattern: Option<Pattern>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.read(move |c| {
            let (sql, key) = pattern_sql(pattern.as_ref());
            let sql = format!(
                "SELECT * FROM (SELECT seq, id, channel, event, data, source, ts FROM events WHERE {sql} ORDER BY seq DESC LIMIT ?2) ORDER BY seq"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![key, limit as i64], event_from_row)?;
            rows.map(|r| to_event(r?)).collect()
        })
        .await
    }

    /// The highest committed `seq`, read from the database (0 for an empty log).
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub async fn last_seq(&self) -> Result<u64> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }
}

/// The SQL condition for a pattern (parameter `?1`) and its bound value.
fn pattern_sql(p: Option<&Pattern>) -> (&'static str, Option<String>) {
    match p {
        None => ("?1 IS NULL", None),
        Some(Pattern::Prefix(x)) if x.is_empty() => ("?1 IS NULL", None),
        Some(Pattern::Exact(c)) => ("channel = ?1", Some(c.clone())),
        Some(Pattern::Prefix(x)) => ("substr(channel, 1, length(?1)) = ?1", Some(x.clone())),
    }
}

fn events_between(
    c: &Connection,
    p: Option<&Pattern>,
    since: u64,
    until: u64,
    limit: usize,
) -> Result<Vec<Event>> {
    let (cond, key) = pattern_sql(p);
    let sql = format!(
        "SELECT seq, id, channel, event, data, source, ts FROM events WHERE seq > ?2 AND seq <= ?3 AND {cond} ORDER BY seq LIMIT ?4"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            key,
            since as i64,
            until.min(i64::MAX as u64) as i64,
            limit as i64
        ],
        event_from_row,
    )?;
    rows.map(|r| to_event(r?)).collect()
}
