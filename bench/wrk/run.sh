#!/usr/bin/env bash
# Cross-checks the load tool's `throughput` rows with wrk: starts a release hub pinned to core 0 on a fresh data
# dir, seeds 256 agents, and runs wrk pinned to core 1 for each write path.
#   bench/wrk/run.sh [connections] [seconds]      (defaults 64 and 10)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"
bin="${SWITCHBOARD_BIN:-$CARGO_TARGET_DIR/release/switchboard}"
conns="${1:-64}"
secs="${2:-10}"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
[ -x "$bin" ] || cargo build --release --locked -p switchboard
data="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
RUST_LOG=warn taskset -c 0 "$bin" serve --data-dir "$data" --port "$port" >/dev/null 2>&1 &
hub=$!
trap 'kill $hub 2>/dev/null; wait $hub 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
export IDS="$data/ids"
for i in $(seq 256); do
  curl -fs -H 'Content-Type: application/json' -d "{\"name\":\"seed-$i\"}" "http://127.0.0.1:$port/api/agents"
  echo
done | python3 -c 'import sys, json; [print(json.loads(l)["id"]) for l in sys.stdin if l.strip()]' >"$IDS"
for script in mutations publishes; do
  echo "== $script: wrk -t1 -c$conns -d${secs}s (hub on core 0, wrk on core 1)"
  taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$root/bench/wrk/$script.lua" "http://127.0.0.1:$port"
done
