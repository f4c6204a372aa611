//! Switchboard's MCP server (SPEC §8), over [`switchboard_core`].
//!
//! - [`server`]: [`SwitchboardMcp`], one per MCP session: who the caller is, and the `ServerHandler` glue.
//! - [`tools`]: every tool, each a call on the request's caller.
//! - [`progress`]: `notifications/progress` while a tool waits (`wait_for_event`, `ask_user`).
//! - [`elicit`]: `ask_user` in the IDE: form-mode elicitation, as a request (to 2025-11-25) or an `input_required`
//!   result (2026-07-28).
//! - [`prompts`]: the prompts, each reading the hub as the request's caller.
//! - [`args`]: the tools' own arguments and results (the rest are the core's types, with the core's schemas).
//! - [`resources`]: the resources, and following changes to them for both subscription eras
//!   (`resources/subscribe` and `subscriptions/listen`).
//! - [`http`]: the `/mcp` Streamable HTTP service and `/api/ide/{name}`, merged into the hub's router.
//! - [`bridge`]: `switchboard mcp`, stdio forwarded to the hub's `/mcp`.
//! - [`ide`]: the config snippet each IDE wants.
//! - `fuzz` (hidden): the entry point for the `mcp_args` fuzz target and the corpus replay test.

pub mod args;
pub mod bridge;
mod elicit;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod ide;
mod progress;
mod prompts;
pub mod resources;
pub mod server;
mod tools;

pub use http::router;
pub use server::{McpInfo, SwitchboardMcp};
