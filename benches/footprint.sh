#!/usr/bin/env bash
# Idle footprint: srvd (release build) with 10 templates, each with its own
# SRV name in its own zone, interval 1 s, against Knot DNS on loopback, with
# the status endpoint on. Nothing changes during the run: this is what srvd
# costs a host that only follows its records. Measured twice, on a fresh srvd
# each time: at the default `resolve_targets = false` (one SRV query per
# name per TTL) and with `resolve_targets = true` (also each target's A and
# AAAA: 7 times the queries for 3 targets).
#
#   peak RSS    VmHWM of /proc/PID/status at the end of the run (start
#               included), and how much of the RSS at the end is srvd's own
#               memory (RssAnon) and how much the mapped pages of its binary
#               and of libc (RssFile)
#   CPU         utime + stime of /proc/PID/stat over exactly SECONDS once every
#               template is written, times 3600/SECONDS (also from the
#               threads' schedstat, in nanoseconds, as a cross-check)
#
#   SRVD_BIN=target/release/srvd bash benches/footprint.sh
#   SECONDS_RUN=60 TTL=30 TEMPLATES=10 RESOLVE_TARGETS="false true" (the defaults)
# Budgets: peak RSS <= 6 MiB, CPU <= 2 s per hour.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN=${SECONDS_RUN:-60}
FP_TTL=${TTL:-30}
N=${TEMPLATES:-10}
RESOLVE_SETTINGS=${RESOLVE_TARGETS:-false true}
STATUS_PORT=$((BASE_PORT + 10))

SRVD=$(srvd_bin) || die "no srvd to measure"
bench_init footprint

for i in $(seq 0 $((N - 1))); do add_zone "f$i" "$FP_TTL"; done
start_dns

verdict() { python3 -c 'import sys; print("within" if float(sys.argv[1]) <= float(sys.argv[2]) else "OVER")' "$1" "$2"; }
all_written() { [ "$(find "$T/out" -name '*.cfg' | wc -l)" -eq "$N" ]; }

# measure RESOLVE: one run of a fresh srvd; prints its table row and records
# its results (keys footprint.* for true, footprint.default.* for false).
measure() {
  local resolve=$1 key=footprint
  [ "$resolve" = true ] || key=footprint.default
  rm -rf "$T/out"
  mkdir -p "$T/out"
  {
    echo "nameservers = [\"$DNS_ADDR:$DNS_PORT\"]"
    echo "interval = \"1s\""
    echo "resolve_targets = $resolve"
    echo "status_port = $STATUS_PORT"
    for i in $(seq 0 $((N - 1))); do
      cat <<EOF
[[template]]
name = "t$i"
src = "$TEMPLATE"
dest = "$T/out/t$i.cfg"
domain = "$SRV_LABEL.f$i.$PARENT"
EOF
    done
  } >"$T/srvd.toml"

  local load_before load_after
  load_before=$(load1)
  start_srvd "$T/srvd.toml" "$T/srvd-$resolve.log"
  wait_for 30 all_written || die "srvd did not write its $N templates: $(tail -n 5 "$T/srvd-$resolve.log")"
  # Let the first cycle's reloads and the status endpoint settle.
  sleep 2
  local ticks0 ns0 q0 hwm rss ticks1 ns1 threads anon mapped q1
  read -r _ _ ticks0 ns0 _ _ _ < <(python3 "$HELPER" procstat "$SRVD_PID")
  q0=$(metric srvd_dns_queries_total "http://127.0.0.1:$STATUS_PORT")
  log "srvd footprint: $N templates, TTL $FP_TTL s, interval 1 s, resolve_targets = $resolve, measuring ${RUN} s (load $(load1))"
  sleep "$RUN"
  read -r hwm rss ticks1 ns1 threads anon mapped < <(python3 "$HELPER" procstat "$SRVD_PID")
  q1=$(metric srvd_dns_queries_total "http://127.0.0.1:$STATUS_PORT")
  load_after=$(load1)
  kill -0 "$SRVD_PID" || die "srvd exited during the run"
  if grep -q ' ERROR \| WARN ' "$T/srvd-$resolve.log"; then
    log "srvd logged warnings or errors: $(grep -m3 ' ERROR \| WARN ' "$T/srvd-$resolve.log")"
  fi
  stop_pid "$SRVD_PID"

  local hz hwm_mib rss_mib anon_mib mapped_mib cpu_h cpu_h_ns
  hz=$(getconf CLK_TCK)
  read -r hwm_mib rss_mib anon_mib mapped_mib cpu_h cpu_h_ns <<<"$(python3 -c '
import sys
hwm, rss, anon, mapped, t0, t1, n0, n1, hz, run = map(float, sys.argv[1:])
print(f"{hwm/1024:.2f} {rss/1024:.2f} {anon/1024:.2f} {mapped/1024:.2f} {(t1-t0)/hz*3600/run:.2f} {(n1-n0)/1e9*3600/run:.2f}")
' "$hwm" "$rss" "$anon" "$mapped" "$ticks0" "$ticks1" "$ns0" "$ns1" "$hz" "$RUN")"

  echo "| $resolve | $hwm_mib MiB | $(verdict "$hwm_mib" 6) | $rss_mib MiB: $anon_mib + $mapped_mib | $cpu_h s | $cpu_h_ns s | $(verdict "$cpu_h" 2); $(verdict "$cpu_h_ns" 2) | $threads | $((q1 - q0)) | $load_before/$load_after |"
  result "$key.rss_mib" "$hwm_mib"
  result "$key.anon_mib" "$anon_mib"
  result "$key.mapped_mib" "$mapped_mib"
  result "$key.cpu_s_per_h" "$cpu_h"
  result "$key.cpu_s_per_h_ns" "$cpu_h_ns"
  result "$key.load" "$load_before/$load_after"
}

echo "### Idle footprint: srvd"
echo
echo "$N templates (examples/haproxy.cfg.tmpl), each its own SRV name of $TARGETS targets in its own zone, TTL $FP_TTL s," \
  "interval 1 s, status endpoint on; Knot DNS on loopback; ${RUN} s once every file is written, a fresh srvd for each row." \
  "RSS at the end is split into srvd's own memory (RssAnon: heap, stacks) and the pages of its binary and libc it has mapped (RssFile, shared with the page cache)."
echo
echo "| resolve_targets | peak RSS (VmHWM) | ≤ 6 MiB | RSS at the end: own + mapped | CPU per hour (utime+stime × $((3600 / RUN))) | CPU per hour (schedstat) | ≤ 2 s/h | threads | DNS queries in the ${RUN} s | load average |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for resolve in $RESOLVE_SETTINGS; do
  measure "$resolve"
done
echo
