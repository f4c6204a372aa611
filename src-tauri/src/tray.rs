//! The tray icon and its menu (SPEC §11). On Linux tray clicks fire no events, so the menu carries Show and Hide.

use switchboard_mcp::ide::{Ide, snippet};
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_clipboard_manager::ClipboardExt as _;

use crate::{HubState, quit, show_window};

/// The MCP config an IDE should use for this hub: stdio through `switchboard mcp` when the CLI is installed,
/// else straight to the hub over HTTP.
fn mcp_config(app: &AppHandle, ide: Ide) -> String {
    let state = app.state::<HubState>();
    let token = switchboard_core::auth::read_token(&state.data_dir);
    let target = switchboard::ide_target(&state.url, token, &state.data_dir);
    let cli_installed = std::path::Path::new(&target.command).is_absolute() || which_switchboard();
    snippet(ide, !cli_installed, &target).text
}

fn which_switchboard() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("switchboard").is_file()))
}

fn copy(app: &AppHandle, text: String) {
    if let Err(e) = app.clipboard().write_text(text) {
        tracing::warn!(error = %e, "could not write the clipboard");
    }
}

/// Builds the tray icon.
///
/// # Errors
/// When the menu or icon cannot be made.
pub(crate) fn build(app: &AppHandle) -> tauri::Result<()> {
    let autostart = app.autolaunch().is_enabled().unwrap_or(false);
    let mcp = Submenu::with_id_and_items(
        app,
        "mcp",
        "Copy MCP config",
        true,
        &[
            &MenuItem::with_id(app, "mcp-claude", "Claude Code", true, None::<&str>)?,
            &MenuItem::with_id(app, "mcp-cursor", "Cursor", true, None::<&str>)?,
            &MenuItem::with_id(app, "mcp-vscode", "VS Code", true, None::<&str>)?,
        ],
    )?;
    let menu = Menu::with_items(
        app,
        &[
            &MenuItem::with_id(app, "open", "Open event log", true, None::<&str>)?,
            &MenuItem::with_id(app, "hide", "Hide window", true, None::<&str>)?,
            &PredefinedMenuItem::separator(app)?,
            &mcp,
            &MenuItem::with_id(app, "copy-ws", "Copy WebSocket URL", true, None::<&str>)?,
            &PredefinedMenuItem::separator(app)?,
            &CheckMenuItem::with_id(
                app,
                "autostart",
                "Start at login",
                true,
                autostart,
                None::<&str>,
            )?,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, "quit", "Quit Switchboard", true, None::<&str>)?,
        ],
    )?;
    let mut tray = TrayIconBuilder::with_id("switchboard")
        .tooltip("Switchboard")
        .menu(&menu)
        .show_menu_on_left_click(true);
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.on_menu_event(|app, event| match event.id.as_ref() {
        "open" => show_window(app),
        "hide" => {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.hide();
            }
        }
        "mcp-claude" => copy(app, mcp_config(app, Ide::Claude)),
        "mcp-cursor" => copy(app, mcp_config(app, Ide::Cursor)),
        "mcp-vscode" => copy(app, mcp_config(app, Ide::Vscode)),
        "copy-ws" => {
            let url = app.state::<HubState>().url.replacen("http", "ws", 1);
            copy(app, format!("{url}/ws"));
        }
        "autostart" => {
            let launcher = app.autolaunch();
            let result = if launcher.is_enabled().unwrap_or(false) {
                launcher.disable()
            } else {
                launcher.enable()
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not change Start at login");
            }
        }
        "quit" => quit(app),
        _ => {}
    })
    .build(app)?;
    Ok(())
}
