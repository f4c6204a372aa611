#!/usr/bin/env bash
# Builds the desktop app's .deb: installs the Tauri CLI from npm if needed, then a release build and the bundle.
# The package carries both binaries: switchboard-desktop (the tray app) and switchboard (the CLI, for
# `switchboard mcp` in IDE configs), both in /usr/bin.
# The package lands in $CARGO_TARGET_DIR/release/bundle/deb/ (default target dir: ~/.cache/switchboard-target).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"
# npm ci trips over the CLI's per-platform optional packages in the lock file; install honours the lock.
[ -x node_modules/.bin/tauri ] || npm install --no-audit --no-fund --loglevel=error
cargo build --release --locked -p switchboard --bin switchboard
files="{\"bundle\":{\"linux\":{\"deb\":{\"files\":{\"/usr/bin/switchboard\":\"$CARGO_TARGET_DIR/release/switchboard\"}}}}}"
# The root manifest's default members are the headless crates; build the desktop package itself.
npx tauri build --bundles deb --config "$files" "$@" -- -p switchboard-desktop
ls -l "$CARGO_TARGET_DIR"/release/bundle/deb/*.deb
