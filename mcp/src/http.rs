//! The MCP routes on the hub's port: Streamable HTTP at `/mcp` and the IDE snippets at `/api/ide/{name}`. They are
//! merged into the hub's router, behind its Host, Origin and credential checks, so rmcp's own Host list is off and
//! the caller the guard found reaches every tool.
//!
//! An MCP session holds a slot of the connection cap. One left idle (no request, and no open GET or push stream)
//! for the idle timeout (30 minutes by default) is closed, which frees its slot; an IDE that comes back gets 404
//! for it and initializes again, as the MCP spec says.

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
use futures_util::StreamExt;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use switchboard_core::limits::MAX_BODY_BYTES;
use switchboard_core::{ClientInfo, Error, Hub, Principal, Resume, Session, Source};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ide::{Ide, Target, snippet};
use crate::server::{McpInfo, SwitchboardMcp};

/// How long an MCP session may sit idle (no request, no open stream) before it is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// `/mcp` and `/api/ide/{name}`. `ide` says where IDEs find the hub; its token is filled in per request, for the
/// callers allowed to have it. `shutdown` ends open MCP streams. A session idle for `idle` is closed.
pub fn router(
    hub: Hub,
    info: McpInfo,
    ide: Target,
    shutdown: CancellationToken,
    idle: Duration,
) -> Router {
    let info = Arc::new(info);
    let mut sessions = LocalSessionManager::default();
    // rmcp's own timeout counts only messages, so a session with an open GET stream and nothing to say would be
    // dropped: the hub closes idle sessions itself (`Activity`), counting open streams as use.
    sessions.session_config.keep_alive = None;
    let sessions = Arc::new(sessions);
    let activity = Activity::start(sessions.clone(), idle, shutdown.clone());
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
        sessions,
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
        .layer(middleware::from_fn_with_state(mcp_hub_for_admit, admit))
        .layer(middleware::from_fn_with_state(activity, track));
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

/// When each MCP session was last used, and how many of its responses (streams) are still open.
#[derive(Clone)]
struct Activity {
    seen: Arc<Mutex<HashMap<String, Use>>>,
}

struct Use {
    last: Instant,
    open: usize,
}

impl Activity {
    /// Starts the task that closes sessions idle for `idle`, checking a few times per `idle` (at least every
    /// minute), until `shutdown`.
    fn start(
        sessions: Arc<LocalSessionManager>,
        idle: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        let a = Activity {
            seen: Arc::new(Mutex::new(HashMap::new())),
        };
        let seen = a.seen.clone();
        let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let now = Instant::now();
                let idle_ones: Vec<String> = {
                    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    let gone: Vec<String> = seen
                        .iter()
                        .filter(|(_, u)| u.open == 0 && now.duration_since(u.last) >= idle)
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in &gone {
                        seen.remove(id);
                    }
                    gone
                };
                for id in idle_ones {
                    tracing::info!(session = %id, idle_s = idle.as_secs(), "closing an idle MCP session");
                    let _ = sessions.close_session(&Arc::from(id.as_str())).await;
                }
            }
        });
        a
    }

    /// A response of session `id` started: it is in use until the response (a stream, maybe) ends.
    fn begin(&self, id: &str) -> InUse {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let u = seen.entry(id.to_owned()).or_insert(Use {
            last: Instant::now(),
            open: 0,
        });
        u.open += 1;
        u.last = Instant::now();
        InUse {
            seen: self.seen.clone(),
            id: id.to_owned(),
        }
    }

    fn forget(&self, id: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// One open response of a session; when it ends, the session's idle time starts again.
struct InUse {
    seen: Arc<Mutex<HashMap<String, Use>>>,
    id: String,
}

impl Drop for InUse {
    fn drop(&mut self) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = seen.get_mut(&self.id) {
            u.open = u.open.saturating_sub(1);
            u.last = Instant::now();
        }
    }
}

/// Counts every request and open response of a session as use: the session's id is on the request, or, for the
/// `initialize` that makes one, on the response.
async fn track(State(activity): State<Activity>, req: Request, next: Next) -> Response {
    let asked = req
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ends_session = req.method() == Method::DELETE;
    let early = asked.as_deref().map(|id| activity.begin(id));
    let res = next.run(req).await;
    let id = asked.or_else(|| {
        res.headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let Some(id) = id else {
        return res;
    };
    if ends_session || res.status() == StatusCode::NOT_FOUND {
        drop(early);
        activity.forget(&id);
        return res;
    }
    let in_use = early.unwrap_or_else(|| activity.begin(&id));
    let (parts, body) = res.into_parts();
    let body = axum::body::Body::from_stream(body.into_data_stream().map(move |chunk| {
        let _held = &in_use;
        chunk
    }));
    Response::from_parts(parts, body)
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use serde_json::{Value, json};
    use switchboard_core::HubConfig;
    use tower::ServiceExt;

    use super::*;

    const IDLE: Duration = Duration::from_secs(30 * 60);

    async fn mcp(
        app: &Router,
        method: Method,
        session: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri("/mcp")
            .header("host", "127.0.0.1")
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
        if let Some(id) = session {
            req = req.header("mcp-session-id", id);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        app.clone().oneshot(req.body(body).unwrap()).await.unwrap()
    }

    /// Initializes a session and returns its id, the `initialize` stream read to its end.
    async fn session(app: &Router) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "idle-test", "version": "1"}}});
        let res = mcp(app, Method::POST, None, Some(init)).await;
        if res.status() != StatusCode::OK {
            let b = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            panic!("initialize: {}", String::from_utf8_lossy(&b));
        }
        let id = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let res = mcp(app, Method::POST, Some(&id), Some(done)).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        id
    }

    /// Lets the paused clock run `d` while the hub's tasks keep up.
    async fn pass(d: Duration) {
        let step = Duration::from_secs(30);
        let mut gone = Duration::ZERO;
        while gone < d {
            tokio::time::advance(step.min(d - gone)).await;
            gone += step;
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_session_is_closed_and_its_slot_freed_but_an_open_stream_keeps_it() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = Hub::open(HubConfig::new(tmp.path())).await.unwrap();
        let target = Target {
            hub_url: "http://127.0.0.1:1".into(),
            command: "switchboard".into(),
            mcp_args: Vec::new(),
            token: None,
        };
        let info = McpInfo {
            url: target.hub_url.clone(),
        };
        let stop = CancellationToken::new();
        let app = router(hub.clone(), info, target, stop.clone(), IDLE)
            .layer(Extension(Principal::Owner));

        let id = session(&app).await;
        assert_eq!(hub.connection_count(), 1, "a session holds a slot");
        // Used now and then, it stays.
        pass(IDLE - Duration::from_secs(120)).await;
        let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
        let res = mcp(&app, Method::POST, Some(&id), Some(ping)).await;
        assert_eq!(res.status(), StatusCode::OK);
        axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        pass(IDLE - Duration::from_secs(120)).await;
        assert_eq!(
            hub.connection_count(),
            1,
            "less than the idle timeout since its last request"
        );
        // Left alone for the idle timeout: closed, its slot free, and the IDE is told to initialize again.
        pass(Duration::from_secs(240)).await;
        assert_eq!(hub.connection_count(), 0, "closed after {IDLE:?} idle");
        let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
        let res = mcp(&app, Method::POST, Some(&id), Some(ping)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);

        // A session with its GET stream open is in use, however quiet.
        let id = session(&app).await;
        let stream = mcp(&app, Method::GET, Some(&id), None).await;
        assert_eq!(stream.status(), StatusCode::OK);
        pass(3 * IDLE).await;
        assert_eq!(
            hub.connection_count(),
            1,
            "an open stream keeps the session"
        );
        drop(stream);
        pass(IDLE + Duration::from_secs(120)).await;
        assert_eq!(
            hub.connection_count(),
            0,
            "closed once its stream has been shut for the idle timeout"
        );
        stop.cancel();
        hub.shutdown().await;
    }
}
