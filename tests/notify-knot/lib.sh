# shellcheck shell=bash
# The DNS NOTIFY stack, shared by run.sh and benches/notify-propagation.sh.
# Source it after tests/lib.sh (Knot comes from tests/knot.sh), then call nk_init and the start_* functions.
# Everything runs on loopback, out of one temporary directory; nk_cleanup
# (the EXIT trap nk_init installs) stops exactly the processes started here.
#
#   primary   Knot DNS on $ADDR:$KNOT_PORT (and $SENDER_ADDR:53 when set),
#             authoritative for
#               example.com  _mysql._tcp and _redis._tcp SRV records, TTL $TTL;
#                            sends NOTIFY to srvd
#               example.net  a zone no template uses; sends NOTIFY to srvd too
#               example.org  _pg._tcp (TTL 300) and _tick._tcp (TTL 1); no NOTIFY
#             changed with nsupdate (TSIG key srvd-update) or knotc; its
#             NOTIFYs are signed with srvd-notify when KNOT_NOTIFY_KEY says so
#   resolver  a second Knot on $ADDR:$RESOLVER_PORT with the same zones, which
#             the primary's changes never reach: srvd's `nameservers`, the
#             stale view a caching resolver would serve until the TTL runs
#             out. A change can only reach srvd from the primary, and only
#             through a NOTIFY-driven refresh, which must ask the primary.
#   srvd      one template per SRV name (SRVD_TEMPLATES), polling the resolver
#             (SRVD_NAMESERVER) every $INTERVAL, listening for
#             NOTIFY on $ADDR:$NOTIFY_PORT; its reload command appends
#             "EPOCH-SECONDS DEST" to $T/reloads.log; it speaks sd_notify to
#             notify.py sdlisten, with a 1 s watchdog

NK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELPER="$NK_DIR/notify.py"
. "$NK_DIR/../knot.sh"

ADDR=127.0.0.1
KNOT_PORT=${SRVD_NOTIFY_KNOT_PORT:-15300}
RESOLVER_PORT=${SRVD_NOTIFY_RESOLVER_PORT:-15301}
NOTIFY_PORT=${SRVD_NOTIFY_PORT:-15353}
STATUS_PORT=${SRVD_NOTIFY_STATUS_PORT:-15380}
STATUS_URL="http://$ADDR:$STATUS_PORT"
# When set, the primary also listens on $SENDER_ADDR port 53, where srvd
# looks for a zone's records when [notify.primaries] does not name them.
SENDER_ADDR=${SENDER_ADDR:-}
# The watchdog period srvd is given; it pings at half of it.
WATCHDOG_USEC=1000000

# Whether the primary sends NOTIFY to srvd at all (1 or 0).
KNOT_NOTIFY=${KNOT_NOTIFY:-1}
# The primary's NOTIFY to srvd: KNOT_NOTIFY_KEY is none, right (srvd's key)
# or wrong (srvd's key name with another secret); KNOT_NOTIFY_VIA is its
# source address, empty for Knot's choice.
KNOT_NOTIFY_KEY=${KNOT_NOTIFY_KEY:-none}
KNOT_NOTIFY_VIA=${KNOT_NOTIFY_VIA:-}
# srvd's config: [notify] or not (1 or 0), TSIG required or not, the 1 s "tick" template or not, the
# sources allowed, whether [notify.primaries] names example.com, the poll
# interval of the other templates; and the SRV TTL in example.com.
SRVD_NOTIFY=${SRVD_NOTIFY:-1}
SRVD_TSIG=${SRVD_TSIG:-0}
SRVD_TICK=${SRVD_TICK:-0}
SRVD_ALLOW=${SRVD_ALLOW:-\"$ADDR\"}
SRVD_PRIMARIES=${SRVD_PRIMARIES:-1}
# The templates (mysql, redis, pg), and which server srvd polls: the
# resolver, or the primary itself.
SRVD_TEMPLATES=${SRVD_TEMPLATES:-mysql redis pg}
SRVD_NAMESERVER=${SRVD_NAMESERVER:-resolver}
INTERVAL=${INTERVAL:-60s}
TTL=${TTL:-300}
SRVD_LOG_LEVEL=${SRVD_LOG_LEVEL:-info}

T=
KNOT_PID=
RESOLVER_PID=
SRVD_PID=
SD_PID=

nk_init() {
  need knotd knotc keymgr kdig nsupdate dig python3 curl ss
  SRVD=$(srvd_bin) || die "no srvd to test"
  local busy
  busy=$(busy_ports "$ADDR:$KNOT_PORT" "$ADDR:$RESOLVER_PORT" "$ADDR:$NOTIFY_PORT" "$ADDR:$STATUS_PORT")
  [ -z "$busy" ] || die "these addresses are already in use: $(echo $busy)"
  T=$(mktemp -d "${TMPDIR:-/tmp}/srvd-notify.XXXXXX")
  mkdir -p "$T/out" "$T/keys"
  trap nk_cleanup EXIT
  trap 'exit 130' INT TERM
  # The keys, as an operator makes them: keymgr writes a Knot key file, which
  # srvd reads as its secret_file as it is.
  keymgr -t srvd-notify hmac-sha256 >"$T/keys/notify.key" || die "keymgr failed"
  keymgr -t srvd-notify hmac-sha256 >"$T/keys/wrong.key" || die "keymgr failed"
  keymgr -t srvd-update hmac-sha256 >"$T/keys/update.key" || die "keymgr failed"
  NOTIFY_SECRET=$(key_secret "$T/keys/notify.key")
  WRONG_SECRET=$(key_secret "$T/keys/wrong.key")
  UPDATE_KEY="hmac-sha256:srvd-update:$(key_secret "$T/keys/update.key")"
  [ -n "$NOTIFY_SECRET" ] && [ "$NOTIFY_SECRET" != "$WRONG_SECRET" ] || die "bad keys from keymgr"
  cat >"$T/reload.sh" <<EOF
#!/bin/sh
echo "\$(date +%s.%N) \$1" >>"$T/reloads.log"
EOF
  chmod +x "$T/reload.sh"
  : >"$T/reloads.log"
  cat >"$T/srv.tmpl" <<'EOF'
# {{ srvs | length }} target(s)
{% for s in srvs -%}
server {{ s.host }} {{ s.port }} priority {{ s.priority }} weight {{ s.weight }}
{% endfor -%}
EOF
}

key_secret() { awk '$1 == "secret:" { print $2 }' "$1"; }

nk_cleanup() {
  local status=$?
  trap - EXIT
  stop_started
  keep_or_remove "$status" "$T" "${SRVD_NOTIFY_KEEP:-}"
  exit "$status"
}

# --- Knot DNS ---------------------------------------------------------------

# write_zones DIR: the zones as they start, in DIR/zones.
write_zones() {
  local dir=$1
  {
    zone_head example.com "$TTL" "$ADDR"
    echo "_mysql._tcp  IN SRV  10 10 3306 db-001"
    echo "_redis._tcp  IN SRV  10 10 6379 cache-001"
  } >"$dir/zones/example.com.zone"
  {
    zone_head example.net 300 "$ADDR"
    echo "_mysql._tcp  IN SRV  10 10 3306 db-901"
  } >"$dir/zones/example.net.zone"
  cat >"$dir/zones/example.org.zone" <<EOF
\$ORIGIN example.org.
@            IN SOA  ns1 hostmaster 1 3600 600 86400 300
@            IN NS   ns1
ns1          300 IN A    $ADDR
_pg._tcp     300 IN SRV  10 10 5432 pg-001
_tick._tcp   1   IN SRV  10 10 1 tick-001
EOF
}

# write_knot_conf primary|resolver: knot.conf for one of the two servers.
write_knot_conf() {
  local role=$1
  local dir="$T/$role" listen notify="" key_line="" via_line="" notify_secret=$NOTIFY_SECRET
  if [ "$role" = primary ]; then
    listen="[ $ADDR@$KNOT_PORT${SENDER_ADDR:+, $SENDER_ADDR@53} ]"
    [ "$KNOT_NOTIFY" = 1 ] && notify="    notify: srvd"
  else
    listen="$ADDR@$RESOLVER_PORT"
  fi
  case $KNOT_NOTIFY_KEY in
    none) ;;
    right) key_line="    key: srvd-notify" ;;
    wrong) key_line="    key: srvd-notify"; notify_secret=$WRONG_SECRET ;;
    *) die "KNOT_NOTIFY_KEY=$KNOT_NOTIFY_KEY" ;;
  esac
  [ -z "$KNOT_NOTIFY_VIA" ] || via_line="    via: $KNOT_NOTIFY_VIA"
  {
    knot_conf "$dir" "$listen" "srvd-update:${UPDATE_KEY##*:}" "srvd-notify:$notify_secret"
    cat <<EOF
remote:
  - id: srvd
    address: $ADDR@$NOTIFY_PORT
$key_line
$via_line
EOF
    knot_counted_template "$dir" -1
    cat <<EOF
  - domain: example.com
$notify
  - domain: example.net
$notify
  - domain: example.org
EOF
  } >"$dir/knot.conf.new"
  mv "$dir/knot.conf.new" "$dir/knot.conf"
}

# knotc_ primary|resolver ARGS...
knotc_() {
  local role=$1
  shift
  knotc -c "$T/$role/knot.conf" -s "$T/$role/knot.sock" "$@"
}

# start_knot primary|resolver
start_knot() {
  local role=$1 port=$KNOT_PORT
  [ "$role" = primary ] || port=$RESOLVER_PORT
  mkdir -p "$T/$role/zones" "$T/$role/db"
  write_zones "$T/$role"
  write_knot_conf "$role"
  knot_start "$T/$role/knot.conf" "$ADDR" "$port" example.org
  if [ "$role" = primary ]; then KNOT_PID=$KNOTD_PID; else RESOLVER_PID=$KNOTD_PID; fi
}

start_dns() {
  start_knot primary
  start_knot resolver
}

# The primary's own NOTIFYs when it loads its zones: waits until it has tried
# both (srvd is not up yet, so they fail), so that none lands in a later step.
knot_startup_notifies_done() {
  [ "$(grep -c 'notify, outgoing' "$T/primary/knot.log")" -ge 2 ]
}

# knot_reconfigure: applies KNOT_NOTIFY_KEY/KNOT_NOTIFY_VIA to the primary.
knot_reconfigure() {
  write_knot_conf primary
  knotc_ primary reload >/dev/null
}

# knot_notify ZONE: the primary sends ZONE's NOTIFY now (knotc zone-notify).
knot_notify() { knotc_ primary zone-notify "$1" >/dev/null; }

# srv_queries primary|resolver ZONE: the SRV queries that server answered in ZONE.
srv_queries() {
  knotc_ "$1" zone-stats "$2" mod-stats.query-type 2>/dev/null |
    awk -F' = ' '/query-type\[SRV\]/ { n = $2 } END { print n + 0 }'
}

# dns_update primary|resolver ZONE "update add ..." ...: one signed update.
dns_update() {
  local port=$KNOT_PORT zone=$2
  [ "$1" = primary ] || port=$RESOLVER_PORT
  shift 2
  knot_update "$ADDR" "$port" "$UPDATE_KEY" "$zone" "$@"
}

# knot_zone_change ZONE OP OWNER TYPE DATA: one knotc transaction on the
# primary; OP is zone-set or zone-unset.
knot_zone_change() {
  local zone=$1 op=$2
  shift 2
  knotc_ primary zone-begin "$zone" >/dev/null || return 1
  if ! knotc_ primary "$op" "$zone" "$@" >/dev/null; then
    knotc_ primary zone-abort "$zone" >/dev/null
    return 1
  fi
  knotc_ primary zone-commit "$zone" >/dev/null
}

# --- srvd ---------------------------------------------------------------------

write_srvd_config() {
  local f="$T/srvd.toml.new" ns_port=$RESOLVER_PORT name domain
  [ "$SRVD_NAMESERVER" = primary ] && ns_port=$KNOT_PORT
  cat >"$f" <<EOF
nameservers = ["$ADDR:$ns_port"]
dns_timeout = "1s"
dns_attempts = 2
interval = "$INTERVAL"
timeout = "10s"
check_cmd = "test -s {{ src }}"
reload_cmd = "$T/reload.sh {{ dest }}"
status_addr = "$ADDR"
status_port = $STATUS_PORT
EOF
  for name in $SRVD_TEMPLATES; do
    case $name in
      mysql) domain=_mysql._tcp.example.com ;;
      redis) domain=_redis._tcp.example.com ;;
      pg) domain=_pg._tcp.example.org ;;
      *) die "no template $name" ;;
    esac
    srvd_template "$name" "$T/srv.tmpl" "$T/out/$name.cfg" "$domain" >>"$f"
  done
  if [ "$SRVD_TICK" = 1 ]; then
    srvd_template tick "$T/srv.tmpl" "$T/out/tick.cfg" _tick._tcp.example.org 'interval = "1s"' >>"$f"
  fi
  if [ "$SRVD_NOTIFY" = 0 ]; then
    mv "$f" "$T/srvd.toml"
    return
  fi
  cat >>"$f" <<EOF

[notify]
listen = ["$ADDR:$NOTIFY_PORT"]
allow = [$SRVD_ALLOW]
EOF
  if [ "$SRVD_TSIG" = 1 ]; then
    cat >>"$f" <<EOF
key_name = "srvd-notify"
algorithm = "hmac-sha256"
secret_file = "$T/keys/notify.key"
EOF
  fi
  cat >>"$f" <<EOF

[notify.primaries]
"example.net" = ["$ADDR:$KNOT_PORT"]
EOF
  [ "$SRVD_PRIMARIES" = 1 ] && echo "\"example.com\" = [\"$ADDR:$KNOT_PORT\"]" >>"$f"
  mv "$f" "$T/srvd.toml"
}

# srvd with a notify socket and a watchdog of its own, and nothing else it
# could inherit from a service manager.
start_nk_srvd() {
  python3 "$HELPER" sdlisten "$T/sd.sock" "$T/sd.log" 2>>"$T/sd.err" &
  SD_PID=$!
  track_pid "$SD_PID"
  wait_for 5 test -S "$T/sd.sock" || die "the notify socket listener did not start"
  SRVD_SET_ENV=(NOTIFY_SOCKET="$T/sd.sock" WATCHDOG_USEC="$WATCHDOG_USEC")
  start_srvd "$T/srvd.toml" "$T/srvd.log" --log-level "$SRVD_LOG_LEVEL"
  # shellcheck disable=SC2034 # read by start_srvd, the next time it runs
  SRVD_SET_ENV=()
}

srvd_running() { kill -0 "$SRVD_PID" 2>/dev/null; }

status_json() { curl -fsS --max-time 2 "$STATUS_URL/status"; }

# status_has 'PYTHON EXPRESSION': d is /status.
status_has() {
  status_json | python3 -c 'import json, sys
d = json.load(sys.stdin)
sys.exit(0 if eval(sys.argv[1]) else 1)' "$1"
}

metric_is() { [ "$(metric "$1")" = "$2" ]; }
metric_at_least() { local v; v=$(metric "$1") && [ "$v" -ge "$2" ]; }

# reloads NAME: how many times the reload command ran for out/NAME.cfg.
reloads() { grep -c " $T/out/$1.cfg\$" "$T/reloads.log"; }
reloads_are() { [ "$(reloads "$1")" = "$2" ]; }

# servers NAME: the targets out/NAME.cfg lists, one per line.
servers() { awk '$1 == "server" { print $2 }' "$T/out/$1.cfg" 2>/dev/null; }
servers_are() {
  local name=$1
  shift
  [ "$(servers "$name")" = "$(printf '%s\n' "$@")" ]
}
