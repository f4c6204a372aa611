//! Resume under load: 4 concurrent REST writers make 2 000 mutations while a client disconnects mid-way and
//! resumes with `since` (WebSocket) or `Last-Event-ID` (SSE). Every seq must arrive exactly once, in order.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const WRITERS: usize = 4;
const PER_WRITER: usize = 500;
const TOTAL: u64 = (WRITERS * PER_WRITER) as u64;

/// Each writer creates 10 agents, then updates them round-robin: 500 mutations, 500 events.
fn spawn_writers(url: &str) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WRITERS)
        .map(|w| {
            let url = url.to_owned();
            tokio::spawn(async move {
                let c = http();
                let mut ids = Vec::new();
                for i in 0..PER_WRITER {
                    if i < 10 {
                        ids.push(
                            create_agent(&c, &url, &format!("w{w}-{i}")).await["id"]
                                .as_str()
                                .unwrap()
                                .to_owned(),
                        );
                    } else {
                        let id = &ids[i % ids.len()];
                        let (s, b) = call(
                            c.patch(format!("{url}/api/agents/{id}"))
                                .json(&json!({"description": format!("step {i}")})),
                        )
                        .await;
                        assert_eq!(s, 200, "{b}");
                    }
                }
            })
        })
        .collect()
}

fn assert_exactly_once_in_order(seqs: &[u64], from: u64) {
    let expected: Vec<u64> = (from + 1..=from + TOTAL).collect();
    if seqs != expected.as_slice() {
        let dups = seqs.windows(2).filter(|w| w[0] == w[1]).count();
        let out_of_order = seqs.windows(2).filter(|w| w[0] > w[1]).count();
        panic!(
            "got {} events (want {TOTAL}): {dups} duplicates, {out_of_order} out of order, first {:?}, last {:?}",
            seqs.len(),
            seqs.first(),
            seqs.last()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_resume_under_load_is_exact() {
    let hub = TestHub::start(&[]);
    let mut ws = ws_connect(&hub.ws_url("/ws")).await;
    let hello = next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    let start = hello["last_seq"].as_u64().unwrap();
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    send_json(
        &mut ws,
        json!({"type": "subscribe", "id": 1, "channel": "agent:*"}),
    )
    .await;
    let ack = next_of_type(&mut ws, "ack", Duration::from_secs(5)).await;
    assert_eq!(
        (ack["id"].as_i64(), ack["ok"].as_bool()),
        (Some(1), Some(true))
    );

    let writers = spawn_writers(&hub.url);
    let mut seqs = Vec::new();
    // Take a third of the stream, then drop the connection without a close handshake.
    while seqs.len() < (TOTAL / 3) as usize {
        let e = next_of_type(&mut ws, "event", Duration::from_secs(20)).await;
        seqs.push(e["seq"].as_u64().unwrap());
    }
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await; // writers keep going while we are away

    let mut ws = ws_connect(&hub.ws_url("/ws")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    let last = *seqs.last().unwrap();
    send_json(
        &mut ws,
        json!({"type": "subscribe", "id": 2, "channel": "agent:*", "since": last, "epoch": epoch}),
    )
    .await;
    let ack = next_of_type(&mut ws, "ack", Duration::from_secs(5)).await;
    assert_eq!(
        (ack["id"].as_i64(), ack["recovered"].as_bool()),
        (Some(2), Some(true)),
        "{ack}"
    );
    while (seqs.len() as u64) < TOTAL {
        let e = next_of_type(&mut ws, "event", Duration::from_secs(20)).await;
        seqs.push(e["seq"].as_u64().unwrap());
    }
    for w in writers {
        w.await.unwrap();
    }
    // Nothing more may arrive: a duplicate would show up here.
    send_json(&mut ws, json!({"type": "ping", "id": "end"})).await;
    let v = next_json(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(
        v["type"], "pong",
        "unexpected frame after the last event: {v}"
    );
    assert_exactly_once_in_order(&seqs, start);

    // A since from another epoch is not recovered. (One past retention is not either:
    // hub/core/tests/hub.rs, prune_keeps_the_newest_and_limits_recovery.)
    send_json(&mut ws, json!({"type": "subscribe", "id": 3, "channel": "project:*", "since": 1, "epoch": "not-this-one"})).await;
    let ack = next_of_type(&mut ws, "ack", Duration::from_secs(5)).await;
    assert_eq!(ack["recovered"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sse_resume_with_last_event_id_is_exact() {
    let hub = TestHub::start(&[]);
    let (_, h) = call(http().get(format!("{}/health", hub.url))).await;
    let start = h["last_seq"].as_u64().unwrap();
    let mut sse = Sse::open(&format!("{}/events?channels=agent:*", hub.url), &[]).await;
    // Wait until the subscription is registered before writing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the SSE subscription never showed in /api/clients"
        );
        let (_, cl) = call(http().get(format!("{}/api/clients", hub.url))).await;
        if cl["clients"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["transport"] == "sse"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let writers = spawn_writers(&hub.url);
    let mut seqs: Vec<u64> = Vec::new();
    while seqs.len() < (TOTAL / 2) as usize {
        let (id, data) = sse
            .next(Duration::from_secs(20))
            .await
            .expect("stream open");
        assert_eq!(id, data["seq"].to_string(), "id: is the seq");
        seqs.push(data["seq"].as_u64().unwrap());
    }
    drop(sse);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let last = seqs.last().unwrap().to_string();
    let mut sse = Sse::open(
        &format!("{}/events?channels=agent:*", hub.url),
        &[("Last-Event-ID", &last)],
    )
    .await;
    while (seqs.len() as u64) < TOTAL {
        let (_, data) = sse
            .next(Duration::from_secs(20))
            .await
            .expect("stream open");
        seqs.push(data["seq"].as_u64().unwrap());
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_exactly_once_in_order(&seqs, start);
    // And nothing after the last one within a short wait.
    let extra =
        tokio::time::timeout(Duration::from_millis(500), sse.next(Duration::from_secs(1))).await;
    assert!(
        extra.is_err(),
        "unexpected extra SSE message: {:?}",
        extra.ok().flatten().map(|(_, v): (String, Value)| v)
    );
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_each_event_once() {
    let hub = TestHub::start(&[]);
    let c = http();
    for i in 0..5 {
        call(
            c.post(format!("{}/api/events", hub.url))
                .json(&json!({"channel": "project:a", "event": "tick", "data": i})),
        )
        .await;
    }
    // `project:*` resumes from 0, then `*` from 2: events 3..5 match both but arrive once.
    let mut ws = ws_connect(&hub.ws_url("/ws?channels=project:*&since=0")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    send_json(
        &mut ws,
        json!({"type": "subscribe", "id": 1, "channel": "*", "since": 2}),
    )
    .await;
    // Until `*` is acknowledged (the replayed events may come first), then one live event.
    let mut seqs = Vec::new();
    loop {
        let v = next_json(&mut ws, Duration::from_secs(5)).await;
        match v["type"].as_str() {
            Some("event") => seqs.push(v["seq"].as_u64().unwrap()),
            Some("ack") if v["id"] == 1 => break,
            _ => {}
        }
        assert!(seqs.len() <= 5, "more events than were published: {seqs:?}");
    }
    call(
        c.post(format!("{}/api/events", hub.url))
            .json(&json!({"channel": "project:a", "event": "tick", "data": 5})),
    )
    .await;
    while seqs.len() < 6 {
        seqs.push(
            next_of_type(&mut ws, "event", Duration::from_secs(5)).await["seq"]
                .as_u64()
                .unwrap(),
        );
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    send_json(&mut ws, json!({"type": "ping"})).await;
    let v = next_json(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(v["type"], "pong", "a duplicate arrived: {v}");
}
