#!/usr/bin/env bash
# In-process costs (benches/render.rs, divan), as a table with the budgets:
# a render of 1,000 records <= 2 ms, of 10,000 <= 20 ms. Medians.
#
#   bash benches/render.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out=$(mktemp "${TMPDIR:-/tmp}/srvd-bench-render.XXXXXX")
trap 'rm -f "$out" "$out.parsed"' EXIT
load_before=$(load1)
log "cargo bench --bench render (load $load_before)"
(cd "$ROOT" && cargo bench --locked --bench render) >"$out" 2>"$out.err" || {
  cat "$out.err" >&2
  die "cargo bench failed"
}
rm -f "$out.err"
load_after=$(load1)
python3 "$HELPER" divan <"$out" >"$out.parsed"
cat "$out" >&2

# median BENCH ARG: the median, in a readable unit.
median() {
  awk -v b="$1" -v a="$2" '$1 == b && $2 == a { print $3 }' "$out.parsed" | python3 -c '
import sys
v = sys.stdin.read().strip()
if not v:
    print("-")
else:
    s = float(v)
    print(f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s")'
}
seconds() { awk -v b="$1" -v a="$2" '$1 == b && $2 == a { print $3 }' "$out.parsed"; }

echo "### Render and cycle (in process)"
echo
echo "\`cargo bench --bench render\` (divan, the release profile: fat LTO, opt-level s), examples/haproxy.cfg.tmpl with" \
  "resolve_targets = true, a tenth of the records at a higher priority value (backup servers); medians;" \
  "load average $load_before before, $load_after after. Unchanged cycle, answers cached: a poll whose answers are" \
  "still fresh (records in hand -> \"unchanged\"). Zone file read again: the same poll after the zone file was touched" \
  "(read, parse, validate, order, resolve every target, compare -> \"unchanged\"). resolve_targets for a new answer:" \
  "what a DNS user pays at each TTL expiry besides the queries: a new SRV answer equal to the last one, every" \
  "target's address looked up again (from memory)."
echo
echo "| records | render | budget | | unchanged cycle, answers cached | unchanged cycle, zone file read again | resolve_targets for a new answer |"
echo "|---|---|---|---|---|---|---|"
for n in 10 100 1000 10000; do
  case $n in
    1000) budget=0.002 ;;
    10000) budget=0.020 ;;
    *) budget= ;;
  esac
  verdict=
  b=
  s=$(seconds render "$n")
  if [ -n "$budget" ] && [ -n "$s" ]; then
    b="≤ $(python3 -c 'import sys; print(f"{float(sys.argv[1]) * 1e3:g} ms")' "$budget")"
    verdict=$(python3 -c 'import sys; print("within" if float(sys.argv[1]) <= float(sys.argv[2]) else "OVER")' "$s" "$budget")
    result "render.$n" "$s"
    result "render.$n.verdict" "$verdict"
  fi
  echo "| $(python3 -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$n") | $(median render "$n") | $b | $verdict | $(median unchanged_cycle "$n") | $(median unchanged_cycle_reread "$n") | $(median resolve_targets "$n") |"
  result "cycle.$n" "$(seconds unchanged_cycle "$n")"
  result "cycle_reread.$n" "$(seconds unchanged_cycle_reread "$n")"
  result "resolve.$n" "$(seconds resolve_targets "$n")"
done
echo
result render.load "$load_before/$load_after"
