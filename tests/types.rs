//! `switchboard types` against the real binary: a fixed log (published events with missing fields, nested
//! objects, arrays and nulls, more than one page of them, and an agent created, updated and deleted over REST)
//! gives exactly `tests/fixtures/types/expected.d.ts`, twice in a row, and that output compiles with `tsc --strict`
//! together with `tests/fixtures/types/usage.ts`, which narrows on `event` and has a misuse tsc must refuse.
//!
//! After an intended change to the output, rewrite the expectation with
//! `UPDATE_EXPECT=1 cargo test -p switchboard --test types` and review its diff.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/types")
}

/// `switchboard types ARGS… --hub URL`, finding the token in the hub's data dir; its stdout.
fn types(hub: &TestHub, args: &[&str]) -> String {
    types_read(hub, args).0
}

/// `switchboard types ARGS…`: its output, and how many events it says it read (on stderr).
fn types_read(hub: &TestHub, args: &[&str]) -> (String, u64) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&hub.dir)
        .arg("types")
        .args(args)
        .arg("--hub")
        .arg(&hub.url)
        .env_remove("SWITCHBOARD_TOKEN")
        .output()
        .expect("run switchboard types");
    assert!(
        out.status.success(),
        "switchboard types {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let read = err
        .split("read ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no event count on stderr: {err}"));
    (String::from_utf8(out.stdout).expect("utf-8 output"), read)
}

/// Publishes the fixed log: a few event names whose payloads differ in which fields they have.
async fn publish_fixed_log(hub: &TestHub) {
    let c = http();
    let token = hub.token();
    let publish = async |channel: &str, event: &str, data: Value| {
        let (s, b) = call(
            c.post(format!("{}/api/events", hub.url))
                .bearer_auth(&token)
                .json(&json!({"channel": channel, "event": event, "data": data})),
        )
        .await;
        assert_eq!(s, 202, "publish {event}: {b}");
    };
    publish(
        "project:42",
        "build.started",
        json!({"id": "b1", "branch": "main", "steps": ["lint", "test"]}),
    )
    .await;
    publish(
        "project:42",
        "build.started",
        json!({"id": "b2", "branch": "dev", "steps": [], "trigger": {"kind": "push", "by": "ana"}}),
    )
    .await;
    publish(
        "project:42",
        "build.finished",
        json!({"id": "b1", "ok": true, "duration_ms": 1234, "error": null,
               "artifacts": [{"name": "app.js", "bytes": 100}]}),
    )
    .await;
    publish(
        "project:42",
        "build.finished",
        json!({"id": "b2", "ok": false, "duration_ms": 12.5, "error": "tests failed", "artifacts": [],
               "retry-of": "b0"}),
    )
    .await;
    publish(
        "global",
        "user.signed_in",
        json!({"user": {"id": 7, "name": "ana", "roles": ["admin"]}, "at": "2026-01-02T03:04:05Z"}),
    )
    .await;
    publish(
        "global",
        "user.signed_in",
        json!({"user": {"id": 8, "name": "bo", "roles": [], "email": null}}),
    )
    .await;
    // The same interface name as `user.signed_in` once in PascalCase.
    publish("global", "user.signedIn", Value::Null).await;
    publish("dev", "ping", json!(42)).await;
    publish("dev", "ping", json!("pong")).await;
    publish("dev", "ping", json!([1, "two", null, [true]])).await;
    let mut deep = json!({"bottom": true});
    for _ in 0..10 {
        deep = json!({"down": deep});
    }
    publish("dev", "deep.nest", deep).await;

    // An agent's life over REST: its events carry random ids, their types do not.
    let agent = call(
        c.post(format!("{}/api/agents", hub.url))
            .bearer_auth(&token)
            .json(&json!({"name": "planner", "config": {"secret": "s"}})),
    )
    .await;
    assert_eq!(agent.0, 201, "{}", agent.1);
    let id = agent.1["id"].as_str().expect("agent id");
    let (s, b) = call(
        c.patch(format!("{}/api/agents/{id}", hub.url))
            .bearer_auth(&token)
            .json(&json!({"status": "busy", "tags": ["x"]})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = call(
        c.delete(format!("{}/api/agents/{id}", hub.url))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(s, 204, "{b}");

    // More than one page of `GET /api/events` (at most 1000 a page).
    for n in 0..1001 {
        publish("load", "load.tick", json!({"n": n})).await;
    }
}

/// Compares `actual` with the checked-in file `name`, or rewrites it with `UPDATE_EXPECT=1`.
fn expect_file(name: &str, actual: &str) {
    let path = fixtures().join(name);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, actual).expect("write expectation");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_EXPECT=1 writes it)", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "the output differs from {} from line {}:\n--- expected\n{}\n--- actual\n{}\n\
             (after an intended change, rewrite it with UPDATE_EXPECT=1 and review the diff)",
            path.display(),
            line + 1,
            expected
                .lines()
                .skip(line)
                .take(8)
                .collect::<Vec<_>>()
                .join("\n"),
            actual
                .lines()
                .skip(line)
                .take(8)
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
}

/// Compiles `declarations` as `expected.d.ts` beside a copy of `usage.ts` with `tsc --noEmit --strict`, using the
/// TypeScript of the JS client (`clients/js`); panics with tsc's output when it does not compile.
fn compile(declarations: &str, usage: Option<&str>) {
    let tsc = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../clients/js/node_modules/typescript/bin/tsc");
    assert!(
        tsc.is_file(),
        "TypeScript is not installed at {}: run `npm ci --prefix clients/js` (scripts/test.sh does)",
        tsc.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("expected.d.ts"), declarations).expect("write d.ts");
    let mut files = vec!["expected.d.ts"];
    if let Some(usage) = usage {
        std::fs::write(dir.path().join("usage.ts"), usage).expect("write usage.ts");
        files.push("usage.ts");
    }
    let out = Command::new("node")
        .arg(&tsc)
        .args([
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
        ])
        .args(&files)
        .current_dir(dir.path())
        .output()
        .expect("run node (is Node.js installed?)");
    assert!(
        out.status.success(),
        "tsc refused the output of `switchboard types`:\n{}{}\n--- the output:\n{declarations}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn types_of_a_fixed_log_match_the_expectation_and_compile() {
    let hub = TestHub::start(&["--require-token"]);

    // An empty log: a valid file that says so.
    let empty = types(&hub, &[]);
    assert!(
        empty.contains("export type SwitchboardEvent = never;") && empty.contains("No events"),
        "{empty}"
    );
    compile(&empty, None);

    publish_fixed_log(&hub).await;

    let all = types(&hub, &[]);
    assert_eq!(all, types(&hub, &[]), "two runs over one log differ");
    expect_file("expected.d.ts", &all);
    let usage = std::fs::read_to_string(fixtures().join("usage.ts")).expect("usage.ts");
    compile(&all, Some(&usage));

    // `--channel` limits it to the channels the pattern matches; every page of them is read.
    let (load, read) = types_read(&hub, &["--channel", "load"]);
    assert_eq!(read, 1001, "every page was read");
    assert!(
        load.contains("from the events logged under 1 event name")
            && load.contains("export type EventName =\n  | \"load.tick\";"),
        "{load}"
    );
    let (agents, read) = types_read(&hub, &["--channel", "agent:*"]);
    assert_eq!(read, 3);
    assert!(
        agents.contains("from the events logged under 3 event names")
            && agents.contains("AgentDeletedEvent")
            && !agents.contains("BuildStartedEvent"),
        "{agents}"
    );
    let none = types(&hub, &["--channel", "nothing:*"]);
    assert!(
        none.contains("export type SwitchboardEvent = never;"),
        "{none}"
    );
}
