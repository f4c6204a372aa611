//! The entry point for the `mcp_args` fuzz target in `fuzz/` and for the test that replays its corpus
//! (`tests/fuzz_corpus.rs`). Not an API: hidden from the docs.
//!
//! One real hub per process (SQLite in a fresh directory) and one MCP session over an in-memory pipe, between
//! rmcp's client and [`SwitchboardMcp`]. The caller is anonymous, as on a stdio session with no HTTP request.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, JsonObject};
use rmcp::service::{RunningService, ServiceError};
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::Value;
use switchboard_core::{Hub, HubConfig};

use crate::server::{McpInfo, SwitchboardMcp};

struct Harness {
    rt: tokio::runtime::Runtime,
    client: RunningService<RoleClient, ()>,
    tools: Vec<String>,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = std::env::temp_dir().join(format!("switchboard-fuzz-mcp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (client, tools) = rt.block_on(async {
            let hub = Hub::open(HubConfig::new(&dir))
                .await
                .expect("the hub opens");
            let server = SwitchboardMcp::new(
                hub,
                Arc::new(McpInfo {
                    url: "http://127.0.0.1:0".into(),
                }),
            );
            let (a, b) = tokio::io::duplex(1 << 20);
            tokio::spawn(async move {
                if let Ok(s) = server.serve(b).await {
                    let _ = s.waiting().await;
                }
            });
            let client = ().serve(a).await.expect("the MCP session initializes");
            let mut tools: Vec<String> = client
                .list_all_tools()
                .await
                .expect("tools/list")
                .into_iter()
                .map(|t| t.name.to_string())
                .collect();
            tools.sort();
            (client, tools)
        });
        Harness { rt, client, tools }
    })
}

/// A tool call: the first byte chooses the tool, the rest is its arguments (a JSON object). A wait's
/// `timeout_s`, when absent or valid, becomes 1 s so one input cannot hold the fuzzer for minutes; a wrong one is
/// left for the tool to refuse.
///
/// Invariants: the session survives every call; a call fails only as invalid params, as rmcp's own refusal of
/// arguments that do not fit the tool's input, or as a tool error in the `{"error":{"code","message"}}` shape,
/// never an internal one.
pub fn tool_call(data: &[u8]) {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let Ok(mut args) = serde_json::from_slice::<JsonObject>(rest) else {
        return;
    };
    let h = harness();
    let tool = h.tools[usize::from(op) % h.tools.len()].clone();
    if tool == "wait_for_event" || tool == "ask_user" {
        let valid = match args.get("timeout_s") {
            None => true,
            Some(v) => v.as_u64().is_some_and(|s| s >= 1),
        };
        if valid {
            args.insert("timeout_s".into(), Value::from(1));
        }
    }
    let call = h
        .client
        .call_tool(CallToolRequestParams::new(tool.clone()).with_arguments(args));
    let result =
        h.rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), call).await })
            .unwrap_or_else(|_| panic!("{tool} did not answer"));
    match result {
        Ok(r) if r.is_error == Some(true) => {
            let text = r
                .content
                .first()
                .and_then(|c| c.as_text())
                .map(|t| t.text.clone())
                .unwrap_or_default();
            // Arguments that do not fit the tool's input are refused by rmcp before the tool runs, in its words
            // (docs/mcp.md).
            if text.starts_with("failed to deserialize parameters: ") {
                return;
            }
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{tool}: a tool error that is not JSON ({e}): {text}"));
            assert!(v["error"]["code"].is_string(), "{tool}: {v}");
            assert_ne!(v["error"]["code"], "internal", "{tool}: {v}");
        }
        Ok(_) => {}
        Err(ServiceError::McpError(e)) => assert_eq!(
            e.code,
            rmcp::model::ErrorCode::INVALID_PARAMS,
            "{tool}: {e:?}"
        ),
        Err(e) => panic!("{tool}: the session failed: {e}"),
    }
}
