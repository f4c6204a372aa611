//! Switchboard's core: the domain, the access rules, the durable store and the bus. It knows no transport, no
//! Tauri and no MCP.
//!
//! - [`hub`]: [`Hub`], the handle the app holds: it opens the data dir, authenticates callers, runs retention.
//! - [`caller`]: [`Caller`], every operation that reads or changes state, checked against who is calling. The
//!   only way in for transports, so none of them decides who may do what.
//! - [`auth`]: the hub token, JWT claims, constant-time comparison, [`Principal`] and the rules it obeys.
//! - [`model`]: agents and their validation, the event envelope, channel names and subscription patterns.
//! - [`bus`]: connections ([`Session`]), the subscription index, bounded per-connection queues, slow-consumer
//!   cut-off and exact resume from the log.
//! - `store` (private): the storage seam (a reader and a writer trait) and its two stores: SQLite in WAL mode (the
//!   default; one writer thread, commit, then broadcast) and PostgreSQL for several hubs sharing one ordered log
//!   (each hub tails the log as its only broadcast source).
//! - [`pusher`]: the Pusher app's credentials, its signatures (channel auth, sign-in, HTTP API), and the Pusher
//!   spelling of hub channels.
//! - [`presence`]: who is in each `presence-` channel, and who each connection signed in as.
//! - [`github`]: GitHub webhook deliveries: the `X-Hub-Signature-256` check and the mapping to project events.
//! - [`questions`]: pending `ask_user` questions; the first answer from any transport wins.
//! - [`idempotency`]: `Idempotency-Key`s: a retried write is done once, its first outcome kept with it in the store.
//! - [`watcher`]: the file watcher: roots, ignore rules, notifications as `file.*` events on `files`.
//! - [`limits`]: every size, count and rate limit, once.
//! - [`error`]: [`Error`] with stable codes and one JSON shape; transports map [`ErrorKind`] to their statuses.
//! - `fuzz` (hidden): entry points for the fuzz targets in `fuzz/` and the corpus replay test.

pub mod auth;
pub mod bus;
pub mod caller;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod github;
pub mod hub;
pub mod idempotency;
pub mod limits;
pub mod model;
pub mod presence;
pub mod pusher;
pub mod questions;
mod store;
pub mod watcher;

pub use auth::{Auth, JwtClaims, Principal, Secret};
pub use bus::{
    BusConfig, ChannelSnapshot, ClientInfo, ClientSnapshot, Delivery, Membership, Resume, Session,
    SessionHandle, Subscribed,
};
pub use caller::Caller;
pub use error::{Error, ErrorKind, Result};
pub use hub::{Hub, HubConfig, Published};
pub use idempotency::RequestKey;
pub use model::{
    Agent, AgentPage, AgentPatch, AgentQuery, Event, EventsPage, EventsQuery, NewAgent, NewEvent,
    Pattern, Source,
};
pub use presence::PresenceMember;
pub use pusher::{PusherApp, PusherConfig};
pub use questions::{Answer, Ask, AskedQuestion, PendingQuestion, Via};
pub use store::{DatabaseReport, Retention, StoreConfig, inspect as inspect_database};

/// The hub's version, as `/health` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
