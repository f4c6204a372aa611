//! `Idempotency-Key` (SPEC §3): a mutation sent again with its key is done once. The retry gets the first answer
//! (status and body, marked `Idempotent-Replayed: true`) and writes nothing, also after a SIGKILL and restart; the
//! same key with another body is 422; a duplicate while the first is in flight is 409. A WebSocket `publish` with
//! an `idempotency_key` is published once too. The 24-hour expiry is a core test (`hub/core/tests/hub.rs`), in
//! paused time.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// One answer as a client sees it.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    etag: Option<String>,
    body: String,
}

/// Sends `method url` with `Idempotency-Key: key` and `body`; returns the answer and whether it was a replay.
async fn send(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    key: &str,
    body: Option<&Value>,
) -> (Answer, bool) {
    let mut req = c.request(method, url).header("idempotency-key", key);
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await.expect("request");
    let replayed = res
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let answer = Answer {
        status: res.status().as_u16(),
        etag: res
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: res.text().await.unwrap(),
    };
    (answer, replayed)
}

/// Every event in the log, as (event name, data).
async fn log(url: &str) -> Vec<(String, Value)> {
    let (s, b) = call(http().get(format!("{url}/api/events?since=0&limit=1000"))).await;
    assert_eq!(s, 200, "{b}");
    b["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().unwrap().to_owned(), e["data"].clone()))
        .collect()
}

async fn agent_count(url: &str) -> usize {
    let (s, b) = call(http().get(format!("{url}/api/agents?limit=500"))).await;
    assert_eq!(s, 200, "{b}");
    b["agents"].as_array().unwrap().len()
}

#[tokio::test]
async fn each_mutation_sent_again_with_its_key_is_done_once_even_across_a_sigkill() {
    use reqwest::Method;
    let mut hub = TestHub::start(&[]);
    let dir = hub.dir.clone();
    let c = http();
    let doomed = create_agent(&c, &hub.url, "doomed").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = hub.url.clone();
    // (method, path, key, body) of each kind of mutation. The patch names the agent the create makes, so it is
    // filled in after the first round.
    let create = json!({"name": "keyed", "config": {"b": 1, "a": [1, 2]}});
    let publish = json!({"channel": "project:1", "event": "note", "data": {"text": "once"}});
    let batch = json!([{"name": "one"}, {"name": "two"}]);
    let patch = json!({"description": "patched once", "status": "busy"});

    let mut first: Vec<Answer> = Vec::new();
    let (a, replayed) = send(
        &c,
        Method::POST,
        &format!("{url}/api/agents"),
        "k-create",
        Some(&create),
    )
    .await;
    assert_eq!((a.status, replayed), (201, false), "{a:?}");
    let id = serde_json::from_str::<Value>(&a.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    first.push(a);
    let requests: Vec<(Method, String, &str, Option<&Value>)> = vec![
        (
            Method::PATCH,
            format!("/api/agents/{id}"),
            "k-patch",
            Some(&patch),
        ),
        (
            Method::POST,
            "/api/events".into(),
            "k-publish",
            Some(&publish),
        ),
        (
            Method::POST,
            "/api/agents/batch".into(),
            "k-batch",
            Some(&batch),
        ),
        (
            Method::DELETE,
            format!("/api/agents/{doomed}"),
            "k-delete",
            None,
        ),
    ];
    for (m, path, key, body) in &requests {
        let (a, replayed) = send(&c, m.clone(), &format!("{url}{path}"), key, *body).await;
        assert!(
            (200..300).contains(&a.status) && !replayed,
            "{m} {path}: {a:?}"
        );
        first.push(a);
    }
    let all: Vec<(Method, String, &str, Option<&Value>)> = std::iter::once((
        Method::POST,
        "/api/agents".to_owned(),
        "k-create",
        Some(&create),
    ))
    .chain(requests.iter().cloned())
    .collect();
    let log_before = log(&url).await;
    let count_before = agent_count(&url).await;
    assert_eq!(count_before, 3, "keyed, one and two (doomed is gone)");

    // Sent again: the first answers, nothing written.
    let again = |base: String| {
        let c = c.clone();
        let all = all.clone();
        async move {
            let mut out = Vec::new();
            for (m, path, key, body) in &all {
                let (a, replayed) = send(&c, m.clone(), &format!("{base}{path}"), key, *body).await;
                assert!(replayed, "{m} {path} was not marked as a replay: {a:?}");
                out.push(a);
            }
            out
        }
    };
    assert_eq!(
        again(url.clone()).await,
        first,
        "a retry gets the first answer"
    );
    assert_eq!(log(&url).await, log_before, "a retry logs nothing");
    assert_eq!(agent_count(&url).await, count_before);

    // After a SIGKILL, the keys are still there: they were committed with their writes.
    hub.kill();
    let hub2 = TestHub::start_in(&dir, &[]);
    assert_eq!(
        again(hub2.url.clone()).await,
        first,
        "the first answer after a restart"
    );
    assert_eq!(log(&hub2.url).await, log_before);
    assert_eq!(agent_count(&hub2.url).await, count_before);
    let (s, b) = call(c.get(format!("{}/api/agents/{id}", hub2.url))).await;
    assert_eq!(
        (s, b["version"].as_i64()),
        (200, Some(2)),
        "patched once: {b}"
    );
    let events: Vec<&str> = log_before.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        events.iter().filter(|e| **e == "note").count(),
        1,
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_identical_posts_make_one_agent() {
    let hub = TestHub::start(&[]);
    let c = http();
    let body = json!({"name": "racer"});
    let url = format!("{}/api/agents", hub.url);
    let tries: Vec<_> = (0..20)
        .map(|_| {
            let (c, url, body) = (c.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                send(&c, reqwest::Method::POST, &url, "k-race", Some(&body))
                    .await
                    .0
            })
        })
        .collect();
    let mut created = Vec::new();
    for t in tries {
        let a = t.await.unwrap();
        match a.status {
            201 => created.push(a.body),
            409 => {
                let v: Value = serde_json::from_str(&a.body).unwrap();
                assert_eq!(error_code(&v), "idempotency_in_flight");
            }
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    assert!(!created.is_empty(), "none of them got the answer");
    // non-empty: asserted just above.
    assert!(
        created.windows(2).all(|w| w[0] == w[1]),
        "every 201 is the same answer: {created:?}"
    );
    assert_eq!(agent_count(&hub.url).await, 1, "one row");
    let creates = log(&hub.url)
        .await
        .into_iter()
        .filter(|(e, _)| e == "agent.created")
        .count();
    assert_eq!(creates, 1, "one event");
    let (last, replayed) = send(&c, reqwest::Method::POST, &url, "k-race", Some(&body)).await;
    assert_eq!(
        (last.status, &last.body, replayed),
        (201, &created[0], true)
    );
}

#[tokio::test]
async fn a_key_is_refused_with_another_body_and_scoped_to_caller_and_path() {
    let hub = TestHub::start(&[]);
    let c = http();
    let agents = format!("{}/api/agents", hub.url);
    let (a, _) = send(
        &c,
        reqwest::Method::POST,
        &agents,
        "k",
        Some(&json!({"name": "a"})),
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    // The same key with another body: 422, and nothing written.
    let (b, _) = send(
        &c,
        reqwest::Method::POST,
        &agents,
        "k",
        Some(&json!({"name": "b"})),
    )
    .await;
    let v: Value = serde_json::from_str(&b.body).unwrap();
    assert_eq!(
        (b.status, error_code(&v).as_str()),
        (422, "idempotency_conflict")
    );
    assert_eq!(agent_count(&hub.url).await, 1);
    // The same key on another path is another request.
    let events = format!("{}/api/events", hub.url);
    let ev = json!({"channel": "x", "event": "e", "data": null});
    let (p, replayed) = send(&c, reqwest::Method::POST, &events, "k", Some(&ev)).await;
    assert_eq!((p.status, replayed), (202, false), "{p:?}");
    // The same key and body from another caller (the owner, with the token) is another request too.
    let owner = c
        .post(&agents)
        .header("idempotency-key", "k")
        .bearer_auth(hub.token())
        .json(&json!({"name": "a"}));
    let (s, o) = call(owner).await;
    assert_eq!(s, 201, "{o}");
    assert_ne!(
        o["id"],
        serde_json::from_str::<Value>(&a.body).unwrap()["id"]
    );
    assert_eq!(agent_count(&hub.url).await, 2);
    // A key that is not 1–255 printable ASCII characters is refused before anything runs.
    for bad in ["k".repeat(256), "ключ".to_owned()] {
        let res = c
            .post(&agents)
            .header("idempotency-key", bad.as_bytes())
            .json(&json!({"name": "c"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        let v: Value = res.json().await.unwrap();
        assert_eq!(error_code(&v), "bad_idempotency_key");
    }
    assert_eq!(agent_count(&hub.url).await, 2);
}

#[tokio::test]
async fn a_websocket_publish_sent_again_with_its_key_is_published_once() {
    let hub = TestHub::start(&[]);
    let mut ws = ws_connect(&hub.ws_url("/ws?channels=room")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    let frame = |id: u64, text: &str| {
        json!({"type": "publish", "id": id, "channel": "room", "event": "say", "data": {"text": text},
               "idempotency_key": "k-ws"})
    };
    let mut acks = Vec::new();
    for id in [1, 2] {
        send_json(&mut ws, frame(id, "hi")).await;
        loop {
            let v = next_json(&mut ws, Duration::from_secs(5)).await;
            if v["type"] == "ack" && v["id"] == id {
                acks.push(v["seq"].as_u64().unwrap());
                break;
            }
        }
    }
    assert_eq!(acks[0], acks[1], "the second try answers the first seq");
    // Another connection sending it again (a client that reconnected) gets the same seq too.
    let mut ws2 = ws_connect(&hub.ws_url("/ws")).await;
    send_json(&mut ws2, frame(9, "hi")).await;
    let ack = next_of_type(&mut ws2, "ack", Duration::from_secs(5)).await;
    assert_eq!(ack["seq"].as_u64(), Some(acks[0]));
    // With other data it is refused.
    send_json(&mut ws2, frame(10, "bye")).await;
    let err = next_of_type(&mut ws2, "error", Duration::from_secs(5)).await;
    assert_eq!(err["error"]["code"], "idempotency_conflict", "{err}");
    let says = log(&hub.url)
        .await
        .into_iter()
        .filter(|(e, _)| e == "say")
        .count();
    assert_eq!(says, 1);
}
