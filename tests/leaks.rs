//! Regression tests for the authorization leaks found in the landed hub (issue 9), black-box against the real
//! binary so they can be run against an older build too: MCP ignoring JWT claims and private channels, the hub
//! token handed to restricted callers and foreign pages, MCP sessions outside the connection cap, and pending
//! questions on private channels shown and answered by the wrong callers. Every test here failed on the hub as it
//! was before authorization moved into the core.

mod common;

use std::time::Duration;

use common::*;
use rmcp::model::{CallToolRequestParams, ClientConfig as McpClientInfo};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

type Mcp = RunningService<RoleClient, McpClientInfo>;

async fn mcp(hub: &TestHub, bearer: Option<&str>) -> Result<Mcp, String> {
    let mut cfg = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", hub.url));
    if let Some(b) = bearer {
        cfg = cfg.auth_header(b.to_owned());
    }
    McpClientInfo::default()
        .serve(StreamableHttpClientTransport::from_config(cfg))
        .await
        .map_err(|e| e.to_string())
}

/// Calls a tool: `Ok(structured result)`, or `Err(error code)` from the tool error's text.
async fn tool(c: &Mcp, name: &'static str, args: Value) -> Result<Value, String> {
    let params = CallToolRequestParams::new(name).with_arguments(args.as_object().unwrap().clone());
    let r = c.call_tool(params).await.expect("tools/call");
    let text = r
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default();
    if r.is_error == Some(true) {
        // The error body, `{"error":{"code","message"}}`; the code is in it either way.
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(code);
    }
    Ok(r.structured_content.unwrap_or(Value::Null))
}

fn forbidden(r: Result<Value, String>) -> bool {
    r.is_err_and(|e| e.contains("forbidden"))
}

#[tokio::test]
async fn a_restricted_jwt_cannot_do_more_over_mcp_than_over_rest() {
    let hub = TestHub::start(&["--require-token"]);
    let token = hub.token();
    let chat = jwt(
        &token,
        json!({"channels": ["chat:*"], "publish": ["chat:*"]}),
    );
    let owner = mcp(&hub, Some(&token)).await.unwrap();
    let agent = tool(&owner, "create_agent", json!({"name": "kept"}))
        .await
        .unwrap();
    tool(
        &owner,
        "publish_event",
        json!({"channel": "project:1", "event": "secret"}),
    )
    .await
    .unwrap();

    let c = mcp(&hub, Some(&chat)).await.unwrap();
    assert!(forbidden(
        tool(&c, "create_agent", json!({"name": "x"})).await
    ));
    assert!(forbidden(
        tool(&c, "delete_agent", json!({"id": agent["id"]})).await
    ));
    assert!(forbidden(
        tool(
            &c,
            "update_agent",
            json!({"id": agent["id"], "status": "busy"})
        )
        .await
    ));
    assert!(forbidden(
        tool(
            &c,
            "publish_event",
            json!({"channel": "global", "event": "x"})
        )
        .await
    ));
    assert!(forbidden(
        tool(&c, "recent_events", json!({"channel": "project:*"})).await
    ));
    assert!(forbidden(
        tool(
            &c,
            "wait_for_event",
            json!({"channel": "*", "timeout_s": 1})
        )
        .await
    ));
    assert!(
        tool(
            &c,
            "publish_event",
            json!({"channel": "chat:1", "event": "hi"})
        )
        .await
        .is_ok()
    );
    let recent = tool(&c, "recent_events", json!({})).await.unwrap();
    let channels: Vec<&Value> = recent["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["channel"])
        .collect();
    assert_eq!(channels, [&json!("chat:1")], "{recent}");
    // The agent is still there, unchanged.
    let a = tool(&owner, "get_agent", json!({"id": agent["id"]}))
        .await
        .unwrap();
    assert_eq!(a["version"], 1);
}

#[tokio::test]
async fn an_anonymous_mcp_caller_stays_out_of_private_channels() {
    let hub = TestHub::start(&[]);
    let token = hub.token();
    let (s, _) = call(
        http()
            .post(format!("{}/api/events", hub.url))
            .bearer_auth(&token)
            .json(&json!({"channel": "private-team", "event": "secret"})),
    )
    .await;
    assert_eq!(s, 202);
    let anon = mcp(&hub, None).await.unwrap();
    assert!(forbidden(
        tool(
            &anon,
            "publish_event",
            json!({"channel": "private-team", "event": "x"})
        )
        .await
    ));
    let recent = tool(&anon, "recent_events", json!({})).await.unwrap();
    assert!(!recent.to_string().contains("private-team"), "{recent}");
    let owner = mcp(&hub, Some(&token)).await.unwrap();
    let recent = tool(&owner, "recent_events", json!({})).await.unwrap();
    assert!(recent.to_string().contains("private-team"), "{recent}");
}

#[tokio::test]
async fn the_hub_token_is_not_handed_to_restricted_callers_or_other_pages() {
    let open = TestHub::start(&[]);
    let token = open.token();
    for path in ["/api/connect", "/api/ide/cursor?http=1"] {
        let (s, b) = call(
            http()
                .get(format!("{}{path}", open.url))
                .header("origin", "http://localhost:3000"),
        )
        .await;
        assert_eq!(s, 200);
        assert!(
            !b.to_string().contains(&token),
            "another localhost page got it: {b}"
        );
        let (_, b) = call(
            http()
                .get(format!("{}{path}", open.url))
                .bearer_auth(&token),
        )
        .await;
        assert!(b.to_string().contains(&token), "the owner did not: {b}");
    }
    let locked = TestHub::start(&["--require-token"]);
    let token = locked.token();
    let restricted = jwt(
        &token,
        json!({"channels": ["chat:*"], "publish": ["chat:*"]}),
    );
    for path in ["/api/connect", "/api/ide/cursor?http=1"] {
        let (s, b) = call(
            http()
                .get(format!("{}{path}", locked.url))
                .bearer_auth(&restricted),
        )
        .await;
        assert_eq!(s, 200);
        assert!(
            !b.to_string().contains(&token),
            "a restricted JWT got it: {b}"
        );
    }
}

#[tokio::test]
async fn mcp_sessions_count_against_the_connection_cap() {
    let hub = TestHub::start(&["--max-connections", "1"]);
    let session = mcp(&hub, None).await.unwrap();
    let (s, b) = call(http().get(format!("{}/events", hub.url))).await;
    assert_eq!((s, error_code(&b).as_str()), (503, "too_many_connections"));
    assert!(
        mcp(&hub, None).await.is_err(),
        "a second MCP session is over the cap"
    );
    drop(session);
}

/// Asks `question` on `channel` as the owner over MCP; the call waits for its answer in the background.
async fn ask(hub: &TestHub, channel: &str) -> (String, tokio::task::JoinHandle<()>) {
    let token = hub.token();
    let owner = mcp(hub, Some(&token)).await.unwrap();
    let args = json!({"question": "go?", "channel": channel, "timeout_s": 60});
    let waiting = tokio::spawn(async move {
        let _ = tool(&owner, "ask_user", args).await;
    });
    let c = http();
    for _ in 0..200 {
        let (_, q) = call(
            c.get(format!("{}/api/questions", hub.url))
                .bearer_auth(&token),
        )
        .await;
        if let Some(q) = q["questions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["channel"] == channel)
        {
            return (q["question_id"].as_str().unwrap().to_owned(), waiting);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the question on {channel} never showed");
}

#[tokio::test]
async fn questions_follow_the_rules_of_their_channel() {
    let hub = TestHub::start(&[]);
    let token = hub.token();
    let (private_q, _w1) = ask(&hub, "private-ops").await;
    let c = http();
    let (_, q) = call(c.get(format!("{}/api/questions", hub.url))).await;
    assert!(
        !q.to_string().contains(&private_q),
        "anyone could see it: {q}"
    );
    let (s, b) = call(
        c.post(format!("{}/api/questions/{private_q}/answer", hub.url))
            .json(&json!({"answer": "no"})),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (404, "not_found"));

    // Answering is publishing on the question's channel, not on `questions`.
    let (team_q, _w2) = ask(&hub, "team:1").await;
    let wrong = jwt(
        &token,
        json!({"channels": ["team:*"], "publish": ["questions"]}),
    );
    let right = jwt(
        &token,
        json!({"channels": ["team:*"], "publish": ["team:*"]}),
    );
    let url = format!("{}/api/questions/{team_q}/answer", hub.url);
    let (s, _) = call(c.post(&url).bearer_auth(&wrong).json(&json!({"answer": 1}))).await;
    assert_eq!(s, 403);
    let (s, _) = call(c.post(&url).bearer_auth(&right).json(&json!({"answer": 1}))).await;
    assert_eq!(s, 202);
    let (_, b) = call(
        c.get(format!("{}/api/questions", hub.url))
            .bearer_auth(&token),
    )
    .await;
    assert!(
        !b.to_string().contains(&team_q),
        "answered questions are gone: {b}"
    );
}
