//! Switchboard's transports and the `serve` entry point, over [`switchboard_core`].
//!
//! - [`app`]: [`router`] (every route, built apart from binding so tests can drive it) and [`start`], which opens
//!   the data dir, binds and runs until the shutdown token fires.
//! - [`config`]: [`ServerConfig`] and its defaults.
//! - [`security`]: Host and Origin checks, CORS, credentials and the REST rate limit (SPEC §10).
//! - [`rest`]: the REST API (SPEC §3) and the dev-webhook compatibility endpoints.
//! - [`ws`]: WebSocket `/ws` (SPEC §4).
//! - [`sse`]: SSE `/events` and `/api/dev/events` (SPEC §5).
//! - [`ui`]: the window's files, embedded, at `/`.
//! - [`metrics`]: `/metrics` in Prometheus text.
//! - [`error`]: core errors as HTTP responses, and the JSON body extractor.
//! - [`state`]: the state every handler shares.

pub mod app;
pub mod config;
pub mod error;
pub mod metrics;
pub mod rest;
pub mod security;
pub mod sse;
pub mod state;
pub mod ui;
pub mod ws;

pub use app::{RunningHub, StartError, router, start, start_with};
pub use config::ServerConfig;
pub use state::AppState;
