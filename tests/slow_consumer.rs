//! A client that never reads is closed with 4008, the hub's memory stays bounded, and a second client still
//! receives everything. Also the other ends of a connection: heartbeat and idle close, and a client's own Close.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::net::TcpSocket;

const EVENTS: usize = 2000;
const DATA_BYTES: usize = 32 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_consumer_is_cut_off_and_others_get_everything() {
    let hub = TestHub::start(&["--queue-capacity", "64"]);

    // The slow client: a tiny receive buffer, and it never reads.
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(hub.addr.parse().unwrap()).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(
        hub.ws_url("/ws?channels=load"),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();

    let mut fast = ws_connect(&hub.ws_url("/ws?channels=load")).await;
    next_of_type(&mut fast, "ack", Duration::from_secs(5)).await;
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::with_capacity(EVENTS);
        while seqs.len() < EVENTS {
            let e = next_of_type(&mut fast, "event", Duration::from_secs(30)).await;
            seqs.push(e["seq"].as_u64().unwrap());
        }
        (seqs, fast)
    });

    let rss_before = hub.rss_kib();
    let payload = "x".repeat(DATA_BYTES);
    let publishers: Vec<_> = (0..4)
        .map(|_| {
            let (url, payload) = (hub.url.clone(), payload.clone());
            tokio::spawn(async move {
                let c = http();
                for _ in 0..EVENTS / 4 {
                    let (s, b) = call(
                        c.post(format!("{url}/api/events"))
                            .json(&json!({"channel": "load", "event": "blob", "data": payload})),
                    )
                    .await;
                    assert_eq!(s, 202, "{b}");
                }
            })
        })
        .collect();

    // As soon as the hub gives up on the slow client, read it: it must end with a 4008 close frame.
    let c = http();
    let mut peak = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        peak = peak.max(hub.rss_kib());
        let m = c
            .get(format!("{}/metrics", hub.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.contains("switchboard_slow_consumers_total 1") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow client was never cut off"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        close_code(&mut slow, Duration::from_secs(30)).await,
        Some(4008)
    );

    for p in publishers {
        p.await.unwrap();
    }
    peak = peak.max(hub.rss_kib());
    let (seqs, _fast) = reader.await.unwrap();
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..first + EVENTS as u64).collect::<Vec<_>>(),
        "the fast client missed or reordered events"
    );

    // Had the slow client's queue been unbounded, it would hold every event: EVENTS × DATA_BYTES = 64 MiB.
    let growth_mib = peak.saturating_sub(rss_before) / 1024;
    eprintln!(
        "hub RSS before {} MiB, peak growth {growth_mib} MiB",
        rss_before / 1024
    );
    assert!(
        growth_mib < 48,
        "hub memory grew by {growth_mib} MiB while a client did not read"
    );
    let (_, cl) = call(c.get(format!("{}/api/clients", hub.url))).await;
    assert_eq!(
        cl["clients"].as_array().unwrap().len(),
        1,
        "the slow client is gone, the fast one remains"
    );
}

#[tokio::test]
async fn heartbeat_keeps_live_clients_and_closes_silent_ones() {
    use futures_util::StreamExt;
    let hub = TestHub::start(&["--heartbeat-s", "1", "--idle-timeout-s", "2"]);
    let mut live = ws_connect(&hub.ws_url("/ws")).await;
    let mut silent = ws_connect(&hub.ws_url("/ws")).await;
    assert_eq!(
        next_of_type(&mut live, "connected", Duration::from_secs(5)).await["heartbeat_s"],
        1
    );

    // The live client reads, so tungstenite answers each ping with a pong; it outlives the idle timeout.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(3500);
    while let Ok(m) = tokio::time::timeout_at(until, live.next()).await {
        match m {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Ping(_))) => pings += 1,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => {
                panic!("live client closed: {f:?}")
            }
            Some(Ok(_)) => {}
            other => panic!("live client ended: {other:?}"),
        }
    }
    assert!(pings >= 2, "expected pings every second, got {pings}");
    send_json(&mut live, json!({"type": "ping", "id": 1})).await;
    assert_eq!(
        next_of_type(&mut live, "pong", Duration::from_secs(5)).await["id"],
        1
    );

    // The silent client read nothing for 3.5 s, so it never ponged: it was closed with 4010.
    assert_eq!(
        close_code(&mut silent, Duration::from_secs(5)).await,
        Some(4010)
    );
}

#[tokio::test]
async fn a_clients_close_is_echoed() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let hub = TestHub::start(&[]);
    let mut ws = ws_connect(&hub.ws_url("/ws?channels=a")).await;
    next_of_type(&mut ws, "ack", Duration::from_secs(5)).await;
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .expect("send close");
    // The hub answers with its own Close (a clean close), not by dropping the connection (1006 in a browser).
    let echoed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(f)) => return f.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("timed out waiting for the echo");
    assert_eq!(echoed, Some(1000));
}
