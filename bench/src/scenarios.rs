//! The four scenarios. Each starts its own server (fresh data dir, pinned core), drives it from this process,
//! and returns rows for the report. Idle and fan-out take every kind, whatever its protocol (the rows name the
//! kind); the mutation path and MCP are Switchboard's own protocol only. Every loop is bounded in count and time and talks only to loopback.
//! The four stay in one file (about 580 lines) because they share their setup and measuring helpers (`Measured`,
//! `measure`, `settle`, `capped`); the closed-loop write scenario, which shares none of them, is `throughput`.

use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::load::{Sent, Sink, Subscribers, await_deliveries, drain, open_loop};
use crate::peer::{Kind, Paths, Server, Usage};
use crate::wire::HttpConn;

/// Where the server and the tool run.
pub(crate) struct Ctx {
    pub paths: Paths,
    pub server_core: usize,
    /// Seconds each measured step publishes for.
    pub step_s: f64,
    /// Highest fan-out target (deliveries/s) and mutation rate (mutations/s) to try; the first step always runs.
    pub max_rate: f64,
    /// Subscribers in the mutation scenario's latency part (and idle ones beside its durable part).
    pub mut_subs: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AtRest {
    pub peer: String,
    pub rss_mb: f64,
    /// Server CPU used in 5 s with no connections.
    pub cpu_ms_5s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdleRow {
    pub peer: String,
    pub connections: usize,
    pub rss_base_mb: f64,
    pub rss_mb: f64,
    pub kb_per_conn: f64,
    pub connects_per_s: f64,
    /// Server CPU per connection opened (TCP accept, upgrade, subscribe), over the opening.
    #[serde(default)]
    pub server_us_per_connect: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FanRow {
    pub peer: String,
    pub subscribers: usize,
    pub target_per_s: f64,
    pub delivered_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub lost: u64,
    pub publish_failed: u64,
    pub server_cpu_pct: f64,
    pub server_us_per_delivery: f64,
    pub tool_cpu_pct: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MutRow {
    /// `latency`: every mutation goes to 1k subscribers; `durable`: to one subscriber, 1k others idle.
    pub mode: String,
    pub subscribers: usize,
    pub target_per_s: f64,
    pub committed_per_s: f64,
    pub delivered_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Answered with an error, or the connection failed.
    pub failed: u64,
    /// Not sent: all pooled connections (`MUT_POOL`) were still waiting for answers (the hub is behind).
    pub skipped: u64,
    pub lost: u64,
    pub server_cpu_pct: f64,
    pub server_us_per_mutation: f64,
    /// Latency mode: p99 of request sent → first subscriber's receive; p50 and p99 of one message's pass over
    /// every subscriber (first receive → last). None in durable mode and in older runs.
    #[serde(default)]
    pub first_p99_ms: Option<f64>,
    #[serde(default)]
    pub pass_p50_ms: Option<f64>,
    #[serde(default)]
    pub pass_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct McpRow {
    pub tool: String,
    pub calls: u64,
    pub calls_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Idle connections: RSS growth per connection and the connect rate; also the server at rest.
pub(crate) async fn idle(
    ctx: &Ctx,
    kinds: &[Kind],
    ns: &[usize],
) -> Result<(Vec<AtRest>, Vec<IdleRow>)> {
    let mut rest = Vec::new();
    let mut rows = Vec::new();
    for &kind in kinds {
        let server = Server::start(kind, &ctx.paths, ctx.server_core).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let u0 = server.usage();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let u1 = server.usage();
        rest.push(AtRest {
            peer: kind.name().into(),
            rss_mb: mb(u1.rss_kb),
            cpu_ms_5s: (u1.cpu_s - u0.cpu_s) * 1000.0,
        });
        let base = u1.rss_kb;
        let sink = Sink::new();
        let mut subs = Subscribers::new();
        for &n in ns {
            let more = n.saturating_sub(subs.len());
            let cpu0 = server.usage().cpu_s;
            let secs = subs
                .open(kind, server.port, "bench", more, &sink)
                .await
                .with_context(|| format!("{}: opening {n} connections", kind.name()))?;
            let cpu1 = server.usage().cpu_s;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let u = server.usage();
            let row = IdleRow {
                peer: kind.name().into(),
                connections: n,
                rss_base_mb: mb(base),
                rss_mb: mb(u.rss_kb),
                kb_per_conn: u.rss_kb.saturating_sub(base) as f64 / n as f64,
                connects_per_s: more as f64 / secs,
                server_us_per_connect: (cpu1 - cpu0) * 1e6 / more.max(1) as f64,
            };
            eprintln!(
                "idle  {:20} {:>6} conns  {:>7.1} MB  {:>6.2} KB/conn  {:>7.0} connects/s  {:>6.1} µs/connect",
                row.peer,
                n,
                row.rss_mb,
                row.kb_per_conn,
                row.connects_per_s,
                row.server_us_per_connect
            );
            rows.push(row);
        }
        subs.close();
        server.stop().await;
    }
    Ok((rest, rows))
}

/// Publish rates (as deliveries per second) each fan-out series climbs through.
const FAN_TARGETS: [f64; 10] = [
    10_000.0,
    25_000.0,
    50_000.0,
    100_000.0,
    150_000.0,
    200_000.0,
    300_000.0,
    500_000.0,
    750_000.0,
    1_000_000.0,
];

/// The rates up to `max` (always at least the first).
fn capped(rates: &[f64], max: f64) -> Vec<f64> {
    let mut out: Vec<f64> = rates.iter().copied().filter(|r| *r <= max).collect();
    if out.is_empty() {
        out.extend(rates.first());
    }
    out
}

/// Fan-out: `n` subscribers, one publisher at rising rates, until the server (or the tool) saturates.
pub(crate) async fn fanout(ctx: &Ctx, kinds: &[Kind], ns: &[usize]) -> Result<Vec<FanRow>> {
    let mut rows = Vec::new();
    for &n in ns {
        for &kind in kinds {
            let server = Server::start(kind, &ctx.paths, ctx.server_core).await?;
            let sink = Sink::new();
            let mut subs = Subscribers::new();
            subs.open(kind, server.port, "bench", n, &sink)
                .await
                .with_context(|| format!("{}: opening {n} connections", kind.name()))?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            // Warm-up, not measured: the publisher's first connection, the server's first fan-out.
            open_loop(server.port, 10.0, 3, 1, &sink, |_, stamp| {
                kind.publish(stamp)
            })
            .await;
            drain(
                &sink,
                3 * n as u64,
                Duration::from_millis(500),
                Duration::from_secs(10),
            )
            .await;
            for target in capped(&FAN_TARGETS, ctx.max_rate) {
                let rate = target / n as f64;
                let count = ((rate * ctx.step_s).round() as u64).max(3);
                let row = fan_step(&server, &sink, n, target, rate, count).await;
                eprintln!(
                    "fan   {:20} {:>6} subs  {:>7.0}/s → {:>7.0}/s  p50 {:>7.1}  p99 {:>7.1}  p99.9 {:>7.1} ms  lost {}  srv {:>3.0}% {:>5.2} µs/dlv  tool {:>3.0}%",
                    row.peer,
                    n,
                    target,
                    row.delivered_per_s,
                    row.p50_ms,
                    row.p99_ms,
                    row.p999_ms,
                    row.lost,
                    row.server_cpu_pct,
                    row.server_us_per_delivery,
                    row.tool_cpu_pct
                );
                let saturated = row.delivered_per_s < 0.7 * target || row.p99_ms > 2000.0;
                rows.push(row);
                if saturated {
                    break;
                }
                settle(&sink).await;
            }
            subs.close();
            server.stop().await;
        }
    }
    Ok(rows)
}

async fn fan_step(
    server: &Server,
    sink: &Rc<Sink>,
    n: usize,
    target: f64,
    rate: f64,
    count: u64,
) -> FanRow {
    let kind = server.kind;
    let m = measure(server, sink, rate, count, 16, n, |_, stamp| {
        kind.publish(stamp)
    })
    .await;
    FanRow {
        peer: kind.name().into(),
        subscribers: n,
        target_per_s: target,
        delivered_per_s: m.got as f64 / m.wall,
        p50_ms: m.percentiles[0],
        p99_ms: m.percentiles[1],
        p999_ms: m.percentiles[2],
        lost: m.lost(),
        publish_failed: m.sent.failed + m.sent.skipped,
        server_cpu_pct: m.server_cpu_s / m.wall * 100.0,
        server_us_per_delivery: per(m.server_cpu_s * 1e6, m.got),
        tool_cpu_pct: m.tool_cpu_s / m.wall * 100.0,
    }
}

/// What one measured step saw: `count` requests sent at `rate`, then the deliveries they caused.
struct Measured {
    sent: Sent,
    /// Deliveries the answered requests should cause, and those that arrived.
    expected: u64,
    got: u64,
    /// Seconds until the last request was answered.
    answered_in: f64,
    /// Seconds from the first request to the last delivery, at least `answered_in`.
    wall: f64,
    /// p50, p99, p99.9 in milliseconds.
    percentiles: [f64; 3],
    server_cpu_s: f64,
    tool_cpu_s: f64,
}

impl Measured {
    fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.got)
    }
}

/// `a / b`, or NaN when nothing was counted.
pub(crate) fn per(a: f64, b: u64) -> f64 {
    if b > 0 { a / b as f64 } else { f64::NAN }
}

/// Sends the step's requests (open loop, over at most `pool` connections), waits for the deliveries each
/// answered request causes (`fanout` apiece), and reads the latencies and both processes' CPU time.
async fn measure(
    server: &Server,
    sink: &Rc<Sink>,
    rate: f64,
    count: u64,
    pool: usize,
    fanout: usize,
    make: impl Fn(u64, u64) -> (&'static str, String, Vec<u8>),
) -> Measured {
    sink.reset();
    let r0 = sink.received.get();
    let (s0, t0) = (server.usage(), Usage::own());
    let start = Instant::now();
    let sent = open_loop(server.port, rate, count, pool, sink, make).await;
    let answered_in = start.elapsed();
    let expected = sent.ok * fanout as u64;
    await_deliveries(sink, r0 + expected).await;
    let (s1, t1) = (server.usage(), Usage::own());
    Measured {
        sent,
        expected,
        got: sink.received.get() - r0,
        answered_in: answered_in.as_secs_f64(),
        wall: sink
            .last_at
            .get()
            .saturating_duration_since(start)
            .max(answered_in)
            .as_secs_f64(),
        percentiles: sink.percentiles(),
        server_cpu_s: s1.cpu_s - s0.cpu_s,
        tool_cpu_s: t1.cpu_s - t0.cpu_s,
    }
}

/// Lets a step's stragglers land before the next step starts.
async fn settle(sink: &Sink) {
    drain(
        sink,
        u64::MAX,
        Duration::from_millis(300),
        Duration::from_secs(10),
    )
    .await;
}

/// The mutation path (Switchboard only: the peers have no durable store): REST creates and updates, each
/// committed to SQLite and delivered over WebSocket.
pub(crate) async fn mutation(ctx: &Ctx) -> Result<Vec<MutRow>> {
    let mut rows = Vec::new();
    // Latency: every mutation fans out to 1k subscribers of agent:*.
    {
        let server = Server::start(Kind::Switchboard, &ctx.paths, ctx.server_core).await?;
        let ids = seed_agents(server.port, 64).await?;
        let sink = Sink::new();
        *sink.passes.borrow_mut() = Some(Default::default());
        let mut subs = Subscribers::new();
        subs.open(
            Kind::Switchboard,
            server.port,
            "agent:*",
            ctx.mut_subs,
            &sink,
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        for rate in capped(&[10.0, 25.0, 50.0, 100.0, 150.0, 200.0], ctx.max_rate) {
            let row = mut_step(ctx, &server, &sink, &ids, "latency", ctx.mut_subs, rate).await;
            let saturated = row.committed_per_s < 0.8 * rate || row.p99_ms > 2000.0;
            rows.push(row);
            if saturated {
                break;
            }
            settle(&sink).await;
        }
        subs.close();
        server.stop().await;
    }
    // Durable throughput: one subscriber of agent:* checks every mutation arrives; 1k others sit on `bench`.
    {
        let server = Server::start(Kind::Switchboard, &ctx.paths, ctx.server_core).await?;
        let ids = seed_agents(server.port, 64).await?;
        let idle_sink = Sink::new();
        let mut idle_subs = Subscribers::new();
        idle_subs
            .open(
                Kind::Switchboard,
                server.port,
                "bench",
                ctx.mut_subs,
                &idle_sink,
            )
            .await?;
        let sink = Sink::new();
        let mut subs = Subscribers::new();
        subs.open(Kind::Switchboard, server.port, "agent:*", 1, &sink)
            .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        for rate in capped(
            &[1_000.0, 2_500.0, 5_000.0, 10_000.0, 20_000.0, 40_000.0],
            ctx.max_rate,
        ) {
            let row = mut_step(ctx, &server, &sink, &ids, "durable", 1, rate).await;
            let saturated = row.committed_per_s < 0.8 * rate;
            rows.push(row);
            if saturated {
                break;
            }
            settle(&sink).await;
        }
        subs.close();
        idle_subs.close();
        server.stop().await;
    }
    Ok(rows)
}

/// The `i`-th request of a mutation run: creates and updates of the seeded `ids`, alternating, each renaming to
/// `BT<stamp>` so its event carries the send time.
pub(crate) fn mutation_request(
    i: u64,
    stamp: u64,
    ids: &[String],
) -> (&'static str, String, Vec<u8>) {
    let body = format!(r#"{{"name":"BT{stamp}"}}"#).into_bytes();
    if i.is_multiple_of(2) {
        ("POST", "/api/agents".into(), body)
    } else {
        let id = &ids[(i / 2) as usize % ids.len()];
        ("PATCH", format!("/api/agents/{id}"), body)
    }
}

/// Keep-alive connections the mutation publisher may use at once (each carries one request at a time).
const MUT_POOL: usize = 1024;

pub(crate) async fn seed_agents(port: u16, n: usize) -> Result<Vec<String>> {
    let mut c = HttpConn::connect(port).await?;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let a = c
            .request(
                "POST",
                "/api/agents",
                format!(r#"{{"name":"seed-{i}"}}"#).as_bytes(),
            )
            .await?;
        anyhow::ensure!(a.status == 201, "creating an agent answered {}", a.status);
        let v: serde_json::Value = serde_json::from_slice(&a.body)?;
        ids.push(v["id"].as_str().context("agent id")?.to_owned());
    }
    Ok(ids)
}

async fn mut_step(
    ctx: &Ctx,
    server: &Server,
    sink: &Rc<Sink>,
    ids: &[String],
    mode: &str,
    subscribers: usize,
    rate: f64,
) -> MutRow {
    let count = (rate * ctx.step_s).round() as u64;
    let ids: Rc<[String]> = ids.into();
    let m = measure(
        server,
        sink,
        rate,
        count,
        MUT_POOL,
        subscribers,
        move |i, stamp| mutation_request(i, stamp, &ids),
    )
    .await;
    let [first_p99_ms, pass_p50_ms, pass_p99_ms] =
        sink.pass_times().map(|v| v.is_finite().then_some(v));
    let row = MutRow {
        mode: mode.into(),
        subscribers,
        target_per_s: rate,
        committed_per_s: m.sent.ok as f64 / m.answered_in,
        delivered_per_s: m.got as f64 / m.wall,
        p50_ms: m.percentiles[0],
        p99_ms: m.percentiles[1],
        p999_ms: m.percentiles[2],
        failed: m.sent.failed,
        skipped: m.sent.skipped,
        lost: m.lost(),
        server_cpu_pct: m.server_cpu_s / m.wall * 100.0,
        server_us_per_mutation: per(m.server_cpu_s * 1e6, m.sent.ok),
        first_p99_ms,
        pass_p50_ms,
        pass_p99_ms,
    };
    eprintln!(
        "mut   {:8} {:>5} subs  {:>6.0}/s → {:>6.0} committed/s  p50 {:>6.1}  p99 {:>6.1}  p99.9 {:>6.1} ms  failed {}  skipped {}  lost {}  srv {:>3.0}% {:>5.1} µs/mut",
        row.mode,
        subscribers,
        rate,
        row.committed_per_s,
        row.p50_ms,
        row.p99_ms,
        row.p999_ms,
        row.failed,
        row.skipped,
        row.lost,
        row.server_cpu_pct,
        row.server_us_per_mutation
    );
    row
}

/// MCP tool calls, one after another, through `switchboard mcp` (stdio bridge) to a running hub.
pub(crate) async fn mcp(ctx: &Ctx, calls: u64) -> Result<Vec<McpRow>> {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};

    let server = Server::start(Kind::Switchboard, &ctx.paths, ctx.server_core).await?;
    let url = format!("http://127.0.0.1:{}", server.port);
    let data_dir = server.data_dir().context("data dir")?.to_path_buf();
    let transport = TokioChildProcess::new(
        tokio::process::Command::new(&ctx.paths.switchboard).configure(|c| {
            c.arg("--data-dir")
                .arg(&data_dir)
                .args(["mcp", "--hub", &url])
                .env("RUST_LOG", "warn");
        }),
    )?;
    let client = ().serve(transport).await.context("MCP handshake")?;
    let mut rows = Vec::new();
    for (tool, args) in [
        ("hub_status", serde_json::json!({})),
        (
            "publish_event",
            serde_json::json!({"channel": "bench", "event": "tick", "data": {"m": "mcp"}}),
        ),
        ("list_agents", serde_json::json!({"limit": 10})),
    ] {
        let args = args.as_object().cloned().unwrap_or_default();
        let call = || CallToolRequestParams::new(tool).with_arguments(args.clone());
        for _ in 0..20 {
            client.call_tool(call()).await?;
        }
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let start = Instant::now();
        for _ in 0..calls {
            let t = Instant::now();
            let r = client.call_tool(call()).await?;
            anyhow::ensure!(r.is_error != Some(true), "{tool} failed: {r:?}");
            h.record(t.elapsed().as_micros().max(1) as u64)?;
        }
        let secs = start.elapsed().as_secs_f64();
        let row = McpRow {
            tool: tool.into(),
            calls,
            calls_per_s: calls as f64 / secs,
            p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
        };
        eprintln!(
            "mcp   {:14} {} calls  {:>6.0}/s  p50 {:.2} ms  p99 {:.2} ms",
            row.tool, calls, row.calls_per_s, row.p50_ms, row.p99_ms
        );
        rows.push(row);
    }
    let _ = client.cancel().await;
    server.stop().await;
    Ok(rows)
}
