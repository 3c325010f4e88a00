#!/usr/bin/env bash
# The same figures for HAProxy's own DNS discovery, `server-template` with a
# `resolvers` section (its defaults: `timeout resolve 1s`, `hold valid 10s`),
# against the same kind of zones on the same Knot DNS set-up, for comparison
# with srvd's (dns-load.sh, footprint.sh, propagation.sh):
#
#   DNS load     one HAProxy, a backend per zone at TTL 1, 5, 30 and 300
#                (3 targets each): Knot's mod-stats over SECONDS
#   footprint    10 backends of `server-template ... 3 _mysql._tcp...` at
#                TTL 30, beside the same HAProxy config with the 30 servers
#                written out (what srvd renders): peak RSS and CPU per hour
#   propagation  an SRV record swapped to another target (TTL 1, then 5):
#                time until HAProxy's runtime API shows a usable server at
#                the new target's address
# All three HAProxy processes of the first two parts run at the same time.
#
#   bash benches/haproxy-resolvers.sh
#   SECONDS_RUN=60 TTLS="1 5 30 300" CHANGES=20 PROP_TTLS="1 5" (the defaults)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN=${SECONDS_RUN:-60}
TTLS=${TTLS:-1 5 30 300}
CHANGES=${CHANGES:-20}
PROP_TTLS=${PROP_TTLS:-1 5}
N=${TEMPLATES:-10}
FP_TTL=30

bench_init haproxy haproxy
[ "$(id -u)" -eq 0 ] || die "the packet capture needs root"

for ttl in $TTLS; do
  add_zone "h-ttl$ttl" "$ttl"
  # The same SRV records, with their targets in another zone.
  add_zone "ho-ttl$ttl" "$ttl" "hx-ttl$ttl.$PARENT"
  TARGETS=0 add_zone "hx-ttl$ttl" "$ttl"
done
for i in $(seq 0 $((N - 1))); do add_zone "hf$i" "$FP_TTL"; done
for ttl in $PROP_TTLS; do TARGETS=1 add_zone "hp-ttl$ttl" "$ttl"; done
start_dns

# haproxy_config FILE FRONTEND_PORT: the common part; backends are appended.
haproxy_config() {
  cat >"$1" <<EOF
global
  maxconn 1024
  stats socket $1.sock mode 600 level admin

defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s

resolvers bench
  nameserver knot $DNS_ADDR:$DNS_PORT

frontend mysql
  bind 127.0.0.1:$2
  default_backend b0
EOF
}

# A backend that follows an SRV name through the resolvers.
template_backend() {
  printf 'backend %s\n  balance roundrobin\n  server-template s %s %s resolvers bench init-addr none\n' "$1" "$TARGETS" "$2"
}

# start_haproxy CONFIG: HAProxy in the foreground (-db), one process.
start_haproxy() {
  haproxy -c -q -f "$1" || die "haproxy refused $1"
  haproxy -db -f "$1" >>"$1.log" 2>&1 &
  HAPROXY_PID=$!
  track_pid "$HAPROXY_PID"
  wait_for 10 test -S "$1.sock" || die "haproxy did not start: $(tail -n 5 "$1.log")"
}

# The DNS load config: a backend per TTL.
haproxy_config "$T/load.cfg" $((BASE_PORT + 20))
first=
for ttl in $TTLS; do
  template_backend "$([ -z "$first" ] && echo b0 || echo "b-ttl$ttl")" "$SRV_LABEL.h-ttl$ttl.$PARENT" >>"$T/load.cfg"
  template_backend "bo-ttl$ttl" "$SRV_LABEL.ho-ttl$ttl.$PARENT" >>"$T/load.cfg"
  first=1
done
# The footprint configs: 10 backends through the resolvers, or written out.
haproxy_config "$T/resolvers.cfg" $((BASE_PORT + 21))
haproxy_config "$T/static.cfg" $((BASE_PORT + 22))
for i in $(seq 0 $((N - 1))); do
  template_backend "b$i" "$SRV_LABEL.hf$i.$PARENT" >>"$T/resolvers.cfg"
  {
    printf 'backend b%s\n  balance roundrobin\n' "$i"
    for k in $(seq "$TARGETS"); do printf '  server db-%s 127.0.0.1%s:3306\n' "$k" "$k"; done
  } >>"$T/static.cfg"
done

start_capture
hz=$(getconf CLK_TCK)

load_before=$(load1)
log "HAProxy resolvers: DNS load at TTL $TTLS and footprint, ${RUN} s (load $load_before)"
t0=$(now)
start_haproxy "$T/load.cfg"
start_haproxy "$T/resolvers.cfg"
PID_R=$HAPROXY_PID
start_haproxy "$T/static.cfg"
PID_S=$HAPROXY_PID
# The footprint window starts once every slot is resolved and both are up.
all_resolved() {
  local i
  for i in $(seq 0 $((N - 1))); do
    [ "$(python3 "$HELPER" haproxy-addrs "$T/resolvers.cfg.sock" "b$i" | wc -l)" -eq "$TARGETS" ] || return 1
  done
}
wait_for 20 all_resolved || die "HAProxy did not resolve its servers"
sleep 2
read -r _ _ rt0 rn0 _ < <(python3 "$HELPER" procstat "$PID_R")
read -r _ _ st0 sn0 _ < <(python3 "$HELPER" procstat "$PID_S")
tf0=$(now)
t_end=$(python3 -c 'import sys; print(float(sys.argv[1]) + float(sys.argv[2]) - 0.5)' "$t0" "$RUN")
python3 -c 'import sys, time; time.sleep(max(0, float(sys.argv[1]) - time.time()))' "$t_end"
zone_stats >"$T/stats.txt"
python3 -c 'import sys, time; time.sleep(max(0, float(sys.argv[1]) + float(sys.argv[2]) - time.time()))' "$tf0" "$RUN"
read -r rhwm _ rt1 rn1 rthreads _ < <(python3 "$HELPER" procstat "$PID_R")
read -r shwm _ st1 sn1 sthreads _ < <(python3 "$HELPER" procstat "$PID_S")
load_after=$(load1)

zones=()
for ttl in $TTLS; do zones+=("h-ttl$ttl.$PARENT" "ho-ttl$ttl.$PARENT" "hx-ttl$ttl.$PARENT"); done
python3 "$HELPER" gaps "$T/queries.log" 1 "${zones[@]}" >"$T/gaps.txt"

echo "### HAProxy server-template + resolvers"
echo
echo "$(haproxy -v | head -n1 | cut -d' ' -f1-3), resolvers at their defaults (\`timeout resolve 1s\`, \`hold valid 10s\`)," \
  "\`server-template s $TARGETS <SRV name> resolvers bench init-addr none\`; load average $load_before before, $load_after after."
echo
echo "DNS load: queries Knot answered per SRV name in the first $RUN s of HAProxy's run, $TARGETS targets per name, the" \
  "targets' A records in the same zone (Knot adds them to the SRV answer's additional section, and HAProxy uses them)" \
  "or in another zone (no additional records: HAProxy asks each target's A and AAAA):"
echo
echo "| TTL | targets | queries in ${RUN} s (SRV + A + AAAA) | per name, at most | srvd's budget per name ($RUN/TTL + 1) | min gap | |"
echo "|---|---|---|---|---|---|---|"
for ttl in $TTLS; do
  for where in same other; do
    if [ "$where" = same ]; then
      z="h-ttl$ttl.$PARENT"
      srv=$(count "$z" SRV)
      a=$(count "$z" A)
      aaaa=$(count "$z" AAAA)
      total=$(count "$z" total)
      g=$(awk -v z="$z" '$1 == z { print $6 }' "$T/gaps.txt")
    else
      z="ho-ttl$ttl.$PARENT"
      x="hx-ttl$ttl.$PARENT"
      srv=$(count "$z" SRV)
      a=$(($(count "$z" A) + $(count "$x" A)))
      aaaa=$(($(count "$z" AAAA) + $(count "$x" AAAA)))
      total=$(($(count "$z" total) + $(count "$x" total)))
      g=$(awk -v z="$z" -v x="$x" '($1 == z || $1 == x) && $6 != "-" { if (m == "" || $6 < m) m = $6 } END { print (m == "" ? "-" : m) }' "$T/gaps.txt")
    fi
    per_name=$(python3 -c 'import sys; s, a, q, n = map(int, sys.argv[1:]); print(max(s, -(-a // n), -(-q // n)))' \
      "$srv" "$a" "$aaaa" "$TARGETS")
    b=$(python3 -c 'import sys; print(f"{float(sys.argv[2]) / float(sys.argv[1]) + 1:.3g}")' "$ttl" "$RUN")
    ok=$(python3 -c 'import sys; print("within" if float(sys.argv[1]) <= float(sys.argv[2]) else "over")' "$per_name" "$b")
    [ "$g" = - ] || g="$g s"
    echo "| $ttl s | $where zone | $total ($srv + $a + $aaaa) | $per_name | $b | $g | $ok |"
    result "haproxy.dns.$where.ttl$ttl" "$total"
  done
done
echo

read -r r_rss r_cpu r_cpu_ns s_rss s_cpu s_cpu_ns <<<"$(python3 -c '
import sys
rh, rt0, rt1, rn0, rn1, sh, st0, st1, sn0, sn1, hz, run = map(float, sys.argv[1:])
f = lambda x: f"{x:.2f}"
print(f(rh / 1024), f((rt1 - rt0) / hz * 3600 / run), f((rn1 - rn0) / 1e9 * 3600 / run),
      f(sh / 1024), f((st1 - st0) / hz * 3600 / run), f((sn1 - sn0) / 1e9 * 3600 / run))
' "$rhwm" "$rt0" "$rt1" "$rn0" "$rn1" "$shwm" "$st0" "$st1" "$sn0" "$sn1" "$hz" "$RUN")"
echo "Footprint: $N backends of $TARGETS servers, TTL $FP_TTL s, ${RUN} s once every slot is resolved, HAProxy" \
  "in one process (-db, $rthreads threads):"
echo
echo "| | peak RSS (VmHWM) | CPU per hour (utime+stime) | CPU per hour (schedstat) |"
echo "|---|---|---|---|"
echo "| HAProxy, server-template + resolvers | $r_rss MiB | $r_cpu s | $r_cpu_ns s |"
echo "| HAProxy, the same servers written out (srvd's output) | $s_rss MiB | $s_cpu s | $s_cpu_ns s |"
echo
result haproxy.fp.resolvers "$r_rss/$r_cpu/$r_cpu_ns"
result haproxy.fp.static "$s_rss/$s_cpu/$s_cpu_ns"
result haproxy.load "$load_before/$load_after"

# Propagation, on its own HAProxy once the others are stopped.
for pid in "${STARTED_PIDS[@]}"; do [ "$pid" = "$KNOT_PID" ] || stop_pid "$pid"; done
haproxy_config "$T/prop.cfg" $((BASE_PORT + 23))
first=
for ttl in $PROP_TTLS; do
  template_backend "$([ -z "$first" ] && echo b0 || echo "bp-ttl$ttl")" "$SRV_LABEL.hp-ttl$ttl.$PARENT" >>"$T/prop.cfg"
  first=1
done
start_haproxy "$T/prop.cfg"
echo "Propagation: from Knot acknowledging an nsupdate that swaps the only SRV record to another target until HAProxy's" \
  "runtime API shows a usable server at the new address (polled every 5 ms); $CHANGES changes per row:"
echo
echo "| TTL | timeout resolve | changes | p50 | p95 | max | load average |"
echo "|---|---|---|---|---|---|---|"
first=
for ttl in $PROP_TTLS; do
  backend=b0
  [ -z "$first" ] || backend="bp-ttl$ttl"
  first=1
  zone="hp-ttl$ttl.$PARENT"
  wait_for 10 test "$(python3 "$HELPER" haproxy-addrs "$T/prop.cfg.sock" "$backend")" = 127.0.0.11 ||
    die "HAProxy did not resolve $zone"
  lb=$(load1)
  log "HAProxy propagation: TTL $ttl s, $CHANGES changes (load $lb)"
  python3 "$HELPER" propagate mode=haproxy sock="$T/prop.cfg.sock" backend="$backend" \
    server="$DNS_ADDR" port="$DNS_PORT" zone="$zone" name="$SRV_LABEL.$zone" tsig="$TSIG" \
    ttl="$ttl" interval=1 changes="$CHANGES" targets=db-1,db-2 addrs=127.0.0.11,127.0.0.12 \
    >"$T/prop-$ttl" || die "HAProxy did not follow a change"
  read -r n p50 p95 max < <(python3 "$HELPER" pct <"$T/prop-$ttl")
  echo "| $ttl s | 1 s | $n | $p50 ms | $p95 ms | $max ms | $lb/$(load1) |"
  result "haproxy.prop.ttl$ttl" "$p50/$p95"
done
echo
