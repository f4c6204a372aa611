#!/usr/bin/env bash
# The whole test suite. On a fresh Debian 12 machine it first installs what is missing (skipping whatever is
# already there); then cargo fmt --check, clippy with -D warnings, and every test: unit, end-to-end against the
# real binary, and the Node, Deno, Python and browser client tests (tests/js, tests/inspector, clients/js,
# examples/agent-zoo, tests/py, driven by tests/external_clients.rs), the fuzz corpora replayed and the property
# tests; the suite again on PostgreSQL; and a 3-minute soak. Some fault tests mount a small tmpfs: run it as root.
# At the end it prints how long each step took.
#
# What keeps a first run short: every cargo command of one profile selects the same packages (the whole workspace,
# or the run command's pair), so each dependency is built once per profile with one feature set; the Node and Python
# installs run while clippy builds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Builds live outside the clone so a second run (or a fresh clone on the same machine) reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"

# Each step's name and seconds, printed at the end (also when a step fails), so a slow step shows.
steps=()
step_name=""
step_start=$SECONDS
run_start=$SECONDS
step() {
  [ -n "$step_name" ] && steps+=("$((SECONDS - step_start))|$step_name")
  step_name="$*"
  step_start=$SECONDS
  printf '\n== %s\n' "$*"
}
cleanups=()
finish() {
  local status=$?
  [ -n "$step_name" ] && steps+=("$((SECONDS - step_start))|$step_name")
  for c in "${cleanups[@]}"; do eval "$c" || true; done
  printf '\n== step times\n'
  for s in "${steps[@]}"; do
    printf '%6ds  %s\n' "${s%%|*}" "${s#*|}"
  done
  printf '%6ds  total (exit %d)\n' "$((SECONDS - run_start))" "$status"
}
trap finish EXIT

# Debian packages: what the hub and the desktop app build with, and what the tests drive (scripts/deps.sh, shared
# with the run command).
step "Debian packages"
source scripts/deps.sh
need_packages build desktop test

# Tests that cannot fail (skipped, asserting a constant, or passing on an empty list) fail the run.
step "test lint"
python3 scripts/test-lint.py --self-test
python3 scripts/test-lint.py

# Node packages for tests/js, tests/ui, the MCP Inspector (tests/inspector, with the Node 22 it needs), the JS client
# (clients/js) and the example app (examples/agent-zoo), each reinstalled only when its lock file changed; and the
# Python MCP SDK for tests/py, in a venv, reinstalled only when requirements.txt changed. They download while clippy
# builds, and the tests wait for them.
installs_log=$(mktemp)
cleanups+=('rm -f "$installs_log"')
install_clients() {
  for dir in tests/js tests/ui tests/inspector clients/js examples/agent-zoo; do
    if [ ! -f "$dir/node_modules/.package-lock.json" ] || ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.switchboard-lock"; then
      echo "npm ci ($dir)"
      npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
      cp "$dir/package-lock.json" "$dir/node_modules/.switchboard-lock"
    fi
  done
  local venv=tests/py/.venv
  if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/py/requirements.txt "$venv/.switchboard-reqs"; then
    echo "pip install (tests/py)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/py/requirements.txt
    cp tests/py/requirements.txt "$venv/.switchboard-reqs"
  fi
}
install_clients > "$installs_log" 2>&1 &
installs=$!

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The README's run command builds both binaries in one command (one set of dependency features, so one build);
# tests/desktop.rs runs that command as written, and finds them built.
step "release build (the run command's)"
cargo build --release --locked -p switchboard-desktop -p switchboard

step "Node and Python packages"
if ! wait "$installs"; then
  cat "$installs_log"
  echo "installing the Node and Python test packages failed (above)" >&2
  exit 1
fi
cat "$installs_log"

step "cargo test"
# A green run logs no ERROR: the hubs the tests start write their log to this output.
log=$(mktemp)
cleanups+=('rm -f "$log"')
cargo test --workspace --locked 2>&1 | tee "$log"
if grep -nE '^[0-9T:.-]+Z +ERROR ' "$log"; then
  echo "the test output above has ERROR lines (listed just above); a green run has none" >&2
  exit 1
fi

# The same suite again with every test hub on PostgreSQL (SPEC §13): a throwaway cluster (scripts/pg.sh), and
# SWITCHBOARD_TEST_STORE makes each test helper (Rust, Node, Python) give its hub a database of its own. What stays
# SQLite-only, and why, is in docs/scale-out.md: `doctor` reads the SQLite file itself; `types` and `desktop` start
# no hub of their own store (the desktop app keeps its data dir's database); `scale_out` runs on PostgreSQL in the
# first pass already; and the core tests of retention's schedule and of an idempotency key's expiry run in paused
# time, which a network connection's timeouts cannot share. It selects the whole workspace, as the first pass does,
# and filters by target: the same features, so nothing is built again.
step "cargo test, PostgreSQL pass"
source scripts/pg.sh
pgdir=$(mktemp -d /tmp/switchboard-pg-XXXXXX)
cleanups+=('pg_down "$pgdir"')
pg_up "$pgdir"
pg_tests=()
for t in hub heartbeat sources ask_user watcher rest resume idempotency durability slow_consumer security cli mcp ui external_clients authz leaks; do
  pg_tests+=(--test "$t")
done
SWITCHBOARD_TEST_STORE="$SWITCHBOARD_TEST_PG" cargo test --workspace --locked --lib "${pg_tests[@]}" -- --skip retention_runs_at_start_and_then_on_its_schedule \
  --skip an_idempotency_key_expires_after_24_hours 2>&1 | tee "$log"
if grep -nE '^[0-9T:.-]+Z +ERROR ' "$log"; then
  echo "the PostgreSQL pass has ERROR lines (listed just above); a green run has none" >&2
  exit 1
fi

# The soak's short version (the hour-long one and its plot: docs/guarantees.md): one hub for 3 minutes under 500
# subscribers (WebSocket, Socket.IO, Pusher), 1 000 publishes/s and 50 agent updates/s. It fails when RSS or fds
# drift past ±5 % after the first minute (a row every 10 s; RSS may also move 3 MB, what one burst of load leaves
# behind: bench/src/soak.rs, `judge`), p99 creeps, the WAL outgrows its bound, or a delivery is lost.
# Retention keeps 20 000 events (not 100 000), so the log prunes as fast as it grows from 20 s on: within the
# warm-up, as in the hour (where that starts after 100 s).
step "soak, 3 minutes"
cargo build --release --locked -p switchboard-bench
soak_out=$(mktemp -d)
"$CARGO_TARGET_DIR/release/switchboard-bench" soak --peers switchboard --soak-minutes 3 --soak-warmup 1 \
  --soak-sample-s 10 --soak-retention 20000 --soak-rss-slack-mb 3 --label ci --out "$soak_out"
rm -rf "$soak_out"
