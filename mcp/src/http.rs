//! The MCP routes on the hub's port: Streamable HTTP at `/mcp` and the IDE snippets at `/api/ide/{name}`. They are
//! merged into the hub's router, behind its Host, Origin and token checks, so rmcp's own Host list is off.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use switchboard_core::Hub;
use tokio_util::sync::CancellationToken;

use crate::ide::{Ide, Target, snippet};
use crate::server::{McpInfo, SwitchboardMcp};

/// Largest MCP request body, as for REST.
const MAX_BODY: usize = 1024 * 1024;

/// `/mcp` and `/api/ide/{name}`. `shutdown` ends open MCP streams.
pub fn router(hub: Hub, info: McpInfo, ide: Target, shutdown: CancellationToken) -> Router {
    let info = Arc::new(info);
    let mut sessions = LocalSessionManager::default();
    // IDE sessions sit idle for hours; rmcp's default drops them after 5 minutes of silence.
    sessions.session_config.keep_alive = Some(Duration::from_secs(24 * 3600));
    let config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_cancellation_token(shutdown)
        .with_max_request_body_bytes(MAX_BODY)
        // The hub's guard already checked Host (with --allow-host) and Origin before this service runs.
        .disable_allowed_hosts();
    let service = StreamableHttpService::new(
        move || Ok(SwitchboardMcp::new(hub.clone(), info.clone())),
        Arc::new(sessions),
        config,
    );
    let ide = Arc::new(ide);
    Router::new().nest_service("/mcp", service).route(
        "/api/ide/{name}",
        get(
            move |Path(name): Path<String>,
                  Query(q): Query<std::collections::HashMap<String, String>>| {
                let ide = ide.clone();
                async move {
                    ide_snippet(
                        &name,
                        q.get("http").is_some_and(|v| v != "0" && v != "false"),
                        &ide,
                    )
                }
            },
        ),
    )
}

fn ide_snippet(name: &str, http: bool, target: &Target) -> Response {
    match Ide::parse(name) {
        Some(ide) => axum::Json(snippet(ide, http, target)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"code": "not_found", "message": format!("no IDE named {name:?}; try claude, cursor or vscode")}})),
        )
            .into_response(),
    }
}
