#!/usr/bin/env bash
# srvd's benchmarks, the one command: builds srvd (release profile), runs
#   render.sh             records -> bytes, and the unchanged cycle (divan)
#   footprint.sh          idle peak RSS and CPU per hour, 10 templates
#   dns-load.sh           queries per minute at the server, TTL 1/5/30/300
#   propagation.sh        DNS change -> dest rewritten -> reload started
#   haproxy-resolvers.sh  the same figures for HAProxy's server-template
# and prints one Markdown report on stdout: the machine, a summary against
# the budgets, srvd beside HAProxy's resolvers, then each part's tables.
# Progress goes to stderr. About 10 minutes plus the build.
#
# As root on Debian 12 with knot, knot-dnsutils, dnsutils, haproxy, python3,
# curl and iproute2 installed, and cargo on PATH:
#   bash benches/run.sh | tee bench.md
# Settings (environment):
#   SRVD_BIN=path            use this srvd instead of building one
#   SRVD_BENCH_PORT=25300    first of the loopback ports used (…+29)
#   SRVD_BENCH_PARTS="render footprint dns-load propagation haproxy-resolvers"
#   SECONDS_RUN=60 CHANGES=20 (per part, see each script)
#   SRVD_BENCH_KEEP=1        keep each part's directory (logs, configs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ "$(id -u)" -eq 0 ] || die "run as root: dns-load.sh and haproxy-resolvers.sh capture packets on loopback"
PARTS=${SRVD_BENCH_PARTS:-render footprint dns-load propagation haproxy-resolvers}

SRVD_BIN=$(srvd_bin) || die "no srvd to measure"
export SRVD_BIN
work=$(mktemp -d "${TMPDIR:-/tmp}/srvd-bench-run.XXXXXX")
trap 'rm -rf "$work"' EXIT
export SRVD_BENCH_RESULTS="$work/results"
: >"$SRVD_BENCH_RESULTS"

started=$(date -u +%Y-%m-%dT%H:%MZ)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
failed=()
for part in $PARTS; do
  log "$part"
  if ! bash "$here/$part.sh" >"$work/$part.md"; then
    failed+=("$part")
    echo "**$part failed** (its log is above, on stderr)" >"$work/$part.md"
  fi
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# r KEY: a figure from the parts, "-" when it was not measured.
r() { awk -v k="$1" '$1 == k { v = $2 } END { print (v == "" ? "-" : v) }' "$SRVD_BENCH_RESULTS"; }
# field KEY N: the Nth of a "/"-separated figure.
field() { r "$1" | cut -d/ -f"$2"; }
ms() { [ "$1" = - ] && echo - || python3 -c 'import sys; print(f"{float(sys.argv[1]) * 1e3:.2f} ms")' "$1"; }
us() { [ "$1" = - ] && echo - || python3 -c 'import sys; v = float(sys.argv[1]); print(f"{v * 1e6:.1f} µs" if v < 1e-3 else f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s")' "$1"; }
verdict() {
  [ "$1" = - ] && { echo "not measured"; return; }
  python3 -c 'import sys; print("within" if float(sys.argv[1]) <= float(sys.argv[2]) else "**OVER**")' "$1" "$2"
}

echo "## srvd benchmarks"
echo
echo "\`bash benches/run.sh\`, $started. Machine: $(machine "$SRVD_BIN")."
echo "Load average (1, 5, 15 min) $load_start at the start, $load_end at the end; each part gives its own."
echo
if [ "${#failed[@]}" -gt 0 ]; then
  echo "**Failed parts: ${failed[*]}.**"
  echo
fi

echo "### Against the budgets"
echo
echo "| figure | measured | budget | |"
echo "|---|---|---|---|"
echo "| render, 1,000 records (median) | $(ms "$(r render.1000)") | ≤ 2 ms | $(verdict "$(r render.1000)" 0.002) |"
echo "| render, 10,000 records (median) | $(ms "$(r render.10000)") | ≤ 20 ms | $(verdict "$(r render.10000)" 0.020) |"
echo "| unchanged cycle, answers cached, 10 / 100 / 1,000 / 10,000 records | $(us "$(r cycle.10)") / $(us "$(r cycle.100)") / $(us "$(r cycle.1000)") / $(us "$(r cycle.10000)") | | |"
echo "| unchanged cycle, zone file read again, 10 / 100 / 1,000 / 10,000 records | $(us "$(r cycle_reread.10)") / $(us "$(r cycle_reread.100)") / $(us "$(r cycle_reread.1000)") / $(us "$(r cycle_reread.10000)") | | |"
echo "| resolve_targets for a new answer, 10 / 100 / 1,000 / 10,000 targets | $(us "$(r resolve.10)") / $(us "$(r resolve.100)") / $(us "$(r resolve.1000)") / $(us "$(r resolve.10000)") | | |"
for fp in footprint.default footprint; do
  resolve=false
  [ "$fp" = footprint ] && resolve=true
  echo "| idle peak RSS, 10 templates, interval 1 s, TTL 30, resolve_targets = $resolve (own memory + mapped binary and libc at the end) | $(r "$fp.rss_mib") MiB ($(r "$fp.anon_mib") + $(r "$fp.mapped_mib")) | ≤ 6 MiB | $(verdict "$(r "$fp.rss_mib")" 6) |"
  echo "| idle CPU per hour, same (utime+stime, in 10 ms ticks; schedstat) | $(r "$fp.cpu_s_per_h") s; $(r "$fp.cpu_s_per_h_ns") s | ≤ 2 s/h | $(verdict "$(r "$fp.cpu_s_per_h")" 2); $(verdict "$(r "$fp.cpu_s_per_h_ns")" 2) |"
done
bold() { [ "$1" = OVER ] && echo "**OVER**" || echo "$1"; }
for ttl in 1 5 30 300; do
  b=$(python3 -c 'import sys; print(f"{60 / float(sys.argv[1]) + 1:.3g}")' "$ttl")
  echo "| DNS queries in the first minute, TTL $ttl, interval 1 s, resolve_targets = false (the SRV name) | $(r "dns.a.ttl$ttl") | ≤ $b, ≤ 1 per interval | $(bold "$(r "dns.a.ttl$ttl.verdict")") |"
  echo "| same, resolve_targets = true, 3 targets: all names (the busiest name) | $(r "dns.b.ttl$ttl") ($(r "dns.b.ttl$ttl.busiest")) | ≤ $b per name, ≤ 1 per interval | $(bold "$(r "dns.b.ttl$ttl.verdict")") |"
done
echo "| same, TTL 30, resolve_targets = true, a 4th target without any address: all names (the busiest name) | $(r dns.c.ttl30) ($(r dns.c.ttl30.busiest)) | ≤ 3 per name | $(bold "$(r dns.c.ttl30.verdict)") |"
for ttl in 1 5; do
  k="prop.ttl$ttl.int1"
  echo "| propagation, TTL $ttl / interval 1: dest rewritten p50 / p95; reload started p50 / p95 | $(field "$k" 1) / $(field "$k" 2) ms; $(field "$k" 3) / $(field "$k" 4) ms | | |"
done
echo

echo "### srvd beside HAProxy's server-template + resolvers"
echo
echo "| | srvd | HAProxy server-template + resolvers |"
echo "|---|---|---|"
echo "| peak RSS, 10 domains of 3 targets, TTL 30 | srvd $(r footprint.rss_mib) MiB, plus HAProxy with the servers written out $(field haproxy.fp.static 1) MiB | $(field haproxy.fp.resolvers 1) MiB |"
echo "| CPU per hour, same (schedstat) | srvd $(r footprint.cpu_s_per_h_ns) s, plus HAProxy with the servers written out $(field haproxy.fp.static 3) s | $(field haproxy.fp.resolvers 3) s |"
for ttl in 1 5 30 300; do
  echo "| DNS queries per minute, 3 targets, TTL $ttl | $(r "dns.a.ttl$ttl") (resolve_targets = true: $(r "dns.b.ttl$ttl")) | $(r "haproxy.dns.same.ttl$ttl") (targets in another zone: $(r "haproxy.dns.other.ttl$ttl")) |"
done
for ttl in 1 5; do
  echo "| propagation p50 / p95, TTL $ttl, interval (timeout resolve) 1 s | $(field "prop.ttl$ttl.int1" 1) / $(field "prop.ttl$ttl.int1" 2) ms to dest, then a reload | $(field "haproxy.prop.ttl$ttl" 1) / $(field "haproxy.prop.ttl$ttl" 2) ms to a usable server |"
done
echo

for part in $PARTS; do
  cat "$work/$part.md"
done
[ "${#failed[@]}" -eq 0 ]
