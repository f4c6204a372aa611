//! Switchboard's core: the domain, the durable store and the bus. It knows no transport, no Tauri and no MCP.
//!
//! - [`model`]: agents and their validation, the event envelope, channel names and subscription patterns.
//! - [`store`]: SQLite in WAL mode, embedded migrations, the single writer thread (commit, then broadcast) and
//!   pooled readers.
//! - [`bus`]: connections, the subscription index, bounded per-connection queues, slow-consumer cut-off and exact
//!   resume from the log.
//! - [`hub`]: [`Hub`], the handle transports hold: mutations, publishes, questions, retention.
//! - [`questions`]: pending `ask_user` questions; the first answer from any transport wins.
//! - [`auth`]: the hub token, JWT claims, constant-time comparison and the socket publish limiter.
//! - [`error`]: [`Error`] with stable codes; transports map [`ErrorKind`] to their own statuses.

pub mod auth;
pub mod bus;
pub mod error;
pub mod hub;
pub mod model;
pub mod questions;
pub mod store;

pub use auth::{Auth, Principal, Secret};
pub use bus::{Bus, ClientInfo, Delivery, Session, SessionHandle, SubscribeOpts, Subscribed};
pub use error::{Error, ErrorKind, Result};
pub use hub::{AskedQuestion, Hub, HubConfig, Published};
pub use model::{Agent, AgentPatch, Event, EventDraft, NewAgent, Pattern, Source};
pub use store::{AgentQuery, Retention};

/// The hub's version, as `/health` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
