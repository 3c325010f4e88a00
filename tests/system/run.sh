#!/usr/bin/env bash
# srvd under a real systemd: the units in packaging/systemd and the seed
# deployment in packaging/examples, checked in a booted Debian 12 container
# (systemd 252, dnsmasq serving the SRV records, HAProxy reading what srvd
# writes), plus socket activation through systemd-socket-activate on the host.
#
#   sudo SRVD_BIN=target/release/srvd bash tests/system/run.sh
#
# Needs root, systemd-container and mmdebstrap; the first run builds a root
# filesystem (see lib.sh) and later runs reuse it. Ends with
# "N passed, N failed" and a non-zero status on any failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/lib.sh
. "$root/tests/lib.sh"
# shellcheck source=tests/system/lib.sh
. "$here/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/srvd-system.XXXXXX")
host_pid=""
cleanup() {
  stop_pid "$host_pid"
  sysd_stop
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [ "$(id -u)" -ne 0 ]; then
  fail "the system tests need root (systemd-nspawn)"
  summary
  exit 1
fi
bin=$(srvd_bin) || { fail "no srvd to test"; summary; exit 1; }
started=$SECONDS

# --- helpers ----------------------------------------------------------------

prop() { sysd_run systemctl show -P "$2" "$1"; }

# GET PATH from srvd's status endpoint inside the container.
get() { sysd_net curl -fsS --max-time 5 "http://127.0.0.1:8080$1"; }

# A command for HAProxy's master CLI (the Debian unit starts it with -S).
# shellcheck disable=SC2016 # expanded inside
hap() { sysd_sh 'echo "$1" | socat -t 2 stdio /run/haproxy-master.sock' "$1"; }
hap_reloads() { hap "show proc" | awk '$2 == "master" { print $3 }'; }
# The servers the running HAProxy worker has in backend mysql_replicas.
hap_servers() { hap "@1 show servers state mysql_replicas" | awk '$2 == "mysql_replicas" { print $4 }' | sort | paste -sd' ' -; }

cfg() { sysd_run cat /etc/haproxy/haproxy.cfg; }
# srvd is active with a main process other than PID.
restarted_since() {
  local now
  now=$(prop srvd.service MainPID) &&
    [ "$now" != 0 ] && [ "$now" != "$1" ] && equals active prop srvd.service ActiveState
}
status_line() { sysd_run systemctl status --no-pager --lines=0 srvd.service; }
rails_usr2() { sysd_run journalctl -q -u rails.service -o cat --grep 'USR2' | wc -l; }

# dnsmasq's records: "_service host port priority address" per line.
dns_records() {
  {
    echo "no-resolv"
    echo "no-hosts"
    echo "listen-address=127.0.0.1"
    echo "bind-interfaces"
    echo "local-ttl=1"
    # Answer for example.com alone: no upstream to refuse AAAA queries for.
    echo "local=/example.com/"
    local srv host port prio addr
    while read -r srv host port prio addr; do
      [ -n "$srv" ] || continue
      echo "srv-host=$srv,$host,$port,$prio,10"
      echo "host-record=$host,$addr"
    done
  } >"$work/dns.conf"
  sysd_put "$work/dns.conf" /etc/dnsmasq.d/srvd-test.conf &&
    sysd_run systemctl restart dnsmasq.service
}

# --- on the host: socket activation through systemd-socket-activate --------

echo "== host: systemd-socket-activate"
if ! command -v systemd-socket-activate >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd >/dev/null 2>&1
fi
port=$(free_port)
other=$(free_port)
mkdir -p "$work/host"
cat >"$work/host/srvd.toml" <<EOF
src = "$root/examples/haproxy.cfg.tmpl"
dest = "$work/host/haproxy.cfg"
domain = "_mysql._tcp.example.com"
zone_file = "$root/examples/example.com.zone"
resolve_targets = true
check_cmd = "haproxy -c -f {{ src }}"
reload_cmd = "true"
# Not where the test connects: the endpoint must come from the passed socket.
status_port = $other
EOF
if command -v systemd-socket-activate >/dev/null; then
  systemd-socket-activate -l "127.0.0.1:$port" -E PATH \
    "$bin" --config "$work/host/srvd.toml" >"$work/host/log" 2>&1 &
  host_pid=$!
  eventually 5 "systemd-socket-activate listens on 127.0.0.1:$port" \
    has . ss -Htln "sport = :$port"
  # /proc/PID/comm keeps 15 characters: "systemd-socket-".
  check "srvd is not started before the first connection" \
    equals systemd-socket- cat "/proc/$host_pid/comm"
  check "the first request starts srvd and GET /status answers JSON" \
    has '"templates"' curl -fsS --max-time 10 "http://127.0.0.1:$port/status"
  check "srvd now runs in place of systemd-socket-activate" \
    equals srvd cat "/proc/$host_pid/comm"
  eventually 10 "/status reports the template rendered and Ok" \
    has '"Ok": true' curl -fsS --max-time 5 "http://127.0.0.1:$port/status"
  check "GET /metrics answers Prometheus text" \
    has '^srvd_records\{domain="_mysql._tcp.example.com"\} 3$' \
    curl -fsS --max-time 5 "http://127.0.0.1:$port/metrics"
  check "srvd serves on the passed socket and does not bind status_port" \
    lacks . ss -Htln "sport = :$other"
  check "the rendered file is in place" \
    has '^  server db-003.example.com:3306 127.0.0.13:3306 weight 256 check backup$' cat "$work/host/haproxy.cfg"
  kill -TERM "$host_pid"
  wait "$host_pid"
  code=$?
  host_pid=""
  check "srvd exits 0 on SIGTERM" [ "$code" -eq 0 ]
else
  fail "systemd-socket-activate is not installed and could not be"
fi

# --- in a booted container --------------------------------------------------

echo "== container: boot"
# shellcheck disable=SC2119 # no extra nspawn arguments
if ! sysd_boot; then
  fail "booting the test container"
  summary
  exit 1
fi
pass "container booted (systemd $(sysd_run systemctl --version | awk 'NR == 1 { print $2 }'))"

# Installed as the Debian package lays it out, plus the seed deployment.
sysd_put "$bin" /usr/bin/srvd 0755
for unit in srvd.service srvd@.service srvd.socket; do
  sysd_put "$root/packaging/systemd/$unit" "/usr/lib/systemd/system/$unit"
done
sysd_put "$root/packaging/examples/haproxy.service.d/srvd.conf" \
  /etc/systemd/system/haproxy.service.d/srvd.conf
sysd_put "$root/packaging/examples/rails.service" /etc/systemd/system/rails.service
sysd_put "$root/examples/haproxy.cfg.tmpl" /etc/srvd/haproxy.cfg.tmpl
# Faster than production so the watchdog and restarts fit in a test run.
cat >"$work/test.conf" <<'EOF'
[Service]
WatchdogSec=2s
RestartSec=500ms
[Unit]
StartLimitIntervalSec=0
EOF
sysd_put "$work/test.conf" /etc/systemd/system/srvd.service.d/test.conf
sysd_run systemctl daemon-reload

dns_records <<'EOF'
_mysql._tcp.example.com db-001.example.com 3306 10 127.0.0.11
_mysql._tcp.example.com db-002.example.com 3306 10 127.0.0.12
_mysql._tcp.example.com db-003.example.com 3306 20 127.0.0.13
EOF
check "dnsmasq serves the SRV records inside the container" \
  has 'db-003' sysd_net dig +short @127.0.0.1 SRV _mysql._tcp.example.com
sysd_run systemctl start rails.service

echo "== container: units"
# --man=no: the man page comes with the package, not with this test.
verify_out=$(sysd_run systemd-analyze verify --man=no srvd.service srvd@seed.service srvd.socket \
  haproxy.service rails.service 2>&1)
verify_rc=$?
check "systemd-analyze verify accepts every unit" [ "$verify_rc" -eq 0 ]
check "systemd-analyze verify has no warning about them" \
  lacks 'srvd|rails|haproxy' printf '%s\n' "$verify_out"
[ -n "$verify_out" ] && printf '%s\n' "$verify_out" | sed 's/^/  verify: /'

echo "== container: no config"
check "systemctl start srvd succeeds without /etc/srvd/srvd.toml" \
  sysd_run systemctl start srvd.service
check "srvd.service is skipped by its condition" equals no prop srvd.service ConditionResult
check "... and is inactive, not failed" equals inactive prop srvd.service ActiveState
sysd_run systemctl start srvd.socket
check "srvd.socket is skipped by its condition too" equals no prop srvd.socket ConditionResult
check "... and does not listen" lacks . sysd_net ss -Htln 'sport = :8080'

echo "== container: a bad config at start"
printf 'src = "/etc/srvd/haproxy.cfg.tmpl"\nbogus = 1\n' >"$work/bad.toml"
sysd_put "$work/bad.toml" /etc/srvd/srvd.toml
check "systemctl start srvd fails on a bad config" fails sysd_run systemctl start srvd.service
check "... with exit status 78" equals 78 prop srvd.service ExecMainStatus
sleep 1.5 # three times RestartSec
check "... and is not restarted (RestartPreventExitStatus=78)" equals 0 prop srvd.service NRestarts
check "... but left failed" equals failed prop srvd.service ActiveState
sysd_run systemctl reset-failed srvd.service

echo "== container: start"
sysd_put "$root/packaging/examples/srvd.toml" /etc/srvd/srvd.toml
reloads_before=$(hap_reloads)
usr2_before=$(rails_usr2)
check "srvd check accepts the seed config" \
  has '^/etc/srvd/srvd.toml: OK \(1 template' sysd_run srvd --config /etc/srvd/srvd.toml check
t0=$SECONDS
check "systemctl start srvd returns once srvd is ready" sysd_run timeout 30 systemctl start srvd.service
srvd_started=$SECONDS
took=$((SECONDS - t0))
# HAProxy is ordered after srvd: its reload must not wait for srvd's READY=1.
check "... at once (${took} s), its first reload not waiting on its own start" [ "$took" -le 3 ]
check "systemctl status srvd shows active (running)" \
  has 'Active: active \(running\)' status_line
check "systemctl status srvd shows the STATUS line" \
  has 'Status: "1 template ok; 3 targets; last change [0-9:]{8}"' status_line
check "haproxy.cfg is rendered from the SRV records" \
  has '^  server db-003.example.com:3306 127.0.0.13:3306 weight 256 check backup$' cfg
# READY=1 comes before the first reloads: the reload follows shortly after.
eventually 10 "HAProxy was reloaded" at_least $((reloads_before + 1)) hap_reloads
check "HAProxy runs the rendered config (its frontend on 127.0.0.1:3306)" \
  has . sysd_net ss -Htln 'src = 127.0.0.1 and sport = :3306'
check "HAProxy's backend has the three replicas" \
  equals "db-001.example.com:3306 db-002.example.com:3306 db-003.example.com:3306" hap_servers
eventually 5 "the HAProxy reload propagated to rails.service (USR2)" \
  at_least $((usr2_before + 1)) rails_usr2

echo "== container: a DNS change"
reloads_before=$(hap_reloads)
dns_records <<'EOF'
_mysql._tcp.example.com db-001.example.com 3306 10 127.0.0.11
_mysql._tcp.example.com db-002.example.com 3306 10 127.0.0.12
_mysql._tcp.example.com db-003.example.com 3306 20 127.0.0.13
_mysql._tcp.example.com db-004.example.com 3306 10 127.0.0.14
EOF
eventually 15 "a new replica in DNS reaches haproxy.cfg" \
  has '^  server db-004.example.com:3306 127.0.0.14:3306 weight 256 check$' cfg
eventually 5 "... and the running HAProxy" \
  equals "db-001.example.com:3306 db-002.example.com:3306 db-003.example.com:3306 db-004.example.com:3306" hap_servers
check "... through one more HAProxy reload" at_least $((reloads_before + 1)) hap_reloads

echo "== container: two instances of one service on one node"
# Two records for one target on two ports (Consul, Nomad): two servers, one
# name each, which HAProxy accepts.
reloads_before=$(hap_reloads)
dns_records <<'EOF'
_mysql._tcp.example.com db-001.example.com 3306 10 127.0.0.11
_mysql._tcp.example.com db-001.example.com 3307 10 127.0.0.11
EOF
eventually 15 "both instances reach haproxy.cfg" \
  has '^  server db-001.example.com:3307 127.0.0.11:3307 weight 256 check$' cfg
eventually 5 "... and the running HAProxy" \
  equals "db-001.example.com:3306 db-001.example.com:3307" hap_servers
check "... through one more HAProxy reload" at_least $((reloads_before + 1)) hap_reloads

echo "== container: a render HAProxy refuses"
# A template that writes a keyword HAProxy does not know: the check fails,
# and its reason (HAProxy's alert) is in the journal.
good=$(sysd_run sha256sum /etc/haproxy/haproxy.cfg)
reloads_before=$(hap_reloads)
sysd_sh 'printf "  bogus_keyword\\n" >>/etc/srvd/haproxy.cfg.tmpl'
check "systemctl reload srvd (the broken template) returns" sysd_run systemctl reload srvd.service
eventually 15 "STATUS shows the failed check" \
  has 'Status: "0 templates ok, 1 failing \(check_cmd ' status_line
check "HAProxy's reason is in the journal" \
  has "bogus_keyword" sysd_run journalctl -q -u srvd.service -o cat
check "haproxy.cfg is left as it was" equals "$good" sysd_run sha256sum /etc/haproxy/haproxy.cfg
check "HAProxy was not reloaded" equals "$reloads_before" hap_reloads
check "srvd keeps running" equals active prop srvd.service ActiveState
sysd_put "$root/examples/haproxy.cfg.tmpl" /etc/srvd/haproxy.cfg.tmpl
check "systemctl reload srvd (the template fixed) returns" sysd_run systemctl reload srvd.service
dns_records <<'EOF'
_mysql._tcp.example.com db-001.example.com 3306 10 127.0.0.11
_mysql._tcp.example.com db-002.example.com 3306 10 127.0.0.12
_mysql._tcp.example.com db-003.example.com 3306 20 127.0.0.13
_mysql._tcp.example.com db-004.example.com 3306 10 127.0.0.14
EOF
eventually 15 "back to good records, srvd recovers" has 'Status: "1 template ok; 4 targets' status_line

echo "== container: srvd and HAProxy started together, as at boot"
# haproxy.service is ordered after srvd.service: HAProxy must start with what
# srvd renders, and srvd's reload must not wait on HAProxy's pending start.
sysd_run systemctl stop srvd.service haproxy.service
sysd_sh 'echo "# stale" >>/etc/haproxy/haproxy.cfg'
t0=$SECONDS
check "systemctl start srvd haproxy succeeds" \
  sysd_run timeout 60 systemctl start srvd.service haproxy.service
took=$((SECONDS - t0))
srvd_started=$SECONDS
check "... at once (${took} s), srvd's reload not waiting for HAProxy's start" [ "$took" -le 3 ]
check "srvd rendered haproxy.cfg before HAProxy started" lacks '# stale' cfg
check "HAProxy started with it" \
  equals "db-001.example.com:3306 db-002.example.com:3306 db-003.example.com:3306 db-004.example.com:3306" hap_servers
check "... and needed no reload" equals 0 hap_reloads
check "srvd's template is ok" has 'Status: "1 template ok; 4 targets' status_line

echo "== container: journal"
check "journalctl -u srvd SRVD_DOMAIN=... returns srvd's lines" \
  has 'wrote /etc/haproxy/haproxy.cfg from _mysql._tcp.example.com' \
  sysd_run journalctl -q -u srvd.service -o cat SRVD_DOMAIN=_mysql._tcp.example.com
check "those lines carry SRVD_TEMPLATE and SRVD_DEST" \
  has '^ *SRVD_DEST=/etc/haproxy/haproxy.cfg$' \
  sysd_run journalctl -q -u srvd.service -o verbose SRVD_TEMPLATE=/etc/haproxy/haproxy.cfg
check "another domain matches none of them" \
  lacks . sysd_run journalctl -q -u srvd.service -o cat SRVD_DOMAIN=_nothing._tcp.example.com

echo "== container: status endpoint"
check "GET /status answers on status_addr:status_port" \
  has '"ready": true' get /status
check "GET /metrics says ready" has '^srvd_ready 1$' get /metrics

echo "== container: systemctl reload srvd"
pid=$(prop srvd.service MainPID)
dns_records <<'EOF'
_mysql._tcp.example.com db-001.example.com 3306 10 127.0.0.11
_mysql._tcp.example.com db-002.example.com 3306 10 127.0.0.12
_mysql-ro._tcp.example.com ro-001.example.com 3306 10 127.0.0.21
_mysql-ro._tcp.example.com ro-002.example.com 3306 10 127.0.0.22
EOF
sysd_sh 'sed -i "s/^domain = .*/domain = \"_mysql-ro._tcp.example.com\"/" /etc/srvd/srvd.toml'
check "systemctl reload srvd (good config) succeeds" sysd_run systemctl reload srvd.service
eventually 10 "the new config is in force (haproxy.cfg follows the new domain)" \
  has '^  server ro-002.example.com:3306 127.0.0.22:3306 weight 256 check$' cfg
check "srvd was reloaded, not restarted" equals "$pid" prop srvd.service MainPID
eventually 5 "the reload is counted" has '^srvd_config_reloads_total\{result="success"\} 1$' get /metrics

printf 'domain = \n' | sysd_sh 'cat >>/etc/srvd/srvd.toml'
check "systemctl reload srvd (bad config) returns" sysd_run systemctl reload srvd.service
eventually 5 "STATUS says the config reload was refused" \
  has 'Status: ".*config reload refused: ' status_line
check "srvd keeps running" equals active prop srvd.service ActiveState
check "... the same process" equals "$pid" prop srvd.service MainPID
check "/status gives the reason" has '"config_error": ".+' get /status
dns_records <<'EOF'
_mysql-ro._tcp.example.com ro-001.example.com 3306 10 127.0.0.21
_mysql-ro._tcp.example.com ro-002.example.com 3306 10 127.0.0.22
_mysql-ro._tcp.example.com ro-003.example.com 3306 10 127.0.0.23
EOF
eventually 15 "... still on the old config (it follows _mysql-ro's records)" \
  has '^  server ro-003.example.com:3306 127.0.0.23:3306 weight 256 check$' cfg

sysd_put "$root/packaging/examples/srvd.toml" /etc/srvd/srvd.toml
dns_records <<'EOF'
_mysql._tcp.example.com db-001.example.com 3306 10 127.0.0.11
_mysql._tcp.example.com db-002.example.com 3306 10 127.0.0.12
_mysql._tcp.example.com db-003.example.com 3306 20 127.0.0.13
EOF
check "systemctl reload srvd with the config fixed" sysd_run systemctl reload srvd.service
eventually 10 "STATUS no longer says refused" lacks 'refused' status_line
eventually 10 "haproxy.cfg is back on _mysql._tcp" \
  has '^  server db-003.example.com:3306 127.0.0.13:3306 weight 256 check backup$' cfg

echo "== container: reload propagation"
usr2_before=$(rails_usr2)
check "systemctl reload haproxy" sysd_run systemctl reload haproxy.service
eventually 5 "rails.service got the reload (ReloadPropagatedFrom=haproxy.service)" \
  at_least $((usr2_before + 1)) rails_usr2
eventually 5 "rails.service is still running" equals active prop rails.service ActiveState

echo "== container: watchdog"
restarts=$(prop srvd.service NRestarts)
check "srvd pings the watchdog (never restarted in $((SECONDS - srvd_started)) s with WatchdogSec=2s)" \
  equals 0 echo "$restarts"
pid=$(prop srvd.service MainPID)
sysd_run systemctl kill -s SIGSTOP srvd.service
eventually 20 "a stopped srvd is killed by the watchdog and restarted" \
  at_least $((restarts + 1)) prop srvd.service NRestarts
check "the journal says why" \
  has 'Watchdog timeout' sysd_run journalctl -q -u srvd.service -o cat --grep Watchdog
eventually 10 "srvd is active again, as a new process" restarted_since "$pid"

echo "== container: socket activation"
sysd_run systemctl stop srvd.service
check "srvd.socket starts" sysd_run systemctl start srvd.socket
check "... and srvd is not running yet" equals inactive prop srvd.service ActiveState
check "the first request activates srvd and GET /status answers" has '"templates"' get /status
check "srvd.service is now active" equals active prop srvd.service ActiveState
check "srvd serves on the socket systemd passed it" \
  has '"srvd",pid=' sysd_net ss -Htlnp 'sport = :8080'
eventually 10 "GET /metrics answers, ready" has '^srvd_ready 1$' get /metrics
check "... which systemd keeps listening on" \
  has '"systemd",pid=' sysd_net ss -Htlnp 'sport = :8080'

echo "== container: srvd@.service"
# An HTTP front end with a regex ACL: check_cmd runs in srvd's sandbox, where
# HAProxy must still be able to JIT-compile it.
cat >"$work/api.cfg.tmpl" <<'EOF'
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s

frontend api
  bind 127.0.0.1:8088
  acl versioned path_reg ^/api/v[0-9]+/
  use_backend replicas if versioned

backend replicas
{%- for s in srvs %}
  server {{ s.host }} {{ s.addrs[0] }}:{{ s.port }}
{%- endfor %}
EOF
sysd_put "$work/api.cfg.tmpl" /etc/srvd/api.cfg.tmpl
cat >"$work/instance.toml" <<'EOF'
src = "/etc/srvd/api.cfg.tmpl"
dest = "/etc/haproxy/instance.cfg"
domain = "_mysql._tcp.example.com"
resolve_targets = true
check_cmd = "/usr/sbin/haproxy -c -f {{ src }}"
nameservers = ["127.0.0.1:53"]
nohttpd = true
EOF
sysd_put "$work/instance.toml" /etc/srvd/instance.toml
check "systemctl start srvd@instance reads /etc/srvd/instance.toml" \
  sysd_run timeout 30 systemctl start srvd@instance.service
check "... and runs beside srvd.service" \
  has 'Status: "1 template ok; 3 targets' sysd_run systemctl status --no-pager --lines=0 srvd@instance.service
check "... with the shipped unit's watchdog (no test drop-in here)" \
  equals 30s prop srvd@instance.service WatchdogUSec
check "... rendering its own dest, regex ACL and all, through haproxy -c" \
  has '^  server db-003.example.com 127.0.0.13:3306$' sysd_run cat /etc/haproxy/instance.cfg
sysd_run systemctl start srvd@missing.service
check "an instance without its config is skipped by its condition" \
  equals no prop srvd@missing.service ConditionResult

echo "== container: systemd-analyze security"
exposure=$(sysd_run systemd-analyze security --no-pager srvd.service 2>/dev/null |
  awk '/Overall exposure level/ { print $(NF-2) }')
echo "  srvd.service exposure: ${exposure:-?}"
check "srvd.service's exposure is OK (at most 4.0)" \
  awk -v e="${exposure:-99}" 'BEGIN { exit !(e + 0 <= 4.0) }'

# What a failure needs to be understood, from the container's journal.
if [ "$SRVD_TESTS_FAILED" -gt 0 ]; then
  echo "== journal of srvd, haproxy and rails (last 80 lines)"
  sysd_run journalctl -q --no-pager -n 80 -u 'srvd*' -u haproxy.service -u rails.service
fi
echo "== ran in $((SECONDS - started)) s"
summary
