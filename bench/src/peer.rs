//! The servers under test and the seam each one plugs into: how it starts, where its WebSocket is, how a
//! message is published, and when a new connection is ready. A new protocol (Socket.IO, Pusher) is one more
//! [`Kind`] with its own `ws_path`, `publish` and `ready` answers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use crate::wire;

/// One server the benchmark can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Switchboard,
    NodeWs,
    FastApi,
}

impl Kind {
    pub(crate) const ALL: [Kind; 3] = [Kind::Switchboard, Kind::NodeWs, Kind::FastApi];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Switchboard => "switchboard",
            Kind::NodeWs => "node-ws",
            Kind::FastApi => "fastapi",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .with_context(|| format!("unknown peer {s:?} (known: switchboard, node-ws, fastapi)"))
    }

    /// The WebSocket path a subscriber opens to receive `channel`.
    pub(crate) fn ws_path(self, channel: &str) -> String {
        match self {
            Kind::Switchboard => format!("/ws?channels={channel}"),
            Kind::NodeWs | Kind::FastApi => "/ws".into(),
        }
    }

    /// The frame that says a new connection is subscribed, if the protocol has one; else the upgrade is enough.
    pub(crate) fn ready_marker(self) -> Option<&'static [u8]> {
        match self {
            Kind::Switchboard => Some(b"\"type\":\"ack\""),
            Kind::NodeWs | Kind::FastApi => None,
        }
    }

    /// `(method, path, body)` that publishes a message carrying `stamp` to every subscriber.
    pub(crate) fn publish(self, stamp: u64) -> (&'static str, String, Vec<u8>) {
        match self {
            Kind::Switchboard => (
                "POST",
                "/api/events".into(),
                format!(r#"{{"channel":"bench","event":"tick","data":{{"m":"BT{stamp}"}}}}"#)
                    .into_bytes(),
            ),
            Kind::NodeWs | Kind::FastApi => (
                "POST",
                "/publish".into(),
                format!(r#"{{"m":"BT{stamp}"}}"#).into_bytes(),
            ),
        }
    }
}

/// Where things are: the repository root and the Switchboard binary to run.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub root: PathBuf,
    pub switchboard: PathBuf,
}

/// A running server, pinned to its core, killed on drop.
pub(crate) struct Server {
    pub kind: Kind,
    pub port: u16,
    pub pid: u32,
    child: Child,
    _data: Option<tempfile::TempDir>,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    /// Starts `kind` on a free loopback port, pinned with `taskset -c <core>`, and waits for `/health`.
    pub(crate) async fn start(kind: Kind, paths: &Paths, core: usize) -> Result<Server> {
        let port = free_port()?;
        let mut data = None;
        let (program, args): (PathBuf, Vec<String>) = match kind {
            Kind::Switchboard => {
                let dir = tempfile::tempdir()?;
                let args = vec![
                    "serve".into(),
                    "--port".into(),
                    port.to_string(),
                    "--data-dir".into(),
                    dir.path().display().to_string(),
                ];
                data = Some(dir);
                (paths.switchboard.clone(), args)
            }
            Kind::NodeWs => (
                "node".into(),
                vec![
                    peer_file(&paths.root, "node-ws/server.js")?,
                    port.to_string(),
                ],
            ),
            Kind::FastApi => (
                paths.root.join("bench/peers/fastapi/.venv/bin/python"),
                vec![
                    peer_file(&paths.root, "fastapi/server.py")?,
                    port.to_string(),
                ],
            ),
        };
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(core.to_string())
            .arg(&program)
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        // taskset execs the server, so the child's pid is the server's.
        let pid = child.id().context("server pid")?;
        let server = Server {
            kind,
            port,
            pid,
            child,
            _data: data,
        };
        wire::wait_healthy(port, Duration::from_secs(30))
            .await
            .with_context(|| format!("{} did not start", kind.name()))?;
        Ok(server)
    }

    /// The Switchboard server's data dir (its token lives there).
    pub(crate) fn data_dir(&self) -> Option<&Path> {
        self._data.as_ref().map(tempfile::TempDir::path)
    }

    pub(crate) fn usage(&self) -> Usage {
        Usage::of(self.pid)
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn peer_file(root: &Path, rel: &str) -> Result<String> {
    let p = root.join("bench/peers").join(rel);
    if !p.exists() {
        bail!("{} is missing: run bench/peers/install.sh", p.display());
    }
    Ok(p.display().to_string())
}

/// CPU time and resident memory of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// User + system CPU seconds.
    pub cpu_s: f64,
    pub rss_kb: u64,
}

impl Usage {
    pub(crate) fn of(pid: u32) -> Usage {
        Self::read(&format!("/proc/{pid}"))
    }

    pub(crate) fn own() -> Usage {
        Self::read("/proc/self")
    }

    fn read(dir: &str) -> Usage {
        let ticks = 100.0; // USER_HZ on Linux
        let cpu_s = std::fs::read_to_string(format!("{dir}/stat"))
            .ok()
            .and_then(|s| {
                // Fields after the `(comm)`; utime and stime are the 12th and 13th of them.
                let rest = &s[s.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split(' ').collect();
                let u: f64 = f.get(11)?.parse().ok()?;
                let k: f64 = f.get(12)?.parse().ok()?;
                Some((u + k) / ticks)
            })
            .unwrap_or(0.0);
        let rss_kb = std::fs::read_to_string(format!("{dir}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0);
        Usage { cpu_s, rss_kb }
    }
}
