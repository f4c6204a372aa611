//! The MCP routes on the hub's port: Streamable HTTP at `/mcp` and the IDE snippets at `/api/ide/{name}`. They are
//! merged into the hub's router, behind its Host, Origin and credential checks, so rmcp's own Host list is off and
//! the caller the guard found reaches every tool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use switchboard_core::limits::MAX_BODY_BYTES;
use switchboard_core::{ClientInfo, Error, Hub, Principal, Resume, Session, Source};
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
    let mcp_hub_for_admit = hub.clone();
    let service = StreamableHttpService::new(
        move || Ok(SwitchboardMcp::new(mcp_hub.clone(), info.clone())),
        Arc::new(sessions),
        config,
    );
    let ide = Arc::new(ide);
    let snippets = move |name: Result<Path<String>, PathRejection>,
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
        async move {
            match name {
                Ok(Path(name)) => ide_snippet(&name, http, &target),
                Err(r) => {
                    let e = Error::bad_request("bad_path", r.body_text());
                    (StatusCode::BAD_REQUEST, axum::Json(e.body())).into_response()
                }
            }
        }
    };
    let mcp = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(mcp_hub_for_admit, admit));
    Router::new()
        .route("/api/ide/{name}", get(snippets))
        .merge(mcp)
}

/// A new MCP session's bus connection, opened before rmcp sees the `initialize` that asks for it; the server
/// takes it at `initialize`. Held in the request, so it is let go if no session comes of it.
#[derive(Clone)]
pub(crate) struct Admitted(pub(crate) Arc<Mutex<Option<Session>>>);

/// Opens the bus connection of a request that would start an MCP session (a POST without `Mcp-Session-Id`, not
/// naming another method), as the request's caller. A hub at its connection cap refuses it the way it refuses a
/// WebSocket or SSE client: HTTP 503 with the error body, before rmcp makes a session.
async fn admit(State(hub): State<Hub>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let opens_session = req.method() == Method::POST
        && !headers.contains_key("mcp-session-id")
        && headers
            .get("mcp-method")
            .is_none_or(|m| m.as_bytes() == b"initialize");
    if opens_session {
        let p = req
            .extensions()
            .get::<Principal>()
            .cloned()
            .unwrap_or(Principal::Anonymous);
        let caller = hub.caller(p, Source::Mcp);
        match caller.follow(ClientInfo::new("mcp"), None, &Resume::default()) {
            Ok(session) => {
                req.extensions_mut()
                    .insert(Admitted(Arc::new(Mutex::new(Some(session)))));
            }
            Err(e) => {
                let status = StatusCode::from_u16(e.kind().http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return (status, axum::Json(e.body())).into_response();
            }
        }
    }
    next.run(req).await
}

fn ide_snippet(name: &str, http: bool, target: &Target) -> Response {
    match Ide::parse(name) {
        Some(ide) => axum::Json(snippet(ide, http, target)).into_response(),
        None => {
            let e = Error::not_found(format!(
                "no IDE named {name:?}; try claude, cursor or vscode"
            ));
            (StatusCode::NOT_FOUND, axum::Json(e.body())).into_response()
        }
    }
}
