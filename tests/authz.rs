//! The authorization matrix (SPEC §10, one rule for every transport): each kind of caller × each operation × each
//! transport that offers it, against one table of expected outcomes. It runs in-process: the REST and SSE rows
//! drive the hub's router with `oneshot`; the WebSocket and MCP rows use real clients (tokio-tungstenite, the rmcp
//! client) against the same hub on 127.0.0.1:0. Any transport that decided on its own would disagree with the
//! table somewhere here.
//!
//! One file past 500 lines on purpose: the table and each transport's way of asking it are read side by side.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Ws, jwt, next_json, send_json, ws_connect_with};
use rmcp::model::{CallToolRequestParams, ClientConfig as McpClientInfo};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use switchboard_core::{AskedQuestion, Caller, NewEvent, Principal, Source};
use switchboard_server::{RunningHub, ServerConfig};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

const WAIT: Duration = Duration::from_secs(10);

/// The kinds of caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// No credentials, no `Origin`: curl on an open hub.
    Anonymous,
    /// The hub's own window: a page it served itself (its own `Origin`).
    Window,
    /// The hub token.
    Owner,
    /// A JWT limited to `chat:*`: `{"sub":"u","channels":["chat:*"],"publish":["chat:*"]}`.
    Chat,
}

const EVERYONE: [Who; 4] = [Who::Anonymous, Who::Window, Who::Owner, Who::Chat];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Forbidden,
    NotFound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    ListAgents,
    GetAgent,
    CreateAgent,
    UpdateAgent,
    DeleteAgent,
    PublishChat,
    PublishGlobal,
    PublishPrivate,
    ReadChat,
    ReadPrivate,
    ReadAll,
    SubscribeChat,
    SubscribePrivate,
    SubscribeAll,
    AnswerChat,
    AnswerPrivate,
}

/// The one table: what each caller may do, whatever the transport.
fn expected(who: Who, op: Op) -> Outcome {
    use Op::*;
    let owner = matches!(who, Who::Window | Who::Owner);
    match op {
        PublishChat | ReadChat | SubscribeChat | AnswerChat => Outcome::Ok,
        PublishPrivate | ReadPrivate | SubscribePrivate if owner => Outcome::Ok,
        PublishPrivate | ReadPrivate | SubscribePrivate => Outcome::Forbidden,
        // A question on a channel out of reach does not exist for that caller.
        AnswerPrivate if owner => Outcome::Ok,
        AnswerPrivate => Outcome::NotFound,
        ListAgents | GetAgent | CreateAgent | UpdateAgent | DeleteAgent | PublishGlobal
        | ReadAll | SubscribeAll => {
            if who == Who::Chat {
                Outcome::Forbidden
            } else {
                Outcome::Ok
            }
        }
    }
}

/// A hub running in this process, its router for `oneshot`, and one owner caller for setting things up.
struct Rig {
    running: RunningHub,
    router: Router,
    owner: Caller,
    token: String,
    chat_jwt: String,
    stop: CancellationToken,
    /// Questions stay pending while their asker holds them.
    asked: Vec<AskedQuestion>,
    _tmp: tempfile::TempDir,
}

async fn rig(configure: impl FnOnce(&mut ServerConfig)) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(tmp.path());
    cfg.port = 0;
    configure(&mut cfg);
    let stop = CancellationToken::new();
    let running = switchboard::start(cfg, stop.clone()).await.unwrap();
    let router = switchboard_server::router(
        running.state.clone(),
        switchboard::mcp_routes(&running.state, stop.child_token()),
    );
    let token = std::fs::read_to_string(tmp.path().join("token"))
        .unwrap()
        .trim()
        .to_owned();
    let chat_jwt = jwt(
        &token,
        json!({"sub": "u", "channels": ["chat:*"], "publish": ["chat:*"]}),
    );
    let owner = running.hub.caller(Principal::Owner, Source::System);
    Rig {
        running,
        router,
        owner,
        token,
        chat_jwt,
        stop,
        asked: Vec::new(),
        _tmp: tmp,
    }
}

impl Rig {
    fn addr(&self) -> String {
        self.running.addr.to_string()
    }

    /// The headers that make a request come from `who`.
    fn headers(&self, who: Who) -> Vec<(&'static str, String)> {
        let mut h = vec![("host", self.addr())];
        match who {
            Who::Anonymous => {}
            Who::Window => h.push(("origin", format!("http://{}", self.addr()))),
            Who::Owner => h.push(("authorization", format!("Bearer {}", self.token))),
            Who::Chat => h.push(("authorization", format!("Bearer {}", self.chat_jwt))),
        }
        h
    }

    /// One request through the router, in-process.
    async fn rest(&self, who: Who, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in self.headers(who) {
            req = req.header(k, v);
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let res = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status().as_u16();
        if res
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "text/event-stream")
        {
            return (status, Value::Null);
        }
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn agent(&self) -> String {
        let new = serde_json::from_value(json!({"name": "target"})).unwrap();
        self.owner.create_agent(new).await.unwrap().id
    }

    async fn question(&mut self, channel: &str) -> String {
        let q = self
            .owner
            .ask(switchboard_core::Ask {
                channel: Some(channel.into()),
                ..switchboard_core::Ask::new("ready?", Duration::from_secs(60))
            })
            .await
            .unwrap();
        let id = q.question_id.clone();
        self.asked.push(q);
        id
    }
}

fn outcome_of_status(status: u16, body: &Value) -> Outcome {
    match status {
        200..=299 => Outcome::Ok,
        403 => Outcome::Forbidden,
        404 => Outcome::NotFound,
        _ => panic!("unexpected {status}: {body}"),
    }
}

fn outcome_of_code(code: &str) -> Outcome {
    match code {
        "forbidden" => Outcome::Forbidden,
        "not_found" => Outcome::NotFound,
        other => panic!("unexpected error code {other}"),
    }
}

fn channel_of(op: Op) -> &'static str {
    match op {
        Op::PublishChat | Op::AnswerChat => "chat:1",
        Op::ReadChat | Op::SubscribeChat => "chat:*",
        Op::PublishGlobal => "global",
        Op::PublishPrivate | Op::ReadPrivate | Op::SubscribePrivate | Op::AnswerPrivate => {
            "private-team"
        }
        _ => "*",
    }
}

async fn via_rest(r: &mut Rig, who: Who, op: Op) -> Outcome {
    let (status, body) = match op {
        Op::ListAgents => r.rest(who, "GET", "/api/agents", None).await,
        Op::GetAgent => {
            let id = r.agent().await;
            r.rest(who, "GET", &format!("/api/agents/{id}"), None).await
        }
        Op::CreateAgent => {
            r.rest(who, "POST", "/api/agents", Some(json!({"name": "new"})))
                .await
        }
        Op::UpdateAgent => {
            let id = r.agent().await;
            let patch = json!({"status": "busy"});
            r.rest(who, "PATCH", &format!("/api/agents/{id}"), Some(patch))
                .await
        }
        Op::DeleteAgent => {
            let id = r.agent().await;
            r.rest(who, "DELETE", &format!("/api/agents/{id}"), None)
                .await
        }
        Op::PublishChat | Op::PublishGlobal | Op::PublishPrivate => {
            let ev = json!({"channel": channel_of(op), "event": "said", "data": 1});
            r.rest(who, "POST", "/api/events", Some(ev)).await
        }
        Op::ReadChat | Op::ReadPrivate | Op::ReadAll => {
            let path = format!("/api/events?channel={}&since=0", channel_of(op));
            let (s, b) = r.rest(who, "GET", &path, None).await;
            if s == 200 && op == Op::ReadAll {
                let private = b["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["channel"] == "private-team");
                let owner = matches!(who, Who::Window | Who::Owner);
                assert_eq!(private, owner, "{who:?} reading {}: {b}", channel_of(op));
            }
            (s, b)
        }
        Op::AnswerChat | Op::AnswerPrivate => {
            let id = r.question(channel_of(op)).await;
            let path = format!("/api/questions/{id}/answer");
            r.rest(who, "POST", &path, Some(json!({"answer": "yes"})))
                .await
        }
        Op::SubscribeChat | Op::SubscribePrivate | Op::SubscribeAll => unreachable!(),
    };
    outcome_of_status(status, &body)
}

async fn via_sse(r: &Rig, who: Who, op: Op) -> Outcome {
    let path = format!("/events?channels={}", channel_of(op));
    let (status, body) = r.rest(who, "GET", &path, None).await;
    outcome_of_status(status, &body)
}

/// One WebSocket per caller; frames carry ids so each reply is found among the events.
struct WsCallers(HashMap<&'static str, Ws>, u64);

async fn ws_for(r: &Rig, who: Who) -> Ws {
    let headers = r.headers(who);
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut ws = ws_connect_with(&format!("ws://{}/ws", r.addr()), &h).await;
    assert_eq!(next_json(&mut ws, WAIT).await["type"], "connected");
    ws
}

async fn via_ws(r: &mut Rig, sockets: &mut WsCallers, who: Who, op: Op) -> Outcome {
    sockets.1 += 1;
    let id = sockets.1;
    let frame = match op {
        Op::SubscribeChat | Op::SubscribePrivate | Op::SubscribeAll => {
            json!({"type": "subscribe", "id": id, "channel": channel_of(op)})
        }
        Op::PublishChat | Op::PublishGlobal | Op::PublishPrivate => {
            json!({"type": "publish", "id": id, "channel": channel_of(op), "event": "said"})
        }
        Op::AnswerChat | Op::AnswerPrivate => {
            let q = r.question(channel_of(op)).await;
            json!({"type": "answer", "id": id, "question_id": q, "answer": "yes"})
        }
        _ => unreachable!(),
    };
    let key = match who {
        Who::Anonymous => "anonymous",
        Who::Window => "window",
        Who::Owner => "owner",
        Who::Chat => "chat",
    };
    if !sockets.0.contains_key(key) {
        let ws = ws_for(r, who).await;
        sockets.0.insert(key, ws);
    }
    let ws = sockets.0.get_mut(key).unwrap();
    send_json(ws, frame).await;
    // Each read waits at most WAIT; the reply is among the next few frames (events may come first).
    for _ in 0..1000 {
        let v = next_json(ws, WAIT).await;
        if v["id"] != json!(id) {
            continue;
        }
        return match v["type"].as_str() {
            Some("ack") => Outcome::Ok,
            Some("error") => outcome_of_code(v["error"]["code"].as_str().unwrap()),
            _ => panic!("unexpected reply {v}"),
        };
    }
    panic!("no reply to frame {id}");
}

type Mcp = RunningService<RoleClient, McpClientInfo>;

async fn mcp_for(r: &Rig, who: Who) -> Mcp {
    let mut cfg = StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", r.addr()));
    match who {
        Who::Owner => cfg = cfg.auth_header(r.token.clone()),
        Who::Chat => cfg = cfg.auth_header(r.chat_jwt.clone()),
        _ => {}
    }
    McpClientInfo::default()
        .serve(StreamableHttpClientTransport::from_config(cfg))
        .await
        .expect("MCP session")
}

async fn via_mcp(r: &Rig, c: &Mcp, op: Op) -> Outcome {
    let (tool, args) = match op {
        Op::ListAgents => ("list_agents", json!({})),
        Op::GetAgent => ("get_agent", json!({"id": r.agent().await})),
        Op::CreateAgent => ("create_agent", json!({"name": "new"})),
        Op::UpdateAgent => (
            "update_agent",
            json!({"id": r.agent().await, "status": "busy"}),
        ),
        Op::DeleteAgent => ("delete_agent", json!({"id": r.agent().await})),
        Op::PublishChat | Op::PublishGlobal | Op::PublishPrivate => (
            "publish_event",
            json!({"channel": channel_of(op), "event": "said"}),
        ),
        Op::ReadChat | Op::ReadPrivate | Op::ReadAll => (
            "recent_events",
            json!({"channel": channel_of(op), "since": 0}),
        ),
        // `since: 0` returns the first logged event at once.
        Op::SubscribeChat | Op::SubscribePrivate | Op::SubscribeAll => (
            "wait_for_event",
            json!({"channel": channel_of(op), "since": 0, "timeout_s": 5}),
        ),
        Op::AnswerChat | Op::AnswerPrivate => unreachable!(),
    };
    let params = CallToolRequestParams::new(tool).with_arguments(args.as_object().unwrap().clone());
    let res = c.call_tool(params).await.expect("tools/call");
    if res.is_error != Some(true) {
        return Outcome::Ok;
    }
    let text = res.content[0].as_text().unwrap().text.clone();
    let body: Value = serde_json::from_str(&text).expect("a tool error is the JSON error body");
    outcome_of_code(body["error"]["code"].as_str().unwrap())
}

const REST_OPS: [Op; 13] = [
    Op::ListAgents,
    Op::GetAgent,
    Op::CreateAgent,
    Op::UpdateAgent,
    Op::DeleteAgent,
    Op::PublishChat,
    Op::PublishGlobal,
    Op::PublishPrivate,
    Op::ReadChat,
    Op::ReadPrivate,
    Op::ReadAll,
    Op::AnswerChat,
    Op::AnswerPrivate,
];
const SUBSCRIBE_OPS: [Op; 3] = [Op::SubscribeChat, Op::SubscribePrivate, Op::SubscribeAll];
const WS_OPS: [Op; 8] = [
    Op::SubscribeChat,
    Op::SubscribePrivate,
    Op::SubscribeAll,
    Op::PublishChat,
    Op::PublishGlobal,
    Op::PublishPrivate,
    Op::AnswerChat,
    Op::AnswerPrivate,
];
const MCP_OPS: [Op; 14] = [
    Op::ListAgents,
    Op::GetAgent,
    Op::CreateAgent,
    Op::UpdateAgent,
    Op::DeleteAgent,
    Op::PublishChat,
    Op::PublishGlobal,
    Op::PublishPrivate,
    Op::ReadChat,
    Op::ReadPrivate,
    Op::ReadAll,
    Op::SubscribeChat,
    Op::SubscribePrivate,
    Op::SubscribeAll,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_gives_every_caller_the_same_answer() {
    let mut r = rig(|_| {}).await;
    // Something on every channel the reads and waits look at.
    for ch in ["chat:0", "private-team", "global"] {
        r.owner
            .publish(NewEvent::new(ch, "seed", Value::Null))
            .await
            .unwrap();
    }
    let mut wrong = Vec::new();
    let mut check = |transport: &str, who: Who, op: Op, got: Outcome| {
        let want = expected(who, op);
        if got != want {
            wrong.push(format!(
                "{transport:4} {who:?} {op:?}: got {got:?}, want {want:?}"
            ));
        }
    };
    for who in EVERYONE {
        for op in REST_OPS {
            let got = via_rest(&mut r, who, op).await;
            check("rest", who, op, got);
        }
        for op in SUBSCRIBE_OPS {
            let got = via_sse(&r, who, op).await;
            check("sse", who, op, got);
        }
    }
    let mut sockets = WsCallers(HashMap::new(), 0);
    for who in EVERYONE {
        for op in WS_OPS {
            let got = via_ws(&mut r, &mut sockets, who, op).await;
            check("ws", who, op, got);
        }
    }
    // IDEs send no Origin, so MCP has no window row.
    for who in [Who::Anonymous, Who::Owner, Who::Chat] {
        let c = mcp_for(&r, who).await;
        for op in MCP_OPS {
            let got = via_mcp(&r, &c, op).await;
            check("mcp", who, op, got);
        }
        c.cancel().await.unwrap();
    }
    assert!(
        wrong.is_empty(),
        "the transports disagree with the table:\n{}",
        wrong.join("\n")
    );
    r.stop.cancel();
}

#[tokio::test]
async fn the_token_goes_to_the_owner_and_nobody_else() {
    let r = rig(|_| {}).await;
    let own = format!("http://{}", r.addr());
    // (who, their headers, whether they get the token)
    type Case = (&'static str, Vec<(&'static str, String)>, bool);
    let cases: [Case; 6] = [
        ("curl on an open hub", vec![], false),
        (
            "another localhost page",
            vec![("origin", "http://localhost:3000".into())],
            false,
        ),
        (
            "the window, cross-origin headers",
            vec![("origin", own)],
            true,
        ),
        (
            "the window, a same-origin GET",
            vec![("sec-fetch-site", "same-origin".into())],
            true,
        ),
        (
            "the token",
            vec![("authorization", format!("Bearer {}", r.token))],
            true,
        ),
        (
            "a JWT",
            vec![("authorization", format!("Bearer {}", r.chat_jwt))],
            false,
        ),
    ];
    for (who, headers, gets_it) in cases {
        for path in [
            "/api/connect",
            "/api/ide/claude?http=1",
            "/api/ide/vscode?http=1",
        ] {
            let mut req = Request::get(path).header("host", r.addr());
            for (k, v) in &headers {
                req = req.header(*k, v);
            }
            let res = r
                .router
                .clone()
                .oneshot(req.body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{who} {path}");
            let body = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&body);
            assert_eq!(text.contains(&r.token), gets_it, "{who} {path}: {text}");
        }
    }
    r.stop.cancel();
}

#[tokio::test]
async fn a_hub_that_requires_a_token_lets_nobody_in_without_one() {
    let r = rig(|c| c.require_token = true).await;
    let forged = jwt("not-the-token", json!({"sub": "mallory"}));
    for (who, auth) in [("no credentials", None), ("a forged JWT", Some(forged))] {
        // The window gets no pass either when the hub requires a token.
        let own = format!("http://{}", r.addr());
        for path in [
            "/api/agents",
            "/api/events",
            "/events",
            "/api/questions",
            "/api/connect",
            "/api/ide/claude",
        ] {
            let mut req = Request::get(path)
                .header("host", r.addr())
                .header("origin", &own);
            if let Some(a) = &auth {
                req = req.header("authorization", format!("Bearer {a}"));
            }
            let res = r
                .router
                .clone()
                .oneshot(req.body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{who} {path}");
        }
    }
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", r.addr())).await;
    assert!(
        matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(ref res)) if res.status() == 401),
        "{refused:?}"
    );
    let cfg = StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", r.addr()));
    let mcp = McpClientInfo::default()
        .serve(StreamableHttpClientTransport::from_config(cfg))
        .await;
    assert!(mcp.is_err(), "MCP without a token must not start a session");
    r.stop.cancel();
}

#[tokio::test]
async fn questions_channels_and_clients_show_only_what_the_caller_may_read() {
    let mut r = rig(|_| {}).await;
    r.question("private-ops").await;
    r.question("chat:1").await;
    let mut owner_ws = ws_for(&r, Who::Owner).await;
    send_json(
        &mut owner_ws,
        json!({"type": "subscribe", "id": 1, "channel": "private-ops"}),
    )
    .await;
    assert_eq!(next_json(&mut owner_ws, WAIT).await["type"], "ack");
    for (who, questions, private_seen) in [
        (Who::Anonymous, vec!["chat:1"], false),
        (Who::Chat, vec!["chat:1"], false),
        (Who::Owner, vec!["private-ops", "chat:1"], true),
        (Who::Window, vec!["private-ops", "chat:1"], true),
    ] {
        let (_, q) = r.rest(who, "GET", "/api/questions", None).await;
        let got: Vec<&str> = q["questions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["channel"].as_str().unwrap())
            .collect();
        assert_eq!(got, questions, "{who:?}");
        let (_, ch) = r.rest(who, "GET", "/api/channels", None).await;
        let names = ch["channels"].to_string();
        assert_eq!(
            names.contains("private-ops"),
            private_seen,
            "{who:?}: {names}"
        );
        let (_, cl) = r.rest(who, "GET", "/api/clients", None).await;
        let subs = cl["clients"].to_string();
        assert_eq!(
            subs.contains("private-ops"),
            private_seen,
            "{who:?}: {subs}"
        );
    }
    r.stop.cancel();
}

#[tokio::test]
async fn mcp_sessions_count_against_the_connection_cap() {
    let r = rig(|c| c.max_connections = 1).await;
    let c = mcp_for(&r, Who::Owner).await;
    let (status, body) = r.rest(Who::Anonymous, "GET", "/events", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("too_many_connections"))
    );
    let second = McpClientInfo::default()
        .serve(StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", r.addr())),
        ))
        .await;
    assert!(second.is_err(), "a second MCP session is over the cap");
    c.cancel().await.unwrap();
    // The session's connection goes with it.
    let deadline = std::time::Instant::now() + WAIT;
    while r.running.hub.connection_count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the MCP session's connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = r.rest(Who::Anonymous, "GET", "/events", None).await;
    assert_eq!(status, 200);
    r.stop.cancel();
}
