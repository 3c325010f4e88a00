#!/usr/bin/env bash
# srvd behind a real caching resolver, with two real primaries: Unbound on
# loopback is srvd's only nameserver, with stub zones to Knot DNS
# (example.com, example.net) and to PowerDNS with its bind backend
# (example.org). Covered: srvd's queries reach Unbound; the TTL srvd gets
# is the one Unbound's cache counts down, and srvd does not ask again before
# that remaining TTL runs out (Unbound's and Knot's query counts); a change
# reaches dest once the cache expires, not before; a NOTIFY from Knot, and
# one from PowerDNS after its zone file is replaced and reloaded, make srvd
# ask that zone's primary directly ([notify.primaries]), so the change
# reaches dest at once while Unbound still serves the old answer.
#
# CI runs it as root. Run:
#   SRVD_BIN=target/release/srvd bash tests/resolvers/run.sh
# SRVD_RESOLVERS_BASE_PORT moves the five loopback ports it uses (15400:
# Knot, +1 Unbound, +2 PowerDNS, +3 srvd's NOTIFY listener, +4 its status
# endpoint). SRVD_RESOLVERS_KEEP=1 keeps the temporary directory (logs,
# configs).
set -uo pipefail

. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../knot.sh"

ADDR=127.0.0.1
# The address this script's own queries come from, so that Unbound's log
# tells them from srvd's.
PROBE=127.0.0.2
BASE=${SRVD_RESOLVERS_BASE_PORT:-15400}
KNOT_PORT=$BASE
UNBOUND_PORT=$((BASE + 1))
PDNS_PORT=$((BASE + 2))
NOTIFY_PORT=$((BASE + 3))
STATUS_PORT=$((BASE + 4))
STATUS_URL="http://$ADDR:$STATUS_PORT"
# The short TTL: example.net's SRV record, which nobody notifies srvd about.
SHORT=10
T=

die() {
  fail "setup: $*"
  diagnose
  summary
  exit 1
}

diagnose() {
  [ -n "$T" ] || return 0
  echo "== srvd log (last 30 lines)"; tail -n 30 "$T/srvd.log" 2>/dev/null
  echo "== unbound log (last 20 lines)"; tail -n 20 "$T/unbound/unbound.log" 2>/dev/null
  echo "== knot log (last 10 lines)"; tail -n 10 "$T/knot/knot.log" 2>/dev/null
  echo "== pdns log (last 20 lines)"; tail -n 20 "$T/pdns/pdns.log" 2>/dev/null
}

cleanup() {
  local status=$?
  trap - EXIT
  stop_started
  keep_or_remove "$status" "$T" "${SRVD_RESOLVERS_KEEP:-}"
  exit "$status"
}

need knotd knotc keymgr kdig nsupdate dig unbound unbound-checkconf pdns_server pdns_control python3 curl ss
SRVD=$(srvd_bin) || die "no srvd to test"
busy=$(busy_ports "$ADDR:$KNOT_PORT" "$ADDR:$UNBOUND_PORT" "$ADDR:$PDNS_PORT" "$ADDR:$NOTIFY_PORT" "$ADDR:$STATUS_PORT")
[ -z "$busy" ] || die "these addresses are already in use: $(tr "\n" " " <<<"$busy")"
T=$(mktemp -d "${TMPDIR:-/tmp}/srvd-resolvers.XXXXXX")
mkdir -p "$T/knot/zones" "$T/knot/db" "$T/unbound" "$T/pdns" "$T/out"
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers over what the servers record -------------------------------------

logged() { grep -qE -- "$1" "$T/srvd.log"; }
servers() { awk '$1 == "server" { print $2 }' "$T/out/$1.cfg" 2>/dev/null; }
servers_are() {
  local name=$1
  shift
  [ "$(servers "$name")" = "$(printf '%s\n' "$@")" ]
}
metric_is() { [ "$(metric "$1")" = "$2" ]; }
metric_above() { local v; v=$(metric "$1") && [ "$v" -gt "$2" ]; }
# knot_srv ZONE: the SRV queries Knot answered in ZONE.
knot_srv() {
  knotc -c "$T/knot/knot.conf" -s "$T/knot/knot.sock" zone-stats "$1" mod-stats.query-type 2>/dev/null |
    awk -F' = ' '/query-type\[SRV\]/ { n = $2 } END { print n + 0 }'
}
# unbound_asked FROM NAME: the epoch seconds of each SRV query for NAME that
# Unbound got from address FROM (its log-queries lines), one per line.
unbound_asked() {
  awk -v from="$1" -v name="$2." '$4 == from && $5 == name && $6 == "SRV" { gsub(/[][]/, "", $1); print $1 }' \
    "$T/unbound/unbound.log"
}
unbound_count() { unbound_asked "$1" "$2" | wc -l; }
# via_unbound NAME: the targets Unbound answers for NAME's SRV (asked from
# $PROBE), sorted; via_unbound_ttl NAME: the TTL of that answer.
via_unbound() { dig @"$ADDR" -p "$UNBOUND_PORT" -b "$PROBE" +short +time=2 +tries=1 SRV "$1" | awk '{ print $4 }' | sort; }
via_unbound_ttl() {
  dig @"$ADDR" -p "$UNBOUND_PORT" -b "$PROBE" +noall +answer +time=2 +tries=1 SRV "$1" | awk '{ print $2; exit }'
}
unbound_serves() {
  local name=$1
  shift
  [ "$(via_unbound "$name")" = "$(printf '%s\n' "$@" | sort)" ]
}
pdns_udp() { pdns_control --socket-dir="$T/pdns" show udp-queries 2>/dev/null; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# --- Knot: example.com (notifies srvd) and example.net (does not) ---------------

keymgr -t srvd-update hmac-sha256 >"$T/update.key" || die "keymgr failed"
UPDATE_KEY="hmac-sha256:srvd-update:$(awk '$1 == "secret:" { print $2 }' "$T/update.key")"
{
  zone_head example.com 300 "$ADDR"
  echo "_mysql._tcp  IN SRV  10 10 3306 db-001"
} >"$T/knot/zones/example.com.zone"
{
  zone_head example.net "$SHORT" "$ADDR"
  echo "_web._tcp    IN SRV  10 10 80 web-001"
} >"$T/knot/zones/example.net.zone"
{
  knot_conf "$T/knot" "$ADDR@$KNOT_PORT" "srvd-update:${UPDATE_KEY##*:}"
  cat <<EOF
remote:
  - id: srvd
    address: $ADDR@$NOTIFY_PORT
EOF
  knot_counted_template "$T/knot" -1
  cat <<EOF
  - domain: example.com
    notify: srvd
  - domain: example.net
EOF
} >"$T/knot/knot.conf"

# --- PowerDNS: example.org, bind backend, NOTIFY to srvd ---------------------------

pdns_zone() {
  local serial=$1
  shift
  # shellcheck disable=SC2016 # $ORIGIN and $TTL are the zone file's
  printf '$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 hostmaster %s 3600 600 86400 300\n' "$serial"
  printf '@ IN NS ns1\nns1 IN A %s\n' "$ADDR"
  for t in "$@"; do printf '_pg._tcp IN SRV 10 10 5432 %s\n' "$t"; done
}
pdns_zone 1 pg-001 >"$T/pdns/example.org.zone"
cat >"$T/pdns/named.conf" <<EOF
zone "example.org" { type master; file "$T/pdns/example.org.zone"; };
EOF
# No setuid: Debian's own pdns.conf (not read here) drops to the pdns user.
cat >"$T/pdns/pdns.conf" <<EOF
launch=bind
bind-config=$T/pdns/named.conf
local-address=$ADDR
local-port=$PDNS_PORT
socket-dir=$T/pdns
primary=yes
also-notify=$ADDR:$NOTIFY_PORT
# Only also-notify: by default PowerDNS also notifies its NS records'
# addresses on port 53, here 127.0.0.1:53, which is not this suite's.
only-notify=
xfr-cycle-interval=1
guardian=no
daemon=no
disable-syslog=yes
webserver=no
api=no
loglevel=6
EOF

# --- Unbound: the local cache, srvd's only nameserver ------------------------------

cat >"$T/unbound/unbound.conf" <<EOF
server:
  interface: $ADDR
  port: $UNBOUND_PORT
  do-ip6: no
  username: ""
  chroot: ""
  directory: "$T/unbound"
  pidfile: "$T/unbound/unbound.pid"
  use-syslog: no
  logfile: "$T/unbound/unbound.log"
  log-queries: yes
  verbosity: 1
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "iterator"
  prefetch: no
  serve-expired: no
remote-control:
  control-enable: no
stub-zone:
  name: "example.com"
  stub-addr: $ADDR@$KNOT_PORT
stub-zone:
  name: "example.net"
  stub-addr: $ADDR@$KNOT_PORT
stub-zone:
  name: "example.org"
  stub-addr: $ADDR@$PDNS_PORT
EOF
unbound-checkconf "$T/unbound/unbound.conf" >/dev/null || die "unbound-checkconf refused $T/unbound/unbound.conf"

# --- srvd --------------------------------------------------------------------

cat >"$T/srv.tmpl" <<'EOF'
{% for s in srvs -%}
server {{ s.host }} {{ s.port }}
{% endfor -%}
EOF
{
  cat <<EOF
nameservers = ["$ADDR:$UNBOUND_PORT"]
dns_timeout = "1s"
dns_attempts = 2
interval = "1s"
check_cmd = "test -s {{ src }}"
reload_cmd = "true"
status_addr = "$ADDR"
status_port = $STATUS_PORT
EOF
  srvd_template mysql "$T/srv.tmpl" "$T/out/mysql.cfg" _mysql._tcp.example.com
  srvd_template web "$T/srv.tmpl" "$T/out/web.cfg" _web._tcp.example.net
  srvd_template pg "$T/srv.tmpl" "$T/out/pg.cfg" _pg._tcp.example.org
  cat <<EOF

[notify]
listen = ["$ADDR:$NOTIFY_PORT"]
allow = ["$ADDR"]

[notify.primaries]
"example.com" = ["$ADDR:$KNOT_PORT"]
"example.org" = ["$ADDR:$PDNS_PORT"]
EOF
} >"$T/srvd.toml"

# --- start ---------------------------------------------------------------------

echo "== starting: $(knotd --version 2>&1 | head -n1); $(unbound -V | head -n1 | sed 's/^Version/Unbound/'); $(pdns_server --version 2>&1 | grep -o 'PowerDNS Authoritative Server [0-9.]*' | head -n1); $("$SRVD" --version)"
knot_start "$T/knot/knot.conf" "$ADDR" "$KNOT_PORT" example.com
pdns_server --config-dir="$T/pdns" >>"$T/pdns/pdns.log" 2>&1 &
PDNS_PID=$!
track_pid "$PDNS_PID"
wait_for 10 bash -c "kdig @$ADDR -p $PDNS_PORT +short +time=1 +retry=0 SOA example.org | grep -q hostmaster" ||
  die "pdns_server did not start"
unbound -d -c "$T/unbound/unbound.conf" >>"$T/unbound/unbound.err" 2>&1 &
UNBOUND_PID=$!
track_pid "$UNBOUND_PID"
wait_for 10 bash -c "dig @$ADDR -p $UNBOUND_PORT -b $PROBE +short +time=1 +tries=1 SOA example.org | grep -q hostmaster" ||
  die "unbound did not start"
# their_sockets tcp|udp: the local addresses of the sockets Knot, Unbound
# or PowerDNS hold, listening (TCP) or bound (UDP, which includes those
# they send their own queries from), one per line.
their_sockets() {
  ss -Hlntup | awk -v proto="$1" '$1 == proto && /"(knotd|unbound|pdns_server)"/ { print $5 }' | sort -u
}
check "Knot, Unbound and PowerDNS listen on TCP at $ADDR:$KNOT_PORT, :$UNBOUND_PORT, :$PDNS_PORT and nowhere else" \
  equals "$(printf '%s\n' "$ADDR:$KNOT_PORT" "$ADDR:$UNBOUND_PORT" "$ADDR:$PDNS_PORT")" their_sockets tcp
udp_served() { [ "$(their_sockets udp | grep -cxE "$ADDR:($KNOT_PORT|$UNBOUND_PORT|$PDNS_PORT)")" = 3 ]; }
check "and on UDP at those three" udp_served
check "none of them holds a socket on port 53" lacks ':53$' their_sockets udp
# Unbound's cache gets example.net's record first; srvd comes 4 s later.
check "Unbound answers _web._tcp.example.net with web-001 (from Knot)" unbound_serves _web._tcp.example.net web-001.example.net.
primed=$(unbound_asked "$PROBE" _web._tcp.example.net | tail -n 1)
check "Knot answered Unbound's one SRV query in example.net" [ "$(knot_srv example.net)" = 1 ]
sleep 4

start_srvd "$T/srvd.toml" "$T/srvd.log"
eventually 10 "srvd starts and renders every template through Unbound (/status Ok)" \
  bash -c "curl -fsS --max-time 2 '$STATUS_URL/status' | python3 -c 'import json, sys; d = json.load(sys.stdin); sys.exit(0 if d[\"Ok\"] and len(d[\"templates\"]) == 3 else 1)'"
check "srvd listens for NOTIFY on $ADDR:$NOTIFY_PORT" logged "listening for DNS NOTIFY on $ADDR:$NOTIFY_PORT"
check "mysql.cfg lists db-001 (Knot)" servers_are mysql db-001.example.com
check "web.cfg lists web-001 (Knot)" servers_are web web-001.example.net
check "pg.cfg lists pg-001 (PowerDNS)" servers_are pg pg-001.example.org
for name in _mysql._tcp.example.com _web._tcp.example.net _pg._tcp.example.org; do
  check "srvd's query for $name reached Unbound" [ "$(unbound_count "$ADDR" "$name")" -ge 1 ]
done
first=$(unbound_asked "$ADDR" _web._tcp.example.net | head -n 1)

# --- 1. the cache counts the TTL down; srvd waits for what remains -------------------
echo "== 1. _web._tcp.example.net has TTL $SHORT; Unbound cached it at $primed, srvd first asked at $first"
ttl=$(via_unbound_ttl _web._tcp.example.net)
check "Unbound's answer carries the TTL its cache counts down (${ttl:-none} < $SHORT)" \
  bash -c "[ -n '$ttl' ] && [ '$ttl' -lt $SHORT ]"
check "Knot still answered a single SRV query in example.net: srvd's came from Unbound's cache" \
  [ "$(knot_srv example.net)" = 1 ]
check "nsupdate changes web-001 to web-002 on Knot (no NOTIFY for example.net)" \
  knot_update "$ADDR" "$KNOT_PORT" "$UPDATE_KEY" example.net \
  "update delete _web._tcp.example.net. SRV" "update add _web._tcp.example.net. $SHORT SRV 10 10 80 web-002.example.net."
check "Unbound still serves web-001 from its cache" unbound_serves _web._tcp.example.net web-001.example.net.
check "web.cfg still lists web-001 while the cached answer lives" servers_are web web-001.example.net
eventually $((SHORT + 5)) "web.cfg lists web-002 once the cache expired" servers_are web web-002.example.net
changed=$(date +%s)
asked=$(unbound_asked "$ADDR" _web._tcp.example.net)
second=$(sed -n 2p <<<"$asked")
echo "  (srvd asked Unbound at: $(tr "\n" " " <<<"$asked"); web.cfg changed at $changed)"
check "srvd did not ask again before the remaining TTL ran out (second query at ${second:-never} >= $primed + $SHORT - 1; TTLs are whole seconds)" \
  bash -c "[ -n '$second' ] && [ '$second' -ge $((primed + SHORT - 1)) ]"
check "srvd waited for the remaining TTL, not a full $SHORT s from its own first query (${second:-never} - $first < $SHORT)" \
  bash -c "[ -n '$second' ] && [ $((${second:-0} - first)) -lt $SHORT ]"
check "the change took Knot's second SRV query in example.net, Unbound's refetch" \
  [ "$(knot_srv example.net)" -ge 2 ]
check "srvd's polls every second did not each reach Unbound (at most 5 queries for web in $((changed - first + 1)) s)" \
  [ "$(unbound_count "$ADDR" _web._tcp.example.net)" -le 5 ]

# --- 2. a NOTIFY from Knot bypasses the cache ---------------------------------------
echo "== 2. knotc adds db-002 to _mysql._tcp.example.com (TTL 300, cached by Unbound); Knot notifies srvd"
accepted=$(metric srvd_notify_accepted_total)
ub0=$(unbound_count "$ADDR" _mysql._tcp.example.com)
k0=$(knot_srv example.com)
t0=$(now)
check "knotc commits db-002" bash -c "
  knotc -c '$T/knot/knot.conf' -s '$T/knot/knot.sock' zone-begin example.com >/dev/null &&
  knotc -c '$T/knot/knot.conf' -s '$T/knot/knot.sock' zone-set example.com _mysql._tcp.example.com. 300 SRV '10 10 3306 db-002.example.com.' >/dev/null &&
  knotc -c '$T/knot/knot.conf' -s '$T/knot/knot.sock' zone-commit example.com >/dev/null"
wait_for 5 servers_are mysql db-001.example.com db-002.example.com
took=$(secs_since "$t0")
check "mysql.cfg lists db-001 and db-002 within a second of the commit (${took}s)" \
  bash -c "servers_are() { [ \"\$(awk '\$1 == \"server\" { print \$2 }' '$T/out/mysql.cfg')\" = \"\$(printf '%s\n' db-001.example.com db-002.example.com)\" ]; }; servers_are && awk -v t=$took 'BEGIN { exit !(t < 1) }'"
eventually 3 "srvd accepted Knot's NOTIFY" metric_above srvd_notify_accepted_total "$accepted"
check "srvd asked Knot, the primary: Knot's SRV count in example.com grew" [ "$(knot_srv example.com)" -gt "$k0" ]
check "srvd did not ask Unbound for it" [ "$(unbound_count "$ADDR" _mysql._tcp.example.com)" = "$ub0" ]
check "Unbound still serves db-001 alone" unbound_serves _mysql._tcp.example.com db-001.example.com.

# --- 3. PowerDNS: a replaced zone file, reloaded, sends NOTIFY ----------------------------
echo "== 3. example.org's zone file replaced (serial 2, pg-002 added), pdns_control bind-reload-now; PowerDNS notifies srvd"
accepted=$(metric srvd_notify_accepted_total)
ub0=$(unbound_count "$ADDR" _pg._tcp.example.org)
p0=$(pdns_udp)
pdns_zone 2 pg-001 pg-002 >"$T/pdns/example.org.zone.new"
mv "$T/pdns/example.org.zone.new" "$T/pdns/example.org.zone"
t0=$(now)
check "pdns_control reloads example.org" bash -c "pdns_control --socket-dir='$T/pdns' bind-reload-now example.org >/dev/null"
eventually 5 "pg.cfg lists pg-001 and pg-002 within 5 s (PowerDNS checks serials every second)" \
  servers_are pg pg-001.example.org pg-002.example.org
echo "  (rewritten $(secs_since "$t0")s after the reload)"
eventually 3 "srvd accepted PowerDNS's NOTIFY" metric_above srvd_notify_accepted_total "$accepted"
eventually 3 "PowerDNS logs that srvd acknowledged its NOTIFY" \
  grep -qF "Removed from notification list: 'example.org' to $ADDR:$NOTIFY_PORT (was acknowledged)" "$T/pdns/pdns.log"
check "PowerDNS notified nobody else (only-notify empty: not 127.0.0.1:53)" \
  bash -c "! grep -E 'Queued notification' '$T/pdns/pdns.log'"
check "srvd asked PowerDNS, the primary: its UDP query count grew (${p0:-?} -> $(pdns_udp))" \
  bash -c "[ -n '$p0' ] && [ \"\$(pdns_control --socket-dir='$T/pdns' show udp-queries)\" -gt '$p0' ]"
check "srvd did not ask Unbound for it" [ "$(unbound_count "$ADDR" _pg._tcp.example.org)" = "$ub0" ]
check "Unbound still serves pg-001 alone" unbound_serves _pg._tcp.example.org pg-001.example.org.

echo "== 4. PowerDNS again: pg-001 removed (serial 3)"
pdns_zone 3 pg-002 >"$T/pdns/example.org.zone.new"
mv "$T/pdns/example.org.zone.new" "$T/pdns/example.org.zone"
check "pdns_control reloads example.org" bash -c "pdns_control --socket-dir='$T/pdns' bind-reload-now example.org >/dev/null"
eventually 5 "pg.cfg lists pg-002 alone within 5 s" servers_are pg pg-002.example.org
eventually 3 "srvd acknowledged PowerDNS's second NOTIFY" \
  equals 2 grep -cF "Removed from notification list: 'example.org' to $ADDR:$NOTIFY_PORT (was acknowledged)" "$T/pdns/pdns.log"
check "mysql.cfg unchanged (db-001, db-002)" servers_are mysql db-001.example.com db-002.example.com
check "srvd is still running" kill -0 "$SRVD_PID"
check "no error in srvd's log" bash -c "! grep -E ' (ERROR|WARN) ' '$T/srvd.log'"

summary || {
  diagnose
  false
}
