//! The MCP routes on the hub's port: Streamable HTTP at `/mcp` and the IDE snippets at `/api/ide/{name}`. They are
//! merged into the hub's router, behind its Host, Origin and credential checks, so rmcp's own Host list is off and
//! the caller the guard found reaches every tool.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use switchboard_core::limits::MAX_BODY_BYTES;
use switchboard_core::{Error, Hub, Principal, Source};
use tokio_util::sync::CancellationToken;

use crate::ide::{Ide, Target, snippet};
use crate::server::{McpInfo, SwitchboardMcp};

/// `/mcp` and `/api/ide/{name}`. `ide` says where IDEs find the hub; its token is filled in per request, for the
/// callers allowed to have it. `shutdown` ends open MCP streams.
pub fn router(hub: Hub, info: McpInfo, ide: Target, shutdown: CancellationToken) -> Router {
    let info = Arc::new(info);
    let mut sessions = LocalSessionManager::default();
    // IDE sessions sit idle for hours; rmcp's default drops them after 5 minutes of silence.
    sessions.session_config.keep_alive = Some(Duration::from_secs(24 * 3600));
    let config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_cancellation_token(shutdown)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        // The hub's guard already checked Host (with --allow-host) and Origin before this service runs.
        .disable_allowed_hosts();
    let mcp_hub = hub.clone();
    let service = StreamableHttpService::new(
        move || Ok(SwitchboardMcp::new(mcp_hub.clone(), info.clone())),
        Arc::new(sessions),
        config,
    );
    let ide = Arc::new(ide);
    let snippets = move |Path(name): Path<String>,
                         Query(q): Query<HashMap<String, String>>,
                         Extension(p): Extension<Principal>| {
        let target = Target {
            token: hub
                .caller(p, Source::Rest)
                .hub_token()
                .map(|t| t.expose().to_owned()),
            ..Target::clone(&ide)
        };
        let http = q.get("http").is_some_and(|v| v != "0" && v != "false");
        async move { ide_snippet(&name, http, &target) }
    };
    Router::new()
        .nest_service("/mcp", service)
        .route("/api/ide/{name}", get(snippets))
}

fn ide_snippet(name: &str, http: bool, target: &Target) -> Response {
    match Ide::parse(name) {
        Some(ide) => axum::Json(snippet(ide, http, target)).into_response(),
        None => {
            let e = Error::not_found(format!(
                "no IDE named {name:?}; try claude, cursor or vscode"
            ));
            (axum::http::StatusCode::NOT_FOUND, axum::Json(e.body())).into_response()
        }
    }
}
