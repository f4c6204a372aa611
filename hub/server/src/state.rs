//! [`AppState`]: what every handler shares, cheap to clone.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use switchboard_core::Hub;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::security::{IpLimiter, Policy};

/// The shared state: one `Arc`, so the clone axum makes for every request and connection is one atomic
/// increment (it was seven, plus copies of the URL and the JWT key).
#[derive(Clone)]
pub struct AppState(Arc<StateInner>);

impl AppState {
    /// Wraps the state in its one `Arc`.
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

/// What [`AppState`] holds.
pub struct StateInner {
    /// The core; handlers reach it through a [`Caller`](switchboard_core::Caller).
    pub hub: Hub,
    /// The settings the hub started with.
    pub config: Arc<ServerConfig>,
    /// Host and Origin rules.
    pub policy: Arc<Policy>,
    /// The per-IP REST limiter, with `--rate-limit`.
    pub ip_limiter: Option<Arc<IpLimiter>>,
    /// Cancelled when the hub shuts down; every long-lived stream selects on it.
    pub shutdown: CancellationToken,
    /// Tracks WebSocket tasks so shutdown can wait for their close frames.
    pub tasks: TaskTracker,
    /// HTTP requests served, for `/metrics`.
    pub http_requests: Arc<AtomicU64>,
    /// `http://ADDR` as bound.
    pub url: String,
}
