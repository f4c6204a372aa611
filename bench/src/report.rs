//! Results: kept per run label in `bench/results/<label>.json`, rendered as Markdown tables into the label's
//! block of `bench/RESULTS.md` (text outside the blocks is left alone), and plotted as latency against delivered
//! rate in `bench/results/<label>-fanout.svg`.
//!
//! One file past 500 lines: each scenario's table is a caption and a row mapping over the same `table` helper,
//! and they read best side by side.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::peer::{Kind, Proto};
use crate::scaleout::ScaleRow;
use crate::scenarios::{AtRest, FanRow, IdleRow, McpRow, MutRow};
use crate::throughput::ThroughRow;

/// What one run label has measured so far; a scenario run replaces its own part.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Results {
    pub machine: String,
    pub versions: Vec<(String, String)>,
    pub updated: String,
    /// CPU time the hypervisor took from this VM during the last scenario run (steal, seconds, all cores).
    #[serde(default)]
    pub steal_s: f64,
    #[serde(default)]
    pub at_rest: Vec<AtRest>,
    #[serde(default)]
    pub idle: Vec<IdleRow>,
    #[serde(default)]
    pub fanout: Vec<FanRow>,
    #[serde(default)]
    pub mutation: Vec<MutRow>,
    #[serde(default)]
    pub throughput: Vec<ThroughRow>,
    #[serde(default)]
    pub mcp: Vec<McpRow>,
    #[serde(default)]
    pub scaleout: Vec<ScaleRow>,
}

impl Results {
    pub(crate) fn load(path: &Path) -> Results {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

fn f(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}

fn k(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

/// The Markdown for one label: machine, versions, then a table per scenario measured.
pub(crate) fn markdown(label: &str, r: &Results, plot: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Run `{label}`, {}. Machine: {}.", r.updated, r.machine);
    let versions: Vec<String> = r.versions.iter().map(|(n, v)| format!("{n} {v}")).collect();
    let _ = writeln!(s, "Versions: {}.", versions.join(", "));
    let _ = writeln!(
        s,
        "CPU stolen by the hypervisor during the last scenario run: {:.1} s.\n",
        r.steal_s
    );
    if let Some(note) = protocols(r) {
        let _ = writeln!(s, "{note}\n");
    }
    if !r.at_rest.is_empty() {
        let _ = writeln!(s, "**At rest** (no connections, 5 s):\n");
        table(
            &mut s,
            &["peer", "RSS MB", "CPU ms in 5 s"],
            r.at_rest
                .iter()
                .map(|a| vec![a.peer.clone(), f(a.rss_mb, 1), f(a.cpu_ms_5s, 0)]),
        );
    }
    if !r.idle.is_empty() {
        let _ = writeln!(
            s,
            "**Idle connections** (subscribed to one channel; RSS growth over the server at rest):\n"
        );
        table(
            &mut s,
            &[
                "peer",
                "connections",
                "RSS MB",
                "KB per connection",
                "connects/s",
                "server µs/connect",
            ],
            r.idle.iter().map(|i| {
                vec![
                    i.peer.clone(),
                    i.connections.to_string(),
                    f(i.rss_mb, 1),
                    f(i.kb_per_conn, 2),
                    k(i.connects_per_s),
                    // Runs before this column existed stored 0.
                    if i.server_us_per_connect > 0.0 {
                        f(i.server_us_per_connect, 1)
                    } else {
                        "–".into()
                    },
                ]
            }),
        );
    }
    if !r.fanout.is_empty() {
        let _ = writeln!(
            s,
            "**Fan-out** (one publisher over HTTP, every message to every subscriber; latency is publish → receive; \
             CPU is of one core; a step that misses 70% of its target ends the series):\n"
        );
        table(
            &mut s,
            &[
                "peer",
                "subs",
                "target/s",
                "delivered/s",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "lost",
                "server CPU",
                "server µs/delivery",
                "tool CPU",
            ],
            r.fanout.iter().map(|x| {
                vec![
                    x.peer.clone(),
                    k(x.subscribers as f64),
                    k(x.target_per_s),
                    k(x.delivered_per_s),
                    f(x.p50_ms, 1),
                    f(x.p99_ms, 1),
                    f(x.p999_ms, 1),
                    x.lost.to_string(),
                    format!("{}%", f(x.server_cpu_pct, 0)),
                    f(x.server_us_per_delivery, 2),
                    format!("{}%", f(x.tool_cpu_pct, 0)),
                ]
            }),
        );
        let _ = writeln!(
            s,
            "**Fan-out summary**: the highest step whose p99 ≤ 50 ms with nothing lost, and the most delivered per \
             second at any latency (with the server CPU per delivery there):\n"
        );
        let summary = series(&r.fanout).into_iter().filter_map(|(peer, n)| {
            let rows = || {
                r.fanout
                    .iter()
                    .filter(|x| x.peer == peer && x.subscribers == n)
            };
            let best = rows()
                .filter(|x| x.p99_ms <= 50.0 && x.lost == 0)
                .max_by(|a, b| a.delivered_per_s.total_cmp(&b.delivered_per_s));
            let most = rows().max_by(|a, b| a.delivered_per_s.total_cmp(&b.delivered_per_s))?;
            let (b_rate, b_p99) = best.map_or(("none".into(), "–".into()), |b| {
                (k(b.delivered_per_s), f(b.p99_ms, 1))
            });
            Some(vec![
                peer.clone(),
                k(n as f64),
                b_rate,
                b_p99,
                k(most.delivered_per_s),
                f(most.p99_ms, 1),
                f(most.server_us_per_delivery, 2),
            ])
        });
        table(
            &mut s,
            &[
                "peer",
                "subs",
                "best delivered/s at p99 ≤ 50 ms",
                "its p99 ms",
                "most delivered/s",
                "its p99 ms",
                "server µs/delivery there",
            ],
            summary,
        );
    }
    if !r.mutation.is_empty() {
        let _ = writeln!(
            s,
            "**Mutation path** (Switchboard only: REST creates and updates, half each, each committed to SQLite \
             before its answer, then delivered over WebSocket; latency is request sent → event received; in latency \
             mode it splits into the time to the first subscriber and one message's pass over every subscriber's \
             socket, first receive → last):\n"
        );
        table(
            &mut s,
            &[
                "mode",
                "subs",
                "target/s",
                "committed/s",
                "delivered/s",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "failed",
                "not sent",
                "lost",
                "server CPU",
                "server µs/mutation",
                "p99 to 1st sub ms",
                "pass p50 ms",
                "pass p99 ms",
            ],
            r.mutation.iter().map(|m| {
                vec![
                    m.mode.clone(),
                    k(m.subscribers as f64),
                    k(m.target_per_s),
                    k(m.committed_per_s),
                    k(m.delivered_per_s),
                    f(m.p50_ms, 1),
                    f(m.p99_ms, 1),
                    f(m.p999_ms, 1),
                    m.failed.to_string(),
                    m.skipped.to_string(),
                    m.lost.to_string(),
                    format!("{}%", f(m.server_cpu_pct, 0)),
                    f(m.server_us_per_mutation, 1),
                    f(m.first_p99_ms.unwrap_or(f64::NAN), 1),
                    f(m.pass_p50_ms.unwrap_or(f64::NAN), 1),
                    f(m.pass_p99_ms.unwrap_or(f64::NAN), 1),
                ]
            }),
        );
    }
    if !r.throughput.is_empty() {
        let _ = writeln!(
            s,
            "**Durable write throughput** (closed loop: each connection sends its next request when \
             the last is answered; every Switchboard 2xx was committed and fsynced in a group commit before its \
             answer; Node `ws`'s publish stores nothing and is there as the cost of an HTTP request on this machine; \
             one WebSocket subscriber checks every event arrives; latency is request → answer):\n"
        );
        table(
            &mut s,
            &[
                "peer",
                "writes",
                "connections",
                "committed/s",
                "p50 ms",
                "p99 ms",
                "failed",
                "lost",
                "server CPU",
                "server µs/write",
                "tool CPU",
            ],
            r.throughput.iter().map(|t| {
                vec![
                    t.peer.clone(),
                    t.op.clone(),
                    t.concurrency.to_string(),
                    k(t.ops_per_s),
                    f(t.p50_ms, 2),
                    f(t.p99_ms, 2),
                    t.failed.to_string(),
                    t.lost.to_string(),
                    format!("{}%", f(t.server_cpu_pct, 0)),
                    f(t.server_us_per_op, 1),
                    format!("{}%", f(t.tool_cpu_pct, 0)),
                ]
            }),
        );
    }
    if !r.scaleout.is_empty() {
        let _ = writeln!(
            s,
            "**Scale-out on PostgreSQL** (hubs sharing one PostgreSQL on this machine, after one SQLite hub as the \
             baseline; every hub pinned to the \
             server core, PostgreSQL unpinned, the tool on the other core; closed loop over the connections, spread \
             over the hubs; each hub delivers from its own tail of the shared log; CPU summed over the hubs and over \
             PostgreSQL's processes):\n"
        );
        table(
            &mut s,
            &[
                "store",
                "hubs",
                "writes",
                "connections",
                "subscribers",
                "committed/s",
                "deliveries/s",
                "p50 ms",
                "p99 ms",
                "failed",
                "lost",
                "hubs CPU",
                "hubs µs/write",
                "PostgreSQL CPU",
                "PostgreSQL µs/write",
            ],
            r.scaleout.iter().map(|t| {
                vec![
                    t.store.clone(),
                    t.hubs.to_string(),
                    t.op.clone(),
                    t.concurrency.to_string(),
                    t.subscribers.to_string(),
                    k(t.ops_per_s),
                    if t.deliveries_per_s.is_nan() {
                        "–".into()
                    } else {
                        k(t.deliveries_per_s)
                    },
                    f(t.p50_ms, 2),
                    f(t.p99_ms, 2),
                    t.failed.to_string(),
                    t.lost.to_string(),
                    format!("{}%", f(t.hubs_cpu_pct, 0)),
                    f(t.hubs_us_per_op, 1),
                    format!("{}%", f(t.pg_cpu_pct, 0)),
                    f(t.pg_us_per_op, 1),
                ]
            }),
        );
    }
    if !r.mcp.is_empty() {
        let _ = writeln!(
            s,
            "**MCP** (tool calls one after another through `switchboard mcp`, the stdio bridge, to the hub):\n"
        );
        table(
            &mut s,
            &["tool", "calls", "calls/s", "p50 ms", "p99 ms"],
            r.mcp.iter().map(|m| {
                vec![
                    m.tool.clone(),
                    m.calls.to_string(),
                    k(m.calls_per_s),
                    f(m.p50_ms, 2),
                    f(m.p99_ms, 2),
                ]
            }),
        );
    }
    if let Some(p) = plot {
        let _ = writeln!(
            s,
            "![p99 latency against delivered rate, run {label}]({p})\n"
        );
    }
    s
}

/// Which rows to compare with which, when the run covers more than one wire protocol: `Rows by protocol: …`.
fn protocols(r: &Results) -> Option<String> {
    let peers = r
        .at_rest
        .iter()
        .map(|a| &a.peer)
        .chain(r.idle.iter().map(|i| &i.peer))
        .chain(r.fanout.iter().map(|f| &f.peer));
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for peer in peers {
        let group = match Kind::parse(peer).map(Kind::proto) {
            Ok(Proto::Native | Proto::Plain) => {
                "Switchboard's own protocol and plain WebSocket broadcast"
            }
            Ok(Proto::SocketIo) => "Socket.IO 4 (WebSocket transport)",
            Ok(Proto::Pusher) => "Pusher protocol 7",
            Err(_) => "other",
        };
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) if members.contains(&peer.as_str()) => {}
            Some((_, members)) => members.push(peer),
            None => groups.push((group, vec![peer])),
        }
    }
    (groups.len() > 1).then(|| {
        let parts: Vec<String> = groups
            .iter()
            .map(|(g, members)| format!("{g}: {}", members.join(", ")))
            .collect();
        format!(
            "Rows by protocol (compare within a group): {}.",
            parts.join("; ")
        )
    })
}

/// A Markdown table (first column left-aligned, the rest right-aligned) and the blank line after it.
fn table(s: &mut String, head: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let _ = writeln!(s, "| {} |", head.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(head.len() - 1));
    for row in rows {
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    s.push('\n');
}

fn series(rows: &[FanRow]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for r in rows {
        if !out.iter().any(|(p, n)| *p == r.peer && *n == r.subscribers) {
            out.push((r.peer.clone(), r.subscribers));
        }
    }
    out
}

/// Replaces the `label` block of RESULTS.md (between its two markers), or appends one.
pub(crate) fn write_block(results_md: &Path, label: &str, body: &str) -> Result<()> {
    let open = format!("<!-- results:{label} -->");
    let close = format!("<!-- /results:{label} -->");
    let text =
        std::fs::read_to_string(results_md).unwrap_or_else(|_| "# Benchmark results\n".into());
    let block = format!("{open}\n{body}{close}");
    let out = match (text.find(&open), text.find(&close)) {
        (Some(a), Some(b)) if b > a => format!("{}{block}{}", &text[..a], &text[b + close.len()..]),
        _ => format!("{}\n## Run `{label}`\n\n{block}\n", text.trim_end()),
    };
    std::fs::write(results_md, out).with_context(|| format!("writing {}", results_md.display()))
}

/// p99 latency (log scale) against delivered deliveries/s, one line per peer and subscriber count.
pub(crate) fn plot(path: &Path, label: &str, rows: &[FanRow]) -> Result<()> {
    let max_x = rows
        .iter()
        .map(|r| r.delivered_per_s / 1000.0)
        .fold(10.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Fan-out: p99 publish→receive latency vs delivered rate ({label})"),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..max_x, (0.1f64..60_000f64).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("delivered messages/s (thousands)")
        .y_desc("p99 latency, ms (log)")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, 50.0), (max_x, 50.0)],
            RGBColor(160, 160, 160).stroke_width(1),
        ))?
        .label("p99 = 50 ms")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RGBColor(160, 160, 160)));
    for (i, (peer, n)) in series(rows).into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.peer == peer && r.subscribers == n && r.p99_ms.is_finite())
            .map(|r| (r.delivered_per_s / 1000.0, r.p99_ms.max(0.1)))
            .collect();
        let style = if n >= 10_000 {
            color.stroke_width(3)
        } else {
            color.stroke_width(1)
        };
        chart
            .draw_series(LineSeries::new(pts.clone(), style))?
            .label(format!("{peer}, {} subs", k(n as f64)))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], style));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
