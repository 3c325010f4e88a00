#!/usr/bin/env bash
# srvd and DNS NOTIFY with a real primary: Knot DNS serves the SRV records
# (TTL 300) and sends NOTIFY to srvd, which polls every 60 s through a second
# server that never sees the changes (a stand-in for a caching resolver), so
# only a NOTIFY-driven refresh that asks the primary can explain a rewrite
# within seconds. Changes are made with nsupdate and knotc as an operator
# would. Covered: propagation and its DNS cost, exactly the affected templates
# refreshed, a zone no template uses, TSIG (Knot, dig and a script with the
# right key, a wrong key, no key), sources outside `allow`, the default
# primary (the sender, port 53), malformed packets, and a flood of signed
# NOTIFYs during which polling and the watchdog must keep going; /status,
# /metrics and the STATUS line must count all of it as it happens.
#
# CI runs it as root. Run:
#   SRVD_BIN=target/release/srvd bash tests/notify-knot/run.sh
# SRVD_NOTIFY_KNOT_PORT, SRVD_NOTIFY_RESOLVER_PORT, SRVD_NOTIFY_PORT and
# SRVD_NOTIFY_STATUS_PORT move the primary, the resolver, srvd's NOTIFY
# listener and its status endpoint (15300, 15301, 15353, 15380);
# SRVD_NOTIFY_SENDER_ADDR is where the primary also listens on port 53 for
# the default-primary step (127.0.0.153; that step needs root, and is
# reported as skipped, not passed, when port 53 there cannot be had).
# SRVD_NOTIFY_KEEP=1 keeps the temporary directory (logs, configs).
# The settings this file changes are read by lib.sh, sourced below.
# shellcheck disable=SC2034
set -uo pipefail

. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"

# How long a change may take to reach dest: Knot sends its NOTIFY about a
# second after an update; the rest is srvd's.
BOUND=5
# How long counters may take to show in /metrics, /status and STATUS.
SHOWN=3
# The flood: signed NOTIFYs for example.com, evenly over FLOOD_SECONDS.
FLOOD_COUNT=${FLOOD_COUNT:-30000}
FLOOD_SECONDS=${FLOOD_SECONDS:-3}
DEBOUNCE_MS=200

# A stack that cannot start is a failure like any other, reported the same way.
die() {
  fail "setup: $*"
  diagnose
  summary
  exit 1
}

diagnose() {
  [ -n "$T" ] || return 0
  echo "== srvd.toml"; cat "$T/srvd.toml" 2>/dev/null
  echo "== srvd log (last 40 lines)"; tail -n 40 "$T/srvd.log" 2>/dev/null
  echo "== primary's log (last 20 lines)"; tail -n 20 "$T/primary/knot.log" 2>/dev/null
  echo "== reloads"; cat "$T/reloads.log"
  echo "== /metrics (notify)"
  curl -fsS --max-time 2 "$STATUS_URL/metrics" | grep -E '^srvd_(notify|dns_queries|cycles)' || echo "(no answer)"
}

# The default-primary step: the primary also listens on $SENDER_ADDR:53.
SENDER=${SRVD_NOTIFY_SENDER_ADDR:-127.0.0.153}
if [ "$(id -u)" = 0 ] && ! ss -Hlntu 2>/dev/null | awk '{print $5}' |
  grep -qE "^(\*|0\.0\.0\.0|\[::\]|${SENDER//./\\.}):53\$"; then
  SENDER_ADDR=$SENDER
fi

nk_init

# --- helpers over what the stack records ----------------------------------------

ACCEPTED=srvd_notify_accepted_total
RECEIVED=srvd_notify_received_total
IGNORED=srvd_notify_ignored_total
BAD_TSIG='srvd_notify_refused_total{reason="tsig"}'
BAD_SOURCE='srvd_notify_refused_total{reason="source"}'
MALFORMED='srvd_notify_refused_total{reason="malformed"}'
QUERIES=srvd_dns_queries_total
CONFIG_OK='srvd_config_reloads_total{result="success"}'

outputs_hash() { cat "$T"/out/*.cfg "$T/reloads.log" | sha256sum | cut -d' ' -f1; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
between() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
# mysql_is RELOADS TARGET...: mysql.cfg lists the TARGETs and its reload
# command ran RELOADS times.
mysql_is() {
  local n=$1
  shift
  reloads_are mysql "$n" && servers_are mysql "$@"
}
# The last STATUS= srvd sent to its notify socket.
status_line_says() { grep ' STATUS=' "$T/sd.log" | tail -n 1 | grep -qF -- "$1"; }
logged() { grep -qE -- "$1" "$T/srvd.log"; }
knot_log_mark() { stat -c %s "$T/primary/knot.log"; }
knot_logged_since() { tail -c +"$(($1 + 1))" "$T/primary/knot.log" | grep -qE -- "$2"; }
# both CMD1... -- CMD2...: both succeed.
both() {
  local a=()
  while [ "$1" != -- ]; do a+=("$1"); shift; done
  shift
  "${a[@]}" && "$@"
}
# The SRV queries the resolver answered, in example.com and example.org.
resolver_queries() { echo "$(srv_queries resolver example.com) $(srv_queries resolver example.org)"; }

# sighup_config: re-reads srvd.toml and waits until srvd took it.
sighup_config() {
  local before
  before=$(metric "$CONFIG_OK") || return 1
  kill -HUP "$SRVD_PID"
  wait_for 10 metric_is "$CONFIG_OK" $((before + 1))
}

# send_notify ARGS...: notify.py send to srvd; prints the answer's RCODE.
send_notify() { python3 "$HELPER" send "$ADDR" "$NOTIFY_PORT" "$@"; }
answer_is() {
  local want=$1 got
  shift
  got=$("$@")
  [ "$got" = "$want" ] || { echo "  (answer: $got)"; return 1; }
}
# dig_notify ARGS...: a NOTIFY for example.com made by BIND's dig; prints its RCODE.
dig_notify() {
  dig @"$ADDR" -p "$NOTIFY_PORT" +opcode=notify +norecurse +time=2 +tries=1 "$@" example.com SOA 2>/dev/null |
    sed -n 's/.*status: \([A-Z]*\),.*/\1/p' | head -n 1
}

echo "== starting: $(knotd --version 2>&1 | head -n1); $("$SRVD" --version)"
start_dns
wait_for 10 knot_startup_notifies_done || true
write_srvd_config
start_nk_srvd
eventually 10 "srvd starts and renders every template from the resolver (/status Ok)" \
  status_has 'd["Ok"] and len(d["templates"]) == 3 and all(t["ok"] for t in d["templates"])'
check "srvd listens for NOTIFY on $ADDR:$NOTIFY_PORT" logged "listening for DNS NOTIFY on $ADDR:$NOTIFY_PORT \(UDP and TCP\)"
check "mysql.cfg lists db-001" servers_are mysql db-001.example.com
check "redis.cfg lists cache-001" servers_are redis cache-001.example.com
check "pg.cfg lists pg-001" servers_are pg pg-001.example.org
eventually 5 "each reload command ran once" \
  bash -c "[ \"\$(sort -k2 -u '$T/reloads.log' | wc -l)\" = 3 ] && [ \"\$(wc -l <'$T/reloads.log')\" = 3 ]"
eventually 5 "srvd told its service manager READY=1" grep -q ' READY=1$' "$T/sd.log"
check "/status and /metrics show the NOTIFY counters at zero" \
  both status_has 'd["notify"]["received"] == 0' -- metric_is "$RECEIVED" 0

# --- 1. nsupdate adds a record ---------------------------------------------------------
echo "== 1. nsupdate on the primary: add db-002 to _mysql._tcp.example.com (TTL 300, srvd polls every 60 s)"
check "nsupdate adds pg-002 to example.org on the resolver: the view srvd polls changes, without NOTIFY" \
  dns_update resolver example.org "update add _pg._tcp.example.org. 300 SRV 10 10 5432 pg-002.example.org."
q0=$(metric "$QUERIES")
a0=$(metric "$ACCEPTED")
com0=$(srv_queries primary example.com)
res0=$(resolver_queries)
t0=$(now)
check "nsupdate adds db-002" \
  dns_update primary example.com "update add _mysql._tcp.example.com. 300 SRV 10 10 3306 db-002.example.com."
eventually "$BOUND" "mysql.cfg lists db-001 and db-002 within ${BOUND}s" \
  servers_are mysql db-001.example.com db-002.example.com
echo "  (rewritten $(secs_since "$t0")s after nsupdate started)"
eventually 3 "the reload command ran for mysql.cfg" reloads_are mysql 2
eventually "$SHOWN" "srvd_notify_accepted_total counts the NOTIFY" metric_is "$ACCEPTED" $((a0 + 1))
sleep 1
check "exactly one NOTIFY accepted for the change" metric_is "$ACCEPTED" $((a0 + 1))
check "srvd_dns_queries_total grew by 4: one SRV and one SOA (the zone's serial) query per template in example.com (mysql, redis)" \
  metric_is "$QUERIES" $((q0 + 4))
check "the primary answered those 2 SRV queries: srvd asked it, not its nameservers" \
  [ "$(srv_queries primary example.com)" = $((com0 + 2)) ]
check "the resolver answered none (no poll, pg not refreshed)" [ "$(resolver_queries)" = "$res0" ]
check "pg.cfg still lists pg-001 alone: without a NOTIFY its change waits for the poll and the TTL" \
  servers_are pg pg-001.example.org
check "redis.cfg not reloaded (refreshed, same records)" reloads_are redis 1
check "pg.cfg not reloaded" reloads_are pg 1
n=$(metric "$ACCEPTED")
check "/status: notify.accepted is $n, example.com. in notify.last" \
  status_has "d['notify']['accepted'] == $n and 'example.com.' in d['notify']['last']"
last_com() {
  curl -fsS --max-time 2 "$STATUS_URL/metrics" |
    awk '$1 == "srvd_notify_last_timestamp_seconds{zone=\"example.com.\"}" { printf "%d\n", $2 }'
}
check "/metrics: srvd_notify_last_timestamp_seconds{zone=\"example.com.\"} is the NOTIFY's time" \
  between "$(last_com)" "${t0%.*}" "$(date +%s)"
eventually "$SHOWN" "the STATUS line says \"NOTIFY $n accepted, 0 refused\"" \
  status_line_says "; NOTIFY $n accepted, 0 refused, last "

# --- 2. knotc removes a record -----------------------------------------------------------
echo "== 2. knotc zone-begin/zone-unset/zone-commit on the primary: remove db-001"
q0=$(metric "$QUERIES")
t0=$(now)
check "knotc removes db-001" \
  knot_zone_change example.com zone-unset _mysql._tcp.example.com. SRV "10 10 3306 db-001.example.com."
eventually "$BOUND" "mysql.cfg lists db-002 alone within ${BOUND}s" servers_are mysql db-002.example.com
echo "  (rewritten $(secs_since "$t0")s after knotc started)"
eventually 3 "the reload command ran for mysql.cfg again" reloads_are mysql 3
sleep 1
check "srvd_dns_queries_total grew by 5: SRV and SOA per template, and mysql's answer (a target gone) confirmed over TCP" \
  metric_is "$QUERIES" $((q0 + 5))
check "redis.cfg and pg.cfg were not reloaded" both reloads_are redis 1 -- reloads_are pg 1

# --- 3. a zone no template uses ------------------------------------------------------------
echo "== 3. nsupdate in example.net: the primary notifies srvd of a zone no template uses"
q0=$(metric "$QUERIES")
a0=$(metric "$ACCEPTED")
i0=$(metric "$IGNORED")
h0=$(outputs_hash)
check "nsupdate adds a record to example.net" \
  dns_update primary example.net "update add _mysql._tcp.example.net. 300 SRV 10 10 3306 db-902.example.net."
eventually $((BOUND + SHOWN)) "srvd_notify_ignored_total counts it" metric_is "$IGNORED" $((i0 + 1))
check "srvd_notify_accepted_total counts it too (well formed and allowed)" metric_is "$ACCEPTED" $((a0 + 1))
check "/status: example.net. in notify.last" status_has "'example.net.' in d['notify']['last']"
sleep 1
check "no DNS query for it" metric_is "$QUERIES" "$q0"
check "no file rewritten, no reload" [ "$(outputs_hash)" = "$h0" ]
check "no warning for it" bash -c "! grep -E 'WARN|ERROR' '$T/srvd.log' | grep -q example.net"

# --- 4. TSIG --------------------------------------------------------------------------------
echo "== 4. srvd requires TSIG (key srvd-notify: the file keymgr wrote, as srvd's secret_file)"
SRVD_TSIG=1
write_srvd_config
check "SIGHUP: srvd takes the config with key_name/secret_file" sighup_config
NOTIFY_KEY="hmac-sha256:srvd-notify:$NOTIFY_SECRET"
WRONG_KEY="hmac-sha256:srvd-notify:$WRONG_SECRET"

echo "-- 4a. the primary sends its NOTIFY unsigned"
b0=$(metric "$BAD_TSIG")
a0=$(metric "$ACCEPTED")
r0=$(reloads mysql)
mark=$(knot_log_mark)
check "nsupdate adds db-003" \
  dns_update primary example.com "update add _mysql._tcp.example.com. 300 SRV 10 10 3306 db-003.example.com."
eventually $((BOUND + SHOWN)) "the unsigned NOTIFY is refused: srvd_notify_refused_total{reason=\"tsig\"} counts it" \
  metric_is "$BAD_TSIG" $((b0 + 1))
sleep 1
check "mysql.cfg unchanged (db-002 alone), no reload" mysql_is "$r0" db-002.example.com
check "nothing accepted" metric_is "$ACCEPTED" "$a0"
check "Knot logs srvd's answer: NOTAUTH" knot_logged_since "$mark" "notify, outgoing, remote $ADDR@$NOTIFY_PORT, server responded with error 'NOTAUTH'"
check "srvd logs the refusal" logged "NOTIFY from $ADDR refused: TSIG not signed"

echo "-- 4b. the primary signs with srvd-notify"
KNOT_NOTIFY_KEY=right
knot_reconfigure
mark=$(knot_log_mark)
b0=$(metric "$BAD_TSIG")
a0=$(metric "$ACCEPTED")
t0=$(now)
check "nsupdate adds db-004" \
  dns_update primary example.com "update add _mysql._tcp.example.com. 300 SRV 10 10 3306 db-004.example.com."
eventually "$BOUND" "mysql.cfg lists db-002, db-003 and db-004 within ${BOUND}s (the refused change too)" \
  servers_are mysql db-002.example.com db-003.example.com db-004.example.com
echo "  (rewritten $(secs_since "$t0")s after nsupdate started)"
eventually 3 "the reload command ran" reloads_are mysql $((r0 + 1))
eventually "$SHOWN" "the signed NOTIFY was accepted" metric_is "$ACCEPTED" $((a0 + 1))
check "no TSIG refusal" metric_is "$BAD_TSIG" "$b0"
check "Knot verified srvd's signed answer (it logs the NOTIFY's serial, no failure)" \
  both knot_logged_since "$mark" "notify, outgoing, remote $ADDR@$NOTIFY_PORT.*serial" -- \
  bash -c "! tail -c +$((mark + 1)) '$T/primary/knot.log' | grep -q 'notify.*failed'"

echo "-- 4c. the primary signs with a wrong secret under srvd's key name"
KNOT_NOTIFY_KEY=wrong
knot_reconfigure
b0=$(metric "$BAD_TSIG")
a0=$(metric "$ACCEPTED")
r0=$(reloads mysql)
mark=$(knot_log_mark)
check "nsupdate removes db-004" \
  dns_update primary example.com "update delete _mysql._tcp.example.com. SRV 10 10 3306 db-004.example.com."
eventually $((BOUND + SHOWN)) "the badly signed NOTIFY is refused (reason=\"tsig\")" metric_is "$BAD_TSIG" $((b0 + 1))
sleep 1
check "mysql.cfg still lists db-004, no reload" \
  mysql_is "$r0" db-002.example.com db-003.example.com db-004.example.com
check "nothing accepted" metric_is "$ACCEPTED" "$a0"
check "Knot logs srvd's answer: a TSIG BADSIG error" \
  knot_logged_since "$mark" "notify, outgoing, remote $ADDR@$NOTIFY_PORT, server responded with error 'BADSIG'"

echo "-- 4d. other senders: a script and BIND's dig, with wrong, unknown and no keys"
b0=$(metric "$BAD_TSIG")
check "a script's NOTIFY signed with the wrong secret: NOTAUTH" answer_is NOTAUTH send_notify example.com --key "$WRONG_KEY"
check "a script's NOTIFY signed with an unknown key name: NOTAUTH" \
  answer_is NOTAUTH send_notify example.com --key "hmac-sha256:intruder:$NOTIFY_SECRET"
check "a script's NOTIFY signed with the right secret under hmac-sha512: NOTAUTH" \
  answer_is NOTAUTH send_notify example.com --key "hmac-sha512:srvd-notify:$NOTIFY_SECRET"
check "an unsigned NOTIFY over TCP: NOTAUTH" answer_is NOTAUTH send_notify example.com --tcp
check "dig's NOTIFY signed with the wrong secret: NOTAUTH" answer_is NOTAUTH dig_notify -y "$WRONG_KEY"
check "dig's unsigned NOTIFY: NOTAUTH" answer_is NOTAUTH dig_notify
eventually "$SHOWN" "srvd_notify_refused_total{reason=\"tsig\"} counts all six" metric_is "$BAD_TSIG" $((b0 + 6))
check "nothing accepted" metric_is "$ACCEPTED" "$a0"

echo "-- 4e. sources outside allow (127.0.0.1 only)"
s0=$(metric "$BAD_SOURCE")
check "a script's correctly signed NOTIFY from 127.0.0.2: REFUSED" \
  answer_is REFUSED send_notify example.com --source 127.0.0.2 --key "$NOTIFY_KEY"
check "dig's correctly signed NOTIFY from 127.0.0.3: REFUSED" answer_is REFUSED dig_notify -b 127.0.0.3 -y "$NOTIFY_KEY"
KNOT_NOTIFY_KEY=right KNOT_NOTIFY_VIA=127.0.0.4
knot_reconfigure
mark=$(knot_log_mark)
check "knotc zone-notify: the primary sends a correctly signed NOTIFY from 127.0.0.4" \
  knot_notify example.com
eventually $((BOUND + SHOWN)) "srvd_notify_refused_total{reason=\"source\"} counts all three" \
  metric_is "$BAD_SOURCE" $((s0 + 3))
sleep 1
check "mysql.cfg still lists db-004, no reload" \
  mysql_is "$r0" db-002.example.com db-003.example.com db-004.example.com
check "nothing accepted" metric_is "$ACCEPTED" "$a0"
check "Knot logs srvd's answer: REFUSED" \
  knot_logged_since "$mark" "notify, outgoing, remote $ADDR@$NOTIFY_PORT, server responded with error 'REFUSED'"
check "srvd logs each refused source" \
  both logged "NOTIFY from 127\.0\.0\.2 refused: the source is not in \[notify\] allow" -- \
  logged "NOTIFY from 127\.0\.0\.4 refused: the source is not in \[notify\] allow"
refused=$(($(metric "$BAD_TSIG") + $(metric "$BAD_SOURCE")))
eventually "$SHOWN" "the STATUS line counts the refusals: \"NOTIFY $a0 accepted, $refused refused\"" \
  status_line_says "; NOTIFY $a0 accepted, $refused refused"
check "/status counts them: notify.refused + notify.bad_tsig = $refused" \
  status_has "d['notify']['refused'] + d['notify']['bad_tsig'] == $refused"

echo "-- 4f. correctly signed by dig, then by the script over TCP"
t0=$(now)
check "dig's NOTIFY signed with srvd-notify: NOERROR" answer_is NOERROR dig_notify -y "$NOTIFY_KEY"
eventually 3 "mysql.cfg drops db-004 at once (the change the refused NOTIFYs announced)" \
  servers_are mysql db-002.example.com db-003.example.com
echo "  (rewritten $(secs_since "$t0")s after dig's NOTIFY)"
eventually 3 "the reload command ran" reloads_are mysql $((r0 + 1))
check "the script's NOTIFY signed with srvd-notify, over TCP: NOERROR" \
  answer_is NOERROR send_notify example.com --tcp --key "$NOTIFY_KEY"
eventually "$SHOWN" "both were accepted" metric_is "$ACCEPTED" $((a0 + 2))
KNOT_NOTIFY_KEY=right KNOT_NOTIFY_VIA=
knot_reconfigure

# --- 5. the default primary: the sender, port 53 ---------------------------------------------
echo "== 5. no [notify.primaries] entry for example.com: srvd asks the NOTIFY's sender on port 53"
if [ -n "$SENDER_ADDR" ]; then
  SRVD_ALLOW="\"$ADDR\", \"$SENDER_ADDR\"" SRVD_PRIMARIES=0 write_srvd_config
  check "SIGHUP: srvd takes the config without example.com's primaries, allowing $SENDER_ADDR" sighup_config
  KNOT_NOTIFY_VIA=$SENDER_ADDR
  knot_reconfigure
  a0=$(metric "$ACCEPTED")
  res0=$(resolver_queries)
  t0=$(now)
  check "nsupdate adds db-007" \
    dns_update primary example.com "update add _mysql._tcp.example.com. 300 SRV 10 10 3306 db-007.example.com."
  eventually "$BOUND" "mysql.cfg lists db-007 within ${BOUND}s: srvd asked $SENDER_ADDR:53" \
    servers_are mysql db-002.example.com db-003.example.com db-007.example.com
  echo "  (rewritten $(secs_since "$t0")s after nsupdate started)"
  eventually "$SHOWN" "the NOTIFY from $SENDER_ADDR was accepted" metric_is "$ACCEPTED" $((a0 + 1))
  check "the resolver answered no SRV query" [ "$(resolver_queries)" = "$res0" ]
  check "nsupdate removes db-007" \
    dns_update primary example.com "update delete _mysql._tcp.example.com. SRV 10 10 3306 db-007.example.com."
  eventually "$BOUND" "mysql.cfg drops db-007" servers_are mysql db-002.example.com db-003.example.com
  KNOT_NOTIFY_VIA=
  knot_reconfigure
  write_srvd_config
  check "SIGHUP: back to the config with example.com's primaries" sighup_config
else
  echo "skip: port 53 on $SENDER cannot be had (not root, or taken): the default primary is not tested"
fi

# --- 6. malformed packets ---------------------------------------------------------------------
echo "== 6. malformed packets over UDP and TCP"
m0=$(metric "$MALFORMED")
a0=$(metric "$ACCEPTED")
sent=$(python3 "$HELPER" garbage "$ADDR" "$NOTIFY_PORT" 2>/dev/null)
check "the script sent its malformed messages ($sent)" [ "${sent:-0}" -gt 50 ]
eventually "$SHOWN" "srvd_notify_refused_total{reason=\"malformed\"} counts every one of them" \
  metric_is "$MALFORMED" $((m0 + sent))
check "srvd is still running" srvd_running
check "/status still answers, Ok" status_has 'd["Ok"]'
check "nothing accepted" metric_is "$ACCEPTED" "$a0"
t0=$(now)
check "nsupdate adds db-005" \
  dns_update primary example.com "update add _mysql._tcp.example.com. 300 SRV 10 10 3306 db-005.example.com."
eventually "$BOUND" "the primary's next NOTIFY still works: mysql.cfg lists db-005 within ${BOUND}s" \
  servers_are mysql db-002.example.com db-003.example.com db-005.example.com
echo "  (rewritten $(secs_since "$t0")s after nsupdate started)"

# --- 7. a flood ----------------------------------------------------------------------------------
echo "== 7. a flood: $FLOOD_COUNT signed NOTIFYs for example.com in ${FLOOD_SECONDS}s, with a template polled every second"
SRVD_TICK=1
write_srvd_config
check "SIGHUP: srvd adds the tick template (interval 1 s, TTL 1, example.org: no NOTIFY)" sighup_config
eventually 5 "tick.cfg lists tick-001" servers_are tick tick-001.example.org
sleep 2
rcv0=$(metric "$RECEIVED")
a0=$(metric "$ACCEPTED")
c0=$(metric srvd_cycles_total)
com0=$(srv_queries primary example.com)
org0=$(srv_queries resolver example.org)
rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$SRVD_PID/status")
python3 "$HELPER" flood "$ADDR" "$NOTIFY_PORT" example.com --count "$FLOOD_COUNT" --seconds "$FLOOD_SECONDS" \
  --key "$NOTIFY_KEY" >"$T/flood.out" 2>&1 &
flood=$!
f_start=$(now)
sleep 0.5
t_tick=$(now)
check "nsupdate changes the tick record on the resolver during the flood" \
  dns_update resolver example.org \
  "update delete _tick._tcp.example.org. SRV" \
  "update add _tick._tcp.example.org. 1 SRV 10 10 1 tick-002.example.org."
wait_for $((FLOOD_SECONDS + 10)) servers_are tick tick-002.example.org
tick_latency=$(secs_since "$t_tick")
tick_done=$(now)
wait "$flood"
read -r _ fsent _ fanswered _ fnoerror _ fsecs <"$T/flood.out"
f_end=$(awk -v a="$f_start" -v s="${fsecs:-0}" 'BEGIN { printf "%.3f", a + s }')
echo "  (flood: $(cat "$T/flood.out"))"
check "srvd survived the flood" srvd_running
check "the script sent all $FLOOD_COUNT" [ "${fsent:-0}" = "$FLOOD_COUNT" ]
sleep 1
received=$(($(metric "$RECEIVED") - rcv0))
accepted=$(($(metric "$ACCEPTED") - a0))
echo "  (srvd received $received and accepted $accepted; the script got $fanswered answers, $fnoerror NOERROR)"
check "srvd received at least half of them (UDP may drop some on a busy machine)" \
  [ "$received" -ge $((FLOOD_COUNT / 2)) ]
check "it accepted every one it received (all correctly signed)" [ "$accepted" = "$received" ]
check "and answered them: NOERROR for at least 90% of what it received" \
  [ "${fnoerror:-0}" -ge $((received * 9 / 10)) ]
com=$(($(srv_queries primary example.com) - com0))
max_refreshes=$(awk -v s="${fsecs:-0}" -v d="$DEBOUNCE_MS" 'BEGIN { printf "%d", s * 1000 / d + 4 }')
check "coalesced: $com SRV queries at the primary for example.com, at most $((2 * max_refreshes)) (2 templates, at most one refresh per ${DEBOUNCE_MS}ms)" \
  between "$com" 2 $((2 * max_refreshes))
check "polling went on: tick.cfg lists tick-002 ${tick_latency}s after its change (at most interval 1 s + TTL 1 s + 2 s)" \
  awk -v l="$tick_latency" 'BEGIN { exit !(l <= 4) }'
check "the tick change arrived while the flood still ran" awk -v a="$tick_done" -v b="$f_end" 'BEGIN { exit !(a <= b) }'
org=$(($(srv_queries resolver example.org) - org0))
min_polls=$(awk -v s="${fsecs:-0}" 'BEGIN { printf "%d", s - 1 }')
check "the resolver answered $org SRV queries in example.org during the flood (the tick's polls: at least $min_polls)" \
  [ "$org" -ge "$min_polls" ]
cycles=$(($(metric srvd_cycles_total) - c0))
check "srvd_cycles_total grew during the flood ($cycles cycles, at least $min_polls)" [ "$cycles" -ge "$min_polls" ]
wd=$(python3 "$HELPER" sdcheck "$T/sd.log" "$f_start" "$f_end" --every 1.0)
check "the watchdog was fed throughout (WATCHDOG_USEC = 1 s): $wd" \
  python3 "$HELPER" sdcheck "$T/sd.log" "$f_start" "$f_end" --every 1.0
rss1=$(awk '/^VmRSS/ { print $2 }' "/proc/$SRVD_PID/status")
check "srvd's resident set grew by less than 10 MiB (${rss0} kB -> ${rss1} kB)" [ $((rss1 - rss0)) -lt 10240 ]
t0=$(now)
check "nsupdate adds db-006 right after" \
  dns_update primary example.com "update add _mysql._tcp.example.com. 300 SRV 10 10 3306 db-006.example.com."
eventually "$BOUND" "mysql.cfg lists db-006 within ${BOUND}s" \
  servers_are mysql db-002.example.com db-003.example.com db-005.example.com db-006.example.com
echo "  (rewritten $(secs_since "$t0")s after nsupdate started)"

# --- the whole run -----------------------------------------------------------------------------------
echo "== the whole run"
check "srvd ran throughout" srvd_running
check "srvd never panicked" bash -c "! grep -q panicked '$T/srvd.log'"
check "no template failed" status_has 'd["Ok"] and all(t["ok"] for t in d["templates"])'

if [ "$SRVD_TESTS_FAILED" -ne 0 ]; then
  diagnose
  SRVD_NOTIFY_KEEP=1
fi
summary
