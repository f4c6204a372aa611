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

// --- One order for a resume (SPEC §4): several channels resumed at once replay in global `seq` order, so a client
// that keeps only the highest seq it saw, cut off in the middle of the replay, misses and repeats nothing.

/// The channels a client follows, and `global` which every connection is in.
const FOLLOWED: [&str; 3] = ["alpha:1", "beta:1", "gamma:1"];
const PATTERNS: &str = "alpha:*,beta:*,gamma:*";

/// Publishes `n` events round-robin over alpha, beta, gamma and `global`; returns their seqs in order.
async fn publish_interleaved(url: &str, n: usize) -> Vec<u64> {
    let c = http();
    let mut seqs = Vec::with_capacity(n);
    for i in 0..n {
        let channel = if i % 4 == 3 {
            "global"
        } else {
            FOLLOWED[i % 4]
        };
        let (s, b) = call(
            c.post(format!("{url}/api/events"))
                .json(&json!({"channel": channel, "event": "tick", "data": {"i": i}})),
        )
        .await;
        assert_eq!(s, 202, "{b}");
        seqs.push(b["seq"].as_u64().unwrap());
    }
    seqs
}

/// Asserts that `got` is strictly increasing and holds every one of `want`, and nothing else.
fn assert_one_order(got: &[u64], want: &[u64]) {
    let out_of_order = got.windows(2).filter(|w| w[0] >= w[1]).count();
    assert_eq!(
        out_of_order, 0,
        "{out_of_order} events not above the one before: {got:?}"
    );
    let mut want = want.to_vec();
    want.sort_unstable();
    assert_eq!(got, want.as_slice(), "not every event exactly once");
}

/// Reads `n` events from `ws` (other frames skipped); returns their seqs.
async fn ws_events(ws: &mut Ws, n: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(n);
    while seqs.len() < n {
        let f = next_of_type(ws, "event", Duration::from_secs(10)).await;
        seqs.push(f["seq"].as_u64().unwrap());
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_resume_of_several_channels_is_one_order_even_cut_off_mid_replay() {
    let hub = TestHub::start(&[]);
    let mut want = publish_interleaved(&hub.url, 300).await;
    let mut ws = ws_connect(&hub.ws_url(&format!("/ws?channels={PATTERNS}&since=0"))).await;
    let mut got = ws_events(&mut ws, 150).await;
    assert_eq!(
        got,
        want[..150],
        "the replay is in seq order, global included"
    );
    // Cut off mid-replay, without a close handshake; resume with the highest seq seen, as the README's snippet does.
    drop(ws);
    let last = *got.last().unwrap();
    let mut ws = ws_connect(&hub.ws_url(&format!("/ws?channels={PATTERNS}&since={last}"))).await;
    // Writers go on meanwhile: those events come after the replay, each once.
    let url = hub.url.clone();
    let writer = tokio::spawn(async move { publish_interleaved(&url, 100).await });
    got.extend(ws_events(&mut ws, 150).await);
    let more = writer.await.unwrap();
    got.extend(ws_events(&mut ws, more.len()).await);
    want.extend(more);
    assert_one_order(&got, &want);
    send_json(&mut ws, json!({"type": "ping", "id": "end"})).await;
    let v = next_json(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(v["type"], "pong", "nothing more: {v}");
}

#[tokio::test]
async fn a_subscribe_frame_with_several_channels_resumes_them_in_one_order() {
    let hub = TestHub::start(&[]);
    let all = publish_interleaved(&hub.url, 300).await;
    // `global` past events are not asked for (the connection joins it live): the frame's channels are.
    let ours = |seqs: &[u64]| -> Vec<u64> {
        seqs.iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| i % 4 != 3)
            .map(|(_, s)| s)
            .collect()
    };
    let want = ours(&all);
    let subscribe = |since: u64| json!({"type": "subscribe", "id": 7, "channels": ["alpha:*", "beta:*", "gamma:*"], "since": since});
    let mut ws = ws_connect(&hub.ws_url("/ws")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    send_json(&mut ws, subscribe(0)).await;
    let ack = next_json(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(
        (
            ack["type"].as_str(),
            ack["id"].as_i64(),
            ack["recovered"].as_bool()
        ),
        (Some("ack"), Some(7), Some(true)),
        "one ack for the frame, ahead of the replay: {ack}"
    );
    let mut got = ws_events(&mut ws, 100).await;
    drop(ws);
    let last = *got.last().unwrap();
    let mut ws = ws_connect(&hub.ws_url("/ws")).await;
    send_json(&mut ws, subscribe(last)).await;
    got.extend(ws_events(&mut ws, want.len() - 100).await);
    assert_one_order(&got, &want);
    // Live events of every followed channel, `global` too, come after in order.
    let live = publish_interleaved(&hub.url, 8).await;
    got.extend(ws_events(&mut ws, live.len()).await);
    assert_one_order(&got, &[want, live].concat());
}

#[tokio::test]
async fn an_sse_resume_of_several_channels_with_last_event_id_is_one_order() {
    let hub = TestHub::start(&[]);
    let want = publish_interleaved(&hub.url, 300).await;
    let url = format!("{}/events?channels={PATTERNS}&since=0", hub.url);
    let mut sse = Sse::open(&url, &[]).await;
    let mut got = Vec::new();
    let mut last_id = String::new();
    while got.len() < 150 {
        let (id, v) = sse.next(Duration::from_secs(10)).await.expect("an event");
        got.push(v["seq"].as_u64().unwrap());
        last_id = id;
    }
    drop(sse);
    // What EventSource does by itself: the same URL, with the last id it got.
    let mut sse = Sse::open(&url, &[("last-event-id", &last_id)]).await;
    while got.len() < want.len() {
        let (_, v) = sse.next(Duration::from_secs(10)).await.expect("an event");
        got.push(v["seq"].as_u64().unwrap());
    }
    assert_one_order(&got, &want);
}

#[tokio::test]
async fn the_rest_refetch_of_several_channels_pages_in_one_order() {
    let hub = TestHub::start(&[]);
    let want = publish_interleaved(&hub.url, 300).await;
    let c = http();
    let mut got = Vec::new();
    let mut since = 0;
    loop {
        let (s, b) = call(c.get(format!(
            "{}/api/events?channel={PATTERNS},global&since={since}&limit=70",
            hub.url
        )))
        .await;
        assert_eq!(s, 200, "{b}");
        let page: Vec<u64> = b["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        let Some(&last) = page.last() else { break };
        got.extend(page);
        since = last;
    }
    assert_one_order(&got, &want);
    // A bad pattern among them is refused whole.
    let (s, b) = call(c.get(format!("{}/api/events?channel=alpha:*,a*b", hub.url))).await;
    assert_eq!((s, error_code(&b).as_str()), (422, "invalid_field"), "{b}");
}

/// 100 100 events (100 batches of 1 000 agents), replayed to one client from 0: the hub pages the log, so its
/// memory stays flat however long the resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_of_100_000_events_grows_the_hubs_rss_by_less_than_50_mb() {
    let hub = TestHub::start(&["--retention-events", "1000000"]);
    let c = http();
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({"name": format!("a{i}")}))
        .collect();
    for _ in 0..100 {
        let (s, b) = call(c.post(format!("{}/api/agents/batch", hub.url)).json(&batch)).await;
        assert_eq!(s, 201, "{b}");
    }
    let total = 100 * 1001;
    let before = hub.rss_kib();
    let mut ws = ws_connect(&hub.ws_url("/ws?channels=*&since=0")).await;
    let (mut n, mut last, mut peak) = (0u64, 0u64, before);
    while n < total {
        let f = next_of_type(&mut ws, "event", Duration::from_secs(30)).await;
        let seq = f["seq"].as_u64().unwrap();
        assert!(seq > last, "{seq} after {last}");
        (n, last) = (n + 1, seq);
        if n % 5000 == 0 {
            peak = peak.max(hub.rss_kib());
        }
    }
    let grew = peak.saturating_sub(before) / 1024;
    assert!(
        grew < 50,
        "RSS grew by {grew} MB during the resume ({before} KiB before, peak {peak} KiB)"
    );
}
