#!/usr/bin/env bash
# srvd end to end, with real programs only: Knot DNS serves the SRV records
# and is changed with nsupdate as an operator would; srvd renders
# examples/haproxy.cfg.tmpl as it is, checks it with `haproxy -c` and reloads
# HAProxy (master-worker, seamless reloads); three TCP backends answer with
# their names; a client connects through HAProxy 50 times a second for the
# whole run. Every step asserts on what the client saw, on haproxy.cfg, on
# HAProxy's reload count, on srvd's log and on its /status.
#
# CI runs it as root, but any user can: every port is above 1024. Run:
#   SRVD_BIN=target/release/srvd bash tests/e2e/run.sh
# (benches/client-propagation.sh measures on the same stack.)
# SRVD_E2E_KEEP=1 keeps the temporary directory (logs, configs) afterwards.
set -uo pipefail

. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/stack.sh"

RATE=50
TTL=1
INTERVAL=1
# How long a DNS change may take to reach the client: srvd's poll interval,
# the record's TTL (srvd does not ask again before it runs out), and 2 s for
# the check, the reload and HAProxy's new worker.
BOUND=$((INTERVAL + TTL + 2))

# A stack that cannot start is a failure like any other, reported the same way.
die() {
  fail "setup: $*"
  keep_logs
  summary
  exit 1
}

# Keeps the temporary directory, and says so before the summary line.
keep_logs() {
  [ -n "$T" ] || return 0
  echo "== logs kept in $T"
  SRVD_E2E_KEEP=1
  STACK_QUIET=1
}

stack_init

# --- helpers over what the stack records ----------------------------------------

cfg_hash() { sha256sum <"$T/haproxy/haproxy.cfg" | cut -d' ' -f1; }
reloads() { haproxy_reloads | cut -d' ' -f1; }
log_mark() { stat -c %s "$T/srvd.log"; }
# log_since MARK: what srvd logged after MARK.
log_since() { tail -c +"$(($1 + 1))" "$T/srvd.log"; }
logged_since() { log_since "$1" | grep -qE -- "$2"; }
logged_since_fixed() { log_since "$1" | grep -qF -- "$2"; }

# The servers of haproxy.cfg, one "name address:port [backup]" per line.
servers() {
  awk '$1 == "server" { s = $2 " " $3; if ($0 ~ / backup( |$)/) s = s " backup"; print s }' \
    "$T/haproxy/haproxy.cfg"
}
servers_are() { [ "$(servers)" = "$(printf '%s\n' "$@")" ]; }

# only_answers SECONDS NAME...: watches the client for SECONDS; passes when
# every attempt in that time got an answer, all from NAMEs, and the client
# kept its rate (at least 60% of it, so a stalled client cannot pass).
only_answers() {
  local secs=$1
  shift
  local from to
  from=$(now)
  sleep "$secs"
  to=$(now)
  python3 "$HELPER" window "$CLIENT_LOG" "$from" "$to" --only "$@" \
    --min "$(awk -v s="$secs" -v r="$RATE" 'BEGIN { printf "%d", s * r * 0.6 }')"
}

alternating() {
  local secs=$1
  shift
  local from to
  from=$(now)
  sleep "$secs"
  to=$(now)
  python3 "$HELPER" window "$CLIENT_LOG" "$from" "$to" --only "$@" --alternate \
    --min "$(awk -v s="$secs" -v r="$RATE" 'BEGIN { printf "%d", s * r * 0.6 }')"
}

# within SECONDS LATENCY: the measured latency is at most SECONDS.
within() { awk -v b="$1" -v l="$2" 'BEGIN { exit !(l != "" && l + 0 <= b + 0) }'; }

# first_answer NAME SINCE: sets LATENCY to the seconds from SINCE to the first
# answer from NAME.
first_answer() { LATENCY=$(python3 "$HELPER" first "$CLIENT_LOG" "$1" "$2") && [ -n "$LATENCY" ]; }
# settled SINCE NAME...: sets LATENCY to the seconds from SINCE to the last
# answer from any other name, once only NAMEs have answered for a while.
settled() {
  local since=$1
  shift
  LATENCY=$(python3 "$HELPER" settled "$CLIENT_LOG" "$since" "$@") && [ -n "$LATENCY" ]
}

srvd_running() { kill -0 "$SRVD_PID" 2>/dev/null; }
status_ok() { status_has 'd["Ok"] and t["ok"] and t["error"] is None'; }

diagnose() {
  echo "== srvd.toml"; cat "$T/srvd.toml"
  echo "== haproxy.cfg"; cat "$T/haproxy/haproxy.cfg"; echo
  echo "== srvd log (last 40 lines)"; tail -n 40 "$T/srvd.log"
  echo "== haproxy log (last 20 lines)"; tail -n 20 "$T/haproxy/haproxy.log"
  echo "== knot log (last 10 lines)"; tail -n 10 "$T/knot/knot.log"
  echo "== client failures (first 20)"; python3 "$HELPER" failures "$CLIENT_LOG" | head -n 20
  echo "== /status"; status_json || echo "(no answer)"
}

# --- the stack ---------------------------------------------------------------------

echo "== starting: $(knotd --version 2>&1 | head -n1); $(haproxy -v | head -n1 | cut -d' ' -f1-3); $("$SRVD" --version)"
start_dns
start_backends
write_srvd_config
check "srvd renders the first haproxy.cfg from DNS (--oneshot, before HAProxy starts)" render_first
check "the first haproxy.cfg has db-001 alone" servers_are "db-001.example.com:3306 127.0.0.11:3306"
start_haproxy
start_client "$RATE"
started=$(now)
start_stack_srvd
eventually 10 "srvd is up and reports Ok in /status" status_ok

# --- 1. db-001 alone ------------------------------------------------------------------
echo "== 1. only db-001 in DNS"
check "every answer comes from db-001" only_answers 2 db-001
check "srvd did not reload HAProxy for an up-to-date haproxy.cfg" [ "$(reloads)" = 0 ]

# --- 2. add db-002 --------------------------------------------------------------------
echo "== 2. nsupdate: add db-002"
t0=$(now)
check "nsupdate adds db-002" dns_update "update add $SRV_NAME. $TTL SRV 10 10 $BACKEND_PORT db-002.example.com."
eventually 15 "db-002 answers after it is added" first_answer db-002 "$t0"
check "db-002 answered within interval + TTL + 2 s = ${BOUND}s (took ${LATENCY:-?}s)" within "$BOUND" "${LATENCY:-}"
check "haproxy.cfg lists db-001 and db-002, neither a backup" \
  servers_are "db-001.example.com:3306 127.0.0.11:3306" "db-002.example.com:3306 127.0.0.12:3306"
check "db-001 and db-002 answer in turn (roundrobin)" alternating 2 db-001 db-002
check "HAProxy was reloaded once" [ "$(reloads)" = 1 ]

# --- 3. remove db-001 -----------------------------------------------------------------
echo "== 3. nsupdate: remove db-001"
t0=$(now)
check "nsupdate removes db-001" dns_update "update delete $SRV_NAME. SRV 10 10 $BACKEND_PORT db-001.example.com."
eventually 15 "only db-002 answers after db-001 is removed" settled "$t0" db-002
check "db-001 stopped answering within ${BOUND}s (took ${LATENCY:-?}s)" within "$BOUND" "${LATENCY:-}"
check "haproxy.cfg lists db-002 alone" servers_are "db-002.example.com:3306 127.0.0.12:3306"
check "every answer comes from db-002" only_answers 2 db-002
check "HAProxy was reloaded twice in all" [ "$(reloads)" = 2 ]

# --- 4. add db-003 with a lower priority value --------------------------------------------
echo "== 4. nsupdate: add db-003 at priority 5 (db-002 is at 10)"
t0=$(now)
check "nsupdate adds db-003 at priority 5" dns_update "update add $SRV_NAME. $TTL SRV 5 10 $BACKEND_PORT db-003.example.com."
eventually 15 "only db-003 answers once it has the lowest priority value" settled "$t0" db-003
check "db-003 took over within ${BOUND}s (took ${LATENCY:-?}s)" within "$BOUND" "${LATENCY:-}"
check "haproxy.cfg: db-003 active, db-002 a backup (the template's priority handling)" \
  servers_are "db-003.example.com:3306 127.0.0.13:3306" "db-002.example.com:3306 127.0.0.12:3306 backup"
check "every answer comes from db-003" only_answers 2 db-003
check "HAProxy was reloaded three times in all" [ "$(reloads)" = 3 ]

# --- 5. DNS outage ----------------------------------------------------------------------
echo "== 5. stop the DNS server, then start it again"
hash=$(cfg_hash)
mark=$(log_mark)
stop_dns
check "the DNS server is down" bash -c "! kdig @$DNS_ADDR -p $DNS_PORT +short +time=1 +retry=0 SOA example.com >/dev/null 2>&1"
eventually 10 "/status reports the failure (Ok false, the domain's error)" \
  status_has 'not d["Ok"] and not t["ok"] and "'"$SRV_NAME"'" in (t["error"] or "") and t["domains"][0]["error"]'
check "srvd logs the failure" logged_since "$mark" "WARN .*$SRV_NAME: "
check "traffic goes on to db-003 while DNS is down" only_answers 3 db-003
check "haproxy.cfg stays as it was" [ "$(cfg_hash)" = "$hash" ]
check "no reload during the outage" [ "$(reloads)" = 3 ]
check "srvd keeps running" srvd_running
start_dns
eventually 15 "srvd recovers by itself: /status Ok again" status_ok
check "srvd logs the recovery" logged_since "$mark" "recovered \(was: .*$SRV_NAME"
check "haproxy.cfg is unchanged after the outage" [ "$(cfg_hash)" = "$hash" ]
check "no reload after the outage" [ "$(reloads)" = 3 ]

# --- 6. hostile targets --------------------------------------------------------------------
echo "== 6. nsupdate: SRV records whose targets are not host names"
# Priority 1 would make them the active servers, and they have A records, so
# only the host name check stands between them and haproxy.cfg. The first
# would inject a line into the config; the second has a dot inside a label.
evil='evil\010server\032x\03210.0.0.1:3306.example.com.'
dotted='db-009\.x.example.com.'
hash=$(cfg_hash)
mark=$(log_mark)
dropped_before=$(metric srvd_rejected_records_total)
check "nsupdate publishes them" dns_update \
  "update add $evil $TTL A 127.0.0.14" \
  "update add $dotted $TTL A 127.0.0.14" \
  "update add $SRV_NAME. $TTL SRV 1 10 $BACKEND_PORT $evil" \
  "update add $SRV_NAME. $TTL SRV 1 10 $BACKEND_PORT $dotted"
check "the DNS server publishes both records" \
  bash -c "[ \$(kdig @$DNS_ADDR -p $DNS_PORT +short SRV $SRV_NAME | grep -c '^1 ') = 2 ]"
eventually 10 "srvd logs the injection attempt as dropped" \
  logged_since_fixed "$mark" "dropped SRV record evil\\010server\\032x\\03210.0.0.1:3306.example.com. port 3306: byte newline"
eventually 10 "srvd logs the label with a dot as dropped" \
  logged_since_fixed "$mark" "dropped SRV record db-009\\046x.example.com. port 3306"
rejected_records_are() { [ "$(metric srvd_rejected_records_total)" = "$1" ]; }
eventually 5 "the rejected-records metric counts both" rejected_records_are "$((${dropped_before:-0} + 2))"
sleep $((INTERVAL + TTL))
check "neither reaches haproxy.cfg: it is unchanged" [ "$(cfg_hash)" = "$hash" ]
check "haproxy.cfg has no trace of them" bash -c "! grep -qE 'evil|db-009|127\.0\.0\.14' '$T/haproxy/haproxy.cfg'"
check "the remaining records are fine: /status Ok" status_ok
check "traffic goes on to db-003" only_answers 2 db-003
check "nsupdate removes them" dns_update \
  "update delete $SRV_NAME. SRV 1 10 $BACKEND_PORT $evil" \
  "update delete $SRV_NAME. SRV 1 10 $BACKEND_PORT $dotted" \
  "update delete $evil A" \
  "update delete $dotted A"
sleep $((INTERVAL + TTL + 1))
check "haproxy.cfg is unchanged after they are removed" [ "$(cfg_hash)" = "$hash" ]
check "no reload for records that were never rendered" [ "$(reloads)" = 3 ]

# --- 7. a config HAProxy refuses --------------------------------------------------------
echo "== 7. SIGHUP to a template whose output fails haproxy -c, then back"
sed 's/^\( *balance\) roundrobin$/\1 no-such-algorithm/' "$TEMPLATE" >"$T/broken.cfg.tmpl"
check "the broken copy differs from the template" bash -c "! cmp -s '$TEMPLATE' '$T/broken.cfg.tmpl'"
hash=$(cfg_hash)
mark=$(log_mark)
write_srvd_config "$T/broken.cfg.tmpl"
kill -HUP "$SRVD_PID"
eventually 10 "/status reports the failed check" \
  status_has 'not d["Ok"] and not t["ok"] and "check_cmd" in (t["error"] or "") and t["check_failures"] >= 1'
check "srvd logs the failed check" logged_since "$mark" "WARN .*check_cmd"
check "srvd logs HAProxy's reason" logged_since "$mark" "haproxy \(stderr\): .*ALERT.*balance"
sleep $((INTERVAL * 3))
check "$((INTERVAL * 3))s later, /status still reports it: the broken template is in force" \
  status_has 'not d["Ok"] and not t["ok"] and "check_cmd" in (t["error"] or "")'
check "srvd does not call it recovered meanwhile" bash -c "! tail -c +$((mark + 1)) '$T/srvd.log' | grep -q recovered"
check "the old haproxy.cfg stays" [ "$(cfg_hash)" = "$hash" ]
check "no staged file is left beside haproxy.cfg" bash -c "! ls -A '$T/haproxy' | grep -q '^\.srvd-staged-'"
check "traffic goes on to db-003" only_answers 2 db-003
check "no reload for a config that failed its check" [ "$(reloads)" = 3 ]
mark=$(log_mark)
write_srvd_config
kill -HUP "$SRVD_PID"
eventually 10 "srvd is Ok again with the template restored" status_ok
check "srvd logs the recovery" logged_since "$mark" "recovered"
check "haproxy.cfg is unchanged" [ "$(cfg_hash)" = "$hash" ]
check "no reload: the restored template renders what is already there" [ "$(reloads)" = 3 ]

# --- the whole run ------------------------------------------------------------------------
echo "== the whole run"
check "srvd ran throughout" srvd_running
stop_client
ended=$(now)
attempts=$(python3 "$HELPER" attempts "$CLIENT_LOG")
expected=$(awk -v a="$started" -v b="$ended" -v r="$RATE" 'BEGIN { printf "%d", (b - a) * r * 0.6 }')
check "the client kept its rate: $attempts connections in $(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.0f", b - a }')s (at least $expected)" \
  [ "$attempts" -ge "$expected" ]
check "the client saw 0 failed connections across it all" python3 "$HELPER" failures "$CLIENT_LOG"
# "show proc" forgets a failed reload once one succeeds; HAProxy's log does not.
check "HAProxy never refused a config srvd gave it (no \"Loading failure\" in its log)" \
  bash -c "! grep -q 'Loading failure' '$T/haproxy/haproxy.log'"

if [ "$SRVD_TESTS_FAILED" -ne 0 ]; then
  diagnose
  keep_logs
elif [ -n "${SRVD_E2E_KEEP:-}" ]; then
  keep_logs
fi
summary
