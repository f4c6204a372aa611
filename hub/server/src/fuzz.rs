//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz) and for the test that replays their corpora
//! (`tests/fuzz_corpus.rs`). Not an API: hidden from the docs.
//!
//! One real hub per process: SQLite in a fresh directory, listening on `127.0.0.1:0`, with a GitHub secret.
//! Requests go through the router with its guard (`tower::ServiceExt::oneshot`), frames through the same
//! functions a socket's loop calls. Each target panics only when the hub answers in a way it never may: a 5xx, an
//! error that is not `{"error":{"code","message"}}`, an `internal` error, a frame that is not JSON, or a refused
//! write that still moved the log.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use serde_json::Value;
use switchboard_core::{ClientInfo, Principal, Resume, Session, Source};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::config::ServerConfig;
use crate::state::AppState;
use crate::ws::{Native, Reply, Wire};

/// The GitHub webhook secret of the fuzzed hub.
const GITHUB_SECRET: &str = "fuzz-github-secret";
/// Longest a reply may take: a write commits in well under this.
const PATIENCE: Duration = Duration::from_secs(10);

struct Harness {
    rt: tokio::runtime::Runtime,
    state: AppState,
    router: Router,
    token: String,
    /// An agent the PATCH inputs patch.
    agent: String,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

/// The data dirs of earlier runs whose process is gone.
fn sweep(tmp: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("switchboard-fuzz-"))
        else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let tmp = std::env::temp_dir();
        sweep(&tmp);
        let dir = tmp.join(format!("switchboard-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfg = ServerConfig::new(&dir);
        cfg.port = 0;
        cfg.github_secret = Some(GITHUB_SECRET.into());
        let running = rt
            .block_on(crate::start(cfg, CancellationToken::new()))
            .expect("the fuzzed hub starts");
        let state = running.state.clone();
        let token = switchboard_core::auth::read_token(&dir).expect("the hub wrote its token");
        let router = crate::router(state.clone(), Router::new());
        let mut h = Harness {
            rt,
            state,
            router,
            token,
            agent: String::new(),
        };
        let (status, body) = h.send(
            Method::POST,
            "/api/agents",
            br#"{"name":"fuzz"}"#.to_vec(),
            &[],
        );
        assert_eq!(status, StatusCode::CREATED);
        let v: Value = serde_json::from_slice(&body).expect("an agent");
        h.agent = v["id"].as_str().expect("an id").to_owned();
        h
    })
}

impl Harness {
    /// Sends one request through the router as the owner (the hub token), and reads the answer; an SSE stream is
    /// dropped after its head.
    fn send(
        &self,
        method: Method,
        uri: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> (StatusCode, Bytes) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let Ok(req) = req.body(Body::from(body)) else {
            return (StatusCode::BAD_REQUEST, Bytes::new());
        };
        self.rt.block_on(async {
            let resp = tokio::time::timeout(PATIENCE, self.router.clone().oneshot(req))
                .await
                .expect("the hub answers")
                .unwrap_or_else(|e| match e {});
            let status = resp.status();
            let sse = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            if sse {
                return (status, Bytes::new());
            }
            let body =
                tokio::time::timeout(PATIENCE, axum::body::to_bytes(resp.into_body(), usize::MAX))
                    .await
                    .expect("the body arrives")
                    .unwrap_or_default();
            (status, body)
        })
    }

    /// A session of the owner, as a socket's would be.
    fn session(&self, transport: &'static str, source: Source) -> Option<Session> {
        let caller = self.state.hub.caller(Principal::Owner, source);
        caller
            .open(
                ClientInfo::new(transport),
                &[],
                &Resume::default(),
                |_| Ok(()),
                |_, _| None,
            )
            .ok()
    }
}

/// A status the hub may answer with, and for an error, the one error shape. `SWITCHBOARD_FUZZ_TRACE=1` prints
/// each answer, to see how deep an input got.
fn check_answer(status: StatusCode, body: &[u8]) {
    if std::env::var_os("SWITCHBOARD_FUZZ_TRACE").is_some() {
        eprintln!(
            "{status} {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
    }
    assert!(
        !status.is_server_error(),
        "{status}: {}",
        String::from_utf8_lossy(body)
    );
    if status.is_client_error() {
        let v: Value = serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("{status} with a body that is not JSON ({e}): {body:?}"));
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{status} without {{\"error\":{{\"code\",\"message\"}}}}: {v}"
        );
    }
}

/// A frame for the client: JSON, and never an internal error.
fn check_frame(b: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(b)
        .unwrap_or_else(|e| panic!("a frame that is not JSON ({e}): {b:?}"));
    assert_ne!(v["error"]["code"], "internal", "{v}");
    v
}

/// Percent-encodes what may not stand in a URI's query or path, and keeps the rest (`&`, `=`, `%` among them),
/// so the fuzzer can shape the structure.
fn uri_part(data: &[u8], path: bool) -> String {
    let mut out = String::with_capacity(data.len());
    for &b in data {
        let keep = b.is_ascii_alphanumeric()
            || b"-._~!$'()*+,;:@".contains(&b)
            || (!path && b"&=%/?".contains(&b));
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Awaits a frame handler's reply and checks it, and every control frame it queued.
fn frame_reply(h: &Harness, reply: Reply, session: &mut Session) {
    let bytes = match reply {
        Reply::Now(b) => b,
        Reply::Later(f) => {
            h.rt.block_on(async { tokio::time::timeout(PATIENCE, f).await })
                .expect("a write is answered")
        }
    };
    if let Some(b) = bytes {
        check_frame(&b);
    }
    while let Some(d) = session.try_next() {
        if let switchboard_core::Delivery::Control(b) = d {
            check_frame(&b);
        }
    }
}

/// A WebSocket client frame (SPEC §4), as `/ws` reads it.
pub fn ws_frame(data: &[u8]) {
    // tungstenite refuses a text frame that is not UTF-8 before the hub sees it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let h = harness();
    let _rt = h.rt.enter();
    let Some(mut session) = h.session("websocket", Source::Ws) else {
        return;
    };
    let before = h.state.hub.last_seq();
    let reply = Native.text(text, session.handle());
    frame_reply(h, reply, &mut session);
    let v: Option<Value> = serde_json::from_str(text).ok();
    let is_write = v
        .as_ref()
        .is_some_and(|v| v["type"] == "publish" || v["type"] == "answer");
    if !is_write {
        assert_eq!(
            h.state.hub.last_seq(),
            before,
            "a frame that writes nothing moved the log"
        );
    }
}

/// A Pusher client frame (protocol 7), as `/app/{key}` reads it.
pub fn pusher_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let h = harness();
    let _rt = h.rt.enter();
    let Some(mut session) = h.session("pusher", Source::Pusher) else {
        return;
    };
    let reply = crate::pusher::PusherWire.text(text, session.handle());
    frame_reply(h, reply, &mut session);
}

/// `GET /events?QUERY` with `Last-Event-ID: ID`: the bytes are `QUERY\nID`.
pub fn sse_query(data: &[u8]) {
    let (q, id) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let h = harness();
    let mut headers = Vec::new();
    if let Some(id) = id.and_then(|id| std::str::from_utf8(id).ok()) {
        if axum::http::HeaderValue::from_str(id).is_err() {
            return;
        }
        headers.push(("last-event-id", id.to_owned()));
    }
    let uri = format!("/events?{}", uri_part(q, false));
    let (status, body) = h.send(Method::GET, &uri, Vec::new(), &headers);
    check_answer(status, &body);
}

/// A REST request: the first byte chooses the endpoint, the rest is its JSON body or query string.
pub fn rest(data: &[u8]) {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let h = harness();
    let patch = format!("/api/agents/{}", h.agent);
    let (method, uri, body, writes) = match op % 6 {
        0 => (Method::POST, "/api/agents".to_owned(), rest.to_vec(), true),
        1 => (Method::PATCH, patch, rest.to_vec(), true),
        2 => (
            Method::POST,
            "/api/agents/batch".to_owned(),
            rest.to_vec(),
            true,
        ),
        3 => (Method::POST, "/api/events".to_owned(), rest.to_vec(), true),
        4 => (
            Method::GET,
            format!("/api/agents?{}", uri_part(rest, false)),
            Vec::new(),
            false,
        ),
        _ => (
            Method::GET,
            format!("/api/events?{}", uri_part(rest, false)),
            Vec::new(),
            false,
        ),
    };
    let before = h.state.hub.last_seq();
    let (status, answer) = h.send(method, &uri, body, &[]);
    check_answer(status, &answer);
    if !writes || !status.is_success() {
        assert_eq!(
            h.state.hub.last_seq(),
            before,
            "{status} on {uri}, yet the log moved"
        );
    }
}

/// The Pusher HTTP API (`/apps/{id}/…`, signed as the `pusher` SDKs sign) and the auth endpoint. The first byte
/// chooses; the rest is the body, the extra query, or the channel name. One choice sends the bytes as the whole
/// query of an unsigned request, to reach the signature check's parsing.
pub fn pusher_api(data: &[u8]) {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let h = harness();
    let app = h.state.hub.pusher();
    let base = format!("/apps/{}", app.app_id());
    let extra: Vec<(String, String)> = serde_urlencoded::from_bytes(rest).unwrap_or_default();
    let name = uri_part(rest, true);
    let (method, path, body, extra, signed) = match op % 7 {
        0 => (
            Method::POST,
            format!("{base}/events"),
            rest.to_vec(),
            Vec::new(),
            true,
        ),
        1 => (
            Method::POST,
            format!("{base}/batch_events"),
            rest.to_vec(),
            Vec::new(),
            true,
        ),
        2 => (
            Method::GET,
            format!("{base}/channels"),
            Vec::new(),
            extra,
            true,
        ),
        3 => (
            Method::GET,
            format!("{base}/channels/{name}"),
            Vec::new(),
            vec![("info".into(), "subscription_count,user_count".into())],
            true,
        ),
        4 => (
            Method::GET,
            format!("{base}/channels/{name}/users"),
            Vec::new(),
            Vec::new(),
            true,
        ),
        5 => (
            Method::POST,
            format!("{base}/events?{}", uri_part(rest, false)),
            br#"{"name":"e","channel":"c","data":"{}"}"#.to_vec(),
            Vec::new(),
            false,
        ),
        _ => {
            let headers = [(
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            )];
            let (status, answer) = h.send(Method::POST, "/pusher/auth", rest.to_vec(), &headers);
            check_answer(status, &answer);
            return;
        }
    };
    let uri = if signed {
        // The signature covers the path as sent: a name the fuzzer made is percent-encoded already.
        let query =
            switchboard_core::fuzz::pusher_signed_query(app, method.as_str(), &path, &body, &extra);
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(&query).unwrap_or_default()
        )
    } else {
        path
    };
    let (status, answer) = h.send(method, &uri, body, &[]);
    check_answer(status, &answer);
}

/// Socket.IO (SPEC §6) as the adapter sees it, after socketioxide has parsed the packet: the first byte chooses
/// the connect auth payload or one of the client events; the rest is its argument (JSON, or else a string).
pub fn socketio(data: &[u8]) {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let arg = match serde_json::from_slice::<Value>(rest) {
        Ok(v) => v,
        Err(_) => match std::str::from_utf8(rest) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => return,
        },
    };
    let h = harness();
    let _rt = h.rt.enter();
    let info = || ClientInfo::new("socketio");
    const EVENTS: [&str; 6] = [
        "subscribe",
        "unsubscribe",
        "publish",
        "answer",
        "debug:rooms",
        "other",
    ];
    if op % 7 == 6 {
        if let Err(e) = crate::socketio::admission(&h.state, Some(arg), None, info()) {
            assert_ne!(e.code(), "internal", "{e}");
        }
        return;
    }
    let event = EVENTS[usize::from(op % 7)];
    let conn = crate::socketio::admission(&h.state, None, Some(Principal::Owner), info())
        .expect("the owner connects");
    let acks = std::sync::Mutex::new(Vec::new());
    h.rt.block_on(async {
        tokio::time::timeout(
            PATIENCE,
            crate::socketio::handle(&conn, event, arg, |v| {
                acks.lock().unwrap_or_else(|p| p.into_inner()).push(v);
            }),
        )
        .await
        .expect("an event is acked");
    });
    let acks = acks.into_inner().unwrap_or_else(|p| p.into_inner());
    match event {
        "other" => assert!(acks.is_empty()),
        "debug:rooms" => assert!(acks.len() == 1 && acks[0].is_array()),
        _ => {
            assert_eq!(acks.len(), 1, "one ack per event");
            let status = &acks[0]["status"];
            assert!(status == "success" || status == "error", "{}", acks[0]);
            assert_ne!(acks[0]["code"], "internal", "{}", acks[0]);
        }
    }
}

/// The GitHub events the hub maps, and one the fuzzer names.
const GITHUB_EVENTS: [&str; 10] = [
    "pull_request",
    "issues",
    "issue_comment",
    "push",
    "ping",
    "workflow_run",
    "check_run",
    "release",
    "pull_request_review",
    "create",
];

/// `POST /api/webhooks/github`, correctly signed: the first byte chooses the `X-GitHub-Event` and the encoding
/// (JSON or `payload=` form); the rest is the body.
pub fn github(data: &[u8]) {
    let Some((&op, body)) = data.split_first() else {
        return;
    };
    let h = harness();
    let kind = GITHUB_EVENTS[usize::from(op) % GITHUB_EVENTS.len()];
    let content_type = if op & 0x80 == 0 {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let headers = [
        ("content-type", content_type.to_owned()),
        ("x-github-event", kind.to_owned()),
        (
            "x-hub-signature-256",
            switchboard_core::fuzz::github_signature(GITHUB_SECRET, body),
        ),
    ];
    let (status, answer) = h.send(
        Method::POST,
        "/api/webhooks/github",
        body.to_vec(),
        &headers,
    );
    check_answer(status, &answer);
}
