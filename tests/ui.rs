//! The window (`ui/`, served by the hub at `/`) in headless Debian Chromium: tests/ui/ui.test.mjs drives it with
//! playwright-core while this test holds an MCP `ask_user` call open, which the window must answer. A second hub
//! that nothing publishes to shows the window's empty state.

mod common;

use std::time::Duration;

use common::*;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn window_in_headless_chromium() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/ui");
    assert!(
        dir.join("node_modules/playwright-core").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium or playwright-core missing: run the test command (scripts/test.sh)"
    );
    let hub = TestHub::start(&[]);
    let empty = TestHub::start(&[]);

    // An IDE agent asks; the window answers.
    let mcp = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "{}/mcp",
            hub.url
        )))
        .await
        .unwrap();
    let asking = |a: serde_json::Value| {
        let peer = mcp.peer().clone();
        tokio::spawn(async move {
            peer.call_tool(
                CallToolRequestParams::new("ask_user")
                    .with_arguments(a.as_object().cloned().unwrap()),
            )
            .await
        })
    };
    let ask = asking(json!({"question": "Which database?", "timeout_s": 120}));
    // And one with choices: buttons in the window.
    let choose =
        asking(json!({"question": "Which cache?", "options": ["Redis", "None"], "timeout_s": 120}));

    let pending = async {
        loop {
            let (_, q) = call(http().get(format!("{}/api/questions", hub.url))).await;
            if q["questions"].as_array().is_some_and(|a| a.len() == 2) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .is_err()
    {
        panic!("ask_user never asked: {:?} {:?}", ask.await, choose.await);
    }

    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui");
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new("node")
            .args(["--test", "--test-reporter=spec", "ui.test.mjs"])
            .current_dir(&dir)
            .env("HUB_URL", &hub.url)
            .env("HUB_TOKEN", hub.token())
            .env("EMPTY_HUB_URL", &empty.url)
            .env("ARTIFACTS", &artifacts)
            .output(),
    )
    .await
    .expect("the browser tests took over 4 minutes")
    .expect("node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "browser tests failed:\n{text}");

    let r = tokio::time::timeout(Duration::from_secs(10), ask)
        .await
        .expect("ask_user did not return")
        .unwrap()
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert_eq!(
        r.structured_content.unwrap(),
        json!({"answer": "Postgres, from the window", "answered_by": "rest"})
    );
    let r = tokio::time::timeout(Duration::from_secs(10), choose)
        .await
        .expect("ask_user with options did not return")
        .unwrap()
        .unwrap();
    assert_eq!(
        r.structured_content.unwrap(),
        json!({"answer": "Redis", "answered_by": "rest"})
    );
    assert!(
        artifacts.join("window.png").is_file(),
        "the screenshot artifact is saved"
    );
    println!("screenshots in {}", artifacts.display());
    mcp.cancel().await.unwrap();
}
