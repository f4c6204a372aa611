//! Clients not written in Rust against the real binary: Node's `ws`, `eventsource`, `socket.io-client`,
//! `pusher-js`, the `pusher` server SDK and the MCP TypeScript SDK (tests/js), the MCP Inspector's CLI
//! (tests/inspector), and the Python `mcp` SDK (tests/py); the hub's own JS client package (clients/js: its
//! node:test suite under Node and Deno, type checks and build check); and the example app built on it
//! (examples/agent-zoo), in headless Chromium.
//! The test command installs them; these tests run them with the binary's path.

mod common;

use std::path::Path;
use std::process::Command;

/// Runs `program args` in `dir` with the hub binary's path, under a 300 s `timeout` (a hung client fails the test
/// instead of the whole CI run); prints its output and fails the test with it unless it exits 0.
fn run(dir: &Path, program: &str, args: &[&str], what: &str) {
    let out = Command::new("timeout")
        .arg("300")
        .arg(program)
        .args(args)
        .current_dir(dir)
        .env("SWITCHBOARD_BIN", common::BIN)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{what} failed:\n{text}");
}

#[test]
fn node_clients() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/js");
    let packages = [
        "ws",
        "eventsource",
        "socket.io-client",
        "pusher-js",
        "pusher",
        "@modelcontextprotocol/sdk",
    ];
    // non-empty: the list is written just above
    assert!(
        packages
            .iter()
            .all(|p| js.join("node_modules").join(p).is_dir()),
        "Node packages missing: run the test command (scripts/test.sh), or `npm ci --prefix tests/js`"
    );
    run(
        &js,
        "node",
        &["--test", "--test-reporter=spec"],
        "the Node client tests",
    );
}

/// Chaos, the short version (the full one, 1 000 clients over 20 cycles: docs/guarantees.md): the hub SIGKILLed
/// and restarted 5 times under REST and WebSocket writers, with 200 clients on WebSocket (the hub's own client, and
/// a bare one written like the README's snippet), SSE (`eventsource`), Socket.IO and Pusher resuming as their
/// libraries do; the bare WebSocket, SSE and Socket.IO clients follow three channels and `global` and keep only the
/// highest seq they saw. tests/js/chaos.mjs counts gaps, duplicates, events out of order (over all of a client's
/// channels) and lost acknowledged writes against the log, and exits 1 unless all are zero.
#[test]
fn sigkill_restart_loops_under_mixed_load_lose_and_repeat_nothing() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/js");
    assert!(
        js.join("node_modules/pusher-js").is_dir(),
        "Node packages missing: run the test command (scripts/test.sh), or `npm ci --prefix tests/js`"
    );
    run(
        &js,
        "node",
        &[
            "chaos.mjs",
            "--clients",
            "200",
            "--cycles",
            "5",
            "--settle",
            "90",
        ],
        "the chaos run",
    );
}

#[test]
fn mcp_inspector_cli() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/inspector");
    let modules = dir.join("node_modules");
    assert!(
        modules.join("@modelcontextprotocol/inspector").is_dir()
            && modules.join("node/bin/node").is_file(),
        "the MCP Inspector or its Node 22 is missing: run the test command (scripts/test.sh), or `npm ci --prefix tests/inspector`"
    );
    // The test file runs the Inspector under tests/inspector's own Node 22, over stdio and Streamable HTTP.
    run(
        &dir,
        "node",
        &["--test", "--test-reporter=spec"],
        "the MCP Inspector CLI tests",
    );
}

#[test]
fn the_js_client_package() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/js");
    assert!(
        dir.join("node_modules/typescript").is_dir(),
        "clients/js packages missing: run the test command (scripts/test.sh), or `npm ci --prefix clients/js`"
    );
    run(
        &dir,
        "node",
        &["--test", "--test-reporter=spec"],
        "the clients/js tests",
    );
}

#[test]
fn the_example_app_in_a_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agent-zoo");
    assert!(
        dir.join("node_modules/vite").is_dir(),
        "examples/agent-zoo packages missing: run the test command (scripts/test.sh), or `npm ci --prefix examples/agent-zoo`"
    );
    // Builds the app (tsc --noEmit, vite build), then drives it in headless Chromium.
    run(
        &dir,
        "npm",
        &["test", "--silent"],
        "the example app's browser tests",
    );
}

#[test]
fn python_mcp_sdk_over_stdio_and_http() {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/py");
    let python = py.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "Python venv missing: run the test command (scripts/test.sh)"
    );
    run(
        &py,
        &python.display().to_string(),
        &["-m", "pytest", "-q", "-p", "no:cacheprovider", "."],
        "the Python MCP SDK tests",
    );
}
