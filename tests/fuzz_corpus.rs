//! Replays every committed fuzz input through its target, on stable, in CI: the corpora the fuzzers grew
//! (`fuzz/corpus/<target>/`) and the inputs that once crashed one (`fuzz/regressions/<target>/`). The targets are
//! the `fuzz` modules of the core, the server and the MCP server, the same functions `fuzz/fuzz_targets/` run
//! under libFuzzer; each checks the invariants it names, against a real hub. How to fuzz: docs/guarantees.md.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every committed input of `target`, named for the failure message.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = root().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let data = std::fs::read(&path).expect("a corpus file");
            out.push((path, data));
        }
    }
    out.sort();
    out
}

fn replay(target: &str, run: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(
        inputs.len() >= 5,
        "fuzz/corpus/{target} has {} inputs; its seeds are committed",
        inputs.len()
    );
    for (path, data) in &inputs {
        let caught = std::panic::catch_unwind(|| run(data));
        assert!(
            caught.is_ok(),
            "{target} fails on {} ({} bytes)",
            path.display(),
            data.len()
        );
    }
}

#[test]
fn ws_frame() {
    replay("ws_frame", switchboard_server::fuzz::ws_frame);
}

#[test]
fn sse_query() {
    replay("sse_query", switchboard_server::fuzz::sse_query);
}

#[test]
fn rest() {
    replay("rest", switchboard_server::fuzz::rest);
}

#[test]
fn merge_patch() {
    replay("merge_patch", switchboard_core::fuzz::merge_patch);
}

#[test]
fn jwt() {
    replay("jwt", switchboard_core::fuzz::jwt);
}

#[test]
fn channel() {
    replay("channel", switchboard_core::fuzz::channel);
}

#[test]
fn pusher_frame() {
    replay("pusher_frame", switchboard_server::fuzz::pusher_frame);
}

#[test]
fn pusher_api() {
    replay("pusher_api", switchboard_server::fuzz::pusher_api);
}

#[test]
fn socketio() {
    replay("socketio", switchboard_server::fuzz::socketio);
}

#[test]
fn github() {
    replay("github", switchboard_server::fuzz::github);
}

#[test]
fn mcp_args() {
    replay("mcp_args", switchboard_mcp::fuzz::tool_call);
}
