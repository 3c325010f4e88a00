# shellcheck shell=bash
# Shared helpers for srvd's shell test suites and benchmarks. A suite
# sources it, calls `check` or `pass`/`fail` for every assertion, and ends
# with `summary`, which prints "N passed, N failed" as the last line and
# returns non-zero on any failure; benchmarks use the process, srvd and
# waiting helpers below (Knot DNS has its own file, tests/knot.sh).

SRVD_TESTS_PASSED=0
SRVD_TESTS_FAILED=0

pass() {
  SRVD_TESTS_PASSED=$((SRVD_TESTS_PASSED + 1))
  printf 'ok   %s\n' "$*"
}

fail() {
  SRVD_TESTS_FAILED=$((SRVD_TESTS_FAILED + 1))
  printf 'FAIL %s\n' "$*"
}

# check "what is asserted" command [args...]: passes when the command succeeds.
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

# eventually SECONDS "what" command...: retries every 0.1 s until it succeeds.
eventually() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  while :; do
    if "$@" 2>/dev/null; then pass "$what"; return 0; fi
    if [ "$SECONDS" -ge "$deadline" ]; then fail "$what (not within ${limit}s)"; return 1; fi
    sleep 0.1
  done
}

# has REGEX CMD...: CMD's output matches REGEX (extended). The output is
# read whole first: grep -q stopping early would fail CMD with SIGPIPE.
has() {
  local re=$1 out
  shift
  out=$("$@" 2>/dev/null)
  grep -qE -- "$re" <<<"$out"
}

# lacks REGEX CMD...: CMD succeeds and its output does not match REGEX.
lacks() {
  local re=$1 out
  shift
  out=$("$@" 2>/dev/null) || return 1
  ! grep -qE -- "$re" <<<"$out"
}

# equals WANT CMD...: CMD prints exactly WANT.
equals() {
  local want=$1
  shift
  [ "$("$@" 2>/dev/null)" = "$want" ]
}

# at_least N CMD...: CMD prints a number >= N.
at_least() {
  local n=$1 got
  shift
  got=$("$@" 2>/dev/null) && [ -n "$got" ] && [ "$got" -ge "$n" ]
}

# fails CMD...: CMD exits non-zero.
fails() { ! "$@" >/dev/null 2>&1; }

summary() {
  echo "${SRVD_TESTS_PASSED} passed, ${SRVD_TESTS_FAILED} failed"
  [ "$SRVD_TESTS_FAILED" -eq 0 ]
}

# The srvd binary under test, as an absolute path (the suites cd elsewhere):
# $SRVD_BIN (built once by tests/all.sh), or a release build of this
# checkout. Fails, saying why, when it is not an executable.
srvd_bin() {
  local root bin
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [ -n "${SRVD_BIN:-}" ]; then
    bin=$SRVD_BIN
    [ "${bin#/}" != "$bin" ] || bin="$PWD/$bin"
  else
    (cd "$root" && cargo build --release --locked -q) >&2 || { echo "cargo build --release failed" >&2; return 1; }
    bin="$root/target/release/srvd"
  fi
  [ -f "$bin" ] && [ -x "$bin" ] || { echo "srvd binary $bin is not an executable (SRVD_BIN=${SRVD_BIN:-})" >&2; return 1; }
  echo "$bin"
}

# --- processes and time ---------------------------------------------------------

# Seconds since the epoch, with nanoseconds: what the helpers' logs record.
now() { date +%s.%N; }

# die MESSAGE: stops a set-up that cannot go on. Suites that count their
# checks redefine it to count a failure and print the summary.
die() {
  echo "error: $*" >&2
  exit 1
}

# need PROGRAM...: dies naming the first one that is not on PATH.
need() {
  local p
  for p in "$@"; do
    command -v "$p" >/dev/null || die "$p is not installed"
  done
}

# busy_ports ADDR:PORT...: prints those that something listens on already
# (at that address or at a wildcard one), TCP or UDP; nothing when all are free.
busy_ports() {
  local listening a
  listening=$(ss -Hlntu 2>/dev/null | awk '{print $5}')
  for a in "$@"; do
    grep -qxF -e "$a" -e "*:${a##*:}" -e "0.0.0.0:${a##*:}" -e "[::]:${a##*:}" <<<"$listening" && echo "$a"
  done
  return 0
}

# free_port: a TCP port on 127.0.0.1 that nobody listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Every process a suite or benchmark started in the background, for
# stop_started; track_pid PID adds one.
STARTED_PIDS=()
track_pid() { STARTED_PIDS+=("$1"); }

# stop_pid PID: stops one process started here: SIGTERM, then SIGKILL after
# 5 s; reaps it and forgets it, so that a later stop_started cannot signal
# another process that has its PID by then. An empty PID is a no-op.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  # Its exit status is the signal's: not a failure of the caller (set -e).
  wait "$pid" 2>/dev/null || true
  for i in "${!STARTED_PIDS[@]}"; do
    [ "${STARTED_PIDS[i]}" != "$pid" ] || unset 'STARTED_PIDS[i]'
  done
  return 0
}

# stop_started: stops every process track_pid recorded, the last one first.
stop_started() {
  local pids=("${STARTED_PIDS[@]}") i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
}

# keep_or_remove STATUS DIR KEEP: removes the scratch directory DIR after a
# run that ended with STATUS 0, unless KEEP is set; else says where it is.
keep_or_remove() {
  local status=$1 dir=$2 keep=${3:-}
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  if [ "$status" -ne 0 ] || [ -n "$keep" ]; then
    echo "== logs kept in $dir" >&2
  else
    rm -rf "$dir"
  fi
}

# wait_for SECONDS command...: retries every 0.1 s until the command
# succeeds; fails after SECONDS. Like `eventually`, without counting.
wait_for() {
  local limit=$1
  shift
  local deadline=$((SECONDS + limit))
  until "$@" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# --- srvd ---------------------------------------------------------------------

# srvd without anything it could inherit from a service manager (env execs
# it, so that $! is srvd itself). SRVD_SET_ENV adds NAME=VALUE words after it.
SRVD_ENV=(env -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID -u LISTEN_FDNAMES -u WATCHDOG_USEC
  -u WATCHDOG_PID -u JOURNAL_STREAM -u RUST_LOG)
SRVD_SET_ENV=()

# start_srvd CONFIG LOG [ARGS...]: runs $SRVD --config CONFIG ARGS in the
# background, in the current directory, appending its output to LOG; sets
# SRVD_PID and records it for stop_started.
start_srvd() {
  local config=$1 log=$2
  shift 2
  "${SRVD_ENV[@]}" "${SRVD_SET_ENV[@]}" "$SRVD" --config "$config" "$@" >>"$log" 2>&1 &
  SRVD_PID=$!
  track_pid "$SRVD_PID"
}

# srvd_template NAME SRC DEST DOMAIN [LINE...]: one [[template]] table of
# srvd.toml, after a blank line, with any further key = value LINEs.
srvd_template() {
  printf '\n[[template]]\nname = "%s"\nsrc = "%s"\ndest = "%s"\ndomain = "%s"\n' "$1" "$2" "$3" "$4"
  shift 4
  [ "$#" -eq 0 ] || printf '%s\n' "$@"
}

# metric NAME [URL]: NAME's value (NAME with its labels, as /metrics
# prints it) in srvd's /metrics at URL (default $STATUS_URL), as an
# integer; fails when srvd does not answer or has no such line.
metric() {
  curl -fsS --max-time 2 "${2:-$STATUS_URL}/metrics" |
    awk -v m="$1" '$1 == m { printf "%d\n", $2; found = 1 } END { exit !found }'
}
