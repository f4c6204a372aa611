#!/usr/bin/env bash
# Runs the fuzz targets, each for FUZZ_MINUTES (default 10), one after another, and prints a table of the runs:
# executions, executions per second, coverage (libFuzzer's `cov`, edges) and features, corpus size, and the crash
# file when one was found. Not part of CI (it takes 10 minutes a target).
#
#   fuzz/run.sh                  # every target
#   FUZZ_MINUTES=1 fuzz/run.sh rest ws_frame
#
# New inputs go to a working corpus outside the clone ($FUZZ_WORK); afterwards the ones that add coverage are
# merged into the committed corpus (fuzz/corpus/<target>), which tests/fuzz_corpus.rs replays on stable in CI. A
# crash stops its target: its input is saved under fuzz/artifacts/<target>/, and belongs in
# fuzz/regressions/<target>/ once fixed (the same test replays those).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
minutes="${FUZZ_MINUTES:-10}"
work="${FUZZ_WORK:-$HOME/.cache/switchboard-fuzz}"
target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/switchboard-fuzz-target}"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "cargo fuzz needs a nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz 0.13 from crates.io" >&2
  cargo install cargo-fuzz --version '~0.13' --locked
fi

all=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^switchboard-fuzz$')
targets=("$@")
[ ${#targets[@]} -gt 0 ] || read -r -a targets <<<"$(echo $all)"

# Release with debug assertions and overflow checks, under AddressSanitizer (cargo fuzz's default).
cargo +nightly fuzz build -O -a --target-dir "$target_dir"

mkdir -p "$work/logs"
summary="$work/summary.md"
printf '| target | minutes | runs | exec/s | cov (edges) | features | corpus | crash |\n|---|---|---|---|---|---|---|---|\n' >"$summary"
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "corpus/$t" "artifacts/$t"
  log="$work/logs/$t.log"
  echo "== $t: $minutes min" >&2
  set +e
  cargo +nightly fuzz run -O -a --target-dir "$target_dir" "$t" "$work/$t" "corpus/$t" -- \
    -max_total_time=$((minutes * 60)) -print_final_stats=1 -rss_limit_mb=4096 -timeout=60 \
    -artifact_prefix="artifacts/$t/" -detect_leaks=0 >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  crash=$(ls "artifacts/$t" 2>/dev/null | head -n 1)
  [ $rc -eq 0 ] || [ -n "$crash" ] || crash="exit $rc (see $log)"
  # Into the committed corpus go only the new inputs that add coverage to it: it stays small.
  cargo +nightly fuzz run -O -a --target-dir "$target_dir" "$t" "corpus/$t" "$work/$t" -- -merge=1 \
    -rss_limit_mb=4096 -timeout=60 -detect_leaks=0 >"$work/logs/$t.merge.log" 2>&1 || true
  n=$(ls "corpus/$t" | wc -l)
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$minutes" "${runs:-?}" "${secs:-?}" "${cov:-?}" "${ft:-?}" "$n" "${crash:-none}" | tee -a "$summary"
done
echo "summary: $summary" >&2
cat "$summary"
