//! Clients not written in Rust against the real binary: Node's `ws`, `eventsource`, `socket.io-client`,
//! `pusher-js`, the `pusher` server SDK and the MCP TypeScript SDK (tests/js), and the Python `mcp` SDK
//! (tests/py); and the hub's own JS client package (clients/js: its node:test suite, type check and build check).
//! The test command installs them; these tests run them with the binary's path.

mod common;

use std::process::Command;

#[test]
fn node_clients() {
    let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/js");
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
    // coreutils `timeout`: a hung client fails the test instead of the whole CI run.
    let out = Command::new("timeout")
        .args(["300", "node"])
        .arg("--test")
        .arg("--test-reporter=spec")
        .current_dir(&js)
        .env("SWITCHBOARD_BIN", common::BIN)
        .output()
        .expect("node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "node tests failed:\n{text}");
}

#[test]
fn the_js_client_package() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/js");
    assert!(
        dir.join("node_modules/typescript").is_dir(),
        "clients/js packages missing: run the test command (scripts/test.sh), or `npm ci --prefix clients/js`"
    );
    let out = Command::new("timeout")
        .args(["300", "node", "--test", "--test-reporter=spec"])
        .current_dir(&dir)
        .env("SWITCHBOARD_BIN", common::BIN)
        .output()
        .expect("node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "clients/js tests failed:\n{text}");
}

#[test]
fn python_mcp_sdk_over_stdio_and_http() {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/py");
    let python = py.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "Python venv missing: run the test command (scripts/test.sh)"
    );
    let out = Command::new("timeout")
        .arg("300")
        .arg(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "."])
        .current_dir(&py)
        .env("SWITCHBOARD_BIN", common::BIN)
        .output()
        .expect("python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "the Python MCP SDK tests failed:\n{text}"
    );
}
