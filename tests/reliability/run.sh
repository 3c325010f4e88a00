#!/usr/bin/env bash
# srvd's reliability suite, the part that needs root and mounts: a read-only
# dest directory, a full filesystem, a dest on a bind mount (where rename(2)
# fails with EBUSY) including a full one, a dest bind-mounted at a second
# path (refused for a rename, written with write = "in-place"), a dest
# directory that vanishes or
# becomes a directory, and a short crash-consistency run (kill -9 at random
# moments while the records change every cycle). The rest of the suite is
# tests/reliability.rs (cargo test); the long runs are long.sh.
#
#   sudo SRVD_BIN=target/release/srvd bash tests/reliability/run.sh
#
# Runs in its own mount namespace (unshare -m): every mount it makes goes
# away with it. SRVD_CRASH_ROUNDS sets the number of kills (100). Ends with
# "N passed, N failed" and a non-zero status on any failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/lib.sh
. "$root/tests/lib.sh"
# shellcheck source=tests/reliability/lib.sh
. "$here/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
  fail "the reliability suite needs root (mounts)"
  summary
  exit 1
fi
if [ -z "${SRVD_REL_NAMESPACE:-}" ]; then
  SRVD=$(srvd_bin) || { fail "no srvd to test"; summary; exit 1; }
  exec env SRVD_REL_NAMESPACE=1 SRVD_BIN="$SRVD" unshare -m --propagation private bash "$0" "$@"
fi
SRVD=${SRVD_BIN:?}

work=$(mktemp -d "${TMPDIR:-/tmp}/srvd-reliability.XXXXXX")
cleanup() {
  stop_srvd
  # Lazy unmounts: whatever is still mounted under $work.
  findmnt -rn -o TARGET | grep "^$work" | sort -r | while read -r m; do umount -l "$m"; done
  if [ "$SRVD_TESTS_FAILED" -eq 0 ]; then rm -rf "$work"; else echo "== kept $work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# section NAME: a fresh site directory for one scenario.
section() {
  stop_srvd
  echo "== $1"
  S="$work/$2"
  mkdir -p "$S"
}

# --- a read-only dest directory ------------------------------------------------

section "read-only dest directory" ro
mkdir "$S/etc"
mount -t tmpfs -o size=1m tmpfs "$S/etc"
write_zone "$S" 2 1
site_config "$S" "etc/haproxy.cfg"
start_site "$S"
eventually 5 "ro: dest written" dest_is "$S" etc/haproxy.cfg 2 1
mount -o remount,ro "$S/etc"
write_zone "$S" 3 2
eventually 5 "ro: the failure is logged" logged "$S" "Read-only file system"
eventually 3 "ro: /status says why" status_has "Read-only file system"
sleep 1
check "ro: the last good dest is kept" dest_is "$S" etc/haproxy.cfg 2 1
check "ro: logged once, not every cycle" test "$(logged_times "$S" "Read-only file system")" -eq 1
mount -o remount,rw "$S/etc"
# No help: the back-off (10 s) ends and the change goes in.
eventually 15 "ro: recovered by itself" dest_is "$S" etc/haproxy.cfg 3 2
eventually 3 "ro: /status is ok again" status_ok
check "ro: no staged file left" no_staged "$S/etc"

# --- a full filesystem -------------------------------------------------------------

section "full filesystem" full
mkdir "$S/etc"
mount -t tmpfs -o size=256k tmpfs "$S/etc"
write_zone "$S" 2 1
site_config "$S" "etc/haproxy.cfg"
start_site "$S"
eventually 5 "full: dest written" dest_is "$S" etc/haproxy.cfg 2 1
dd if=/dev/zero of="$S/etc/filler" bs=4k 2>/dev/null
write_zone "$S" 1000 2
eventually 5 "full: the failure is logged" logged "$S" "No space left on device"
eventually 3 "full: /status says why" status_has "No space left on device"
sleep 1
check "full: the last good dest is kept" dest_is "$S" etc/haproxy.cfg 2 1
check "full: no staged file left" no_staged "$S/etc"
check "full: logged once" test "$(logged_times "$S" "No space left on device")" -eq 1
rm -f "$S/etc/filler"
eventually 15 "full: recovered by itself once there is room" dest_is "$S" etc/haproxy.cfg 1000 2
check "full: no staged file left after recovery" no_staged "$S/etc"

# --- a dest on a bind mount: rename(2) fails with EBUSY ----------------------------------

section "dest on a bind mount (EBUSY)" bind
mkdir "$S/etc"
echo "old" >"$S/real.cfg"
touch "$S/etc/haproxy.cfg"
mount --bind "$S/real.cfg" "$S/etc/haproxy.cfg"
write_zone "$S" 2 1
site_config "$S" "etc/haproxy.cfg"
start_site "$S"
eventually 5 "bind: dest written in place" dest_is "$S" etc/haproxy.cfg 2 1
check "bind: the bind-mounted file got it" dest_is "$S" real.cfg 2 1
check "bind: dest is still the mount point" mountpoint -q "$S/etc/haproxy.cfg"
write_zone "$S" 40 2
eventually 5 "bind: a change is written in place too" dest_is "$S" etc/haproxy.cfg 40 2
check "bind: no staged file left" no_staged "$S/etc"
check "bind: reloaded twice" test "$(wc -l <"$S/reloads.log")" -eq 2
check "bind: no error" status_ok

# --- a bind-mounted dest on a full filesystem: the in-place write fails halfway ----------

section "bind-mounted dest on a full filesystem" bindfull
mkdir "$S/etc" "$S/tiny"
mount -t tmpfs -o size=64k tmpfs "$S/tiny"
touch "$S/tiny/real.cfg" "$S/etc/haproxy.cfg"
mount --bind "$S/tiny/real.cfg" "$S/etc/haproxy.cfg"
write_zone "$S" 2 1
site_config "$S" "etc/haproxy.cfg"
start_site "$S"
eventually 5 "bindfull: dest written in place" dest_is "$S" etc/haproxy.cfg 2 1
dd if=/dev/zero of="$S/tiny/filler" bs=4k 2>/dev/null
write_zone "$S" 1000 2
eventually 5 "bindfull: the failed write is logged" logged "$S" "old content restored"
sleep 1
check "bindfull: dest holds the old content, whole" dest_is "$S" etc/haproxy.cfg 2 1
check "bindfull: no staged file left" no_staged "$S/etc"
check "bindfull: no reload for a change that did not happen" test "$(wc -l <"$S/reloads.log")" -eq 1
eventually 3 "bindfull: /status says why" status_has "No space left on device"
rm -f "$S/tiny/filler"
eventually 15 "bindfull: recovered by itself" dest_is "$S" etc/haproxy.cfg 1000 2

# --- dest bind-mounted at a second path (docker run -v): a rename would split it --------------

section "dest bind-mounted at another path" shared
mkdir "$S/etc" "$S/container"
echo "old" >"$S/etc/haproxy.cfg"
touch "$S/container/haproxy.cfg"
mount --bind "$S/etc/haproxy.cfg" "$S/container/haproxy.cfg"
write_zone "$S" 2 1
site_config "$S" "etc/haproxy.cfg"
start_site "$S"
eventually 5 "shared: refused, naming the other path" logged "$S" "it is also mounted at $S/container/haproxy.cfg"
eventually 3 "shared: /status says why" status_has "shares its inode with another path"
check "shared: dest left as it was" test "$(cat "$S/etc/haproxy.cfg")" = old
check "shared: still one inode" test "$(stat -c %i "$S/etc/haproxy.cfg")" = "$(stat -c %i "$S/container/haproxy.cfg")"
check "shared: no reload" test ! -e "$S/reloads.log"
stop_srvd
site_config "$S" "etc/haproxy.cfg" 'write = "in-place"'
start_site "$S"
eventually 5 "shared: in place, the mounted path sees the render" dest_is "$S" container/haproxy.cfg 2 1
write_zone "$S" 40 2
eventually 5 "shared: and the next change" dest_is "$S" container/haproxy.cfg 40 2
check "shared: dest is the same file" dest_is "$S" etc/haproxy.cfg 40 2
check "shared: still one inode after the changes" test "$(stat -c %i "$S/etc/haproxy.cfg")" = "$(stat -c %i "$S/container/haproxy.cfg")"
check "shared: no staged file left" no_staged "$S/etc"
eventually 3 "shared: /status ok" status_ok

# --- the dest directory removed, then dest replaced by a directory ---------------------------

section "dest directory removed, dest a directory" gone
write_zone "$S" 2 1
site_config "$S" "etc/haproxy.cfg"
start_site "$S"
eventually 5 "gone: dest written, its directory made" dest_is "$S" etc/haproxy.cfg 2 1
rm -rf "${S:?}/etc"
eventually 5 "gone: directory and dest made again" dest_is "$S" etc/haproxy.cfg 2 1
rm -f "$S/etc/haproxy.cfg"
mkdir "$S/etc/haproxy.cfg"
write_zone "$S" 3 2
eventually 5 "gone: a directory in the way is reported" status_has "haproxy.cfg"
check "gone: the directory is left alone" test -d "$S/etc/haproxy.cfg"
rmdir "$S/etc/haproxy.cfg"
eventually 15 "gone: recovered by itself" dest_is "$S" etc/haproxy.cfg 3 2

# --- crash consistency: kill -9 at random moments -------------------------------------------

stop_srvd
rounds=${SRVD_CRASH_ROUNDS:-100}
echo "== crash consistency: $rounds x kill -9"
crash_run "$rounds"
crash_checks "$rounds"

summary
