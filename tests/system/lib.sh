# shellcheck shell=bash
# A real systemd (Debian bookworm, systemd 252) as PID 1 in systemd-nspawn,
# for tests that must see units, the watchdog, socket activation, reload
# propagation and the journal for real. Source it, then:
#
#   sysd_boot [NSPAWN-ARGS...]   build or reuse the cached root filesystem and
#                                boot a fresh container from it
#   sysd_run CMD [ARGS...]       run CMD inside, as root with a clean
#                                environment; returns CMD's status
#   sysd_sh 'SCRIPT' [ARGS...]   run a shell script inside
#   sysd_net CMD [ARGS...]       run a host program in the container's network
#                                namespace (it has only lo)
#   sysd_put FILE PATH [MODE]    copy a host file into the container
#   sysd_stop                    power it off and clean up (safe to call twice)
#
# Set a trap so that the container never outlives the test:
#   trap sysd_stop EXIT
#
# Needs root on a Debian machine with systemd-container and mmdebstrap
# (tests/all.sh installs both). The host's PID 1 need not be systemd.
#
# Settings (environment):
#   SRVD_TESTS_CACHE     where root filesystems are kept (/var/cache/srvd-tests)
#   SRVD_TESTS_MIRROR    Debian mirror; default: the one the host's apt uses
#   SYSD_EXTRA_PACKAGES  packages the caller needs beyond SYSD_PACKAGES; each
#                        package list gets its own cached root filesystem

SRVD_TESTS_CACHE=${SRVD_TESTS_CACHE:-/var/cache/srvd-tests}
SYSD_SUITE=bookworm
# procps gives /bin/kill, which ExecReload= lines use; socat talks to
# HAProxy's master CLI.
SYSD_PACKAGES="systemd systemd-sysv dbus procps haproxy dnsmasq socat"
SYSD_EXTRA_PACKAGES=${SYSD_EXTRA_PACKAGES:-}

SYSD_PID=""     # the systemd-nspawn process
SYSD_LEADER=""  # the container's PID 1, as the host sees it
SYSD_DIR=""     # scratch directory: console log
SYSD_CGROUPS=() # the cgroups made for this container, one per hierarchy

_sysd_say() { printf 'sysd: %s\n' "$*" >&2; }

# The Debian mirror the host's apt already uses, so that the tests fetch from
# wherever this machine is allowed to.
sysd_mirror() {
  if [ -n "${SRVD_TESTS_MIRROR:-}" ]; then
    echo "$SRVD_TESTS_MIRROR"
    return
  fi
  local uri="" f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822 stanzas: the first "deb" stanza whose Suites has the release itself.
    uri=$(awk -v suite="$SYSD_SUITE" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) types = $i
          if ($i ~ /^URIs:/) uris = $i
          if ($i ~ /^Suites:/) suites = $i
        }
        if (types ~ /[: ]deb( |$)/ && (" " suites " ") ~ (" " suite " ")) {
          split(uris, w, /[ \t]+/); print w[2]; exit
        }
      }' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      uri=$(awk -v suite="$SYSD_SUITE" '
        $1 == "deb" {
          i = 2
          if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
          if ($(i + 1) == suite) { print $i; exit }
        }' "$f")
      [ -n "$uri" ] && break
    done
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# Prints the path of a root filesystem holding SYSD_PACKAGES and
# SYSD_EXTRA_PACKAGES, building it the first time (about 20 s). It is only
# ever booted with --volatile=overlay, so it stays as built.
sysd_rootfs() {
  local packages key dir
  local -a words
  read -ra words <<<"$SYSD_PACKAGES $SYSD_EXTRA_PACKAGES"
  packages=$(printf '%s\n' "${words[@]}" | sort -u | paste -sd, -)
  key=$(printf '%s %s' "$SYSD_SUITE" "$packages" | sha256sum | cut -c1-12)
  dir=$SRVD_TESTS_CACHE/rootfs-$SYSD_SUITE-$key
  if [ -f "$dir/.complete" ]; then
    echo "$dir"
    return 0
  fi
  mkdir -p "$SRVD_TESTS_CACHE" || return 1
  (
    # One build at a time; whoever waited finds it done.
    flock 9
    if [ -f "$dir/.complete" ]; then exit 0; fi
    rm -rf "$dir.tmp"
    local mirror
    mirror=$(sysd_mirror)
    _sysd_say "building $dir ($packages) from $mirror"
    if ! mmdebstrap --variant=apt --include="$packages" "$SYSD_SUITE" "$dir.tmp" "$mirror" \
      >"$SRVD_TESTS_CACHE/build.log" 2>&1; then
      tail -n 30 "$SRVD_TESTS_CACHE/build.log" >&2
      rm -rf "$dir.tmp"
      exit 1
    fi
    printf '%s\n' "$packages" >"$dir.tmp/.complete"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  ) 9>"$SRVD_TESTS_CACHE/.lock" || { _sysd_say "building the root filesystem failed"; return 1; }
  echo "$dir"
}

# The cgroup hierarchies to give the container a cgroup of its own in: with
# no systemd on the host, nspawn would otherwise create its payload/ and
# supervisor/ groups at the top and leave them behind.
_sysd_hierarchies() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo /sys/fs/cgroup
    return
  fi
  local h
  for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
    [ -f "$h/cgroup.procs" ] && echo "$h"
  done
}

# sysd_boot [NSPAWN-ARGS...]: boots a container and waits until its systemd
# says running (or degraded). Sets SYSD_LEADER. Extra arguments go to
# systemd-nspawn (--bind-ro=..., --setenv=...).
sysd_boot() {
  if [ -n "$SYSD_PID" ]; then
    _sysd_say "a container is already running"
    return 1
  fi
  local rootfs name h
  rootfs=$(sysd_rootfs) || return 1
  name=srvd-test-$$
  SYSD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/srvd-sysd.XXXXXX") || return 1
  SYSD_CGROUPS=()
  for h in $(_sysd_hierarchies); do
    mkdir -p "$h/srvd-tests/$name" && SYSD_CGROUPS+=("$h/srvd-tests/$name")
  done

  # The launcher moves itself into those cgroups, then, in a private mount
  # namespace with a tmpfs on /run (the host's /run is on disk, where nspawn
  # would leave its state behind), becomes systemd-nspawn. Its PID stays the
  # same through each exec.
  local args=(--quiet --register=no --keep-unit "--machine=$name" -D "$rootfs"
    --volatile=overlay --private-network --console=read-only --boot "$@")
  # shellcheck disable=SC2016 # expanded by the launcher
  SYSD_LAUNCH_CGROUPS="${SYSD_CGROUPS[*]}" setsid bash -c '
    for cg in $SYSD_LAUNCH_CGROUPS; do echo $$ >"$cg/cgroup.procs" || exit 1; done
    unset SYSD_LAUNCH_CGROUPS
    exec unshare --mount --propagation private \
      sh -c "mount -t tmpfs -o mode=0755 tmpfs /run && exec systemd-nspawn \"\$@\"" sh "$@"
  ' launcher "${args[@]}" \
    </dev/null >"$SYSD_DIR/console.log" 2>&1 &
  SYSD_PID=$!

  # The container's PID 1 is the systemd child of nspawn.
  local deadline=$((SECONDS + 30)) child
  SYSD_LEADER=""
  while [ -z "$SYSD_LEADER" ]; do
    if ! kill -0 "$SYSD_PID" 2>/dev/null; then
      _sysd_say "systemd-nspawn exited during boot:"
      tr -d '\r' <"$SYSD_DIR/console.log" | tail -n 30 >&2
      SYSD_PID=""
      sysd_stop
      return 1
    fi
    # shellcheck disable=SC2013 # a list of PIDs
    for child in $(cat /proc/"$SYSD_PID"/task/*/children 2>/dev/null); do
      if [ "$(cat /proc/"$child"/comm 2>/dev/null)" = systemd ]; then
        SYSD_LEADER=$child
      fi
    done
    if [ -z "$SYSD_LEADER" ]; then
      if [ "$SECONDS" -ge "$deadline" ]; then
        _sysd_say "no systemd inside the container after 30 s"
        sysd_stop
        return 1
      fi
      sleep 0.05
    fi
  done

  # Until its private bus socket exists, systemctl answers "offline".
  local state
  deadline=$((SECONDS + 60))
  while :; do
    state=$(timeout 60 nsenter -t "$SYSD_LEADER" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      systemctl is-system-running --wait 2>/dev/null)
    case $state in
      running | degraded) return 0 ;;
      offline | "") if [ "$SECONDS" -lt "$deadline" ]; then sleep 0.05; continue; fi ;;
    esac
    _sysd_say "the container did not finish booting (state: ${state:-none})"
    tr -d '\r' <"$SYSD_DIR/console.log" | tail -n 30 >&2
    sysd_stop
    return 1
  done
}

# sysd_run CMD [ARGS...]: runs CMD in the container, in all its namespaces,
# as root with a clean environment. Stdin, stdout and stderr pass through.
# The process is not in any unit's cgroup: to run something as a unit, use
# `sysd_run systemd-run --wait --pipe ...`.
sysd_run() {
  nsenter -t "$SYSD_LEADER" -a env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 "$@"
}

# sysd_sh 'SCRIPT' [ARGS...]: runs SCRIPT with sh inside; ARGS are $1...
sysd_sh() {
  local script=$1
  shift
  sysd_run sh -c "$script" sh "$@"
}

# sysd_net CMD [ARGS...]: a host program (curl, ss) in the container's
# network namespace only, so that it reaches what listens on the
# container's 127.0.0.1.
sysd_net() {
  nsenter -t "$SYSD_LEADER" -n "$@"
}

# sysd_put FILE PATH [MODE]: copies the host's FILE to PATH in the container
# (parents created, mode 0644 unless given). Written from inside, so that
# PATH resolves in the container's own tree.
sysd_put() {
  local src=$1 dest=$2 mode=${3:-0644}
  # shellcheck disable=SC2016 # expanded inside
  sysd_sh 'mkdir -p "$(dirname "$1")" && cat >"$1" && chmod "$2" "$1"' "$dest" "$mode" <"$src"
}

# sysd_stop: powers the container off the way systemd does it (SIGRTMIN+4 to
# its PID 1), waits for nspawn to exit, kills only the processes started
# here if it does not, then removes this container's cgroups.
sysd_stop() {
  if [ -n "$SYSD_PID" ] && kill -0 "$SYSD_PID" 2>/dev/null; then
    if [ -n "$SYSD_LEADER" ]; then
      kill -s RTMIN+4 "$SYSD_LEADER" 2>/dev/null
    fi
    local deadline=$((SECONDS + 20))
    while kill -0 "$SYSD_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.1
    done
    if kill -0 "$SYSD_PID" 2>/dev/null; then
      _sysd_say "the container did not power off in 20 s; killing it"
      # Killing the container's PID 1 ends everything in its PID namespace.
      [ -n "$SYSD_LEADER" ] && kill -KILL "$SYSD_LEADER" 2>/dev/null
      kill -KILL "$SYSD_PID" 2>/dev/null
    fi
  fi
  if [ -n "$SYSD_PID" ]; then
    wait "$SYSD_PID" 2>/dev/null
  fi
  local cg
  for cg in "${SYSD_CGROUPS[@]}"; do
    [ -d "$cg" ] || continue
    # Deepest first; the shared parent goes too once no other run uses it.
    find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
    rmdir "$(dirname "$cg")" 2>/dev/null
  done
  SYSD_CGROUPS=()
  if [ -n "$SYSD_DIR" ]; then
    rm -rf "$SYSD_DIR"
  fi
  SYSD_PID=""
  SYSD_LEADER=""
  SYSD_DIR=""
  return 0
}
