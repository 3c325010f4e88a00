#!/usr/bin/env bash
# Idle footprint: srvd (release build) with 10 templates, each with its own
# SRV name in its own zone, interval 1 s, against Knot DNS on loopback, with
# the status endpoint on. Nothing changes during the run: this is what srvd
# costs a host that only follows its records.
#
#   peak RSS    VmHWM of /proc/PID/status at the end of the run (start included)
#   CPU         utime + stime of /proc/PID/stat over exactly SECONDS once every
#               template is written, times 3600/SECONDS (also from the
#               threads' schedstat, in nanoseconds, as a cross-check)
#
#   SRVD_BIN=target/release/srvd bash benches/footprint.sh
#   SECONDS_RUN=60 TTL=30 TEMPLATES=10 RESOLVE_TARGETS=true (the defaults)
# Budgets: peak RSS <= 6 MiB, CPU <= 2 s per hour.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN=${SECONDS_RUN:-60}
FP_TTL=${TTL:-30}
N=${TEMPLATES:-10}
RESOLVE=${RESOLVE_TARGETS:-true}
STATUS_PORT=$((BASE_PORT + 10))

SRVD=$(bench_srvd_bin)
bench_init footprint

for i in $(seq 0 $((N - 1))); do add_zone "f$i" "$FP_TTL"; done
start_dns
{
  echo "nameservers = [\"$DNS_ADDR:$DNS_PORT\"]"
  echo "interval = \"1s\""
  echo "resolve_targets = $RESOLVE"
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
mkdir -p "$T/out"

all_written() { [ "$(ls "$T/out" | grep -c '\.cfg$')" -eq "$N" ]; }

load_before=$(load1)
start_srvd "$T/srvd.toml" "$T/srvd.log"
wait_for 30 all_written || die "srvd did not write its $N templates: $(tail -n 5 "$T/srvd.log")"
# Let the first cycle's reloads and the status endpoint settle.
sleep 2
read -r _ _ ticks0 ns0 _ < <(python3 "$HELPER" procstat "$SRVD_PID")
q0=$(metric "$STATUS_PORT" srvd_dns_queries_total)
log "srvd footprint: $N templates, TTL $FP_TTL s, interval 1 s, measuring ${RUN} s (load $(load1))"
sleep "$RUN"
read -r hwm rss ticks1 ns1 threads < <(python3 "$HELPER" procstat "$SRVD_PID")
q1=$(metric "$STATUS_PORT" srvd_dns_queries_total)
load_after=$(load1)
kill -0 "$SRVD_PID" || die "srvd exited during the run"
grep -q ' ERROR \| WARN ' "$T/srvd.log" && log "srvd logged warnings or errors: $(grep -m3 ' ERROR \| WARN ' "$T/srvd.log")"

hz=$(getconf CLK_TCK)
read -r hwm_mib rss_mib cpu_h cpu_h_ns <<<"$(python3 -c '
import sys
hwm, rss, t0, t1, n0, n1, hz, run = map(float, sys.argv[1:])
print(f"{hwm/1024:.2f} {rss/1024:.2f} {(t1-t0)/hz*3600/run:.2f} {(n1-n0)/1e9*3600/run:.2f}")
' "$hwm" "$rss" "$ticks0" "$ticks1" "$ns0" "$ns1" "$hz" "$RUN")"
verdict() { python3 -c 'import sys; print("within" if float(sys.argv[1]) <= float(sys.argv[2]) else "OVER")' "$1" "$2"; }

echo "### Idle footprint: srvd"
echo
echo "$N templates (examples/haproxy.cfg.tmpl), each its own SRV name of $TARGETS targets in its own zone, TTL $FP_TTL s," \
  "interval 1 s, resolve_targets = $RESOLVE, status endpoint on; Knot DNS on loopback; ${RUN} s once every file is written" \
  "(load average $load_before before, $load_after after)."
echo
echo "| figure | srvd | budget | |"
echo "|---|---|---|---|"
echo "| peak RSS (VmHWM) | $hwm_mib MiB | ≤ 6 MiB | $(verdict "$hwm_mib" 6) |"
echo "| RSS at the end (VmRSS) | $rss_mib MiB | | |"
echo "| CPU per hour (utime+stime over ${RUN} s × $((3600 / RUN))) | $cpu_h s | ≤ 2 s/h | $(verdict "$cpu_h" 2) |"
echo "| CPU per hour (threads' schedstat, ns) | $cpu_h_ns s | ≤ 2 s/h | $(verdict "$cpu_h_ns" 2) |"
echo "| threads | $threads | | |"
echo "| DNS queries in the ${RUN} s (srvd_dns_queries_total) | $((q1 - q0)) | | |"
echo
result footprint.rss_mib "$hwm_mib"
result footprint.cpu_s_per_h "$cpu_h"
result footprint.cpu_s_per_h_ns "$cpu_h_ns"
result footprint.load "$load_before/$load_after"
