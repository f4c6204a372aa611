//! Settings for `serve`, merged with the precedence flag > env > `switchboard.toml` > default. clap resolves
//! flag and env (each flag has an env twin); this module adds the file and the defaults.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde::Deserialize;
use switchboard_core::StoreConfig;
use switchboard_server::ServerConfig;

/// Flags shared by every subcommand that needs the data dir.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Where switchboard.db, token and switchboard.toml live [default: $XDG_DATA_HOME/switchboard].
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Config file [default: ./switchboard.toml if present, else <data dir>/switchboard.toml].
    #[arg(long, env = "SWITCHBOARD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

/// `switchboard serve`'s flags; each has an env twin and a key in `switchboard.toml`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to bind; anything but loopback requires --require-token.
    #[arg(long, env = "SWITCHBOARD_BIND")]
    pub bind: Option<IpAddr>,
    /// Port; 0 picks a free one [default: 4747].
    #[arg(long, env = "SWITCHBOARD_PORT")]
    pub port: Option<u16>,
    /// Require the token (or a JWT signed with it) on every endpoint but /health.
    #[arg(long, env = "SWITCHBOARD_REQUIRE_TOKEN", num_args = 0..=1, default_missing_value = "true")]
    pub require_token: Option<bool>,
    /// Accept this Host header too (repeatable; comma-separated in the env twin).
    #[arg(long, env = "SWITCHBOARD_ALLOW_HOST", value_delimiter = ',')]
    pub allow_host: Vec<String>,
    /// Accept this Origin too, e.g. https://app.example.com or http://dev.box:* (repeatable).
    #[arg(long, env = "SWITCHBOARD_ALLOW_ORIGIN", value_delimiter = ',')]
    pub allow_origin: Vec<String>,
    /// Limit REST requests per client IP to N per second (off by default).
    #[arg(long, env = "SWITCHBOARD_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Most concurrent socket connections [default: 50000].
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds between WebSocket pings [default: 25].
    #[arg(long, env = "SWITCHBOARD_HEARTBEAT_S")]
    pub heartbeat_s: Option<u64>,
    /// Close a WebSocket that sent nothing, not even a pong, for this many seconds [default: 60].
    #[arg(long, env = "SWITCHBOARD_IDLE_TIMEOUT_S")]
    pub idle_timeout_s: Option<u64>,
    /// Close an MCP session with no request and no open stream for this many seconds, freeing its connection
    /// slot; the IDE initializes again when it comes back [default: 1800].
    #[arg(long, env = "SWITCHBOARD_MCP_IDLE_TIMEOUT_S")]
    pub mcp_idle_timeout_s: Option<u64>,
    /// Events one connection may have queued before it is closed with 4008 [default: 4096].
    #[arg(long, env = "SWITCHBOARD_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Keep at most this many events [default: 100000].
    #[arg(long, env = "SWITCHBOARD_RETENTION_EVENTS")]
    pub retention_events: Option<u64>,
    /// Keep events at most this many days [default: 7].
    #[arg(long, env = "SWITCHBOARD_RETENTION_DAYS")]
    pub retention_days: Option<u64>,
    /// The Pusher app id [default: created on first start in <data dir>/pusher.json].
    #[arg(long, env = "SWITCHBOARD_PUSHER_APP_ID")]
    pub pusher_app_id: Option<String>,
    /// The Pusher app key, what pusher-js connects with [default: from <data dir>/pusher.json].
    #[arg(long, env = "SWITCHBOARD_PUSHER_KEY")]
    pub pusher_key: Option<String>,
    /// The Pusher app secret, which signs channel auth and HTTP API requests [default: from <data dir>/pusher.json].
    #[arg(long, env = "SWITCHBOARD_PUSHER_SECRET", hide_env_values = true)]
    pub pusher_secret: Option<String>,
    /// The GitHub webhook secret that signs deliveries to /api/webhooks/github [default: none, so every delivery
    /// is refused].
    #[arg(long, env = "SWITCHBOARD_GITHUB_SECRET", hide_env_values = true)]
    pub github_secret: Option<String>,
    /// Where agents and the log live: `sqlite` (the file in the data dir) or a postgres://user@host/db URL that
    /// several hubs share [default: sqlite].
    #[arg(long, env = "SWITCHBOARD_STORE", hide_env_values = true, value_parser = parse_store)]
    pub store: Option<StoreConfig>,
    /// Watch this directory for file changes (repeatable): events on the `files` channel.
    #[arg(
        long = "watch",
        value_name = "DIR",
        env = "SWITCHBOARD_WATCH",
        value_delimiter = ','
    )]
    pub watch: Vec<PathBuf>,
}

/// `switchboard.toml`: every key is optional and named like its flag.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[allow(missing_docs)] // Each field is the flag of the same name, documented on `ServeArgs`.
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    pub require_token: Option<bool>,
    pub allow_host: Option<Vec<String>>,
    pub allow_origin: Option<Vec<String>>,
    pub rate_limit: Option<u32>,
    pub max_connections: Option<usize>,
    pub heartbeat_s: Option<u64>,
    pub idle_timeout_s: Option<u64>,
    pub mcp_idle_timeout_s: Option<u64>,
    pub queue_capacity: Option<usize>,
    pub retention_events: Option<u64>,
    pub retention_days: Option<u64>,
    pub pusher_app_id: Option<String>,
    pub pusher_key: Option<String>,
    pub pusher_secret: Option<String>,
    pub github_secret: Option<String>,
    pub watch: Option<Vec<PathBuf>>,
    pub store: Option<String>,
    /// Client subcommands: the hub URL.
    pub hub: Option<String>,
}

/// The platform data dir: `$XDG_DATA_HOME/switchboard` on Linux.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("switchboard")
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Loads the config file: the named one (which must exist), else `./switchboard.toml`, else the data dir's.
///
/// # Errors
/// When a named file is missing or any file does not parse.
pub fn load_file(common: &CommonArgs) -> Result<FileConfig> {
    if let Some(p) = &common.config {
        return read_file(p);
    }
    let local = PathBuf::from("switchboard.toml");
    if local.is_file() {
        return read_file(&local);
    }
    let dir = common.data_dir.clone().unwrap_or_else(default_data_dir);
    let in_dir = dir.join("switchboard.toml");
    if in_dir.is_file() {
        read_file(&in_dir)
    } else {
        Ok(FileConfig::default())
    }
}

/// The data dir after flag > env > file > default.
pub fn data_dir(common: &CommonArgs, file: &FileConfig) -> PathBuf {
    common
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(default_data_dir)
}

fn parse_store(s: &str) -> Result<StoreConfig, String> {
    StoreConfig::parse(s).map_err(|e| e.message().to_owned())
}

/// Merges flags/env (already in `args`), the file and the defaults.
///
/// # Errors
/// When the file's `store` is neither `sqlite` nor a PostgreSQL URL.
pub fn server_config(
    args: &ServeArgs,
    common: &CommonArgs,
    file: FileConfig,
) -> Result<ServerConfig> {
    let mut c = ServerConfig::new(data_dir(common, &file));
    c.store = match (&args.store, &file.store) {
        (Some(s), _) => s.clone(),
        (None, Some(s)) => StoreConfig::parse(s)
            .map_err(|e| anyhow::anyhow!("switchboard.toml: {}", e.message()))?,
        (None, None) => StoreConfig::default(),
    };
    if let Some(b) = args.bind.or(file.bind) {
        c.bind = b;
    }
    if let Some(p) = args.port.or(file.port) {
        c.port = p;
    }
    c.require_token = args.require_token.or(file.require_token).unwrap_or(false);
    c.allow_hosts = if args.allow_host.is_empty() {
        file.allow_host.unwrap_or_default()
    } else {
        args.allow_host.clone()
    };
    c.allow_origins = if args.allow_origin.is_empty() {
        file.allow_origin.unwrap_or_default()
    } else {
        args.allow_origin.clone()
    };
    c.rate_limit = args.rate_limit.or(file.rate_limit);
    if let Some(m) = args.max_connections.or(file.max_connections) {
        c.max_connections = m;
    }
    if let Some(h) = args.heartbeat_s.or(file.heartbeat_s) {
        c.heartbeat = std::time::Duration::from_secs(h.max(1));
    }
    if let Some(t) = args.idle_timeout_s.or(file.idle_timeout_s) {
        c.idle_timeout = std::time::Duration::from_secs(t.max(1));
    }
    if let Some(t) = args.mcp_idle_timeout_s.or(file.mcp_idle_timeout_s) {
        c.mcp_idle_timeout = std::time::Duration::from_secs(t.max(1));
    }
    if let Some(q) = args.queue_capacity.or(file.queue_capacity) {
        c.queue_capacity = q;
    }
    if let Some(n) = args.retention_events.or(file.retention_events) {
        c.retention.max_events = n;
    }
    if let Some(d) = args.retention_days.or(file.retention_days) {
        c.retention.max_age = std::time::Duration::from_secs(d.saturating_mul(24 * 3600));
    }
    c.pusher.app_id = args.pusher_app_id.clone().or(file.pusher_app_id);
    c.pusher.key = args.pusher_key.clone().or(file.pusher_key);
    c.pusher.secret = args.pusher_secret.clone().or(file.pusher_secret);
    c.github_secret = args
        .github_secret
        .clone()
        .or(file.github_secret)
        .filter(|s| !s.is_empty());
    c.watch = if args.watch.is_empty() {
        file.watch.unwrap_or_default()
    } else {
        args.watch.clone()
    };
    Ok(c)
}
