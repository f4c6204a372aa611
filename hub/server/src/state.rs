//! [`AppState`]: what every handler shares, cheap to clone.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use switchboard_core::{Auth, Hub};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::security::{IpLimiter, Policy};

/// The shared state: one `Arc`, so the clone axum makes for every request and connection is one atomic
/// increment (it was seven, plus copies of the URL and the JWT key).
#[derive(Clone)]
pub struct AppState(Arc<StateInner>);

impl AppState {
    pub fn new(inner: StateInner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}

pub struct StateInner {
    pub hub: Hub,
    pub auth: Auth,
    pub config: Arc<ServerConfig>,
    pub policy: Arc<Policy>,
    pub ip_limiter: Option<Arc<IpLimiter>>,
    /// Cancelled when the hub shuts down; every long-lived stream selects on it.
    pub shutdown: CancellationToken,
    /// Tracks WebSocket tasks so shutdown can wait for their close frames.
    pub tasks: TaskTracker,
    pub http_requests: Arc<AtomicU64>,
    /// `http://ADDR` as bound.
    pub url: String,
}

impl AppState {
    /// Refuses a new socket when the connection cap is reached.
    ///
    /// # Errors
    /// `Unavailable` (503).
    pub fn admit_connection(&self) -> Result<(), switchboard_core::Error> {
        if self.hub.bus().connection_count() >= self.config.max_connections {
            return Err(switchboard_core::Error::new(
                switchboard_core::ErrorKind::Unavailable,
                "too_many_connections",
                format!(
                    "the hub is at its limit of {} connections",
                    self.config.max_connections
                ),
            ));
        }
        Ok(())
    }
}
