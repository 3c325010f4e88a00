# shellcheck shell=bash
# What only the whole-process benchmarks share (footprint.sh, dns-load.sh,
# propagation.sh, haproxy-resolvers.sh): their Knot zones and query counts,
# their scratch directory and the report's figures; the processes, srvd and
# waiting come from tests/lib.sh, Knot from tests/knot.sh, as for the test
# suites. Source it, call bench_init, then the start_* functions. Everything
# runs on loopback, out of one temporary directory; bench_cleanup (the EXIT
# trap) stops exactly the processes started here, by their PIDs.
#
# Ports (all overridable, chosen not to clash with the e2e suite's 3306, 5300
# and 18081 nor the NOTIFY suite's 15300/15353):
#   SRVD_BENCH_PORT        Knot DNS, UDP and TCP           (default 25300)
#   SRVD_BENCH_PORT + 10.. srvd status endpoints           (25310, 25311, ...)
#   SRVD_BENCH_PORT + 20.. HAProxy frontends               (25320, 25321, ...)

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
HELPER="$BENCH_DIR/bench.py"
TEMPLATE="$ROOT/examples/haproxy.cfg.tmpl"
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/knot.sh"

BASE_PORT=${SRVD_BENCH_PORT:-25300}
DNS_ADDR=127.0.0.1
DNS_PORT=$BASE_PORT
# Every zone is a child of this name; each SRV name has three targets.
PARENT=srvd-bench.test
SRV_LABEL=_mysql._tcp
TARGETS=3

T=

log() { echo "== $*" >&2; }

# bench_init NAME [programs...]: checks the programs and the ports, makes the
# temporary directory and installs the cleanup.
bench_init() {
  local name=$1
  shift
  # apt-get install knot knot-dnsutils dnsutils haproxy python3 curl iproute2
  need knotd knotc kdig nsupdate python3 curl ss "$@"
  local busy
  busy=$(ss -Hlntu 2>/dev/null | awk '{print $5}' | python3 "$HELPER" busy "$BASE_PORT" || true)
  [ -z "$busy" ] || die "ports in use: $busy (set SRVD_BENCH_PORT to move the benchmarks' ports)"
  T=$(mktemp -d "${TMPDIR:-/tmp}/srvd-bench-$name.XXXXXX")
  mkdir -p "$T/knot/zones" "$T/knot/db"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  local status=$?
  set +e
  trap - EXIT
  stop_started
  keep_or_remove "$status" "$T" "${SRVD_BENCH_KEEP:-}"
  exit "$status"
}

# --- Knot DNS ---------------------------------------------------------------

# add_zone LABEL TTL [TARGET_ZONE]: the zone LABEL.$PARENT, every record at
# TTL: _mysql._tcp with $TARGETS SRV records (db-1..db-N, priority 10) and
# the A records of db-1..db-4. With TARGET_ZONE, the SRV records point to
# db-N.TARGET_ZONE instead, so that their addresses are not in this zone (nor
# in the answers' additional section).
add_zone() {
  local label=$1 ttl=$2 zone="$1.$PARENT" targets=${3:+.$3.} i
  {
    zone_head "$zone" "$ttl" "$DNS_ADDR"
    for i in $(seq "$TARGETS"); do
      echo "$SRV_LABEL IN SRV 10 10 3306 db-$i$targets"
    done
    for i in 1 2 3 4; do
      echo "db-$i IN A 127.0.0.1$i"
    done
  } >"$T/knot/zones/$zone.zone"
  echo "$zone" >>"$T/knot/zone-list"
}

# The key nsupdate signs its updates with.
TSIG="hmac-sha256:srvd-bench-update:c3J2ZC1iZW5jaC11cGRhdGUta2V5LTAxMjM0NTY3ODk="

# Knot, authoritative for every zone added, with mod-stats counting queries
# per zone and per type.
start_dns() {
  local z
  {
    KNOT_LOG_LEVEL=notice knot_conf "$T/knot" "$DNS_ADDR@$DNS_PORT" "${TSIG#*:}"
    knot_counted_template "$T/knot"
    while read -r z; do echo "  - domain: $z"; done <"$T/knot/zone-list"
  } >"$T/knot/knot.conf"
  knot_start "$T/knot/knot.conf" "$DNS_ADDR" "$DNS_PORT" "$(head -n1 "$T/knot/zone-list")"
  KNOT_PID=$KNOTD_PID
}

# zone_stats: "ZONE TYPE COUNT" for every zone and query type, plus
# "ZONE total COUNT" (every query Knot answered for the zone, UDP and TCP).
zone_stats() {
  knotc -s "$T/knot/knot.sock" zone-stats -- 2>/dev/null |
    python3 "$HELPER" zone-stats
}

# start_capture: captures the queries Knot receives into $T/queries.log
# (the "sniff" helper), then keeps Knot's counters in $T/stats0.txt as the
# baseline of count.
start_capture() {
  python3 "$HELPER" sniff "$DNS_PORT" "$T/queries.log" "$T/sniff.ready" 2>>"$T/sniff.err" &
  track_pid $!
  wait_for 10 test -e "$T/sniff.ready" || die "the packet capture did not start: $(cat "$T/sniff.err")"
  zone_stats >"$T/stats0.txt"
}

# count ZONE TYPE [STATS]: queries of that type (or "total") between the
# baseline of start_capture and STATS (default $T/stats.txt, from zone_stats).
count() {
  awk -v z="$1" -v t="$2" 'FNR == 1 { f++ } $1 == z && $2 == t { n[f] = $3 } END { print n[2] - n[1] }' \
    "$T/stats0.txt" "${3:-$T/stats.txt}"
}

# dns_update ZONE "update add ..." ...: one signed update of ZONE.
dns_update() {
  local zone=$1
  shift
  knot_update "$DNS_ADDR" "$DNS_PORT" "$TSIG" "$zone" "$@"
}

# The 1-minute load average, as uptime shows it.
load1() { cut -d' ' -f1 /proc/loadavg; }

# per_setting NAME TTL:INTERVAL...: runs "$0 --one TTL INTERVAL" for each
# pair, each in its own process so that each gets a fresh stack, and prints
# their result lines in order; dies naming the first pair that failed.
per_setting() {
  local name=$1 pair
  shift
  for pair in "$@"; do
    bash "$0" --one "${pair%%:*}" "${pair##*:}" || die "$name benchmark failed for $pair"
  done
}

# --- results ------------------------------------------------------------------

# result KEY VALUE: one figure for run.sh's summary ($SRVD_BENCH_RESULTS).
result() {
  [ -n "${SRVD_BENCH_RESULTS:-}" ] && echo "$1 $2" >>"$SRVD_BENCH_RESULTS"
  return 0
}

# machine SRVD: one paragraph describing the machine and the versions.
machine() {
  local srvd=$1 commit mem debian
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || commit="$commit (with local changes)"
  mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  debian=$(cat /etc/debian_version 2>/dev/null || echo "not Debian")
  echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $mem of memory," \
    "Linux $(uname -r), Debian $debian; $(rustc --version 2>/dev/null | cut -d' ' -f1-2);" \
    "$("$srvd" --version 2>/dev/null | head -n1) at commit $commit;" \
    "$(knotd --version 2>&1 | head -n1 | sed 's/^knotd (Knot DNS), version /Knot DNS /');" \
    "$(command -v haproxy >/dev/null && haproxy -v | head -n1 | cut -d' ' -f1-3)"
}
