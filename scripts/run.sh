#!/usr/bin/env bash
# The README's run command. On a fresh Debian 12 machine it first installs what is missing (scripts/deps.sh, the
# same step as the test command), then builds and starts the tray app. With no display (SSH, a container) there is
# no tray: it starts the headless hub instead, whose window is the URL it prints, in any browser.
#
#   scripts/run.sh                 # the tray app, or the headless hub
#   scripts/run.sh --port 4800     # arguments go to the app (every flag also has a SWITCHBOARD_* env twin)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# The same build directory as the test command's, so one build serves both.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"

if ! command -v cargo >/dev/null 2>&1; then
  echo "switchboard: cargo is missing; install Rust with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
source scripts/deps.sh

# Both binaries in one cargo command whenever the tray app can be built: one set of dependency features, so the
# tray app, the headless hub and the test command (which builds the same pair) share one build.
release="$CARGO_TARGET_DIR/release"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  need_packages build desktop
  cargo build --release --locked -p switchboard-desktop -p switchboard
  exec "$release/switchboard-desktop" "$@"
fi

need_packages build
if [ -z "$(_missing_packages desktop)" ]; then
  cargo build --release --locked -p switchboard-desktop -p switchboard
else
  cargo build --release --locked -p switchboard
fi
echo "switchboard: no display (DISPLAY and WAYLAND_DISPLAY are unset), so no tray app: starting the headless hub." >&2
exec "$release/switchboard" serve "$@"
