#!/usr/bin/env bash
# How fast a DNS change reaches dest and the reload command, with DNS NOTIFY
# and with polling, side by side, on the stack of tests/notify-knot (Knot DNS
# as the primary, srvd, a reload command that records when it starts).
#
#   notify        interval 60 s, TTL 300, [notify] with TSIG; Knot notifies
#                 srvd; changes made with nsupdate, after which Knot 3.2
#                 waits about a second before it sends its NOTIFY
#   notify-knotc  the same, changes made with knotc zone-begin/zone-commit,
#                 after which Knot sends its NOTIFY at once
#   polling       interval 1 s, TTL 1, no [notify]; srvd polls Knot; changes
#                 made with nsupdate
#
# For CHANGES changes (swapping the only SRV record between db-001 and
# db-002, at random moments) it measures, from srvd's --log-level debug
# log (millisecond timestamps) and the reload command's own timestamp:
#
#   NOTIFY -> dest       the NOTIFY's arrival at srvd ("NOTIFY for ... from")
#                        to dest rewritten ("wrote ...")
#   NOTIFY -> reload     the same, to the reload command started
#   change -> reload     end to end: from just before nsupdate (or knotc
#                        zone-commit) to the reload command started, so
#                        including the tool itself and Knot's own delay
#                        before it sends the NOTIFY
#
# and the SRV queries srvd sends per minute: counted at Knot while idle for
# QUIET seconds, and during the changes. Prints a Markdown table with the
# machine. A benchmark, not a test: it asserts nothing and CI does not run it.
#
#   SRVD_BIN=target/release/srvd bash benches/notify-propagation.sh
#   CHANGES=50 QUIET=60 MODES="notify notify-knotc polling" (the defaults)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
CHANGES=${CHANGES:-50}
QUIET=${QUIET:-60}
MODES=${MODES:-notify notify-knotc polling}
# Ports of their own, so that the benchmark and tests/notify-knot can run at once.
export SRVD_NOTIFY_KNOT_PORT=${SRVD_NOTIFY_KNOT_PORT:-15310}
export SRVD_NOTIFY_RESOLVER_PORT=${SRVD_NOTIFY_RESOLVER_PORT:-15311}
export SRVD_NOTIFY_PORT=${SRVD_NOTIFY_PORT:-15363}
export SRVD_NOTIFY_STATUS_PORT=${SRVD_NOTIFY_STATUS_PORT:-15390}

# One mode, in its own process so that each gets a fresh stack. Prints one
# line: MODE INTERVAL TTL N  ND50 ND95  NR50 NR95  E50 E95 EMAX  IDLE_QPM RUN_QPM
one() {
  exec 3>&1 1>&2
  local mode=$1
  case $mode in
    notify | notify-knotc) INTERVAL=60s TTL=300 KNOT_NOTIFY=1 KNOT_NOTIFY_KEY=right SRVD_NOTIFY=1 SRVD_TSIG=1 ;;
    polling) INTERVAL=1s TTL=1 KNOT_NOTIFY=0 SRVD_NOTIFY=0 ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  SRVD_TEMPLATES=mysql SRVD_NAMESERVER=primary SRVD_LOG_LEVEL=debug
  . "$root/tests/lib.sh"
  . "$root/tests/notify-knot/lib.sh"
  nk_init
  start_dns
  wait_for 10 knot_startup_notifies_done || true
  sleep 1
  write_srvd_config
  start_nk_srvd
  wait_for 10 status_has 'd["Ok"]' || die "srvd did not become ready"
  wait_for 10 servers_are mysql db-001.example.com || die "no first mysql.cfg"

  # Idle: the queries srvd sends when nothing changes.
  local q0 q1
  sleep 2
  q0=$(srv_queries primary example.com)
  echo "  $mode: idle for ${QUIET}s" >&2
  sleep "$QUIET"
  q1=$(srv_queries primary example.com)
  local idle_qpm
  idle_qpm=$(awk -v n=$((q1 - q0)) -v s="$QUIET" 'BEGIN { printf "%.1f", n * 60 / s }')

  local current=db-001 next i pause t0 run_start run_end reloads_before
  run_start=$(now)
  q0=$(srv_queries primary example.com)
  : >"$T/changes"
  for i in $(seq "$CHANGES"); do
    next=db-002
    [ "$current" = db-002 ] && next=db-001
    # A random pause, so that changes land at random points of the poll
    # interval and of the TTL, and Knot's NOTIFYs never queue up.
    pause=$(python3 -c 'import random; print(f"{1 + random.random() * 2:.2f}")')
    sleep "$pause"
    reloads_before=$(wc -l <"$T/reloads.log")
    if [ "$mode" = notify-knotc ]; then
      knotc_ primary zone-begin example.com >/dev/null &&
        knotc_ primary zone-unset example.com _mysql._tcp.example.com. SRV "10 10 3306 $current.example.com." >/dev/null &&
        knotc_ primary zone-set example.com _mysql._tcp.example.com. "$TTL" SRV "10 10 3306 $next.example.com." >/dev/null ||
        die "knotc failed"
      t0=$(now)
      knotc_ primary zone-commit example.com >/dev/null || die "knotc zone-commit failed"
    else
      t0=$(now)
      dns_update primary example.com \
        "update delete _mysql._tcp.example.com. SRV 10 10 3306 $current.example.com." \
        "update add _mysql._tcp.example.com. $TTL SRV 10 10 3306 $next.example.com." ||
        die "nsupdate failed"
    fi
    wait_for 30 bash -c "[ \$(wc -l <'$T/reloads.log') -gt $reloads_before ]" ||
      die "no reload after change $i"
    wait_for 5 servers_are mysql "$next.example.com" || die "mysql.cfg does not list $next after change $i"
    echo "$t0 $(tail -n 1 "$T/reloads.log" | cut -d' ' -f1)" >>"$T/changes"
    echo "  $mode: change $i ($current -> $next): reload started $(awk -v a="$t0" -v b="$(tail -n 1 "$T/reloads.log" | cut -d' ' -f1)" 'BEGIN { printf "%.3f", b - a }')s after the change" >&2
    current=$next
  done
  run_end=$(now)
  q1=$(srv_queries primary example.com)
  local run_qpm
  run_qpm=$(awk -v n=$((q1 - q0)) -v a="$run_start" -v b="$run_end" 'BEGIN { printf "%.1f", n * 60 / (b - a) }')
  # The per-change figures, from srvd's log and the changes file.
  python3 - "$mode" "$INTERVAL" "$TTL" "$T/changes" "$T/srvd.log" "$idle_qpm" "$run_qpm" <<'EOF' >&3
import math, re, sys
from datetime import datetime, timezone

mode, interval, ttl, changes_file, log_file, idle_qpm, run_qpm = sys.argv[1:8]
changes = [tuple(map(float, l.split())) for l in open(changes_file) if l.strip()]

def ts(line):
    stamp = line.split(" ", 1)[0]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()

notifies, wrote = [], []
for line in open(log_file):
    if " NOTIFY for example.com. from " in line:
        notifies.append(ts(line))
    elif re.search(r" mysql: wrote ", line):
        wrote.append(ts(line))

def rank(xs, p):  # nearest-rank percentile
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)] if xs else float("nan")

n_dest, n_reload, e2e = [], [], []
for t0, reload_at in changes:
    e2e.append(reload_at - t0)
    if not mode.startswith("notify"):
        continue
    # The first NOTIFY after the change, and the first write after it.
    n = next((t for t in notifies if t >= t0 - 0.001), None)
    w = next((t for t in wrote if n is not None and t >= n), None)
    if n is None or w is None:
        continue
    n_dest.append(w - n)
    n_reload.append(reload_at - n)

ms = lambda x: "-" if x != x else f"{x * 1000:.0f}"
print(mode, interval, ttl, len(changes),
      ms(rank(n_dest, 50)), ms(rank(n_dest, 95)),
      ms(rank(n_reload, 50)), ms(rank(n_reload, 95)),
      ms(rank(e2e, 50)), ms(rank(e2e, 95)), ms(max(e2e)),
      idle_qpm, run_qpm)
EOF
}

if [ "${1:-}" = --one ]; then
  one "$2"
  exit
fi

results=()
for mode in $MODES; do
  echo "== $mode: $CHANGES changes" >&2
  line=$(bash "$0" --one "$mode") || { echo "benchmark failed for $mode" >&2; exit 1; }
  results+=("$line")
done

. "$here/lib.sh"
echo
echo "Propagation: a change swapping the only SRV record -> mysql.cfg rewritten and the reload command started"
echo "(one template, check_cmd \"test -s\", the reload command a shell script that records when it starts;"
echo " notify: TSIG hmac-sha256, debounce 200ms, Knot sends NOTIFY over TCP; dns_timeout 1s)"
echo
echo "| mode | changed with | interval | SRV TTL | changes | NOTIFY -> dest p50 / p95 | NOTIFY -> reload p50 / p95 | change -> reload p50 / p95 / max | SRV queries/min idle | SRV queries/min during changes |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for line in "${results[@]}"; do
  read -r mode interval ttl n nd50 nd95 nr50 nr95 e50 e95 emax idle run <<<"$line"
  case $mode in
    notify) echo "| NOTIFY | nsupdate | $interval | $ttl s | $n | $nd50 / $nd95 ms | $nr50 / $nr95 ms | $e50 / $e95 / $emax ms | $idle | $run |" ;;
    notify-knotc) echo "| NOTIFY | knotc | $interval | $ttl s | $n | $nd50 / $nd95 ms | $nr50 / $nr95 ms | $e50 / $e95 / $emax ms | $idle | $run |" ;;
    *) echo "| polling | nsupdate | $interval | $ttl s | $n | - | - | $e50 / $e95 / $emax ms | $idle | $run |" ;;
  esac
done
echo
echo "Machine: $(machine "$(srvd_bin)")."
echo "Idle queries counted at Knot over ${QUIET}s; changes $CHANGES per mode, 1-3 s apart."
