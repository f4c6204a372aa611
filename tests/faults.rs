//! Faults from outside the hub: a full disk, a database another process has locked, and clients that vanish
//! mid-handshake or trickle a byte a second. Each against the real binary on a real SQLite file.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestHub, call, error_code, http, next_json, next_of_type, send_json, ws_connect};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// A tmpfs of a few MiB mounted on a fresh directory, unmounted on drop: a disk that fills up.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs failed ({}): this test needs root, as CI runs it",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to `path` until the disk refuses; returns how many bytes went in.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create filler");
    let block = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k as u64,
        }
    }
    // Whatever a smaller write can still take.
    while f.write(&[0u8; 512]).is_ok_and(|k| k > 0) {
        n += 512;
    }
    let _ = f.sync_all();
    n
}

/// The `seq`s of every logged event on `channel`, oldest first, read from the hub.
async fn logged(c: &reqwest::Client, url: &str, channel: &str) -> Vec<u64> {
    let (s, b) = call(c.get(format!(
        "{url}/api/events?channel={channel}&since=0&limit=1000"
    )))
    .await;
    assert_eq!(s, 200, "{b}");
    b["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_507_keeps_serving_and_recovers() {
    let disk = SmallDisk::mount("6m");
    let dir = disk.path().join("data");
    std::fs::create_dir(&dir).expect("data dir");
    let mut hub = TestHub::start_in(&dir, &[]);
    let c = http();
    let url = hub.url.clone();

    let mut ws = ws_connect(&hub.ws_url("/ws")).await;
    send_json(
        &mut ws,
        json!({"type": "subscribe", "id": 1, "channel": "disk"}),
    )
    .await;
    assert_eq!(
        next_of_type(&mut ws, "ack", Duration::from_secs(5)).await["ok"],
        true
    );

    let publish = |i: usize| {
        // 16 KiB of data a write, so the log needs new pages quickly.
        let data = json!({"i": i, "pad": "x".repeat(16 * 1024)});
        c.post(format!("{url}/api/events"))
            .json(&json!({"channel": "disk", "event": "write", "data": data}))
    };
    let mut acked = Vec::new();
    for i in 0..5 {
        let (s, b) = call(publish(i)).await;
        assert_eq!(s, 202, "{b}");
        acked.push(b["seq"].as_u64().expect("seq"));
    }

    let filler = disk.path().join("filler");
    assert!(fill(&filler) > 0, "the filler took some space");

    // The WAL may still have room it grew earlier; within a few MiB of writes the disk refuses one.
    let mut refused = 0;
    for i in 5..300 {
        let (s, b) = call(publish(i)).await;
        match s {
            202 => acked.push(b["seq"].as_u64().expect("seq")),
            507 => {
                assert_eq!(error_code(&b), "insufficient_storage", "{b}");
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
            other => panic!("a write on a full disk answered {other}: {b}"),
        }
    }
    assert_eq!(refused, 3, "the full disk refused writes");

    // Every kind of write is refused whole: an agent, a batch (none of it), a patch.
    let (s, b) = call(
        c.post(format!("{url}/api/agents"))
            .json(&json!({"name": "late"})),
    )
    .await;
    assert_eq!(
        (s, error_code(&b)),
        (507, "insufficient_storage".into()),
        "{b}"
    );
    let batch: Vec<Value> = (0..50)
        .map(|i| json!({"name": format!("batch-{i}")}))
        .collect();
    let (s, b) = call(c.post(format!("{url}/api/agents/batch")).json(&batch)).await;
    assert_eq!(s, 507, "{b}");
    // A WebSocket publish gets an error frame, and the connection stays open.
    send_json(
        &mut ws,
        json!({"type": "publish", "id": 2, "channel": "disk", "event": "ws", "data": {"pad": "y".repeat(16 * 1024)}}),
    )
    .await;
    // What the subscriber sees, in order: the acknowledged writes' events come before the error frame.
    let mut seen = Vec::new();
    let frame = loop {
        let f = next_json(&mut ws, Duration::from_secs(10)).await;
        if f["type"] == "event" {
            seen.push(f["seq"].as_u64().expect("seq"));
            continue;
        }
        break f;
    };
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["error"]["code"], "insufficient_storage", "{frame}");

    // Reads and subscriptions go on.
    let (s, b) = call(c.get(format!("{url}/api/agents"))).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["agents"].as_array().expect("agents").is_empty(), "{b}");
    assert_eq!(logged(&c, &url, "disk").await, acked);
    let mut late = ws_connect(&hub.ws_url("/ws")).await;
    send_json(
        &mut late,
        json!({"type": "subscribe", "id": 1, "channel": "disk"}),
    )
    .await;
    assert_eq!(
        next_of_type(&mut late, "ack", Duration::from_secs(5)).await["ok"],
        true
    );
    send_json(&mut ws, json!({"type": "ping", "id": 3})).await;

    // Space returns: writes work again, at once.
    std::fs::remove_file(&filler).expect("remove filler");
    let (s, b) = call(publish(1000)).await;
    assert_eq!(s, 202, "{b}");
    acked.push(b["seq"].as_u64().expect("seq"));
    let (s, b) = call(
        c.post(format!("{url}/api/agents"))
            .json(&json!({"name": "after"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");

    // The subscriber saw exactly the acknowledged writes, in order, and the pong in its place.
    let mut pong = false;
    while seen.len() < acked.len() {
        let f = next_json(&mut ws, Duration::from_secs(10)).await;
        match f["type"].as_str() {
            Some("event") => seen.push(f["seq"].as_u64().expect("seq")),
            Some("pong") => pong = true,
            _ => panic!("unexpected frame {f}"),
        }
    }
    assert_eq!(seen, acked, "the live stream is the acknowledged writes");
    assert!(pong, "the connection answered while the disk was full");
    let f = next_of_type(&mut late, "event", Duration::from_secs(10)).await;
    assert_eq!(f["seq"].as_u64(), acked.last().copied(), "{f}");

    // Nothing was corrupted: the file passes SQLite's integrity check, and a restart reads the same log.
    assert_eq!(hub.terminate().code(), Some(0));
    let doctor = Command::new(common::BIN)
        .args(["doctor", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("doctor");
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("integrity ok") || report.contains("integrity: ok"),
        "{report}"
    );
    let hub = TestHub::start_in(&dir, &[]);
    assert_eq!(logged(&c, &hub.url, "disk").await, acked);
    let (s, b) = call(c.get(format!("{}/api/agents", hub.url))).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = b["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["after"], "only the acknowledged agent exists");
}

/// A Python process holding `BEGIN EXCLUSIVE` on `db` until its stdin closes.
fn hold_lock(db: &Path) -> std::process::Child {
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
        c.execute('BEGIN EXCLUSIVE')\n\
        print('locked', flush=True)\n\
        sys.stdin.read()\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), "locked");
    child
}

#[test]
fn a_database_locked_by_another_process_stops_the_start_with_a_clear_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = tmp.path().join("data");
    std::fs::create_dir(&dir).expect("data dir");
    // A hub ran here before: the file exists, in WAL mode.
    let mut hub = TestHub::start_in(&dir, &[]);
    assert_eq!(hub.terminate().code(), Some(0));

    let mut holder = hold_lock(&dir.join("switchboard.db"));
    let started = Instant::now();
    let out = Command::new(common::BIN)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run switchboard");
    drop(holder.stdin.take());
    let _ = holder.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "it never said it was listening"
    );
    assert!(
        stderr.contains("database_locked") && stderr.contains("is locked by another process"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&dir.join("switchboard.db").display().to_string()),
        "{stderr}"
    );
    assert!(
        !stderr.contains("ERROR"),
        "a lock is not an internal error: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it gave up after the busy timeout"
    );

    // With the lock gone, the same data dir starts.
    let hub = TestHub::start_in(&dir, &[]);
    drop(hub);
}

/// Bytes the hub holds open: its fd count.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

async fn health(c: &reqwest::Client, url: &str) -> Value {
    let (s, b) = call(c.get(format!("{url}/health"))).await;
    assert_eq!(s, 200, "{b}");
    b
}

#[tokio::test]
async fn clients_that_vanish_mid_handshake_or_trickle_bytes_cost_nothing_lasting() {
    let hub = TestHub::start(&[]);
    let c = http();
    // Warm up: the pools and threads a first request makes.
    health(&c, &hub.url).await;
    create_some(&c, &hub.url).await;
    let before = fds(hub.pid());

    // 200 clients that send half a request (or half a WebSocket upgrade) and vanish.
    for i in 0..200 {
        let mut s = tokio::net::TcpStream::connect(&hub.addr)
            .await
            .expect("connect");
        let half: &[u8] = if i % 2 == 0 {
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Ke"
        } else {
            b"POST /api/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"na"
        };
        s.write_all(half).await.expect("write");
        drop(s);
    }
    // A client that trickles a request head, a byte a second, and one that connects and says nothing.
    let trickle = tokio::spawn({
        let addr = hub.addr.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect");
            let started = Instant::now();
            for b in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
                if s.write_all(&[*b]).await.is_err() {
                    return started.elapsed();
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            panic!("the hub waited {:?} for a request head", started.elapsed());
        }
    });
    let mut silent = tokio::net::TcpStream::connect(&hub.addr)
        .await
        .expect("connect");
    let silent_at = Instant::now();

    // Meanwhile everyone else is served as usual.
    for _ in 0..20 {
        let t = Instant::now();
        create_some(&c, &hub.url).await;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "a request waited behind the slow clients"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The hub closes both within its head deadline (10 s), a little later for the trickle's last write.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
    )
    .await
    .expect("the hub closed the silent connection")
    .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(
        silent_at.elapsed() >= Duration::from_secs(9),
        "{:?}",
        silent_at.elapsed()
    );
    let trickled = tokio::time::timeout(Duration::from_secs(30), trickle)
        .await
        .expect("the trickle ended")
        .expect("the trickle task");
    assert!(trickled < Duration::from_secs(20), "{trickled:?}");

    // Nothing is left behind: no connection, and the fds come back (sockets close a moment after).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = health(&c, &hub.url).await;
        let now = fds(hub.pid());
        if h["connections"] == 0 && now <= before + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fds {before} → {now}, health {h}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create_some(c: &reqwest::Client, url: &str) {
    let (s, b) = call(
        c.post(format!("{url}/api/agents"))
            .json(&json!({"name": "served"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
}
