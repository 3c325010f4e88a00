# shellcheck shell=bash
# Helpers shared by tests/reliability/run.sh and long.sh: a srvd site that
# reads its records from a zone file, and the crash-consistency loop.
# Source tests/lib.sh first.

# The template every site renders: one line per record, between markers, so
# that a partial file can never pass for a complete one.
REL_TEMPLATE='# srvd reliability
{% for s in srvs %}server {{ s.host }} {{ s.target }}:{{ s.port }} prio {{ s.priority }}
{% endfor %}# end
'

# zone_text N VERSION: a zone with N SRV records whose names carry VERSION.
zone_text() {
  awk -v n="$1" -v v="$2" 'BEGIN {
    print "$ORIGIN example.com.\n$TTL 0\n@ IN SOA ns1 hostmaster 1 3600 600 86400 0"
    for (i = 0; i < n; i++) printf "_mysql._tcp IN SRV %d 5 %d h%04d-v%d\n", v % 65536, 1000 + i, i, v
  }'
}

# expected_dest N VERSION: exactly what srvd renders from zone_text N VERSION.
expected_dest() {
  awk -v n="$1" -v v="$2" 'BEGIN {
    print "# srvd reliability"
    for (i = 0; i < n; i++)
      printf "server h%04d-v%d.example.com h%04d-v%d.example.com.:%d prio %d\n", i, v, i, v, 1000 + i, v % 65536
    print "# end"
  }'
}

# write_zone DIR N VERSION: replaces DIR/zone atomically.
write_zone() {
  zone_text "$2" "$3" >"$1/zone.tmp" && mv -f "$1/zone.tmp" "$1/zone"
}

# site_config DIR DEST [EXTRA]: a config in DIR/srvd.toml that renders
# DIR/zone into DEST (relative to DIR), with the status endpoint on
# $SITE_PORT.
site_config() {
  local dir=$1 dest=$2 extra=${3:-}
  SITE_PORT=$(free_port)
  printf '%s' "$REL_TEMPLATE" >"$dir/t.tmpl"
  cat >"$dir/srvd.toml" <<TOML
src = "t.tmpl"
dest = "$dest"
domain = "_mysql._tcp.example.com"
zone_file = "zone"
interval = "100ms"
timeout = "5s"
reload_cmd = "sh -c 'echo reload >> reloads.log'"
status_port = $SITE_PORT
$extra
TOML
}

# start_site DIR: runs srvd on DIR/srvd.toml in the background, in DIR (its
# reload command writes there), logging to DIR/srvd.log; sets SRVD_PID.
start_site() {
  pushd "$1" >/dev/null || return 1
  start_srvd srvd.toml srvd.log --log-level info
  popd >/dev/null || return 1
}

stop_srvd() {
  stop_pid "${SRVD_PID:-}"
  SRVD_PID=""
}

# status_error: the error /status shows for the first template.
status_error() {
  curl -s --max-time 2 "http://127.0.0.1:$SITE_PORT/status" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["templates"][0]["error"] or "")'
}

status_has() { status_error | grep -qF -- "$1"; }
status_ok() {
  curl -s --max-time 2 "http://127.0.0.1:$SITE_PORT/status" |
    python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["Ok"] else 1)'
}

logged() { grep -qF -- "$2" "$1/srvd.log"; }
# logged_times DIR TEXT: how many lines of the log contain TEXT.
logged_times() { grep -cF -- "$2" "$1/srvd.log"; }
# dest_is DIR DEST N VERSION: DEST holds exactly the render of that zone.
dest_is() { expected_dest "$3" "$4" | cmp -s - "$1/$2"; }
no_staged() { [ -z "$(find "$1" -maxdepth 1 -name '.srvd-staged-*' -print -quit)" ]; }

# crash_run ROUNDS: ROUNDS times, starts srvd on a site whose zone changes
# continually, kills it with SIGKILL at a random moment, and checks that
# dest is byte-equal to one complete rendered version. Before each start it
# notes the staged files and the reload marker that earlier kills left;
# when that start gets going, they must be dealt with: staged files
# removed, the interrupted reload run again. Sets CRASH_COMPLETE,
# CRASH_EMPTY (no dest yet), CRASH_STAGED (kills that left a staged file),
# CRASH_CLEANED (staged files seen removed), CRASH_MARKERS (kills that left
# a reload owed), CRASH_RERUN (owed reloads seen run again), CRASH_UNSTARTED
# (starts waited for that never logged "started"), CRASH_BAD.
crash_run() {
  local rounds=$1 dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/srvd-crash.XXXXXX")
  local n=150
  write_zone "$dir" "$n" 1
  site_config "$dir" "haproxy.cfg" 'check_cmd = "grep -q \"^# end$\" {{ src }}"
nohttpd = true'
  sed -i 's/^interval = .*/interval = "20ms"/' "$dir/srvd.toml"
  # The zone changes about every cycle (20 ms), for the whole run.
  (
    v=2
    while :; do
      write_zone "$dir" "$n" "$v" || exit 0
      v=$((v + 1))
      sleep 0.01
    done
  ) &
  local writer=$!
  CRASH_COMPLETE=0 CRASH_EMPTY=0 CRASH_STAGED=0 CRASH_CLEANED=0
  CRASH_MARKERS=0 CRASH_RERUN=0 CRASH_UNSTARTED=0 CRASH_BAD=0
  local r
  for ((r = 1; r <= rounds + 1; r++)); do
    local staged marker=0
    staged=$(cd "$dir" && find . -maxdepth 1 -name '.srvd-staged-*' -printf '%f ')
    [ -e "$dir/.srvd-reload-pending-haproxy.cfg" ] && marker=1
    : >"$dir/srvd.log"
    start_site "$dir"
    # Half the rounds (and the last start) wait until srvd got going; the
    # others kill it at any moment, start-up included.
    if [ $((RANDOM % 2)) -eq 0 ] || [ "$r" -gt "$rounds" ]; then
      local t=0
      while ! grep -q "started" "$dir/srvd.log" && [ $t -lt 300 ]; do sleep 0.01; t=$((t + 1)); done
      if ! grep -q "started" "$dir/srvd.log"; then
        CRASH_UNSTARTED=$((CRASH_UNSTARTED + 1))
        echo "round $r: srvd did not start: $(tail -n 3 "$dir/srvd.log")"
      fi
      local f
      for f in $staged; do
        if [ -e "$dir/$f" ]; then
          CRASH_BAD=$((CRASH_BAD + 1))
          echo "round $r: $f survived the start"
        else
          CRASH_CLEANED=$((CRASH_CLEANED + 1))
        fi
      done
      if [ "$marker" -eq 1 ]; then
        if grep -q "did not finish; reloading again" "$dir/srvd.log"; then
          CRASH_RERUN=$((CRASH_RERUN + 1))
        else
          CRASH_BAD=$((CRASH_BAD + 1))
          echo "round $r: the interrupted reload was not run again"
        fi
      fi
      [ "$r" -gt "$rounds" ] && break
      sleep "0.$(printf '%03d' $((RANDOM % 300)))"
    else
      sleep "0.$(printf '%03d' $((RANDOM % 60)))"
    fi
    kill -9 "$SRVD_PID" 2>/dev/null
    wait "$SRVD_PID" 2>/dev/null
    SRVD_PID=""
    if [ ! -e "$dir/haproxy.cfg" ]; then
      CRASH_EMPTY=$((CRASH_EMPTY + 1))
    else
      local v
      v=$(sed -n '2s/^server h0000-v\([0-9]*\)\..*/\1/p' "$dir/haproxy.cfg")
      if [ -n "$v" ] && dest_is "$dir" haproxy.cfg "$n" "$v"; then
        CRASH_COMPLETE=$((CRASH_COMPLETE + 1))
      else
        CRASH_BAD=$((CRASH_BAD + 1))
        echo "round $r: dest is not one complete version"
        cp "$dir/haproxy.cfg" "$dir/bad-$r.cfg"
      fi
    fi
    [ -n "$(find "$dir" -maxdepth 1 -name '.srvd-staged-*' -print -quit)" ] && CRASH_STAGED=$((CRASH_STAGED + 1))
    [ -e "$dir/.srvd-reload-pending-haproxy.cfg" ] && CRASH_MARKERS=$((CRASH_MARKERS + 1))
  done
  stop_srvd
  kill "$writer" 2>/dev/null
  wait "$writer" 2>/dev/null
  if [ "$CRASH_BAD" -eq 0 ] && [ "$CRASH_UNSTARTED" -eq 0 ]; then rm -rf "$dir"; else echo "kept $dir"; fi
}

# crash_checks ROUNDS: what a crash_run of ROUNDS must show: every dest left
# one complete version, and the run really tested something: most kills
# found a dest to check (only those before the first write may not), and
# every start that was waited for got going. A run whose srvd never starts
# leaves no dest and fails here rather than reporting "0 bad".
crash_checks() {
  local rounds=$1
  echo "crash: $CRASH_COMPLETE complete versions, $CRASH_EMPTY before the first write; $CRASH_STAGED kills left a staged file ($CRASH_CLEANED removed at a start), $CRASH_MARKERS a reload owed ($CRASH_RERUN run again); $CRASH_UNSTARTED starts that never got going; $CRASH_BAD bad"
  check "crash: every dest left by $rounds kills is one complete version" test "$CRASH_BAD" -eq 0
  check "crash: most kills found a complete dest to check ($CRASH_COMPLETE of $rounds)" \
    test "$CRASH_COMPLETE" -ge $((rounds * 8 / 10)) -a "$CRASH_COMPLETE" -gt 0
  check "crash: srvd started every time it was given the time to" test "$CRASH_UNSTARTED" -eq 0
}
