//! MCP against the real binary with the rmcp client, over Streamable HTTP (`/mcp`) and over stdio
//! (`switchboard mcp`): tool schemas, every tool, tool errors, the bridge in both directions between MCP and
//! REST/WS/SSE, progress and cancellation, prompts, both subscription eras, hub autostart, and the §10 checks on
//! `/mcp`.
//! Long, as one client's view of the whole MCP surface; authorization over MCP is in authz.rs and leaks.rs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ClientRequest,
    ContentBlock, GetPromptRequestParams, GetPromptResult, Implementation, JsonObject,
    ProgressNotificationParam, ProgressToken, ProtocolVersion, Request,
    ResourceUpdatedNotificationParam, ServerNotification, ServerResult, SubscribeRequestParams,
    SubscriptionFilter,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// Records the notifications a client receives.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<String>>>,
    /// Every progress notification, in the order they arrived.
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    notify: Arc<Notify>,
}

impl Recorder {
    fn push(&self, s: String) {
        self.seen.lock().unwrap().push(s);
        self.notify.notify_waiters();
    }
    async fn wait_for(&self, what: &str) {
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let n = self.notify.notified();
                if self.seen.lock().unwrap().iter().any(|s| s == what) {
                    return;
                }
                n.await;
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "no {what} within 10 s; saw {:?}",
            self.seen.lock().unwrap()
        );
    }
}

impl ClientHandler for Recorder {
    async fn on_resource_updated(
        &self,
        p: ResourceUpdatedNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        self.push(format!("updated:{}", p.uri));
    }
    async fn on_resource_list_changed(&self, _c: NotificationContext<RoleClient>) {
        self.push("list_changed".into());
    }
    async fn on_progress(&self, p: ProgressNotificationParam, _c: NotificationContext<RoleClient>) {
        self.progress.lock().unwrap().push(p);
    }
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("switchboard-tests", "0"),
        )
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }
}

type Client = RunningService<RoleClient, Recorder>;

async fn http_client(hub: &TestHub, rec: &Recorder, token: Option<String>) -> Client {
    let mut cfg = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", hub.url));
    if let Some(t) = token {
        cfg = cfg.auth_header(t);
    }
    rec.clone()
        .serve(StreamableHttpClientTransport::from_config(cfg))
        .await
        .expect("MCP over HTTP")
}

fn bridge_process(dir: &std::path::Path, hub_url: &str) -> TokioChildProcess {
    TokioChildProcess::new(tokio::process::Command::new(BIN).configure(|c| {
        c.arg("--data-dir")
            .arg(dir)
            .args(["mcp", "--hub", hub_url])
            .env("RUST_LOG", "warn");
    }))
    .expect("spawn switchboard mcp")
}

async fn stdio_client(hub: &TestHub, rec: &Recorder) -> Client {
    rec.clone()
        .serve(bridge_process(&hub.dir, &hub.url))
        .await
        .expect("MCP over stdio")
}

fn args(v: Value) -> JsonObject {
    v.as_object().cloned().expect("object")
}

async fn call(c: &Client, tool: &'static str, a: Value) -> CallToolResult {
    c.call_tool(CallToolRequestParams::new(tool).with_arguments(args(a)))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

/// The structured result of a successful call.
async fn ok(c: &Client, tool: &'static str, a: Value) -> Value {
    let r = call(c, tool, a).await;
    assert_ne!(r.is_error, Some(true), "{tool} failed: {r:?}");
    r.structured_content
        .unwrap_or_else(|| panic!("{tool} returned no structured content"))
}

/// The message of a tool error; the session must stay usable afterwards.
async fn tool_error(c: &Client, tool: &'static str, a: Value) -> String {
    let r = call(c, tool, a).await;
    assert_eq!(r.is_error, Some(true), "{tool} should fail: {r:?}");
    let text = r
        .content
        .first()
        .and_then(|b| b.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default();
    let status = ok(c, "hub_status", json!({})).await;
    assert!(
        status["last_seq"].is_u64(),
        "the session went on after the error"
    );
    text
}

const TOOLS: [&str; 10] = [
    "ask_user",
    "create_agent",
    "delete_agent",
    "get_agent",
    "hub_status",
    "list_agents",
    "publish_event",
    "recent_events",
    "update_agent",
    "wait_for_event",
];

async fn check_tool_list(c: &Client) {
    let tools = c.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(names, TOOLS);
    for t in &tools {
        assert_eq!(
            t.input_schema.get("type"),
            Some(&json!("object")),
            "{} input schema",
            t.name
        );
        let out = t
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no output schema", t.name));
        assert_eq!(
            out.get("type"),
            Some(&json!("object")),
            "{} output schema",
            t.name
        );
        assert!(
            t.description.as_ref().is_some_and(|d| d.len() > 10),
            "{} needs a description",
            t.name
        );
        assert!(t.annotations.is_some(), "{} needs annotations", t.name);
    }
    let get = |n: &str| tools.iter().find(|t| t.name == n).unwrap();
    let hints = |n: &str| {
        let a = get(n).annotations.clone().unwrap();
        (a.read_only_hint, a.destructive_hint, a.idempotent_hint)
    };
    assert_eq!(hints("list_agents"), (Some(true), Some(false), Some(true)));
    assert_eq!(hints("get_agent"), (Some(true), Some(false), Some(true)));
    assert_eq!(
        hints("create_agent"),
        (Some(false), Some(false), Some(false))
    );
    assert_eq!(
        hints("update_agent"),
        (Some(false), Some(true), Some(false))
    );
    assert_eq!(hints("delete_agent"), (Some(false), Some(true), Some(true)));
    assert_eq!(hints("wait_for_event").0, Some(true));
    assert_eq!(
        get("create_agent").input_schema["required"],
        json!(["name"])
    );
    let wait_props = &get("wait_for_event").input_schema["properties"];
    assert!(
        ["channel", "event", "since", "timeout_s"]
            .iter()
            .all(|p| wait_props.get(*p).is_some()),
        "{wait_props}"
    );
    assert!(
        get("get_agent").output_schema.as_ref().unwrap()["properties"]
            .get("version")
            .is_some()
    );
}

/// Answers the next pending question over REST, as the tray window does.
fn answer_next_question(url: String, answer: Value) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let c = http();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no question was asked within 30 s"
            );
            let (_, q) = call_http(c.get(format!("{url}/api/questions"))).await;
            if let Some(id) = q["questions"][0]["question_id"].as_str() {
                let (s, b) = call_http(
                    c.post(format!("{url}/api/questions/{id}/answer"))
                        .json(&json!({"answer": answer})),
                )
                .await;
                assert_eq!(s, 202, "{b}");
                return id.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

use common::call as call_http;

/// Calls every tool, and every error case, on one session.
async fn exercise_every_tool(c: &Client, hub: &TestHub) {
    check_tool_list(c).await;
    let a = ok(
        c,
        "create_agent",
        json!({"name": "scout", "model": "m1", "config": {"depth": 2}, "tags": ["ide"]}),
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (a["version"].as_i64(), a["status"].as_str()),
        (Some(1), Some("idle"))
    );
    assert_eq!(ok(c, "get_agent", json!({"id": id})).await, a);
    let u = ok(c, "update_agent", json!({"id": id, "expected_version": 1, "status": "busy", "model": null, "config": {"depth": 3}})).await;
    assert_eq!(
        (
            u["version"].as_i64(),
            u["status"].as_str(),
            &u["model"],
            &u["config"]
        ),
        (Some(2), Some("busy"), &Value::Null, &json!({"depth": 3}))
    );
    let list = ok(c, "list_agents", json!({"status": "busy"})).await;
    assert_eq!(list["agents"].as_array().unwrap().len(), 1);
    assert_eq!(list["agents"][0]["id"], id.as_str());

    let p = ok(
        c,
        "publish_event",
        json!({"channel": "ide", "event": "note", "data": {"n": 1}}),
    )
    .await;
    let seq = p["seq"].as_u64().unwrap();
    let recent = ok(
        c,
        "recent_events",
        json!({"channel": "ide", "since": seq - 1}),
    )
    .await;
    assert_eq!(
        (
            recent["events"][0]["seq"].as_u64(),
            recent["events"][0]["source"].as_str()
        ),
        (Some(seq), Some("mcp"))
    );
    assert!(recent["last_seq"].as_u64().unwrap() >= seq);
    let w = ok(
        c,
        "wait_for_event",
        json!({"channel": "ide", "event": "note", "since": seq - 1, "timeout_s": 5}),
    )
    .await;
    assert_eq!(w["event"]["seq"].as_u64(), Some(seq), "{w}");
    let w = ok(
        c,
        "wait_for_event",
        json!({"channel": "nothing-here", "timeout_s": 1}),
    )
    .await;
    assert_eq!(w, json!({"timed_out": true}));

    let answerer = answer_next_question(hub.url.clone(), json!("blue"));
    let ans = ok(
        c,
        "ask_user",
        json!({"question": "Which colour?", "timeout_s": 20}),
    )
    .await;
    assert_eq!(ans, json!({"answer": "blue", "answered_by": "rest"}));
    answerer.await.unwrap();

    let st = ok(c, "hub_status", json!({})).await;
    assert_eq!(st["url"], hub.url.as_str());
    assert!(st["uptime_s"].is_u64() && st["connections"].is_u64() && st["version"].is_string());

    // Tool errors: each is a tool error with a clear message, and the next call on the session works.
    let e = tool_error(c, "get_agent", json!({"id": "no-such-agent"})).await;
    assert!(e.contains("not_found"), "{e}");
    let e = tool_error(
        c,
        "update_agent",
        json!({"id": id, "expected_version": 1, "status": "idle"}),
    )
    .await;
    assert!(e.contains("version_conflict"), "{e}");
    let e = tool_error(c, "create_agent", json!({"name": 5})).await;
    assert!(e.to_lowercase().contains("invalid"), "{e}");
    let e = tool_error(c, "update_agent", json!({"id": id, "status": "NOT A WORD"})).await;
    assert!(e.contains("status"), "{e}");
    let e = tool_error(
        c,
        "publish_event",
        json!({"channel": "bad channel", "event": "x"}),
    )
    .await;
    assert!(e.contains("channel"), "{e}");
    let e = tool_error(
        c,
        "wait_for_event",
        json!({"channel": "x", "timeout_s": 301}),
    )
    .await;
    assert!(e.contains("timeout_s"), "{e}");
    let e = tool_error(
        c,
        "ask_user",
        json!({"question": "Anyone?", "timeout_s": 1}),
    )
    .await;
    assert!(e.contains("timed_out"), "{e}");
    assert!(
        c.call_tool(CallToolRequestParams::new("no_such_tool"))
            .await
            .is_err(),
        "an unknown tool is a protocol error"
    );
    ok(c, "hub_status", json!({})).await;

    let d = ok(c, "delete_agent", json!({"id": id})).await;
    assert_eq!(d, json!({"id": id, "deleted": true}));
    let e = tool_error(c, "delete_agent", json!({"id": id})).await;
    assert!(e.contains("not_found"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_tool_over_http() {
    let hub = TestHub::start(&[]);
    let rec = Recorder::default();
    let c = http_client(&hub, &rec, None).await;
    exercise_every_tool(&c, &hub).await;
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_tool_over_stdio() {
    let hub = TestHub::start(&[]);
    let rec = Recorder::default();
    let c = stdio_client(&hub, &rec).await;
    exercise_every_tool(&c, &hub).await;
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bridge_runs_both_ways() {
    let hub = TestHub::start(&[]);
    let rec = Recorder::default();
    let c = stdio_client(&hub, &rec).await;

    // MCP → WS and SSE: an agent created over MCP arrives as agent.created.
    let mut ws = ws_connect(&hub.ws_url("/ws?channels=agent:*")).await;
    next_of_type(&mut ws, "ack", Duration::from_secs(5)).await;
    let mut sse = Sse::open(&format!("{}/events?channels=agent:*", hub.url), &[]).await;
    wait_for_clients(&hub, 2).await;
    let a = ok(&c, "create_agent", json!({"name": "bridge"})).await;
    let id = a["id"].as_str().unwrap().to_owned();
    let e = next_of_type(&mut ws, "event", Duration::from_secs(5)).await;
    assert_eq!(
        (
            e["event"].as_str(),
            e["source"].as_str(),
            e["data"]["id"].as_str()
        ),
        (Some("agent.created"), Some("mcp"), Some(id.as_str()))
    );
    let (_, e) = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (e["event"].as_str(), e["source"].as_str()),
        (Some("agent.created"), Some("mcp"))
    );

    // REST → MCP resource subscribers: resources/updated for the agent, list_changed when agents come or go.
    #[allow(deprecated)]
    c.subscribe(SubscribeRequestParams::new(format!(
        "switchboard://agents/{id}"
    )))
    .await
    .unwrap();
    let hc = http();
    let (s, _) = call_http(
        hc.patch(format!("{}/api/agents/{id}", hub.url))
            .json(&json!({"status": "running"})),
    )
    .await;
    assert_eq!(s, 200);
    rec.wait_for(&format!("updated:switchboard://agents/{id}"))
        .await;
    create_agent(&hc, &hub.url, "another").await;
    rec.wait_for("list_changed").await;

    // REST → wait_for_event.
    let (_, h) = call_http(hc.get(format!("{}/health", hub.url))).await;
    let since = h["last_seq"].as_u64().unwrap();
    let wait = tokio::spawn({
        let peer = c.peer().clone();
        async move {
            peer.call_tool(
                CallToolRequestParams::new("wait_for_event").with_arguments(args(
                    json!({"channel": "deploy", "since": since, "timeout_s": 20}),
                )),
            )
            .await
            .unwrap()
        }
    });
    let (s, _) = call_http(
        hc.post(format!("{}/api/events", hub.url))
            .json(&json!({"channel": "deploy", "event": "done", "data": {"ok": true}})),
    )
    .await;
    assert_eq!(s, 202);
    let r = wait.await.unwrap().structured_content.unwrap();
    assert_eq!(
        (
            r["event"]["event"].as_str(),
            r["event"]["source"].as_str(),
            &r["event"]["data"]
        ),
        (Some("done"), Some("rest"), &json!({"ok": true}))
    );

    // ask_user ← a webapp's WebSocket answer frame.
    let mut webapp = ws_connect(&hub.ws_url("/ws?channels=questions")).await;
    next_of_type(&mut webapp, "ack", Duration::from_secs(5)).await;
    let ask = tokio::spawn({
        let peer = c.peer().clone();
        async move {
            peer.call_tool(CallToolRequestParams::new("ask_user").with_arguments(args(
                json!({"question": "Deploy to prod?", "timeout_s": 20}),
            )))
            .await
            .unwrap()
        }
    });
    let q = next_of_type(&mut webapp, "event", Duration::from_secs(10)).await;
    assert_eq!(
        (q["event"].as_str(), q["data"]["question"].as_str()),
        (Some("question"), Some("Deploy to prod?"))
    );
    let qid = q["data"]["question_id"].as_str().unwrap();
    send_json(
        &mut webapp,
        json!({"type": "answer", "id": 1, "question_id": qid, "answer": "ship it"}),
    )
    .await;
    let r = ask.await.unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert_eq!(
        r.structured_content.unwrap(),
        json!({"answer": "ship it", "answered_by": "ws"})
    );
    // A late second answer is refused: the first one won.
    send_json(
        &mut webapp,
        json!({"type": "answer", "id": 2, "question_id": qid, "answer": "wait"}),
    )
    .await;
    let e = next_of_type(&mut webapp, "error", Duration::from_secs(5)).await;
    assert_eq!(
        (e["id"].as_i64(), e["error"]["code"].as_str()),
        (Some(2), Some("not_found"))
    );
    c.cancel().await.unwrap();
}

async fn wait_for_clients(hub: &TestHub, n: usize) {
    for _ in 0..250 {
        let (_, cl) = call_http(http().get(format!("{}/api/clients", hub.url))).await;
        if cl["clients"].as_array().is_some_and(|a| a.len() >= n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {n} clients connected");
}

async fn mcp_waiters(hub: &TestHub) -> usize {
    let (_, cl) = call_http(http().get(format!("{}/api/clients", hub.url))).await;
    cl["clients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"].as_str().is_some_and(|i| i.starts_with("mcp-wait-")))
        .count()
}

/// The `progress` values of the notifications `rec` has seen for `token`, in the order they came.
fn progress_of(rec: &Recorder, token: &ProgressToken) -> Vec<f64> {
    rec.progress
        .lock()
        .unwrap()
        .iter()
        .filter(|p| &p.progress_token == token)
        .map(|p| p.progress)
        .collect()
}

/// A 12 s `wait_for_event` that times out, from a client that gives up after 9 s without a word but restarts that
/// clock on each progress notification: it gets its result only because progress kept coming.
async fn a_long_wait_with_progress(c: &Client, rec: &Recorder) {
    let req = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("wait_for_event")
            .with_arguments(args(json!({"channel": "quiet", "timeout_s": 12}))),
    ));
    let options =
        PeerRequestOptions::with_timeout(Duration::from_secs(9)).reset_timeout_on_progress();
    let h = c.send_cancellable_request(req, options).await.unwrap();
    let token = h.progress_token.clone();
    let res = h.await_response().await;
    let seen = progress_of(rec, &token);
    let Ok(ServerResult::CallToolResult(r)) = res else {
        panic!("the wait did not last to its result: {res:?}; progress seen: {seen:?}")
    };
    assert_eq!(r.structured_content, Some(json!({"timed_out": true})));
    assert!(
        seen.len() >= 2,
        "at least two progress notifications before the result of a 12 s wait; saw {seen:?}"
    );
    // non-empty: at least two, checked just above
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "progress only grows: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_for_event_sends_progress_that_keeps_a_client_waiting() {
    let hub = TestHub::start(&[]);
    let (rec_http, rec_stdio) = (Recorder::default(), Recorder::default());
    let over_http = http_client(&hub, &rec_http, None).await;
    let over_stdio = stdio_client(&hub, &rec_stdio).await;
    tokio::join!(
        a_long_wait_with_progress(&over_http, &rec_http),
        a_long_wait_with_progress(&over_stdio, &rec_stdio),
    );
    over_http.cancel().await.unwrap();
    over_stdio.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_for_event_honours_cancellation() {
    let hub = TestHub::start(&[]);
    let rec = Recorder::default();
    let c = http_client(&hub, &rec, None).await;
    let req = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("wait_for_event")
            .with_arguments(args(json!({"channel": "quiet", "timeout_s": 60}))),
    ));
    let h = c
        .send_cancellable_request(req, PeerRequestOptions::no_options())
        .await
        .unwrap();
    for _ in 0..250 {
        if mcp_waiters(&hub).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        mcp_waiters(&hub).await,
        1,
        "the wait is registered on the bus"
    );
    h.cancel(Some("user pressed stop".into())).await.unwrap();
    for _ in 0..250 {
        if mcp_waiters(&hub).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        mcp_waiters(&hub).await,
        0,
        "a cancelled wait lets go of its subscription"
    );
    ok(&c, "hub_status", json!({})).await;
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_listen_on_protocol_2026_07_28() {
    let hub = TestHub::start(&[]);
    let hc = http();
    let a = create_agent(&hc, &hub.url, "watched").await;
    let id = a["id"].as_str().unwrap();
    let uri = format!("switchboard://agents/{id}");
    for stdio in [false, true] {
        let rec = Recorder::default();
        let mode = ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        };
        let c = if stdio {
            rec.clone()
                .serve_with_lifecycle(bridge_process(&hub.dir, &hub.url), mode)
                .await
                .unwrap()
        } else {
            rec.clone()
                .serve_with_lifecycle(
                    StreamableHttpClientTransport::from_uri(format!("{}/mcp", hub.url)),
                    mode,
                )
                .await
                .unwrap()
        };
        assert_eq!(
            c.peer_info().unwrap().protocol_version,
            ProtocolVersion::V_2026_07_28
        );
        let mut sub = c
            .listen(
                SubscriptionFilter::builder()
                    .resource_subscription(uri.clone())
                    .resources_list_changed()
                    .build(),
            )
            .await
            .unwrap();
        assert_eq!(
            sub.acknowledged().resource_subscriptions.as_deref(),
            Some(&[uri.clone()][..]),
            "the hub accepted the subscription"
        );
        assert_eq!(sub.acknowledged().resources_list_changed, Some(true));
        let (s, _) = call_http(
            hc.patch(format!("{}/api/agents/{id}", hub.url))
                .json(&json!({"description": format!("stdio={stdio}")})),
        )
        .await;
        assert_eq!(s, 200);
        match tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("no notification")
            .unwrap()
        {
            Some(ServerNotification::ResourceUpdatedNotification(n)) => {
                assert_eq!(n.params.uri, uri)
            }
            other => panic!("expected resources/updated, got {other:?}"),
        }
        create_agent(&hc, &hub.url, "newcomer").await;
        match tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("no notification")
            .unwrap()
        {
            Some(ServerNotification::ResourceListChangedNotification(_)) => {}
            other => panic!("expected resources/list_changed, got {other:?}"),
        }
        // Tools work on this era too.
        let st = c
            .call_tool(CallToolRequestParams::new("hub_status"))
            .await
            .unwrap();
        assert!(st.structured_content.unwrap()["last_seq"].as_u64().unwrap() >= 3);
        sub.cancel().await.unwrap();
        c.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resources_list_and_read() {
    let hub = TestHub::start(&[]);
    let rec = Recorder::default();
    let c = http_client(&hub, &rec, None).await;
    let a = ok(&c, "create_agent", json!({"name": "res"})).await;
    let id = a["id"].as_str().unwrap();
    let list = c.list_all_resources().await.unwrap();
    let uris: Vec<&str> = list.iter().map(|r| r.uri.as_str()).collect();
    assert!(
        uris.contains(&"switchboard://agents") && uris.contains(&"switchboard://events"),
        "{uris:?}"
    );
    assert!(uris.contains(&format!("switchboard://agents/{id}").as_str()));
    let templates = c.list_all_resource_templates().await.unwrap();
    assert_eq!(templates[0].uri_template, "switchboard://agents/{id}");
    let read = |uri: String| {
        let c = c.peer().clone();
        async move {
            let r = c
                .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
                .await?;
            let rmcp::model::ResourceContents::TextResourceContents { text, .. } = &r.contents[0]
            else {
                panic!("not text")
            };
            Ok::<Value, rmcp::ServiceError>(serde_json::from_str(text).unwrap())
        }
    };
    assert_eq!(
        read(format!("switchboard://agents/{id}")).await.unwrap()["name"],
        "res"
    );
    assert_eq!(
        read("switchboard://agents".into()).await.unwrap()["agents"][0]["id"],
        id
    );
    assert_eq!(
        read("switchboard://events".into()).await.unwrap()["events"][0]["event"],
        "agent.created"
    );
    assert!(
        read("switchboard://agents/nope".into()).await.is_err(),
        "unknown agent resource"
    );
    c.cancel().await.unwrap();
}

/// Each message of a prompt as text: a text block's text, an embedded resource's `uri` and text.
fn prompt_texts(r: &GetPromptResult) -> Vec<String> {
    r.messages
        .iter()
        .map(|m| match &m.content {
            ContentBlock::Text(t) => t.text.clone(),
            ContentBlock::Resource(e) => match &e.resource {
                rmcp::model::ResourceContents::TextResourceContents { uri, text, .. } => {
                    format!("{uri}\n{text}")
                }
                other => panic!("a binary resource in a prompt: {other:?}"),
            },
            other => panic!("unexpected prompt content {other:?}"),
        })
        .collect()
}

async fn prompt(c: &Client, name: &str, a: Value) -> Result<GetPromptResult, rmcp::ServiceError> {
    c.get_prompt(GetPromptRequestParams::new(name).with_arguments(args(a)))
        .await
}

/// The MCP error code of a failed `prompts/get`, and its message and data as one string.
async fn prompt_error(c: &Client, name: &str, a: Value) -> (i32, String) {
    match prompt(c, name, a.clone()).await {
        Err(rmcp::ServiceError::McpError(e)) => (e.code.0, format!("{} {:?}", e.message, e.data)),
        other => panic!("prompt {name} {a} should fail with an MCP error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prompts_read_the_hub_as_the_caller() {
    let hub = TestHub::start(&[]);
    let hc = http();
    let a = create_agent(&hc, &hub.url, "prompted").await;
    let id = a["id"].as_str().unwrap().to_owned();
    let (s, _) = call_http(
        hc.patch(format!("{}/api/agents/{id}", hub.url))
            .json(&json!({"status": "running"})),
    )
    .await;
    assert_eq!(s, 200);
    for (channel, event) in [
        ("deploy", "started"),
        ("deploy", "finished"),
        ("chat:room", "said"),
    ] {
        let (s, b) = call_http(
            hc.post(format!("{}/api/events", hub.url))
                .json(&json!({"channel": channel, "event": event, "data": {"by": "ci"}})),
        )
        .await;
        assert_eq!(s, 202, "{b}");
    }
    let rec = Recorder::default();
    let c = http_client(&hub, &rec, None).await;

    let prompts = c.list_all_prompts().await.expect("prompts/list");
    // Each prompt as `name(argument, optional?)`.
    let listed: Vec<String> = prompts
        .iter()
        .map(|p| {
            let args: Vec<String> = (p.arguments.iter().flatten())
                .map(|a| match a.required {
                    Some(true) => a.name.clone(),
                    _ => format!("{}?", a.name),
                })
                .collect();
            format!("{}({})", p.name, args.join(", "))
        })
        .collect();
    assert_eq!(listed, ["inspect_agent(id)", "summarize_events(channel?)"]);
    assert!(
        prompts
            .iter()
            .all(|p| p.description.as_ref().is_some_and(|d| d.len() > 10))
            && prompts.len() == 2,
        "every prompt says what it is for: {prompts:?}"
    );

    // inspect_agent: the ask, the agent as an embedded resource, and its events.
    let r = prompt(&c, "inspect_agent", json!({"id": id}))
        .await
        .unwrap();
    let texts = prompt_texts(&r);
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(
        texts[0].contains("\"prompted\"") && texts[0].contains(&id),
        "{}",
        texts[0]
    );
    let (uri, state) = texts[1].split_once('\n').unwrap();
    assert_eq!(uri, format!("switchboard://agents/{id}"));
    let state: Value = serde_json::from_str(state).unwrap();
    assert_eq!(
        (
            state["name"].as_str(),
            state["status"].as_str(),
            state["version"].as_i64()
        ),
        (Some("prompted"), Some("running"), Some(2))
    );
    let agent_events = &texts[2];
    let created = agent_events.find("\"agent.created\"").expect(agent_events);
    let updated = agent_events.find("\"agent.updated\"").expect(agent_events);
    assert!(created < updated, "oldest first: {agent_events}");
    assert!(
        !agent_events.contains("deploy"),
        "only the agent's channel: {agent_events}"
    );

    // summarize_events: one channel, or every channel the caller may read.
    let deploy = prompt_texts(
        &prompt(&c, "summarize_events", json!({"channel": "deploy"}))
            .await
            .unwrap(),
    );
    assert_eq!(deploy.len(), 2, "{deploy:?}");
    assert!(
        deploy[1].contains("\"started\"") && deploy[1].contains("\"finished\""),
        "{}",
        deploy[1]
    );
    assert!(!deploy[1].contains("agent.created"), "{}", deploy[1]);
    let everything = prompt_texts(&prompt(&c, "summarize_events", json!({})).await.unwrap());
    assert!(
        everything[1].contains("\"agent.created\"") && everything[1].contains("\"chat:room\""),
        "{}",
        everything[1]
    );
    let none = prompt_texts(
        &prompt(&c, "summarize_events", json!({"channel": "silent"}))
            .await
            .unwrap(),
    );
    assert!(none[1].contains("no events on silent"), "{}", none[1]);

    // Unknown prompts and bad arguments are MCP errors; the session goes on.
    const INVALID_PARAMS: i32 = -32602;
    const NOT_FOUND: i32 = -32002;
    let (code, e) = prompt_error(&c, "no_such_prompt", json!({})).await;
    assert_eq!(code, INVALID_PARAMS, "{e}");
    let (code, e) = prompt_error(&c, "inspect_agent", json!({})).await;
    assert!(code == INVALID_PARAMS && e.contains("id"), "{code} {e}");
    let (code, e) = prompt_error(&c, "inspect_agent", json!({"id": id, "verbose": "yes"})).await;
    assert!(
        code == INVALID_PARAMS && e.contains("verbose"),
        "{code} {e}"
    );
    let (code, e) = prompt_error(&c, "inspect_agent", json!({"id": "no-such-agent"})).await;
    assert!(code == NOT_FOUND && e.contains("not_found"), "{code} {e}");
    let (code, e) = prompt_error(&c, "summarize_events", json!({"channel": "bad channel"})).await;
    assert!(
        code == INVALID_PARAMS && e.contains("channel"),
        "{code} {e}"
    );
    ok(&c, "hub_status", json!({})).await;
    c.cancel().await.unwrap();

    // A JWT limited to chat:* gets prompts only over what it may read.
    let chat = jwt(
        &hub.token(),
        json!({"sub": "u", "channels": ["chat:*"], "publish": ["chat:*"]}),
    );
    let c = http_client(&hub, &rec, Some(chat)).await;
    let (_, e) = prompt_error(&c, "inspect_agent", json!({"id": id})).await;
    assert!(e.contains("forbidden"), "{e}");
    let (_, e) = prompt_error(&c, "summarize_events", json!({"channel": "deploy"})).await;
    assert!(e.contains("forbidden"), "{e}");
    let mine = prompt_texts(&prompt(&c, "summarize_events", json!({})).await.unwrap());
    assert!(mine[1].contains("\"said\""), "{}", mine[1]);
    assert!(
        !mine[1].contains("deploy") && !mine[1].contains("agent."),
        "only chat:* events: {}",
        mine[1]
    );
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mcp_endpoint_checks_host_origin_and_token() {
    let hub = TestHub::start(&["--require-token"]);
    let token = hub.token();
    let c = http();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let post = || {
        c.post(format!("{}/mcp", hub.url))
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(&token)
            .json(&init)
    };
    let (s, b) = call_http(post().header("origin", "http://evil.example")).await;
    assert_eq!((s, error_code(&b).as_str()), (403, "forbidden_origin"));
    let (s, b) = call_http(post().header("host", "rebind.example:4747")).await;
    assert_eq!((s, error_code(&b).as_str()), (403, "forbidden_host"));
    let (s, b) = call_http(
        c.post(format!("{}/mcp", hub.url))
            .header("accept", "application/json, text/event-stream")
            .json(&init),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (401, "unauthorized"));
    let res = post()
        .header("origin", "http://localhost:6274")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "an allowed origin with the token may use /mcp"
    );

    // The rmcp client with the token, and the stdio bridge reading the token from the data dir.
    let rec = Recorder::default();
    let h = http_client(&hub, &rec, Some(token)).await;
    ok(&h, "hub_status", json!({})).await;
    h.cancel().await.unwrap();
    let s = stdio_client(&hub, &rec).await;
    ok(&s, "hub_status", json!({})).await;
    s.cancel().await.unwrap();
}

fn serve_processes(dir: &std::path::Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.iter().any(|a| a == "serve") && args.contains(&needle)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switchboard_mcp_starts_a_hub_and_a_second_one_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    assert!(serve_processes(tmp.path()).is_empty());

    let rec = Recorder::default();
    let first = rec
        .clone()
        .serve(bridge_process(tmp.path(), &url))
        .await
        .expect("first bridge");
    let st = ok(&first, "hub_status", json!({})).await;
    assert_eq!(
        st["url"],
        url.as_str(),
        "the bridge started a hub on its --hub address"
    );
    let started = serve_processes(tmp.path());
    assert_eq!(started.len(), 1, "one hub was started");

    let second = rec
        .clone()
        .serve(bridge_process(tmp.path(), &url))
        .await
        .expect("second bridge");
    ok(&second, "create_agent", json!({"name": "shared"})).await;
    let list = ok(&first, "list_agents", json!({})).await;
    assert_eq!(
        list["agents"][0]["name"], "shared",
        "both bridges talk to the same hub"
    );
    assert_eq!(
        serve_processes(tmp.path()),
        started,
        "the second bridge reused the running hub"
    );

    first.cancel().await.unwrap();
    second.cancel().await.unwrap();
    // The hub outlives its bridges (other clients share it); stop it.
    let (_, h) = call_http(http().get(format!("{url}/health"))).await;
    assert_eq!(h["pid"].as_u64(), Some(u64::from(started[0])));
    signal(started[0], "TERM");
    for _ in 0..250 {
        if serve_processes(tmp.path()).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the started hub did not stop on SIGTERM");
}

#[test]
fn switchboard_mcp_explains_when_it_cannot_start_a_hub() {
    let out = std::process::Command::new(BIN)
        .args(["mcp", "--hub", "https://127.0.0.1:9"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Switchboard hub answers"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "stdout is the protocol: nothing else goes there"
    );
}
