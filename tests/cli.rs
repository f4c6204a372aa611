//! The `switchboard` command line: config precedence (flag > env > file > default), the refusal to bind off
//! loopback without a token, and the shell clients `publish`, `agents …` and `tail`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn port_of(hub: &TestHub) -> u16 {
    hub.addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn config_precedence_is_flag_env_file_default() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (p_file, p_env, p_flag) = (free_port(), free_port(), free_port());
    std::fs::write(
        dir.join("switchboard.toml"),
        format!("port = {p_file}\nrate-limit = 1000\n"),
    )
    .unwrap();

    let hub = TestHub::launch(dir, &[], &[]);
    assert_eq!(port_of(&hub), p_file, "file over default");
    drop(hub);
    let env_port = p_env.to_string();
    let hub = TestHub::launch(dir, &[], &[("SWITCHBOARD_PORT", &env_port)]);
    assert_eq!(port_of(&hub), p_env, "env over file");
    drop(hub);
    let flag_port = p_flag.to_string();
    let hub = TestHub::launch(
        dir,
        &["--port", &flag_port],
        &[("SWITCHBOARD_PORT", &env_port)],
    );
    assert_eq!(port_of(&hub), p_flag, "flag over env");
    drop(hub);

    std::fs::write(dir.join("switchboard.toml"), "prot = 1\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("prot"),
        "a typo in the file is reported"
    );
}

#[test]
fn non_loopback_bind_without_token_is_refused_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--bind", "0.0.0.0", "--port", "0", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--require-token") && err.contains("0.0.0.0"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing listened");
}

/// One hub per data dir (SPEC §1): a second `serve` there exits 2 naming the first (its pid and URL) and changes
/// nothing; the first keeps serving, and the client commands, given only the data dir, find it through the lock.
#[tokio::test]
async fn a_second_hub_on_a_live_data_dir_exits_2_and_clients_attach_to_the_first() {
    let hub = TestHub::start(&[]);
    let out = Command::new(BIN)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&hub.dir)
        .args(store_args(&hub.dir))
        .env_remove("SWITCHBOARD_PORT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "data dir {} is already in use by the hub pid {} at {}",
        hub.dir.display(),
        hub.pid(),
        hub.url
    );
    assert!(err.contains(&want), "{err}");
    assert!(out.stdout.is_empty(), "it never listened: {out:?}");
    // No --hub: the lock file says where the hub of this data dir listens (a random port here).
    let client = |args: &[&str]| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&hub.dir)
            .args(args)
            .env_remove("SWITCHBOARD_URL")
            .env_remove("SWITCHBOARD_TOKEN")
            .output()
            .unwrap()
    };
    let out = client(&["publish", "dev", "still.here", "{}"]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["seq"], 1, "the first hub took it");
    let out = client(&["agents", "create", r#"{"name":"found"}"#]);
    assert!(out.status.success(), "{out:?}");
    let (s, v) = call(http().get(format!("{}/health", hub.url))).await;
    assert_eq!((s, &v["last_seq"]), (200, &Value::from(2)), "{v}");
}

fn cli(hub: &TestHub, args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&hub.dir)
        .args(args)
        .arg("--hub")
        .arg(&hub.url)
        .env_remove("SWITCHBOARD_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn shell_clients_publish_agents_and_tail() {
    // Token mode: the clients find the token in the data dir.
    let hub = TestHub::start(&["--require-token"]);
    let (ok, v, err) = cli(&hub, &["publish", "dev", "build.done", r#"{"ok":true}"#]);
    assert!(ok, "{err}");
    assert_eq!(v["seq"], 1);

    let (ok, a, err) = cli(
        &hub,
        &["agents", "create", r#"{"name":"planner","tags":["x"]}"#],
    );
    assert!(ok, "{err}");
    let id = a["id"].as_str().unwrap().to_owned();
    let (ok, a, _) = cli(
        &hub,
        &[
            "agents",
            "update",
            &id,
            r#"{"status":"busy"}"#,
            "--expected-version",
            "1",
        ],
    );
    assert!(ok);
    assert_eq!(a["version"], 2);
    let (ok, _, err) = cli(
        &hub,
        &[
            "agents",
            "update",
            &id,
            r#"{"status":"idle"}"#,
            "--expected-version",
            "1",
        ],
    );
    assert!(
        !ok && err.contains("412") && err.contains("version_conflict"),
        "{err}"
    );
    let (ok, list, _) = cli(&hub, &["agents", "list", "--status", "busy"]);
    assert!(ok);
    assert_eq!(list["agents"][0]["id"], id.as_str());
    let (ok, got, _) = cli(&hub, &["agents", "get", &id]);
    assert!(ok && got["status"] == "busy");
    let (ok, _, err) = cli(&hub, &["agents", "create", "{not json"]);
    assert!(!ok && err.contains("not valid JSON"), "{err}");

    // tail --json replays from --since and goes live; SIGINT ends it cleanly.
    let mut tail = Command::new(BIN)
        .arg("--data-dir")
        .arg(&hub.dir)
        .args(["tail", "--json", "--since", "0", "--hub", &hub.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let env: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert!(
            env.get("type").is_none() && env["channel"].is_string() && env["ts"].is_string(),
            "{env}"
        );
        seqs.push(env["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, [1, 2, 3]);
    let (ok, _, _) = cli(&hub, &["agents", "delete", &id]);
    assert!(ok);
    let env: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        (env["seq"].as_u64(), env["event"].as_str()),
        (Some(4), Some("agent.deleted"))
    );
    signal(tail.id(), "INT");
    assert!(wait_timeout(&mut tail, Duration::from_secs(10)).success());

    // With no hub at the address: a clear error, not a hang.
    let out = Command::new(BIN)
        .args(["agents", "list", "--hub", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no hub answers"));
}

#[test]
fn ide_prints_the_same_config_as_the_hub_serves() {
    let hub = TestHub::start(&[]);
    let token = hub.token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for ide in ["claude", "cursor", "vscode"] {
        for over_http in [false, true] {
            let mut args = vec!["ide", ide, "--hub", hub.url.as_str()];
            if over_http {
                args.push("--http");
            }
            let out = Command::new(BIN)
                .arg("--data-dir")
                .arg(&hub.dir)
                .args(&args)
                .output()
                .unwrap();
            assert!(out.status.success());
            let printed = String::from_utf8(out.stdout).unwrap();
            let url = format!(
                "{}/api/ide/{ide}{}",
                hub.url,
                if over_http { "?http=1" } else { "" }
            );
            // The token is handed only to callers that present it (SPEC §10); `switchboard ide` reads it itself.
            let (status, served) = rt.block_on(call(http().get(&url).bearer_auth(&token)));
            assert_eq!(status, 200);
            let (_, anonymous) = rt.block_on(call(http().get(&url)));
            assert!(
                !anonymous["text"].as_str().unwrap().contains(&token),
                "{anonymous}"
            );
            assert_eq!(
                printed.trim_end(),
                served["text"].as_str().unwrap(),
                "{ide} http={over_http}"
            );
            assert_eq!(
                served["transport"],
                if over_http { "http" } else { "stdio" }
            );
            if over_http {
                assert!(
                    printed.contains(&format!("{}/mcp", hub.url)) && printed.contains(&token),
                    "{printed}"
                );
            } else {
                assert!(
                    printed.contains("mcp")
                        && printed.contains("--hub")
                        && !printed.contains(&token),
                    "{printed}"
                );
            }
        }
    }
    let vscode: Value = serde_json::from_str(
        &String::from_utf8(
            Command::new(BIN)
                .arg("--data-dir")
                .arg(&hub.dir)
                .args(["ide", "vscode", "--hub", &hub.url])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        vscode["servers"]["switchboard"]["type"], "stdio",
        ".vscode/mcp.json's top-level key is servers"
    );
    let (status, body) = rt.block_on(call(http().get(format!("{}/api/ide/emacs", hub.url))));
    assert_eq!((status, error_code(&body).as_str()), (404, "not_found"));
    let out = Command::new(BIN).args(["ide", "emacs"]).output().unwrap();
    assert!(!out.status.success());
}
