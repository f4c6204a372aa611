//! The desktop app's entry point: [`switchboard_desktop::run`].

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    match switchboard_desktop::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard-desktop: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
