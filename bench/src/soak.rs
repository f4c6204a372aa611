//! The soak: one hub under a steady, moderate mixed load for a long time (an hour by default), sampled every
//! minute (`--soak-sample-s`; the short CI run samples every 10 s, so its verdict has more than two points). The load: `conns` subscribers spread over ten channels (half on the hub's WebSocket, a quarter each on
//! Socket.IO and Pusher), `events_per_s` REST publishes spread over those channels, and `mutations_per_s` agent
//! updates. Each minute's row: the hub's RSS and open fds, p50/p99 publish→receive latency, the WAL's and the
//! database's sizes, and what was sent, failed and delivered.
//!
//! The verdict, over the samples after the warm-up: RSS and fds stay flat (the last quarter's median within ±5 %
//! of the first quarter's; for RSS, plus `--soak-rss-slack-mb`, which the short CI run sets: see `judge`); p99 does not creep (the last quarter's median at most twice the first quarter's, plus 5 ms); the WAL stays under
//! 32 MiB (the hub's `journal_size_limit`) plus its checkpoint gap; and no publish failed and no delivery was
//! lost.

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Result;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::load::{Sink, Subscribers, drain, open_loop};
use crate::peer::{Kind, Server};
use crate::scenarios::{Ctx, seed_agents};

/// What the soak runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SoakConfig {
    pub minutes: u64,
    pub warmup: u64,
    /// Seconds per row.
    pub sample_s: u64,
    pub conns: usize,
    pub events_per_s: f64,
    pub mutations_per_s: f64,
    /// The hub's `--retention-events`.
    pub retention_events: u64,
    /// MB the RSS may move besides its 5 % (see [`judge`]).
    pub rss_slack_mb: f64,
}

/// One sample of the soak.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SoakRow {
    /// When the sample ended, in minutes from the start of the load.
    pub minute: f64,
    pub rss_mb: f64,
    pub fds: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub wal_mb: f64,
    pub db_mb: f64,
    pub published: u64,
    pub mutations: u64,
    pub failed: u64,
    /// Requests not sent because every pooled connection was still waiting for an answer.
    pub skipped: u64,
    pub delivered: u64,
}

/// How the run went against its pass criteria.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Verdict {
    pub pass: bool,
    pub lines: Vec<(String, bool)>,
    pub lost: u64,
}

const CHANNELS: usize = 10;
/// The WAL bound: the writer starts it over past 16 MiB of log; twice that leaves room for what comes meanwhile.
const WAL_BOUND_MB: f64 = 32.0;

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn size_mb(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1_048_576.0)
}

/// Runs the soak and prints a row a minute.
pub(crate) async fn soak(ctx: &Ctx, cfg: SoakConfig) -> Result<(Vec<SoakRow>, Verdict)> {
    // Started as the Pusher kind, so it knows the app key the Pusher subscribers use.
    let retention = [
        "--retention-events".to_owned(),
        cfg.retention_events.to_string(),
    ];
    let server = Server::start_with(
        Kind::SwitchboardPusher,
        &ctx.paths,
        ctx.server_core,
        &retention,
    )
    .await?;
    let data = server.data_dir().map(Path::to_path_buf).unwrap_or_default();
    let ids = Rc::new(seed_agents(server.port, 50).await?);
    let sink = Sink::new();
    let mut subs = Subscribers::new();
    let per_channel = cfg.conns / CHANNELS;
    let split = [
        (Kind::Switchboard, per_channel - 2 * (per_channel / 4)),
        (Kind::SwitchboardSocketio, per_channel / 4),
        (Kind::SwitchboardPusher, per_channel / 4),
    ];
    for c in 0..CHANNELS {
        for (kind, n) in split {
            if n > 0 {
                subs.open(kind, server.port, &format!("soak-{c}"), n, &sink)
                    .await?;
            }
        }
    }
    eprintln!(
        "soak: {} subscribers on {CHANNELS} channels, {} publishes/s, {} mutations/s, {} min ({} warm-up)",
        subs.len(),
        cfg.events_per_s,
        cfg.mutations_per_s,
        cfg.minutes,
        cfg.warmup
    );
    eprintln!(
        "| minute | RSS MB | fds | p50 ms | p99 ms | WAL MB | DB MB | published | mutations | failed | skipped | delivered |"
    );
    let mut rows = Vec::new();
    let mut expected = 0u64;
    let mut delivered_before = 0u64;
    let samples = (cfg.minutes * 60).div_ceil(cfg.sample_s.max(1));
    for sample in 1..=samples {
        let minute = (sample * cfg.sample_s) as f64 / 60.0;
        sink.reset();
        let events = (cfg.events_per_s * cfg.sample_s as f64) as u64;
        let mutations = (cfg.mutations_per_s * cfg.sample_s as f64) as u64;
        let publish = open_loop(
            server.port,
            cfg.events_per_s,
            events,
            256,
            &sink,
            |i, stamp| {
                let body = format!(
                    r#"{{"channel":"soak-{}","event":"tick","data":{{"m":"BT{stamp}"}}}}"#,
                    i as usize % CHANNELS
                );
                ("POST", "/api/events".into(), body.into_bytes())
            },
        );
        let ids2 = ids.clone();
        let mutate = open_loop(
            server.port,
            cfg.mutations_per_s,
            mutations,
            64,
            &sink,
            move |i, _| {
                let id = &ids2[i as usize % ids2.len()];
                let status = if i % 2 == 0 { "running" } else { "idle" };
                let body = format!(r#"{{"status":"{status}","config":{{"i":{i}}}}}"#);
                ("PATCH", format!("/api/agents/{id}"), body.into_bytes())
            },
        );
        let (p, m) = tokio::join!(publish, mutate);
        expected += p.ok * per_channel as u64;
        // Let this minute's last deliveries land before sampling.
        drain(
            &sink,
            expected,
            Duration::from_millis(500),
            Duration::from_secs(5),
        )
        .await;
        // The pooled HTTP connections just closed: give the hub a moment to close its ends before counting fds.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let [p50, p99, _] = sink.percentiles();
        let delivered = sink.received.get() - delivered_before;
        delivered_before = sink.received.get();
        let row = SoakRow {
            minute,
            rss_mb: server.usage().rss_kb as f64 / 1024.0,
            fds: fds(server.pid),
            p50_ms: p50,
            p99_ms: p99,
            wal_mb: size_mb(&data.join("switchboard.db-wal")),
            db_mb: size_mb(&data.join("switchboard.db")),
            published: p.ok,
            mutations: m.ok,
            failed: p.failed + m.failed,
            skipped: p.skipped + m.skipped,
            delivered,
        };
        eprintln!(
            "| {:.2} | {:.1} | {} | {:.2} | {:.2} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
            row.minute,
            row.rss_mb,
            row.fds,
            row.p50_ms,
            row.p99_ms,
            row.wal_mb,
            row.db_mb,
            row.published,
            row.mutations,
            row.failed,
            row.skipped,
            row.delivered
        );
        rows.push(row);
    }
    drain(
        &sink,
        expected,
        Duration::from_secs(3),
        Duration::from_secs(20),
    )
    .await;
    let lost = expected.saturating_sub(sink.received.get());
    let closed = sink.closed.get();
    subs.close();
    server.stop().await;
    let mut verdict = judge(&rows, cfg.warmup, lost, cfg.rss_slack_mb);
    if closed > 0 {
        verdict
            .lines
            .push((format!("{closed} subscribers were disconnected"), false));
        verdict.pass = false;
    }
    Ok((rows, verdict))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The pass criteria over the rows after `warmup` minutes. RSS may move by 5 % plus `rss_slack_mb`: a burst of load
/// (a latency spike, on this VM often the hypervisor pausing it) leaves buffers and allocator pages behind that
/// come back slowly or not at all, a step of 1–4 MB measured on 2026-12-08 with the hubs before and after issue 25
/// alike. In a 3-minute run a burst after the warm-up would fail a 5 % bound on ~26 MB by itself, so the CI run
/// allows 3 MB; it still fails a leak of 1 MB a minute. The hour run allows none.
pub(crate) fn judge(rows: &[SoakRow], warmup: u64, lost: u64, rss_slack_mb: f64) -> Verdict {
    let after: Vec<&SoakRow> = rows.iter().filter(|r| r.minute > warmup as f64).collect();
    let mut lines = Vec::new();
    if after.len() < 4 {
        lines.push(("at least four samples after the warm-up".to_owned(), false));
        return Verdict {
            pass: false,
            lines,
            lost,
        };
    }
    // Flat: the last quarter's median within ±5 % of the first quarter's (one sample is an instant: a burst of
    // requests in flight moves it, a leak moves the median).
    let q = after.len().div_ceil(4);
    let within = |name: &str, unit: &str, slack: f64, v: Vec<f64>| -> (String, bool) {
        let first = median(&mut v[..q].to_vec());
        let last = median(&mut v[v.len() - q..].to_vec());
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
        let dev = (last - first).abs() / first * 100.0;
        let bound = if slack > 0.0 {
            format!("at most 5 % + {slack:.0}{unit}")
        } else {
            "at most 5 %".to_owned()
        };
        (
            format!(
                "{name} flat after the warm-up: last quarter's median {last:.1}{unit} against the first's \
                 {first:.1}{unit} ({dev:.1} %, {bound}); range {lo:.1}–{hi:.1}{unit}"
            ),
            (last - first).abs() <= first * 0.05 + slack,
        )
    };
    lines.push(within(
        "RSS",
        " MB",
        rss_slack_mb,
        after.iter().map(|r| r.rss_mb).collect(),
    ));
    lines.push(within(
        "fds",
        "",
        0.0,
        after.iter().map(|r| r.fds as f64).collect(),
    ));
    let first = median(&mut after[..q].iter().map(|r| r.p99_ms).collect::<Vec<_>>());
    let last = median(
        &mut after[after.len() - q..]
            .iter()
            .map(|r| r.p99_ms)
            .collect::<Vec<_>>(),
    );
    lines.push((
        format!("p99 does not creep: last quarter {last:.2} ms against first quarter {first:.2} ms (at most ×2 + 5 ms)"),
        last <= 2.0 * first + 5.0,
    ));
    let wal = rows.iter().map(|r| r.wal_mb).fold(0.0, f64::max);
    lines.push((
        format!("WAL bounded: at most {wal:.1} MB (bound {WAL_BOUND_MB} MB)"),
        wal <= WAL_BOUND_MB,
    ));
    let failed: u64 = rows.iter().map(|r| r.failed).sum();
    let skipped: u64 = rows.iter().map(|r| r.skipped).sum();
    let sent: u64 = rows
        .iter()
        .map(|r| r.published + r.mutations + r.failed)
        .sum();
    lines.push((format!("no failed request: {failed}"), failed == 0));
    // A request is not sent when all of the tool's pooled connections still wait for answers (a latency spike
    // past 256 in flight): the load held within 1 %.
    lines.push((
        format!(
            "the load was held: {skipped} of {} requests not sent for want of a free connection (at most 1 %)",
            sent + skipped
        ),
        skipped * 100 <= sent + skipped,
    ));
    lines.push((format!("no lost delivery: {lost}"), lost == 0));
    Verdict {
        pass: lines.iter().all(|(_, ok)| *ok),
        lines,
        lost,
    }
}

/// The soak as Markdown: its table and verdict.
pub(crate) fn markdown(cfg: &SoakConfig, rows: &[SoakRow], v: &Verdict, plot: &str) -> String {
    let mut md = format!(
        "{} subscribers (WebSocket, Socket.IO, Pusher) on {CHANNELS} channels, {} publishes/s and {} agent \
         updates/s for {} minutes ({} warm-up), a row every {} s; retention keeps {} events. Plot: \
         [{plot}]({plot}).\n\n",
        cfg.conns,
        cfg.events_per_s,
        cfg.mutations_per_s,
        cfg.minutes,
        cfg.warmup,
        cfg.sample_s,
        cfg.retention_events
    );
    md.push_str("| minute | RSS MB | fds | p50 ms | p99 ms | WAL MB | DB MB | published | mutations | failed | skipped | delivered |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        md.push_str(&format!(
            "| {:.2} | {:.1} | {} | {:.2} | {:.2} | {:.1} | {:.1} | {} | {} | {} | {} | {} |\n",
            r.minute,
            r.rss_mb,
            r.fds,
            r.p50_ms,
            r.p99_ms,
            r.wal_mb,
            r.db_mb,
            r.published,
            r.mutations,
            r.failed,
            r.skipped,
            r.delivered
        ));
    }
    md.push_str(&format!(
        "\n**{}**\n\n",
        if v.pass { "Pass" } else { "Fail" }
    ));
    for (line, ok) in &v.lines {
        md.push_str(&format!("- {} {line}\n", if *ok { "✓" } else { "✗" }));
    }
    md
}

/// RSS, fds and p99 against the minute, one panel each.
pub(crate) fn plot(path: &Path, label: &str, rows: &[SoakRow]) -> Result<()> {
    let root = SVGBackend::new(path, (900, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("Soak ({label}): RSS, open fds and p99 latency over time"),
        ("sans-serif", 20),
    )?;
    let panels = root.split_evenly((3, 1));
    let max_min = rows.last().map_or(1.0, |r| r.minute);
    type Series = (&'static str, fn(&SoakRow) -> f64);
    let series: [Series; 3] = [
        ("RSS, MB", |r| r.rss_mb),
        ("open fds", |r| r.fds as f64),
        ("p99 publish→receive, ms", |r| r.p99_ms),
    ];
    for (area, (name, f)) in panels.iter().zip(series) {
        let max_y = rows.iter().map(f).fold(1.0, f64::max) * 1.25;
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max_min, 0f64..max_y)?;
        chart
            .configure_mesh()
            .x_desc("minute")
            .y_desc(name)
            .draw()?;
        chart.draw_series(LineSeries::new(
            rows.iter().map(|r| (r.minute, f(r))),
            BLUE.stroke_width(2),
        ))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(minute: u64, rss_mb: f64, fds: usize, p99_ms: f64, wal_mb: f64) -> SoakRow {
        SoakRow {
            minute: minute as f64,
            rss_mb,
            fds,
            p50_ms: p99_ms / 4.0,
            p99_ms,
            wal_mb,
            db_mb: 10.0,
            published: 60_000,
            mutations: 3_000,
            failed: 0,
            skipped: 0,
            delivered: 3_000_000,
        }
    }

    #[test]
    fn the_verdict_passes_a_flat_run_and_fails_drift_creep_and_a_growing_wal() {
        let flat: Vec<SoakRow> = (1..=10).map(|m| row(m, 30.0, 519, 20.0, 8.0)).collect();
        assert!(judge(&flat, 2, 0, 0.0).pass);
        // The warm-up may differ.
        let mut warm = flat.clone();
        warm[0].rss_mb = 20.0;
        assert!(judge(&warm, 2, 0, 0.0).pass);
        let leak: Vec<SoakRow> = (1..=10)
            .map(|m| row(m, 30.0 + m as f64, 519, 20.0, 8.0))
            .collect();
        assert!(!judge(&leak, 2, 0, 0.0).pass, "RSS growing 1 MB a minute");
        assert!(
            !judge(&leak, 2, 0, 3.0).pass,
            "RSS growing 1 MB a minute, with the CI run's slack"
        );
        // One step of 2 MB after a burst: within the CI run's slack, not within 5 % alone.
        let step: Vec<SoakRow> = (1..=10)
            .map(|m| row(m, if m < 6 { 30.0 } else { 32.0 }, 519, 20.0, 8.0))
            .collect();
        assert!(judge(&step, 2, 0, 3.0).pass);
        assert!(!judge(&step, 2, 0, 0.0).pass);
        let fds: Vec<SoakRow> = (1..=10)
            .map(|m| row(m, 30.0, 519 + 10 * m as usize, 20.0, 8.0))
            .collect();
        assert!(!judge(&fds, 2, 0, 0.0).pass, "fds growing");
        let creep: Vec<SoakRow> = (1..=10)
            .map(|m| row(m, 30.0, 519, 10.0 * m as f64, 8.0))
            .collect();
        assert!(!judge(&creep, 2, 0, 0.0).pass, "p99 creeping");
        let wal: Vec<SoakRow> = (1..=10)
            .map(|m| row(m, 30.0, 519, 20.0, 8.0 * m as f64))
            .collect();
        assert!(!judge(&wal, 2, 0, 0.0).pass, "WAL growing");
        assert!(!judge(&flat, 2, 1, 0.0).pass, "a lost delivery");
        assert!(
            !judge(&flat[..5], 2, 0, 0.0).pass,
            "three samples after the warm-up are not enough"
        );
    }
}
