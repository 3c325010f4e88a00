# shellcheck shell=bash
# Knot DNS for srvd's shell suites and benchmarks (tests/e2e,
# tests/notify-knot, benches): the common part of a knot.conf and of a zone,
# signed updates, and starting knotd until it serves. Source tests/lib.sh
# first (knot_start calls its `die`).

# knot_conf DIR LISTEN KEY_ID:SECRET...: the first sections of a knot.conf
# for a server whose files live in DIR (pid file, control socket, zone
# database; zones in DIR/zones by the caller's template), listening on
# LISTEN (Knot's ADDR@PORT, or a [ list ]), logging to stderr at
# $KNOT_LOG_LEVEL (info). Declares each hmac-sha256 key and an ACL "update"
# that lets loopback clients update with the first one. The caller appends
# its remotes, modules, template and zones.
knot_conf() {
  local dir=$1 listen=$2 k
  shift 2
  cat <<CONF
server:
  rundir: "$dir"
  pidfile: "$dir/knot.pid"
  listen: $listen
control:
  listen: "$dir/knot.sock"
database:
  storage: "$dir/db"
log:
  - target: stderr
    any: ${KNOT_LOG_LEVEL:-info}
key:
CONF
  for k in "$@"; do
    printf '  - id: %s\n    algorithm: hmac-sha256\n    secret: %s\n' "${k%%:*}" "${k#*:}"
  done
  cat <<CONF
acl:
  - id: update
    address: 127.0.0.0/8
    key: ${1%%:*}
    action: update
CONF
}

# knot_counted_template DIR [SYNC]: the sections after knot_conf that serve
# zones from DIR/zones/ZONE.zone, count queries per zone and type (mod-stats,
# read back with `knotc zone-stats`) and take updates signed with knot_conf's
# first key, up to the `zone:` line the caller's zone list follows. SYNC is
# zonefile-sync (say -1: never write the journal back to the zone file).
knot_counted_template() {
  local dir=$1 sync=${2:-}
  cat <<CONF
mod-stats:
  - id: stats
    query-type: on
template:
  - id: default
    storage: "$dir/zones"
    file: "%s.zone"
CONF
  [ -z "$sync" ] || echo "    zonefile-sync: $sync"
  cat <<CONF
    module: mod-stats/stats
    acl: update
zone:
CONF
}

# knot_conf_example DIR LISTEN KEY_ID:SECRET: a whole knot.conf (knot_conf's
# sections) serving the one zone example.com from DIR/zones/example.com.zone,
# updatable with the key.
knot_conf_example() {
  knot_conf "$@"
  cat <<CONF
template:
  - id: default
    storage: "$1/zones"
    file: "%s.zone"
zone:
  - domain: example.com
    acl: update
CONF
}

# zone_head ZONE TTL NS_ADDR: the first lines of ZONE's zone file: $ORIGIN,
# $TTL, the SOA (its negative-caching TTL TTL too), and ns1 at NS_ADDR.
zone_head() {
  printf '$ORIGIN %s.\n$TTL %s\n@            IN SOA  ns1 hostmaster 1 3600 600 86400 %s\n' "$1" "$2" "$2"
  printf '@            IN NS   ns1\nns1          IN A    %s\n' "$3"
}

# knot_update ADDR PORT KEY ZONE "update add ..." ...: one RFC 2136 update
# signed with KEY (nsupdate's -y ALGORITHM:NAME:SECRET). check-names is off
# so that hostile targets can be published, as a compromised or careless
# DNS operator could.
knot_update() {
  local addr=$1 port=$2 key=$3 zone=$4 line
  shift 4
  {
    echo "server $addr $port"
    echo "zone $zone"
    echo "check-names no"
    for line in "$@"; do echo "$line"; done
    echo "send"
  } | nsupdate -y "$key" -t 5
}

# knot_start CONF ADDR PORT ZONE: runs knotd on CONF in the background, its
# log in knot.log beside CONF, sets KNOTD_PID and records it for
# stop_started. Returns once it answers ZONE's SOA at ADDR port PORT; if
# knotd exits or does not answer within 10 s, prints the end of its log and
# calls `die`: a suite whose DNS server did not start fails.
knot_start() {
  local conf=$1 addr=$2 port=$3 zone=$4 log
  log="$(dirname "$conf")/knot.log"
  knotd -c "$conf" >>"$log" 2>&1 &
  KNOTD_PID=$!
  track_pid "$KNOTD_PID"
  for _ in $(seq 100); do
    kdig @"$addr" -p "$port" +short +time=1 +retry=0 SOA "$zone" 2>/dev/null | grep -q hostmaster &&
      return 0
    kill -0 "$KNOTD_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$log" >&2
  die "knotd ($conf) did not start"
}
