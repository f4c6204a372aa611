//! Shared helpers for the end-to-end tests: start the real `switchboard` binary on `127.0.0.1:0` with a real
//! SQLite file in a temp dir, and talk to it with real HTTP, WebSocket and SSE clients.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// A running hub process. Killed on drop.
pub(crate) struct TestHub {
    pub child: Child,
    pub url: String,
    pub addr: String,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl TestHub {
    /// Starts a hub in a fresh temp dir with extra `serve` flags.
    pub(crate) fn start(args: &[&str]) -> TestHub {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut hub = Self::start_in(&dir, args);
        hub._tmp = Some(tmp);
        hub
    }

    /// Starts a hub on an existing data dir (for restarts).
    pub(crate) fn start_in(dir: &Path, args: &[&str]) -> TestHub {
        let mut all = vec!["--port", "0"];
        all.extend_from_slice(args);
        Self::launch(dir, &all, &[])
    }

    /// Runs `switchboard serve --data-dir DIR ARGS…` with extra env, in DIR, and waits for its listening line.
    /// `SWITCHBOARD_TEST_BIN` names another binary to run instead (an older build, to show a regression test
    /// failing there).
    pub(crate) fn launch(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> TestHub {
        let bin = std::env::var_os("SWITCHBOARD_TEST_BIN").unwrap_or_else(|| BIN.into());
        // A test that names its own store keeps it in the PostgreSQL pass too.
        let store = if args.contains(&"--store") {
            Vec::new()
        } else {
            store_args(dir)
        };
        let mut child = Command::new(bin)
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(store)
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("SWITCHBOARD_URL")
            .env_remove("SWITCHBOARD_PORT")
            .envs(envs.iter().copied())
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn switchboard");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        let url = line
            .trim()
            .strip_prefix("switchboard listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        let addr = url.trim_start_matches("http://").to_owned();
        TestHub {
            child,
            url,
            addr,
            dir: dir.to_path_buf(),
            _tmp: None,
        }
    }

    pub(crate) fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub(crate) fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("token"))
            .expect("token file")
            .trim()
            .to_owned()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for exit.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        wait_timeout(&mut self.child, Duration::from_secs(20))
    }

    /// SIGKILL: no chance to clean up.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident memory of the hub process in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The suite's PostgreSQL pass (`SWITCHBOARD_TEST_STORE=postgres://…`, set by scripts/test.sh): `--store` naming
/// a database of this data dir's own, so a restart on the same dir finds its data and no two tests share a log.
/// Nothing otherwise: the default SQLite file.
pub(crate) fn store_args(dir: &Path) -> Vec<String> {
    use std::hash::{Hash, Hasher};
    let Ok(base) = std::env::var("SWITCHBOARD_TEST_STORE") else {
        return Vec::new();
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    vec![
        "--store".into(),
        format!("{}/sb_{:016x}", base.trim_end_matches('/'), h.finish()),
    ]
}

pub(crate) fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

pub(crate) fn wait_timeout(child: &mut Child, t: Duration) -> ExitStatus {
    let deadline = std::time::Instant::now() + t;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process did not exit within {t:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Sends a request and returns (status, JSON body or Null).
pub(crate) async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Asserts the SPEC §3 error shape and returns its code.
pub(crate) fn error_code(body: &Value) -> String {
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error without message: {body}"
    );
    code.to_owned()
}

pub(crate) async fn create_agent(c: &reqwest::Client, url: &str, name: &str) -> Value {
    let (s, b) = call(
        c.post(format!("{url}/api/agents"))
            .json(&json!({"name": name})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    b
}

pub(crate) async fn ws_connect(url: &str) -> Ws {
    ws_connect_with(url, &[]).await
}

pub(crate) async fn ws_connect_with(url: &str, headers: &[(&str, &str)]) -> Ws {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("ws connect");
    ws
}

/// Next JSON text frame, within `t` in all (pings and pongs skipped). Panics on close or timeout.
pub(crate) async fn next_json(ws: &mut Ws, t: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + t;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("timed out waiting for a frame");
        match m {
            Some(Ok(Message::Text(s))) => {
                return serde_json::from_str(s.as_str()).expect("json frame");
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Next frame of the given `type`, skipping others, within `t` in all.
pub(crate) async fn next_of_type(ws: &mut Ws, ty: &str, t: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + t;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = next_json(ws, left).await;
        if v["type"] == ty {
            return v;
        }
    }
}

pub(crate) async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("ws send");
}

/// Reads the close frame's code (skipping data frames), or None if the connection ended without one.
pub(crate) async fn close_code(ws: &mut Ws, t: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + t;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("timed out waiting for close");
        match m {
            Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// An SSE subscription read with a real SSE parser (`eventsource-stream`).
pub(crate) struct Sse {
    stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<eventsource_stream::Event, String>> + Send>,
    >,
}

impl Sse {
    pub(crate) async fn open(url: &str, headers: &[(&str, &str)]) -> Sse {
        use eventsource_stream::Eventsource;
        // No overall timeout: the stream is long-lived; reads are bounded in `next`.
        let mut req = reqwest::Client::new().get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("sse request");
        assert_eq!(res.status(), 200, "SSE status");
        let stream = res
            .bytes_stream()
            .eventsource()
            .map(|r| r.map_err(|e| e.to_string()));
        Sse {
            stream: Box::pin(stream),
        }
    }

    /// The next message as (id, JSON data), within `t`.
    pub(crate) async fn next(&mut self, t: Duration) -> Option<(String, Value)> {
        let ev = tokio::time::timeout(t, self.stream.next())
            .await
            .expect("timed out waiting for an SSE message")?;
        let ev = ev.expect("sse stream error");
        Some((
            ev.id,
            serde_json::from_str(&ev.data).expect("sse data is json"),
        ))
    }
}

/// A JWT signed with the hub token.
pub(crate) fn jwt(token: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(token.as_bytes()),
    )
    .unwrap()
}
