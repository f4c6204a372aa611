//! The Switchboard app: the hub with every transport mounted, as `switchboard serve` (and later the desktop app)
//! starts it, and the shell clients.
//!
//! - [`start`]: `switchboard-server` with the MCP routes of `switchboard-mcp` ([`mcp_routes`]) merged in.
//! - [`config`]: flag > env > `switchboard.toml` > default for `serve`.
//! - [`client`]: `tail`, `publish` and `agents …` over the hub's public API.
//! - [`bulk`]: `agents create --from FILE`, in chunks of one transaction each, with a progress bar.
//! - [`recording`]: `record` (the log as NDJSON) and `replay` (a recording published again, in its timing).
//! - [`autostart`]: `switchboard mcp` finds a hub, or starts one in the background.
//! - [`logging`]: the log on stderr, shared with the desktop app.
//! - [`doctor`]: `switchboard doctor`: the hub, the data dir, the database and the IDE configs, checked.
//! - [`types`]: `switchboard types`: TypeScript declarations inferred from the logged events.

pub mod autostart;
pub mod bulk;
pub mod client;
pub mod config;
pub mod doctor;
pub mod logging;
pub mod recording;
pub mod types;

/// One hub per data dir: its lock file, with the holder's pid and URL.
pub use switchboard_server::lock;

use std::path::{Path, PathBuf};

use axum::Router;
use switchboard_mcp::ide::Target;
use switchboard_server::{AppState, RunningHub, ServerConfig, StartError};
use tokio_util::sync::CancellationToken;

/// Where client commands look for a hub when nothing says otherwise.
pub const DEFAULT_HUB_URL: &str = "http://127.0.0.1:4747";

/// Starts the hub with REST, WebSocket, SSE and MCP on one port.
///
/// # Errors
/// As [`switchboard_server::start`].
pub async fn start(
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<RunningHub, StartError> {
    let mcp_stop = shutdown.child_token();
    switchboard_server::start_with(config, shutdown, move |state| mcp_routes(state, mcp_stop)).await
}

/// The MCP routes (`/mcp`, `/api/ide/{name}`) for a hub's state; `shutdown` ends open MCP streams. [`start`]
/// merges them into the hub's router; tests build the same router to drive it in-process.
pub fn mcp_routes(state: &AppState, shutdown: CancellationToken) -> Router {
    // The token goes into a snippet per request, for the callers allowed to have it.
    let target = ide_target(&state.url, None, state.hub.data_dir());
    let info = switchboard_mcp::McpInfo {
        url: state.url.clone(),
    };
    let idle = state.config.mcp_idle_timeout;
    switchboard_mcp::router(state.hub.clone(), info, target, shutdown, idle)
}

/// The command an IDE should run for `switchboard mcp`: `switchboard` when that is on `PATH` (and is this binary,
/// when this binary is `switchboard`), else the full path of this binary or of a `switchboard` beside it (the
/// desktop app embeds the hub but is not the CLI).
fn own_command() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "switchboard".into();
    };
    let exe = exe.canonicalize().unwrap_or(exe);
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("switchboard"))
            .find(|p| p.is_file())
            .and_then(|p| p.canonicalize().ok())
    });
    if exe.file_name().is_some_and(|n| n == "switchboard") {
        return if on_path.as_deref() == Some(exe.as_path()) {
            "switchboard".into()
        } else {
            exe.display().to_string()
        };
    }
    if on_path.is_some() {
        return "switchboard".into();
    }
    match exe
        .parent()
        .map(|d| d.join("switchboard"))
        .filter(|p| p.is_file())
    {
        Some(sibling) => sibling.display().to_string(),
        None => "switchboard".into(),
    }
}

/// How an IDE reaches the hub at `hub_url` whose data dir is `data_dir`.
pub fn ide_target(hub_url: &str, token: Option<String>, data_dir: &Path) -> Target {
    let mut mcp_args = Vec::new();
    if hub_url.trim_end_matches('/') != DEFAULT_HUB_URL {
        mcp_args.extend(["--hub".to_owned(), hub_url.to_owned()]);
    }
    let default_dir: PathBuf = config::default_data_dir();
    if data_dir != default_dir {
        mcp_args.extend(["--data-dir".to_owned(), data_dir.display().to_string()]);
    }
    Target {
        hub_url: hub_url.to_owned(),
        command: own_command(),
        mcp_args,
        token,
    }
}
