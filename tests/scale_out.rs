//! Scale-out on PostgreSQL (SPEC §13): hubs on loopback ports share one real PostgreSQL (a throwaway cluster per
//! test, made by scripts/pg.sh), and one ordered log.
//!
//! - Concurrent writers on hubs B and C: clients on A, B and C each see every mutation once, in `seq` order with
//!   no gap, and the same sequence of events.
//! - Hub B is SIGKILLed mid-stream: its WebSocket and SSE clients resume on hub A with their `since` and miss
//!   nothing.
//! - PostgreSQL is restarted (an immediate stop, as in a crash) under writes on two hubs: each write is either
//!   acknowledged or refused with 503 `store_unavailable`; every acknowledged one is in the database and in the log
//!   afterwards, and a client that stayed connected sees a gapless log across the outage.
//! - The channels API adds up the subscribers of every live hub, and forgets a hub's once it is gone.
//! - Refused writes (404, 412) among many concurrent ones leave no row and no event, and the others commit.
//!
//! One file past 500 lines: the scenarios share the throwaway cluster, the writers and the stream checks.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A PostgreSQL cluster of this test's own, stopped and removed on drop.
struct Cluster {
    dir: PathBuf,
    url: String,
}

fn pg_script(dir: &std::path::Path, call: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg.sh");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -e; source '{script}'; {call} '{}'; echo \"${{SWITCHBOARD_TEST_PG:-}}\"",
            dir.display()
        ))
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "scripts/pg.sh {call} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Cluster {
    fn start() -> Cluster {
        // Under /tmp: when the tests run as root the cluster runs as `nobody`, which must reach its directory.
        let dir = tempfile::Builder::new()
            .prefix("switchboard-pg-")
            .tempdir_in("/tmp")
            .expect("tempdir")
            .keep();
        let url = pg_script(&dir, "pg_up");
        assert!(url.starts_with("postgres://"), "no URL from pg_up: {url:?}");
        Cluster { dir, url }
    }

    /// The URL of database `name` (each hub creates it if it is missing).
    fn db(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    fn restart(&self) {
        pg_script(&self.dir, "pg_restart");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        pg_script(&self.dir, "pg_down");
    }
}

fn hub_on(store: &str) -> TestHub {
    TestHub::start(&["--store", store])
}

/// Subscribes `ws` to `agent:*` (optionally resuming) and checks the ack.
async fn subscribe(ws: &mut Ws, id: i64, resume: Option<(u64, &str)>) -> Value {
    subscribe_to(ws, id, "agent:*", resume).await
}

async fn subscribe_to(ws: &mut Ws, id: i64, channel: &str, resume: Option<(u64, &str)>) -> Value {
    let mut frame = json!({"type": "subscribe", "id": id, "channel": channel});
    if let Some((since, epoch)) = resume {
        frame["since"] = json!(since);
        frame["epoch"] = json!(epoch);
    }
    send_json(ws, frame).await;
    let ack = next_of_type(ws, "ack", Duration::from_secs(10)).await;
    assert_eq!(ack["ok"], true, "{ack}");
    ack
}

/// Creates 5 agents, then updates them round-robin: `n` mutations in all, each answered 2xx. Returns the
/// `(agent id, version)` of every acknowledged one.
async fn mutate(url: String, tag: String, n: usize) -> Vec<(String, i64)> {
    let c = http();
    let mut ids = Vec::new();
    let mut acked = Vec::new();
    for i in 0..n {
        let b = if i < 5 {
            let b = create_agent(&c, &url, &format!("{tag}-{i}")).await;
            ids.push(b["id"].as_str().unwrap().to_owned());
            b
        } else {
            let id = &ids[i % ids.len()];
            let (s, b) = call(
                c.patch(format!("{url}/api/agents/{id}"))
                    .json(&json!({"description": format!("{tag} step {i}")})),
            )
            .await;
            assert_eq!(s, 200, "{b}");
            b
        };
        acked.push((
            b["id"].as_str().unwrap().to_owned(),
            b["version"].as_i64().unwrap(),
        ));
    }
    acked
}

/// Reads `n` events from `ws`: their `(seq, event id, agent id, version)`.
async fn take_events(ws: &mut Ws, n: usize) -> Vec<(u64, String, String, i64)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let e = next_of_type(ws, "event", Duration::from_secs(30)).await;
        out.push((
            e["seq"].as_u64().unwrap(),
            e["id"].as_str().unwrap().to_owned(),
            e["data"]["id"].as_str().unwrap().to_owned(),
            e["data"]["version"].as_i64().unwrap(),
        ));
    }
    out
}

fn assert_gapless(seqs: &[u64], from: u64, what: &str) {
    let want: Vec<u64> = (from + 1..=from + seqs.len() as u64).collect();
    if seqs != want.as_slice() {
        let dups = seqs.len() - seqs.iter().collect::<BTreeSet<_>>().len();
        let holes = seqs.windows(2).filter(|w| w[1] > w[0] + 1).count();
        panic!(
            "{what}: {} events, {dups} duplicated, {holes} holes, first {:?}, last {:?}",
            seqs.len(),
            seqs.first(),
            seqs.last()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_on_one_hub_sees_concurrent_writes_on_the_others_in_one_order() {
    const PER_WRITER: usize = 120;
    let pg = Cluster::start();
    let store = pg.db("order");
    let hubs = [hub_on(&store), hub_on(&store), hub_on(&store)];
    let mut clients = Vec::new();
    for h in &hubs {
        let mut ws = ws_connect(&h.ws_url("/ws")).await;
        let hello = next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
        assert_eq!(hello["last_seq"], 0, "a fresh shared log: {hello}");
        subscribe(&mut ws, 1, None).await;
        clients.push(ws);
    }
    // Two concurrent writers on B and two on C; none on A.
    let writers: Vec<_> = [1, 1, 2, 2]
        .iter()
        .enumerate()
        .map(|(w, &h)| tokio::spawn(mutate(hubs[h].url.clone(), format!("w{w}"), PER_WRITER)))
        .collect();
    let total = 4 * PER_WRITER;
    let mut seen = Vec::new();
    for ws in &mut clients {
        seen.push(take_events(ws, total).await);
    }
    let mut acked = BTreeSet::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    let on_a = &seen[0];
    let seqs: Vec<u64> = on_a.iter().map(|e| e.0).collect();
    assert_gapless(&seqs, 0, "hub A");
    for (i, other) in seen.iter().enumerate().skip(1) {
        assert!(
            other == on_a,
            "hub {} delivered another sequence than hub A",
            ["A", "B", "C"][i]
        );
    }
    // Every acknowledged mutation is in the stream, once.
    let delivered: BTreeSet<(String, i64)> = on_a.iter().map(|e| (e.2.clone(), e.3)).collect();
    assert_eq!(delivered.len(), total, "one event per mutation");
    assert_eq!(
        delivered, acked,
        "the stream is exactly the acknowledged mutations"
    );
    // And the log reads the same from any hub.
    let (s, page) =
        call(http().get(format!("{}/api/events?since=0&limit=1000", hubs[2].url))).await;
    assert_eq!(s, 200, "{page}");
    let ids: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let streamed: Vec<&str> = on_a.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(ids, streamed, "the log on hub C is what hub A streamed");
    // Nothing more arrives: a duplicate would show here.
    send_json(&mut clients[0], json!({"type": "ping", "id": "end"})).await;
    let v = next_json(&mut clients[0], Duration::from_secs(5)).await;
    assert_eq!(
        v["type"], "pong",
        "unexpected frame after the last event: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_of_a_killed_hub_resume_on_another_and_miss_nothing() {
    const PER_WRITER: usize = 200;
    let pg = Cluster::start();
    let store = pg.db("failover");
    let a = hub_on(&store);
    let mut b = hub_on(&store);

    let mut ws = ws_connect(&b.ws_url("/ws")).await;
    let hello = next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    subscribe(&mut ws, 1, None).await;
    let mut sse = Sse::open(&format!("{}/events?channels=agent:*", b.url), &[]).await;
    wait_for_sse_client(&b.url).await;

    let writers: Vec<_> = (0..2)
        .map(|w| tokio::spawn(mutate(a.url.clone(), format!("w{w}"), PER_WRITER)))
        .collect();
    let total = 2 * PER_WRITER;
    let mut ws_seqs: Vec<u64> = take_events(&mut ws, total / 3)
        .await
        .iter()
        .map(|e| e.0)
        .collect();
    let mut sse_seqs = Vec::new();
    while sse_seqs.len() < total / 4 {
        let (_, data) = sse
            .next(Duration::from_secs(20))
            .await
            .expect("stream open");
        sse_seqs.push(data["seq"].as_u64().unwrap());
    }
    b.kill();
    drop((ws, sse));
    tokio::time::sleep(Duration::from_millis(300)).await; // the writers go on meanwhile

    // Both clients come back on hub A, with what they last saw.
    let mut ws = ws_connect(&a.ws_url("/ws")).await;
    let hello = next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    assert_eq!(
        hello["epoch"],
        epoch.as_str(),
        "one log, one epoch on every hub"
    );
    let ack = subscribe(&mut ws, 2, Some((*ws_seqs.last().unwrap(), &epoch))).await;
    assert_eq!(ack["recovered"], true, "{ack}");
    let last_sse = sse_seqs.last().unwrap().to_string();
    let mut sse = Sse::open(
        &format!("{}/events?channels=agent:*", a.url),
        &[("Last-Event-ID", &last_sse)],
    )
    .await;
    ws_seqs.extend(
        take_events(&mut ws, total - ws_seqs.len())
            .await
            .iter()
            .map(|e| e.0),
    );
    while sse_seqs.len() < total {
        let (_, data) = sse
            .next(Duration::from_secs(20))
            .await
            .expect("stream open");
        sse_seqs.push(data["seq"].as_u64().unwrap());
    }
    for w in writers {
        assert_eq!(w.await.unwrap().len(), PER_WRITER);
    }
    assert_gapless(&ws_seqs, 0, "WebSocket across the failover");
    assert_gapless(&sse_seqs, 0, "SSE across the failover");
    send_json(&mut ws, json!({"type": "ping", "id": "end"})).await;
    let v = next_json(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(
        v["type"], "pong",
        "unexpected frame after the last event: {v}"
    );
}

async fn wait_for_sse_client(url: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the SSE subscription never showed in /api/clients"
        );
        let (_, cl) = call(http().get(format!("{url}/api/clients"))).await;
        if cl["clients"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["transport"] == "sse"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes until `stop`: each write is acknowledged (201, its agent recorded) or refused with 503
/// `store_unavailable`; anything else fails the test.
async fn write_through_outage(
    url: String,
    tag: String,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> (Vec<String>, usize) {
    let c = http();
    let (mut acked, mut refused) = (Vec::new(), 0);
    let mut i = 0;
    while !stop.load(Ordering::Acquire) {
        i += 1;
        let (s, b) = call(
            c.post(format!("{url}/api/agents"))
                .json(&json!({"name": format!("{tag}-{i}")})),
        )
        .await;
        match s {
            201 => {
                acked.push(b["id"].as_str().unwrap().to_owned());
                acks.fetch_add(1, Ordering::AcqRel);
            }
            503 => {
                assert_eq!(error_code(&b), "store_unavailable", "{b}");
                refused += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => panic!("a write during the outage answered {s}: {b}"),
        }
    }
    (acked, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_under_load_loses_no_acknowledged_write() {
    let pg = Cluster::start();
    let store = pg.db("restart");
    let hubs = [hub_on(&store), hub_on(&store)];
    let mut ws = ws_connect(&hubs[0].ws_url("/ws")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    subscribe(&mut ws, 1, None).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(write_through_outage(
                hubs[w % 2].url.clone(),
                format!("w{w}"),
                stop.clone(),
                acks.clone(),
            ))
        })
        .collect();
    let wait_acks = |n: usize| {
        let acks = acks.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while acks.load(Ordering::Acquire) < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "writes never got to {n}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_acks(100).await;
    pg.restart();
    let after_restart = acks.load(Ordering::Acquire);
    wait_acks(after_restart + 100).await;
    stop.store(true, Ordering::Release);
    let (mut acked, mut refused) = (Vec::new(), 0);
    for w in writers {
        let (a, r) = w.await.unwrap();
        acked.extend(a);
        refused += r;
    }
    eprintln!(
        "{} writes acknowledged, {refused} refused with 503 during the restart",
        acked.len()
    );

    // Every acknowledged agent is there, on both hubs.
    for (i, id) in acked.iter().enumerate() {
        let (s, b) = call(http().get(format!("{}/api/agents/{id}", hubs[i % 2].url))).await;
        assert_eq!(s, 200, "acknowledged agent {id} is gone: {b}");
    }
    // The client that stayed on hub A sees a gapless log that holds every acknowledged create.
    let (_, health) = call(http().get(format!("{}/health", hubs[1].url))).await;
    let last = health["last_seq"].as_u64().unwrap();
    let events = take_events(&mut ws, usize::try_from(last).unwrap()).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.0).collect();
    assert_gapless(&seqs, 0, "the client that stayed through the restart");
    let logged: BTreeSet<&str> = events.iter().map(|e| e.2.as_str()).collect();
    for id in &acked {
        assert!(
            logged.contains(id.as_str()),
            "acknowledged agent {id} has no event"
        );
    }
}

/// Polls `GET /api/channels/{name}` on `url` until its subscriber count is `want`.
async fn await_subscribers(url: &str, name: &str, want: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (s, b) = call(http().get(format!("{url}/api/channels/{name}"))).await;
        assert_eq!(s, 200, "{b}");
        if b["subscribers"].as_u64() == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} never counted {want} subscribers of {name}: {b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_channels_api_adds_up_every_hubs_subscribers() {
    let pg = Cluster::start();
    let store = pg.db("channels");
    let a = hub_on(&store);
    let mut b = hub_on(&store);
    let mut clients = Vec::new();
    for (hub, n) in [(&a, 1), (&b, 2)] {
        for _ in 0..n {
            let mut ws = ws_connect(&hub.ws_url("/ws")).await;
            next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
            subscribe_to(&mut ws, 1, "project:x", None).await;
            clients.push(ws);
        }
    }
    // Each hub counts its own at once and the other's within a couple of seconds.
    await_subscribers(&a.url, "project:x", 3).await;
    await_subscribers(&b.url, "project:x", 3).await;
    let (_, list) = call(http().get(format!("{}/api/channels", a.url))).await;
    let listed: Vec<(&str, u64)> = list["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["subscribers"].as_u64().unwrap(),
            )
        })
        .collect();
    // Every WebSocket connection is on `global` too (SPEC §4).
    assert_eq!(listed, [("global", 3), ("project:x", 3)], "{list}");
    // A hub that is gone stops counting once it has not shared for a few seconds.
    b.kill();
    await_subscribers(&a.url, "project:x", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_writes_among_concurrent_ones_leave_nothing_and_the_rest_commit() {
    let pg = Cluster::start();
    let hub = hub_on(&pg.db("refusals"));
    let c = http();
    let id = create_agent(&c, &hub.url, "target").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Many writes at once, so they share transactions: a third refused (404, 412), the rest good.
    let tasks: Vec<_> = (0..90)
        .map(|i| {
            let (c, url, id) = (c.clone(), hub.url.clone(), id.clone());
            tokio::spawn(async move {
                let req = match i % 3 {
                    0 => c.patch(format!("{url}/api/agents/no-such-agent")),
                    1 => c
                        .patch(format!("{url}/api/agents/{id}"))
                        .header("If-Match", "\"999\""),
                    _ => c.patch(format!("{url}/api/agents/{id}")),
                };
                call(req.json(&json!({"description": format!("step {i}")}))).await
            })
        })
        .collect();
    let mut ok = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        let (s, b) = t.await.unwrap();
        let want = [404, 412, 200][i % 3];
        assert_eq!(s, want, "write {i}: {b}");
        ok += usize::from(s == 200);
    }
    let (_, agent) = call(c.get(format!("{}/api/agents/{id}", hub.url))).await;
    assert_eq!(
        agent["version"],
        1 + ok as u64,
        "one version per accepted write: {agent}"
    );
    let (_, page) = call(c.get(format!("{}/api/events?since=0&limit=1000", hub.url))).await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(
        events.len(),
        1 + ok,
        "one event per accepted write, none for a refused one"
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_gapless(&seqs, 0, "the log around refused writes");
}
