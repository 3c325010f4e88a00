# Shared helpers for srvd's shell test suites. Source it, call `check` or
# `pass`/`fail` for every assertion, and end with `summary`, which prints
# "N passed, N failed" as the last line and returns non-zero on any failure.

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

summary() {
  echo "${SRVD_TESTS_PASSED} passed, ${SRVD_TESTS_FAILED} failed"
  [ "$SRVD_TESTS_FAILED" -eq 0 ]
}

# The srvd binary under test: built once by tests/all.sh, or built here.
srvd_bin() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [ -n "${SRVD_BIN:-}" ]; then echo "$SRVD_BIN"; return; fi
  (cd "$root" && cargo build --release --locked -q) >&2 || return 1
  echo "$root/target/release/srvd"
}
