# shellcheck shell=bash
# Knot DNS for srvd's shell suites and benchmarks (tests/e2e,
# tests/notify-knot, benches): each writes its own knot.conf and zones; this
# starts knotd on it and waits until it serves.

# knot_start CONF ADDR PORT ZONE: runs knotd on CONF in the background, its
# log in knot.log beside CONF, and sets KNOTD_PID. Returns once it answers
# ZONE's SOA at ADDR port PORT; if knotd exits or does not answer within
# 10 s, prints the end of its log and calls the caller's `die`.
knot_start() {
  local conf=$1 addr=$2 port=$3 zone=$4 log
  log="$(dirname "$conf")/knot.log"
  knotd -c "$conf" >>"$log" 2>&1 &
  KNOTD_PID=$!
  for _ in $(seq 100); do
    kdig @"$addr" -p "$port" +short +time=1 +retry=0 SOA "$zone" 2>/dev/null | grep -q hostmaster &&
      return 0
    kill -0 "$KNOTD_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$log" >&2
  die "knotd ($conf) did not start"
}
