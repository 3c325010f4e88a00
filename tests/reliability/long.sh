#!/usr/bin/env bash
# srvd's long reliability runs, too long for CI (.ci/run): 1,000 kill -9 of a
# daemon whose records change every cycle, a 100,000-cycle memory soak, and
# cargo-fuzz on every target of fuzz/ for 10 minutes each. Prints a table;
# a run of all three that passes also writes it to docs/results/reliability.md.
#
#   SRVD_BIN=target/release/srvd bash tests/reliability/long.sh
#
# Picks: SRVD_LONG="crash soak fuzz" (all three by default),
# SRVD_CRASH_ROUNDS (1000), SRVD_SOAK_CYCLES (100000), SRVD_FUZZ_SECONDS
# (600 per target), SRVD_FUZZ_TARGETS (every target). Fuzzing needs
# cargo-fuzz (`cargo install cargo-fuzz`); it runs on the stable toolchain
# with RUSTC_BOOTSTRAP=1, which lets it pass the nightly-only flags it needs.
# Each fuzz target runs alone, under nice, and its corpus is kept in
# fuzz/corpus/ for the next run. Takes about an hour on two cores.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/lib.sh
. "$root/tests/lib.sh"
# shellcheck source=tests/reliability/lib.sh
. "$here/lib.sh"

runs=${SRVD_LONG:-crash soak fuzz}
table=()
row() { table+=("$(printf '| %-34s | %-50s | %-10s |' "$1" "$2" "$3")"); }

if [[ " $runs " == *" crash "* ]]; then
  SRVD=$(srvd_bin) || { fail "no srvd to test"; summary; exit 1; }
  rounds=${SRVD_CRASH_ROUNDS:-1000}
  echo "== crash consistency: $rounds x kill -9"
  started=$SECONDS
  crash_run "$rounds"
  echo "crash: $((SECONDS - started)) s"
  crash_checks "$rounds"
  row "kill -9 at random moments" \
    "$rounds kills: $CRASH_COMPLETE complete, $CRASH_EMPTY no dest yet" \
    "$([ "$CRASH_BAD" -eq 0 ] && echo "0 bad" || echo "$CRASH_BAD BAD")"
  row "  kills that left staged files" "$CRASH_STAGED; $CRASH_CLEANED files seen removed at a start" \
    "$([ "$CRASH_BAD" -eq 0 ] && echo ok || echo FAIL)"
  row "  kills that left a reload owed" "$CRASH_MARKERS; $CRASH_RERUN seen run again at a start" \
    "$([ "$CRASH_BAD" -eq 0 ] && echo ok || echo FAIL)"
fi

if [[ " $runs " == *" soak "* ]]; then
  cycles=${SRVD_SOAK_CYCLES:-100000}
  echo "== soak: $cycles cycles"
  started=$SECONDS
  out=$(cd "$root" && SRVD_SOAK_CYCLES=$cycles cargo test --release --locked -q --test soak \
    -- --ignored --exact long_soak --nocapture 2>&1)
  status=$?
  line=$(grep -E '^SOAK ' <<<"$out" | tail -n 1)
  echo "${line:-$out}" | tail -n 20
  done_cycles=$(sed -n 's/.*cycles=\([0-9]*\).*/\1/p' <<<"$line")
  early=$(sed -n 's/.*rss_after_1000_kib=\([0-9]*\).*/\1/p' <<<"$line")
  late=$(sed -n 's/.*rss_end_kib=\([0-9]*\).*/\1/p' <<<"$line")
  check "soak: $cycles cycles, RSS at the end within 1 MiB of RSS after 1,000" test "$status" -eq 0
  # cargo test passes when its filter matches no test: only the SOAK line
  # proves the soak ran.
  check "soak: the soak ran every cycle (${done_cycles:-no} cycles reported)" \
    test "${done_cycles:-0}" -ge "$cycles" -a "${done_cycles:-0}" -gt 0
  row "soak, records change every cycle" \
    "${done_cycles:-?} cycles in $((SECONDS - started)) s; RSS ${early:-?} -> ${late:-?} KiB" \
    "$([ "$status" -eq 0 ] && echo ok || echo FAIL)"
fi

if [[ " $runs " == *" fuzz "* ]]; then
  seconds=${SRVD_FUZZ_SECONDS:-600}
  if ! command -v cargo-fuzz >/dev/null; then
    cargo install --locked cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz >/dev/null 2>&1 ||
      fail "installing cargo-fuzz"
  fi
  export RUSTC_BOOTSTRAP=1
  targets=${SRVD_FUZZ_TARGETS:-$(cd "$root/fuzz" && cargo fuzz list)}
  [ -n "$targets" ] || fail "fuzz: no target to run (cargo fuzz list printed none)"
  (cd "$root/fuzz" && nice cargo fuzz build -O >/dev/null 2>&1) || fail "fuzz: building the targets"
  for t in $targets; do
    echo "== fuzz $t: $seconds s"
    mkdir -p "$root/fuzz/corpus/$t"
    log="$root/fuzz/artifacts/$t.log"
    mkdir -p "$root/fuzz/artifacts/$t"
    before=$(find "$root/fuzz/artifacts/$t" -type f ! -name '*.log' | wc -l)
    (cd "$root/fuzz" && nice cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1)
    status=$?
    after=$(find "$root/fuzz/artifacts/$t" -type f ! -name '*.log' | wc -l)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    corpus=$(find "$root/fuzz/corpus/$t" -type f | wc -l)
    crashes=$((after - before))
    tail -n 3 "$log"
    # The zone target's scratch files, one directory per fuzzing process.
    rm -rf "${TMPDIR:-/tmp}"/srvd-fuzz-zone-*
    check "fuzz $t: $seconds s, no crash" test "$status" -eq 0 -a "$crashes" -eq 0
    check "fuzz $t: the fuzzer ran (${execs:-no} executions reported)" test "${execs:-0}" -gt 0
    row "fuzz $t" "${execs:-?} execs in $seconds s, corpus $corpus" \
      "$([ "$status" -eq 0 ] && [ "$crashes" -eq 0 ] && echo "0 crashes" || echo "CRASH ($log)")"
  done
fi

long_table() {
  printf '| %-34s | %-50s | %-10s |\n' "long run" "tried" "outcome"
  printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "$(printf -- '-%.0s' {1..52})" "$(printf -- '-%.0s' {1..12})"
  printf '%s\n' "${table[@]}"
}
echo
long_table
echo
# Only a run of all three that passed replaces the published table, so a
# partial or failed run never overwrites the last full figures.
results="$root/docs/results/reliability.md"
if [[ " $runs " == *" crash "* && " $runs " == *" soak "* && " $runs " == *" fuzz "* ]] &&
  summary >/dev/null; then
  {
    echo "# Long reliability runs"
    echo
    echo "Generated by \`bash tests/reliability/long.sh\` (see [Development](../development.md#long-runs));"
    echo "a run of all three that passes replaces this file. What each run tries is"
    echo "in [Reliability](../reliability.md)."
    echo
    echo "$(date -u +%Y-%m-%d), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown);" \
      "srvd $(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1); $(nproc) CPUs" \
      "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), Linux $(uname -r)." \
      "$rounds kills, $cycles soak cycles, $seconds s per fuzz target."
    echo
    long_table
  } >"$results"
  echo "wrote docs/results/reliability.md"
else
  echo "docs/results/reliability.md left as it was: not all three runs ran and passed"
fi
summary
