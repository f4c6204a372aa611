//! `ask_user` in the IDE (SPEC §8) against the real binary, with an rmcp client that declares form elicitation and
//! answers it as an IDE's user would: in both protocol eras (the `elicitation/create` request up to 2025-11-25, the
//! `input_required` result of 2026-07-28); the first answer wins from any path; a declined form leaves the hub
//! path open; a client without elicitation gets the hub path only; progress keeps a 40 s question alive.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, CancelledNotificationParam, ClientCapabilities,
    ClientConfig, ClientRequest, ElicitRequestParams, ElicitResult, ElicitationAction,
    Implementation, ProgressNotificationParam, ProtocolVersion, Request, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{
    ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient, ServiceExt,
};
use serde_json::{Value, json};

/// What the IDE's user does with a form.
#[derive(Clone)]
enum User {
    Answers(Value),
    Declines,
    /// Looks away: the form stays open until the server withdraws it.
    Ignores,
}

/// An IDE: declares form elicitation (or not), records the forms it is shown and the cancellations it gets.
#[derive(Clone)]
struct Ide {
    user: User,
    elicitation: bool,
    forms: Arc<Mutex<Vec<Value>>>,
    cancelled: Arc<Mutex<Vec<CancelledNotificationParam>>>,
    progress: Arc<Mutex<Vec<(Instant, f64)>>>,
}

impl Ide {
    fn new(user: User) -> Self {
        Ide {
            user,
            elicitation: true,
            forms: Arc::default(),
            cancelled: Arc::default(),
            progress: Arc::default(),
        }
    }
}

impl ClientHandler for Ide {
    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.forms
            .lock()
            .unwrap()
            .push(serde_json::to_value(&request).unwrap());
        match &self.user {
            User::Answers(v) => {
                Ok(ElicitResult::new(ElicitationAction::Accept).with_content(json!({"answer": v})))
            }
            User::Declines => Ok(ElicitResult::new(ElicitationAction::Decline)),
            User::Ignores => std::future::pending().await,
        }
    }
    async fn on_cancelled(
        &self,
        p: CancelledNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        self.cancelled.lock().unwrap().push(p);
    }
    async fn on_progress(&self, p: ProgressNotificationParam, _c: NotificationContext<RoleClient>) {
        self.progress
            .lock()
            .unwrap()
            .push((Instant::now(), p.progress));
    }
    fn get_info(&self) -> ClientConfig {
        let caps = if self.elicitation {
            ClientCapabilities::builder().enable_elicitation().build()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(caps, Implementation::new("an-ide", "0"))
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }
}

type Client = RunningService<RoleClient, Ide>;

/// An MCP session over HTTP in the given era.
async fn connect(hub: &TestHub, ide: &Ide, era: ProtocolVersion) -> Client {
    let transport = StreamableHttpClientTransport::from_uri(format!("{}/mcp", hub.url));
    let c = if era == ProtocolVersion::V_2026_07_28 {
        let mode = ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        };
        ide.clone().serve_with_lifecycle(transport, mode).await
    } else {
        ide.clone().serve(transport).await
    };
    let c = c.expect("MCP session");
    assert_eq!(c.peer_info().unwrap().protocol_version, era);
    c
}

async fn ask(c: &Client, a: Value) -> CallToolResult {
    c.call_tool(
        CallToolRequestParams::new("ask_user").with_arguments(a.as_object().cloned().unwrap()),
    )
    .await
    .expect("ask_user answered")
}

/// The question events on `questions` so far, as `(event, data)`.
async fn question_log(hub: &TestHub) -> Vec<(String, Value)> {
    let (_, page) =
        call(http().get(format!("{}/api/events?channel=questions&since=0", hub.url))).await;
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().unwrap().to_owned(), e["data"].clone()))
        .collect()
}

/// The names of the question events so far.
async fn question_names(hub: &TestHub) -> Vec<String> {
    question_log(hub)
        .await
        .into_iter()
        .map(|(e, _)| e)
        .collect()
}

async fn pending(url: &str) -> Vec<Value> {
    let (_, q) = call(http().get(format!("{url}/api/questions"))).await;
    q["questions"].as_array().unwrap().clone()
}

/// The pending questions at `url` once there are `n` of them (within 10 s).
async fn until_pending(url: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let p = pending(url).await;
        if p.len() == n {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {n} pending: {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn via_ide_returns_the_elicited_answer_in_both_eras() {
    let hub = TestHub::start(&[]);
    for era in [ProtocolVersion::V_2025_11_25, ProtocolVersion::V_2026_07_28] {
        let ide = Ide::new(User::Answers(json!("blue")));
        let c = connect(&hub, &ide, era.clone()).await;
        let r = ask(&c, json!({"question": "Which colour?", "via": "ide", "options": ["red", "blue"], "timeout_s": 30})).await;
        assert_ne!(r.is_error, Some(true), "{era:?}: {r:?}");
        assert_eq!(
            r.structured_content,
            Some(json!({"answer": "blue", "answered_by": "mcp"})),
            "{era:?}"
        );
        // The IDE was shown one form: the question, and the options as an enum.
        let forms = ide.forms.lock().unwrap().clone();
        assert_eq!(forms.len(), 1, "{era:?}: {forms:?}");
        assert_eq!(forms[0]["message"], "Which colour?");
        assert_eq!(
            forms[0]["requestedSchema"]["properties"]["answer"]["enum"],
            json!(["red", "blue"])
        );
        assert_eq!(forms[0]["requestedSchema"]["required"], json!(["answer"]));
        // Asked only in the IDE: never listed for the window.
        assert!(pending(&hub.url).await.is_empty());
        c.cancel().await.unwrap();
    }
    let log = question_log(&hub).await;
    let names: Vec<&str> = log.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "question",
            "question.answered",
            "question",
            "question.answered"
        ]
    );
    assert_eq!(log[1].1["answered_by"], "mcp");
    assert_eq!(log[0].1["via"], "ide");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn via_both_a_websocket_answer_first_wins_and_the_form_is_withdrawn() {
    let hub = TestHub::start(&[]);
    let ide = Ide::new(User::Ignores);
    let c = connect(&hub, &ide, ProtocolVersion::V_2025_11_25).await;
    let asking = {
        let peer = c.peer().clone();
        tokio::spawn(async move {
            peer.call_tool(
                CallToolRequestParams::new("ask_user").with_arguments(
                    json!({"question": "Ship it?", "timeout_s": 60})
                        .as_object()
                        .cloned()
                        .unwrap(),
                ),
            )
            .await
        })
    };
    let q = until_pending(&hub.url, 1).await;
    let id = q[0]["question_id"].as_str().unwrap().to_owned();
    assert_eq!(q[0]["via"], "both");
    let mut ws = ws_connect(&hub.ws_url("/ws")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    send_json(
        &mut ws,
        json!({"type": "answer", "id": 1, "question_id": id, "answer": "yes, from the webapp"}),
    )
    .await;
    let ack = next_of_type(&mut ws, "ack", Duration::from_secs(5)).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let r = tokio::time::timeout(Duration::from_secs(10), asking)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        r.structured_content,
        Some(json!({"answer": "yes, from the webapp", "answered_by": "ws"}))
    );
    assert_eq!(ide.forms.lock().unwrap().len(), 1, "the form was shown");
    // The open form is withdrawn: the client is told the request is cancelled.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ide.cancelled.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the elicitation was never cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        question_names(&hub).await,
        ["question", "question.answered"]
    );
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declined_form_leaves_the_hub_path_open_and_ends_an_ide_only_question() {
    let hub = TestHub::start(&[]);
    for era in [ProtocolVersion::V_2025_11_25, ProtocolVersion::V_2026_07_28] {
        let ide = Ide::new(User::Declines);
        let c = connect(&hub, &ide, era.clone()).await;
        // via both: declined in the IDE, answered in the window.
        let answering = answer_over_rest(&hub, json!("from the window"));
        let r = ask(&c, json!({"question": "Both?", "timeout_s": 30})).await;
        assert_eq!(
            r.structured_content,
            Some(json!({"answer": "from the window", "answered_by": "rest"})),
            "{era:?}: {r:?}"
        );
        answering.await.unwrap();
        assert_eq!(ide.forms.lock().unwrap().len(), 1, "{era:?}");
        // via ide: declined ends it, withdrawn.
        let r = ask(
            &c,
            json!({"question": "Only here?", "via": "ide", "timeout_s": 30}),
        )
        .await;
        assert_eq!(r.is_error, Some(true), "{era:?}: {r:?}");
        let text = format!("{:?}", r.content);
        assert!(text.contains("declined"), "{era:?}: {text}");
        c.cancel().await.unwrap();
    }
    let log = question_log(&hub).await;
    let withdrawn: Vec<&Value> = log
        .iter()
        .filter(|(e, _)| e == "question.withdrawn")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(withdrawn.len(), 2);
    // non-empty: two, just above
    assert!(withdrawn.iter().all(|d| d["reason"] == "declined"));
    assert!(pending(&hub.url).await.is_empty());
}

/// Answers the first question that shows up at `GET /api/questions`, over REST.
fn answer_over_rest(hub: &TestHub, answer: Value) -> tokio::task::JoinHandle<()> {
    let url = hub.url.clone();
    tokio::spawn(async move {
        let q = until_pending(&url, 1).await;
        let id = q[0]["question_id"].as_str().unwrap();
        let (s, b) = call(
            http()
                .post(format!("{url}/api/questions/{id}/answer"))
                .json(&json!({"answer": answer})),
        )
        .await;
        assert_eq!(s, 202, "{b}");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_without_elicitation_gets_the_hub_path_only() {
    let hub = TestHub::start(&[]);
    let mut ide = Ide::new(User::Answers(json!("never asked")));
    ide.elicitation = false;
    let c = connect(&hub, &ide, ProtocolVersion::V_2025_11_25).await;
    let answering = answer_over_rest(&hub, json!("over REST"));
    // Even with via ide: it cannot be asked there, so the hub asks.
    let r = ask(
        &c,
        json!({"question": "Anyone?", "via": "ide", "timeout_s": 30}),
    )
    .await;
    assert_eq!(
        r.structured_content,
        Some(json!({"answer": "over REST", "answered_by": "rest"}))
    );
    answering.await.unwrap();
    assert!(
        ide.forms.lock().unwrap().is_empty(),
        "no form for a client that did not declare elicitation"
    );
    let log = question_log(&hub).await;
    assert_eq!(log[0].1["via"], "hub");
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn progress_keeps_a_40_s_question_alive() {
    let hub = TestHub::start(&[]);
    let mut ide = Ide::new(User::Ignores);
    ide.elicitation = false;
    let c = connect(&hub, &ide, ProtocolVersion::V_2025_11_25).await;
    // A client that gives up after 20 s of silence, unless progress restarts that clock.
    let req = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("ask_user").with_arguments(
            json!({"question": "Take your time", "timeout_s": 120})
                .as_object()
                .cloned()
                .unwrap(),
        ),
    ));
    let options =
        PeerRequestOptions::with_timeout(Duration::from_secs(20)).reset_timeout_on_progress();
    let started = Instant::now();
    let h = c.send_cancellable_request(req, options).await.unwrap();
    let url = hub.url.clone();
    let answering = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(40)).await;
        let (_, q) = call(http().get(format!("{url}/api/questions"))).await;
        let id = q["questions"][0]["question_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (s, _) = call(
            http()
                .post(format!("{url}/api/questions/{id}/answer"))
                .json(&json!({"answer": "done"})),
        )
        .await;
        assert_eq!(s, 202);
    });
    let res = h.await_response().await;
    answering.await.unwrap();
    let Ok(ServerResult::CallToolResult(r)) = res else {
        panic!("the question did not last to its answer: {res:?}")
    };
    assert_eq!(
        r.structured_content,
        Some(json!({"answer": "done", "answered_by": "rest"}))
    );
    let beats = ide.progress.lock().unwrap().clone();
    let mut times: Vec<Instant> = vec![started];
    times.extend(beats.iter().map(|(t, _)| *t));
    assert!(beats.len() >= 3, "progress during 40 s: {beats:?}");
    let longest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        longest <= Duration::from_secs(15),
        "a silence of {longest:?} between progress notifications"
    );
    // non-empty: three or more, checked above
    assert!(
        beats.windows(2).all(|w| w[0].1 < w[1].1),
        "progress only grows"
    );
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_question_outlives_a_hub_restart_and_its_key_returns_the_answer() {
    let data = tempfile::tempdir().unwrap();
    let mut hub = TestHub::start_in(data.path(), &[]);
    let mut ide = Ide::new(User::Ignores);
    ide.elicitation = false;
    let c = connect(&hub, &ide, ProtocolVersion::V_2025_11_25).await;
    let a = json!({"question": "Migrate the database?", "options": ["yes", "no"], "key": "migrate-7", "timeout_s": 600});
    let asking = {
        let peer = c.peer().clone();
        let a = a.clone();
        tokio::spawn(async move {
            peer.call_tool(
                CallToolRequestParams::new("ask_user")
                    .with_arguments(a.as_object().cloned().unwrap()),
            )
            .await
        })
    };
    let before = until_pending(&hub.url, 1).await;
    // The hub dies with the question pending; the agent's call is cut off.
    hub.kill();
    asking.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.cancel()).await;
    let hub = TestHub::start_in(data.path(), &[]);
    let after = until_pending(&hub.url, 1).await;
    assert_eq!(after[0]["question_id"], before[0]["question_id"]);
    assert_eq!(after[0]["options"], json!(["yes", "no"]));
    let id = after[0]["question_id"].as_str().unwrap();
    let (s, b) = call(
        http()
            .post(format!("{}/api/questions/{id}/answer", hub.url))
            .json(&json!({"answer": "yes"})),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    // The agent asks again with its key: the stored answer, at once, and no second question.
    let c = connect(&hub, &ide, ProtocolVersion::V_2025_11_25).await;
    let started = Instant::now();
    let r = ask(&c, a).await;
    assert_eq!(
        r.structured_content,
        Some(json!({"answer": "yes", "answered_by": "rest"}))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered from the store, not by waiting"
    );
    assert_eq!(
        question_names(&hub).await,
        ["question", "question.answered"]
    );
    c.cancel().await.unwrap();
}
