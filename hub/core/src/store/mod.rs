//! The durable store: agents, the event log, questions and watch roots. The hub reads and writes it only through
//! two traits, so nothing above this module knows which database is in use:
//!
//! - [`LogReader`]: every query, plus the log's epoch and how far retention has pruned it. The bus holds one to
//!   replay from.
//! - [`LogWriter`]: queues a [`Write`] and answers once it is committed **and** its events have been handed to the
//!   bus (the [`CommitSink`]), in `seq` order.
//!
//! Two stores implement them:
//!
//! - [`sqlite`]: the default, one file in WAL mode with a single writer thread that hands each committed batch to
//!   the bus itself.
//! - [`postgres`] (`--store postgres://…`, SPEC §13): several hubs share one database. A single-row counter taken
//!   inside each transaction makes commit order equal `seq` order; every hub tails the log (LISTEN/NOTIFY plus a
//!   poll) as its only broadcast source, its own writes included.
//!
//! Shared by both:
//!
//! - `apply`: what each [`Write`] does (its rows and the events logged with them), written once over the small
//!   [`Rows`](apply::Rows) trait each store implements inside its transaction.
//! - `row`: the column lists, rows to values, and a [`Scope`](crate::model::Scope) as SQL.
//! - `queue`: the write queue both writers take their batches from; its handle is the [`LogWriter`] the hub holds.
//!
//! [`open`] migrates and yields the reader and the last `seq`; the bus is built on that reader, and
//! [`Opened::start`] starts the writer with the bus as its sink.

mod apply;
pub(crate) mod postgres;
mod queue;
mod row;
pub(crate) mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::bus::ChannelSnapshot;
use crate::error::{Error, ErrorKind, Result};
use crate::idempotency::{KeptKey, KeyRecord, Outcome};
use crate::model::{
    Agent, AgentPage, AgentPatch, AgentQuery, Event, EventDraft, NewAgent, Scope, Source,
};
use crate::questions::{Answer, PendingQuestion, QuestionRow};
pub(crate) use apply::PRUNE_CHUNK;
pub use sqlite::{DatabaseReport, inspect};

/// How long events are kept: the newest `max_events`, and none older than `max_age`.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Keep at most this many of the newest events.
    pub max_events: u64,
    /// Remove events older than this.
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

/// Which database holds agents and the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreConfig {
    /// `<data dir>/switchboard.db`, the default: one machine needs no server.
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by every hub that names it (a `postgres://` or `postgresql://` URL).
    Postgres(String),
}

impl StoreConfig {
    /// Parses `--store`: `sqlite` (or empty) for the default, or a `postgres://…` URL.
    ///
    /// # Errors
    /// `Invalid` for anything else, naming what is accepted.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() || s == "sqlite" {
            Ok(StoreConfig::Sqlite)
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(StoreConfig::Postgres(s.to_owned()))
        } else {
            Err(Error::invalid(
                "store",
                "expected `sqlite` or a postgres://user@host:port/database URL",
            ))
        }
    }

    /// The store as logs and `/health` may show it: never the password.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Sqlite => "sqlite".into(),
            StoreConfig::Postgres(url) => postgres::redact(url),
        }
    }
}

/// Receives each committed batch's events, in `seq` order, before callers are answered. Returns how many
/// subscribers each event reached.
pub(crate) trait CommitSink: Send + Sync + 'static {
    fn committed(&self, events: &[Event]) -> Vec<usize>;
}

/// One write.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    CreateAgent(NewAgent, Source),
    /// Many agents in one savepoint: all or none; an `agent.created` each, then `agents.bulk_created`.
    CreateAgents(Vec<NewAgent>, Source),
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
    /// A new pending question and its `question` event.
    AskQuestion(PendingQuestion, EventDraft),
    /// The first answer: the row is answered only if still pending (else 404, nothing published), with its
    /// `question.answered` event.
    AnswerQuestion {
        question_id: String,
        answer: Answer,
        event: EventDraft,
    },
    /// Withdraws a pending question with its `question.withdrawn` event; nothing if it is not pending.
    WithdrawQuestion {
        question_id: String,
        event: EventDraft,
    },
    /// Keeps (or forgets) a file watcher root, with its `watch.added` / `watch.removed` event on `files`. `keep`
    /// false for a root that only lives as long as this run (`--watch`): the event, no row.
    Watch {
        root: String,
        add: bool,
        keep: bool,
        source: Source,
    },
    /// A write sent with an `Idempotency-Key`: done once; a retry answers what the first one did.
    Keyed(Box<Write>, KeyRecord),
}

/// What a committed write produced.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    /// The agent after a create or update, or as it was before a delete.
    pub(crate) agent: Option<Agent>,
    /// The agents of a batch create, in order.
    pub(crate) agents: Vec<Agent>,
    pub(crate) events: Vec<Event>,
    /// Per event, how many subscribers it was handed to.
    pub(crate) delivered: Vec<usize>,
    /// Events removed by a prune.
    pub(crate) pruned: u64,
    /// A keyed write done before: nothing was written now, and this is what the first one answered (its
    /// `agent`/`agents` are above; the seqs of its events here).
    pub(crate) replayed: Option<Vec<u64>>,
}

impl Committed {
    /// The answer of a keyed write done before.
    pub(crate) fn replay(first: Outcome) -> Self {
        Committed {
            agent: first.agent,
            agents: first.agents,
            replayed: Some(first.seqs),
            ..Default::default()
        }
    }

    /// The seq of the write's first event, now or when it was first done.
    pub(crate) fn first_seq(&self) -> Option<u64> {
        match &self.replayed {
            Some(seqs) => seqs.first().copied(),
            None => self.events.first().map(Event::seq),
        }
    }
}

/// The read side of a store. Cheap to share; every method may run concurrently with writes.
#[async_trait]
pub(crate) trait LogReader: Send + Sync + 'static {
    /// The random id made when this log was created.
    fn epoch(&self) -> &str;
    /// Every event with `seq` at or below this has been removed by retention.
    fn pruned_through(&self) -> u64;
    async fn get_agent(&self, id: String) -> Result<Option<Agent>>;
    /// One page of agents in creation order, and the cursor of the next page. `q.limit` is already checked.
    ///
    /// `Invalid` for a malformed cursor.
    async fn list_agents(&self, q: AgentQuery) -> Result<AgentPage>;
    /// Logged events with `since < seq ≤ until` (no upper bound when `until` is `None`) in `scope`, oldest first,
    /// at most `limit`.
    async fn events(
        &self,
        scope: Scope,
        since: u64,
        until: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>>;
    /// The newest `limit` events in `scope`, oldest first.
    async fn latest_events(&self, scope: Scope, limit: usize) -> Result<Vec<Event>>;
    /// The logged event at `seq`, if it is still kept.
    async fn event(&self, seq: u64) -> Result<Option<Event>>;
    /// The pending questions, oldest first (to rebuild the hub's memory of them when it opens).
    async fn pending_questions(&self) -> Result<Vec<PendingQuestion>>;
    /// The question `question_id`, whatever its state.
    async fn question(&self, question_id: String) -> Result<Option<QuestionRow>>;
    /// The newest question asked on `channel` with `key`, whatever its state.
    async fn question_by_key(&self, channel: String, key: String) -> Result<Option<QuestionRow>>;
    /// The file watcher's roots kept in the database, oldest first.
    async fn watch_roots(&self) -> Result<Vec<PathBuf>>;
    /// The idempotency key `id`, as kept, if it is.
    async fn kept_key(&self, id: String) -> Result<Option<KeptKey>>;

    /// Whether other hubs share this store, so the channels API adds up what they report.
    fn shared(&self) -> bool {
        false
    }
    /// The occupied channels of the other live hubs, as [`LogReader::share`] last read them (each hub's entries
    /// separately; the caller adds them up).
    fn peer_channels(&self) -> Vec<ChannelSnapshot> {
        Vec::new()
    }
    /// Records this hub's occupied channels (`mine`, every one, presence members included) for the other hubs,
    /// and reads theirs.
    async fn share(&self, _mine: Vec<ChannelSnapshot>) -> Result<()> {
        Ok(())
    }
    /// Withdraws this hub's entries (on shutdown).
    async fn unshare(&self) {}
}

/// The write side of a store.
#[async_trait]
pub(crate) trait LogWriter: Send + Sync + 'static {
    /// Commits `w` and waits until its events have been handed to the sink, or it is refused.
    ///
    /// # Errors
    /// The write's own validation error; `Unavailable` when the store is shutting down or cannot be reached.
    async fn write(&self, w: Write) -> Result<Committed>;
    /// Finishes every write queued so far and stops; later writes fail with `Unavailable`.
    async fn shutdown(&self);
}

/// A cheap-to-clone handle on the read side.
pub(crate) type Reader = Arc<dyn LogReader>;

type Start = Box<dyn FnOnce(Arc<dyn CommitSink>) -> Result<Box<dyn LogWriter>> + Send>;

/// A migrated store whose writer has not started yet.
pub(crate) struct Opened {
    /// The read side.
    pub(crate) reader: Reader,
    /// The highest `seq` ever given out when the store opened.
    pub(crate) last_seq: u64,
    start: Start,
}

impl Opened {
    /// Starts the writer (and, for PostgreSQL, the log tail); committed events go to `sink`.
    ///
    /// # Errors
    /// `Internal` if a thread or task cannot be started.
    pub(crate) fn start(self, sink: Arc<dyn CommitSink>) -> Result<Box<dyn LogWriter>> {
        (self.start)(sink)
    }
}

/// Opens (creating if needed) the store `config` names, `dir` being the hub's data dir, and runs migrations.
///
/// # Errors
/// `Internal` when the database cannot be opened or migrated; `Unavailable` when PostgreSQL cannot be reached.
pub(crate) async fn open(config: &StoreConfig, dir: &Path) -> Result<Opened> {
    match config {
        StoreConfig::Sqlite => {
            let dir = dir.to_path_buf();
            tokio::task::spawn_blocking(move || sqlite::open(&dir))
                .await
                .map_err(Error::internal)?
        }
        StoreConfig::Postgres(url) => postgres::open(url).await,
    }
}

/// The writer has stopped: the hub is shutting down.
pub(crate) fn shutting_down() -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "shutting_down",
        "the hub is shutting down",
    )
}
