//! The PostgreSQL database's shape: embedded, versioned migrations (recorded in `switchboard_schema`, run under
//! an advisory lock so hubs starting together migrate once), creating the database when it is missing, and the
//! log's state when a hub opens it.
//!
//! `events.except_conn` is the connection a Pusher `socket_id` leaves out: the tail delivers the event to everyone
//! else, on whichever hub holds that connection.
//!
//! Text columns keep JSON as the hub wrote it (not `jsonb`), so every hub replays an event byte for byte, keys in
//! their order.

use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::error::{Error, Result};

/// Any number, the same in every hub: the advisory lock migrations run under.
const MIGRATION_LOCK: i64 = 0x5357_4244; // "SWBD"

/// Migrations, applied in order.
const MIGRATIONS: &[&str] = &[
    // 1: agents, the event log with its counter and epoch, watch roots and questions.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     INSERT INTO meta (key, value) VALUES
         ('epoch', substr(md5(random()::text || clock_timestamp()::text), 1, 16)), ('pruned_through', '0');
     CREATE TABLE log_seq (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), last BIGINT NOT NULL);
     INSERT INTO log_seq (last) VALUES (0);
     CREATE TABLE agents (
         pos BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
         id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, model TEXT, status TEXT NOT NULL,
         config TEXT NOT NULL, tags TEXT NOT NULL, version BIGINT NOT NULL,
         created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
     CREATE INDEX agents_status ON agents (status);
     CREATE TABLE events (
         seq BIGINT PRIMARY KEY, id TEXT NOT NULL, channel TEXT NOT NULL, event TEXT NOT NULL,
         data TEXT NOT NULL, source TEXT NOT NULL, ts TEXT NOT NULL, replay_of BIGINT, except_conn TEXT);
     CREATE INDEX events_channel ON events (channel, seq);
     CREATE TABLE watches (root TEXT PRIMARY KEY, added_at TEXT NOT NULL);
     CREATE TABLE questions (
         question_id TEXT PRIMARY KEY, question TEXT NOT NULL, channel TEXT NOT NULL, options TEXT, key TEXT,
         via TEXT NOT NULL, asked_at TEXT NOT NULL, expires_at TEXT NOT NULL,
         state TEXT NOT NULL CHECK (state IN ('pending', 'answered', 'withdrawn')),
         answer TEXT, answered_by TEXT, answered_at TEXT);
     CREATE INDEX questions_pending ON questions (state, expires_at);
     CREATE INDEX questions_key ON questions (channel, key, asked_at) WHERE key IS NOT NULL;",
    // 2: each live hub's occupied channels, for the channels API to add up across hubs.
    "CREATE TABLE hub_seen (hub TEXT PRIMARY KEY, seen_at TIMESTAMPTZ NOT NULL);
     CREATE TABLE hub_channels (
         hub TEXT NOT NULL REFERENCES hub_seen ON DELETE CASCADE, channel TEXT NOT NULL,
         subscribers INTEGER NOT NULL, members TEXT, PRIMARY KEY (hub, channel));",
    // 3: `Idempotency-Key`s, each kept with the outcome of its write (SPEC §3), for every hub.
    "CREATE TABLE idempotency_keys (
         id TEXT PRIMARY KEY, body TEXT NOT NULL, outcome TEXT NOT NULL, created_at TEXT NOT NULL);
     CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);",
];

/// Creates the database the URL names when the server says it does not exist (the role needs `CREATEDB`). Two
/// hubs doing it at once is fine: the loser sees that it exists.
pub(super) async fn create_database_if_missing(cfg: &tokio_postgres::Config) -> Result<()> {
    let err = match connect(cfg).await {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if err.code() != Some(&SqlState::INVALID_CATALOG_NAME) {
        return Err(err.into());
    }
    let Some(name) = cfg.get_dbname() else {
        return Err(err.into());
    };
    let mut admin = cfg.clone();
    admin.dbname("postgres");
    let (client, conn) = admin.connect(NoTls).await?;
    let driver = tokio::spawn(conn);
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let made = client
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await;
    drop(client);
    let _ = driver.await;
    match made {
        Ok(()) => {
            tracing::info!(database = name, "created the PostgreSQL database");
            Ok(())
        }
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn connect(cfg: &tokio_postgres::Config) -> Result<(), tokio_postgres::Error> {
    let (client, conn) = cfg.connect(NoTls).await?;
    let driver = tokio::spawn(conn);
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// Brings the schema up to date, one transaction per migration, under the advisory lock.
pub(super) async fn migrate(client: &mut deadpool_postgres::Client) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS switchboard_schema (version INTEGER NOT NULL);
         INSERT INTO switchboard_schema (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM switchboard_schema);",
    )
    .await?;
    let have: i32 = tx
        .query_one("SELECT version FROM switchboard_schema", &[])
        .await?
        .get(0);
    let have = usize::try_from(have).map_err(Error::internal)?;
    if have > MIGRATIONS.len() {
        return Err(Error::internal(format_args!(
            "database schema version {have} is newer than this build ({}); upgrade switchboard",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have) {
        tx.batch_execute(sql).await?;
        let v = i32::try_from(i + 1).map_err(Error::internal)?;
        tx.execute("UPDATE switchboard_schema SET version = $1", &[&v])
            .await?;
        tracing::info!(version = i + 1, "applied migration");
    }
    tx.commit().await?;
    Ok(())
}

/// What the log says about itself when a hub opens it.
pub(super) struct LogState {
    pub(super) epoch: String,
    pub(super) pruned_through: u64,
    pub(super) last_seq: u64,
}

pub(super) async fn log_state(client: &deadpool_postgres::Client) -> Result<LogState> {
    let row = client
        .query_one(
            "SELECT (SELECT value FROM meta WHERE key = 'epoch'),
                    (SELECT value FROM meta WHERE key = 'pruned_through'),
                    (SELECT last FROM log_seq)",
            &[],
        )
        .await?;
    let last: i64 = row.get(2);
    Ok(LogState {
        epoch: row.get(0),
        pruned_through: row.get::<_, String>(1).parse().unwrap_or(0),
        last_seq: u64::try_from(last).unwrap_or(0),
    })
}
