#!/usr/bin/env bash
# srvd's whole test suite, as CI runs it (.ci/run), in two stages:
#
#   1. fast, without root or packages, only the Rust toolchain: cargo fmt
#      --check, cargo clippy -D warnings, cargo test, a build with the minimum
#      supported Rust version (Cargo.toml's rust-version) when that toolchain
#      is installed, and cargo check of the fuzz targets. It stops at the
#      first failure with "stage 1: STEP failed", and a slip in formatting is
#      found in minutes, not after every root suite has run.
#   2. every root suite (tests/*/run.sh), against one release build of srvd,
#      on a Debian 12 machine as root; the packages they need are installed
#      first.
#
#   bash tests/all.sh           # both stages (root, Debian 12)
#   bash tests/all.sh --fast    # stage 1 only
#
# Each stage ends with "N passed, N failed": cargo test counts its tests,
# every other step of stage 1 counts as one, a suite counts its checks. A
# step that could not run here says so and counts neither way. The last line
# of the run is "N passed, N failed" over everything that ran.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)

fast=
case "${1:-}" in
  --fast) fast=1 ;;
  "") ;;
  *)
    echo "usage: bash tests/all.sh [--fast]" >&2
    exit 2
    ;;
esac

passed=0
failed=0

summary() { echo "$passed passed, $failed failed"; }

if [ -z "$fast" ]; then
  packages=(
    haproxy knot knot-dnsutils dnsutils dnsmasq-base unbound pdns-server pdns-backend-bind
    systemd-container mmdebstrap debhelper dh-exec lintian devscripts nix-bin
    iproute2 procps psmisc curl python3 man-db podman runc
  )
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # Unbound and PowerDNS would start on port 53 at install; the suites run
    # their own on loopback ports. A policy-rc.d that says no keeps them
    # stopped (Debian's invoke-rc.d and deb-systemd-invoke obey it), and their
    # units are disabled so that a reboot does not start them either.
    policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      policy=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    fi
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    apt_status=$?
    [ -z "$policy" ] || rm -f "$policy"
    if [ "$apt_status" -ne 0 ]; then
      echo "apt-get install failed"
      echo "0 passed, 1 failed"
      exit 1
    fi
    for unit in unbound pdns; do
      case " ${missing[*]} " in *" $unit "* | *" $unit-server "*) ;; *) continue ;; esac
      [ -d /run/systemd/system ] && systemctl disable --now "$unit.service" >/dev/null 2>&1
    done
  fi
fi

# --- stage 1: fast, no root ---------------------------------------------------

echo "== stage 1: fmt, clippy, cargo test, MSRV build, fuzz targets"

# stop STEP: the first failure of stage 1 ends the run.
stop() {
  failed=$((failed + 1))
  echo "stage 1: $1 failed"
  summary
  exit 1
}

# step NAME CMD...: runs CMD, timed; its failure stops the run.
step() {
  local name=$1 t0=$SECONDS
  shift
  echo "-- $name"
  if "$@"; then
    passed=$((passed + 1))
    echo "ok   $name ($((SECONDS - t0)) s)"
  else
    stop "$name"
  fi
}

step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --all-targets --locked -- -D warnings

echo "-- cargo test"
log=$(mktemp)
cargo test --locked 2>&1 | tee "$log"
cargo_status=${PIPESTATUS[0]}
read -r cp cf < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } } END { print p+0, f+0 }' "$log")
rm -f "$log"
passed=$((passed + cp))
failed=$((failed + cf))
echo "cargo test: $cp passed, $cf failed"
# A cargo test that failed to build, or ran no test, counts as a failure.
if [ "$cargo_status" -ne 0 ] || [ "$cp" -eq 0 ]; then
  [ "$cf" -eq 0 ] && failed=$((failed + 1))
  echo "stage 1: cargo test failed"
  summary
  exit 1
fi

# The minimum supported Rust version: only a toolchain already installed, as
# none can be downloaded here. Built in its own target directory, so that it
# neither reuses nor spoils target/debug.
msrv=$(awk -F'"' '/^\[package\]/ { p = 1 } p && /^rust-version *=/ { print $2; exit }' Cargo.toml)
toolchain=
if [ -n "$msrv" ] && command -v rustup >/dev/null; then
  toolchain=$(rustup toolchain list | awk '{ print $1 }' | grep -E "^${msrv//./\\.}(\.[0-9]+)?-" | head -n 1)
fi
if [ -z "$msrv" ]; then
  stop "reading rust-version from Cargo.toml"
elif [ -n "$toolchain" ]; then
  step "cargo +$toolchain build (the minimum supported Rust version)" \
    env CARGO_TARGET_DIR="$root/target/msrv" cargo "+$toolchain" build --locked
else
  echo "stage 1: the MSRV build was not run: no Rust $msrv toolchain is installed (rustup toolchain list) and none can be downloaded here; not counted"
fi

# The fuzz targets are their own workspace, whose Cargo.lock is not kept
# (fuzz/.gitignore): seeded from srvd's, it pins srvd's dependencies as srvd
# builds them and adds libfuzzer-sys. Fetching needs crates.io; a fetch that
# fails is reported as not run, a check that fails as failed.
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock
if cargo fetch --manifest-path fuzz/Cargo.toml -q; then
  step "cargo check of the fuzz targets" cargo check --manifest-path fuzz/Cargo.toml --offline
else
  echo "stage 1: cargo check of the fuzz targets was not run: fetching their dependencies (libfuzzer-sys) from crates.io failed; not counted"
fi

echo "== stage 1 done"
summary
[ -n "$fast" ] && exit 0

# --- stage 2: root suites -----------------------------------------------------

echo "== stage 2: building srvd (release)"
if ! cargo build --release --locked -q; then
  failed=$((failed + 1))
  echo "stage 2: cargo build --release failed"
  summary
  exit 1
fi
export SRVD_BIN="$root/target/release/srvd"

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
summary
[ "$failed" -eq 0 ]
