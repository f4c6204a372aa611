#!/usr/bin/env bash
# The whole test suite. On a fresh Debian 12 machine it first installs what is missing (skipping whatever is
# already there); then cargo fmt --check, clippy with -D warnings, and every test: unit, end-to-end against the
# real binary, and the Node and Python client tests (tests/js, tests/py, driven by tests/external_clients.rs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Builds live outside the clone so a second run (or a fresh clone on the same machine) reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"

step() { printf '\n== %s\n' "$*"; }

# System packages: a C compiler (bundled SQLite), Node and npm, Python with venv (external-client tests).
missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The desktop app (Tauri 2 on WebKitGTK) and its smoke test under Xvfb.
for pkg in libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev pkg-config file \
           xvfb xauth dbus-x11 imagemagick x11-utils xdotool; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Node packages for tests/js and tests/ui, each reinstalled only when its lock file changed.
for dir in tests/js tests/ui; do
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.switchboard-lock"; then
    step "npm ci ($dir)"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
    cp "$dir/package-lock.json" "$dir/node_modules/.switchboard-lock"
  fi
done

# The Python MCP SDK for tests/py, in a venv, reinstalled only when requirements.txt changed.
venv=tests/py/.venv
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/py/requirements.txt "$venv/.switchboard-reqs"; then
  step "pip install (tests/py)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/py/requirements.txt
  cp tests/py/requirements.txt "$venv/.switchboard-reqs"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked
