#!/usr/bin/env bash
# DNS load: the queries one SRV name costs at the DNS server, per minute, at
# TTL 1, 5, 30 and 300 with interval 1 s. One Knot DNS with a zone per TTL and
# per srvd; two srvd processes started together, each with one template per
# zone:
#   srvd A   resolve_targets = false (the default): SRV queries only
#   srvd B   resolve_targets = true: SRV, then A and AAAA for each of the
#            3 targets (the seed deployment's setting); plus, at TTL 30, a
#            name with a fourth target that has no address at all (a host
#            removed from DNS while its SRV record stays)
# Knot's mod-stats counts every query per zone and type over exactly SECONDS
# from srvd's start (its first lookup included); a packet capture on loopback
# timestamps each UDP query, for the smallest gap between two queries for the
# same name and type; srvd's own srvd_dns_queries_total is the cross-check.
#
#   SRVD_BIN=target/release/srvd bash benches/dns-load.sh
#   SECONDS_RUN=60 TTLS="1 5 30 300" (the defaults)
# Budget: per minute at most 60/TTL + 1 queries for a name, and never more
# than one per interval.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN=${SECONDS_RUN:-60}
TTLS=${TTLS:-1 5 30 300}
INTERVAL=1
PORT_A=$((BASE_PORT + 10))
PORT_B=$((BASE_PORT + 11))

SRVD=$(srvd_bin) || die "no srvd to measure"
bench_init dns-load
[ "$(id -u)" -eq 0 ] || die "the packet capture needs root"

for ttl in $TTLS; do
  add_zone "a-ttl$ttl" "$ttl"
  add_zone "b-ttl$ttl" "$ttl"
done
add_zone c-ttl30 30
echo "$SRV_LABEL IN SRV 10 10 3306 db-9" >>"$T/knot/zones/c-ttl30.$PARENT.zone"
start_dns

# srvd_config FILE PREFIX RESOLVE STATUS_PORT
srvd_config() {
  local file=$1 prefix=$2 resolve=$3 port=$4 ttl
  {
    echo "nameservers = [\"$DNS_ADDR:$DNS_PORT\"]"
    echo "interval = \"${INTERVAL}s\""
    echo "resolve_targets = $resolve"
    echo "status_port = $port"
    for ttl in $TTLS; do
      srvd_template "$prefix-ttl$ttl" "$TEMPLATE" "$T/out/$prefix-ttl$ttl.cfg" "$SRV_LABEL.$prefix-ttl$ttl.$PARENT"
    done
  } >"$file"
}
mkdir -p "$T/out"
srvd_config "$T/a.toml" a false "$PORT_A"
srvd_config "$T/b.toml" b true "$PORT_B"
srvd_template c-ttl30 "$TEMPLATE" "$T/out/c-ttl30.cfg" "$SRV_LABEL.c-ttl30.$PARENT" >>"$T/b.toml"

# The readiness probe's queries are in the baseline, not in count.
start_capture

load_before=$(load1)
log "srvd DNS load: TTL $TTLS, interval ${INTERVAL} s, ${RUN} s (load $load_before)"
t0=$(now)
start_srvd "$T/a.toml" "$T/a.log"
PID_A=$SRVD_PID
start_srvd "$T/b.toml" "$T/b.log"
PID_B=$SRVD_PID
# Half an interval before the end: the counters hold the polls at 0 s, 1 s,
# ... RUN-1 s of srvd's run, whatever the jitter of its start.
t_end=$(python3 -c 'import sys; print(float(sys.argv[1]) + float(sys.argv[2]) - float(sys.argv[3]) / 2)' "$t0" "$RUN" "$INTERVAL")
python3 -c 'import sys, time; time.sleep(max(0, float(sys.argv[1]) - time.time()))' "$t_end"
zone_stats >"$T/stats.txt"
load_after=$(load1)
kill -0 "$PID_A" && kill -0 "$PID_B" || die "srvd exited during the run"

# Cross-check: srvd's counters and Knot's, read together (again if a poll
# slipped in between).
for attempt in 1 2 3 4 5; do
  qa=$(metric srvd_dns_queries_total "http://127.0.0.1:$PORT_A")
  qb=$(metric srvd_dns_queries_total "http://127.0.0.1:$PORT_B")
  zone_stats >"$T/stats2.txt"
  [ "$qa" = "$(metric srvd_dns_queries_total "http://127.0.0.1:$PORT_A")" ] &&
    [ "$qb" = "$(metric srvd_dns_queries_total "http://127.0.0.1:$PORT_B")" ] && break
  sleep 0.3
done
knot_a=0
knot_b=0
for ttl in $TTLS; do
  knot_a=$((knot_a + $(count "a-ttl$ttl.$PARENT" total "$T/stats2.txt")))
  knot_b=$((knot_b + $(count "b-ttl$ttl.$PARENT" total "$T/stats2.txt")))
done
knot_b=$((knot_b + $(count "c-ttl30.$PARENT" total "$T/stats2.txt")))

zones=()
for ttl in $TTLS; do zones+=("a-ttl$ttl.$PARENT" "b-ttl$ttl.$PARENT"); done
zones+=("c-ttl30.$PARENT")
python3 "$HELPER" gaps "$T/queries.log" "$INTERVAL" "${zones[@]}" >"$T/gaps.txt"

gap() { awk -v z="$1" '$1 == z { print $6 }' "$T/gaps.txt"; }
early() { awk -v z="$1" '$1 == z { print $7 }' "$T/gaps.txt"; }
budget() { python3 -c 'import sys; print(f"{float(sys.argv[2]) / float(sys.argv[1]) + 1:.3g}")' "$1" "$RUN"; }
within() { python3 -c 'import sys; print("within" if float(sys.argv[1]) <= float(sys.argv[2]) else "OVER")' "$1" "$2"; }

echo "### DNS load: srvd"
echo
echo "Queries Knot DNS answered per zone in the first $RUN s of srvd's run (its first lookup included), interval $INTERVAL s," \
  "$TARGETS targets per SRV name, every record at the TTL shown; load average $load_before before, $load_after after."
echo "\"Min gap\" is the smallest time between two queries for the same name and type (packet capture); \"early\" counts" \
  "gaps under 0.9 × interval, i.e. two queries in one interval."
echo
echo "| TTL | resolve_targets | queries in ${RUN} s (SRV + A + AAAA) | per name, at most | budget per name ($RUN/TTL + 1) | min gap | early | |"
echo "|---|---|---|---|---|---|---|---|"
# row ZONE TTL LABEL KEY
row() {
  local z="$1.$PARENT" ttl=$2 label=$3 key=$4 b srv a aaaa total per_name ok g
  b=$(budget "$ttl")
  srv=$(count "$z" SRV)
  a=$(count "$z" A)
  aaaa=$(count "$z" AAAA)
  total=$(count "$z" total)
  # The busiest name and type: the SRV name, or a target's A or AAAA.
  per_name=$(python3 "$HELPER" busiest "$T/queries.log" "$z" "$t_end")
  ok=$(within "$per_name" "$b")
  [ "$(early "$z")" = 0 ] || ok=OVER
  g=$(gap "$z")
  [ "$g" = - ] || g="$g s"
  echo "| $ttl s | $label | $total ($srv + $a + $aaaa) | $per_name | $b | $g | $(early "$z") | $ok |"
  result "dns.$key" "$total"
  result "dns.$key.srv" "$srv"
  result "dns.$key.busiest" "$per_name"
  result "dns.$key.verdict" "$ok"
}
for ttl in $TTLS; do
  row "a-ttl$ttl" "$ttl" false "a.ttl$ttl"
  row "b-ttl$ttl" "$ttl" true "b.ttl$ttl"
done
row c-ttl30 30 "true, a 4th target without any address" c.ttl30
echo
echo "Cross-check: srvd_dns_queries_total $qa (resolve_targets = false) and $qb (true); Knot counted $knot_a and $knot_b" \
  "for the same zones at the same moment."
echo
result dns.load "$load_before/$load_after"
result dns.crosscheck "$qa/$knot_a $qb/$knot_b"
