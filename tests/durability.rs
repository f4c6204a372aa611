//! Durability: SIGKILL the hub while writers run, restart on the same data dir, and find every acknowledged
//! mutation; SIGTERM closes sockets with 1001, loses nothing and exits 0.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// What the writers were told succeeded: agent id → highest acknowledged version.
type Acked = Arc<Mutex<HashMap<String, i64>>>;

fn spawn_writers(
    url: &str,
    acked: &Acked,
    stop: &tokio_util::sync::CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|w| {
            let (url, acked, stop) = (url.to_owned(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let c = http();
                let mut mine: Vec<String> = Vec::new();
                let mut i = 0usize;
                while !stop.is_cancelled() {
                    i += 1;
                    let res = if mine.len() < 5 || i.is_multiple_of(7) {
                        c.post(format!("{url}/api/agents"))
                            .json(&json!({"name": format!("w{w}-{i}")}))
                            .send()
                            .await
                    } else {
                        let id = &mine[i % mine.len()];
                        c.patch(format!("{url}/api/agents/{id}"))
                            .json(&json!({"description": format!("{i}")}))
                            .send()
                            .await
                    };
                    // After the kill, requests fail: those were never acknowledged.
                    let Ok(res) = res else { break };
                    if !res.status().is_success() {
                        break;
                    }
                    let Ok(a) = res.json::<Value>().await else {
                        break;
                    };
                    let id = a["id"].as_str().unwrap().to_owned();
                    let v = a["version"].as_i64().unwrap();
                    if v == 1 {
                        mine.push(id.clone());
                    }
                    let mut m = acked.lock().unwrap();
                    let e = m.entry(id).or_insert(0);
                    *e = (*e).max(v);
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_no_acknowledged_mutation() {
    let mut hub = TestHub::start(&[]);
    let dir = hub.dir.clone();
    let acked: Acked = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let writers = spawn_writers(&hub.url, &acked, &stop);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    hub.kill(); // SIGKILL mid-write
    stop.cancel();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 5 && acked.values().any(|v| *v > 1),
        "writers made too little progress to test anything: {acked:?}"
    );

    let hub2 = TestHub::start_in(&dir, &[]);
    let c = http();
    for (id, version) in &acked {
        let (s, a) = call(c.get(format!("{}/api/agents/{id}", hub2.url))).await;
        assert_eq!(s, 200, "acknowledged agent {id} is missing after the crash");
        let have = a["version"].as_i64().unwrap();
        assert!(
            have >= *version,
            "agent {id}: acknowledged version {version}, found {have}"
        );
    }
    // Every agent's version matches its update events, and every agent has its created event.
    let mut updates: HashMap<String, i64> = HashMap::new();
    let mut created: HashMap<String, bool> = HashMap::new();
    let mut since = 0;
    // Pages of 1000 of the log; far more than the writers made means the paging does not advance.
    for page_no in 0.. {
        assert!(page_no < 1000, "paging the log does not end");
        let (_, page) = call(c.get(format!(
            "{}/api/events?channel=agent:*&since={since}&limit=1000",
            hub2.url
        )))
        .await;
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        for e in events {
            let id = e["data"]["id"].as_str().unwrap().to_owned();
            match e["event"].as_str().unwrap() {
                "agent.updated" => *updates.entry(id).or_default() += 1,
                "agent.created" => {
                    created.insert(id, true);
                }
                other => panic!("unexpected {other}"),
            }
            since = e["seq"].as_u64().unwrap();
        }
    }
    let mut cursor = String::new();
    let mut agents = 0;
    for page_no in 0.. {
        assert!(page_no < 1000, "paging the agents does not end");
        let (_, page) = call(c.get(format!("{}/api/agents?limit=500{cursor}", hub2.url))).await;
        for a in page["agents"].as_array().unwrap() {
            agents += 1;
            let id = a["id"].as_str().unwrap();
            assert!(
                created.contains_key(id),
                "agent {id} has no agent.created event"
            );
            let n = updates.get(id).copied().unwrap_or(0);
            assert_eq!(
                a["version"].as_i64().unwrap(),
                1 + n,
                "agent {id}: version vs update events"
            );
        }
        match page["next_cursor"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => break,
        }
    }
    assert_eq!(
        agents,
        created.len(),
        "an agent.created event without its agent (or the reverse)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_closes_with_1001_loses_nothing_and_exits_0() {
    let mut hub = TestHub::start(&[]);
    let dir = hub.dir.clone();
    let mut ws = ws_connect(&hub.ws_url("/ws?channels=agent:*")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    let sse = Sse::open(&format!("{}/events", hub.url), &[]).await;

    let acked: Acked = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let writers = spawn_writers(&hub.url, &acked, &stop);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pid = hub.pid();
    // `hub` comes back out so its temp dir outlives the restart below.
    let exited = tokio::task::spawn_blocking(move || {
        signal(pid, "TERM");
        let status = wait_timeout(&mut hub.child, Duration::from_secs(20));
        (hub, status)
    });
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(20)).await,
        Some(1001),
        "WebSocket close code on shutdown"
    );
    let (_hub, status) = exited.await.unwrap();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    stop.cancel();
    for w in writers {
        w.await.unwrap();
    }
    drop(sse);
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    let hub2 = TestHub::start_in(&dir, &[]);
    for (id, version) in &acked {
        let (s, a) = call(http().get(format!("{}/api/agents/{id}", hub2.url))).await;
        assert_eq!(s, 200);
        assert!(a["version"].as_i64().unwrap() >= *version);
    }
}
