//! `switchboard doctor`: one place to look when something is wrong. Each check says ✓ or ✗ (or · for a finding
//! that is neither) and, when it fails, the fix to apply: the hub at the configured URL, the data dir and the token
//! file's mode, the database's integrity, and every IDE config that runs or points at Switchboard. `--json` gives the
//! same results to tools; the exit status is 1 when any check fails.
//!
//! One file past 500 lines: each check is a short function of the same shape, and the list of them is the module.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use switchboard_core::StoreConfig;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// ✓
    Pass,
    /// ✗: something to fix.
    Fail,
    /// ·: worth knowing, not a fault.
    Info,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked: `hub`, `data dir`, `token`, `database`, `ide`.
    pub check: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(check: &'static str, detail: impl Into<String>) -> Self {
        Check {
            check,
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }
    fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            check,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn info(check: &'static str, detail: impl Into<String>) -> Self {
        Check {
            check,
            status: Status::Info,
            detail: detail.into(),
            fix: None,
        }
    }
}

/// Where the doctor looks.
#[derive(Debug, Clone)]
pub struct Input {
    /// The hub's base URL.
    pub hub_url: String,
    /// The data dir.
    pub data_dir: PathBuf,
    /// The hub's `--store`, when set (env or file): a PostgreSQL store is not checked here.
    pub store: Option<String>,
    /// The project whose IDE configs are checked (the current directory).
    pub project_dir: PathBuf,
    /// The user's home, for user-level IDE configs.
    pub home: Option<PathBuf>,
}

/// Runs every check.
pub async fn run(input: &Input) -> Vec<Check> {
    let mut out = vec![hub(&input.hub_url).await];
    out.extend(data_dir(&input.data_dir));
    out.push(match input.store.as_deref().map(StoreConfig::parse) {
        Some(Ok(StoreConfig::Postgres(url))) => Check::info(
            "database",
            format!(
                "PostgreSQL at {}: shared by hubs; each hub checks it when it starts (GET /health)",
                StoreConfig::Postgres(url).describe()
            ),
        ),
        Some(Err(e)) => Check::fail(
            "database",
            e.message().to_owned(),
            "set --store to `sqlite` or a postgres:// URL",
        ),
        _ => database(&input.data_dir),
    });
    out.extend(ides(input));
    out
}

/// Did every check pass (or only inform)?
pub fn healthy(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}

/// The checks as lines for a terminal.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.status {
            Status::Pass => "✓",
            Status::Fail => "✗",
            Status::Info => "·",
        };
        out.push_str(&format!("{mark} {:<9} {}\n", c.check, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("  {:<9} fix: {fix}\n", ""));
        }
    }
    out
}

/// Is the hub up, is it this version, or does something else hold its port?
async fn hub(url: &str) -> Check {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Check::fail("hub", format!("no HTTP client: {e}"), "report this"),
    };
    let start = "start it: `switchboard serve` (or the desktop app)";
    let other = |what: String| {
        Check::fail(
            "hub",
            format!("{url} is held by another program: {what}, not a Switchboard hub"),
            "stop that program, or run the hub on another port (`switchboard serve --port N`) and pass --hub",
        )
    };
    let res = match client.get(format!("{url}/health")).send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            return Check::fail("hub", format!("no hub answers at {url}"), start);
        }
        Err(e) if e.is_timeout() => {
            return other("it accepts connections but does not answer".into());
        }
        Err(e) => return other(format!("it does not speak HTTP ({e})")),
    };
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let (Some("ok"), Some(version)) = (body["status"].as_str(), body["version"].as_str()) else {
        return other(format!("it answers /health with HTTP {}", status.as_u16()));
    };
    if version != switchboard_core::VERSION {
        return Check::fail(
            "hub",
            format!(
                "the hub at {url} is version {version}; this switchboard is {}",
                switchboard_core::VERSION
            ),
            "stop that hub and start this build's: `switchboard serve`",
        );
    }
    Check::pass(
        "hub",
        format!(
            "up at {url}: version {version}, pid {}, {} connections",
            body["pid"], body["connections"]
        ),
    )
}

/// The data dir, and the token file in it (mode 0600).
fn data_dir(dir: &Path) -> Vec<Check> {
    if !dir.is_dir() {
        return vec![Check::fail(
            "data dir",
            format!("no data dir at {}", dir.display()),
            format!(
                "the hub makes it on first start: `switchboard serve --data-dir {}`",
                dir.display()
            ),
        )];
    }
    let token = dir.join("token");
    let token_check = match std::fs::metadata(&token) {
        Err(_) => Check::fail(
            "token",
            format!("no token file at {}", token.display()),
            "start the hub once: it writes the token (mode 600)",
        ),
        Ok(m) => token_mode(&token, &m),
    };
    vec![
        Check::pass("data dir", dir.display().to_string()),
        token_check,
    ]
}

#[cfg(unix)]
fn token_mode(path: &Path, m: &std::fs::Metadata) -> Check {
    use std::os::unix::fs::PermissionsExt;
    let mode = m.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Check::fail(
            "token",
            format!("{} is readable by others (mode {mode:o})", path.display()),
            format!("chmod 600 {}", path.display()),
        );
    }
    if std::fs::read(path).is_err() {
        return Check::fail(
            "token",
            format!("cannot read {}", path.display()),
            "run switchboard as the user who runs the hub",
        );
    }
    Check::pass("token", format!("{} (mode {mode:o})", path.display()))
}

#[cfg(not(unix))]
fn token_mode(path: &Path, _m: &std::fs::Metadata) -> Check {
    Check::pass("token", path.display().to_string())
}

fn megabytes(n: u64) -> String {
    format!("{:.1} MB", n as f64 / 1_048_576.0)
}

/// `PRAGMA integrity_check`, the database's size and its WAL's.
fn database(dir: &Path) -> Check {
    match switchboard_core::inspect_database(dir) {
        Err(e) => Check::fail(
            "database",
            e.message().to_owned(),
            "start the hub once: it creates the database",
        ),
        Ok(r) if r.ok() => Check::pass(
            "database",
            format!(
                "{}: integrity ok, {}, WAL {}",
                r.path.display(),
                megabytes(r.size),
                megabytes(r.wal_size)
            ),
        ),
        Ok(r) => Check::fail(
            "database",
            format!(
                "{} fails its integrity check: {}",
                r.path.display(),
                r.integrity
            ),
            format!(
                "stop the hub, then restore {} from a backup, or move it aside (the hub starts a new, empty one)",
                r.path.display()
            ),
        ),
    }
}

/// Where an IDE keeps MCP config, and under which key.
struct Location {
    ide: &'static str,
    path: PathBuf,
    /// The key holding the servers: `mcpServers`, or `servers` for VS Code.
    key: &'static str,
}

fn locations(input: &Input) -> Vec<Location> {
    let p = &input.project_dir;
    let mut v = vec![
        Location {
            ide: "claude",
            path: p.join(".mcp.json"),
            key: "mcpServers",
        },
        Location {
            ide: "cursor",
            path: p.join(".cursor/mcp.json"),
            key: "mcpServers",
        },
        Location {
            ide: "vscode",
            path: p.join(".vscode/mcp.json"),
            key: "servers",
        },
    ];
    if let Some(h) = &input.home {
        v.extend([
            Location {
                ide: "claude",
                path: h.join(".claude.json"),
                key: "mcpServers",
            },
            Location {
                ide: "cursor",
                path: h.join(".cursor/mcp.json"),
                key: "mcpServers",
            },
            Location {
                ide: "vscode",
                path: h.join(".config/Code/User/mcp.json"),
                key: "servers",
            },
        ]);
    }
    v
}

/// JSON with `//` and `/* */` comments (VS Code's and Cursor's files allow them) read as JSON.
fn parse_jsonc(text: &str) -> serde_json::Result<Value> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for n in chars.by_ref() {
                    if last == '*' && n == '/' {
                        break;
                    }
                    last = n;
                }
            }
            _ => out.push(c),
        }
    }
    serde_json::from_str(&out)
}

/// A command as the IDE would run it: a path, or a name looked up on `PATH`.
fn resolve(command: &str) -> Option<PathBuf> {
    if command.contains('/') {
        let p = PathBuf::from(command);
        return p.is_file().then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(command))
        .find(|p| p.is_file())
}

/// Is this server entry Switchboard: `switchboard mcp …`, or a URL ending in `/mcp` on the hub's address?
fn ours(server: &Map<String, Value>, name: &str, hub_url: &str) -> bool {
    let command = server.get("command").and_then(Value::as_str).unwrap_or("");
    let runs_switchboard = Path::new(command)
        .file_name()
        .is_some_and(|f| f == "switchboard" || f == "switchboard.exe");
    let url = server.get("url").and_then(Value::as_str).unwrap_or("");
    let hub = hub_url.trim_end_matches('/');
    runs_switchboard || url.starts_with(hub) || name == "switchboard"
}

/// Checks one Switchboard entry of an IDE config.
fn check_entry(loc: &Location, name: &str, server: &Map<String, Value>, hub_url: &str) -> Check {
    let place = format!("{} ({}, \"{name}\")", loc.ide, loc.path.display());
    let fix = format!(
        "replace the \"{name}\" entry in {} with what `switchboard ide {}` prints",
        loc.path.display(),
        loc.ide
    );
    if let Some(url) = server.get("url").and_then(Value::as_str) {
        let want = format!("{}/mcp", hub_url.trim_end_matches('/'));
        return if url.trim_end_matches('/') == want {
            Check::pass("ide", format!("{place}: {url}"))
        } else {
            Check::fail(
                "ide",
                format!("{place} points at {url}, not at {want}"),
                fix,
            )
        };
    }
    let command = server.get("command").and_then(Value::as_str).unwrap_or("");
    let args: Vec<&str> = server
        .get("args")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if args.first().is_none_or(|a| *a != "mcp") {
        return Check::fail(
            "ide",
            format!(
                "{place} runs `{command} {}`, not `switchboard mcp`",
                args.join(" ")
            ),
            fix,
        );
    }
    match resolve(command) {
        Some(bin) => Check::pass(
            "ide",
            format!(
                "{place}: `{command} {}` → {}",
                args.join(" "),
                bin.display()
            ),
        ),
        None => Check::fail(
            "ide",
            format!("{place} runs {command}, which does not exist"),
            format!("put switchboard on PATH (`cargo install --path hub/cli`), or {fix}"),
        ),
    }
}

/// Every IDE config in the project and the user's home that names Switchboard.
fn ides(input: &Input) -> Vec<Check> {
    let mut out = Vec::new();
    for loc in locations(input) {
        let Ok(text) = std::fs::read_to_string(&loc.path) else {
            continue;
        };
        let doc = match parse_jsonc(&text) {
            Ok(v) => v,
            Err(e) => {
                out.push(Check::fail(
                    "ide",
                    format!(
                        "{} ({}) is not valid JSON: {e}",
                        loc.ide,
                        loc.path.display()
                    ),
                    format!("fix the JSON in {}", loc.path.display()),
                ));
                continue;
            }
        };
        let mut found = false;
        // Claude Code keeps project-local servers in ~/.claude.json too, under the project's path.
        let local = doc["projects"][input.project_dir.display().to_string()][loc.key].as_object();
        for servers in [doc[loc.key].as_object(), local].into_iter().flatten() {
            for (name, server) in servers {
                let Some(server) = server.as_object() else {
                    continue;
                };
                if ours(server, name, &input.hub_url) {
                    found = true;
                    out.push(check_entry(&loc, name, server, &input.hub_url));
                }
            }
        }
        if !found {
            out.push(Check::info(
                "ide",
                format!(
                    "{} ({}) has no Switchboard server",
                    loc.ide,
                    loc.path.display()
                ),
            ));
        }
    }
    if !out.iter().any(|c| c.status == Status::Pass)
        && !out.iter().any(|c| c.status == Status::Fail)
    {
        out.push(Check::fail(
            "ide",
            "no IDE is set up to use Switchboard (Claude Code, Cursor and VS Code, in this project and in your home)",
            "`switchboard ide claude|cursor|vscode` prints the config and where it goes",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonc_comments_are_ignored_but_not_inside_strings() {
        let v = parse_jsonc("{\n // a comment\n \"a\": \"http://x\", /* b */ \"b\": 1 }").unwrap();
        assert_eq!(v, serde_json::json!({"a": "http://x", "b": 1}));
    }
}
