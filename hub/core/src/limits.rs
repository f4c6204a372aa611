//! Every limit of SPEC §10 and §2, once. Transports read them from here (the HTTP body limit, the events page, the
//! connection cap's default, the socket publish rate) instead of writing their own numbers.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Largest request body or client frame: 1 MiB. REST answers 413 past it, a WebSocket client gets a
/// `payload_too_large` error frame, MCP refuses the request.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Largest `config` object and largest event `data`, serialised: 64 KiB.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Most events one page of the log may hold.
pub const MAX_EVENTS_PAGE: usize = 1000;

/// Events in a page of the log when the caller does not say.
pub const DEFAULT_EVENTS_PAGE: usize = 100;

/// Most agents one page may hold.
pub const MAX_AGENTS_PAGE: usize = 500;

/// Agents in a page when the caller does not say.
pub const DEFAULT_AGENTS_PAGE: usize = 100;

/// Most subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// The connection cap when none is configured. Every bus session counts: WebSocket, SSE and MCP alike.
pub const DEFAULT_MAX_CONNECTIONS: usize = 50_000;

/// Events a connection may have queued before it counts as a slow consumer.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// Publishes per second a socket connection may make (WebSocket, Socket.IO, Pusher client events), sustained.
pub const SOCKET_PUBLISHES_PER_S: u32 = 100;

/// Publishes a socket connection may make in a burst.
pub const SOCKET_PUBLISH_BURST: u32 = 200;

/// The limiter of one socket connection's publishes.
pub(crate) fn socket_publish_limiter() -> DefaultDirectRateLimiter {
    let per_s = NonZeroU32::new(SOCKET_PUBLISHES_PER_S).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(SOCKET_PUBLISH_BURST).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(per_s).allow_burst(burst))
}

/// Most agents in one `POST /api/agents/batch`.
pub const MAX_BATCH_AGENTS: usize = 1000;
