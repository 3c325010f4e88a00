#!/usr/bin/env bash
# Propagation to clients: how long a DNS change takes to reach them through
# srvd and a real HAProxy. On the end-to-end stack of tests/e2e (stack.sh),
# the time from the nsupdate that swaps the only SRV record to another
# backend until the client's first answer from that backend. p50/p95/max
# over CHANGES swaps, for each TTL:INTERVAL pair in SETTINGS, printed as a
# Markdown table with the machine that produced it. propagation.sh measures
# srvd's part of it alone (to dest rewritten and the reload started);
# this adds the check, HAProxy's reload and its new worker. Not one of
# run.sh's default parts (SRVD_BENCH_PARTS=client-propagation runs it).
#
#   SRVD_BIN=target/release/srvd bash benches/client-propagation.sh
#   CHANGES=20 SETTINGS="1:1 5:1" RATE=100 (the defaults)
# It uses the e2e suite's loopback ports (Knot 5300, HAProxy 3306, status
# 18081): it cannot run beside that suite.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
CHANGES=${CHANGES:-20}
SETTINGS=${SETTINGS:-1:1 5:1}
RATE=${RATE:-100}

# One TTL/interval pair, in its own process so that each gets a fresh stack.
# Prints "TTL INTERVAL CHANGES P50 P95 MAX FAILED RELOADS", latencies in ms.
one() {
  # Only the result line goes to stdout; everything else to stderr.
  exec 3>&1 1>&2
  TTL=$1
  INTERVAL=$2
  . "$root/tests/lib.sh"
  . "$root/tests/e2e/stack.sh"
  stack_init
  start_dns
  start_backends
  write_srvd_config
  render_first || die "srvd could not render the first haproxy.cfg"
  start_haproxy
  start_client "$RATE"
  start_stack_srvd
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
  local n p50 p95 max
  read -r n p50 p95 max < <(printf '%s\n' "${latencies[@]}" | awk '{ print $1 * 1000 }' |
    python3 "$here/bench.py" pct)
  echo "$TTL $INTERVAL $n $p50 $p95 $max $failed $reloads" >&3
}

if [ "${1:-}" = --one ]; then
  one "$2" "$3"
  exit
fi

. "$here/lib.sh"
log "client propagation: TTL:interval $SETTINGS, $CHANGES changes each"
# shellcheck disable=SC2086 # a list of pairs
out=$(per_setting "client propagation" $SETTINGS) || exit 1
mapfile -t results <<<"$out"

echo "### Propagation to clients: srvd and HAProxy"
echo
echo "From an nsupdate swapping the only SRV record to another backend, until the client's first answer" \
  "from it through HAProxy (client at $RATE connections/s; check_cmd \`haproxy -c\`, reload by SIGUSR2 to the" \
  "master; wait unset, cooldown 0, dns_timeout 500ms). Machine: $(machine "$(srvd_bin)")."
echo
echo "| SRV and A TTL | interval | wait | changes | p50 | p95 | max | failed connections | HAProxy reloads |"
echo "|---|---|---|---|---|---|---|---|---|"
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f s", ms / 1000 }'; }
for line in "${results[@]}"; do
  read -r ttl interval n p50 p95 max failed reloads <<<"$line"
  echo "| $ttl s | $interval s | none | $n | $(secs "$p50") | $(secs "$p95") | $(secs "$max") | $failed | $reloads |"
done
echo
