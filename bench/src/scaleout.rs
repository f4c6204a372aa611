//! Scale-out on PostgreSQL (SPEC §13): 1, 2 and 3 hubs share one PostgreSQL, a throwaway cluster started by
//! `scripts/pg.sh` for the run. For each hub count, on a fresh database:
//!
//! - `agent mutations`: closed-loop creates and updates (as in [`throughput`](crate::throughput)), the connections
//!   spread over the hubs. Every 2xx was committed in PostgreSQL before it was answered.
//! - `event publishes` with subscribers: publishes spread over the hubs, and `--scale-subs` WebSocket subscribers
//!   of the channel spread over them too; deliveries/s is what the subscribers received. Each hub delivers what
//!   its own tail reads from the shared log, so this is the fan-out path of a real deployment.
//!
//! The same two steps run first on one hub with the default SQLite store, as the baseline.
//!
//! Every hub is pinned to the server core and PostgreSQL runs unpinned, so on this two-core machine more hubs
//! share the same CPU: the rows show what the shared log costs, not what more machines would add. The table also
//! gives PostgreSQL's own CPU per write, the basis of the projection in docs/scale-out.md.

use std::path::Path;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::load::{Sink, Subscribers};
use crate::peer::{Kind, Server};
use crate::scenarios::{Ctx, per, seed_agents};
use crate::throughput::{MUTATIONS, PUBLISHES, step};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScaleRow {
    /// `sqlite` (the single-hub baseline, same steps) or `postgres`.
    #[serde(default)]
    pub store: String,
    pub hubs: usize,
    pub op: String,
    pub concurrency: usize,
    pub subscribers: usize,
    pub ops_per_s: f64,
    pub deliveries_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub failed: u64,
    pub lost: u64,
    /// All hubs together.
    pub hubs_cpu_pct: f64,
    pub hubs_us_per_op: f64,
    /// Every PostgreSQL process together.
    pub pg_cpu_pct: f64,
    pub pg_us_per_op: f64,
}

/// A throwaway PostgreSQL cluster, stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
    script: String,
}

fn pg(script: &str, dir: &Path, call: &str) -> Result<String> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -e; source '{script}'; {call} '{}'; echo \"${{SWITCHBOARD_TEST_PG:-}}\"",
            dir.display()
        ))
        .output()
        .context("running bash")?;
    if !out.status.success() {
        bail!(
            "scripts/pg.sh {call}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Cluster {
    fn start(root: &Path) -> Result<Cluster> {
        let script = root.join("scripts/pg.sh").display().to_string();
        // Under /tmp: as root the cluster runs as `nobody`, which must reach it.
        let dir = tempfile::Builder::new()
            .prefix("switchboard-bench-pg-")
            .tempdir_in("/tmp")?;
        let url = pg(&script, dir.path(), "pg_up")?;
        Ok(Cluster { dir, url, script })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = pg(&self.script, self.dir.path(), "pg_down");
    }
}

/// CPU seconds of every `postgres` process now running.
fn postgres_cpu_s() -> f64 {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    procs
        .flatten()
        .filter(|p| {
            p.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|p| {
            std::fs::read_to_string(p.path().join("comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|p| {
            crate::server::Usage::of(p.file_name().to_string_lossy().parse().unwrap_or(0)).cpu_s
        })
        .sum()
}

/// Both measurements for each hub count in `hubs`.
pub(crate) async fn scaleout(
    ctx: &Ctx,
    hubs: &[usize],
    concurrency: usize,
    subscribers: usize,
) -> Result<Vec<ScaleRow>> {
    let cluster = Cluster::start(&ctx.paths.root)?;
    let mut rows = Vec::new();
    // The single SQLite hub first, as the baseline of the same steps.
    let runs = std::iter::once(("sqlite", 1)).chain(hubs.iter().map(|&n| ("postgres", n)));
    for (run, (backend, n)) in runs.enumerate() {
        for op in [MUTATIONS, PUBLISHES] {
            let flags: Vec<String> = if backend == "sqlite" {
                Vec::new()
            } else {
                let db = format!("{}/bench_{run}_{}", cluster.url, op.replace(' ', "_"));
                vec!["--store".into(), db]
            };
            let mut servers = Vec::with_capacity(n);
            for _ in 0..n {
                servers.push(
                    Server::start_with(Kind::Switchboard, &ctx.paths, ctx.server_core, &flags)
                        .await?,
                );
            }
            let ids: Rc<[String]> = if op == MUTATIONS {
                seed_agents(servers[0].port, 256).await?.into()
            } else {
                Rc::new([])
            };
            let sink = Sink::new();
            let mut subs = Subscribers::new();
            let (channel, per_hub) = if op == MUTATIONS {
                ("agent:*", vec![1; 1])
            } else {
                let base = subscribers / n;
                let per_hub = (0..n)
                    .map(|i| base + usize::from(i < subscribers % n))
                    .collect();
                ("bench", per_hub)
            };
            for (i, &count) in per_hub.iter().enumerate() {
                subs.open(Kind::Switchboard, servers[i].port, channel, count, &sink)
                    .await?;
            }
            let fanout = per_hub.iter().sum::<usize>() as u64;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let refs: Vec<&Server> = servers.iter().collect();
            let pg0 = postgres_cpu_s();
            let t0 = std::time::Instant::now();
            let row = step(ctx, &refs, &sink, op, concurrency, ids, fanout).await;
            // The step's own window is its `step_s` after a warm-up; PostgreSQL's CPU is read over the whole
            // step and scaled to the measured writes' share of it.
            let pg_s = postgres_cpu_s() - pg0;
            let wall = t0.elapsed().as_secs_f64();
            let written = row.ops_per_s * ctx.step_s;
            let pg_cpu_pct = pg_s / wall * 100.0;
            let out = ScaleRow {
                store: backend.into(),
                hubs: n,
                op: op.into(),
                concurrency,
                subscribers: if op == MUTATIONS { 0 } else { subscribers },
                ops_per_s: row.ops_per_s,
                deliveries_per_s: if op == MUTATIONS {
                    f64::NAN
                } else {
                    row.ops_per_s * fanout as f64
                },
                p50_ms: row.p50_ms,
                p99_ms: row.p99_ms,
                failed: row.failed,
                lost: row.lost,
                hubs_cpu_pct: row.server_cpu_pct,
                hubs_us_per_op: row.server_us_per_op,
                pg_cpu_pct,
                pg_us_per_op: per(pg_s * 1e6 * (ctx.step_s / wall), written.round() as u64),
            };
            eprintln!(
                "scale-out {:8} {} hub(s) {:16} c={concurrency} {:>7.0}/s  deliveries {:>8.0}/s  p99 {:>6.2} ms  failed {}  lost {}  hubs {:>3.0}% {:>5.0} µs/op  postgres {:>3.0}% {:>5.0} µs/op",
                out.store,
                out.hubs,
                out.op,
                out.ops_per_s,
                out.deliveries_per_s,
                out.p99_ms,
                out.failed,
                out.lost,
                out.hubs_cpu_pct,
                out.hubs_us_per_op,
                out.pg_cpu_pct,
                out.pg_us_per_op
            );
            rows.push(out);
            subs.close();
            for s in servers {
                s.stop().await;
            }
        }
    }
    drop(cluster);
    Ok(rows)
}
