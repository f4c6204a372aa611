#!/usr/bin/env bash
# Idempotent installer for the benchmark peer servers. Safe to run from any cwd.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PEERS_DIR="$(pwd)"

# --- node-ws: npm ci when node_modules is missing or older than package-lock.json
(
  cd "$PEERS_DIR/node-ws"
  marker=node_modules/.package-lock.json   # written by npm at the end of every install
  if [[ ! -f "$marker" || package-lock.json -nt "$marker" ]]; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    touch "$marker"
    echo "node-ws: installed ($(node -p 'require("ws/package.json").version' 2>/dev/null || echo '?'))"
  else
    echo "node-ws: up to date"
  fi
)

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
