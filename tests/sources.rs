//! New ways in and out of the log, against the real binary: batch create (1 000 agents in one transaction, all or
//! nothing, in order on a WebSocket), GitHub webhook deliveries (signed, unsigned and forged, on real payload
//! shapes), replaying a logged event, and the NDJSON export; and the CLI on top of them (`agents create --from`,
//! `record`, `replay`). Just past 500 lines as one tour of the log's ways in and out, each test with its own hub.

mod common;

use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "It's a Secret to Everybody";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn last_seq(c: &reqwest::Client, u: &str) -> u64 {
    let (_, h) = call(c.get(format!("{u}/health"))).await;
    h["last_seq"].as_u64().unwrap()
}

async fn agent_count(c: &reqwest::Client, u: &str) -> usize {
    let (s, page) = call(c.get(format!("{u}/api/agents?limit=500"))).await;
    assert_eq!(s, 200);
    let mut n = page["agents"].as_array().unwrap().len();
    let mut cursor = page["next_cursor"].clone();
    while let Some(cur) = cursor.as_str() {
        let (_, p) = call(c.get(format!("{u}/api/agents?limit=500&cursor={cur}"))).await;
        n += p["agents"].as_array().unwrap().len();
        cursor = p["next_cursor"].clone();
    }
    n
}

#[tokio::test]
async fn batch_create_is_one_transaction_in_order() {
    let hub = TestHub::start(&[]);
    let c = http();
    let u = &hub.url;
    let mut ws = ws_connect(&hub.ws_url("/ws?channels=agent:*,agents")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;

    // A bad item at index 537: 422 naming it, and nothing behind, no event.
    let before = last_seq(&c, u).await;
    let mut items: Vec<Value> = (0..1000)
        .map(|i| json!({"name": format!("bulk-{i}"), "tags": ["bulk"]}))
        .collect();
    items[537] = json!({"name": "", "tags": ["bulk"]});
    let (s, body) = call(c.post(format!("{u}/api/agents/batch")).json(&items)).await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(error_code(&body), "invalid_field");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("[537].name:"),
        "{body}"
    );
    items[537] = json!({"name": "bulk-537", "colour": "red"});
    let (s, body) = call(c.post(format!("{u}/api/agents/batch")).json(&items)).await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("[537]"),
        "unknown field named by index: {body}"
    );
    assert_eq!(agent_count(&c, u).await, 0);
    assert_eq!(
        last_seq(&c, u).await,
        before,
        "no event for a refused batch"
    );

    // Not an array, empty, too many.
    for (bad, status) in [(json!({"name": "x"}), 422), (json!([]), 422)] {
        let (s, body) = call(c.post(format!("{u}/api/agents/batch")).json(&bad)).await;
        assert_eq!(s, status, "{bad} → {body}");
    }
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"name": format!("m{i}")}))
        .collect();
    let (s, body) = call(c.post(format!("{u}/api/agents/batch")).json(&many)).await;
    assert_eq!((s, error_code(&body)), (422, "invalid_field".into()));

    // 1 000 good ones: 201, all there, in order.
    items[537] = json!({"name": "bulk-537", "tags": ["bulk"]});
    let (s, body) = call(c.post(format!("{u}/api/agents/batch")).json(&items)).await;
    assert_eq!(s, 201, "{body}");
    let agents = body["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1000);
    let names: Vec<&str> = agents.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "bulk-0");
    assert_eq!(names[999], "bulk-999");
    assert_eq!(agent_count(&c, u).await, 1000);

    // The subscriber sees one agent.created per agent, in the batch's order, then agents.bulk_created.
    let mut created = Vec::new();
    let mut seqs = Vec::new();
    let bulk = loop {
        let f = next_of_type(&mut ws, "event", Duration::from_secs(10)).await;
        seqs.push(f["seq"].as_u64().unwrap());
        match f["event"].as_str().unwrap() {
            "agent.created" => created.push(f["data"]["id"].as_str().unwrap().to_owned()),
            "agents.bulk_created" => break f,
            other => panic!("unexpected {other}"),
        }
    };
    let ids: Vec<String> = agents
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(created, ids);
    assert_eq!(bulk["channel"], "agents");
    assert_eq!(bulk["data"]["count"], 1000);
    assert_eq!(bulk["data"]["ids"].as_array().unwrap().len(), 1000);
    assert_eq!(bulk["data"]["ids"][0].as_str(), Some(ids[0].as_str()));
    assert_eq!(seqs.len(), 1001);
    // non-empty: 1001 seqs, just above
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "one contiguous run of seqs"
    );
}

async fn deliver(
    c: &reqwest::Client,
    u: &str,
    kind: &str,
    body: &[u8],
    sig: Option<String>,
) -> (u16, Value) {
    let mut req = c
        .post(format!("{u}/api/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", kind)
        .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .body(body.to_vec());
    if let Some(s) = sig {
        req = req.header("x-hub-signature-256", s);
    }
    call(req).await
}

#[tokio::test]
async fn github_deliveries_are_verified_and_mapped() {
    // On a hub that requires its token: GitHub cannot send it; the signature is the credential.
    let hub = TestHub::start(&["--require-token", "--github-secret", SECRET]);
    let c = http();
    let u = &hub.url;
    let token = hub.token();
    let fixture = |n: &str| {
        std::fs::read(format!(
            "{}/../../tests/fixtures/github/{n}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let log = |since: u64| {
        let c = c.clone();
        let token = token.clone();
        async move {
            let (s, page) = call(
                c.get(format!("{u}/api/events?channel=project:*&since={since}"))
                    .bearer_auth(token),
            )
            .await;
            assert_eq!(s, 200);
            page["events"].as_array().unwrap().clone()
        }
    };

    // Unsigned, forged (signed with another secret, or a body changed after signing), wrong scheme: 401, nothing.
    let pr = fixture("pull_request");
    let mut tampered = pr.clone();
    tampered[20] ^= 1;
    let other = {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"not the secret").unwrap();
        mac.update(&pr);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    for sig in [
        None,
        Some(other),
        Some(sign(&tampered)),
        Some("sha1=0123".to_owned()),
    ] {
        let (s, body) = deliver(&c, u, "pull_request", &pr, sig.clone()).await;
        assert_eq!(
            (s, error_code(&body)),
            (401, "unauthorized".into()),
            "{sig:?}: {body}"
        );
    }
    assert!(log(0).await.is_empty(), "nothing published on failure");

    // ping: 200, nothing published.
    let ping = fixture("ping");
    let (s, body) = deliver(&c, u, "ping", &ping, Some(sign(&ping))).await;
    assert_eq!((s, &body["published"]), (200, &json!(false)), "{body}");

    // Signed: published on project:<owner>.<repo>, trimmed.
    for (kind, name, event) in [
        ("pull_request", "pull_request", "pr.merged"),
        ("issues", "issues", "issue.opened"),
        ("push", "push", "push"),
    ] {
        let body = fixture(name);
        let (s, res) = deliver(&c, u, kind, &body, Some(sign(&body))).await;
        assert_eq!(s, 202, "{kind}: {res}");
        assert_eq!(
            (res["channel"].as_str(), res["event"].as_str()),
            (Some("project:octocat.Hello-World"), Some(event))
        );
    }
    let events = log(0).await;
    let got: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("pr.merged", "webhook"),
            ("issue.opened", "webhook"),
            ("push", "webhook")
        ]
    );
    assert_eq!(events[0]["data"]["number"], 1347);
    assert_eq!(events[0]["data"]["head"], "new-topic");
    assert_eq!(events[0]["data"].get("body"), None, "trimmed: no PR body");
    assert_eq!(events[1]["data"]["labels"], json!(["bug", "p1"]));
    assert_eq!(events[2]["data"]["commits"], 1);
    assert_eq!(
        events[2]["data"]["head_commit"]["message"],
        "Update README.md"
    );

    // Form-encoded deliveries are signed over the form body.
    let form = format!(
        "payload={}",
        urlencode(std::str::from_utf8(&fixture("issues")).unwrap())
    );
    let res = c
        .post(format!("{u}/api/webhooks/github"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-github-event", "issues")
        .header("x-hub-signature-256", sign(form.as_bytes()))
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn without_a_secret_every_delivery_is_refused() {
    let hub = TestHub::start(&[]);
    let c = http();
    let body = br#"{"zen":"x","repository":{"full_name":"a/b"}}"#;
    let (s, res) = deliver(&c, &hub.url, "ping", body, Some(sign(body))).await;
    assert_eq!(s, 401, "{res}");
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--github-secret")
    );
}

#[tokio::test]
async fn replay_republishes_and_export_streams_the_log() {
    let hub = TestHub::start(&[]);
    let c = http();
    let u = &hub.url;
    let mut seqs = Vec::new();
    for i in 0..2500 {
        let (s, b) =
            call(c.post(format!("{u}/api/events")).json(
                &json!({"channel": format!("p:{}", i % 3), "event": "tick", "data": {"i": i}}),
            ))
            .await;
        assert_eq!(s, 202);
        seqs.push(b["seq"].as_u64().unwrap());
    }
    let mut ws = ws_connect(&hub.ws_url("/ws?channels=p:1")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;

    // Replay: a new event, same channel, name and data, source system, replay_of.
    let original = seqs[1];
    let (s, b) = call(c.post(format!("{u}/api/events/{original}/replay"))).await;
    assert_eq!(s, 202, "{b}");
    let copy = next_of_type(&mut ws, "event", Duration::from_secs(5)).await;
    assert_eq!(copy["seq"], b["seq"]);
    assert_eq!(
        (
            copy["channel"].as_str(),
            copy["event"].as_str(),
            copy["source"].as_str()
        ),
        (Some("p:1"), Some("tick"), Some("system"))
    );
    assert_eq!(copy["data"], json!({"i": 1}));
    assert_eq!(copy["replay_of"], original);
    // It is logged so: the log and a resume show replay_of too.
    let (_, page) = call(c.get(format!(
        "{u}/api/events?channel=p:1&since={}",
        b["seq"].as_u64().unwrap() - 1
    )))
    .await;
    assert_eq!(page["events"][0]["replay_of"], original);
    for (path, status) in [("999999/replay", 404), ("abc/replay", 422)] {
        let (s, body) = call(c.post(format!("{u}/api/events/{path}"))).await;
        assert_eq!(s, status, "{path}: {body}");
    }

    // Export: NDJSON of every envelope, in order, across pages; since/until/channel narrow it.
    let text = c
        .get(format!("{u}/api/events/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(text.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = text
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2501);
    // non-empty: 2501 lines, just above
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64())
    );
    assert_eq!(lines[2500]["replay_of"], original);
    let some = c
        .get(format!(
            "{u}/api/events/export?channel=p:2&since={}&until={}",
            seqs[1000], seqs[1999]
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let some: Vec<Value> = some
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(some.len(), 333);
    // non-empty: 333, just above
    assert!(some.iter().all(|e| e["channel"] == "p:2"));
    let (s, body) = call(c.get(format!("{u}/api/events/export?channel=bad%20pattern"))).await;
    assert_eq!((s, error_code(&body)), (422, "invalid_field".into()));
}

/// `switchboard ARGS… --hub URL` to completion: (success, stdout, stderr).
fn cli(hub: &TestHub, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .args(["--hub", &hub.url])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cli_creates_5000_agents_from_ndjson_in_chunks() {
    let hub = TestHub::start(&[]);
    let c = http();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agents.ndjson");
    let lines: Vec<String> = (0..5000)
        .map(|i| json!({"name": format!("cli-{i}"), "tags": ["cli"]}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (ok, out, err) = cli(
        &hub,
        &["agents", "create", "--from", file.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["created"].as_u64(), v["chunks"].as_u64()),
        (Some(5000), Some(5))
    );
    assert_eq!(agent_count(&c, &hub.url).await, 5000);
    let (_, ev) = call(c.get(format!("{}/api/events?channel=agents&since=0", hub.url))).await;
    let bulk: Vec<u64> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["count"].as_u64().unwrap())
        .collect();
    assert_eq!(bulk, [1000; 5]);

    // A bad line: nothing sent at all, and the line named.
    std::fs::write(&file, "{\"name\":\"ok\"}\nnot json\n").unwrap();
    let (ok, _, err) = cli(
        &hub,
        &["agents", "create", "--from", file.to_str().unwrap()],
    );
    assert!(!ok && err.contains(":2: not JSON"), "{err}");
    // A refused item in the second chunk: the first chunk stays, the item is named by its place in the file.
    let mut lines: Vec<String> = (0..1500)
        .map(|i| json!({"name": format!("more-{i}")}).to_string())
        .collect();
    lines[1200] = json!({"name": "x", "status": "NOT VALID"}).to_string();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (ok, _, err) = cli(
        &hub,
        &["agents", "create", "--from", file.to_str().unwrap()],
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains("item 1200 (line 1201)") && err.contains("The 1000 agents"),
        "{err}"
    );
    assert_eq!(agent_count(&c, &hub.url).await, 6000);
}

#[tokio::test]
async fn record_then_replay_into_a_fresh_hub_keeps_order_and_timing() {
    let a = TestHub::start(&[]);
    let c = http();
    // Gaps of 0–600 ms between events on two channels.
    let gaps_ms = [0u64, 300, 100, 600, 0, 250, 450];
    for (i, gap) in gaps_ms.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(*gap)).await;
        let body = json!({"channel": format!("rec:{}", i % 2), "event": format!("step.{i}"), "data": {"i": i, "nested": {"ok": true}}});
        let (s, _) = call(c.post(format!("{}/api/events", a.url)).json(&body)).await;
        assert_eq!(s, 202);
    }
    let (ok, recording, err) = cli(&a, &["record", "--channel", "rec:*"]);
    assert!(ok, "{err}");
    let original: Vec<Value> = recording
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(original.len(), gaps_ms.len());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("session.ndjson");
    std::fs::write(&file, &recording).unwrap();

    let b = TestHub::start(&[]);
    let (ok, out, err) = cli(&b, &["replay", file.to_str().unwrap(), "--speed", "1"]);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["published"], 7);
    let (_, page) = call(c.get(format!("{}/api/events?channel=rec:*&since=0", b.url))).await;
    let replayed = page["events"].as_array().unwrap();
    let shape = |e: &Value| (e["channel"].clone(), e["event"].clone(), e["data"].clone());
    assert_eq!(
        replayed.iter().map(shape).collect::<Vec<_>>(),
        original.iter().map(shape).collect::<Vec<_>>()
    );
    let ms = |e: &Value| {
        chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    let span = |l: &[Value]| (ms(&l[l.len() - 1]) - ms(&l[0])) as f64;
    let (was, now) = (span(&original), span(replayed));
    assert!(
        (now - was).abs() <= was * 0.10,
        "total {now} ms vs {was} ms recorded"
    );
    for (k, w) in original.windows(2).zip(replayed.windows(2)) {
        let (g0, g1) = (
            (ms(&k[1]) - ms(&k[0])) as f64,
            (ms(&w[1]) - ms(&w[0])) as f64,
        );
        assert!(
            (g1 - g0).abs() <= (g0 * 0.10).max(25.0),
            "a gap of {g0} ms became {g1} ms"
        );
    }

    // --speed 0: as fast as possible, same order.
    let fresh = TestHub::start(&[]);
    let started = std::time::Instant::now();
    let (ok, _, err) = cli(&fresh, &["replay", file.to_str().unwrap(), "--speed", "0"]);
    assert!(ok, "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(was as u64),
        "--speed 0 does not wait"
    );
    let (ok, _, err) = cli(&fresh, &["replay", file.to_str().unwrap(), "--speed=-1"]);
    assert!(!ok && err.contains("--speed"), "{err}");
}
