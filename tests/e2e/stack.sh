# shellcheck shell=bash
# The end-to-end stack, shared by run.sh and benches/client-propagation.sh.
# Source tests/lib.sh, then this, then call stack_init and the start_*
# functions. Everything runs on loopback addresses, out of one temporary
# directory, and stack_cleanup (installed as the EXIT trap by stack_init)
# stops exactly the processes started here.
#
#   Knot DNS     authoritative for example.com on $DNS_ADDR:$DNS_PORT, updated
#                with nsupdate (RFC 2136, signed with a TSIG key)
#   db-001..003  TCP servers on 127.0.0.11..13:3306 that answer with their name
#   HAProxy      master-worker (-W) with a master CLI (-S), on 127.0.0.1:3306 as
#                examples/haproxy.cfg.tmpl binds it; reloaded with SIGUSR2 to
#                the master, which hands the listening sockets to the new worker
#   srvd         renders examples/haproxy.cfg.tmpl from the SRV records,
#                checks with `haproxy -c`, reloads through the master
#   client       connects through HAProxy at a steady rate, logs every answer
#                and every failure with timestamps

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$E2E_DIR/../.." && pwd)
HELPER="$E2E_DIR/e2e.py"
TEMPLATE="$ROOT/examples/haproxy.cfg.tmpl"
. "$ROOT/tests/knot.sh"

DNS_ADDR=${SRVD_E2E_DNS_ADDR:-127.0.0.1}
DNS_PORT=${SRVD_E2E_DNS_PORT:-5300}
STATUS_PORT=${SRVD_E2E_STATUS_PORT:-18081}
STATUS_URL="http://127.0.0.1:$STATUS_PORT"
# Where examples/haproxy.cfg.tmpl binds its frontend.
FRONTEND_ADDR=127.0.0.1
FRONTEND_PORT=3306
SRV_NAME=_mysql._tcp.example.com
BACKEND_PORT=3306
# The key nsupdate signs its updates with; Knot accepts updates only with it.
TSIG_KEY="srvd-e2e-update:c3J2ZC1lMmUtdXBkYXRlLWtleS0wMTIzNDU2Nzg5YWI="

# Settings of the run, set by the caller before start_dns / write_srvd_config.
TTL=${TTL:-1}
INTERVAL=${INTERVAL:-1}

T=
KNOT_PID=
HAPROXY_PID=
SRVD_PID=
CLIENT_PID=

# Refuses to start when something already listens where the stack must.
stack_init() {
  need knotd kdig nsupdate haproxy python3 curl ss
  SRVD=$(srvd_bin) || die "no srvd to test"
  local busy
  busy=$(busy_ports "$DNS_ADDR:$DNS_PORT" "$FRONTEND_ADDR:$FRONTEND_PORT" "127.0.0.1:$STATUS_PORT" \
    "127.0.0.11:$BACKEND_PORT" "127.0.0.12:$BACKEND_PORT" "127.0.0.13:$BACKEND_PORT")
  [ -z "$busy" ] || die "these addresses are already in use: $(echo $busy)"
  T=$(mktemp -d "${TMPDIR:-/tmp}/srvd-e2e.XXXXXX")
  mkdir -p "$T/knot/zones" "$T/knot/db" "$T/haproxy"
  trap stack_cleanup EXIT
  trap 'exit 130' INT TERM
}

stack_cleanup() {
  local status=$?
  trap - EXIT
  stop_started
  # run.sh says itself where the logs are, before its summary line.
  [ -n "${STACK_QUIET:-}" ] || keep_or_remove "$status" "$T" "${SRVD_E2E_KEEP:-}"
  exit "$status"
}

# --- Knot DNS ---------------------------------------------------------------

# The zone as it starts: db-001 alone in the SRV set, A records for all three.
write_zone() {
  {
    zone_head example.com "$TTL" "$DNS_ADDR"
    cat <<EOF
_mysql._tcp  IN SRV  10 10 $BACKEND_PORT db-001
db-001       IN A    127.0.0.11
db-002       IN A    127.0.0.12
db-003       IN A    127.0.0.13
EOF
  } >"$T/knot/zones/example.com.zone"
  knot_conf_example "$T/knot" "$DNS_ADDR@$DNS_PORT" "$TSIG_KEY" >"$T/knot/knot.conf"
}

dns_answers() {
  kdig @"$DNS_ADDR" -p "$DNS_PORT" +short +time=1 +retry=0 "$@" 2>/dev/null
}

start_dns() {
  [ -f "$T/knot/knot.conf" ] || write_zone
  knot_start "$T/knot/knot.conf" "$DNS_ADDR" "$DNS_PORT" example.com
  KNOT_PID=$KNOTD_PID
}

stop_dns() {
  stop_pid "$KNOT_PID"
  KNOT_PID=
}

# dns_update "update add ..." ...: one signed update of example.com.
dns_update() { knot_update "$DNS_ADDR" "$DNS_PORT" "hmac-sha256:$TSIG_KEY" example.com "$@"; }

# --- backends, HAProxy, client ------------------------------------------------

start_backends() {
  local n
  for n in 1 2 3; do
    python3 "$HELPER" backend "db-00$n" "127.0.0.1$n" "$BACKEND_PORT" >>"$T/backends.log" 2>&1 &
    track_pid $!
  done
  for n in 1 2 3; do
    wait_for 10 backend_answers "127.0.0.1$n" "db-00$n" || die "backend db-00$n did not start"
  done
}

backend_answers() {
  python3 -c 'import socket,sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
sys.exit(0 if s.recv(64).strip() == sys.argv[3].encode() else 1)' "$1" "$BACKEND_PORT" "$2" 2>/dev/null
}

start_haproxy() {
  haproxy -W -S "$T/haproxy/master.sock" -f "$T/haproxy/haproxy.cfg" -p "$T/haproxy/haproxy.pid" \
    >>"$T/haproxy/haproxy.log" 2>&1 &
  HAPROXY_PID=$!
  track_pid "$HAPROXY_PID"
  wait_for 10 frontend_up || { tail -n 20 "$T/haproxy/haproxy.log" >&2; die "haproxy did not start"; }
}

frontend_up() {
  [ -S "$T/haproxy/master.sock" ] && [ -s "$T/haproxy/haproxy.pid" ] &&
    python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()' \
      "$FRONTEND_ADDR" "$FRONTEND_PORT" 2>/dev/null
}

# How many times the HAProxy master has reloaded, and how many reloads failed
# since the last one that succeeded.
haproxy_reloads() {
  python3 "$HELPER" reloads "$T/haproxy/master.sock"
}

start_client() {
  local rate=${1:-50}
  CLIENT_LOG="$T/client.log"
  python3 "$HELPER" client "$FRONTEND_ADDR" "$FRONTEND_PORT" "$CLIENT_LOG" --rate "$rate" \
    2>>"$T/client.err" &
  CLIENT_PID=$!
  track_pid "$CLIENT_PID"
}

stop_client() {
  stop_pid "$CLIENT_PID"
  CLIENT_PID=
}

# --- srvd ---------------------------------------------------------------------

# write_srvd_config [TEMPLATE]: the config srvd runs with.
write_srvd_config() {
  local src=${1:-$TEMPLATE}
  cat >"$T/srvd.toml.new" <<EOF
src = "$src"
dest = "$T/haproxy/haproxy.cfg"
domain = "$SRV_NAME"
nameservers = ["$DNS_ADDR:$DNS_PORT"]
dns_timeout = "500ms"
dns_attempts = 2
resolve_targets = true
check_cmd = "haproxy -c -f {{ src }}"
# As haproxy.service does it: SIGUSR2 to the master, which starts a new
# worker with the listening sockets of the old one.
reload_cmd = "sh -c 'kill -USR2 \$(cat $T/haproxy/haproxy.pid)'"
interval = "${INTERVAL}s"
timeout = "10s"
status_addr = "127.0.0.1"
status_port = $STATUS_PORT
EOF
  mv "$T/srvd.toml.new" "$T/srvd.toml"
}

# The first haproxy.cfg, before HAProxy starts: one srvd run, no reload.
render_first() {
  "${SRVD_ENV[@]}" "$SRVD" --config "$T/srvd.toml" --oneshot --no-reload >>"$T/srvd.log" 2>&1
}

start_stack_srvd() { start_srvd "$T/srvd.toml" "$T/srvd.log"; }

status_json() {
  curl -fsS --max-time 2 "$STATUS_URL/status"
}

# status_has 'PYTHON EXPRESSION': d is /status, t its first template.
status_has() {
  status_json | python3 -c 'import json, sys
d = json.load(sys.stdin)
t = d["templates"][0]
sys.exit(0 if eval(sys.argv[1]) else 1)' "$1"
}
