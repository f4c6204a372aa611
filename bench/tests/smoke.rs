//! The load tool against the real (debug) hub, tiny and short: every scenario runs, produces rows, loses
//! nothing, and writes its results block, JSON and plot. It checks the instrument works, not how fast anything is.

use std::path::PathBuf;
use std::process::Command;

fn switchboard() -> PathBuf {
    // Built beside this test by `cargo test --workspace` (the CLI's end-to-end tests need it too).
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_switchboard-bench"));
    let sb = exe.with_file_name("switchboard");
    assert!(
        sb.exists(),
        "{} is missing: build it with `cargo build -p switchboard`",
        sb.display()
    );
    sb
}

/// Runs the load tool with `args` (label `smoke`) against the debug hub, writing into a temp dir; returns that dir
/// and the run's results JSON.
fn run_bench(args: &[&str]) -> (tempfile::TempDir, serde_json::Value) {
    let out = tempfile::tempdir().expect("temp dir");
    let status = Command::new(env!("CARGO_BIN_EXE_switchboard-bench"))
        .args(args)
        .args(["--label", "smoke"])
        .arg("--switchboard")
        .arg(switchboard())
        .arg("--out")
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run switchboard-bench");
    assert!(status.success(), "switchboard-bench failed: {status}");
    let json = serde_json::from_slice(
        &std::fs::read(out.path().join("results/smoke.json")).expect("results json"),
    )
    .expect("valid json");
    (out, json)
}

#[test]
fn every_scenario_runs_against_switchboard_and_loses_nothing() {
    let (out, json) = run_bench(&[
        "all",
        "--peers",
        "switchboard",
        "--idle-n",
        "20",
        "--fan-n",
        "20",
        "--step-s",
        "0.3",
        "--mcp-calls",
        "5",
        "--mut-subs",
        "10",
        "--max-rate",
        "1000",
    ]);
    let rows = |k: &str| json[k].as_array().cloned().unwrap_or_default();
    assert_eq!(rows("at_rest").len(), 1);
    let idle = rows("idle");
    assert_eq!(idle.len(), 1);
    assert_eq!(idle[0]["connections"], 20);
    let fan = rows("fanout");
    assert!(!fan.is_empty(), "no fan-out rows: {json}");
    for r in &fan {
        assert_eq!(r["lost"], 0, "fan-out lost deliveries: {r}");
        assert!(r["delivered_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
        assert!(r["p99_ms"].as_f64().is_some(), "{r}");
    }
    let muts = rows("mutation");
    assert!(muts.iter().any(|r| r["mode"] == "latency"), "{json}");
    assert!(muts.iter().any(|r| r["mode"] == "durable"), "{json}");
    for r in &muts {
        assert_eq!(r["lost"], 0, "mutation events lost: {r}");
        assert_eq!(r["failed"], 0, "mutations failed: {r}");
    }
    let mcp = rows("mcp");
    assert_eq!(
        mcp.iter().filter(|r| r["calls"] == 5).count(),
        3,
        "three tools, five calls each: {json}"
    );

    let md = std::fs::read_to_string(out.path().join("RESULTS.md")).expect("RESULTS.md");
    assert!(md.contains("<!-- results:smoke -->") && md.contains("<!-- /results:smoke -->"));
    assert!(md.contains("| switchboard | 20 |"), "{md}");
    let svg = std::fs::read_to_string(out.path().join("results/smoke-fanout.svg")).expect("plot");
    assert!(svg.starts_with("<svg") || svg.contains("<svg"));
}

#[test]
fn fanout_runs_against_switchboard_over_socketio_and_pusher_and_loses_nothing() {
    // The two protocol endpoints the peers are compared on (the peers themselves need bench/peers/install.sh).
    let (_out, json) = run_bench(&[
        "fanout",
        "--peers",
        "switchboard-socketio,switchboard-pusher",
        "--fan-n",
        "20",
        "--step-s",
        "0.3",
        "--max-rate",
        "1000",
    ]);
    let fan = json["fanout"].as_array().cloned().unwrap_or_default();
    for peer in ["switchboard-socketio", "switchboard-pusher"] {
        let rows: Vec<_> = fan.iter().filter(|r| r["peer"] == peer).collect();
        assert!(!rows.is_empty(), "no fan-out rows for {peer}: {json}");
        for r in rows {
            assert_eq!(r["lost"], 0, "{peer} lost deliveries: {r}");
            assert!(r["delivered_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
        }
    }
}
