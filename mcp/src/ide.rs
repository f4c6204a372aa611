//! The exact MCP config each IDE wants, for `switchboard ide NAME [--http]` and `GET /api/ide/{name}`.
//!
//! stdio (the default) runs `switchboard mcp`, which bridges to the hub and starts one if none answers. `--http`
//! points the IDE straight at the hub's `/mcp`, with the token as a bearer header.

use serde::Serialize;
use serde_json::{Value, json};

/// The IDEs Switchboard writes config for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ide {
    /// Claude Code.
    Claude,
    /// Cursor.
    Cursor,
    /// VS Code.
    Vscode,
}

impl Ide {
    /// Every IDE, in the order menus show them.
    pub const ALL: [Ide; 3] = [Ide::Claude, Ide::Cursor, Ide::Vscode];

    /// The IDE a name means (`claude`, `claude-code`, `cursor`, `vscode`, `code`…), case-insensitively.
    pub fn parse(s: &str) -> Option<Ide> {
        match s.to_ascii_lowercase().as_str() {
            "claude" | "claude-code" => Some(Ide::Claude),
            "cursor" => Some(Ide::Cursor),
            "vscode" | "vs-code" | "code" => Some(Ide::Vscode),
            _ => None,
        }
    }

    /// The IDE's short name.
    pub fn name(self) -> &'static str {
        match self {
            Ide::Claude => "claude",
            Ide::Cursor => "cursor",
            Ide::Vscode => "vscode",
        }
    }
}

/// Where the IDE finds the hub.
#[derive(Debug, Clone)]
pub struct Target {
    /// The hub's base URL, e.g. `http://127.0.0.1:4747`.
    pub hub_url: String,
    /// The `switchboard` command to run for stdio.
    pub command: String,
    /// Extra arguments after `mcp` (e.g. `--hub URL` when the hub is not on the default address).
    pub mcp_args: Vec<String>,
    /// The hub token, sent as a bearer header in HTTP mode.
    pub token: Option<String>,
}

/// A config snippet and where it goes.
#[derive(Debug, Clone, Serialize)]
pub struct Snippet {
    /// Which IDE.
    pub ide: &'static str,
    /// `stdio` or `http`.
    pub transport: &'static str,
    /// The file it belongs in, or `None` for a shell command.
    pub file: Option<&'static str>,
    /// What to paste, or the command to run.
    pub text: String,
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The config for `ide`, over stdio or (with `http`) straight to `/mcp`.
pub fn snippet(ide: Ide, http: bool, t: &Target) -> Snippet {
    let url = format!("{}/mcp", t.hub_url.trim_end_matches('/'));
    let mut args = vec!["mcp".to_owned()];
    args.extend(t.mcp_args.iter().cloned());
    let headers = t
        .token
        .as_ref()
        .map(|tok| json!({"Authorization": format!("Bearer {tok}")}));
    let (file, text) = match (ide, http) {
        (Ide::Claude, false) => {
            let line = std::iter::once(t.command.as_str())
                .chain(args.iter().map(String::as_str))
                .map(shell_quote)
                .collect::<Vec<_>>()
                .join(" ");
            (None, format!("claude mcp add switchboard -- {line}"))
        }
        (Ide::Claude, true) => {
            let header = t
                .token
                .as_ref()
                .map(|tok| {
                    format!(
                        " --header {}",
                        shell_quote(&format!("Authorization: Bearer {tok}"))
                    )
                })
                .unwrap_or_default();
            (
                None,
                format!("claude mcp add --transport http switchboard {url}{header}"),
            )
        }
        (Ide::Cursor, false) => (
            Some(".cursor/mcp.json"),
            pretty(&json!({"mcpServers": {"switchboard": {"command": t.command, "args": args}}})),
        ),
        (Ide::Cursor, true) => {
            let mut s = json!({"url": url});
            if let Some(h) = headers {
                s["headers"] = h;
            }
            (
                Some(".cursor/mcp.json"),
                pretty(&json!({"mcpServers": {"switchboard": s}})),
            )
        }
        (Ide::Vscode, false) => (
            Some(".vscode/mcp.json"),
            pretty(
                &json!({"servers": {"switchboard": {"type": "stdio", "command": t.command, "args": args}}}),
            ),
        ),
        (Ide::Vscode, true) => {
            let mut s = json!({"type": "http", "url": url});
            if let Some(h) = headers {
                s["headers"] = h;
            }
            (
                Some(".vscode/mcp.json"),
                pretty(&json!({"servers": {"switchboard": s}})),
            )
        }
    };
    Snippet {
        ide: ide.name(),
        transport: if http { "http" } else { "stdio" },
        file,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            hub_url: "http://127.0.0.1:4747".into(),
            command: "switchboard".into(),
            mcp_args: vec![],
            token: Some("t0k".into()),
        }
    }

    #[test]
    fn every_ide_both_ways() {
        let t = target();
        assert_eq!(
            snippet(Ide::Claude, false, &t).text,
            "claude mcp add switchboard -- switchboard mcp"
        );
        assert_eq!(
            snippet(Ide::Claude, true, &t).text,
            "claude mcp add --transport http switchboard http://127.0.0.1:4747/mcp --header 'Authorization: Bearer t0k'"
        );
        let v: Value = serde_json::from_str(&snippet(Ide::Vscode, false, &t).text).unwrap();
        assert_eq!(
            v,
            json!({"servers": {"switchboard": {"type": "stdio", "command": "switchboard", "args": ["mcp"]}}})
        );
        let v: Value = serde_json::from_str(&snippet(Ide::Cursor, true, &t).text).unwrap();
        assert_eq!(
            v["mcpServers"]["switchboard"]["headers"]["Authorization"],
            "Bearer t0k"
        );
        assert_eq!(Ide::parse("VSCode"), Some(Ide::Vscode));
    }
}
