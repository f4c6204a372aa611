//! The file watcher (SPEC §9) on real temp directories, against the real binary: create, modify, delete and
//! rename; ignored paths (`.git`, `node_modules`, a `.gitignore` rule); a burst of writes debounced; a root that
//! is deleted; roots added and removed over `/api/watches`, kept across a restart, and the owner's alone.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The events on `files` until nothing arrives for `quiet`, as `(event, path)` with the data.
async fn drain(ws: &mut Ws, quiet: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(quiet, ws.next()).await {
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "event" {
                out.push(v);
            }
        }
    }
    out
}

fn names(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["data"]["path"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn files_ws(hub: &TestHub) -> Ws {
    let mut ws = ws_connect(&hub.ws_url("/ws?channels=files")).await;
    next_of_type(&mut ws, "connected", Duration::from_secs(5)).await;
    ws
}

const QUIET: Duration = Duration::from_millis(900);

#[tokio::test]
async fn create_modify_delete_rename_and_ignores() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    fs::create_dir_all(root.join(".git")).unwrap();
    fs::create_dir_all(root.join("node_modules/pkg")).unwrap();
    fs::write(root.join(".gitignore"), "*.log\nbuild/\n").unwrap();
    let hub = TestHub::start(&["--watch", root.to_str().unwrap()]);
    let mut ws = files_ws(&hub).await;

    fs::write(root.join("a.txt"), "one").unwrap();
    let got = drain(&mut ws, QUIET).await;
    assert_eq!(names(&got), [("file.created".into(), "a.txt".into())]);
    let d = &got[0]["data"];
    assert_eq!(
        (d["root"].as_str(), d["kind"].as_str()),
        (root.to_str(), Some("file"))
    );
    assert_eq!(got[0]["source"], "watcher");
    assert_eq!(got[0]["channel"], "files");

    fs::write(root.join("a.txt"), "two").unwrap();
    assert_eq!(
        names(&drain(&mut ws, QUIET).await),
        [("file.changed".into(), "a.txt".into())]
    );

    fs::rename(root.join("a.txt"), root.join("b.txt")).unwrap();
    let got = drain(&mut ws, QUIET).await;
    assert_eq!(
        names(&got),
        [
            ("file.removed".into(), "a.txt".into()),
            ("file.created".into(), "b.txt".into())
        ]
    );
    assert_eq!(got[0]["data"]["renamed_to"], "b.txt");
    assert_eq!(got[1]["data"]["renamed_from"], "a.txt");

    fs::remove_file(root.join("b.txt")).unwrap();
    assert_eq!(
        names(&drain(&mut ws, QUIET).await),
        [("file.removed".into(), "b.txt".into())]
    );

    // A new directory is watched as it appears; what is already in it is reported.
    fs::create_dir_all(root.join("src/deep")).unwrap();
    fs::write(root.join("src/deep/x.rs"), "fn main() {}").unwrap();
    let mut got = names(&drain(&mut ws, QUIET).await);
    got.sort();
    assert_eq!(
        got,
        [
            ("file.created".into(), "src".into()),
            ("file.created".into(), "src/deep".into()),
            ("file.created".into(), "src/deep/x.rs".into())
        ]
    );
    fs::write(root.join("src/deep/x.rs"), "fn main() { }").unwrap();
    assert_eq!(
        names(&drain(&mut ws, QUIET).await),
        [("file.changed".into(), "src/deep/x.rs".into())]
    );

    // Ignored: .git, node_modules, and the .gitignore's rules (a pattern and a directory).
    fs::write(root.join(".git/HEAD"), "ref").unwrap();
    fs::write(root.join("node_modules/pkg/index.js"), "x").unwrap();
    fs::write(root.join("debug.log"), "x").unwrap();
    fs::create_dir_all(root.join("build")).unwrap();
    fs::write(root.join("build/out.bin"), "x").unwrap();
    fs::write(root.join("kept.md"), "x").unwrap();
    assert_eq!(
        names(&drain(&mut ws, QUIET).await),
        [("file.created".into(), "kept.md".into())]
    );
    // The .gitignore is read again when it changes.
    fs::write(root.join(".gitignore"), "*.log\nbuild/\n*.md\n").unwrap();
    assert_eq!(
        names(&drain(&mut ws, QUIET).await),
        [("file.changed".into(), ".gitignore".into())]
    );
    fs::write(root.join("kept.md"), "y").unwrap();
    assert_eq!(
        names(&drain(&mut ws, QUIET).await),
        Vec::<(String, String)>::new()
    );
}

#[tokio::test]
async fn a_burst_of_writes_is_a_few_events_and_a_deleted_root_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap().join("proj");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("hot.txt"), "0").unwrap();
    let hub = TestHub::start(&["--watch", root.to_str().unwrap()]);
    let mut ws = files_ws(&hub).await;

    for i in 0..100 {
        fs::write(root.join("hot.txt"), format!("{i}")).unwrap();
    }
    let got = drain(&mut ws, QUIET).await;
    assert!(
        !got.is_empty() && got.len() <= 3,
        "100 writes gave {:?}",
        names(&got)
    );
    // non-empty: checked just above
    assert!(got.iter().all(|e| e["data"]["path"] == "hot.txt"));

    fs::remove_dir_all(&root).unwrap();
    let got = drain(&mut ws, QUIET).await;
    let last = got.last().expect("events after deleting the root");
    assert_eq!(last["event"], "watch.error", "{got:?}");
    assert_eq!(last["data"]["root"], root.to_str().unwrap());
    // The hub is fine, and says so.
    let c = http();
    let (s, w) = call(
        c.get(format!("{}/api/watches", hub.url))
            .bearer_auth(hub.token()),
    )
    .await;
    assert_eq!(s, 200);
    assert!(w["watches"][0]["error"].is_string(), "{w}");
    let (s, _) = call(c.get(format!("{}/health", hub.url))).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn roots_over_the_api_are_the_owners_and_outlive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut hub = TestHub::start_in(data.path(), &[]);
    let c = http();
    let u = hub.url.clone();
    let token = hub.token();
    let body = json!({"path": root});

    // Anonymous (no token, not the hub's window): 403, nothing added.
    let (s, b) = call(c.post(format!("{u}/api/watches")).json(&body)).await;
    assert_eq!((s, error_code(&b)), (403, "forbidden".into()));
    let (s, _) = call(c.get(format!("{u}/api/watches"))).await;
    assert_eq!(s, 403);

    // Not a directory: 422 naming path.
    let (s, b) = call(
        c.post(format!("{u}/api/watches"))
            .bearer_auth(&token)
            .json(&json!({"path": root.join("nope")})),
    )
    .await;
    assert_eq!((s, error_code(&b)), (422, "invalid_field".into()));
    assert!(b["error"]["message"].as_str().unwrap().starts_with("path:"));

    let mut ws = files_ws(&hub).await;
    let (s, b) = call(
        c.post(format!("{u}/api/watches"))
            .bearer_auth(&token)
            .json(&body),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["root"], root.to_str().unwrap());
    let (s, _) = call(
        c.post(format!("{u}/api/watches"))
            .bearer_auth(&token)
            .json(&body),
    )
    .await;
    assert_eq!(s, 200, "already watched");
    let got = drain(&mut ws, QUIET).await;
    assert_eq!(
        got.iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["watch.added"]
    );

    // Kept across a restart.
    hub.terminate();
    let hub = TestHub::start_in(data.path(), &[]);
    let (s, w) = call(
        c.get(format!("{}/api/watches", hub.url))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(w["watches"], json!([{"root": root, "pinned": false}]));
    let mut ws = files_ws(&hub).await;
    fs::write(root.join("after-restart.txt"), "x").unwrap();
    assert_eq!(
        names(&drain(&mut ws, QUIET).await),
        [("file.created".into(), "after-restart.txt".into())]
    );

    // Removed: 204, watch.removed, no more file events; a second removal is 404.
    let del = |p: &Path| {
        c.delete(format!("{}/api/watches", hub.url))
            .query(&[("path", p.to_str().unwrap())])
            .bearer_auth(&token)
    };
    let (s, _) = call(del(&root)).await;
    assert_eq!(s, 204);
    fs::write(root.join("unwatched.txt"), "x").unwrap();
    let got = drain(&mut ws, QUIET).await;
    assert_eq!(
        got.iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["watch.removed"]
    );
    let (s, _) = call(del(&root)).await;
    assert_eq!(s, 404);
    let (_, w) = call(
        c.get(format!("{}/api/watches", hub.url))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(w["watches"], json!([]));
}
