//! REST against the real binary: agent CRUD, every error status of SPEC §3 with its error body, events,
//! channels, clients, metrics, and the dev-webhook compatibility endpoints checked with a raw HTTP client.
//! Long, as the tour of one API; who may call what is in authz.rs.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn agent_crud_and_error_statuses() {
    let hub = TestHub::start(&[]);
    let c = http();
    let u = &hub.url;

    // Create: 201 with defaults filled in and an ETag.
    let res = c
        .post(format!("{u}/api/agents"))
        .json(&json!({"name": "planner", "model": "m1", "tags": ["a"], "config": {"k": {"x": 1}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["etag"], "\"1\"");
    let a: Value = res.json().await.unwrap();
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            a["status"].as_str(),
            a["version"].as_i64(),
            a["description"].as_str()
        ),
        (Some("idle"), Some(1), Some(""))
    );

    // Read.
    let (s, got) = call(c.get(format!("{u}/api/agents/{id}"))).await;
    assert_eq!((s, &got), (200, &a));

    // Merge-patch with If-Match: config merges, version bumps, `changed` lists fields.
    let (s, p) = call(
        c.patch(format!("{u}/api/agents/{id}"))
            .header("if-match", "\"1\"")
            .json(&json!({"status": "busy", "config": {"k": {"y": 2}}})),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["version"], 2);
    assert_eq!(p["config"], json!({"k": {"x": 1, "y": 2}}));

    // 412: stale If-Match, and stale expected_version in the body; nothing changes.
    let (s, b) = call(
        c.patch(format!("{u}/api/agents/{id}"))
            .header("if-match", "\"1\"")
            .json(&json!({"status": "idle"})),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (412, "version_conflict"));
    let (s, b) = call(
        c.patch(format!("{u}/api/agents/{id}"))
            .json(&json!({"status": "idle", "expected_version": 7})),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (412, "version_conflict"));
    let (_, now) = call(c.get(format!("{u}/api/agents/{id}"))).await;
    assert_eq!(
        (now["version"].as_i64(), now["status"].as_str()),
        (Some(2), Some("busy"))
    );

    // 422 naming the field, for create and patch; unknown fields are refused too.
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "status": "Not OK"}), "status"),
        (json!({"name": "x", "tags": vec!["a"; 33]}), "tags"),
        (json!({"name": "x", "model": "m".repeat(121)}), "model"),
        (json!({"name": 5}), "name"),
        (json!({"name": "x", "colour": "red"}), "colour"),
        (json!({}), "name"),
    ] {
        let (s, b) = call(c.post(format!("{u}/api/agents")).json(&body)).await;
        assert_eq!(s, 422, "{body} -> {b}");
        assert_eq!(error_code(&b), "invalid_field");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(field),
            "{b} should name {field}"
        );
    }
    let (s, b) = call(
        c.patch(format!("{u}/api/agents/{id}"))
            .json(&json!({"config": [1]})),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (422, "invalid_field"));
    assert!(b["error"]["message"].as_str().unwrap().contains("config"));

    // 400: malformed JSON, malformed If-Match.
    let (s, b) = call(
        c.post(format!("{u}/api/agents"))
            .header("content-type", "application/json")
            .body("{\"name\":"),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (400, "bad_json"));
    let (s, b) = call(
        c.patch(format!("{u}/api/agents/{id}"))
            .header("if-match", "soon")
            .json(&json!({})),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (400, "bad_if_match"));

    // 413: body over 1 MiB, event data over 64 KiB, config over 64 KiB is a field error.
    let (s, b) = call(
        c.post(format!("{u}/api/events"))
            .header("content-type", "application/json")
            .body(format!(
                "{{\"channel\":\"x\",\"event\":\"e\",\"data\":\"{}\"}}",
                "a".repeat(1_100_000)
            )),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (413, "payload_too_large"));
    let (s, b) = call(
        c.post(format!("{u}/api/events"))
            .json(&json!({"channel": "x", "event": "e", "data": "a".repeat(70_000)})),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (413, "payload_too_large"));
    let (s, b) = call(
        c.post(format!("{u}/api/agents"))
            .json(&json!({"name": "big", "config": {"k": "a".repeat(70_000)}})),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (422, "invalid_field"));

    // 404s.
    for req in [
        c.get(format!("{u}/api/agents/nope")),
        c.patch(format!("{u}/api/agents/nope")).json(&json!({})),
        c.delete(format!("{u}/api/agents/nope")),
        c.get(format!("{u}/api/nothing")),
    ] {
        let (s, b) = call(req).await;
        assert_eq!((s, error_code(&b).as_str()), (404, "not_found"));
    }

    // Failed mutations wrote nothing: the log holds exactly created + updated.
    let (_, ev) = call(c.get(format!("{u}/api/events?channel=agent:*"))).await;
    let names: Vec<&str> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["agent.created", "agent.updated"]);
    assert_eq!(
        ev["events"][1]["data"],
        json!({"id": id, "name": "planner", "version": 2, "changed": ["status", "config"]})
    );
    assert!(
        ev["events"][0]["data"].get("config").is_none(),
        "agent events never carry config"
    );
    let (_, list) = call(c.get(format!("{u}/api/agents"))).await;
    assert_eq!(list["agents"].as_array().unwrap().len(), 1);

    // Delete: 204, then 404, and an agent.deleted event.
    let (s, _) = call(c.delete(format!("{u}/api/agents/{id}"))).await;
    assert_eq!(s, 204);
    let (s, _) = call(c.get(format!("{u}/api/agents/{id}"))).await;
    assert_eq!(s, 404);
    let (_, ev) = call(c.get(format!("{u}/api/events?channel=agent:{id}&since=2"))).await;
    assert_eq!(ev["events"][0]["event"], "agent.deleted");
    assert_eq!(ev["last_seq"], 3);
    assert!(ev["epoch"].as_str().is_some_and(|e| !e.is_empty()));
}

#[tokio::test]
async fn list_filters_and_pages() {
    let hub = TestHub::start(&[]);
    let c = http();
    let u = &hub.url;
    for i in 0..7u32 {
        let (s, _) = call(c.post(format!("{u}/api/agents")).json(&json!({"name": format!("agent {i}"), "status": if i.is_multiple_of(2) { "idle" } else { "busy" }, "description": if i == 3 { "the 100% one" } else { "" }}))).await;
        assert_eq!(s, 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    // Seven agents, three a page: a cursor that never ends is a failure, not a hang.
    for _ in 0..4 {
        let url = match &cursor {
            Some(cur) => format!("{u}/api/agents?limit=3&cursor={cur}"),
            None => format!("{u}/api/agents?limit=3"),
        };
        let (s, page) = call(c.get(url)).await;
        assert_eq!(s, 200);
        seen.extend(
            page["agents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(cursor, None, "the last page has no next_cursor");
    assert_eq!(
        seen,
        (0..7).map(|i| format!("agent {i}")).collect::<Vec<_>>()
    );
    let (_, busy) = call(c.get(format!("{u}/api/agents?status=busy"))).await;
    assert_eq!(busy["agents"].as_array().unwrap().len(), 3);
    let (_, q) = call(c.get(format!("{u}/api/agents?q=100%25"))).await;
    assert_eq!(
        q["agents"].as_array().unwrap().len(),
        1,
        "LIKE wildcards in q are literal"
    );
    for bad in ["limit=0", "limit=501", "limit=x", "cursor=zz"] {
        let (s, b) = call(c.get(format!("{u}/api/agents?{bad}"))).await;
        assert_eq!(
            (s, error_code(&b).as_str()),
            (422, "invalid_field"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn events_channels_clients_metrics() {
    let hub = TestHub::start(&[]);
    let c = http();
    let u = &hub.url;
    let mut ws = ws_connect(&hub.ws_url("/ws/dash-1?channels=project:*")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    next_of_type(&mut ws, "ack", Duration::from_secs(5)).await;

    for i in 0..5 {
        let (s, b) = call(c.post(format!("{u}/api/events")).json(&json!({"channel": format!("project:{}", i % 2), "event": "build.done", "data": {"i": i}}))).await;
        assert_eq!((s, b["seq"].as_u64()), (202, Some(i + 1)));
    }
    let e = next_of_type(&mut ws, "event", Duration::from_secs(5)).await;
    assert_eq!(
        (
            e["seq"].as_u64(),
            e["source"].as_str(),
            e["data"]["i"].as_i64()
        ),
        (Some(1), Some("rest"), Some(0))
    );

    let (_, ev) = call(c.get(format!("{u}/api/events?channel=project:1&since=0&limit=10"))).await;
    let seqs: Vec<u64> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 4]);
    let (_, ev) = call(c.get(format!("{u}/api/events?since=3&limit=1"))).await;
    assert_eq!(ev["events"][0]["seq"], 4);
    let (_, ev) = call(c.get(format!("{u}/api/events?limit=2"))).await;
    assert_eq!(
        ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [4, 5],
        "without since: the newest"
    );
    for bad in ["channel=a*b", "since=-1", "limit=0"] {
        let (s, b) = call(c.get(format!("{u}/api/events?{bad}"))).await;
        assert_eq!(
            (s, error_code(&b).as_str()),
            (422, "invalid_field"),
            "{bad}"
        );
    }
    for body in [
        json!({"channel": "bad channel", "event": "e"}),
        json!({"channel": "x", "event": ""}),
        json!({"event": "e"}),
    ] {
        let (s, b) = call(c.post(format!("{u}/api/events")).json(&body)).await;
        assert_eq!(
            (s, error_code(&b).as_str()),
            (422, "invalid_field"),
            "{body}"
        );
    }

    // Occupied channels by name, with how many connections an event on each reaches; patterns are not channels.
    let (_, ch) = call(c.get(format!("{u}/api/channels"))).await;
    assert_eq!(
        ch["channels"],
        json!([{"name": "global", "subscribers": 1}]),
        "{ch}"
    );
    let (_, one) = call(c.get(format!("{u}/api/channels/project:7"))).await;
    assert_eq!(
        (one["occupied"].as_bool(), one["subscribers"].as_u64()),
        (Some(true), Some(1))
    );
    let (_, none) = call(c.get(format!("{u}/api/channels/other"))).await;
    assert_eq!(none["occupied"], false);

    let (_, cl) = call(c.get(format!("{u}/api/clients"))).await;
    let me = &cl["clients"][0];
    assert_eq!(
        (me["id"].as_str(), me["transport"].as_str()),
        (Some("dash-1"), Some("ws"))
    );
    assert!(
        me["subscriptions"]
            .as_array()
            .unwrap()
            .contains(&json!("project:*"))
    );
    assert!(me["sent"].as_u64().unwrap() >= 1 && me["connected_at"].is_string());

    let (s, h) = call(c.get(format!("{u}/health"))).await;
    assert_eq!(
        (
            s,
            h["status"].as_str(),
            h["last_seq"].as_u64(),
            h["connections"].as_u64()
        ),
        (200, Some("ok"), Some(5), Some(1))
    );
    let m = c
        .get(format!("{u}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("switchboard_last_seq 5")
            && m.contains("switchboard_connections{transport=\"ws\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn rate_limited_rest_answers_429_with_retry_after() {
    let hub = TestHub::start(&["--rate-limit", "5"]);
    let c = http();
    let mut limited = None;
    for _ in 0..40 {
        let res = c
            .get(format!("{}/api/agents", hub.url))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            limited = Some(res);
            break;
        }
    }
    let res = limited.expect("no 429 after 40 requests at --rate-limit 5");
    assert!(res.headers().contains_key("retry-after"));
    let b: Value = res.json().await.unwrap();
    assert_eq!(error_code(&b), "rate_limited");
    let (s, _) = call(c.get(format!("{}/health", hub.url))).await;
    assert_eq!(s, 200, "/health is never rate limited");
}

/// One raw HTTP/1.1 request; returns (status line, body).
fn raw(addr: &str, method: &str, path: &str, body: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[tokio::test]
async fn dev_webhook_endpoints_over_raw_http() {
    let hub = TestHub::start(&[]);
    let addr = hub.addr.clone();

    // The dev SSE stream, read raw: first the connected message, then {type, data, timestamp}.
    let mut sse = std::net::TcpStream::connect(&addr).unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        sse,
        "GET /api/dev/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut lines = std::io::BufReader::new(sse.try_clone().unwrap());
    let data_lines = move |lines: &mut std::io::BufReader<std::net::TcpStream>, n: usize| {
        use std::io::BufRead;
        let mut out = Vec::new();
        let mut l = String::new();
        while out.len() < n {
            l.clear();
            assert!(lines.read_line(&mut l).unwrap() > 0, "dev stream ended");
            if let Some(d) = l.trim_end().strip_prefix("data: ") {
                out.push(serde_json::from_str::<Value>(d).unwrap());
            }
        }
        out
    };
    assert_eq!(
        data_lines(&mut lines, 1)[0],
        json!({"type": "connected", "message": "SSE connected"})
    );

    let (status, body) = tokio::task::spawn_blocking({
        let a = addr.clone();
        move || {
            raw(
                &a,
                "POST",
                "/api/dev/webhook",
                r#"{"event_type":"deploy.finished","data":{"ok":true}}"#,
            )
        }
    })
    .await
    .unwrap();
    assert!(status.contains("200"), "{status}");
    let b: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(b["success"], true);
    assert!(b["message"].as_str().unwrap().contains("deploy.finished"));

    let (status, body) = tokio::task::spawn_blocking({
        let a = addr.clone();
        move || {
            raw(
                &a,
                "POST",
                "/api/dev/trigger",
                r#"{"event_type":"agent_status","data":{"n":1}}"#,
            )
        }
    })
    .await
    .unwrap();
    assert!(status.contains("200"), "{status}");
    let b: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (b["success"].as_bool(), b["subscribers_notified"].as_u64()),
        (Some(true), Some(1)),
        "the dev stream is one subscriber"
    );

    let got = tokio::task::spawn_blocking(move || data_lines(&mut lines, 2))
        .await
        .unwrap();
    assert_eq!(
        (got[0]["type"].as_str(), &got[0]["data"]),
        (Some("deploy.finished"), &json!({"ok": true}))
    );
    assert_eq!(
        (got[1]["type"].as_str(), &got[1]["data"]),
        (Some("agent_status"), &json!({"n": 1}))
    );
    assert!(got[1]["timestamp"].as_str().unwrap().ends_with('Z'));

    // Both landed on `dev` with source webhook.
    let (_, ev) = call(http().get(format!("{}/api/events?channel=dev", hub.url))).await;
    let landed: Vec<(&Value, &Value)> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (&e["source"], &e["channel"]))
        .collect();
    let want = (&json!("webhook"), &json!("dev"));
    assert_eq!(landed, [want, want], "{ev}");

    // Missing fields: 400 naming the field; nothing published.
    let a2 = addr.clone();
    let results = tokio::task::spawn_blocking(move || {
        [
            raw(&a2, "POST", "/api/dev/trigger", r#"{"data":{}}"#),
            raw(
                &a2,
                "POST",
                "/api/internal/notify",
                r#"{"channel":"global","data":{}}"#,
            ),
            raw(
                &a2,
                "POST",
                "/api/internal/notify",
                r#"{"event":"x","data":{}}"#,
            ),
            raw(
                &a2,
                "POST",
                "/api/internal/notify",
                r#"{"channel":"global","event":"x","data":{"v":1}}"#,
            ),
        ]
    })
    .await
    .unwrap();
    for ((status, body), field) in results[..3].iter().zip(["event_type", "event", "channel"]) {
        assert!(status.contains("400"), "{status}");
        let b: Value = serde_json::from_str(body).unwrap();
        assert_eq!(error_code(&b), "missing_field");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(field),
            "{b}"
        );
    }
    assert!(results[3].0.contains("200"));
    let b: Value = serde_json::from_str(&results[3].1).unwrap();
    assert_eq!(
        (b["success"].as_bool(), b["seq"].as_u64()),
        (Some(true), Some(3))
    );
}

#[tokio::test]
async fn answers_to_unknown_questions_are_refused() {
    // The positive path (ask_user answered over WS, REST or the window) is in tests/mcp.rs.
    let hub = TestHub::start(&[]);
    let c = http();
    let (s, q) = call(c.get(format!("{}/api/questions", hub.url))).await;
    assert_eq!((s, &q), (200, &json!({"questions": []})));
    let mut ws = ws_connect(&hub.ws_url("/ws")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    send_json(
        &mut ws,
        json!({"type": "answer", "id": 9, "question_id": "q-1", "answer": "yes"}),
    )
    .await;
    let e = next_of_type(&mut ws, "error", Duration::from_secs(5)).await;
    assert_eq!(
        (e["id"].as_i64(), e["error"]["code"].as_str()),
        (Some(9), Some("not_found"))
    );
    let (s, b) = call(
        c.post(format!("{}/api/questions/q-2/answer", hub.url))
            .json(&json!({"answer": {"pick": 2}})),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (404, "not_found"));
    let (s, b) = call(
        c.post(format!("{}/api/questions/q-3/answer", hub.url))
            .json(&json!({"reply": 1})),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (422, "invalid_field"));
    let (_, ev) = call(c.get(format!("{}/api/events", hub.url))).await;
    assert_eq!(
        ev["events"],
        json!([]),
        "a refused answer publishes nothing"
    );
    // A plain GET on the WebSocket endpoint gets the JSON error shape too.
    let (s, b) = call(c.get(format!("{}/ws", hub.url))).await;
    assert_eq!((s, error_code(&b).as_str()), (400, "not_websocket"));
    // A path part that is not UTF-8 once decoded (found by fuzzing the Pusher API) gets it as well.
    for path in [
        "/api/agents/%FF",
        "/api/channels/%C3%28",
        "/api/ide/%FF",
        "/ws/%FF",
        "/app/%FF",
        "/apps/1/channels/%FF",
        "/apps/1/channels/%FF/users",
    ] {
        let (s, b) = call(c.get(format!("{}{path}", hub.url))).await;
        assert_eq!((s, error_code(&b).as_str()), (400, "bad_path"), "{path}");
    }
}

#[tokio::test]
async fn the_hub_serves_the_js_clients_build_at_client_js() {
    let hub = TestHub::start(&[]);
    let res = http()
        .get(format!("{}/client.js", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let served = res.text().await.unwrap();
    let built = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/js/dist/client.js"),
    )
    .unwrap();
    assert!(
        served.contains("export function connect"),
        "the client's ESM build"
    );
    assert_eq!(
        served, built,
        "/client.js is clients/js/dist/client.js byte for byte"
    );
}
