//! `switchboard-bench`: Switchboard and its peers under the same load, from one pinned core, printed as tables.
//!
//! - [`wire`]: the tool's minimal WebSocket receiver and HTTP/1.1 keep-alive client.
//! - [`peer`]: the servers under test behind one seam ([`peer::Kind`]) and the three wire protocols:
//!   Switchboard's own beside Node `ws` and FastAPI, Socket.IO (Switchboard's endpoint and Node `socket.io`), and
//!   Pusher (Switchboard's endpoint and Sockudo).
//! - [`server`]: starting each server pinned to its core, waiting for it, and its CPU and memory from `/proc`.
//! - [`load`]: subscriber connections that time each delivery; the open-loop publisher.
//! - [`scenarios`]: idle and fan-out for every kind; mutation path and MCP for Switchboard's own protocol.
//! - [`throughput`]: closed-loop saturation of Switchboard's durable writes (agent mutations, event publishes).
//! - [`scaleout`]: 1, 2 and 3 hubs sharing one PostgreSQL: durable mutations/s and fan-out deliveries/s.
//! - [`soak`]: an hour (or `--soak-minutes`) of steady mixed load, sampled every minute, with a pass verdict.
//! - [`report`]: `bench/results/<label>.json`, the Markdown block in `bench/RESULTS.md`, the SVG plot.
//!
//! Run it through `bench/run.sh`, which installs the peers, builds in release mode, raises `ulimit -n` and pins
//! this tool to the core the servers do not use.

mod load;
mod peer;
mod report;
mod scaleout;
mod scenarios;
mod server;
mod soak;
mod throughput;
mod wire;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

use crate::peer::{Kind, Paths};
use crate::report::Results;
use crate::scenarios::Ctx;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Idle,
    Fanout,
    Mutation,
    /// Saturation throughput of durable agent mutations and event publishes (closed loop).
    Throughput,
    Mcp,
    /// 1, 2 and 3 hubs on one PostgreSQL (a throwaway cluster): mutations/s and fan-out deliveries/s. Not part of
    /// `all`.
    Scaleout,
    /// Steady mixed load for `--soak-minutes`, a row a minute (RSS, fds, p99, WAL), and a verdict: the command
    /// fails when RSS or fds drift past ±5 % after the warm-up, p99 creeps, the WAL grows past its bound, or a
    /// request fails or a delivery is lost. Not part of `all`.
    Soak,
    All,
    /// Run nothing: re-render RESULTS.md and the plot from `bench/results/<label>.json`.
    Render,
}

#[derive(Debug, Parser)]
#[command(about = "Benchmarks Switchboard beside its peers and writes bench/RESULTS.md")]
struct Args {
    #[arg(default_value = "all")]
    scenario: Scenario,
    /// Servers to compare, in this order: switchboard, node-ws, fastapi (Switchboard's own protocol and plain
    /// broadcast), switchboard-socketio, node-socketio (Socket.IO), switchboard-pusher, sockudo (Pusher). The
    /// mutation and MCP scenarios run when `switchboard` is listed, and on it only.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "switchboard,node-ws,fastapi,switchboard-socketio,node-socketio,switchboard-pusher,sockudo"
    )]
    peers: Vec<String>,
    /// Name of this run's block in RESULTS.md (`before`, `after`, …).
    #[arg(long, default_value = "latest")]
    label: String,
    /// The Switchboard binary (a release build); by default the one beside this tool.
    #[arg(long)]
    switchboard: Option<PathBuf>,
    /// The Sockudo binary; by default where bench/peers/install.sh puts it,
    /// `${SOCKUDO_CACHE:-$HOME/.cache/switchboard-peers}/sockudo/bin/sockudo`.
    #[arg(long)]
    sockudo: Option<PathBuf>,
    /// Repository root (peers live in bench/peers, results in bench/).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.."))]
    root: PathBuf,
    /// Core the server under test is pinned to (the tool should run on another: see bench/run.sh).
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// Connection counts for the idle scenario.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    idle_n: Vec<usize>,
    /// Subscriber counts for the fan-out scenario.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    fan_n: Vec<usize>,
    /// Seconds each measured step publishes for.
    #[arg(long, default_value_t = 5.0)]
    step_s: f64,
    /// Calls per tool in the MCP scenario.
    #[arg(long, default_value_t = 500)]
    mcp_calls: u64,
    /// Highest fan-out target (deliveries/s) and mutation rate (mutations/s) to try.
    #[arg(long, default_value_t = 1_000_000.0)]
    max_rate: f64,
    /// Concurrent keep-alive connections for each throughput step.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    conc: Vec<usize>,
    /// Hub counts for the scale-out scenario.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    scale_hubs: Vec<usize>,
    /// Concurrent keep-alive connections in the scale-out scenario, spread over the hubs.
    #[arg(long, default_value_t = 64)]
    scale_conc: usize,
    /// Subscribers in the scale-out scenario's fan-out step, spread over the hubs.
    #[arg(long, default_value_t = 1000)]
    scale_subs: usize,
    /// Subscribers in the mutation scenario.
    #[arg(long, default_value_t = 1000)]
    mut_subs: usize,
    /// Minutes the soak runs.
    #[arg(long, default_value_t = 60)]
    soak_minutes: u64,
    /// Minutes of the soak left out of its verdict.
    #[arg(long, default_value_t = 5)]
    soak_warmup: u64,
    /// Seconds per soak row (a minute for the hour; shorter for a short run, so its verdict has enough points).
    #[arg(long, default_value_t = 60)]
    soak_sample_s: u64,
    /// Subscriber connections in the soak.
    #[arg(long, default_value_t = 500)]
    soak_conns: usize,
    /// Publishes per second in the soak.
    #[arg(long, default_value_t = 1000.0)]
    soak_events: f64,
    /// Agent updates per second in the soak.
    #[arg(long, default_value_t = 50.0)]
    soak_mutations: f64,
    /// The soak hub's `--retention-events` (the hub's default, 100 000: at 1 000 publishes/s retention starts
    /// pruning after 100 s). A short run lowers it, so that its warm-up reaches the steady state of a log that
    /// prunes as fast as it grows.
    #[arg(long, default_value_t = 100_000)]
    soak_retention: u64,
    /// MB the soak's RSS may move besides its 5 % (a short run on a VM that pauses sets it; see `soak::judge`).
    #[arg(long, default_value_t = 0.0)]
    soak_rss_slack_mb: f64,
    /// Where RESULTS.md and results/ are written (default: bench/ in the repository).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(args))
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    // All the machine's cores, not the one this pinned tool may use.
    let cores = std::fs::read_to_string("/proc/cpuinfo").map_or(0, |s| {
        s.lines().filter(|l| l.starts_with("processor")).count()
    });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!(
        "{cpu}, {cores} cores, {mem_gb:.0} GiB, Linux {}, loopback",
        kernel.trim()
    )
}

/// Seconds of CPU stolen from this VM so far (the `steal` column of `/proc/stat`, all cores).
fn steal_s() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.to_owned();
            line.split_whitespace().nth(8)?.parse::<f64>().ok()
        })
        .map_or(0.0, |ticks| ticks / 100.0)
}

/// The version in a Node package's `package.json` under `bench/peers/<peer>/node_modules/`.
fn npm_version(paths: &Paths, peer: &str, package: &str) -> String {
    std::fs::read(paths.root.join(format!(
        "bench/peers/{peer}/node_modules/{package}/package.json"
    )))
    .ok()
    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    .and_then(|v| v["version"].as_str().map(str::to_owned))
    .unwrap_or_else(|| "?".into())
}

fn versions(paths: &Paths) -> Vec<(String, String)> {
    let ws = npm_version(paths, "node-ws", "ws");
    let socket_io = npm_version(paths, "node-socketio", "socket.io");
    let py = paths.root.join("bench/peers/fastapi/.venv/bin/python");
    let py_versions = command_line(
        &py.display().to_string(),
        &[
            "-c",
            "import sys, fastapi, uvicorn; print(sys.version.split()[0], fastapi.__version__, uvicorn.__version__)",
        ],
    );
    let mut py_parts = py_versions.split_whitespace();
    vec![
        (
            "switchboard".into(),
            command_line(&paths.switchboard.display().to_string(), &["--version"])
                .trim_start_matches("switchboard ")
                .to_owned(),
        ),
        ("node".into(), command_line("node", &["--version"])),
        ("ws".into(), ws),
        ("socket.io".into(), socket_io),
        ("python".into(), py_parts.next().unwrap_or("?").to_owned()),
        ("fastapi".into(), py_parts.next().unwrap_or("?").to_owned()),
        ("uvicorn".into(), py_parts.next().unwrap_or("?").to_owned()),
        (
            "sockudo".into(),
            command_line(&paths.sockudo.display().to_string(), &["--version"])
                .trim_start_matches("sockudo ")
                .to_owned(),
        ),
    ]
}

async fn run(args: Args) -> Result<()> {
    let root = args.root.canonicalize().context("repository root")?;
    let switchboard = match args.switchboard {
        Some(p) => p,
        // Built beside this tool by `cargo build --release -p switchboard -p switchboard-bench`.
        None => std::env::current_exe()?
            .parent()
            .context("tool directory")?
            .join("switchboard"),
    };
    anyhow::ensure!(
        switchboard.exists(),
        "{} is missing: build it with `cargo build --release -p switchboard`",
        switchboard.display()
    );
    let kinds = args
        .peers
        .iter()
        .map(|p| Kind::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let sockudo = args.sockudo.clone().unwrap_or_else(|| {
        let cache = std::env::var_os("SOCKUDO_CACHE").map_or_else(
            || {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                    .join(".cache/switchboard-peers")
            },
            PathBuf::from,
        );
        cache.join("sockudo/bin/sockudo")
    });
    let ctx = Ctx {
        paths: Paths {
            root: root.clone(),
            switchboard,
            sockudo,
        },
        server_core: args.server_core,
        step_s: args.step_s,
        max_rate: args.max_rate,
        mut_subs: args.mut_subs,
    };
    if args.scenario != Scenario::Render {
        for kind in &kinds {
            kind.check_installed(&ctx.paths)?;
        }
    }
    let out = args.out.clone().unwrap_or_else(|| root.join("bench"));
    if args.scenario == Scenario::Soak {
        let cfg = soak::SoakConfig {
            minutes: args.soak_minutes,
            warmup: args.soak_warmup,
            sample_s: args.soak_sample_s,
            conns: args.soak_conns,
            events_per_s: args.soak_events,
            mutations_per_s: args.soak_mutations,
            retention_events: args.soak_retention,
            rss_slack_mb: args.soak_rss_slack_mb,
        };
        let (rows, verdict) = soak::soak(&ctx, cfg).await?;
        std::fs::create_dir_all(out.join("results"))?;
        let json = out.join(format!("results/{}-soak.json", args.label));
        std::fs::write(&json, serde_json::to_vec_pretty(&(&rows, &verdict))?)?;
        let plot_rel = format!("results/{}-soak.svg", args.label);
        soak::plot(&out.join(&plot_rel), &args.label, &rows)?;
        let md = soak::markdown(&cfg, &rows, &verdict, &plot_rel);
        println!("\n{md}");
        report::write_block(
            &out.join("RESULTS.md"),
            &format!("soak-{}", args.label),
            &md,
        )?;
        anyhow::ensure!(verdict.pass, "the soak failed its criteria (above)");
        return Ok(());
    }
    let json = out.join(format!("results/{}.json", args.label));
    let mut results = Results::load(&json);
    let render_only = args.scenario == Scenario::Render;
    if !render_only {
        results.machine = machine();
        results.versions = versions(&ctx.paths);
        results.updated = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    }
    let steal_at_start = steal_s();
    let all = args.scenario == Scenario::All;
    if all || args.scenario == Scenario::Idle {
        let (rest, idle) = scenarios::idle(&ctx, &kinds, &args.idle_n).await?;
        results.at_rest = rest;
        results.idle = idle;
        results.save(&json)?;
    }
    if all || args.scenario == Scenario::Fanout {
        results.fanout = scenarios::fanout(&ctx, &kinds, &args.fan_n).await?;
        results.save(&json)?;
    }
    if (all || args.scenario == Scenario::Mutation) && kinds.contains(&Kind::Switchboard) {
        results.mutation = scenarios::mutation(&ctx).await?;
        results.save(&json)?;
    }
    if (all || args.scenario == Scenario::Throughput) && kinds.contains(&Kind::Switchboard) {
        results.throughput = throughput::throughput(&ctx, &kinds, &args.conc).await?;
        results.save(&json)?;
    }
    if args.scenario == Scenario::Scaleout {
        results.scaleout =
            scaleout::scaleout(&ctx, &args.scale_hubs, args.scale_conc, args.scale_subs).await?;
        results.save(&json)?;
    }
    if (all || args.scenario == Scenario::Mcp) && kinds.contains(&Kind::Switchboard) {
        results.mcp = scenarios::mcp(&ctx, args.mcp_calls).await?;
        results.save(&json)?;
    }
    if !render_only {
        results.steal_s = steal_s() - steal_at_start;
        results.save(&json)?;
    }
    let plot_rel = format!("results/{}-fanout.svg", args.label);
    let plot = if results.fanout.is_empty() {
        None
    } else {
        report::plot(&out.join(&plot_rel), &args.label, &results.fanout)?;
        Some(plot_rel.as_str())
    };
    let md = report::markdown(&args.label, &results, plot);
    println!("\n{md}");
    let results_md = out.join("RESULTS.md");
    report::write_block(&results_md, &args.label, &md)?;
    eprintln!(
        "wrote {} (block `{}`) and {}",
        results_md.display(),
        args.label,
        json.display()
    );
    Ok(())
}
