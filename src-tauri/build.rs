//! Tauri's build step: the app's config and icons.

fn main() {
    tauri_build::build()
}
