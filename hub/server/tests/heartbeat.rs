//! WebSocket heartbeat and idle timeout (SPEC §4) in paused time: the hub runs in this process on 127.0.0.1:0
//! under a paused tokio clock, so 25 s pings and a 60 s idle timeout take milliseconds. While the test does real
//! I/O it holds the clock still (a running blocking task stops tokio's auto-advance, as documented under
//! `tokio::time::pause`); it lets time run only while nothing is in flight.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_core::{Principal, Source};
use switchboard_server::{ServerConfig, start};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Keeps the paused clock from auto-advancing until dropped.
struct HoldClock(Option<std::sync::mpsc::Sender<()>>);

fn hold_clock() -> HoldClock {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
    });
    HoldClock(Some(tx))
}

impl Drop for HoldClock {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// `fut`, or a panic after 10 s of real time. While the clock is held no tokio timer can bound a wait, so a thread
/// does: a hub that never answers fails the test instead of hanging it.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    let (expired, watchdog) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        let _ = expired.send(());
    });
    tokio::select! {
        v = fut => v,
        _ = watchdog => panic!("{what} did not come within 10 s"),
    }
}

/// Waits (in real time, with the clock held) until `done` holds.
async fn settle(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(5)))
            .await
            .unwrap();
    }
    panic!("{what} did not happen");
}

#[tokio::test(start_paused = true)]
async fn pongs_keep_a_client_and_silence_closes_it_with_4010() {
    let hold = hold_clock();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(tmp.path());
    cfg.port = 0;
    let (heartbeat, idle) = (cfg.heartbeat, cfg.idle_timeout);
    assert_eq!((heartbeat.as_secs(), idle.as_secs()), (25, 60));
    let stop = CancellationToken::new();
    let hub = start(cfg, stop.clone()).await.unwrap();
    let owner = hub.hub.caller(Principal::Owner, Source::System);
    let received = || owner.clients().first().map_or(0, |c| c.received);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", hub.addr))
        .await
        .unwrap();
    let hello = within("the greeting", ws.next()).await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"connected\""));
    let t0 = tokio::time::Instant::now();
    drop(hold);

    // Three rounds: each ping is answered with a pong, which counts as life. The last one is 75 s in, past the
    // 60 s idle timeout.
    for round in 1..=3u64 {
        tokio::time::sleep_until(t0 + heartbeat * round as u32).await;
        let _hold = hold_clock();
        let m = within("a ping", ws.next()).await.unwrap().unwrap();
        assert!(matches!(m, Message::Ping(_)), "round {round}: {m:?}");
        // tungstenite queued the pong while reading the ping; send it.
        within("the pong going out", ws.flush()).await.unwrap();
        settle("the pong reaching the hub", || received() == round).await;
    }
    assert!(
        t0.elapsed() > idle,
        "pongs kept the connection past the idle timeout"
    );

    // Now the client stops answering: pings at 100 s and 125 s go unanswered, and 60 s after the last pong
    // (at 135 s) the hub closes the connection with 4010.
    tokio::time::sleep_until(t0 + Duration::from_secs(136)).await;
    let _hold = hold_clock();
    let mut pings = 0;
    let code = within("pings, then a close frame", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
                other => panic!("expected pings, then a close frame: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!((pings, code), (2, 4010));
    stop.cancel();
}
