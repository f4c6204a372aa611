//! SPEC §10 against the real binary: Host and Origin checks on REST, WS and SSE; CORS for allowed origins; token
//! mode; JWT `channels`/`publish` claims; socket publish rate limit; malformed frames; the connection cap.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const EVIL: &str = "http://evil.example";

async fn ws_refused(url: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
        Ok(_) => panic!("upgrade to {url} was accepted"),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
async fn rebinding_host_and_cross_site_origin_are_refused() {
    let hub = TestHub::start(&[]);
    let c = http();
    let u = &hub.url;

    // DNS rebinding: a foreign Host gets 403 everywhere, /health included.
    for path in ["/health", "/api/agents", "/events"] {
        let (s, b) = call(
            c.get(format!("{u}{path}"))
                .header("host", "attacker.example:4747"),
        )
        .await;
        assert_eq!(
            (s, error_code(&b).as_str()),
            (403, "forbidden_host"),
            "{path}"
        );
    }
    assert_eq!(
        ws_refused(&hub.ws_url("/ws"), &[("host", "attacker.example")]).await,
        403
    );

    // Cross-site Origin: refused on a mutation, on SSE and on the WS upgrade; nothing is written.
    let (s, b) = call(
        c.post(format!("{u}/api/agents"))
            .header("origin", EVIL)
            .json(&json!({"name": "x"})),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (403, "forbidden_origin"));
    let (s, _) = call(c.get(format!("{u}/events")).header("origin", EVIL)).await;
    assert_eq!(s, 403);
    assert_eq!(
        ws_refused(&hub.ws_url("/ws"), &[("origin", EVIL)]).await,
        403
    );
    let (_, list) = call(c.get(format!("{u}/api/agents"))).await;
    assert_eq!(list["agents"].as_array().unwrap().len(), 0);

    // An allowed Origin gets CORS headers, on preflight and on the real request.
    let pre = c
        .request(reqwest::Method::OPTIONS, format!("{u}/api/agents"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "content-type,if-match")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success());
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert!(
        pre.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PATCH")
    );
    let res = c
        .post(format!("{u}/api/agents"))
        .header("origin", "http://127.0.0.1:3000")
        .json(&json!({"name": "ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://127.0.0.1:3000"
    );
    let mut ws = ws_connect_with(&hub.ws_url("/ws"), &[("origin", "http://localhost:3000")]).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
}

#[tokio::test]
async fn allow_origin_and_allow_host_extend_the_lists() {
    let hub = TestHub::start(&[
        "--allow-origin",
        "https://app.example.com",
        "--allow-host",
        "hub.test",
    ]);
    let c = http();
    let (s, _) = call(
        c.get(format!("{}/health", hub.url))
            .header("host", "hub.test:80"),
    )
    .await;
    assert_eq!(s, 200);
    let res = c
        .get(format!("{}/api/agents", hub.url))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let (s, _) = call(
        c.get(format!("{}/api/agents", hub.url))
            .header("origin", "https://app.example.com.evil"),
    )
    .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn token_mode_and_jwt_claims() {
    let hub = TestHub::start(&["--require-token"]);
    let token = hub.token();
    assert_eq!(token.len(), 64, "256-bit hex token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(hub.dir.join("token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let c = http();
    let u = &hub.url;

    // Missing or wrong token: 401 on REST, SSE and WS. /health stays open.
    let (s, b) = call(c.get(format!("{u}/api/agents"))).await;
    assert_eq!((s, error_code(&b).as_str()), (401, "unauthorized"));
    let (s, _) = call(c.get(format!("{u}/api/agents")).bearer_auth("wrong")).await;
    assert_eq!(s, 401);
    let (s, _) = call(c.get(format!("{u}/events"))).await;
    assert_eq!(s, 401);
    assert_eq!(ws_refused(&hub.ws_url("/ws"), &[]).await, 401);
    let (s, _) = call(c.get(format!("{u}/health"))).await;
    assert_eq!(s, 200);

    // The token works as a bearer header and as ?token=.
    let (s, _) = call(c.get(format!("{u}/api/agents")).bearer_auth(&token)).await;
    assert_eq!(s, 200);
    let (s, _) = call(c.get(format!("{u}/api/agents?token={token}"))).await;
    assert_eq!(s, 200);

    // A JWT limited to agent:* and user channels, publishing only to chat:*.
    let jwt = jwt(
        &token,
        json!({"sub": "alice", "channels": ["agent:*", "global", "user:alice"], "publish": ["chat:*"], "exp": 4_102_444_800u64}),
    );
    assert_eq!(
        ws_refused(&hub.ws_url(&format!("/ws?token={jwt}&channels=*")), &[]).await,
        403,
        "connect-time subscribe outside the claim"
    );
    let mut ws = ws_connect(&hub.ws_url(&format!("/ws?token={jwt}&channels=agent:*"))).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    let ack = next_of_type(&mut ws, "ack", Duration::from_secs(5)).await;
    assert_eq!(ack["channel"], "agent:*");
    for (frame, code) in [
        (
            json!({"type": "subscribe", "id": 1, "channel": "project:1"}),
            "forbidden",
        ),
        (
            json!({"type": "subscribe", "id": 2, "channel": "*"}),
            "forbidden",
        ),
        (
            json!({"type": "publish", "id": 3, "channel": "global", "event": "x"}),
            "forbidden",
        ),
    ] {
        send_json(&mut ws, frame.clone()).await;
        let e = next_of_type(&mut ws, "error", Duration::from_secs(5)).await;
        assert_eq!(
            (&e["id"], e["error"]["code"].as_str()),
            (&frame["id"], Some(code)),
            "{e}"
        );
    }
    send_json(&mut ws, json!({"type": "publish", "id": 4, "channel": "chat:1", "event": "said", "data": {"t": "hi"}})).await;
    let ack = next_of_type(&mut ws, "ack", Duration::from_secs(5)).await;
    assert_eq!(
        (ack["id"].as_i64(), ack["ok"].as_bool()),
        (Some(4), Some(true))
    );
    // The user's own channel is joined automatically.
    let (s, _) = call(
        c.post(format!("{u}/api/events"))
            .bearer_auth(&token)
            .json(&json!({"channel": "user:alice", "event": "dm", "data": 1})),
    )
    .await;
    assert_eq!(s, 202);
    let e = next_of_type(&mut ws, "event", Duration::from_secs(5)).await;
    assert_eq!(
        (e["channel"].as_str(), e["event"].as_str()),
        (Some("user:alice"), Some("dm"))
    );
    // The same JWT over REST: publish outside its claim is 403, agent changes need publish on agent:*.
    let (s, b) = call(
        c.post(format!("{u}/api/events"))
            .bearer_auth(&jwt)
            .json(&json!({"channel": "global", "event": "x"})),
    )
    .await;
    assert_eq!((s, error_code(&b).as_str()), (403, "forbidden"));
    let (s, _) = call(
        c.post(format!("{u}/api/agents"))
            .bearer_auth(&jwt)
            .json(&json!({"name": "x"})),
    )
    .await;
    assert_eq!(s, 403);
    // A JWT signed with another key is refused.
    let forged = common::jwt("not-the-token", json!({"sub": "mallory"}));
    let (s, _) = call(c.get(format!("{u}/api/agents")).bearer_auth(&forged)).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn private_channels_need_authorization() {
    let hub = TestHub::start(&[]);
    let c = http();
    let mut anon = ws_connect(&hub.ws_url("/ws?channels=*")).await;
    next_of_type(&mut anon, "ack", Duration::from_secs(5)).await;
    send_json(
        &mut anon,
        json!({"type": "subscribe", "id": 1, "channel": "private-team"}),
    )
    .await;
    let e = next_of_type(&mut anon, "error", Duration::from_secs(5)).await;
    assert_eq!(e["error"]["code"], "forbidden");
    let token = hub.token();
    let mut authed =
        ws_connect(&hub.ws_url(&format!("/ws?token={token}&channels=private-team"))).await;
    next_of_type(&mut authed, "ack", Duration::from_secs(5)).await;
    call(
        c.post(format!("{}/api/events?token={token}", hub.url))
            .json(&json!({"channel": "private-team", "event": "secret"})),
    )
    .await;
    call(
        c.post(format!("{}/api/events", hub.url))
            .json(&json!({"channel": "open", "event": "public"})),
    )
    .await;
    let e = next_of_type(&mut authed, "event", Duration::from_secs(5)).await;
    assert_eq!(e["event"], "secret");
    let e = next_of_type(&mut anon, "event", Duration::from_secs(5)).await;
    assert_eq!(
        e["event"], "public",
        "an anonymous * subscription must not see private channels"
    );
    // The log read without a token shows the public event and not the private one.
    let (_, ev) = call(c.get(format!("{}/api/events", hub.url))).await;
    let channels: Vec<&str> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["open"], "{ev}");
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_connection_stays_open() {
    let hub = TestHub::start(&[]);
    let mut ws = ws_connect(&hub.ws_url("/ws")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    for (raw, code) in [
        ("{not json", "bad_frame"),
        (r#"{"type":"teleport","id":7}"#, "invalid_frame"),
        (r#"{"type":"subscribe","id":8}"#, "invalid_frame"),
        (
            r#"{"type":"subscribe","id":9,"channel":"bad channel"}"#,
            "invalid_field",
        ),
        (
            r#"{"type":"publish","id":10,"channel":"x","event":"e","data":"AAAA"}"#,
            "",
        ),
    ] {
        use futures_util::SinkExt;
        let raw = raw.replace("AAAA", &"a".repeat(70_000));
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            raw.clone().into(),
        ))
        .await
        .unwrap();
        let e = next_of_type(&mut ws, "error", Duration::from_secs(5)).await;
        let want = if code.is_empty() {
            "payload_too_large"
        } else {
            code
        };
        assert_eq!(e["error"]["code"], want, "{raw:.60} -> {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        vec![1, 2, 3].into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        next_of_type(&mut ws, "error", Duration::from_secs(5)).await["error"]["code"],
        "bad_frame"
    );
    send_json(&mut ws, json!({"type": "ping", "id": "still-here"})).await;
    let pong = next_json(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(
        (pong["type"].as_str(), pong["id"].as_str()),
        (Some("pong"), Some("still-here"))
    );
}

#[tokio::test]
async fn socket_publishes_are_rate_limited_per_connection() {
    let hub = TestHub::start(&[]);
    let mut ws = ws_connect(&hub.ws_url("/ws")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    for i in 0..260 {
        send_json(
            &mut ws,
            json!({"type": "publish", "id": i, "channel": "spam", "event": "e"}),
        )
        .await;
    }
    let (mut ok, mut limited) = (0, 0);
    while ok + limited < 260 {
        let v = next_json(&mut ws, Duration::from_secs(10)).await;
        match v["type"].as_str() {
            Some("ack") => ok += 1,
            Some("error") if v["error"]["code"] == "rate_limited" => limited += 1,
            _ => {}
        }
    }
    assert!(ok >= 200 && limited >= 1, "ok {ok}, limited {limited}");
    // Another connection is not affected.
    let mut other = ws_connect(&hub.ws_url("/ws")).await;
    next_of_type(&mut other, "connected", Duration::from_secs(5)).await;
    send_json(
        &mut other,
        json!({"type": "publish", "id": 1, "channel": "spam", "event": "e"}),
    )
    .await;
    assert_eq!(
        next_of_type(&mut other, "ack", Duration::from_secs(5)).await["ok"],
        true
    );
}

#[tokio::test]
async fn connection_cap_answers_503() {
    let hub = TestHub::start(&["--max-connections", "2"]);
    let _a = ws_connect(&hub.ws_url("/ws")).await;
    let _b = Sse::open(&format!("{}/events", hub.url), &[]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ws_refused(&hub.ws_url("/ws"), &[]).await, 503);
    let (s, b) = call(http().get(format!("{}/events", hub.url))).await;
    assert_eq!((s, error_code(&b).as_str()), (503, "too_many_connections"));
}

#[tokio::test]
async fn an_oversized_frame_gets_an_error_and_only_a_huge_one_closes_with_1009() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let hub = TestHub::start(&[]);
    let mut ws = ws_connect(&hub.ws_url("/ws")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    // Over the 1 MiB limit: refused, and the connection stays open.
    let big = format!(
        r#"{{"type":"publish","id":1,"channel":"x","event":"e","data":"{}"}}"#,
        "a".repeat(1536 * 1024)
    );
    ws.send(Message::Text(big.into())).await.unwrap();
    let e = next_of_type(&mut ws, "error", Duration::from_secs(10)).await;
    assert_eq!(e["error"]["code"], "payload_too_large", "{e}");
    send_json(&mut ws, json!({"type": "ping", "id": 2})).await;
    assert_eq!(
        next_json(&mut ws, Duration::from_secs(5)).await["type"],
        "pong"
    );
    // Past the hard protocol limit (4 MiB): the hub closes with 1009.
    let huge = "a".repeat(5 * 1024 * 1024);
    let _ = ws.send(Message::Text(huge.into())).await;
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(10)).await,
        Some(1009)
    );
}
