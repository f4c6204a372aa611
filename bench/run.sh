#!/usr/bin/env bash
# Benchmarks Switchboard beside its peers on this machine and writes bench/RESULTS.md.
#
#   bench/run.sh                          # every scenario, every peer, results block `latest`
#   bench/run.sh --label after            # the same, recorded as `after`
#   bench/run.sh fanout --fan-n 1000      # one scenario (idle, fanout, mutation, mcp); see --help
#   bench/run.sh fanout --peers switchboard-pusher,sockudo      # one protocol's group (see bench/peers/README.md)
#
# Every peer by default, grouped by protocol: switchboard, node-ws, fastapi; switchboard-socketio, node-socketio;
# switchboard-pusher, sockudo. Sockudo is built once (about 11 minutes) into $HOME/.cache/switchboard-peers;
# BENCH_SKIP_SOCKUDO=1 skips that build (then leave sockudo out of --peers).
#
# It installs the peers (bench/peers/install.sh), builds Switchboard and the load tool in release mode, raises the
# open-file limit, and pins the server under test to core 0 and the load tool to core 1, the same for every peer.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"

cores=$(nproc --all)
if [ "$cores" -lt 2 ]; then
  echo "bench/run.sh needs two cores (one for the server, one for the load tool); this machine has $cores" >&2
  exit 1
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is missing" >&2; exit 1; }

# What the peers need on a fresh Debian machine (skipped when present).
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
if [ ${#missing[@]} -gt 0 ]; then
  printf '== apt-get install %s\n' "${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

printf '== peers\n'
bench/peers/install.sh

printf '== release build\n'
cargo build --release --locked -p switchboard -p switchboard-bench

# 10k connections per run, on both ends, in one process each.
hard=$(ulimit -Hn)
want=65536
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
ulimit -n "$want"

printf '== benchmark (server on core 0, load tool on core 1)\n'
exec taskset -c 1 "$CARGO_TARGET_DIR/release/switchboard-bench" --server-core 0 "$@"
