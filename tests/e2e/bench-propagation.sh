#!/usr/bin/env bash
# How long a DNS change takes to reach clients through srvd and HAProxy: on
# the end-to-end stack (stack.sh), the time from the nsupdate that swaps the
# only SRV record to another backend until the client's first answer from
# that backend. p50/p95/max over CHANGES swaps, for each TTL:INTERVAL pair in
# SETTINGS, printed as a Markdown table with the machine that produced it.
# A benchmark, not a test: it asserts nothing and CI does not run it.
#
#   SRVD_BIN=target/release/srvd bash tests/e2e/bench-propagation.sh
#   CHANGES=20 SETTINGS="1:1 5:1" RATE=100 (the defaults)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CHANGES=${CHANGES:-20}
SETTINGS=${SETTINGS:-1:1 5:1}
RATE=${RATE:-100}

# One TTL/interval pair, in its own process so that each gets a fresh stack.
# Prints "TTL INTERVAL CHANGES P50 P95 MAX FAILED RELOADS".
one() {
  # Only the result line goes to stdout; everything else to stderr.
  exec 3>&1 1>&2
  TTL=$1
  INTERVAL=$2
  . "$here/../lib.sh"
  . "$here/stack.sh"
  stack_init
  start_dns
  start_backends
  write_srvd_config
  render_first || die "srvd could not render the first haproxy.cfg"
  start_haproxy
  start_client "$RATE"
  start_srvd
  wait_for 10 status_has 'd["Ok"]' || die "srvd did not become ready"
  local current=db-001 next latency i pause
  local latencies=()
  for i in $(seq "$CHANGES"); do
    next=db-002
    [ "$current" = db-002 ] && next=db-001
    # A random pause, so that changes land at random points of the poll
    # interval and of the TTL, as real ones do.
    pause=$(python3 -c 'import random, sys; print(f"{1 + random.random() * (int(sys.argv[1]) + int(sys.argv[2])):.2f}")' "$TTL" "$INTERVAL")
    sleep "$pause"
    local t0
    t0=$(now)
    dns_update \
      "update delete $SRV_NAME. SRV 10 10 $BACKEND_PORT $current.example.com." \
      "update add $SRV_NAME. $TTL SRV 10 10 $BACKEND_PORT $next.example.com." ||
      die "nsupdate failed"
    wait_for 60 python3 "$HELPER" first "$CLIENT_LOG" "$next" "$t0" >/dev/null ||
      die "$next never answered after change $i"
    latency=$(python3 "$HELPER" first "$CLIENT_LOG" "$next" "$t0")
    latencies+=("$latency")
    echo "  TTL $TTL, interval $INTERVAL: change $i ($current -> $next): ${latency}s" >&2
    current=$next
  done
  stop_client
  local failed reloads
  failed=$(python3 "$HELPER" failures "$CLIENT_LOG" | wc -l)
  reloads=$(haproxy_reloads | cut -d' ' -f1)
  printf '%s\n' "${latencies[@]}" | python3 -c '
import math, sys
xs = sorted(float(l) for l in sys.stdin if l.strip())
def rank(p):  # nearest-rank percentile
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]
print(sys.argv[1], sys.argv[2], len(xs), f"{rank(50):.2f}", f"{rank(95):.2f}", f"{xs[-1]:.2f}", sys.argv[3], sys.argv[4])
' "$TTL" "$INTERVAL" "$failed" "$reloads" >&3
}

if [ "${1:-}" = --one ]; then
  one "$2" "$3"
  exit
fi

results=()
for pair in $SETTINGS; do
  echo "== TTL ${pair%%:*} s, interval ${pair##*:} s: $CHANGES changes" >&2
  line=$(bash "$0" --one "${pair%%:*}" "${pair##*:}") || { echo "benchmark failed for $pair" >&2; exit 1; }
  results+=("$line")
done

srvd=${SRVD_BIN:-}
[ -n "$srvd" ] || srvd=$(. "$here/../lib.sh"; srvd_bin)
echo
echo "Propagation: nsupdate swapping the only SRV record -> first answer from the new backend at the client"
echo "(client at $RATE connections/s through HAProxy; wait unset, cooldown 0, dns_timeout 500ms)"
echo
echo "| SRV and A TTL | interval | wait | changes | p50 | p95 | max | failed connections | HAProxy reloads |"
echo "|---|---|---|---|---|---|---|---|---|"
for line in "${results[@]}"; do
  read -r ttl interval n p50 p95 max failed reloads <<<"$line"
  echo "| $ttl s | $interval s | none | $n | $p50 s | $p95 s | $max s | $failed | $reloads |"
done
echo
echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), Linux $(uname -r);" \
  "$(haproxy -v | head -n1 | cut -d' ' -f1-3); $(knotd --version 2>&1 | head -n1); $("$srvd" --version)"
