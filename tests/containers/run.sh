#!/usr/bin/env bash
# srvd in a container beside HAProxy in another, with podman, as
# docs/containers.md and packaging/container/ describe it: the two share one
# volume (haproxy.cfg, HAProxy's master CLI, its stats socket) and nothing
# else, no PID namespace and no container runtime socket. Knot DNS serves the
# SRV records on the host's loopback; both containers use the host's network
# (--network=host), so every server stays on loopback.
#
#   1. the images build offline: HAProxy's from a Debian rootfs, srvd's from
#      packaging/container/Containerfile on a stand-in for its base;
#   2. a record change rewrites haproxy.cfg and srvd reloads HAProxy through
#      the master CLI, with a verdict;
#   3. 50 reloads, a client connecting through HAProxy all along: 0 failed
#      connections; the verdict latency goes to docs/results/containers.md;
#   4. a config that passes `haproxy -c` but that HAProxy cannot load (a bind
#      to a port another process holds) is rolled back and reported.
#
# Needs root, podman, runc, mmdebstrap, Knot (tests/all.sh installs them).
# Podman keeps everything (images, containers, the volume) in a storage of
# this run's own, removed at the end; the Debian root filesystems are cached
# in $SRVD_TESTS_CACHE (/var/cache/srvd-tests) like tests/system's.
#
#   flock /tmp/srvd-root-suite.lock bash tests/containers/run.sh
#
# SRVD_E2E_KEEP=1 keeps the logs; SRVD_CONTAINERS_RESULTS=0 leaves
# docs/results/containers.md alone.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/lib.sh
. "$root/tests/lib.sh"
# The end-to-end stack's DNS, backends and client; its HAProxy and srvd run
# on the host, these run in containers (below).
SRVD_E2E_DNS_PORT=${SRVD_E2E_DNS_PORT:-5302}
SRVD_E2E_STATUS_PORT=${SRVD_E2E_STATUS_PORT:-18083}
# shellcheck source=tests/e2e/stack.sh
. "$root/tests/e2e/stack.sh"

RELOADS=50
RATE=50
SRVD_TESTS_CACHE=${SRVD_TESTS_CACHE:-/var/cache/srvd-tests}
HAPROXY_IMAGE=localhost/srvd-tests/haproxy:bookworm
SRVD_IMAGE=localhost/srvd-tests/srvd:test
SRVD_ON_HAPROXY_IMAGE=localhost/srvd-tests/srvd:on-haproxy
# The Containerfile's default base; here a local image of the same name,
# built from a Debian rootfs of glibc and libgcc alone.
BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot
VOLUME=srvd-tests-run
UID_GID=65532:65532
P=""

die() {
  fail "setup: $*"
  summary
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then die "the container tests need root"; fi
for p in podman runc mmdebstrap; do
  command -v "$p" >/dev/null || die "$p is not installed (apt-get install podman runc mmdebstrap)"
done

stack_init
# stack_cleanup reads the script's exit status from $?.
on_exit() {
  local st=$?
  podman_cleanup
  (exit "$st")
  stack_cleanup
}
trap on_exit EXIT

# Podman in a storage of its own: the machine's images and containers are
# neither seen nor touched, and removing the directory removes everything.
P=$(mktemp -d "${TMPDIR:-/tmp}/srvd-podman.XXXXXX")
# Debian's default runtime (crun) cannot run in hybrid cgroup mode, and runc
# cannot apply the default ulimits here: the run's own containers.conf.
cat >"$P/containers.conf" <<'EOF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
cat >"$P/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$P/storage"
runroot = "$P/run"
EOF
export CONTAINERS_CONF="$P/containers.conf" CONTAINERS_STORAGE_CONF="$P/storage.conf"

# Every container of the run is in this cgroup, removed at the end.
CGROUP_PARENT=/srvd-tests-containers-$$
# A one-off container of the run.
prun() { podman run --rm --network=host --cgroup-parent="$CGROUP_PARENT" "$@"; }

podman_cleanup() {
  [ -n "$P" ] && [ -d "$P" ] || return 0
  podman rm -af -t 0 >/dev/null 2>&1
  podman volume rm -af >/dev/null 2>&1
  podman rmi -af >/dev/null 2>&1
  # Whatever podman left mounted under its storage, deepest first.
  local m
  awk -v p="$P/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$P"
  P=""
  local cg
  for cg in /sys/fs/cgroup/*"$CGROUP_PARENT" /sys/fs/cgroup/*/*"$CGROUP_PARENT"; do
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
}


# --- images ---------------------------------------------------------------------

# rootfs_tar NAME PACKAGES: a cached Debian bookworm tarball of PACKAGES and
# their dependencies, unpacked only (no shell, no package manager).
rootfs_tar() {
  local name=$1 packages=$2 tar
  tar=$SRVD_TESTS_CACHE/containers-$name-bookworm.tar
  if [ ! -s "$tar" ]; then
    mkdir -p "$SRVD_TESTS_CACHE" || return 1
    (
      flock 9
      [ -s "$tar" ] && exit 0
      . "$root/tests/system/lib.sh"
      # mmdebstrap writes a tarball when the name ends in .tar.
      mmdebstrap --variant=extract --include="$packages" bookworm "$tar.tmp.tar" "$(sysd_mirror)" \
        >"$T/mmdebstrap-$name.log" 2>&1 || { tail -n 20 "$T/mmdebstrap-$name.log" >&2; rm -rf "$tar.tmp.tar"; exit 1; }
      mv "$tar.tmp.tar" "$tar"
    ) 9>"$SRVD_TESTS_CACHE/.containers.lock" || return 1
  fi
  echo "$tar"
}

echo "== images (built locally, nothing pulled)"
tar=$(rootfs_tar haproxy haproxy) || die "building HAProxy's root filesystem"
podman import -q "$tar" "$HAPROXY_IMAGE" >/dev/null || die "importing HAProxy's image"
tar=$(rootfs_tar glibc libc6,libgcc-s1) || die "building the base's root filesystem"
echo "   $BASE_IMAGE is a stand-in here: a local image of that name holding Debian's libc6 and libgcc-s1 alone"
podman import -q "$tar" "$BASE_IMAGE" >/dev/null || die "importing the stand-in base image"

# The build context as the Containerfile expects it (the repository's root):
# the binary under test and packaging/container.
ctx=$T/context
mkdir -p "$ctx/target/release" "$ctx/packaging"
cp "$SRVD" "$ctx/target/release/srvd"
cp -r "$root/packaging/container" "$ctx/packaging/"
build() { podman build --pull=never -q -f "$ctx/packaging/container/Containerfile" "$@" "$ctx" >>"$T/build.log" 2>&1; }
check "the image builds from packaging/container/Containerfile (podman build --pull=never)" \
  build -t "$SRVD_IMAGE"
podman image exists "$SRVD_IMAGE" || die "no srvd image: $(tail -n 5 "$T/build.log")"
image_bytes=$(podman image inspect --format '{{.Size}}' "$SRVD_IMAGE")
base_bytes=$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")
binary_bytes=$(stat -c %s "$SRVD")
echo "   srvd image: $image_bytes bytes (base $base_bytes, srvd $binary_bytes)"
inspect() { podman image inspect --format "$1" "$SRVD_IMAGE"; }
check "the image runs srvd --config /etc/srvd/srvd.toml as uid:gid $UID_GID" \
  [ "$(inspect '{{.Config.User}} {{.Config.Entrypoint}}')" = "$UID_GID [/usr/bin/srvd --config /etc/srvd/srvd.toml]" ]
quiet() { "$@" >/dev/null 2>>"$T/build.log"; }
check "srvd runs in it and accepts the image's own srvd.toml (srvd check)" \
  quiet prun "$SRVD_IMAGE" check
no_shell() {
  local out
  if out=$(podman run --rm --network=host --cgroup-parent="$CGROUP_PARENT" --entrypoint /bin/sh "$SRVD_IMAGE" -c true 2>&1); then
    return 1
  fi
  grep -q '/bin/sh.*no such file or directory' <<<"$out"
}
check "the image has no shell (/bin/sh: no such file or directory)" no_shell
check "the image builds on HAProxy's image too (--build-arg BASE), for a check_cmd of haproxy -c" \
  build --build-arg BASE="$HAPROXY_IMAGE" -t "$SRVD_ON_HAPROXY_IMAGE"
check "... and haproxy runs in it" \
  quiet prun --entrypoint /usr/sbin/haproxy "$SRVD_ON_HAPROXY_IMAGE" -v

# --- the stack -----------------------------------------------------------------------

# srvd's config directory, mounted read-only at /etc/srvd: the image's
# template with its frontend on loopback, and a srvd.toml for this DNS.
# No haproxy_socket: every change is a reload here.
etc=$T/etc
mkdir -p "$etc"
sed 's/^\( *bind\) :3306$/\1 127.0.0.1:3306/' "$root/packaging/container/haproxy.cfg.tmpl" >"$etc/haproxy.cfg.tmpl"
grep -q 'bind 127.0.0.1:3306' "$etc/haproxy.cfg.tmpl" || die "the image's template has no 'bind :3306' line to move to loopback"
cp "$etc/haproxy.cfg.tmpl" "$etc/good.cfg.tmpl"
cat >"$etc/srvd.toml" <<EOF
src = "/etc/srvd/haproxy.cfg.tmpl"
dest = "/run/haproxy/haproxy.cfg"
domain = "$SRV_NAME"
nameservers = ["$DNS_ADDR:$DNS_PORT"]
dns_timeout = "500ms"
dns_attempts = 2
resolve_targets = true
haproxy_master_socket = "/run/haproxy/master.sock"
interval = "${INTERVAL}s"
timeout = "10s"
status_addr = "127.0.0.1"
status_port = $STATUS_PORT
EOF
chmod 0755 "$etc"
chmod 0644 "$etc"/*

start_dns
start_backends

check "the shared volume is created (a plain named volume, as in compose.yaml)" \
  quiet podman volume create "$VOLUME"
run() {
  podman run --network=host --cgroup-parent="$CGROUP_PARENT" --user "$UID_GID" \
    --log-driver k8s-file -v "$VOLUME:/run/haproxy" "$@"
}
srvd_args=(-v "$etc:/etc/srvd:ro" -e RUST_LOG=srvd::engine=debug)
check "srvd renders the first haproxy.cfg in its container (--oneshot --no-reload)" \
  run --rm "${srvd_args[@]}" "$SRVD_IMAGE" --oneshot --no-reload
VOL=$(podman volume inspect --format '{{.Mountpoint}}' "$VOLUME")
volume_ready() { [ "$(stat -c %u:%g "$VOL")" = "$UID_GID" ] && [ -s "$VOL/haproxy.cfg" ]; }
check "the volume took the ownership of srvd's /run/haproxy ($UID_GID), and holds haproxy.cfg" volume_ready
run -d --name haproxy "$HAPROXY_IMAGE" \
  haproxy -W -S /run/haproxy/master.sock,mode,660 -f /run/haproxy/haproxy.cfg >/dev/null ||
  die "HAProxy's container did not start"
MASTER=$VOL/master.sock
frontend_serves() {
  [ -S "$MASTER" ] && python3 -c 'import socket; socket.create_connection(("127.0.0.1", 3306), timeout=1).close()'
}
eventually 15 "HAProxy serves in its container, its master CLI in the volume" frontend_serves ||
  { podman logs haproxy | tail -n 20; die "HAProxy did not start"; }
check "HAProxy's stats socket is in the volume" test -S "$VOL/admin.sock"
start_client "$RATE"
started=$(now)
run -d --name srvd "${srvd_args[@]}" "$SRVD_IMAGE" >/dev/null || die "srvd's container did not start"

srvd_log() { podman logs srvd 2>&1; }
# As in tests/e2e/run.sh: every attempt in SECONDS answered by NAMEs, at 60%
# of the client's rate at least.
only_answers() {
  local secs=$1 from to
  shift
  from=$(now)
  sleep "$secs"
  to=$(now)
  python3 "$HELPER" window "$CLIENT_LOG" "$from" "$to" --only "$@" \
    --min "$(awk -v s="$secs" -v r="$RATE" 'BEGIN { printf "%d", s * r * 0.6 }')"
}
first_answer() { [ -n "$(python3 "$HELPER" first "$CLIENT_LOG" "$1" "$2")" ]; }
reloads() { python3 "$HELPER" reloads "$MASTER" | cut -d' ' -f1; }
failed_reloads() { python3 "$HELPER" reloads "$MASTER" | cut -d' ' -f2; }
cfg_hash() { sha256sum <"$VOL/haproxy.cfg" | cut -d' ' -f1; }
servers() { awk '$1 == "server" { print $2 }' "$VOL/haproxy.cfg" | paste -sd' ' -; }
confirmed() { srvd_log | grep -c 'confirmed the reload over the master CLI'; }
eventually 15 "srvd is up in its container and reports Ok in /status" status_has 'd["Ok"] and t["ok"]'
mounts() { podman inspect --format '{{range .Mounts}}{{.Destination}} {{end}}' "$1" | xargs -n1 | sort | paste -sd' ' -; }
share_only_the_volume() {
  [ "$(mounts haproxy)" = /run/haproxy ] && [ "$(mounts srvd)" = "/etc/srvd /run/haproxy" ] &&
    [ "$(podman inspect --format '{{.HostConfig.PidMode}}' haproxy srvd | sort -u)" = private ]
}
check "the containers share the volume and nothing else: no runtime socket, own PID namespaces" \
  share_only_the_volume
check "srvd did not reload HAProxy for the haproxy.cfg it rendered before HAProxy started" [ "$(reloads)" = 0 ]

# --- a record change -------------------------------------------------------------------
echo "== a record change: add db-002"
check "nsupdate adds db-002" dns_update "update add $SRV_NAME. $TTL SRV 10 10 $BACKEND_PORT db-002.example.com."
servers_are() { [ "$(servers)" = "$*" ]; }
eventually 15 "srvd rewrites haproxy.cfg in the volume: db-001 and db-002" \
  servers_are "db-001.example.com:$BACKEND_PORT" "db-002.example.com:$BACKEND_PORT"
reloaded_once() { [ "$(reloads)" = 1 ] && [ "$(confirmed)" = 1 ]; }
eventually 15 "srvd reloaded HAProxy through the master CLI and logged its verdict" reloaded_once
check "HAProxy's master counts no failed reload" [ "$(failed_reloads)" = 0 ]
check "db-002 answers through HAProxy" first_answer db-002 "$started"

# --- 50 reloads -------------------------------------------------------------------------
echo "== $RELOADS reloads, each a record change, a client connecting throughout"
base=$(reloads)
ok_reloads=0
for i in $(seq "$RELOADS"); do
  if [ $((i % 2)) = 1 ]; then
    dns_update "update delete $SRV_NAME. SRV 10 10 $BACKEND_PORT db-002.example.com." || break
  else
    dns_update "update add $SRV_NAME. $TTL SRV 10 10 $BACKEND_PORT db-002.example.com." || break
  fi
  want=$((base + i))
  wait_for 20 bash -c "[ \"\$(python3 '$HELPER' reloads '$MASTER' | cut -d' ' -f1)\" -ge $want ]" || break
  ok_reloads=$i
done
check "$RELOADS record changes, $RELOADS reloads over the master CLI (got $ok_reloads)" [ "$ok_reloads" = "$RELOADS" ]
eventually 10 "srvd logged a verdict for each: $((RELOADS + 1)) confirmed reloads" \
  bash -c "[ \"\$(podman logs srvd 2>&1 | grep -c 'confirmed the reload over the master CLI')\" = $((RELOADS + 1)) ]"
check "HAProxy's master counts no failed reload" [ "$(failed_reloads)" = 0 ]
attempts=$(python3 "$HELPER" attempts "$CLIENT_LOG")
elapsed=$(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')
check "the client kept its rate: $attempts connections in ${elapsed}s" \
  [ "$attempts" -ge "$(awk -v s="$elapsed" -v r="$RATE" 'BEGIN { printf "%d", s * r * 0.6 }')" ]
check "0 failed client connections across the $RELOADS reloads" python3 "$HELPER" failures "$CLIENT_LOG"

# The verdict's latency: from "reloading over the master CLI" to "HAProxy
# confirmed the reload", both in srvd's log with their milliseconds.
latencies=$T/latencies
srvd_log | python3 -c '
import sys, datetime
def at(line):
    return datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
start = None
for line in sys.stdin:
    if "reloading over the master CLI" in line:
        start = at(line)
    elif "confirmed the reload over the master CLI" in line and start is not None:
        print("%.0f" % ((at(line) - start) * 1000))
        start = None
' | tail -n "$RELOADS" >"$latencies"
pct() { sort -n "$latencies" | awk -v q="$1" '{ v[NR] = $1 } END { i = int(NR * q + 0.999999); if (i < 1) i = 1; print v[i] }'; }
p50=$(pct 0.50)
p95=$(pct 0.95)
pmax=$(pct 1)
check "the verdict latency of $RELOADS reloads is measured: p50 ${p50:-?} ms, p95 ${p95:-?} ms, max ${pmax:-?} ms" \
  [ "$(wc -l <"$latencies")" = "$RELOADS" ]

# --- a config that passes haproxy -c but fails at reload -------------------------------
echo "== a config that passes haproxy -c and that HAProxy cannot load (a bind to a port another process holds)"
BLOCK_PORT=3399
python3 "$HELPER" backend blocker 127.0.0.1 "$BLOCK_PORT" >>"$T/backends.log" 2>&1 &
track_pid $!
blocker_up() { python3 -c 'import socket; socket.create_connection(("127.0.0.1", '"$BLOCK_PORT"'), timeout=1).close()'; }
eventually 10 "another process holds 127.0.0.1:$BLOCK_PORT" blocker_up
{
  cat "$etc/good.cfg.tmpl"
  printf '\nfrontend taken\n  bind 127.0.0.1:%s\n  default_backend mysql_replicas\n' "$BLOCK_PORT"
} >"$etc/blocked.cfg.tmpl"
chmod 0644 "$etc/blocked.cfg.tmpl"
sed 's#/etc/srvd/haproxy.cfg.tmpl#/etc/srvd/blocked.cfg.tmpl#' "$etc/srvd.toml" >"$etc/blocked.toml"
chmod 0644 "$etc/blocked.toml"
prun -v "$etc:/etc/srvd:ro" --entrypoint /usr/bin/srvd "$SRVD_IMAGE" --config /etc/srvd/blocked.toml render \
  >"$T/blocked.cfg" 2>>"$T/build.log"
check "the new config renders with the extra frontend" grep -q "bind 127.0.0.1:$BLOCK_PORT" "$T/blocked.cfg"
check "it passes haproxy -c (HAProxy's container)" \
  prun -v "$T/blocked.cfg:/tmp/haproxy.cfg:ro" "$HAPROXY_IMAGE" haproxy -c -q -f /tmp/haproxy.cfg
hash=$(cfg_hash)
before=$(reloads)
mark=$(srvd_log | wc -l)
cp "$etc/blocked.cfg.tmpl" "$etc/haproxy.cfg.tmpl"
refused_from=$(now)
podman kill --signal HUP srvd >/dev/null
log_since_mark() { srvd_log | tail -n +"$((mark + 1))"; }
refused_logged() { log_since_mark | grep -q 'reload over the master CLI .*HAProxy refused the new configuration.*rolled back to the previous content'; }
eventually 20 "srvd logs HAProxy's refusal and the rollback" refused_logged
refused_to=$(now)
check "HAProxy's master counts the failed reload" [ "$(failed_reloads)" -ge 1 ]
check "haproxy.cfg in the volume is rolled back to what HAProxy runs" [ "$(cfg_hash)" = "$hash" ]
check "/status reports it: Ok false, the master CLI's verdict in the template's error" \
  status_has 'not d["Ok"] and not t["ok"] and "refused the new configuration" in (t["error"] or "")'
check "HAProxy goes on serving through the old worker" only_answers 2 db-001 db-002
check "srvd's container keeps running" [ "$(podman inspect --format '{{.State.Running}}' srvd)" = true ]
sleep $((INTERVAL * 3))
check "no second reload of the same refused output meanwhile (back-off)" [ "$(reloads)" = "$((before + 1))" ]
cp "$etc/good.cfg.tmpl" "$etc/haproxy.cfg.tmpl"
podman kill --signal HUP srvd >/dev/null
eventually 15 "with the template restored, srvd is Ok again" status_has 'd["Ok"] and t["ok"]'
check "haproxy.cfg is still what HAProxy runs" [ "$(cfg_hash)" = "$hash" ]
stop_client
# HAProxy 2.6 pauses the old worker's listeners while the new process retries
# a bind that fails (haproxy.c, up to about 2 s), then resumes them: during a
# refused reload, connections to the old listeners are refused. Every failure
# of the run must be inside that window, none before or after it.
read -r refused_in refused_out refused_span < <(python3 -c '
import sys
lo, hi = float(sys.argv[2]), float(sys.argv[3])
inside, outside = [], 0
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 3 and f[2] == "fail":
        if lo <= float(f[0]) <= hi:
            inside.append(float(f[0]))
        else:
            outside += 1
span = (max(inside) - min(inside)) if inside else 0
print(len(inside), outside, "%.1f" % span)
' "$CLIENT_LOG" "$refused_from" "$refused_to")
check "no failed client connection outside the refused reload, across the whole run" [ "${refused_out:-1}" = 0 ]
echo "   during the refused reload, HAProxy refused ${refused_in:-?} connections over ${refused_span:-?}s (its old listeners paused while it retried the bind)"

# --- figures ---------------------------------------------------------------------------
if [ "${SRVD_CONTAINERS_RESULTS:-1}" != 0 ] && [ -n "$p50" ] && [ "$SRVD_TESTS_FAILED" = 0 ]; then
  mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000000 }'; }
  cpu=$(lscpu | awk -F: '$1 == "Model name" { gsub(/^ +/, "", $2); print $2; exit }')
  cat >"$root/docs/results/containers.md" <<EOF
# srvd in containers: measured

Written by \`tests/containers/run.sh\` on $(date -u +%Y-%m-%d), srvd $("$SRVD" --version | awk '{print $2}')
at commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown).
Machine: $cpu, $(nproc) cores, Linux $(uname -r), $(podman --version), runc
$(runc --version | awk 'NR == 1 { print $3 }'), $(prun "$HAPROXY_IMAGE" haproxy -v | awk 'NR == 1 { print "HAProxy " $3 }') (Debian 12) in
its container.

HAProxy in one container (\`haproxy -W -S /run/haproxy/master.sock\`), srvd
in another, sharing a named volume; Knot DNS on the host's loopback; each
reload is a record change followed by srvd's \`reload\` over the master CLI.

| Figure | Value |
| --- | --- |
| Reload verdict latency, p50 over $RELOADS reloads | $p50 ms |
| Reload verdict latency, p95 | $p95 ms |
| Reload verdict latency, max | $pmax ms |
| Failed client connections during the $RELOADS reloads ($attempts connections) | 0 |
| Connections refused while HAProxy tried the config it then refused (a bind to a port in use) | $refused_in over ${refused_span} s |
| srvd image (on the glibc-only stand-in base of $(mb "$base_bytes") MB) | $(mb "$image_bytes") MB ($image_bytes bytes) |
| srvd binary | $(mb "$binary_bytes") MB |

The latency runs from srvd's log line "reloading over the master CLI" to
"HAProxy confirmed the reload": the \`reload\` command, HAProxy 2.6's new
worker parsing the config and taking over the listeners, and srvd's \`show
proc\` polls (every 10 ms, then up to every 100 ms) until that worker is
listed.

A reload that HAProxy refuses because a \`bind\` fails is not free: HAProxy
2.6 pauses the old worker's listeners while the new process retries the bind,
and resumes them when it gives up, so connections are refused for that time.
srvd then rolls haproxy.cfg back and does not try the same output again
before its back-off.
EOF
  echo "   figures written to docs/results/containers.md"
fi

if [ "$SRVD_TESTS_FAILED" -ne 0 ]; then
  echo "== srvd's log (last 30 lines)"; srvd_log | tail -n 30
  echo "== HAProxy's log (last 20 lines)"; podman logs haproxy 2>&1 | tail -n 20
  SRVD_E2E_KEEP=1
fi
summary
