#!/usr/bin/env bash
# srvd's whole test suite, as CI runs it (.ci/run) on a fresh Debian 12
# machine as root: installs what the suites need, builds srvd once, runs the
# Rust tests, then every shell suite (tests/*/run.sh). The last line is
# "N passed, N failed" over everything.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

packages=(
  haproxy knot knot-dnsutils dnsutils dnsmasq-base
  systemd-container mmdebstrap debhelper dh-exec lintian devscripts nix-bin
  iproute2 procps psmisc curl python3 man-db
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || {
    echo "apt-get install failed"; echo "0 passed, 1 failed"; exit 1; }
fi

echo "== building srvd"
cargo build --release --locked -q || { echo "0 passed, 1 failed"; exit 1; }
export SRVD_BIN="$root/target/release/srvd"

passed=0
failed=0

echo "== cargo test"
log=$(mktemp)
cargo test --locked 2>&1 | tee "$log"
cargo_status=${PIPESTATUS[0]}
read -r cp cf < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } } END { print p+0, f+0 }' "$log")
rm -f "$log"
if [ "$cargo_status" -ne 0 ] && [ "$cf" -eq 0 ]; then cf=1; fi
passed=$((passed + cp))
failed=$((failed + cf))
echo "cargo test: $cp passed, $cf failed"

for suite in tests/*/run.sh; do
  [ -f "$suite" ] || continue
  name=$(basename "$(dirname "$suite")")
  echo "== suite $name"
  out=$(mktemp)
  bash "$suite" 2>&1 | tee "$out"
  status=${PIPESTATUS[0]}
  last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
  rm -f "$out"
  sp=$(echo "$last" | awk '{print $1+0}')
  sf=$(echo "$last" | awk '{print $3+0}')
  if [ "$status" -ne 0 ] && [ "${sf:-0}" -eq 0 ]; then sf=1; fi
  passed=$((passed + ${sp:-0}))
  failed=$((failed + ${sf:-0}))
  echo "suite $name: ${sp:-0} passed, ${sf:-0} failed"
done

echo "== total"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
