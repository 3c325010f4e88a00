#!/usr/bin/env bash
# HAProxy without reloads, measured: from a DNS change seen by srvd (a DNS
# NOTIFY sent to it right after the nsupdate) to HAProxy routing a new
# connection to the new server, p50 and p95 over CHANGES changes; and
# HAProxy's processes and resident memory (master and every worker, old ones
# included) before and after them, with a pool of long-lived sessions open
# throughout. Four runs, each on a fresh stack:
#
#   runtime  check    haproxy_socket (runtime API), check_cmd `haproxy -c`
#   runtime  nocheck  the same with `nocheck = true` (check_cmd not run)
#   reload   check    reloads through the master CLI (haproxy_master_socket)
#   reload   nocheck  the same with `nocheck = true`
#
# plus `haproxy -c` alone on the same file, since it is the largest part of a
# change that needs no reload. The stack is tests/runtime's: Knot DNS,
# HAProxy 2.6 in master-worker mode, backends on 127.0.0.21-28, its template.
# Each change makes another backend the only active server (db-001 stays as a
# backup): the new server is added, the old one drained and deleted (runtime),
# or HAProxy reloads (reload). The pool holds 16 sessions, each recycled
# after a random 0-60 s, as an application's pool does.
#
#   SRVD_BIN=target/release/srvd bash benches/haproxy-runtime.sh
#   CHANGES=100 RUNS="runtime:check runtime:nocheck reload:check reload:nocheck"
# Writes docs/results/haproxy-runtime.md (RESULTS=path to write elsewhere).
# It uses tests/runtime's loopback ports: it cannot run beside that suite.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
CHANGES=${CHANGES:-100}
RUNS=${RUNS:-runtime:check runtime:nocheck reload:check reload:nocheck}
RESULTS=${RESULTS:-$root/docs/results/haproxy-runtime.md}
HELPER="$root/tests/runtime/runtime.py"
DRAIN=1
POOL=16
LIFETIME=60

. "$root/tests/lib.sh"
. "$root/tests/knot.sh"

ADDR=127.0.0.1
DNS_PORT=5310
NOTIFY_PORT=5311
STATUS_PORT=18083
FRONT_PORT=3316
SRV_NAME=_mysql._tcp.example.com
TSIG_KEY="srvd-runtime-update:c3J2ZC1ydW50aW1lLXVwZGF0ZS1rZXktMDEyMzQ1Njc="

need knotd kdig nsupdate haproxy python3 curl ss
SRVD=$(srvd_bin) || die "no srvd to measure"

# percentile P VALUES...: the nearest-rank percentile.
percentile() {
  local p=$1
  shift
  printf '%s\n' "$@" | sort -n | awk -v p="$p" '{ v[NR] = $1 } END { i = int((p * NR + 99) / 100); if (i < 1) i = 1; print v[i] }'
}

# one MODE CHECK: a fresh stack, CHANGES changes; prints one result line:
# "MODE CHECK N P50 P95 MAX SEEN_P50 PROCS0 RSS0 PSS0 PROCS1 RSS1 PSS1 RELOADS"
# (ms, KiB).
one() {
  exec 3>&1 1>&2
  local mode=$1 checked=$2 busy
  busy=$(busy_ports "$ADDR:$DNS_PORT" "$ADDR:$NOTIFY_PORT" "$ADDR:$STATUS_PORT" "$ADDR:$FRONT_PORT")
  [ -z "$busy" ] || die "these addresses are already in use: $busy"
  T=$(mktemp -d "${TMPDIR:-/tmp}/srvd-rtbench.XXXXXX")
  st=0
  trap 'st=$?; stop_started; keep_or_remove "$st" "$T" "${SRVD_BENCH_KEEP:-}"' EXIT
  mkdir -p "$T/knot/zones" "$T/knot/db" "$T/haproxy"
  local CFG="$T/haproxy/haproxy.cfg" ADMIN="$T/haproxy/admin.sock" MASTER="$T/haproxy/master.sock" LOG="$T/srvd.log"
  {
    zone_head example.com 1 "$ADDR"
    echo "_mysql._tcp  IN SRV  10 10 3306 db-002"
    echo "_mysql._tcp  IN SRV  20 10 3306 db-001"
    for n in 1 2 3 4 5 6 7 8; do echo "db-00$n       IN A    127.0.0.2$n"; done
  } >"$T/knot/zones/example.com.zone"
  knot_conf_example "$T/knot" "$ADDR@$DNS_PORT" "$TSIG_KEY" >"$T/knot/knot.conf"
  knot_start "$T/knot/knot.conf" "$ADDR" "$DNS_PORT" example.com
  for n in 1 2 3 4 5 6 7 8; do
    python3 "$HELPER" backend "db-00$n.example.com" "127.0.0.2$n" 3306 >>"$T/backends.log" 2>&1 &
    track_pid $!
  done
  sed -e "s|@ADMIN@|$ADMIN|" -e "s|@FRONTEND@|$ADDR:$FRONT_PORT|" "$root/tests/runtime/haproxy.cfg.tmpl" >"$T/haproxy.cfg.tmpl"
  {
    cat <<EOF
src = "$T/haproxy.cfg.tmpl"
dest = "$CFG"
domain = "$SRV_NAME"
nameservers = ["$ADDR:$DNS_PORT"]
resolve_targets = true
interval = "60s"
timeout = "5s"
drain = "${DRAIN}s"
haproxy_master_socket = "$MASTER"
status_addr = "$ADDR"
status_port = $STATUS_PORT
EOF
    echo 'check_cmd = "haproxy -c -q -f {{ src }}"'
    [ "$checked" = check ] || echo 'nocheck = true'
    [ "$mode" = runtime ] && echo "haproxy_socket = \"$ADMIN\""
    printf '\n[notify]\nlisten = ["%s:%s"]\nallow = ["%s"]\ndebounce = "10ms"\n\n[notify.primaries]\n"example.com" = ["%s:%s"]\n' \
      "$ADDR" "$NOTIFY_PORT" "$ADDR" "$ADDR" "$DNS_PORT"
  } >"$T/srvd.toml"
  for n in 1 2 3 4 5 6 7 8; do
    wait_for 10 python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], 3306), timeout=1).close()' "127.0.0.2$n" ||
      die "backend db-00$n did not start"
  done
  "${SRVD_ENV[@]}" "$SRVD" --config "$T/srvd.toml" --oneshot --no-reload >>"$LOG" 2>&1 || die "srvd could not render"
  haproxy -W -S "$MASTER" -f "$CFG" -p "$T/haproxy/haproxy.pid" >>"$T/haproxy/haproxy.log" 2>&1 &
  track_pid $!
  wait_for 10 python3 "$HELPER" rss "$MASTER" >/dev/null || die "haproxy did not start"
  wait_for 10 test -S "$ADMIN" || die "no stats socket"
  python3 "$HELPER" pool "$ADDR" "$FRONT_PORT" "$T/pool.log" --size "$POOL" --lifetime "$LIFETIME" 2>>"$T/pool.err" &
  track_pid $!
  start_srvd "$T/srvd.toml" "$LOG"
  wait_for 10 has '"Ok": ?true' curl -fsS --max-time 2 "http://$ADDR:$STATUS_PORT/status" || die "srvd did not start"
  sleep 2
  local procs0 rss0 pss0 procs1 rss1 pss1
  read -r procs0 rss0 pss0 < <(python3 "$HELPER" rss "$MASTER")
  local i cur=db-002 next n seen t0 t1 wrote lats=() seens=()
  for i in $(seq "$CHANGES"); do
    n=$((i % 7 + 2))
    next=db-00$n
    [ "$next" = "$cur" ] && next=db-00$(((i + 1) % 7 + 2))
    wrote=$(grep -c ': wrote ' "$LOG")
    knot_update "$ADDR" "$DNS_PORT" "hmac-sha256:$TSIG_KEY" example.com \
      "update delete $SRV_NAME. SRV 10 10 3306 $cur.example.com." \
      "update add $SRV_NAME. 1 SRV 10 10 3306 $next.example.com." >/dev/null || die "nsupdate failed"
    read -r t0 t1 < <(python3 "$HELPER" notify "$ADDR" "$NOTIFY_PORT" example.com "$next.example.com" "$ADDR" "$FRONT_PORT") ||
      die "$next never answered after change $i"
    lats+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
    # When srvd logged the new file (millisecond timestamps): how much of
    # the time was srvd's part (DNS, render, check, rename).
    wait_for 10 at_least "$((wrote + 1))" grep -c ': wrote ' "$LOG" || die "srvd did not log change $i"
    seen=$(grep ': wrote ' "$LOG" | tail -n 1 | cut -d' ' -f1)
    seens+=("$(python3 -c 'import datetime, sys
t = datetime.datetime.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
print(f"{(t - float(sys.argv[2])) * 1000:.1f}")' "$seen" "$t0")")
    # The next change once srvd finished this one (the drain included).
    if [ "$mode" = runtime ]; then
      wait_for 15 at_least "$i" grep -c ': runtime: ' "$LOG" || die "change $i was not applied through the runtime API"
    else
      wait_for 15 at_least "$i" eval 'python3 "$HELPER" reloads "$MASTER" | cut -d" " -f1' || die "no reload for change $i"
    fi
    cur=$next
    sleep 0.05
  done
  sleep 2
  read -r procs1 rss1 pss1 < <(python3 "$HELPER" rss "$MASTER")
  local reloads
  reloads=$(python3 "$HELPER" reloads "$MASTER" | cut -d' ' -f1)
  [ "$mode" = reload ] || [ "$(grep -c ': reload: ' "$LOG")" -eq 0 ] || die "runtime mode fell back to a reload: $(grep ': reload: ' "$LOG" | head -n 1)"
  echo "$mode $checked ${#lats[@]} $(percentile 50 "${lats[@]}") $(percentile 95 "${lats[@]}") $(percentile 100 "${lats[@]}") $(percentile 50 "${seens[@]}") $procs0 $rss0 $pss0 $procs1 $rss1 $pss1 $reloads" >&3
}

# haproxy -c alone on the file srvd renders, CHANGES runs: p50 and p95 in ms.
check_alone() {
  local T lats=() i t0 t1
  T=$(mktemp -d)
  sed -e "s|@ADMIN@|$T/admin.sock|" -e "s|@FRONTEND@|$ADDR:$FRONT_PORT|" "$root/tests/runtime/haproxy.cfg.tmpl" |
    python3 -c 'import sys
text = sys.stdin.read()
head = text.split("{%-", 1)[0]
head = head.split("-#}", 1)[1]
print(head + "  server db-002.example.com 127.0.0.22:3306 weight 10 check inter 2s\n  server db-001.example.com 127.0.0.21:3306 weight 10 check inter 2s backup")' >"$T/haproxy.cfg"
  for i in $(seq "$CHANGES"); do
    t0=$(now)
    haproxy -c -q -f "$T/haproxy.cfg" || { rm -rf "$T"; die "haproxy -c failed on $T/haproxy.cfg"; }
    t1=$(now)
    lats+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
  done
  rm -rf "$T"
  echo "$(percentile 50 "${lats[@]}") $(percentile 95 "${lats[@]}")"
}

if [ "${1:-}" = --one ]; then
  one "$2" "$3"
  exit
fi

mode_words() { if [ "$1" = runtime ]; then echo 'runtime API (`haproxy_socket`)'; else echo 'reload (master CLI)'; fi; }
check_words() { if [ "$1" = check ]; then echo '`haproxy -c -q`'; else echo '`nocheck = true`'; fi; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

rows=()
for run in $RUNS; do
  echo "== $run: $CHANGES changes" >&2
  row=$(bash "$0" --one "${run%%:*}" "${run#*:}") || die "the $run run failed"
  echo "   $row" >&2
  rows+=("$row")
done
read -r c50 c95 < <(check_alone)
echo "== haproxy -c alone: p50 $c50 ms, p95 $c95 ms" >&2

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || commit="$commit (with local changes)"
cpu=$(lscpu | awk -F: '/^Model name/ { sub(/^ +/, "", $2); print $2; exit }')
{
  cat <<EOF
# HAProxy without reloads: the figures

Measured with [\`benches/haproxy-runtime.sh\`](../../benches/haproxy-runtime.sh)
(see [HAProxy without reloads](../haproxy.md)); a rerun writes this file
again. Each run is a fresh stack: Knot DNS, HAProxy 2.6 in master-worker
mode on the file srvd renders from
[\`tests/runtime/haproxy.cfg.tmpl\`](../../tests/runtime/haproxy.cfg.tmpl)
(weights, a backup, health checks), eight loopback backends, and a pool of
$POOL long-lived sessions through HAProxy that ping every 0.2 s, each
recycled after a random 0-$LIFETIME s as an application's pool does.

Each of the $CHANGES changes makes another backend the only active server
(an nsupdate removing one SRV record and adding another, then a DNS NOTIFY
to srvd). The latency runs from that NOTIFY to the first new connection
through HAProxy answered by the new server (a probe connects every 2 ms):
srvd asks the primary, renders, runs check_cmd (not with \`nocheck\`),
renames, then either sends \`add server\` … \`enable server\` and drains
the old server (runtime API, \`drain = "${DRAIN}s"\`) or reloads HAProxy
through its master CLI. "srvd wrote" is the part up to srvd's log line for the new
file (DNS, render, check, rename), from the same NOTIFY; its timestamps
have a millisecond's resolution.

| mode | check | changes | p50 | p95 | max | srvd wrote (p50) | HAProxy reloads | processes before → after | RSS before → after | PSS before → after |
|---|---|---|---|---|---|---|---|---|---|---|
EOF
  for line in "${rows[@]}"; do
    read -r mode checked n p50 p95 max seen procs0 rss0 pss0 procs1 rss1 pss1 reloads <<<"$line"
    echo "| $(mode_words "$mode") | $(check_words "$checked") | $n | $p50 ms | $p95 ms | $max ms | $seen ms | $reloads | $procs0 → $procs1 | $(mib "$rss0") → $(mib "$rss1") | $(mib "$pss0") → $(mib "$pss1") |"
  done
  cat <<EOF

Processes are HAProxy's master and all its workers, old ones still serving
sessions included (\`show proc\`); RSS is the sum of their resident memory
(VmRSS, which counts the pages they share once in each process), PSS the sum
of their proportional shares (which splits shared pages between them), all
taken with the pool open, before the first change and 2 s after the last.

\`haproxy -c -q\` alone on the same file, $CHANGES runs: p50 $c50 ms, p95 $c95 ms.

Machine: $(nproc) CPUs ($cpu), Linux $(uname -r),
$(haproxy -v | head -n1 | cut -d' ' -f1-3), $(knotd --version 2>&1 | head -n1 | sed 's/^knotd (Knot DNS), version /Knot DNS /'),
$("$SRVD" --version | head -n1) at commit $commit. The machine is shared
with other jobs: the figures are an order of magnitude, not a limit.
EOF
} >"$RESULTS.new" && mv "$RESULTS.new" "$RESULTS"
echo "== wrote $RESULTS" >&2
