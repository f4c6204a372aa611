//! `switchboard`: the command line (clap) and dispatch; the work is in the `switchboard` library.

/// mimalloc, built without transparent huge pages (`no_thp`): a quarter less CPU per durable write than glibc's
/// malloc, and an idle hub stays at 15–17 MB RSS (with THP, mimalloc's eagerly committed arenas took 24 MB).
/// Measured in bench/RESULTS.md (issue 14).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use switchboard::client::HubClient;
use switchboard::config::{self, CommonArgs, ServeArgs};
use switchboard::{DEFAULT_HUB_URL, autostart};

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Local real-time hub for agent webapps: REST, WebSocket and SSE over one durable event log"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct HubArgs {
    /// The hub to talk to [default: $SWITCHBOARD_URL, else http://127.0.0.1:4747].
    #[arg(long, env = "SWITCHBOARD_URL", global = true)]
    hub: Option<String>,
    /// Token to send [default: <data dir>/token when readable].
    #[arg(long, env = "SWITCHBOARD_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub: HTTP, WebSocket and SSE on one port.
    Serve(ServeArgs),
    /// Print the live event log.
    Tail {
        #[command(flatten)]
        hub: HubArgs,
        /// Channel or pattern, e.g. agent:* [default: *].
        #[arg(long, default_value = "*")]
        channel: String,
        /// Start after this seq (replays logged events first).
        #[arg(long)]
        since: Option<u64>,
        /// One event envelope per line.
        #[arg(long)]
        json: bool,
    },
    /// Publish one event.
    Publish {
        #[command(flatten)]
        hub: HubArgs,
        channel: String,
        event: String,
        /// Event data as JSON [default: null].
        data: Option<String>,
    },
    /// MCP over stdio for IDEs: bridges to the hub, starting one in the background if none answers.
    Mcp {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Print the MCP config for an IDE: claude, cursor or vscode.
    Ide {
        /// claude, cursor or vscode.
        name: String,
        /// Point the IDE at the hub's /mcp over HTTP (with the token) instead of running `switchboard mcp`.
        #[arg(long)]
        http: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Check the hub, the data dir, the database and the IDE configs; say how to fix what is wrong.
    Doctor {
        #[command(flatten)]
        hub: HubArgs,
        /// The results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print TypeScript types for the logged events: a union over `event`, payloads inferred from the log.
    Types {
        #[command(flatten)]
        hub: HubArgs,
        /// Channel or pattern, e.g. agent:* [default: *].
        #[arg(long, default_value = "*")]
        channel: String,
    },
    /// Write the log as NDJSON envelopes (one per line) to stdout: everything kept after --since, then with
    /// --follow live events until interrupted.
    Record {
        #[command(flatten)]
        hub: HubArgs,
        /// Channel or pattern [default: *].
        #[arg(long, default_value = "*")]
        channel: String,
        /// Start after this seq.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// Keep recording live events until Ctrl-C.
        #[arg(long)]
        follow: bool,
    },
    /// Publish a recording (from `record`) into a running hub, keeping its events' relative timing.
    Replay {
        #[command(flatten)]
        hub: HubArgs,
        /// The NDJSON recording.
        file: std::path::PathBuf,
        /// 1 is real time, 2 twice as fast, 0 as fast as possible.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Agent CRUD.
    Agents {
        #[command(flatten)]
        hub: HubArgs,
        #[command(subcommand)]
        cmd: AgentsCmd,
    },
}

#[derive(Subcommand)]
enum AgentsCmd {
    /// List agents, a page at a time: `next_cursor` of one page is `--cursor` of the next.
    List {
        #[arg(long)]
        status: Option<String>,
        /// Substring of name or description.
        #[arg(long)]
        q: Option<String>,
        /// Agents per page (1–500).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this `next_cursor` of an earlier page.
        #[arg(long, conflicts_with = "all")]
        cursor: Option<String>,
        /// Every page, as one list.
        #[arg(long)]
        all: bool,
    },
    /// Show one agent.
    Get { id: String },
    /// Create an agent from JSON, e.g. '{"name":"planner","model":"gpt-5"}', or many from a file with --from.
    Create {
        /// The agent as JSON.
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        json: Option<String>,
        /// A JSON array or NDJSON file of agents: sent in chunks of up to 1 000, each one transaction.
        #[arg(long, value_name = "FILE")]
        from: Option<std::path::PathBuf>,
    },
    /// Merge-patch an agent with JSON.
    Update {
        id: String,
        json: String,
        /// Fail with 412 unless the agent is at this version.
        #[arg(long)]
        expected_version: Option<i64>,
    },
    /// Delete an agent.
    Delete { id: String },
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A token cancelled on SIGINT or SIGTERM, for the commands that run until interrupted.
fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        s.cancel();
    });
    stop
}

fn parse_json_arg(s: &str) -> Result<Value> {
    serde_json::from_str(s).with_context(|| format!("not valid JSON: {s}"))
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

async fn serve(args: ServeArgs, common: CommonArgs) -> Result<ExitCode> {
    let file = config::load_file(&common)?;
    let cfg = config::server_config(&args, &common, file)?;
    let stop = CancellationToken::new();
    let running = match switchboard::start(cfg, stop.clone()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "switchboard listening on {}", running.url())?;
        out.flush()?;
        // Whoever started the hub may have read the first line and closed the pipe (tests, scripts): a second line
        // nobody reads must not stop the hub.
        let window = format!(
            "the event-log window: {}/ (open it in a browser)",
            running.url()
        );
        let _ = writeln!(out, "{window}").and_then(|()| out.flush());
    }
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    running.wait().await;
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let file = config::load_file(&cli.common)?;
    let data_dir = config::data_dir(&cli.common, &file);
    let client = |h: HubArgs| HubClient::new(h.hub.or(file.hub.clone()), h.token, &data_dir);
    // Flag or env, then the file, then the hub running on this data dir (its lock file says where), then the
    // default.
    let hub_url = |h: &HubArgs| {
        h.hub
            .clone()
            .or(file.hub.clone())
            .or_else(|| switchboard_server::lock::running_hub(&data_dir).and_then(|l| l.url))
            .unwrap_or_else(|| DEFAULT_HUB_URL.into())
            .trim_end_matches('/')
            .to_owned()
    };
    let token = |h: &HubArgs| {
        h.token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| switchboard_core::auth::read_token(&data_dir))
    };
    match cli.command {
        Command::Serve(args) => return serve(args, cli.common).await,
        Command::Mcp { hub } => {
            let url =
                autostart::ensure_hub(&hub_url(&hub), &data_dir, cli.common.config.as_deref())
                    .await?;
            // Read after the hub is up: a hub it just started may have just written the token.
            switchboard_mcp::bridge::run(&format!("{url}/mcp"), token(&hub)).await?;
        }
        Command::Doctor { hub, json } => {
            let input = switchboard::doctor::Input {
                hub_url: hub_url(&hub),
                data_dir: data_dir.clone(),
                // As `serve` would read it: env, then the file.
                store: std::env::var("SWITCHBOARD_STORE")
                    .ok()
                    .or_else(|| file.store.clone()),
                project_dir: std::env::current_dir()?,
                home: dirs::home_dir(),
            };
            let checks = switchboard::doctor::run(&input).await;
            let healthy = switchboard::doctor::healthy(&checks);
            if json {
                print(&json!({"ok": healthy, "checks": checks}));
            } else {
                print!("{}", switchboard::doctor::render(&checks));
            }
            return Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Ide { name, http, hub } => {
            let ide = switchboard_mcp::ide::Ide::parse(&name)
                .with_context(|| format!("no IDE named {name:?}; try claude, cursor or vscode"))?;
            let target = switchboard::ide_target(&hub_url(&hub), token(&hub), &data_dir);
            let s = switchboard_mcp::ide::snippet(ide, http, &target);
            if let Some(file) = s.file {
                eprintln!("# add to {file}");
            }
            println!("{}", s.text);
        }
        Command::Tail {
            hub,
            channel,
            since,
            json,
        } => {
            let stop = stop_on_signal();
            client(hub).tail(&channel, since, json, stop).await?;
        }
        Command::Publish {
            hub,
            channel,
            event,
            data,
        } => {
            let data = data
                .as_deref()
                .map(parse_json_arg)
                .transpose()?
                .unwrap_or(Value::Null);
            print(
                &client(hub)
                    .post(
                        "/api/events",
                        json!({"channel": channel, "event": event, "data": data}),
                    )
                    .await?,
            );
        }
        Command::Types { hub, channel } => {
            let declarations = switchboard::types::generate(&client(hub), &channel).await?;
            print!("{declarations}");
        }
        Command::Record {
            hub,
            channel,
            since,
            follow,
        } => {
            let stop = stop_on_signal();
            let n =
                switchboard::recording::record(&client(hub), &channel, since, follow, stop).await?;
            eprintln!("recorded {n} logged event(s)");
        }
        Command::Replay { hub, file, speed } => {
            print(&switchboard::recording::replay(&client(hub), &file, speed).await?);
        }
        Command::Agents { hub, cmd } => {
            let c = client(hub);
            let v = match cmd {
                AgentsCmd::List {
                    status,
                    q,
                    limit,
                    cursor,
                    all,
                } => {
                    let mut filter = vec![("limit", limit.to_string())];
                    filter.extend(status.map(|s| ("status", s)));
                    filter.extend(q.map(|s| ("q", s)));
                    c.list_agents(&filter, cursor, all).await?
                }
                AgentsCmd::Get { id } => c.get(&format!("/api/agents/{id}")).await?,
                AgentsCmd::Create {
                    from: Some(file), ..
                } => switchboard::bulk::create_from(&c, &file).await?,
                AgentsCmd::Create { json, .. } => {
                    c.post(
                        "/api/agents",
                        parse_json_arg(json.as_deref().unwrap_or("{}"))?,
                    )
                    .await?
                }
                AgentsCmd::Update {
                    id,
                    json,
                    expected_version,
                } => {
                    c.patch(
                        &format!("/api/agents/{id}"),
                        parse_json_arg(&json)?,
                        expected_version,
                    )
                    .await?
                }
                AgentsCmd::Delete { id } => {
                    c.delete(&format!("/api/agents/{id}")).await?;
                    json!({"id": id, "deleted": true})
                }
            };
            print(&v);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // rmcp logs every session at info; that is noise in a hub's log.
    switchboard::logging::init(if matches!(cli.command, Command::Serve(_)) {
        "info,rmcp=warn"
    } else {
        "warn"
    });
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            ExitCode::FAILURE
        }
    }
}
