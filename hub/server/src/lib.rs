//! Switchboard's transports and the `serve` entry point, over [`switchboard_core`].
//!
//! - [`app`]: [`router`] (every route, built apart from binding so tests can drive it) and [`start`], which opens
//!   the data dir, binds and runs until the shutdown token fires.
//! - [`config`]: [`ServerConfig`] and its defaults.
//! - [`lock`]: one hub per data dir: the lock file with the holder's pid and URL.
//! - [`security`]: the guard: Host and Origin checks, CORS, the REST rate limit, and who the caller is (SPEC §10).
//! - [`error`]: core errors as HTTP responses, the JSON body extractor, and the caller extractors.
//! - [`idempotency`]: the `Idempotency-Key` layer on the REST mutations (SPEC §3).
//! - [`rest`]: the REST API (SPEC §3) and the dev-webhook compatibility endpoints.
//! - [`github`]: `POST /api/webhooks/github`, GitHub deliveries as project events.
//! - `connect`: opening a WebSocket or SSE connection: the connect-time query and the session.
//! - [`ws`]: WebSocket `/ws` (SPEC §4): the connection loop (shared with Pusher through its `Wire` trait), and
//!   its frames.
//! - [`sse`]: SSE `/events` and `/api/dev/events` (SPEC §5).
//! - [`socketio`]: Socket.IO on namespaces `/` and `/ws` (SPEC §6), a socketioxide layer on the same router.
//! - [`pusher`]: the Pusher protocol 7 at `/app/{key}`, its signed HTTP API and auth endpoints (SPEC §7).
//! - [`ui`]: the window's files, embedded, at `/`.
//! - [`peer`]: the listener's connections, each closable from outside (what Socket.IO's slow consumers need).
//! - [`metrics`]: `/metrics` in Prometheus text.
//! - [`state`]: the state every handler shares.
//! - `fuzz` (hidden): entry points for the fuzz targets in `fuzz/` and the corpus replay test.
//!
//! No handler checks a permission: each turns its request into calls on a
//! [`Caller`](switchboard_core::Caller), which does.

pub mod app;
pub mod config;
mod connect;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod github;
pub mod idempotency;
pub mod lock;
pub mod metrics;
pub mod peer;
pub mod pusher;
pub mod rest;
pub mod security;
pub mod socketio;
pub mod sse;
pub mod state;
pub mod ui;
pub mod ws;

pub use app::{RunningHub, StartError, router, start, start_with};
pub use config::ServerConfig;
pub use state::AppState;
