//! Saturation throughput of Switchboard's durable write paths, closed loop: `concurrency` keep-alive HTTP
//! connections each send their next request as soon as the last is answered, like `wrk -c<concurrency>`. Every
//! 2xx counted was committed to SQLite (fsynced in a group commit) before it was answered.
//!
//! - `agent mutations`: creates and updates, half each (`POST /api/agents`, `PATCH /api/agents/{id}`).
//! - `event publishes`: `POST /api/events` on one channel.
//! - for reference, when `node-ws` is among the peers: its `POST /publish`, which stores nothing: what one HTTP
//!   request and a broadcast cost on this machine with no durability at all.
//!
//! One WebSocket subscriber of the channel the writes go to checks that every committed write's event arrives
//! (`lost`). A one-second warm-up precedes each measured step.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::load::{Sink, Subscribers, await_deliveries};
use crate::peer::{Kind, Server, Usage};
use crate::scenarios::{Ctx, mutation_request, per, seed_agents};
use crate::wire::HttpConn;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ThroughRow {
    pub peer: String,
    /// `agent mutations`, `event publishes` or (Node `ws`) `publishes, in memory`.
    pub op: String,
    pub concurrency: usize,
    pub ops_per_s: f64,
    /// Request sent → answer received.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub failed: u64,
    /// Committed writes whose event the subscriber did not receive.
    pub lost: u64,
    pub server_cpu_pct: f64,
    pub server_us_per_op: f64,
    pub tool_cpu_pct: f64,
}

const WARM_UP: Duration = Duration::from_secs(1);

pub(crate) const MUTATIONS: &str = "agent mutations";
pub(crate) const PUBLISHES: &str = "event publishes";
const IN_MEMORY: &str = "publishes, in memory";

/// Both write paths at each concurrency, and Node `ws`'s in-memory publish when it is among `kinds`.
pub(crate) async fn throughput(
    ctx: &Ctx,
    kinds: &[Kind],
    concurrency: &[usize],
) -> Result<Vec<ThroughRow>> {
    let mut runs = vec![
        (Kind::Switchboard, MUTATIONS),
        (Kind::Switchboard, PUBLISHES),
    ];
    if kinds.contains(&Kind::NodeWs) {
        runs.push((Kind::NodeWs, IN_MEMORY));
    }
    let mut rows = Vec::new();
    for (kind, op) in runs {
        for &c in concurrency {
            // A fresh server per step: the log and the agents table start empty each time.
            let server = Server::start(kind, &ctx.paths, ctx.server_core).await?;
            let ids: Rc<[String]> = if op == MUTATIONS {
                seed_agents(server.port, 256).await?.into()
            } else {
                Rc::new([])
            };
            let sink = Sink::new();
            let mut subs = Subscribers::new();
            let channel = if op == MUTATIONS { "agent:*" } else { "bench" };
            subs.open(kind, server.port, channel, 1, &sink).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let row = step(ctx, &[&server], &sink, op, c, ids, 1).await;
            eprintln!(
                "write {:12} {:20} c={:<4} {:>7.0}/s  p50 {:>6.2}  p99 {:>6.2} ms  failed {}  lost {}  srv {:>3.0}% {:>6.1} µs/op  tool {:>3.0}%",
                row.peer,
                row.op,
                row.concurrency,
                row.ops_per_s,
                row.p50_ms,
                row.p99_ms,
                row.failed,
                row.lost,
                row.server_cpu_pct,
                row.server_us_per_op,
                row.tool_cpu_pct
            );
            rows.push(row);
            subs.close();
            server.stop().await;
        }
    }
    Ok(rows)
}

/// What the connections count, shared on the tool's one thread.
struct Tally {
    measuring: Cell<bool>,
    stop: Cell<bool>,
    ok: Cell<u64>,
    ok_total: Cell<u64>,
    failed: Cell<u64>,
    hist: RefCell<Histogram<u64>>,
}

fn request(
    kind: Kind,
    op: &str,
    i: u64,
    stamp: u64,
    ids: &[String],
) -> (&'static str, String, Vec<u8>) {
    if op != MUTATIONS {
        return kind.publish(stamp);
    }
    mutation_request(i, stamp, ids)
}

/// One measured step against `servers` (several hubs sharing one store: connection `n` talks to hub `n mod
/// len`). Each committed write is expected `fanout` times at the sink. CPU is the sum over the servers.
pub(crate) async fn step(
    ctx: &Ctx,
    servers: &[&Server],
    sink: &Rc<Sink>,
    op: &'static str,
    concurrency: usize,
    ids: Rc<[String]>,
    fanout: u64,
) -> ThroughRow {
    let usage = || {
        servers.iter().fold(
            Usage {
                cpu_s: 0.0,
                rss_kb: 0,
            },
            |a, s| {
                let u = s.usage();
                Usage {
                    cpu_s: a.cpu_s + u.cpu_s,
                    rss_kb: a.rss_kb + u.rss_kb,
                }
            },
        )
    };
    let server = servers[0];
    let tally = Rc::new(Tally {
        measuring: Cell::new(false),
        stop: Cell::new(false),
        ok: Cell::new(0),
        ok_total: Cell::new(0),
        failed: Cell::new(0),
        hist: RefCell::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")),
    });
    let r0 = sink.received.get();
    let mut tasks = Vec::with_capacity(concurrency);
    for n in 0..concurrency {
        let (tally, sink, ids, port, kind) = (
            tally.clone(),
            sink.clone(),
            ids.clone(),
            servers[n % servers.len()].port,
            server.kind,
        );
        tasks.push(tokio::task::spawn_local(async move {
            let Ok(mut conn) = HttpConn::connect(port).await else {
                tally.failed.set(tally.failed.get() + 1);
                return;
            };
            // Each connection takes every `concurrency`-th index, so updates spread over the seeded agents.
            let mut i = n as u64;
            while !tally.stop.get() {
                let (method, path, body) = request(kind, op, i, sink.stamp_now(), &ids);
                i += concurrency as u64;
                let t = Instant::now();
                match conn.request(method, &path, &body).await {
                    Ok(a) if (200..300).contains(&a.status) => {
                        tally.ok_total.set(tally.ok_total.get() + 1);
                        if tally.measuring.get() {
                            tally.ok.set(tally.ok.get() + 1);
                            let us = t.elapsed().as_micros() as u64;
                            let _ = tally.hist.borrow_mut().record(us.max(1));
                        }
                    }
                    Ok(a) => {
                        if tally.failed.get() == 0 {
                            eprintln!(
                                "{op}: {} {}",
                                a.status,
                                String::from_utf8_lossy(&a.body[..a.body.len().min(300)])
                            );
                        }
                        tally.failed.set(tally.failed.get() + 1);
                    }
                    Err(e) => {
                        if tally.failed.get() == 0 {
                            eprintln!("{op}: {e:#}");
                        }
                        tally.failed.set(tally.failed.get() + 1);
                        return;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(WARM_UP).await;
    let (s0, t0) = (usage(), Usage::own());
    let start = Instant::now();
    tally.measuring.set(true);
    tokio::time::sleep(Duration::from_secs_f64(ctx.step_s)).await;
    tally.measuring.set(false);
    let secs = start.elapsed().as_secs_f64();
    let (s1, t1) = (usage(), Usage::own());
    tally.stop.set(true);
    for t in tasks {
        let _ = t.await;
    }
    let expected = tally.ok_total.get() * fanout;
    await_deliveries(sink, r0 + expected).await;
    let h = tally.hist.borrow();
    let q = |q: f64| {
        if h.is_empty() {
            f64::NAN
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let ok = tally.ok.get();
    let server_cpu = s1.cpu_s - s0.cpu_s;
    ThroughRow {
        peer: server.kind.name().into(),
        op: op.into(),
        concurrency,
        ops_per_s: ok as f64 / secs,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        failed: tally.failed.get(),
        lost: expected.saturating_sub(sink.received.get() - r0),
        server_cpu_pct: server_cpu / secs * 100.0,
        server_us_per_op: per(server_cpu * 1e6, ok),
        tool_cpu_pct: (t1.cpu_s - t0.cpu_s) / secs * 100.0,
    }
}
