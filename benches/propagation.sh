#!/usr/bin/env bash
# Propagation: the time from a record change at the DNS server to dest
# rewritten and to the reload command started. Knot DNS serves one SRV record
# at TTL; nsupdate swaps it to another target (whose A record exists) CHANGES
# times, at random points of the poll interval and the TTL; srvd renders
# examples/haproxy.cfg.tmpl with resolve_targets = true, no check_cmd, and a
# reload_cmd that records when it started. Measured from the moment Knot
# acknowledged the update. p50/p95/max per TTL:INTERVAL pair. Changes land
# uniformly over srvd's polling cycle (the TTL rounded up to whole
# intervals), so p50 is about half the cycle and p95 most of it.
#
#   SRVD_BIN=target/release/srvd bash benches/propagation.sh
#   CHANGES=20 SETTINGS="1:1 5:1" (the defaults)
# (client-propagation.sh measures the same change through a real HAProxy,
# up to the first client connection that reaches the new backend.)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CHANGES=${CHANGES:-20}
SETTINGS=${SETTINGS:-1:1 5:1}
STATUS_PORT=$((BASE_PORT + 12))

# One TTL:INTERVAL pair, on a fresh Knot and srvd. Prints
# "TTL INTERVAL N DEST_P50 DEST_P95 DEST_MAX RELOAD_P50 RELOAD_P95 RELOAD_MAX LOAD CHECK_MS".
one() {
  exec 3>&1 1>&2
  local ttl=$1 interval=$2
  SRVD=$(srvd_bin) || die "no srvd to measure"
  bench_init propagation
  TARGETS=1 add_zone p "$ttl"
  start_dns
  local zone="p.$PARENT"
  cat >"$T/srvd.toml" <<EOF
src = "$TEMPLATE"
dest = "$T/haproxy.cfg"
domain = "$SRV_LABEL.$zone"
nameservers = ["$DNS_ADDR:$DNS_PORT"]
resolve_targets = true
interval = "${interval}s"
reload_cmd = "sh -c 'date +%s.%N >> $T/reloads'"
status_port = $STATUS_PORT
EOF
  start_srvd "$T/srvd.toml" "$T/srvd.log"
  wait_for 10 test -s "$T/haproxy.cfg" || die "srvd did not write its file: $(tail -n 5 "$T/srvd.log")"
  local load_before
  load_before=$(load1)
  log "propagation: TTL $ttl s, interval $interval s, $CHANGES changes (load $load_before)"
  python3 "$HELPER" propagate mode=dest dest="$T/haproxy.cfg" marker="$T/reloads" \
    server="$DNS_ADDR" port="$DNS_PORT" zone="$zone" name="$SRV_LABEL.$zone" tsig="$TSIG" \
    ttl="$ttl" interval="$interval" changes="$CHANGES" targets=db-1,db-2 addrs=127.0.0.11,127.0.0.12 \
    >"$T/latencies" || die "a change was not followed: $(tail -n 5 "$T/srvd.log")"
  # What a check_cmd of `haproxy -c` would add before the rename (median of 5).
  local check=-
  if command -v haproxy >/dev/null; then
    check=$(for i in 1 2 3 4 5; do
      python3 -c 'import subprocess, sys, time
t = time.time(); subprocess.run(["haproxy", "-c", "-q", "-f", sys.argv[1]], check=True)
print(f"{(time.time() - t) * 1000:.0f}")' "$T/haproxy.cfg"
    done | python3 "$HELPER" pct | cut -d' ' -f2)
  fi
  read -r n d50 d95 dmax < <(cut -d' ' -f1 "$T/latencies" | python3 "$HELPER" pct)
  read -r _ r50 r95 rmax < <(cut -d' ' -f2 "$T/latencies" | python3 "$HELPER" pct)
  echo "$ttl $interval $n $d50 $d95 $dmax $r50 $r95 $rmax $load_before/$(load1) $check" >&3
}

if [ "${1:-}" = --one ]; then
  one "$2" "$3"
  exit
fi

# shellcheck disable=SC2086 # a list of pairs
out=$(per_setting propagation $SETTINGS) || exit 1
mapfile -t lines <<<"$out"

echo "### Propagation: srvd"
echo
echo "From Knot acknowledging an nsupdate that swaps the only SRV record to another target, until dest is replaced" \
  "(seen by polling every 1 ms) and until the reload command started; $CHANGES changes per row, landing uniformly" \
  "over srvd's polling cycle (TTL rounded up to whole intervals: expect p50 about half of it, p95 most of it);" \
  "resolve_targets = true, no check_cmd, wait and cooldown unset."
echo
echo "| TTL | interval | changes | dest rewritten p50 | p95 | max | reload started p50 | p95 | max | load average |"
echo "|---|---|---|---|---|---|---|---|---|---|"
check=-
for line in "${lines[@]}"; do
  read -r ttl interval n d50 d95 dmax r50 r95 rmax load check <<<"$line"
  echo "| $ttl s | $interval s | $n | $d50 ms | $d95 ms | $dmax ms | $r50 ms | $r95 ms | $rmax ms | $load |"
  result "prop.ttl$ttl.int$interval" "$d50/$d95/$r50/$r95"
  result "prop.ttl$ttl.int$interval.load" "$load"
done
echo
[ "$check" = - ] || echo "A check_cmd of \`haproxy -c -q -f {{ src }}\` on this file takes $check ms (median of 5), before the rename."
echo
