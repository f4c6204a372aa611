//! Switchboard's desktop app (Tauri 2): the same hub `switchboard serve` runs, started in-process through
//! [`switchboard::start`], a tray icon, and the event-log window (the hub's own UI at `/`).
//!
//! - `lib.rs`: [`run`] — arguments, the hub (or attaching to one already on the port or the data dir), the window,
//!   signals, quit.
//! - [`tray`]: the tray menu (SPEC §11), desktop only.

mod tray;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use switchboard::config::{self, CommonArgs, ServeArgs};
use switchboard::lock::{LockError, LockInfo};
use switchboard_server::{RunningHub, StartError};
use tauri::{AppHandle, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder};
use tokio_util::sync::CancellationToken;

/// The desktop app takes the same settings as `switchboard serve` (flag > env > `switchboard.toml` > default).
#[derive(Parser, Debug)]
#[command(
    name = "switchboard-desktop",
    version,
    about = "Switchboard in the tray: the hub and its event-log window"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    serve: ServeArgs,
}

/// What the app knows about its hub.
pub struct HubState {
    /// `http://127.0.0.1:PORT` of the hub the window shows (ours, or the one we attached to).
    pub url: String,
    /// The hub token, when the hub requires one (the window's URL carries it).
    pub token: Option<String>,
    /// The hub's data dir.
    pub data_dir: std::path::PathBuf,
    /// Our in-process hub; `None` when attached to another Switchboard or when starting failed.
    running: Mutex<Option<RunningHub>>,
    stop: CancellationToken,
    quitting: AtomicBool,
}

/// How the hub came up.
enum Outcome {
    Started(RunningHub),
    Attached(String),
    Failed(String),
}

async fn start_hub(
    args: &Args,
    stop: CancellationToken,
) -> (Outcome, switchboard_server::ServerConfig) {
    let cfg = config::load_file(&args.common)
        .and_then(|file| config::server_config(&args.serve, &args.common, file));
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            // Without a usable file the flags alone still say where the data dir is.
            let cfg = config::server_config(&args.serve, &args.common, Default::default())
                .unwrap_or_else(|_| {
                    switchboard_server::ServerConfig::new(config::default_data_dir())
                });
            return (Outcome::Failed(format!("{e:#}")), cfg);
        }
    };
    let url = format!(
        "http://{}:{}",
        if cfg.bind.is_unspecified() {
            "127.0.0.1".into()
        } else {
            cfg.bind.to_string()
        },
        cfg.port
    );
    match switchboard::start(cfg.clone(), stop).await {
        Ok(running) => (Outcome::Started(running), cfg),
        Err(StartError::Bind { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse => {
            if switchboard::autostart::hub_answers(&url).await {
                (Outcome::Attached(url), cfg)
            } else {
                let msg = format!(
                    "Port {} is used by another program, not a Switchboard hub. Quit it, or start Switchboard with --port.",
                    cfg.port
                );
                (Outcome::Failed(msg), cfg)
            }
        }
        // Another hub runs on this data dir (on whatever port): show that one.
        Err(StartError::DataDir(LockError::Held {
            held: LockInfo { url: Some(url), .. },
            ..
        })) if switchboard::autostart::hub_answers(&url).await => (Outcome::Attached(url), cfg),
        Err(e) => (Outcome::Failed(e.to_string()), cfg),
    }
}

fn window_url(state: &HubState, error: Option<&str>) -> WebviewUrl {
    if let Some(e) = error {
        let q: String = e
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || " .,-:".contains(c) {
                    c
                } else {
                    ' '
                }
            })
            .collect();
        return WebviewUrl::App(format!("index.html?error={}", q.replace(' ', "%20")).into());
    }
    let mut url = format!("{}/", state.url);
    if let Some(t) = &state.token {
        url.push_str(&format!("?token={t}"));
    }
    WebviewUrl::External(url.parse().expect("the hub URL is a URL"))
}

/// Shows the window, making it on first use.
pub fn show_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Stops the hub cleanly (sockets get 1001, queued writes commit), then exits with code 0.
pub fn quit(app: &AppHandle) {
    let state = app.state::<HubState>();
    if state.quitting.swap(true, Ordering::AcqRel) {
        return;
    }
    tracing::info!("quitting");
    state.stop.cancel();
    let running = state
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Some(r) = running {
            r.wait().await;
        }
        app.exit(0);
    });
}

/// Runs the desktop app until Quit, SIGINT or SIGTERM.
///
/// # Errors
/// When Tauri cannot start (no display, for example).
pub fn run() -> anyhow::Result<()> {
    switchboard::logging::init("info,rmcp=warn");
    let args = Args::parse();
    let stop = CancellationToken::new();
    let (outcome, cfg) = tauri::async_runtime::block_on(start_hub(&args, stop.clone()));
    let token = switchboard_core::auth::read_token(&cfg.data_dir).filter(|_| cfg.require_token);
    let (url, running, error) = match outcome {
        Outcome::Started(r) => {
            println!("switchboard listening on {}", r.url());
            (r.url(), Some(r), None)
        }
        Outcome::Attached(url) => {
            tracing::info!(%url, "another Switchboard hub is on this port; attaching to it");
            (url, None, None)
        }
        Outcome::Failed(e) => {
            tracing::error!(error = %e, "the hub did not start");
            (String::new(), None, Some(e))
        }
    };
    let state = HubState {
        url,
        token,
        data_dir: cfg.data_dir.clone(),
        running: Mutex::new(running),
        stop,
        quitting: AtomicBool::new(false),
    };

    let app = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            show_window(app)
        }))
        .plugin(tauri_plugin_autostart::Builder::new().build())
        .plugin(tauri_plugin_clipboard_manager::init())
        .manage(state)
        .setup(move |app| {
            let handle = app.handle();
            let url = window_url(&handle.state::<HubState>(), error.as_deref());
            WebviewWindowBuilder::new(handle, "main", url)
                .title("Switchboard")
                .inner_size(1200.0, 780.0)
                .min_inner_size(720.0, 420.0)
                .build()?;
            tray::build(handle)?;
            let h = handle.clone();
            tauri::async_runtime::spawn(async move {
                shutdown_signal().await;
                quit(&h);
            });
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window only hides it: the hub and the tray stay.
            if let tauri::WindowEvent::CloseRequested { api, .. } = event
                && !window
                    .app_handle()
                    .state::<HubState>()
                    .quitting
                    .load(Ordering::Acquire)
            {
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .build(tauri::generate_context!())?;
    app.run(|app, event| {
        if let RunEvent::ExitRequested { api, code, .. } = event
            && code.is_none()
            && !app.state::<HubState>().quitting.load(Ordering::Acquire)
        {
            // The last window closing is not a reason to stop the hub; only Quit is.
            api.prevent_exit();
        }
    });
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
