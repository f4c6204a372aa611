//! `switchboard doctor` against the real binary: each check healthy and broken. The hub up, down, or its port held
//! by another program; the token file private or readable by others; the database sound or corrupt; IDE configs
//! present and runnable, missing, or pointing at a binary that is not there; a PostgreSQL store named without its
//! password. `--json` and the exit status too.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// A project dir and a home dir for the IDE configs, both empty.
struct Places {
    project: tempfile::TempDir,
    home: tempfile::TempDir,
}

fn places() -> Places {
    Places {
        project: tempfile::tempdir().unwrap(),
        home: tempfile::tempdir().unwrap(),
    }
}

/// Runs `switchboard --data-dir DIR doctor --json --hub URL` in the project dir with HOME set; returns the exit
/// code and the checks.
fn doctor(data_dir: &Path, hub_url: &str, p: &Places) -> (i32, Vec<Value>) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["doctor", "--json", "--hub", hub_url])
        .current_dir(p.project.path())
        .env("HOME", p.home.path())
        .env_remove("SWITCHBOARD_URL")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}): {out:?}"));
    assert_eq!(v["ok"], out.status.success(), "{v}");
    (
        out.status.code().unwrap(),
        v["checks"].as_array().unwrap().clone(),
    )
}

/// The one check named `name` (panics if there are several or none).
fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = checks.iter().filter(|c| c["check"] == name).collect();
    assert_eq!(found.len(), 1, "{name}: {checks:?}");
    found[0]
}

fn write(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// What `switchboard ide cursor` prints for this hub: a stdio config running this very binary.
fn cursor_config(hub: &TestHub) -> Value {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&hub.dir)
        .args(["ide", "cursor", "--hub", &hub.url])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_healthy_setup_passes_every_check() {
    let hub = TestHub::start(&[]);
    let p = places();
    write(
        &p.project.path().join(".cursor/mcp.json"),
        &cursor_config(&hub),
    );
    // A user-level Claude Code config over HTTP, and an unrelated server beside it.
    write(
        &p.home.path().join(".claude.json"),
        &json!({"mcpServers": {
            "switchboard": {"type": "http", "url": format!("{}/mcp", hub.url)},
            "other": {"command": "other-server"}
        }}),
    );
    let (code, checks) = doctor(&hub.dir, &hub.url, &p);
    assert_eq!(code, 0, "{checks:#?}");
    for name in ["hub", "data dir", "token", "database"] {
        assert_eq!(
            check(&checks, name)["status"],
            "pass",
            "{name}: {checks:#?}"
        );
    }
    let ides: Vec<&Value> = checks.iter().filter(|c| c["check"] == "ide").collect();
    let passed = ides.iter().filter(|c| c["status"] == "pass").count();
    assert_eq!((ides.len(), passed), (2, 2), "{ides:?}");
    assert!(
        check(&checks, "hub")["detail"]
            .as_str()
            .unwrap()
            .contains(switchboard_core::VERSION)
    );

    // The same for people: a ✓ line per check, exit status 0.
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&hub.dir)
        .args(["doctor", "--hub", &hub.url])
        .current_dir(p.project.path())
        .env("HOME", p.home.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with('✓')).count(),
        6,
        "{text}"
    );
    assert!(!text.contains('✗'), "{text}");
}

#[test]
fn a_hub_that_is_down_or_a_port_held_by_another_program_fails() {
    let hub = TestHub::start(&[]);
    let p = places();
    write(
        &p.project.path().join(".cursor/mcp.json"),
        &cursor_config(&hub),
    );
    // Nothing listens here.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, checks) = doctor(&hub.dir, &down, &p);
    assert_eq!(code, 1);
    let c = check(&checks, "hub");
    assert_eq!(c["status"], "fail");
    assert!(
        c["detail"].as_str().unwrap().contains("no hub answers"),
        "{c}"
    );
    assert!(
        c["fix"].as_str().unwrap().contains("switchboard serve"),
        "{c}"
    );

    // Another program on the port: it answers HTTP, but not as a hub.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", other.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in other.incoming().flatten().take(4) {
            let mut s = s;
            let _ = s.read(&mut [0; 4096]);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            );
        }
    });
    let (code, checks) = doctor(&hub.dir, &url, &p);
    assert_eq!(code, 1);
    let c = check(&checks, "hub");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("held by another program"),
        "{c}"
    );
    assert!(c["fix"].as_str().unwrap().contains("--port"), "{c}");
}

#[cfg(unix)]
#[test]
fn a_token_file_others_can_read_fails() {
    use std::os::unix::fs::PermissionsExt;
    let hub = TestHub::start(&[]);
    let p = places();
    let token = hub.dir.join("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, checks) = doctor(&hub.dir, &hub.url, &p);
    assert_eq!(code, 1);
    let c = check(&checks, "token");
    assert_eq!(c["status"], "fail");
    assert!(
        c["detail"].as_str().unwrap().contains("readable by others"),
        "{c}"
    );
    assert_eq!(c["fix"], format!("chmod 600 {}", token.display()));
}

#[test]
fn a_corrupt_database_fails_its_integrity_check() {
    let p = places();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("switchboard.db"), vec![b'x'; 8192]).unwrap();
    let (code, checks) = doctor(dir.path(), "http://127.0.0.1:9", &p);
    assert_eq!(code, 1);
    let c = check(&checks, "database");
    assert_eq!(c["status"], "fail");
    assert!(c["detail"].as_str().unwrap().contains("integrity"), "{c}");
    assert!(c["fix"].as_str().unwrap().contains("backup"), "{c}");
}

#[test]
fn a_postgres_store_is_named_without_its_password_and_not_checked_as_a_file() {
    let p = places();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("switchboard.toml"),
        "store = \"postgres://sb:s3cret@db.invalid:5432/hub\"\n",
    )
    .unwrap();
    let (_, checks) = doctor(dir.path(), "http://127.0.0.1:9", &p);
    let c = check(&checks, "database");
    assert_eq!(c["status"], "info", "{c}");
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail.contains("postgres://sb:***@db.invalid:5432/hub"),
        "{c}"
    );
    assert!(
        !c.to_string().contains("s3cret"),
        "the password is never shown: {c}"
    );
}

#[test]
fn ide_configs_that_are_missing_or_point_at_a_missing_binary_fail() {
    let hub = TestHub::start(&[]);
    let p = places();
    let (code, checks) = doctor(&hub.dir, &hub.url, &p);
    assert_eq!(code, 1, "no IDE config at all");
    let c = check(&checks, "ide");
    assert!(
        c["detail"].as_str().unwrap().contains("no IDE is set up"),
        "{c}"
    );
    assert!(
        c["fix"].as_str().unwrap().contains("switchboard ide"),
        "{c}"
    );

    // VS Code's project file (with a comment, as VS Code allows) runs a switchboard that is not there.
    let vscode = p.project.path().join(".vscode/mcp.json");
    std::fs::create_dir_all(vscode.parent().unwrap()).unwrap();
    std::fs::write(
        &vscode,
        r#"{
  // Switchboard, from an old checkout
  "servers": {"switchboard": {"type": "stdio", "command": "/no/such/dir/switchboard", "args": ["mcp"]}}
}"#,
    )
    .unwrap();
    let (code, checks) = doctor(&hub.dir, &hub.url, &p);
    assert_eq!(code, 1);
    let c = check(&checks, "ide");
    assert_eq!(c["status"], "fail");
    assert!(
        c["detail"].as_str().unwrap().contains("does not exist"),
        "{c}"
    );
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains("switchboard ide vscode"),
        "{c}"
    );
}
