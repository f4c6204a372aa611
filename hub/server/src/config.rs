//! [`ServerConfig`]: everything `serve` needs, with the defaults SPEC §1 and §10 give. The CLI fills it from
//! flags, env and `switchboard.toml`; tests and the desktop app build it directly.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use switchboard_core::limits::{DEFAULT_MAX_CONNECTIONS, DEFAULT_QUEUE_CAPACITY};
use switchboard_core::{PusherConfig, Retention, StoreConfig};

/// The hub's settings. Every field's default is what an unconfigured `switchboard serve` does.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind; loopback unless token auth is on.
    pub bind: IpAddr,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// Where `switchboard.db` (with the default store) and `token` live.
    pub data_dir: PathBuf,
    /// Which database holds agents and the log (`--store`): the SQLite file, or a PostgreSQL shared by hubs.
    pub store: StoreConfig,
    /// Every endpoint but `/health` needs the token or a JWT signed with it.
    pub require_token: bool,
    /// Extra `Host` values accepted besides loopback names (DNS-rebinding defence).
    pub allow_hosts: Vec<String>,
    /// Extra `Origin`s accepted besides localhost, 127.0.0.1 and the desktop window. `http://host:*` matches any port.
    pub allow_origins: Vec<String>,
    /// REST requests per second per client IP; `None` (the default) means no REST rate limit.
    pub rate_limit: Option<u32>,
    /// Most concurrent connections: WebSocket, SSE and MCP sessions alike.
    pub max_connections: usize,
    /// WebSocket ping interval.
    pub heartbeat: Duration,
    /// A WebSocket silent for this long is closed.
    pub idle_timeout: Duration,
    /// Events a connection may have queued before it is cut off as a slow consumer.
    pub queue_capacity: usize,
    /// What the log keeps.
    pub retention: Retention,
    /// The Pusher app's id, key and secret; what is absent comes from `<data dir>/pusher.json`.
    pub pusher: PusherConfig,
    /// The GitHub webhook secret (`--github-secret`); without one every delivery is refused.
    pub github_secret: Option<String>,
    /// Directories the file watcher follows from the start (`--watch`), besides those added over the API.
    pub watch: Vec<PathBuf>,
    /// An MCP session with no request and no open stream for this long is closed, freeing its connection slot.
    pub mcp_idle_timeout: Duration,
}

impl ServerConfig {
    /// The defaults, over `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 4747,
            data_dir: data_dir.into(),
            store: StoreConfig::default(),
            require_token: false,
            allow_hosts: Vec::new(),
            allow_origins: Vec::new(),
            rate_limit: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            heartbeat: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            retention: Retention::default(),
            pusher: PusherConfig::default(),
            github_secret: None,
            watch: Vec::new(),
            mcp_idle_timeout: Duration::from_secs(30 * 60),
        }
    }
}
