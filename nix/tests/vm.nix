# srvd on NixOS, end to end: Knot serves example.com with the MySQL replicas
# as SRV records, srvd (through the module) renders HAProxy's config from
# them, and HAProxy forwards to the replicas, stand-ins that answer with
# their own name. A dynamic DNS update then moves the pool and HAProxy must
# follow. Run with `nix flake check` or `nix build .#checks.x86_64-linux.vm`.
{ module }:
{ pkgs, lib, ... }:

let
  zone = pkgs.writeText "example.com.zone" ''
    $ORIGIN example.com.
    $TTL 30
    @            IN SOA  ns1 hostmaster 2026112701 3600 600 86400 30
    @            IN NS   ns1
    ns1          IN A    127.0.0.1

    ; priority weight port target
    _mysql._tcp  IN SRV  10 10 3306 db-001
    _mysql._tcp  IN SRV  10 10 3306 db-002
    _mysql._tcp  IN SRV  20 10 3306 db-003

    db-001       IN A    127.0.0.11
    db-002       IN A    127.0.0.12
    db-003       IN A    127.0.0.13
  '';

  # A replica: answers every connection with its name.
  replica = n: {
    name = "replica-db-00${toString n}";
    value = {
      description = "Stand-in for MySQL replica db-00${toString n}";
      wantedBy = [ "multi-user.target" ];
      serviceConfig = {
        ExecStart = "${pkgs.socat}/bin/socat TCP-LISTEN:3306,bind=127.0.0.1${toString n},reuseaddr,fork \"SYSTEM:echo db-00${toString n}\"";
        DynamicUser = true;
      };
    };
  };
in
{
  name = "srvd";

  nodes.machine =
    { config, pkgs, ... }:
    {
      imports = [ module ];

      environment.systemPackages = [
        pkgs.curl
        pkgs.knot-dns
        pkgs.socat
      ];

      services.knot = {
        enable = true;
        settings = {
          server.listen = "127.0.0.1@53";
          acl.local_update = {
            address = "127.0.0.1";
            action = "update";
          };
          # The zone file stays in the store; updates go to the journal.
          template.default = {
            storage = "/var/lib/knot";
            zonefile-sync = -1;
            zonefile-load = "difference";
            journal-content = "changes";
          };
          zone."example.com" = {
            file = "${zone}";
            acl = [ "local_update" ];
          };
        };
      };

      systemd.services = lib.listToAttrs (map replica [ 1 2 3 4 ]) // {
        # At boot, once srvd is ready, that is once it has rendered the
        # config from the current records; skipped if there is none.
        haproxy = {
          description = "HAProxy in front of the MySQL replicas";
          wantedBy = [ "multi-user.target" ];
          after = [ "srvd.service" ];
          unitConfig.ConditionPathExists = "/etc/haproxy/haproxy.cfg";
          serviceConfig = {
            Type = "notify";
            ExecStart = "${pkgs.haproxy}/bin/haproxy -Ws -f /etc/haproxy/haproxy.cfg";
            ExecReload = "${pkgs.coreutils}/bin/kill -USR2 $MAINPID";
            Restart = "on-failure";
          };
        };
        # srvd copes with a DNS server that is not up yet, but the test is
        # quicker when Knot answers srvd's first lookups.
        srvd = {
          wants = [ "knot.service" ];
          after = [ "knot.service" ];
        };
      };

      services.srvd = {
        enable = true;
        path = [ pkgs.haproxy ];
        socketActivation = true;
        settings = {
          nameservers = [ "127.0.0.1:53" ];
          resolve_targets = true;
          interval = "1s";
          wait = {
            min = "200ms";
            max = "1s";
          };
          template = [
            {
              name = "haproxy";
              src = ../../examples/haproxy.cfg.tmpl;
              dest = "/etc/haproxy/haproxy.cfg";
              domains = [ "_mysql._tcp.example.com" ];
              check_cmd = "haproxy -c -f {{ src }}";
              # HAProxy is ordered after srvd: a plain reload job would wait
              # for srvd's own start job. This one does not, and does nothing
              # while HAProxy is not running (its pending start reads the
              # new file).
              reload_cmd = "systemctl --job-mode=ignore-dependencies try-reload-or-restart haproxy.service";
            }
            {
              name = "replicas";
              text = ''
                {% for s in srvs -%}
                {{ s.host }} {{ s.port }} priority {{ s.priority }}
                {% endfor -%}
              '';
              dest = "/var/lib/srvd-test/replicas.txt";
              domains = [ "_mysql._tcp.example.com" ];
            }
          ];
        };
      };
    };

  testScript = ''
    def served():
        """The replicas HAProxy forwards a dozen connections to."""
        return {
            machine.succeed("socat -T2 -u TCP:127.0.0.1:3306 -").strip()
            for _ in range(12)
        }

    machine.wait_for_unit("knot.service")
    machine.wait_for_unit("srvd.socket")
    # Type=notify: srvd is active only once every template has been rendered.
    machine.wait_for_unit("srvd.service")

    with subtest("srvd runs under systemd"):
        status = machine.succeed("systemctl status srvd.service")
        assert "active (running)" in status, status
        machine.succeed("srvd check")

    with subtest("the config is rendered from the SRV records"):
        cfg = machine.succeed("cat /etc/haproxy/haproxy.cfg")
        assert "server db-001.example.com:3306 127.0.0.11:3306 weight 256 check\n" in cfg, cfg
        assert "server db-002.example.com:3306 127.0.0.12:3306 weight 256 check\n" in cfg, cfg
        assert "server db-003.example.com:3306 127.0.0.13:3306 weight 256 check backup" in cfg, cfg
        machine.succeed("grep -qx 'db-001.example.com 3306 priority 10' /var/lib/srvd-test/replicas.txt")

    with subtest("HAProxy serves the active replicas"):
        machine.wait_for_unit("haproxy.service")
        machine.wait_for_open_port(3306, "127.0.0.1")
        machine.wait_until_succeeds("socat -T2 -u TCP:127.0.0.1:3306 - | grep -q '^db-00[12]$'")
        assert served() == {"db-001", "db-002"}

    with subtest("the status endpoint answers on the socket systemd passed"):
        machine.succeed("curl -sf http://127.0.0.1:8080/status | grep -q haproxy")

    with subtest("a record change reaches HAProxy"):
        machine.succeed(
            "knsupdate <<'EOF'\n"
            "server 127.0.0.1 53\n"
            "zone example.com.\n"
            "update delete _mysql._tcp.example.com. SRV 10 10 3306 db-001.example.com.\n"
            "update add db-004.example.com. 30 A 127.0.0.14\n"
            "update add _mysql._tcp.example.com. 30 SRV 10 10 3306 db-004.example.com.\n"
            "send\n"
            "EOF"
        )
        machine.wait_until_succeeds("grep -q 'server db-004.example.com 127.0.0.14:3306 check' /etc/haproxy/haproxy.cfg", timeout=30)
        machine.fail("grep -q db-001 /etc/haproxy/haproxy.cfg")
        machine.wait_until_succeeds("! grep -q db-001 /var/lib/srvd-test/replicas.txt", timeout=30)
        machine.wait_until_succeeds("test \"$(socat -T2 -u TCP:127.0.0.1:3306 -)\" = db-004", timeout=30)
        assert served() == {"db-002", "db-004"}

    with subtest("SIGHUP reloads srvd without stopping it"):
        pid = machine.succeed("systemctl show -p MainPID --value srvd.service").strip()
        machine.succeed("systemctl reload srvd.service")
        machine.wait_until_succeeds("journalctl -u srvd.service | grep -q 'config reloaded'")
        assert machine.succeed("systemctl show -p MainPID --value srvd.service").strip() == pid
        status = machine.succeed("systemctl status srvd.service")
        assert "active (running)" in status, status
  '';
}
