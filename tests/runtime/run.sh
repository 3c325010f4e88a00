#!/usr/bin/env bash
# srvd and HAProxy's runtime API end to end, with real programs only: Knot
# DNS serves _mysql._tcp.example.com (TTL 1) and is changed with nsupdate,
# each update followed by a DNS NOTIFY to srvd as a primary sends; HAProxy 2.6 runs in master-worker mode (-W -S) with
# its stats socket at level admin, on the haproxy.cfg srvd renders from
# tests/runtime/haproxy.cfg.tmpl (weights, backups, checks); eight TCP
# backends on 127.0.0.21-28 answer with their names and echo; a client
# connects 50 times a second and a pool holds 12 sessions that ping every
# 0.2 s, 4 of them for the whole run and 8 recycled after a random 0-4 s
# (so that sessions are on every server), each recording every answer,
# close and failure.
#
#   1. 200 server changes from DNS (add, remove, weight, backup), each sent
#      as soon as the last is applied: no HAProxy reload, the same worker,
#      HAProxy's servers equal to the file after each one, no failed
#      connection, no session cut to a server that stays, every session to
#      a server that leaves closed within drain + 1 s;
#   2. a change beyond servers reloads, through the master CLI;
#   3. HAProxy restarted behind srvd's back, then a server changed by hand:
#      srvd reconciles;
#   4. a stats socket that hangs, then one that refuses: srvd falls back to
#      the reload within `timeout`.
#
# Any user can run it (every port is above 1024); CI runs it as root:
#   SRVD_BIN=target/release/srvd bash tests/runtime/run.sh
# SRVD_RUNTIME_CHANGES (200) sets the number of changes, SRVD_RUNTIME_KEEP=1
# keeps the temporary directory (logs, configs).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../knot.sh"
HELPER="$HERE/runtime.py"

CHANGES=${SRVD_RUNTIME_CHANGES:-200}
RATE=50
POOL=12
STEADY=4
LIFETIME=4
TTL=1
DRAIN=1
TIMEOUT=2
ADDR=127.0.0.1
DNS_PORT=${SRVD_RUNTIME_DNS_PORT:-5310}
NOTIFY_PORT=${SRVD_RUNTIME_NOTIFY_PORT:-5311}
STATUS_PORT=${SRVD_RUNTIME_STATUS_PORT:-18083}
FRONT_PORT=${SRVD_RUNTIME_FRONT_PORT:-3316}
STATUS_URL="http://$ADDR:$STATUS_PORT"
SRV_NAME=_mysql._tcp.example.com
BACKEND=mysql_replicas
TSIG_KEY="srvd-runtime-update:c3J2ZC1ydW50aW1lLXVwZGF0ZS1rZXktMDEyMzQ1Njc="

T=
SRVD_PID=
HAPROXY_PID=

die() {
  fail "setup: $*"
  [ -z "$T" ] || { echo "== logs kept in $T"; SRVD_RUNTIME_KEEP=1; }
  summary
  exit 1
}

cleanup() {
  local status=$?
  trap - EXIT
  stop_started
  [ -z "$T" ] || [ -n "${SRVD_RUNTIME_KEEP:-}" ] || [ "$SRVD_TESTS_FAILED" -ne 0 ] || rm -rf "$T"
  exit "$status"
}

need knotd kdig nsupdate haproxy python3 curl ss
SRVD=$(srvd_bin) || die "no srvd to test"
backend_addrs=()
for n in 1 2 3 4 5 6 7 8; do backend_addrs+=("127.0.0.2$n:3306"); done
busy=$(busy_ports "$ADDR:$DNS_PORT" "$ADDR:$NOTIFY_PORT" "$ADDR:$STATUS_PORT" "$ADDR:$FRONT_PORT" "${backend_addrs[@]}")
[ -z "$busy" ] || die "these addresses are already in use: ${busy//$'\n'/ }"
T=$(mktemp -d "${TMPDIR:-/tmp}/srvd-runtime.XXXXXX")
mkdir -p "$T/knot/zones" "$T/knot/db" "$T/haproxy"
trap cleanup EXIT
trap 'exit 130' INT TERM

CFG="$T/haproxy/haproxy.cfg"
ADMIN="$T/haproxy/admin.sock"
MASTER="$T/haproxy/master.sock"
LOG="$T/srvd.log"

# --- the stack ------------------------------------------------------------------

{
  zone_head example.com "$TTL" "$ADDR"
  echo "_mysql._tcp  IN SRV  10 10 3306 db-001"
  echo "_mysql._tcp  IN SRV  10 10 3306 db-002"
  for n in 1 2 3 4 5 6 7 8; do echo "db-00$n       IN A    127.0.0.2$n"; done
} >"$T/knot/zones/example.com.zone"
knot_conf_example "$T/knot" "$ADDR@$DNS_PORT" "$TSIG_KEY" >"$T/knot/knot.conf"

dns_update() { knot_update "$ADDR" "$DNS_PORT" "hmac-sha256:$TSIG_KEY" example.com "$@"; }

# set_records "PRIO:WEIGHT:HOST" ...: the SRV set becomes exactly these, in
# one update, then a NOTIFY tells srvd. Knot can send it too, but it merges
# NOTIFYs for updates that come close together (seconds apart here), which
# would leave most changes to srvd's poll.
set_records() {
  local lines=("update delete $SRV_NAME. SRV") r p w h
  for r in "$@"; do
    IFS=: read -r p w h <<<"$r"
    lines+=("update add $SRV_NAME. $TTL SRV $p $w 3306 $h.example.com.")
  done
  dns_update "${lines[@]}" >/dev/null &&
    python3 "$HELPER" notify "$ADDR" "$NOTIFY_PORT" example.com - - 0
}

sed -e "s|@ADMIN@|$ADMIN|" -e "s|@FRONTEND@|$ADDR:$FRONT_PORT|" "$HERE/haproxy.cfg.tmpl" >"$T/haproxy.cfg.tmpl"

# write_config [SOCKET]: srvd.toml, with haproxy_socket = SOCKET (the admin socket).
write_config() {
  cat >"$T/srvd.toml.new" <<EOF
src = "$T/haproxy.cfg.tmpl"
dest = "$CFG"
domain = "$SRV_NAME"
nameservers = ["$ADDR:$DNS_PORT"]
dns_timeout = "500ms"
resolve_targets = true
check_cmd = "haproxy -c -q -f {{ src }}"
interval = "1s"
timeout = "${TIMEOUT}s"
drain = "${DRAIN}s"
haproxy_socket = "${1:-$ADMIN}"
haproxy_master_socket = "$MASTER"
status_addr = "$ADDR"
status_port = $STATUS_PORT

[notify]
listen = ["$ADDR:$NOTIFY_PORT"]
allow = ["$ADDR"]
debounce = "20ms"

[notify.primaries]
"example.com" = ["$ADDR:$DNS_PORT"]
EOF
  mv "$T/srvd.toml.new" "$T/srvd.toml"
}

start_haproxy() {
  haproxy -W -S "$MASTER" -f "$CFG" -p "$T/haproxy/haproxy.pid" >>"$T/haproxy/haproxy.log" 2>&1 &
  HAPROXY_PID=$!
  track_pid "$HAPROXY_PID"
  wait_for 10 has worker python3 "$HELPER" ask "$MASTER" "show proc" &&
    wait_for 10 has '^Pid:' python3 "$HELPER" ask "$ADMIN" "show info"
}

worker_pid() { python3 "$HELPER" ask "$ADMIN" "show info" | awk '$1 == "Pid:" { print $2 }'; }
reloads() { python3 "$HELPER" reloads "$MASTER"; }
state_is_file() { python3 "$HELPER" state "$ADMIN" "$CFG" "$BACKEND"; }
count_log() { grep -c -- "$1" "$LOG"; }
log_mark() { stat -c %s "$LOG"; }
logged_since() { tail -c +"$(($1 + 1))" "$LOG" | grep -qE -- "$2"; }
cfg_hash() { sha256sum <"$CFG" | cut -d' ' -f1; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }
config_reloads() { metric 'srvd_config_reloads_total{result="success"}'; }

# sighup: srvd re-reads srvd.toml; returns once it took it.
sighup() {
  local before
  before=$(config_reloads) || return 1
  kill -HUP "$SRVD_PID"
  wait_for 10 equals "$((before + 1))" config_reloads
}

# dest_changed_from HASH: waits (20 ms steps, 15 s) until dest differs from
# HASH; sets T_DEST to when it was seen.
dest_changed_from() {
  local hash=$1 deadline=$((SECONDS + 15))
  while [ "$(cfg_hash)" = "$hash" ]; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.02
  done
  T_DEST=$(now)
}

diagnose() {
  echo "== srvd.toml"; cat "$T/srvd.toml"
  echo "== haproxy.cfg"; cat "$CFG"
  echo "== srvd log (last 40 lines)"; tail -n 40 "$LOG"
  echo "== haproxy log (last 20 lines)"; tail -n 20 "$T/haproxy/haproxy.log"
  echo "== client failures (first 10)"; python3 "$HELPER" failures "$T/client.log" | head -n 10
}

echo "== starting: $(knotd --version 2>&1 | head -n1); $(haproxy -v | head -n1 | cut -d' ' -f1-3); $("$SRVD" --version)"
knot_start "$T/knot/knot.conf" "$ADDR" "$DNS_PORT" example.com
for n in 1 2 3 4 5 6 7 8; do
  python3 "$HELPER" backend "db-00$n.example.com" "127.0.0.2$n" 3306 >>"$T/backends.log" 2>&1 &
  track_pid $!
done
for n in 1 2 3 4 5 6 7 8; do
  wait_for 10 has "^db-00$n" python3 -c 'import socket,sys
s = socket.create_connection((sys.argv[1], 3306), timeout=1); print(s.recv(64).decode())' "127.0.0.2$n" ||
    die "backend db-00$n did not start"
done
write_config
"${SRVD_ENV[@]}" "$SRVD" --config "$T/srvd.toml" --oneshot --no-reload >>"$LOG" 2>&1 ||
  die "srvd --oneshot did not render the first haproxy.cfg"
start_haproxy || die "haproxy did not start: $(tail -n 5 "$T/haproxy/haproxy.log")"
python3 "$HELPER" pool "$ADDR" "$FRONT_PORT" "$T/pool.log" --size "$POOL" --steady "$STEADY" --lifetime "$LIFETIME" \
  2>>"$T/pool.err" &
POOL_PID=$!
track_pid "$POOL_PID"
# The steady sessions open first, alone: roundrobin gives db-001 half of them.
wait_for 10 eval '[ "$(grep -c " open " "$T/pool.log")" -ge "$POOL" ]' || die "the pool did not open its sessions"
python3 "$HELPER" client "$ADDR" "$FRONT_PORT" "$T/client.log" --rate "$RATE" 2>>"$T/client.err" &
CLIENT_PID=$!
track_pid "$CLIENT_PID"
started=$(now)
start_srvd "$T/srvd.toml" "$LOG"
eventually 10 "srvd is up: /status answers Ok" has '"Ok": ?true' curl -fsS --max-time 2 "$STATUS_URL/status"
check "HAProxy runs the file srvd rendered (show servers state = haproxy.cfg)" state_is_file
check "the pool holds $POOL sessions, steady ones to db-001 among them" \
  at_least 1 eval 'grep -cE "^[0-9.]+ open [0-$((STEADY - 1))] db-001\." "$T/pool.log"'
worker=$(worker_pid)
check "HAProxy's master has not reloaded yet" equals "0 0" reloads

# --- 1. 200 server changes --------------------------------------------------------

echo "== 1. $CHANGES server changes from DNS (add, remove, weight, backup)"
python3 "$HELPER" plan 16 "$CHANGES" >"$T/plan"
: >"$T/changes"
applied=0 mismatched=0 unseen=0 slow=0 kinds=""
prev_hosts=" db-001:10 db-002:10 "
t_first=$(now)
while read -r kind host records; do
  i=$((applied + unseen + 1))
  # Servers that leave at this change: removed, or moved between active and
  # backup (the runtime API removes and adds them again).
  new_hosts=" "
  for r in $records; do new_hosts+="${r##*:}:${r%%:*} "; done
  leavers=""
  for h in $prev_hosts; do
    [[ "$new_hosts" == *" $h "* ]] || leavers+="${h%%:*},"
  done
  hash=$(cfg_hash)
  before=$(count_log ': runtime: ')
  t_sent=$(now)
  # shellcheck disable=SC2086
  set_records $records
  if ! dest_changed_from "$hash" || ! wait_for 15 at_least "$((before + 1))" count_log ': runtime: '; then
    unseen=$((unseen + 1))
    echo "  change $i ($kind $host) was not applied through the runtime API within 15 s"
    [ "$unseen" -lt 3 ] || break
    continue
  fi
  t_applied=$(now)
  echo "$i $t_sent $T_DEST $t_applied $leavers" >>"$T/changes"
  applied=$((applied + 1))
  kinds+=" $kind"
  le "$(secs "$T_DEST" "$t_applied")" "$((DRAIN + 1))" || slow=$((slow + 1))
  state_is_file 2>>"$T/mismatches" || { mismatched=$((mismatched + 1)); echo "  after change $i ($kind $host)" >>"$T/mismatches"; }
  prev_hosts=$new_hosts
done <"$T/plan"
t_last=$(now)
echo "  $applied changes in $(secs "$t_first" "$t_last")s"
for k in add remove weight backup; do
  n=$(grep -o " $k" <<<"$kinds" | wc -l)
  check "the changes include $k ($n times, at least 20)" [ "$n" -ge 20 ]
done
check "all $CHANGES changes reached dest and were applied through the runtime API ($applied)" [ "$applied" -eq "$CHANGES" ]
check "srvd logged $CHANGES runtime changes and no fallback" \
  eval '[ "$(count_log ": runtime: ")" -eq "$CHANGES" ] && [ "$(count_log ": reload: ")" -eq 0 ]'
check "/metrics: $CHANGES runtime changes, $CHANGES reloads avoided" \
  eval '[ "$(metric srvd_runtime_changes_total)" = "$CHANGES" ] && [ "$(metric srvd_reloads_avoided_total)" = "$CHANGES" ]'
check "HAProxy's servers equal haproxy.cfg after every change ($mismatched of $applied differ)" \
  eval '[ "$applied" -gt 0 ] && [ "$mismatched" -eq 0 ]'
[ "$mismatched" -eq 0 ] || head -n 20 "$T/mismatches"
check "each change applied within drain + 1 s of dest changing ($slow slower)" [ "$slow" -eq 0 ]
check "0 HAProxy reloads: show proc says 0 reloads, 0 failed" equals "0 0" reloads
check "the same HAProxy worker throughout (pid $worker)" equals "$worker" worker_pid
check "one worker process under the master" has '^1 ' python3 "$HELPER" workers "$MASTER"
read -r attempts names < <(python3 "$HELPER" attempts "$T/client.log" --start "$t_first" --end "$t_last")
expected=$(awk -v a="$t_first" -v b="$t_last" -v r="$RATE" 'BEGIN { printf "%d", (b - a) * r * 0.6 }')
check "the client kept its rate: $attempts connections (at least $expected), answered by $names servers" \
  eval '[ "$attempts" -ge "$expected" ] && [ "$names" -ge 4 ]'
check "0 failed client connections during the changes" python3 "$HELPER" failures "$T/client.log" --start "$started" --end "$t_last"
read -r drained cut late pool_fails < <(python3 "$HELPER" sessions "$T/pool.log" "$T/changes" "$DRAIN" --start "$started" --end "$t_last")
check "sessions to servers that left were drained and closed ($drained, at least 20)" [ "$drained" -ge 20 ]
check "0 resets of sessions to servers that stay ($cut)" [ "$cut" -eq 0 ]
check "every session to a server that left closed within drain + 1 s ($late late)" [ "$late" -eq 0 ]
check "the pool reconnected every time, 0 failed connections ($pool_fails)" [ "$pool_fails" -eq 0 ]
check "sessions to db-001 (which stays) were held open across all the changes" \
  at_least 1 python3 "$HELPER" held "$T/pool.log" db-001.example.com "$t_first" "$t_last"
check "the STATUS says the last change needed no reload" \
  has '"last_change_applied": ?"runtime"' curl -fsS --max-time 2 "$STATUS_URL/status"

# --- 2. a change beyond servers reloads ------------------------------------------------

echo "== 2. a template change outside server lines"
mark=$(log_mark)
hash=$(cfg_hash)
sed -i 's/timeout connect 2s/timeout connect 3s/' "$T/haproxy.cfg.tmpl"
t0=$(now)
check "srvd re-reads its config (SIGHUP)" sighup
check "dest changes" dest_changed_from "$hash"
eventually 10 "srvd says the runtime API cannot apply it (lines) and reloads" \
  logged_since "$mark" ': reload: the runtime API cannot apply this change \(lines\)'
eventually 10 "HAProxy reloaded once, through the master CLI, and took it (show proc: 1 reload, 0 failed)" equals "1 0" reloads
eventually 10 "a new worker runs" eval '[ -n "$(worker_pid)" ] && [ "$(worker_pid)" != "$worker" ]'
eventually 10 "HAProxy's servers equal haproxy.cfg" state_is_file
check "srvd counts the fallback" equals 1 metric 'srvd_runtime_fallbacks_total{reason="lines"}'
sleep 1
t_reloaded=$(now)
read -r attempts _ < <(python3 "$HELPER" attempts "$T/client.log" --start "$t0" --end "$t_reloaded")
check "0 failed client connections across the reload ($attempts made)" \
  eval '[ "$attempts" -ge 20 ] && python3 "$HELPER" failures "$T/client.log" --start "$t0" --end "$t_reloaded"'

# --- 3. HAProxy restarted behind srvd's back ---------------------------------------------
echo "== 3. HAProxy restarted behind srvd's back, a weight set by hand"
stop_pid "$CLIENT_PID"
stop_pid "$HAPROXY_PID"
mark=$(log_mark)
reconciled=$(metric srvd_runtime_reconciled_total)
start_haproxy || die "haproxy did not start again"
# What a server state file or an operator does at restart: HAProxy then
# runs another weight than the file says. srvd finds out when it sees the
# new worker (show info, at most every 10 s).
one=$(awk '$1 == "server" && $2 ~ /^db-001/ { print $2 }' "$CFG")
check "the weight is set by hand on the new HAProxy" equals "" python3 "$HELPER" ask "$ADMIN" "set server $BACKEND/$one weight 77"
check "HAProxy's servers now differ from haproxy.cfg" fails state_is_file
eventually 25 "srvd notices the new worker and says HAProxy does not run dest's servers" \
  logged_since "$mark" "HAProxy does not run dest's servers"
eventually 10 "srvd reloads the new HAProxy through its master CLI" at_least 1 eval 'reloads | cut -d" " -f1'
eventually 10 "HAProxy's servers equal haproxy.cfg again" state_is_file
check "srvd counts the reconciliation" equals "$((reconciled + 1))" metric srvd_runtime_reconciled_total

# --- 4. a socket that hangs, one that refuses ------------------------------------------------
# fallback_within NAME REASON RECORDS...: a DNS change with haproxy_socket
# pointing at a bad socket is applied by a reload, within `timeout` of dest changing.
fallback_within() {
  local name=$1 reason=$2 hash mark before t_log
  shift 2
  hash=$(cfg_hash)
  mark=$(log_mark)
  before=$(reloads | cut -d' ' -f1)
  set_records "$@"
  check "$name: dest changes" dest_changed_from "$hash"
  eventually $((TIMEOUT + 10)) "$name: srvd falls back to a reload ($reason)" \
    logged_since "$mark" ": reload: the runtime API cannot apply this change \($reason\)"
  t_log=$(now)
  check "$name: the fallback came within timeout + 1 s of dest changing ($(secs "$T_DEST" "$t_log")s)" \
    le "$(secs "$T_DEST" "$t_log")" "$((TIMEOUT + 1))"
  eventually 10 "$name: HAProxy reloaded through the master CLI" at_least "$((before + 1))" eval 'reloads | cut -d" " -f1'
  eventually 10 "$name: HAProxy's servers equal haproxy.cfg" state_is_file
}

echo "== 4. a stats socket that accepts and never answers"
python3 "$HELPER" hang "$T/hang.sock" 2>>"$T/hang.err" &
track_pid $!
wait_for 5 test -S "$T/hang.sock" || die "the hanging socket did not start"
write_config "$T/hang.sock"
check "srvd takes the hanging socket (SIGHUP)" sighup
fallback_within "hanging socket" timeout 10:10:db-001 10:10:db-003

echo "== 4b. a stats socket that refuses"
write_config "ipv4@$ADDR:$(free_port)"
check "srvd takes the refusing socket (SIGHUP)" sighup
fallback_within "refusing socket" socket 10:10:db-001 10:10:db-003 20:10:db-004

# --- the whole run -------------------------------------------------------------------
check "srvd ran throughout" kill -0 "$SRVD_PID"
check "HAProxy never refused a config srvd gave it (no \"Loading failure\" in its log)" \
  eval '! grep -q "Loading failure" "$T/haproxy/haproxy.log"'

if [ "$SRVD_TESTS_FAILED" -ne 0 ]; then
  diagnose
  echo "== logs kept in $T"
elif [ -n "${SRVD_RUNTIME_KEEP:-}" ]; then
  echo "== logs kept in $T"
fi
summary
