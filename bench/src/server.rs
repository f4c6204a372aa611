//! Running the servers under test: each [`Kind`] started on a free loopback port, pinned to its core, waited for
//! until healthy, and killed on drop ([`Server`]); where things are ([`Paths`]); and a process's CPU time and
//! resident memory from `/proc` ([`Usage`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use crate::peer::{Kind, PUSHER_APP_ID, PUSHER_KEY, PUSHER_SECRET};
use crate::wire;

/// Where things are: the repository root, the Switchboard binary to run, and Sockudo's (installed outside the
/// clone by `bench/peers/install.sh`).
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub root: PathBuf,
    pub switchboard: PathBuf,
    pub sockudo: PathBuf,
}

/// A running server, pinned to its core, killed on drop.
pub(crate) struct Server {
    pub kind: Kind,
    pub port: u16,
    pub pid: u32,
    child: Child,
    /// Switchboard's data dir, or Sockudo's (empty) working dir.
    _data: Option<tempfile::TempDir>,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Sockudo's configuration, all through its environment: one app, no per-app or per-IP limits that a benchmark
/// would hit, nothing extra running beside the WebSocket and HTTP API.
fn sockudo_env(port: u16) -> Vec<(&'static str, String)> {
    let unlimited = 1_000_000_000.to_string();
    let mut env = vec![
        ("HOST", "127.0.0.1".to_string()),
        ("PORT", port.to_string()),
        ("SOCKUDO_DEFAULT_APP_ID", PUSHER_APP_ID.into()),
        ("SOCKUDO_DEFAULT_APP_KEY", PUSHER_KEY.into()),
        ("SOCKUDO_DEFAULT_APP_SECRET", PUSHER_SECRET.into()),
        // 0 is no limit (the defaults are 100 connections per app, and none server-wide).
        ("SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS", "0".into()),
        ("SOCKUDO_MAX_CONNECTIONS", "0".into()),
        // Off: the per-IP limiter (20 WebSocket connections and 100 API requests per 60 s by default).
        ("RATE_LIMITER_ENABLED", "false".into()),
        ("METRICS_ENABLED", "false".into()),
        ("SOCKUDO_OTEL_ENABLED", "false".into()),
        ("CLUSTER_HEALTH_ENABLED", "false".into()),
        ("HTTP_API_USAGE_ENABLED", "false".into()),
        // No webhook queue (the default driver is Redis, which is not there and only logs a warning).
        ("QUEUE_DRIVER", "none".into()),
        ("DEBUG_MODE", "false".into()),
        // Its slow-consumer cut-off stays at its default, 1000 queued messages per connection (Switchboard's is
        // 4096): the queue is allocated at that capacity for every connection, so raising it would multiply its
        // memory per idle connection (4096 costs about 350 KB more each).
    ];
    for per_second in [
        "SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND",
        "SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND",
        "SOCKUDO_DEFAULT_APP_MAX_READ_REQUESTS_PER_SECOND",
    ] {
        env.push((per_second, unlimited.clone()));
    }
    env
}

impl Server {
    /// Starts `kind` on a free loopback port, pinned with `taskset -c <core>`, and waits for its health check.
    pub(crate) async fn start(kind: Kind, paths: &Paths, core: usize) -> Result<Server> {
        Self::start_with(kind, paths, core, &[]).await
    }

    /// [`Server::start`] with more `serve` flags for Switchboard (such as `--store`).
    pub(crate) async fn start_with(
        kind: Kind,
        paths: &Paths,
        core: usize,
        extra: &[String],
    ) -> Result<Server> {
        let port = free_port()?;
        let mut data = None;
        let mut env: Vec<(&'static str, String)> = Vec::new();
        let (program, args): (PathBuf, Vec<String>) = match kind {
            Kind::Switchboard | Kind::SwitchboardSocketio | Kind::SwitchboardPusher => {
                let dir = tempfile::tempdir()?;
                let mut args = vec![
                    "serve".into(),
                    "--port".into(),
                    port.to_string(),
                    "--data-dir".into(),
                    dir.path().display().to_string(),
                ];
                if kind == Kind::SwitchboardPusher {
                    for (flag, value) in [
                        ("--pusher-app-id", PUSHER_APP_ID),
                        ("--pusher-key", PUSHER_KEY),
                        ("--pusher-secret", PUSHER_SECRET),
                    ] {
                        args.extend([flag.to_string(), value.to_string()]);
                    }
                }
                args.extend(extra.iter().cloned());
                data = Some(dir);
                (paths.switchboard.clone(), args)
            }
            Kind::NodeWs | Kind::NodeSocketio => (
                "node".into(),
                vec![
                    peer_file(&paths.root, &format!("{}/server.js", kind.name()))?,
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
            Kind::Sockudo => {
                kind.check_installed(paths)?;
                // An empty working dir: Sockudo also reads config/config.toml or .json from there.
                data = Some(tempfile::tempdir()?);
                env = sockudo_env(port);
                (paths.sockudo.clone(), Vec::new())
            }
        };
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(core.to_string())
            .arg(&program)
            .args(&args)
            .env("RUST_LOG", "warn")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if kind == Kind::Sockudo
            && let Some(dir) = &data
        {
            cmd.current_dir(dir.path());
        }
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
        wire::wait_healthy(port, &kind.health_path(), Duration::from_secs(30))
            .await
            .with_context(|| format!("{} did not start", kind.name()))?;
        Ok(server)
    }

    /// The Switchboard server's data dir (its token lives there).
    pub(crate) fn data_dir(&self) -> Option<&Path> {
        if !self.kind.is_switchboard() {
            return None;
        }
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

pub(crate) fn peer_file(root: &Path, rel: &str) -> Result<String> {
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
