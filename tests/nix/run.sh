#!/usr/bin/env bash
# srvd's Nix files: every one parses; the module's own logic (nix/lib.nix,
# which needs no nixpkgs) gives the expected answers; the module's unit says
# what packaging/systemd/srvd.service says; the flake and the NixOS VM test
# are wired as documented. With a nixpkgs lib (SRVD_NIXPKGS_LIB=DIR, DIR being
# nixpkgs' lib/, or <nixpkgs> on NIX_PATH) the module itself is evaluated with
# lib.evalModules too; without one that part is skipped, not counted.
# The VM test itself (nix/tests/vm.nix) needs Nix with nixpkgs and KVM:
#   nix build .#checks.x86_64-linux.vm
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
. "$root/tests/lib.sh"

if ! command -v nix-instantiate >/dev/null 2>&1; then
  fail "nix-instantiate is installed (Debian package nix-bin)"
  summary
  exit 1
fi

# Nix wants a state directory even to evaluate; keep it, and the store that
# the module evaluation writes to, out of the machine's own.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/conf" "$tmp/state" "$tmp/log"
printf 'build-users-group =\n' >"$tmp/conf/nix.conf"
export NIX_CONF_DIR=$tmp/conf NIX_STATE_DIR=$tmp/state NIX_LOG_DIR=$tmp/log
export NIX_PATH=${NIX_PATH:-}

# eval_json EXPR: EXPR as JSON, with `l` bound to nix/lib.nix, `root` to the
# repo and `re` to $re (a regex, passed as it is, with no Nix escaping).
eval_json() {
  nix-instantiate --eval --strict --json \
    --argstr root "$root" --argstr re "${re:-}" \
    -E "{ root, re }: let l = import (root + \"/nix/lib.nix\"); in $1" 2>"$tmp/err"
}

# expect WHAT EXPR JSON: EXPR evaluates to exactly JSON.
expect() {
  local what=$1 expr=$2 want=$3 got
  if ! got=$(eval_json "$expr"); then
    got="evaluation failed: $(grep -v '^warning:' "$tmp/err" | head -n 3)"
  fi
  if [ "$got" = "$want" ]; then
    pass "$what"
  else
    fail "$what"
    printf '     got:  %s\n     want: %s\n' "$got" "$want"
  fi
}

# refused WHAT ARGS REGEX: lib.assertions ARGS fails exactly one assertion,
# and its message matches REGEX.
refused() {
  local what=$1 args=$2 re=$3
  expect "$what" "
    let failing = map (a: a.message) (builtins.filter (a: !a.assertion) (l.assertions ($args)));
    in if builtins.length failing == 1 && builtins.match re (builtins.head failing) != null
       then \"refused\" else failing" '"refused"'
}

echo "== every .nix file parses"
mapfile -t files < <(cd "$root" && find flake.nix nix tests/nix -name '*.nix' | sort)
check "there are Nix files to parse (found ${#files[@]})" [ "${#files[@]}" -ge 8 ]
parses() { nix-instantiate --parse "$root/$1" >/dev/null; }
for f in "${files[@]}"; do
  check "$f parses" parses "$f"
done

echo "== durations, as srvd.toml accepts them"
expect "srvd's durations pass the module's check" \
  'builtins.filter (d: !l.isDuration d) [ "3" "0.5" "500ms" "2s" "1m" "1m30s" "1h" "1.5s" 0 5 0.5 ]' '[]'
expect "what srvd refuses fails the module's check" \
  'builtins.filter l.isDuration [ "" "s" "2x" "-1" "1m30" "ms5" "abc" "5 seconds" "2 s" (-1) ]' '[]'
expect "wait strings: one duration, or MIN:MAX" \
  'map (w: builtins.match l.waitPattern w != null) [ "2s" "2s:10s" "500ms:2s" "1:4" "2s:" ":10s" "2s:10s:20s" "2x" ]' \
  '[true,true,true,true,false,false,false,false]'

echo "== which templates a config describes"
expect "src, dest or domains at the top level make a template" \
  'map (t: t.label) (l.templates { src = "a.tmpl"; dest = "a.cfg"; domain = "_a._tcp.example.com"; })' '["top level"]'
expect "[[template]] tables are named by number and name" \
  'map (t: t.label) (l.templates { check_cmd = "true"; template = [ { name = "haproxy"; dest = "/a"; } { dest = "/b"; } ]; })' \
  '["[[template]] #1 (haproxy)","[[template]] #2"]'
expect "top-level defaults alone make no template" \
  'l.templates { check_cmd = "true"; interval = "2s"; template = [ ]; }' '[]'

echo "== the module refuses impossible settings"
good='{ text = "x"; dest = "/etc/haproxy/haproxy.cfg"; domains = [ "_mysql._tcp.example.com" ]; }'
expect "a template given as text passes" \
  "builtins.filter (a: !a.assertion) (l.assertions { settings.template = [ $good ]; })" '[]'
expect "a template file and a top-level template pass" \
  'builtins.filter (a: !a.assertion) (l.assertions { settings = { src = "/etc/srvd/a.tmpl"; dest = "/etc/a.cfg"; domain = "_a._tcp.example.com"; template = [ { src = ./x; dest = "b.cfg"; domains = [ "_b._tcp.example.com" ]; } ]; }; })' '[]'
refused "no template at all" '{ settings = { interval = "2s"; }; }' \
  'services.srvd.settings: no template\. Add one to services\.srvd\.settings\.template.*'
refused "src and dest the same file" \
  '{ settings.template = [ { src = "/etc/x.cfg"; dest = "/etc/x.cfg"; domains = [ "_a._tcp.example.com" ]; } ]; }' \
  '.*#1: `src` and `dest` are the same file \(/etc/x\.cfg\): srvd would overwrite its own template\.'
refused "a relative src is the dest it names" \
  '{ settings.template = [ { name = "t"; src = "x.cfg"; dest = "/etc/srvd/x.cfg"; domains = [ "_a._tcp.example.com" ]; } ]; }' \
  '.*#1 \(t\): `src` and `dest` are the same file \(/etc/srvd/x\.cfg\).*'
refused "the same file at the top level" \
  '{ settings = { src = "x.cfg"; dest = "x.cfg"; domain = "_a._tcp.example.com"; }; }' \
  'services\.srvd\.settings: top level: `src` and `dest` are the same file.*'
refused "text and src together" \
  '{ settings.template = [ { text = "x"; src = "/etc/a.tmpl"; dest = "/etc/a"; domains = [ "_a._tcp.example.com" ]; } ]; }' \
  '.*#1: set `text` or `src`, not both\.'
refused "neither text nor src" \
  '{ settings.template = [ { dest = "/etc/a"; domains = [ "_a._tcp.example.com" ]; } ]; }' \
  '.*#1: the template is missing: set `text`.*'
refused "no dest" \
  '{ settings.template = [ { text = "x"; domains = [ "_a._tcp.example.com" ]; } ]; }' '.*#1: `dest` .* is not set\.'
refused "dest in the Nix store" \
  '{ settings.template = [ { text = "x"; dest = "/nix/store/abc-haproxy.cfg"; domains = [ "_a._tcp.example.com" ]; } ]; }' \
  '.*`dest` /nix/store/abc-haproxy\.cfg is in the Nix store, which is read-only.*'
refused "dest in a directory the sandbox makes private" \
  '{ settings.template = [ { text = "x"; dest = "/tmp/haproxy.cfg"; domains = [ "_a._tcp.example.com" ]; } ]; }' \
  '.*`dest` /tmp/haproxy\.cfg is in a directory srvd.s sandbox hides \(ProtectHome, PrivateTmp\).*'
refused "dest in a home directory the sandbox hides" \
  '{ settings.template = [ { text = "x"; dest = "/root/haproxy.cfg"; domains = [ "_a._tcp.example.com" ]; } ]; }' \
  '.*`dest` /root/haproxy\.cfg is in a directory srvd.s sandbox hides.*'
expect "dest under /tmp passes once the unit has no PrivateTmp" \
  'builtins.filter (a: !a.assertion) (l.assertions { serviceConfig = l.unit.serviceConfig // { PrivateTmp = false; }; settings.template = [ { text = "x"; dest = "/tmp/haproxy.cfg"; domains = [ "_a._tcp.example.com" ]; } ]; })' '[]'
refused "domain and domains together" \
  '{ settings.template = [ { text = "x"; dest = "/etc/a"; domain = "_a._tcp.example.com"; domains = [ "_b._tcp.example.com" ]; } ]; }' \
  '.*#1: set `domain` or `domains`, not both\.'
refused "no SRV name" '{ settings.template = [ { text = "x"; dest = "/etc/a"; } ]; }' '.*#1: no SRV name.*'
refused "an empty domains list" \
  '{ settings.template = [ { text = "x"; dest = "/etc/a"; domains = [ ]; } ]; }' '.*#1: no SRV name.*'
refused "zone_file and nameservers together" \
  "{ settings = { zone_file = \"/etc/srvd/example.com.zone\"; nameservers = [ \"127.0.0.1:53\" ]; template = [ $good ]; }; }" \
  '.*`zone_file` and `nameservers` cannot both be set.*'
refused "socket activation with the status endpoint off" \
  "{ socketActivation = true; settings = { nohttpd = true; template = [ $good ]; }; }" \
  'services\.srvd: socketActivation hands srvd a socket.*nohttpd = true.*'
expect "the status endpoint off without socket activation passes" \
  "builtins.filter (a: !a.assertion) (l.assertions { settings = { nohttpd = true; template = [ $good ]; }; })" '[]'

echo "== the config as srvd reads it"
expect "text becomes src, a file written to the store; nulls are dropped" \
  'l.toConfig (name: text: "/store/${name}:${text}") { interval = null; wait = { min = "2s"; max = null; }; status_port = 8080; template = [ { name = "haproxy"; text = "TEMPLATE"; src = null; dest = "/etc/haproxy/haproxy.cfg"; domains = [ "_a._tcp.example.com" ]; check_cmd = null; } ]; }' \
  '{"status_port":8080,"template":[{"dest":"/etc/haproxy/haproxy.cfg","domains":["_a._tcp.example.com"],"name":"haproxy","src":"/store/srvd-haproxy.tmpl:TEMPLATE"}],"wait":{"min":"2s"}}'
expect "a template file stays as given" \
  'l.toConfig (name: text: throw "no text here") { template = [ { text = null; src = "/etc/srvd/a.tmpl"; dest = "/a"; domain = "_a._tcp.example.com"; } ]; }' \
  '{"template":[{"dest":"/a","domain":"_a._tcp.example.com","src":"/etc/srvd/a.tmpl"}]}'
expect "top-level text works too, and an empty template list is left out" \
  'l.toConfig (name: text: "/store/${name}") { text = "t"; dest = "/etc/x.cfg"; domain = "_a._tcp.example.com"; template = [ ]; }' \
  '{"dest":"/etc/x.cfg","domain":"_a._tcp.example.com","src":"/store/srvd-x.cfg.tmpl"}'
expect "template file names are valid store names" \
  'map l.templateFileName [ { name = "mysql replicas/1"; } { dest = "/etc/haproxy/haproxy.cfg"; } { } ]' \
  '["srvd-mysql-replicas-1.tmpl","srvd-haproxy.cfg.tmpl","srvd-template.tmpl"]'

echo "== what the unit is given"
expect "srvd may write each dest's directory, relative ones under /etc/srvd, each once" \
  'l.destDirs { src = "a.tmpl"; dest = "out/a.cfg"; domain = "_a._tcp.example.com"; template = [ { dest = "/etc/haproxy/haproxy.cfg"; } { dest = "/etc/haproxy/other.cfg"; } { dest = "/var/lib/x/y"; } ]; }' \
  '["/etc/srvd/out","/etc/haproxy","/var/lib/x"]'
expect "the socket listens where srvd would" \
  'map l.statusListen [ { } { status_port = 9180; } { status_addr = "::1"; status_port = 9180; } { status_addr = "127.0.0.2"; } ]' \
  '["127.0.0.1:8080","127.0.0.1:9180","[::1]:9180","127.0.0.2:8080"]'
expect "only the status endpoint's settings restart srvd" \
  'l.restartSettings { status_port = 9180; interval = "2s"; template = [ ]; }' \
  '{"nohttpd":null,"status_addr":null,"status_port":9180}'
expect "the config is at srvd's default path" 'l.configPath' '"/etc/srvd/srvd.toml"'

echo "== the module agrees with srvd and its packaged units"
port=$(sed -n 's/.*const STATUS_PORT: u16 = \([0-9]*\);.*/\1/p' "$root/src/config/settings.rs")
check "srvd's default status port is found in settings.rs ($port)" [ -n "$port" ]
expect "the module's default status port is srvd's" 'l.defaults.status_port' "${port:-none}"
check "srvd's default status address is 127.0.0.1" \
  grep -q 'status_addr.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))' "$root/src/config/settings.rs"
expect "the module's default status address is 127.0.0.1" 'l.defaults.status_addr' '"127.0.0.1"'
expect "the module's unit says what packaging/systemd/srvd.service says" \
  'import (root + "/tests/nix/unit-drift.nix") { srvdLib = l; unitText = builtins.readFile (root + "/packaging/systemd/srvd.service"); }' '[]'
expect "a changed unit file is noticed" \
  'import (root + "/tests/nix/unit-drift.nix") { srvdLib = l; unitText = builtins.replaceStrings [ "WatchdogSec=30s" "ProtectHome=yes\n" ] [ "WatchdogSec=10s" "" ] (builtins.readFile (root + "/packaging/systemd/srvd.service")); }' \
  '["[Service] ProtectHome: the unit file has [], the module [\"yes\"]","[Service] WatchdogSec: the unit file has [\"10s\"], the module [\"30s\"]"]'
expect "srvd.socket listens where the module's socket does by default" \
  '(import (root + "/tests/nix/unit-file.nix") (builtins.readFile (root + "/packaging/systemd/srvd.socket"))).Socket.ListenStream' \
  "[$(eval_json 'l.statusListen { }')]"
# nix/package.nix replaces these paths in every service unit, and fails to
# build if one is gone.
for unit in "$root"/packaging/systemd/*.service; do
  for line in '^ExecStart=/usr/bin/srvd ' '^ExecReload=/bin/kill '; do
    check "${unit#"$root"/} has the path the package replaces: $line" grep -q "$line" "$unit"
  done
done

echo "== the flake"
stub='let
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  pkgsFor = system: {
    callPackage = fn: args: { package = toString fn; };
    stdenv.hostPlatform.system = system;
    testers.runNixOSTest = test: { nixosTest = test; };
  };
  nixpkgs = { lib = { inherit genAttrs; }; legacyPackages = genAttrs [ "x86_64-linux" "aarch64-linux" ] pkgsFor; };
  flake = import (root + "/flake.nix");
  self = flake.outputs { inherit self nixpkgs; };
in'
expect "nixpkgs comes from nixos-unstable" \
  '(import (root + "/flake.nix")).inputs.nixpkgs.url' '"github:NixOS/nixpkgs/nixos-unstable"'
expect "packages.<system>.default is nix/package.nix" \
  "$stub map (s: builtins.match \".*/nix/package.nix\" self.packages.\${s}.default.package != null) (builtins.attrNames self.packages)" \
  '[true,true]'
expect "overlays.default adds pkgs.srvd from nix/package.nix" \
  "$stub builtins.match \".*/nix/package.nix\" (self.overlays.default (pkgsFor \"x86_64-linux\") { }).srvd.package != null" 'true'
expect "nixosModules.default is nix/module.nix" \
  "$stub builtins.match \".*/nix/module.nix\" (toString self.nixosModules.default) != null" 'true'
expect "checks build the package and run the VM test with the module" \
  "$stub let c = self.checks.x86_64-linux; t = c.vm.nixosTest { pkgs = { }; lib = builtins; }; in [ (builtins.attrNames c) t.name (toString (builtins.head (t.nodes.machine { config = { }; pkgs = { }; }).imports)) ]" \
  "[[\"package\",\"vm\"],\"srvd\",\"$root/nix/module.nix\"]"

echo "== the NixOS VM test"
vmtest='let
  pkgs = builtins.listToAttrs (map (n: { name = n; value = "/nix/store/${n}"; }) [ "coreutils" "curl" "haproxy" "knot-dns" "socat" ]) // { writeText = name: text: "/nix/store/${name}"; };
  test = import (root + "/nix/tests/vm.nix") { module = root + "/nix/module.nix"; } { inherit pkgs; lib = builtins; };
  machine = test.nodes.machine { config = { }; inherit pkgs; };
in'
expect "the VM test's srvd settings pass the module's assertions" \
  "$vmtest builtins.filter (a: !a.assertion) (l.assertions { inherit (machine.services.srvd) settings socketActivation; })" '[]'
expect "the VM test renders the example template and one given as text" \
  "$vmtest map (t: [ (t ? src) (t ? text) t.dest ]) machine.services.srvd.settings.template" \
  '[[true,false,"/etc/haproxy/haproxy.cfg"],[false,true,"/var/lib/srvd-test/replicas.txt"]]'
if eval_json "$vmtest test.testScript" >"$tmp/script.json"; then
  check "the VM test's Python script compiles" python3 -c '
import ast, json, sys
ast.parse(json.load(open(sys.argv[1])))' "$tmp/script.json"
else
  fail "the VM test's Python script evaluates"
fi

echo "== the module under nixpkgs' lib.evalModules"
nixpkgs_lib=${SRVD_NIXPKGS_LIB:-}
if [ -z "$nixpkgs_lib" ]; then
  nixpkgs_lib=$(nix-instantiate --eval -E 'toString <nixpkgs/lib>' 2>/dev/null | tr -d '"') || nixpkgs_lib=
fi
if [ -z "$nixpkgs_lib" ] || [ ! -f "$nixpkgs_lib/default.nix" ]; then
  echo "skip: no nixpkgs lib (set SRVD_NIXPKGS_LIB to nixpkgs' lib/ directory to evaluate the module)"
else
  store=$tmp/root
  module_eval() {
    nix-instantiate --eval --strict --json --read-write-mode --store "$store" \
      --arg nixpkgsLib "$nixpkgs_lib" -A "$1" "$here/module-eval.nix" 2>"$tmp/err"
  }
  module_expect() {
    local what=$1 attr=$2 want=$3 got
    got=$(module_eval "$attr") || got="evaluation failed: $(grep -v '^warning:' "$tmp/err" | head -n 3)"
    if [ "$got" = "$want" ]; then pass "$what"; else fail "$what"; printf '     got:  %s\n     want: %s\n' "$got" "$want"; fi
  }
  module_expect "a good config passes every assertion" failing '[]'
  module_expect "srvd.service is Type=notify" service.serviceConfig.Type '"notify"'
  module_expect "srvd.service has a watchdog" service.serviceConfig.WatchdogSec '"30s"'
  module_expect "srvd.service reloads with SIGHUP" service.serviceConfig.ExecReload \
    '"/nix/store/00000000000000000000000000000000-coreutils/bin/kill -HUP $MAINPID"'
  module_expect "srvd.service runs srvd on the generated config" service.serviceConfig.ExecStart \
    '"/nix/store/00000000000000000000000000000000-srvd/bin/srvd --config /etc/srvd/srvd.toml"'
  module_expect "srvd.service restarts on failure" service.serviceConfig.Restart '"on-failure"'
  module_expect "srvd.service may write each dest's directory" service.serviceConfig.ReadWritePaths \
    '["/etc/haproxy","/var/lib/replicas"]'
  module_expect "the directories exist before srvd starts" tmpfiles '["d /etc/haproxy - - - -","d /var/lib/replicas - - - -"]'
  module_expect "the commands find systemctl and haproxy" path '["systemd","haproxy"]'
  config=$(module_eval config | tr -d '"')
  module_expect "a config change reloads srvd" service.reloadTriggers "[\"$config\"]"
  module_expect "no socket unless asked for" sockets '{}'
  module_expect "the socket listens on status_addr:status_port" socket '["127.0.0.1:9180"]'
  module_expect "no template is refused" noTemplate \
    '["services.srvd.settings: no template. Add one to services.srvd.settings.template, e.g. { text = \"...\"; dest = \"/etc/haproxy/haproxy.cfg\"; domains = [ \"_mysql._tcp.example.com\" ]; }."]'
  module_expect "a dest the sandbox hides is refused, unless the unit is changed" tmpDest '[1,0]'
  module_expect "nothing runs unless enabled" disabled '{}'
  module_expect "a duration srvd cannot read is a type error" intervals '[true,true,false]'
  module_expect "so is a wait srvd cannot read" waits '[true,true,false,false]'
  # The generated srvd.toml, with its store paths mapped to where this store
  # keeps them, must be a config srvd accepts.
  if [ -f "$store$config" ]; then
    sed "s#/nix/store/#$store/nix/store/#g" "$store$config" >"$tmp/srvd.toml"
    check "the config has both templates" [ "$(grep -c '^\[\[template\]\]$' "$tmp/srvd.toml")" -eq 2 ]
    check "the text template is a file in the store" grep -q "^src = \"$store/nix/store/[a-z0-9]*-srvd-replicas-list.tmpl\"$" "$tmp/srvd.toml"
    if bin=$(srvd_bin 2>/dev/null) && [ -x "$bin" ]; then
      check "srvd check accepts the generated config" "$bin" check --config "$tmp/srvd.toml"
    else
      echo "skip: no srvd binary to check the generated config with"
    fi
  else
    fail "the generated config is written ($config)"
  fi
fi

summary
