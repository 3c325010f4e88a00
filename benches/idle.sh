#!/usr/bin/env bash
# Idle cost: what srvd (release build) costs a host while nothing changes,
# against Knot DNS on loopback, interval 1 s, status endpoint on. Each
# template has its own SRV name of 5 records in its own zone. A fresh srvd
# per row:
#   - 10 templates at TTL 5, 30 and 300 s
#   - 1, 10, 100 and 1,000 templates at TTL 30 s (the growth)
# Each row: CPU (the threads' schedstat, in nanoseconds: utime + stime count
# in ticks of 10 ms, too coarse for budgets of 0.1 s an hour) over RUN seconds
# once every dest is written and read back, extrapolated to an hour (x
# 3600/RUN), peak
# RSS (VmHWM, start included), the DNS queries and cycles in the window;
# each beside its budget. A TTL longer than RUN (300 s) means the window holds
# no expiry: its hourly figure is the sleeping cost only, plus at most one
# query per name per TTL, counted separately below the table.
#
# Prints a Markdown report and writes it to docs/results/idle.md. Root is
# needed for Knot (tests/knot.sh). Run it under the suites' lock:
#   flock /tmp/srvd-root-suite.lock bash benches/idle.sh
# Settings (environment):
#   SRVD_BIN=path    measure this srvd instead of a release build of this checkout
#   RUN=60           seconds measured per row
#   SIZES="1 10 100 1000"   template counts at TTL 30
#   OUT=path         write the report there instead
# Budgets: 10 templates, TTL 5 <= 1.0 s/h, TTL 30 <= 0.3 s/h, TTL 300 <= 0.1
# s/h, peak RSS <= 6 MiB; 1,000 templates at TTL 30 <= 20 s/h and <= 16 MiB.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN=${RUN:-60}
SIZES=${SIZES:-1 10 100 1000}
STATUS_PORT=$((BASE_PORT + 10))
TARGETS=5
OUT=${OUT:-$ROOT/docs/results/idle.md}

SRVD=$(srvd_bin) || die "no srvd to measure"
bench_init idle

max=1
for n in $SIZES; do [ "$n" -le "$max" ] || max=$n; done
[ "$max" -ge 10 ] || max=10
for ttl in 5 300; do
  for i in $(seq 0 9); do add_zone "t$ttl-$i" "$ttl"; done
done
for i in $(seq 0 $((max - 1))); do add_zone "t30-$i" 30; done
start_dns

verdict() {
  [ "$2" = "-" ] && { echo "-"; return; }
  python3 -c 'import sys; print("within" if float(sys.argv[1]) <= float(sys.argv[2]) else "OVER")' "$1" "$2"
}

# all_written: every one of the $WANT dests of the row is there.
WANT=0
all_written() { [ "$(find "$T/out" -name '*.cfg' | wc -l)" -eq "$WANT" ]; }

# measure N TTL CPU_BUDGET RSS_BUDGET: one fresh srvd; prints its table row.
measure() {
  local n=$1 ttl=$2 cpu_budget=$3 rss_budget=$4 i
  rm -rf "$T/out"
  mkdir -p "$T/out"
  {
    echo "nameservers = [\"$DNS_ADDR:$DNS_PORT\"]"
    echo "interval = \"1s\""
    echo "status_port = $STATUS_PORT"
    for i in $(seq 0 $((n - 1))); do
      cat <<EOF
[[template]]
name = "t$i"
src = "$TEMPLATE"
dest = "$T/out/t$i.cfg"
domain = "$SRV_LABEL.t$ttl-$i.$PARENT"
EOF
    done
  } >"$T/srvd.toml"
  WANT=$n
  start_srvd "$T/srvd.toml" "$T/srvd-$n-$ttl.log"
  wait_for 120 all_written || die "srvd did not write its $n templates: $(tail -n 5 "$T/srvd-$n-$ttl.log")"
  # The first cycles: every dest written, then read back once.
  sleep 3
  local ns0 q0 c0 hwm ns1 q1 c1 load
  read -r _ _ _ ns0 _ _ _ < <(python3 "$HELPER" procstat "$SRVD_PID")
  q0=$(metric srvd_dns_queries_total "http://127.0.0.1:$STATUS_PORT")
  c0=$(metric srvd_cycles_total "http://127.0.0.1:$STATUS_PORT")
  load=$(load1)
  log "idle: $n templates, TTL $ttl s, measuring $RUN s (load $load)"
  sleep "$RUN"
  read -r hwm _ _ ns1 _ _ _ < <(python3 "$HELPER" procstat "$SRVD_PID")
  q1=$(metric srvd_dns_queries_total "http://127.0.0.1:$STATUS_PORT")
  c1=$(metric srvd_cycles_total "http://127.0.0.1:$STATUS_PORT")
  kill -0 "$SRVD_PID" || die "srvd exited during the run"
  grep -q ' ERROR \| WARN ' "$T/srvd-$n-$ttl.log" && log "srvd warned: $(grep -m3 ' ERROR \| WARN ' "$T/srvd-$n-$ttl.log")"
  stop_pid "$SRVD_PID"
  local cpu_h rss_mib
  read -r cpu_h rss_mib <<<"$(python3 -c '
import sys
n0, n1, run, hwm = map(float, sys.argv[1:])
print(f"{(n1-n0)/1e9*3600/run:.3f} {hwm/1024:.2f}")
' "$ns0" "$ns1" "$RUN" "$hwm")"
  echo "| $n | $ttl s | $cpu_h s | ${cpu_budget/-/—} | $(verdict "$cpu_h" "$cpu_budget") | $rss_mib MiB | ${rss_budget/-/—} | $(verdict "$rss_mib" "$rss_budget") | $((q1 - q0)) | $((c1 - c0)) | $load |"
  result "idle.$n.$ttl.cpu_s_per_h" "$cpu_h"
  result "idle.$n.$ttl.rss_mib" "$rss_mib"
  [ "$n" -ne 10 ] || RSS10+=("$rss_mib")
}

# The peak RSS of a fresh srvd moves by a few hundred KiB from one start to
# the next (which pages of code the kernel maps in around each one touched):
# the 10-template budget is judged on the median of its three rows.
RSS10=()

report() {
  echo "# Idle cost"
  echo
  echo "Measured by \`benches/idle.sh\` on $(machine "$SRVD")"
  echo
  echo "Each template its own SRV name of $TARGETS records in its own zone (Knot DNS on loopback)," \
    "\`interval = \"1s\"\`, status endpoint on, a fresh srvd per row. CPU is the time its threads ran" \
    "(/proc/PID/task/*/schedstat, nanoseconds) over $RUN s once every dest is written and read back," \
    "times $((3600 / RUN)) for an hour: a short run, extrapolated. Queries and cycles are those of the $RUN s window."
  echo
  echo "| templates | TTL | CPU per hour | budget | | peak RSS | budget | | DNS queries | cycles | load |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  measure 10 5 1.0 6
  measure 10 30 0.3 6
  measure 10 300 0.1 6
  local n
  for n in $SIZES; do
    case $n in
      10) ;;
      1000) measure "$n" 30 20 16 ;;
      *) measure "$n" 30 - - ;;
    esac
  done
  echo
  local median
  median=$(printf '%s\n' "${RSS10[@]}" | sort -n | sed -n 2p)
  echo "Peak RSS with 10 templates, median of its three rows (${RSS10[*]} MiB): **$median MiB**," \
    "budget 6 MiB: $(verdict "$median" 6)."
  echo
  echo "TTL 300 s is longer than the window: an hour of it also holds 12 expiries of each name," \
    "each one query and one cycle (their cost is the TTL 5 s row's, per expiry)."
  echo
  echo "Load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)."
}

report | tee "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
log "wrote $OUT"
