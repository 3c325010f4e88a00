#!/usr/bin/env bash
# Zone files: `srvd render --zone FILE`, the whole process, from 1,000 to
# 100,000 SRV records for one name (each target with an A record in the same
# file, examples/haproxy.cfg.tmpl, resolve_targets = true). For each size the
# median of RUNS runs: wall time beside its budget (10,000 records <= 200 ms,
# 100,000 <= 2 s), CPU time and peak RSS; then the growth from 1,000 to
# 100,000 records against linear (budget: within 1.3x). Every run must print
# one `server` line per record, or the benchmark fails.
#
# Prints a Markdown report and writes it to docs/results/zone-files.md.
#
#   bash benches/zone.sh
# Settings (environment):
#   SRVD_BIN=path      time this srvd instead of a release build of this checkout
#   SRVD_BEFORE=path   also time this srvd (say, a build of an older commit) up
#                      to BEFORE_MAX records, for a "before" column
#   SRVD_BEFORE_NAME="the parser of commit abc1234"
#                      how the report names SRVD_BEFORE
#   BEFORE_MAX=10000   the largest zone timed with SRVD_BEFORE
#   SRVD_BEFORE_TEMPLATE=path
#                      the template SRVD_BEFORE renders (default: the same as
#                      SRVD_BIN's; an older build may lack a filter it uses,
#                      e.g. `git show 0c9d4ef:examples/haproxy.cfg.tmpl`)
#   RUNS=7             runs per size
#   SIZES="1000 3000 10000 30000 100000"
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-7}
SIZES=${SIZES:-1000 3000 10000 30000 100000}
BEFORE_MAX=${BEFORE_MAX:-10000}
SRVD_BEFORE_NAME=${SRVD_BEFORE_NAME:-an older build of srvd}
command -v python3 >/dev/null || die "python3 is not installed"
case " $SIZES " in *" 1000 "*"100000 "*) ;; *) die "SIZES must hold 1000 and 100000 (the growth is measured between them)" ;; esac
[ -z "${SRVD_BEFORE:-}" ] || [ -x "$SRVD_BEFORE" ] || die "SRVD_BEFORE=$SRVD_BEFORE is not an executable"

srvd=$(srvd_bin) || die "no srvd to measure"
work=$(mktemp -d "${TMPDIR:-/tmp}/srvd-bench-zone.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$TEMPLATE" "$work/haproxy.cfg.tmpl"
cat >"$work/srvd.toml" <<'EOF'
src = "haproxy.cfg.tmpl"
dest = "haproxy.cfg"
domain = "_mysql._tcp.example.com"
zone_file = "z.zone"
resolve_targets = true
nohttpd = true
EOF

# zone N: N SRV records for _mysql._tcp.example.com, a tenth at a higher
# priority value (backups), all with the same weight and port so that only
# the targets tell them apart (the worst case for a parser that compares
# each record with the ones before), and the A record of each target.
zone() {
  python3 - "$1" >"$work/z$1.zone" <<'EOF'
import sys
n = int(sys.argv[1])
out = ["$ORIGIN example.com.", "$TTL 30", "@ IN SOA ns1 hostmaster 1 3600 600 86400 30"]
for i in range(n):
    prio = 20 if i % 10 == 0 else 10
    out.append(f"_mysql._tcp IN SRV {prio} 5 3306 db-{i:06d}")
    out.append(f"db-{i:06d} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
print("\n".join(out))
EOF
}

# The same config beside the template SRVD_BEFORE renders.
mkdir "$work/before.d"
cp "$work/srvd.toml" "$work/before.d/"
cp "${SRVD_BEFORE_TEMPLATE:-$TEMPLATE}" "$work/before.d/haproxy.cfg.tmpl"

# timed SRVD N [DIR]: runs `SRVD render --zone` RUNS times on the zone of N
# records, with DIR/srvd.toml (default: $work's)
# and prints "N wall cpu rss": the medians of wall and CPU (user + system)
# seconds, and the largest peak RSS in KiB. Fails unless each run exits 0
# and renders N servers.
timed() {
  python3 - "$1" "$work" "$2" "$RUNS" "${3:-$work}" <<'EOF'
import os, statistics, subprocess, sys, time
srvd, work, n, runs, conf = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
cmd = [srvd, "--config", f"{conf}/srvd.toml", "render", "--zone", f"{work}/z{n}.zone"]
walls, cpus, rss = [], [], 0
for _ in range(runs):
    with open(f"{work}/out", "wb") as out, open(f"{work}/err", "wb") as err:
        start = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        walls.append(time.perf_counter() - start)
    cpus.append(usage.ru_utime + usage.ru_stime)
    rss = max(rss, usage.ru_maxrss)
    code = os.waitstatus_to_exitcode(status)
    servers = sum(1 for line in open(f"{work}/out") if line.startswith("  server "))
    if code != 0 or servers != n:
        sys.exit(f"{srvd} render --zone z{n}.zone: exit {code}, {servers} servers of {n}:\n"
                 + open(f"{work}/err").read()[-2000:])
print(n, f"{statistics.median(walls):.6f}", f"{statistics.median(cpus):.6f}", rss)
EOF
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$work/after"
: >"$work/before"
for n in $SIZES; do
  zone "$n"
  log "$n records: $RUNS runs"
  timed "$srvd" "$n" >>"$work/after" || die "the runs of $n records failed"
  if [ -n "${SRVD_BEFORE:-}" ] && [ "$n" -le "$BEFORE_MAX" ]; then
    log "$n records: $RUNS runs of $SRVD_BEFORE"
    timed "$SRVD_BEFORE" "$n" "$work/before.d" >>"$work/before" || die "the runs of $n records with SRVD_BEFORE failed"
  fi
  rm -f "$work/z$n.zone"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The table, the growth and the verdicts; the figures for run.sh go to
# $work/figures.
table=$(
  python3 - "$work" <<'EOF'
import sys
work = sys.argv[1]

def rows(name):
    return {int(n): (float(w), float(c), int(r)) for n, w, c, r in
            (line.split() for line in open(f"{work}/{name}") if line.strip())}

after, before = rows("after"), rows("before")
budget = {10000: 0.200, 100000: 2.0}
figures = []

def t(s):
    return f"{s * 1e3:.1f} ms" if s < 0.1 else f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s"

def verdict(ok):
    return "within" if ok else "**OVER**"

print("| records | wall time | budget | | CPU time | peak RSS |" + (" before: wall time |" if before else ""))
print("|---|---|---|---|---|---|" + ("---|" if before else ""))
for n, (wall, cpu, rss) in sorted(after.items()):
    b = budget.get(n)
    row = [f"{n:,}", t(wall), f"≤ {b * 1e3:g} ms" if b and b < 1 else f"≤ {b:g} s" if b else "", verdict(wall <= b) if b else "",
           t(cpu), f"{rss / 1024:.1f} MiB"]
    if before:
        row.append(t(before[n][0]) if n in before else "")
    print("| " + " | ".join(row) + " |")
    figures.append(f"zone.{n} {wall:.6f}")
    if b:
        figures.append(f"zone.{n}.verdict {'within' if wall <= b else 'OVER'}")
print()
# Linear growth: 100 times the records, 100 times the time. The fixed cost
# of a process (start, config, template) makes the whole time grow less than
# that whatever the parser does, so what the budget bounds is the time per
# record at 100,000 against the time per record at 1,000.
w1, c1 = after[1000][:2]
w100, c100 = after[100000][:2]
growth = (w100 / 100000) / (w1 / 1000)
cpu_growth = (c100 / 100000) / (c1 / 1000) if c1 > 0 else float("inf")
print(f"Growth from 1,000 to 100,000 records: the wall time per record at 100,000 is "
      f"{growth:.2f}x the wall time per record at 1,000 (budget: within 1.3x of linear, "
      f"{verdict(growth <= 1.3)}); the CPU time per record {cpu_growth:.2f}x.")
# The same without the fixed cost: the CPU time each record adds, between
# the smaller sizes and between the larger ones.
if 10000 in after:
    c10 = after[10000][1]
    small, large = (c10 - c1) / 9000, (c100 - c10) / 90000
    print()
    print(f"CPU time each record adds: {small * 1e6:.1f} µs from 1,000 to 10,000 records, "
          f"{large * 1e6:.1f} µs from 10,000 to 100,000 ({large / small:.2f}x).")
figures.append(f"zone.growth {growth:.3f}")
figures.append(f"zone.growth.verdict {'within' if growth <= 1.3 else 'OVER'}")
with open(f"{work}/figures", "w") as f:
    f.write("\n".join(figures) + "\n")
EOF
) || die "the report failed"
while read -r key value; do result "$key" "$value"; done <"$work/figures"

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || commit="$commit (with local changes)"
model=$(lscpu 2>/dev/null | awk -F: '/^Model name/ { sub(/^ +/, "", $2); print $2; exit }')
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
before_note=
if [ -n "${SRVD_BEFORE:-}" ]; then
  before_note=" The before column: $SRVD_BEFORE_NAME, the same runs up to
$(python3 -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$BEFORE_MAX") records."
fi
# A busy machine makes a process wait for a core: say so beside the figures.
busy_note=
if python3 -c 'import sys; sys.exit(0 if max(map(float, sys.argv[2:])) > float(sys.argv[1]) else 1)' \
  "$(nproc)" "${load_before%% *}" "${load_after%% *}"; then
  busy_note="

The machine was busy (a load average above its $(nproc) cores): the wall
times include waiting for a core, the CPU times are what srvd itself spent.
The budgets are for a quiet machine."
fi

doc="# Zone files: \`srvd render --zone\`

Generated by \`bash benches/zone.sh\`; a run replaces this file.

The whole process \`srvd render --zone FILE\` (start, config, template, read
and parse the zone file, order the records, resolve each target from the
file, render to stdout) with N SRV records for \`_mysql._tcp.example.com\` (a
tenth at a higher priority value, all with the same weight and port) and an A
record for each target in the same file; \`examples/haproxy.cfg.tmpl\`,
\`resolve_targets = true\`. Wall and CPU time are medians of $RUNS runs for
each size; peak RSS is the largest of the runs.$before_note

Machine: ${model:-unknown CPU}, $(nproc) cores, $mem of memory, Linux
$(uname -r); $(rustc --version 2>/dev/null | cut -d' ' -f1-2); $("$srvd" --version 2>/dev/null | head -n1) at commit
$commit, release profile (fat LTO, opt-level s). Load average
$load_before before the runs, $load_after after.$busy_note

$table"
mkdir -p "$ROOT/docs/results"
printf '%s\n' "$doc" >"$ROOT/docs/results/zone-files.md"
printf '%s\n' "$doc"
log "written to docs/results/zone-files.md"
