//! Switchboard's MCP server (SPEC §8), over [`switchboard_core`].
//!
//! - [`server`]: [`SwitchboardMcp`], every tool and resource, implemented once; resource notifications for both
//!   protocol eras (`resources/subscribe` and `subscriptions/listen`).
//! - [`http`]: the `/mcp` Streamable HTTP service and `/api/ide/{name}`, merged into the hub's router.
//! - [`bridge`]: `switchboard mcp`, stdio forwarded to the hub's `/mcp`.
//! - [`ide`]: the config snippet each IDE wants.

pub mod bridge;
pub mod http;
pub mod ide;
pub mod server;

pub use http::router;
pub use server::{McpInfo, SwitchboardMcp};
