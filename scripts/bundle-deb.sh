#!/usr/bin/env bash
# Builds the desktop app's .deb: installs the Tauri CLI from npm if needed, then a release build and the bundle.
# The package lands in $CARGO_TARGET_DIR/release/bundle/deb/ (default target dir: ~/.cache/switchboard-target).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"
[ -x node_modules/.bin/tauri ] || npm ci --no-audit --no-fund --loglevel=error
npx tauri build --bundles deb "$@"
ls -l "$CARGO_TARGET_DIR"/release/bundle/deb/*.deb
