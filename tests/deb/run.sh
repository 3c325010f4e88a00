#!/usr/bin/env bash
# The Debian package, end to end: its Build-Depends are installed,
# `dpkg-buildpackage -b -us -uc` builds srvd_<version>_<arch>.deb
# from a scratch copy of the tree, lintian finds no error and no warning, and
# in a booted Debian 12 container (real systemd 252, tests/system/lib.sh) the
# package installs without a failed unit, starts once /etc/srvd/srvd.toml
# exists, restarts on upgrade, keeps its conffile on remove and loses it on
# purge.
#
#   sudo bash tests/deb/run.sh
#   sudo SRVD_DEB=../srvd_0.1.0_amd64.deb bash tests/deb/run.sh   # test a package built before
#
# Needs root, dpkg-dev, debhelper, dh-exec, lintian, systemd-container,
# mmdebstrap and cargo on PATH (tests/all.sh installs the packages). The
# build takes a few minutes. Ends with "N passed, N failed" and a non-zero
# status on any failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
. "$root/tests/lib.sh"
# shellcheck source=../system/lib.sh
. "$root/tests/system/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/srvd-deb.XXXXXX")
cleanup() {
  sysd_stop
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Stops the suite here: what could not be checked is not counted as passed.
give_up() {
  fail "$*"
  summary
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then
  give_up "the package tests need root (dpkg-buildpackage, systemd-nspawn)"
fi
started=$SECONDS

# --- helpers ----------------------------------------------------------------

# Inside the container. The negative checks run their `!` inside too, so that
# a container that is gone fails them instead of passing them.
in_ct() { sysd_run "$@"; }
exists() { sysd_run test -e "$1"; }
absent() { sysd_run sh -c '[ ! -e "$1" ]' sh "$1"; }
not_running() { sysd_run sh -c '! pgrep -x "$1" >/dev/null' sh "$1"; }
prop() { sysd_run systemctl show -P "$2" "$1"; }
# apt-get in the container; its output only when it fails.
apt_get() {
  sysd_run env DEBIAN_FRONTEND=noninteractive apt-get -y -q "$@" >"$work/apt.log" 2>&1 || {
    tail -n 20 "$work/apt.log"
    return 1
  }
}
pkg_status() { sysd_run dpkg-query -W -f '${Status} ${Version}' srvd; }
# dpkg has no trace of srvd left.
pkg_gone() {
  local s
  s=$(sysd_run sh -c 'echo "status:$(dpkg-query -W -f "\${Status}" srvd 2>/dev/null)"') || return 1
  [ "$s" = status: ] || [[ $s == *not-installed ]]
}
no_failed_srvd() {
  local out
  out=$(sysd_run systemctl --failed --plain --no-legend) || return 1
  ! grep -q srvd <<<"$out"
}
# The postinst asked systemd to start srvd.service: its condition was checked.
condition_checked() { [ "$(prop srvd.service ConditionTimestampMonotonic)" -gt 0 ] 2>/dev/null; }
unit_state() { echo "$(prop "$1" ActiveState) $(prop "$1" SubState)"; }
# restarted_since INVOCATION PID: srvd.service runs as a new invocation and process.
restarted_since() {
  [ -n "$1" ] && [ "$(prop srvd.service InvocationID)" != "$1" ] &&
    [ "$(prop srvd.service MainPID)" != "$2" ]
}
# The example template rendered with the records dnsmasq serves.
dest_rendered() {
  local out
  out=$(sysd_run cat /etc/haproxy/haproxy.cfg) &&
    grep -qx '  server db-001.example.com:3306 10.0.0.11:3306 weight 256 check' <<<"$out" &&
    grep -qx '  server db-002.example.com:3306 10.0.0.12:3306 weight 256 check' <<<"$out" &&
    grep -qx '  server db-003.example.com:3306 10.0.0.13:3306 weight 256 check backup' <<<"$out"
}

# --- debian/ ------------------------------------------------------------------

# tests/docs.rs (cargo test, no root) checks debian/changelog's version, the
# keys, defaults and template names of srvd.toml(5), and srvd(8) against --help.
echo "== debian/ and srvd.toml(5)"
version=$(awk -F'"' '/^\[package\]/ { p = 1 } p && /^version *=/ { print $2; exit }' "$root/Cargo.toml")
check "dpkg-checkbuilddeps: the Build-Depends are installed" \
  sh -c 'cd "$1" && dpkg-checkbuilddeps' sh "$root"

man5=$root/packaging/man/srvd.toml.5
check "srvd.toml(5) formats without warnings" \
  sh -c '[ -z "$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 "$1" 2>&1 >/dev/null)" ]' sh "$man5"

overrides=$(find "$root/debian" -name '*lintian-overrides' 2>/dev/null)
if [ -n "$overrides" ]; then
  check "every lintian override follows a comment giving its reason" \
    awk '/^[[:space:]]*$/ { next } /^#/ { c = 1; next } !c { bad = 1; print FILENAME ": " $0 > "/dev/stderr" } { c = 0 } END { exit bad }' $overrides
fi

# --- build ------------------------------------------------------------------

arch=$(dpkg --print-architecture)
if [ -n "${SRVD_DEB:-}" ]; then
  # A package built earlier (while working on the tests): nothing about the
  # build is checked, or counted.
  echo "== testing $SRVD_DEB (SRVD_DEB: not built here)"
  deb=$(realpath "$SRVD_DEB")
else
  echo "== dpkg-buildpackage -b -us -uc (in a scratch copy)"
  mkdir -p "$work/src"
  # The tree as git sees it, committed or not, without build output.
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -xf - -C "$work/src" ||
    give_up "copying the source tree"
  t0=$SECONDS
  # DEB_BUILD_OPTIONS=nocheck: tests/all.sh runs cargo test already.
  if (cd "$work/src" && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1; then
    pass "dpkg-buildpackage -b -us -uc succeeds ($((SECONDS - t0)) s)"
  else
    tail -n 40 "$work/build.log"
    give_up "dpkg-buildpackage -b -us -uc succeeds"
  fi
  deb=$work/srvd_${version}_${arch}.deb
  check "it builds $(basename "$deb")" test -f "$deb"
fi
[ -f "$deb" ] || give_up "no package to test"

contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')
missing=""
for f in /usr/bin/srvd \
  /lib/systemd/system/srvd.service /lib/systemd/system/srvd@.service /lib/systemd/system/srvd.socket \
  /etc/srvd/srvd.toml.example \
  /usr/share/man/man8/srvd.8.gz /usr/share/man/man5/srvd.toml.5.gz \
  /usr/share/bash-completion/completions/srvd /usr/share/zsh/vendor-completions/_srvd \
  /usr/share/fish/vendor_completions.d/srvd.fish \
  /usr/share/doc/srvd/copyright /usr/share/doc/srvd/examples/haproxy.cfg.tmpl \
  /usr/share/doc/srvd/examples/srvd.toml /usr/share/doc/srvd/examples/rails.service \
  /usr/share/doc/srvd/examples/haproxy.service.d/srvd.conf; do
  grep -qx "$f" <<<"$contents" || missing="$missing $f"
done
check "the package holds the binary, units, example config, man pages, completions and examples${missing:+ (missing:$missing)}" \
  test -z "$missing"
check "the package does not ship /etc/srvd/srvd.toml itself" fails grep -qx /etc/srvd/srvd.toml <<<"$contents"
check "its only conffile is /etc/srvd/srvd.toml.example" \
  equals /etc/srvd/srvd.toml.example sh -c 'dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./conffiles' sh "$deb"
check "the shipped units are packaging/systemd's" \
  sh -c 'for u in srvd.service srvd@.service srvd.socket; do
    dpkg-deb --fsys-tarfile "$1" | tar -xOf - "./lib/systemd/system/$u" | cmp -s - "$2/packaging/systemd/$u" || exit 1
  done' sh "$deb" "$root"

echo "== lintian"
lintian --fail-on error,warning "$deb" >"$work/lintian.log" 2>&1
lintian_status=$?
grep -E '^[EW]: ' "$work/lintian.log"
errors=$(grep -c '^E: ' "$work/lintian.log")
warnings=$(grep -c '^W: ' "$work/lintian.log")
check "lintian: 0 errors (got $errors)" test "$errors" -eq 0
check "lintian: 0 warnings (got $warnings)" test "$warnings" -eq 0
check "lintian --fail-on error,warning exits 0 (got $lintian_status)" test "$lintian_status" -eq 0

# --- in a booted Debian 12 ----------------------------------------------------

echo "== install, first start, upgrade, remove, purge under systemd"
# man-db, bash-completion, zsh and fish, to read the pages and load the
# completions as users would.
SYSD_EXTRA_PACKAGES="man-db bash-completion zsh fish"
sysd_boot || give_up "booting the container"
pkg=/srv/$(basename "$deb")
sysd_put "$deb" "$pkg" || give_up "copying the package into the container"

# Install without a config: enabled, started by the postinst, skipped by its
# condition, not failed.
check "apt-get install srvd succeeds" apt_get install "$pkg"
check "dpkg: srvd $version is installed" equals "install ok installed $version" pkg_status
check "srvd.service is enabled" equals enabled in_ct systemctl is-enabled srvd.service
check "its start was tried at install (the condition was evaluated)" condition_checked
check "and skipped: ConditionPathExists=/etc/srvd/srvd.toml is not met" equals no prop srvd.service ConditionResult
check "srvd.service is inactive, not failed" equals "inactive dead" unit_state srvd.service
check "systemctl --failed lists no srvd unit" no_failed_srvd
check "srvd.socket (opt-in) is installed but not enabled" equals disabled in_ct systemctl is-enabled srvd.socket
check "srvd.socket is not failed" equals "inactive dead" unit_state srvd.socket
check "srvd@.service is installed (a template: srvd@NAME reads /etc/srvd/NAME.toml)" \
  has 'ExecStart=/usr/bin/srvd --config /etc/srvd/%i.toml' in_ct systemctl cat srvd@example.service
check "srvd --version says $version" equals "srvd $version" in_ct srvd --version
check "/etc/srvd/srvd.toml.example is a conffile" \
  has '^ /etc/srvd/srvd.toml.example [0-9a-f]{32}$' in_ct dpkg-query -W -f '${Conffiles}\n' srvd
check "no /etc/srvd/srvd.toml was created" absent /etc/srvd/srvd.toml

check "man srvd shows srvd(8), generated from --help" \
  has '--dry-run' in_ct env MANWIDTH=100 man srvd
check "man 5 srvd.toml shows the config keys" \
  has 'resolve_targets' in_ct env MANWIDTH=100 man 5 srvd.toml
check "bash completion loads for srvd" \
  has '-F _srvd .*srvd$' in_ct bash --norc -c '. /usr/share/bash-completion/bash_completion; __load_completion srvd; complete -p srvd'
check "zsh completion loads for srvd" \
  equals _srvd in_ct zsh -fc 'autoload -Uz compinit && compinit -u -D && print -r -- ${_comps[srvd]}'
check "fish completion completes srvd --dry" \
  has '^--dry-run' in_ct fish -c 'complete -C "srvd --dry"'

# Purge straight away: nothing left, /etc/srvd included.
check "apt-get purge srvd (never configured) succeeds" apt_get purge srvd
check "purge removes /etc/srvd/srvd.toml.example and the empty /etc/srvd" absent /etc/srvd
check "purge removes the enablement" absent /etc/systemd/system/multi-user.target.wants/srvd.service
check "dpkg keeps no trace of srvd" pkg_gone

# Install again, then the README's first start.
check "apt-get install srvd again succeeds" apt_get install "$pkg"
check "srvd.service is enabled again" equals enabled in_ct systemctl is-enabled srvd.service

cat >"$work/dns.conf" <<'EOF'
no-resolv
no-hosts
local=/example.com/
listen-address=127.0.0.1
bind-interfaces
local-ttl=1
srv-host=_mysql._tcp.example.com,db-001.example.com,3306,10,10
srv-host=_mysql._tcp.example.com,db-002.example.com,3306,10,10
srv-host=_mysql._tcp.example.com,db-003.example.com,3306,20,10
host-record=db-001.example.com,10.0.0.11
host-record=db-002.example.com,10.0.0.12
host-record=db-003.example.com,10.0.0.13
EOF
serve_records() {
  sysd_put "$work/dns.conf" /etc/dnsmasq.d/srvd-test.conf &&
    sysd_run systemctl restart dnsmasq.service
}
check "dnsmasq serves the SRV records on 127.0.0.1:53" serve_records

check "first start: copy the example config and template into /etc/srvd" \
  in_ct sh -ec 'cp /etc/srvd/srvd.toml.example /etc/srvd/srvd.toml
    cp /usr/share/doc/srvd/examples/haproxy.cfg.tmpl /etc/srvd/haproxy.cfg.tmpl'
check "srvd check accepts it" has '^/etc/srvd/srvd.toml: OK' in_ct srvd check
check "systemctl enable --now srvd succeeds" in_ct systemctl enable --now srvd
eventually 20 "srvd.service is active" equals active in_ct systemctl is-active srvd.service
check "systemctl status srvd: active (running)" \
  has 'Active: active \(running\)' in_ct systemctl status --no-pager --lines=0 srvd.service
check "systemctl status srvd: its STATUS line counts the template and targets" \
  has 'Status: "1 template ok; 3 targets; last change' in_ct systemctl status --no-pager --lines=0 srvd.service
check "the dest file is rendered from the DNS records" dest_rendered
eventually 20 "HAProxy runs on it (after srvd reloaded it)" equals active in_ct systemctl is-active haproxy.service

# Upgrade: the same package with a higher version.
dpkg-deb -R "$deb" "$work/upgrade" &&
  sed -i "s/^Version: .*/Version: $version+1/" "$work/upgrade/DEBIAN/control" &&
  dpkg-deb --root-owner-group -b "$work/upgrade" "$work/srvd_${version}+1_$arch.deb" >/dev/null ||
  fail "making an upgrade package"
before=$(prop srvd.service InvocationID)
pid_before=$(prop srvd.service MainPID)
sysd_put "$work/srvd_${version}+1_$arch.deb" "/srv/srvd_${version}+1_$arch.deb"
check "apt-get install of version $version+1 (an upgrade) succeeds" apt_get install "/srv/srvd_${version}+1_$arch.deb"
check "dpkg: srvd $version+1 is installed" equals "$version+1" in_ct dpkg-query -W -f '${Version}' srvd
check "the upgrade restarted srvd (new invocation, new PID)" restarted_since "$before" "$pid_before"
eventually 20 "srvd.service is active after the upgrade" equals active in_ct systemctl is-active srvd.service
check "the upgrade kept /etc/srvd/srvd.toml" exists /etc/srvd/srvd.toml

# Remove: stopped, binary gone, conffile kept.
check "apt-get remove srvd succeeds" apt_get remove srvd
check "remove stops srvd" not_running srvd
check "remove deletes /usr/bin/srvd" absent /usr/bin/srvd
check "remove keeps the conffile /etc/srvd/srvd.toml.example" exists /etc/srvd/srvd.toml.example
check "dpkg: srvd is removed, its config files kept" equals "deinstall ok config-files $version+1" pkg_status
check "remove keeps /etc/srvd/srvd.toml" exists /etc/srvd/srvd.toml

# Purge: the conffile goes; the admin's own files stay.
check "apt-get purge srvd succeeds" apt_get purge srvd
check "purge removes /etc/srvd/srvd.toml.example" absent /etc/srvd/srvd.toml.example
check "purge keeps the admin's /etc/srvd/srvd.toml (dpkg removes only what it installed)" exists /etc/srvd/srvd.toml
check "purge removes the enablement" absent /etc/systemd/system/multi-user.target.wants/srvd.service
check "dpkg keeps no trace of srvd" pkg_gone

echo "== done in $((SECONDS - started)) s"
summary
