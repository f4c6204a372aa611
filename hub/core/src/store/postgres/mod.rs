//! The PostgreSQL store (`--store postgres://…`, SPEC §13): several hubs share agents and one ordered log.
//!
//! - [`schema`]: embedded, versioned migrations, run under an advisory lock so hubs starting together migrate
//!   once; the database is created when it does not exist yet.
//! - `rows`: the statements [`apply`](super::apply) runs. Each event takes its `seq` from a single-row counter
//!   (`UPDATE log_seq … RETURNING`) inside the write's transaction: the row stays locked until commit, so the
//!   next `seq` is only given out once the previous one is committed, and commit order equals `seq` order.
//! - [`writer`]: one task per hub batches queued writes into a transaction (a savepoint each), sends
//!   `NOTIFY switchboard_log` with the commit, and answers each caller once the tail has delivered its events.
//! - [`tail`]: the hub's only broadcast source. It follows the log from the last `seq` it delivered, woken by
//!   `LISTEN switchboard_log`, by this hub's own commits, and by a short poll as the safety net, and hands each
//!   contiguous run of events to the bus. Every hub therefore delivers the same sequence.
//! - [`query`]: the read side on the connection pool.
//! - [`peers`]: each hub's occupied channels and presence members, shared every second so the channels API adds
//!   up every hub's.
//!
//! The pool reconnects on its own; a write while the database is unreachable fails with `Unavailable`
//! (`store_unavailable`), and the tail resumes from its last `seq` once the database is back.

mod peers;
mod query;
mod rows;
mod schema;
mod tail;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::{CommitSink, LogWriter, Opened};
use crate::error::{Error, ErrorKind, Result};

/// Connections each hub keeps open: the writer, the tail, and concurrent reads.
const POOL_SIZE: usize = 16;

/// How long connecting, or waiting for a pooled connection, may take before the request fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The channel every hub listens on; the payload is the newest committed `seq`.
const NOTIFY_CHANNEL: &str = "switchboard_log";

/// The URL with its password (in the authority or as `password=`) replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => base.to_owned(),
            },
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    match query {
        None => base,
        Some(q) => {
            let q: Vec<String> = q
                .split('&')
                .map(|kv| {
                    if kv.starts_with("password=") {
                        "password=***".to_owned()
                    } else {
                        kv.to_owned()
                    }
                })
                .collect();
            format!("{base}?{}", q.join("&"))
        }
    }
}

/// Is this the database being unreachable (or going away), rather than a fault in a statement?
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        None => e.as_db_error().is_none(),
        Some(c) => {
            c.code().starts_with("08")
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS
        }
    }
}

/// Least time between two "unreachable" warnings: an outage under load refuses many writes, and one line per
/// few seconds says it as well as a line per write.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// The database cannot be reached: the client may retry. Logged as a warning (at most every [`WARN_EVERY`], the
/// rest at debug), without the URL.
pub(crate) fn unavailable(cause: impl std::fmt::Display) -> Error {
    static LAST_WARNED_MS: AtomicU64 = AtomicU64::new(0);
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let now = u64::try_from(
        EPOCH
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis(),
    )
    .unwrap_or(u64::MAX);
    let last = LAST_WARNED_MS.load(Ordering::Relaxed);
    let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
    if due
        && LAST_WARNED_MS
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(%cause, "PostgreSQL unreachable; writes are refused with 503 until it is back");
    } else {
        tracing::debug!(%cause, "PostgreSQL unreachable");
    }
    Error::new(
        ErrorKind::Unavailable,
        "store_unavailable",
        "the database cannot be reached right now; retry shortly",
    )
}

/// The error with the server's own words: tokio-postgres displays a server error as just "db error".
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(src) => format!("{e}: {src}"),
            None => e.to_string(),
        },
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        if is_connection_error(&e) {
            unavailable(describe(&e))
        } else if e.code() == Some(&SqlState::DISK_FULL) {
            Error::storage_full()
        } else {
            Error::internal(format_args!("postgres: {}", describe(&e)))
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => unavailable(other),
        }
    }
}

/// Parses the URL, with a connect timeout unless it sets one.
fn config(url: &str) -> Result<tokio_postgres::Config> {
    let mut cfg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| Error::invalid("store", format_args!("not a PostgreSQL URL: {e}")))?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(CONNECT_TIMEOUT);
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("switchboard");
    }
    Ok(cfg)
}

/// Connects (creating the database if it is missing), migrates, and reads the log's state.
///
/// # Errors
/// `Invalid` for a URL that does not parse; `Unavailable` when the server cannot be reached; `Internal` when
/// migrating fails.
pub(super) async fn open(url: &str) -> Result<Opened> {
    let cfg = config(url)?;
    schema::create_database_if_missing(&cfg).await?;
    let manager = Manager::from_config(
        cfg.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(Error::internal)?;
    let state = {
        let mut client = pool.get().await?;
        schema::migrate(&mut client).await?;
        schema::log_state(&client).await?
    };
    let pruned_through = Arc::new(AtomicU64::new(state.pruned_through));
    let reader = query::PgReader::new(pool.clone(), state.epoch, pruned_through.clone());
    let last_seq = state.last_seq;
    Ok(Opened {
        reader: Arc::new(reader),
        last_seq,
        start: Box::new(move |sink: Arc<dyn CommitSink>| {
            let tail = tail::Tail::start(pool.clone(), cfg, sink, last_seq, pruned_through.clone());
            let queue = writer::start(pool, tail, pruned_through);
            Ok(Box::new(queue) as Box<dyn LogWriter>)
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_passwords_in_both_places() {
        assert_eq!(
            redact("postgres://sb:s3cret@db:5432/hub"),
            "postgres://sb:***@db:5432/hub"
        );
        assert_eq!(
            redact("postgresql://sb@db/hub?password=x&sslmode=disable"),
            "postgresql://sb@db/hub?password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres:///hub"), "postgres:///hub");
    }
}
