#!/usr/bin/env bash
# Idempotent installer for the benchmark peer servers. Safe to run from any cwd.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PEERS_DIR="$(pwd)"

# --- node-ws, node-socketio: npm ci when node_modules is missing or older than package-lock.json
for peer in node-ws node-socketio; do
  (
    cd "$PEERS_DIR/$peer"
    marker=node_modules/.package-lock.json   # written by npm at the end of every install
    if [[ ! -f "$marker" || package-lock.json -nt "$marker" ]]; then
      npm ci --no-audit --no-fund --loglevel=error >/dev/null
      touch "$marker"
      lib=$([[ $peer == node-ws ]] && echo ws || echo socket.io)
      echo "$peer: installed ($lib $(node -p "require('$lib/package.json').version" 2>/dev/null || echo '?'))"
    else
      echo "$peer: up to date"
    fi
  )
done

# --- fastapi: venv + pip install when the requirements hash stamp is missing
(
  cd "$PEERS_DIR/fastapi"
  if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
  fi
  hash="$(sha256sum requirements.txt | cut -d' ' -f1)"
  stamp=".venv/.installed-$hash"
  if [[ ! -f "$stamp" ]]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
    rm -f .venv/.installed-*
    touch "$stamp"
    echo "fastapi: installed (requirements $hash)"
  else
    echo "fastapi: up to date"
  fi
)

# --- sockudo (Pusher-protocol server in Rust): `cargo install` into a cache outside the clone, once.
# The build takes about 11 minutes on 2 cores and needs protoc. BENCH_SKIP_SOCKUDO=1 skips it (then the
# `sockudo` peer is unavailable). The load tool looks for the binary at $SOCKUDO_CACHE/sockudo/bin/sockudo.
SOCKUDO_VERSION=5.2.0
SOCKUDO_CACHE="${SOCKUDO_CACHE:-$HOME/.cache/switchboard-peers}"
sockudo_bin="$SOCKUDO_CACHE/sockudo/bin/sockudo"
if [[ "${BENCH_SKIP_SOCKUDO:-0}" == 1 ]]; then
  echo "sockudo: skipped (BENCH_SKIP_SOCKUDO=1)"
elif [[ -x "$sockudo_bin" ]] && "$sockudo_bin" --version 2>/dev/null | grep -qF "$SOCKUDO_VERSION"; then
  echo "sockudo: up to date ($SOCKUDO_VERSION)"
else
  if ! command -v protoc >/dev/null 2>&1; then
    echo "sockudo: apt-get install protobuf-compiler"
    sudo=$([[ $EUID -eq 0 ]] || echo sudo)
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends protobuf-compiler
  fi
  echo "sockudo: building $SOCKUDO_VERSION (about 11 minutes; log: $SOCKUDO_CACHE/sockudo-build.log)"
  mkdir -p "$SOCKUDO_CACHE"
  if ! cargo install sockudo --version "$SOCKUDO_VERSION" --locked \
      --root "$SOCKUDO_CACHE/sockudo" --target-dir "$SOCKUDO_CACHE/sockudo-build" \
      >"$SOCKUDO_CACHE/sockudo-build.log" 2>&1; then
    tail -20 "$SOCKUDO_CACHE/sockudo-build.log" >&2
    echo "sockudo: build failed (full log: $SOCKUDO_CACHE/sockudo-build.log)" >&2
    exit 1
  fi
  echo "sockudo: installed ($("$sockudo_bin" --version 2>/dev/null || echo '?'))"
fi
