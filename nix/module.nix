{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    literalExpression
    mkEnableOption
    mkIf
    mkOption
    types
    ;

  cfg = config.services.srvd;
  srvdLib = import ./lib.nix;
  format = pkgs.formats.toml { };

  configFile = format.generate "srvd.toml" (srvdLib.toConfig pkgs.writeText cfg.settings);

  duration =
    types.oneOf [
      types.ints.unsigned
      types.float
      (types.strMatching srvdLib.durationPattern)
    ]
    // {
      description = ''duration: seconds, or a string such as "500ms", "2s" or "1m30s"'';
    };

  durationOption =
    what: srvdDefault:
    mkOption {
      type = types.nullOr duration;
      default = null;
      example = "5s";
      description = ''
        ${what} Seconds, or a string such as `"500ms"`, `"2s"` or
        `"1m30s"`. At the top level it applies to every template that does
        not set its own. `null` leaves srvd's default, ${srvdDefault}.
      '';
    };

  # One `[[template]]` table: srvd's keys as they are, plus `text`.
  templateType = types.submodule {
    freeformType = format.type;
    options = {
      text = mkOption {
        type = types.nullOr types.lines;
        default = null;
        example = ''
          backend mysql
            option allbackups
          {%- for s in srvs | haproxy_servers %}
            server {{ s.name }} {{ s.endpoint }} weight {{ s.weight }} check{% if s.backup %} backup{% endif %}
          {%- endfor %}
        '';
        description = ''
          The template itself (Tera). It is written to the Nix store and
          given to srvd as `src`. Set this or `src`.
        '';
      };
      src = mkOption {
        type = types.nullOr (types.either types.path types.str);
        default = null;
        example = literalExpression "./haproxy.cfg.tmpl";
        description = ''
          The template file. A Nix path is copied to the store; a string is
          a file on the machine, relative to /etc/srvd. Set this or `text`.
        '';
      };
      dest = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/etc/haproxy/haproxy.cfg";
        description = ''
          The file srvd writes. The module lets the service write to its
          directory and creates the directory.
        '';
      };
      domains = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        example = [ "_mysql._tcp.example.com" ];
        description = ''
          The SRV names whose records the template gets (`srvs` holds the
          first one's). `domain` takes a single name instead.
        '';
      };
    };
  };
in
{
  options.services.srvd = {
    enable = mkEnableOption "srvd, which renders config files from DNS SRV records, checks them, swaps them in and reloads the service that reads them";

    package = mkOption {
      type = types.package;
      default = pkgs.srvd or (pkgs.callPackage ./package.nix { });
      defaultText = literalExpression "pkgs.srvd or (pkgs.callPackage ./package.nix { })";
      description = "The srvd package to run.";
    };

    path = mkOption {
      type = types.listOf (types.either types.package types.str);
      default = [ ];
      example = literalExpression "[ pkgs.haproxy ]";
      description = ''
        Packages on srvd's `PATH`, for the programs that `check_cmd` and
        `reload_cmd` run. systemd (for `systemctl reload`) is always there.
      '';
    };

    socketActivation = mkEnableOption ''
      a socket unit, srvd.socket, that listens for the status endpoint
      (`settings.status_addr`, `settings.status_port`) and hands the socket to
      srvd, so that the port is open before srvd starts and stays open across
      its restarts
    '';

    settings = mkOption {
      default = { };
      description = ''
        srvd's configuration, written as srvd.toml to /etc/srvd/srvd.toml
        (see srvd's README for every key). Keys not declared here are passed
        through as they are. Each template is a table in `template`; the
        template keys at the top level (`check_cmd`, `reload_cmd`,
        `interval`...) are defaults for all of them.
      '';
      example = literalExpression ''
        {
          nameservers = [ "127.0.0.1:53" ];
          resolve_targets = true;
          wait = { min = "500ms"; max = "2s"; };
          template = [
            {
              src = ./haproxy.cfg.tmpl;
              dest = "/etc/haproxy/haproxy.cfg";
              domains = [ "_mysql._tcp.example.com" ];
              check_cmd = "haproxy -c -f {{ src }}";
              reload_cmd = "systemctl reload haproxy.service";
            }
          ];
        }
      '';
      type = types.submodule {
        freeformType = format.type;
        options = {
          template = mkOption {
            type = types.listOf templateType;
            default = [ ];
            description = ''
              The templates, in the order srvd renders them and runs their
              reload commands.
            '';
          };

          interval = durationOption "How often srvd looks up the records." "1s";
          timeout = durationOption "How long `check_cmd` and `reload_cmd` may run." "10s";
          cooldown = durationOption "The least time between two reloads." "0s";

          wait = mkOption {
            type = types.nullOr (
              types.oneOf [
                duration
                (types.strMatching srvdLib.waitPattern)
                (types.submodule {
                  options = {
                    min = mkOption {
                      type = duration;
                      description = "How long the records must stay unchanged before srvd renders.";
                    };
                    max = mkOption {
                      type = types.nullOr duration;
                      default = null;
                      description = "The longest srvd defers a change; `null` is 4 × `min`.";
                    };
                  };
                })
              ]
            );
            default = null;
            example = literalExpression ''{ min = "2s"; max = "10s"; }'';
            description = ''
              Quiescence, as in consul-template: a change is rendered once the
              records have been stable for `min`, and no later than `max`
              after it was first seen. Also `"2s"` or `"2s:10s"`. `null`
              renders every change at once.
            '';
          };

          status_addr = mkOption {
            type = types.str;
            default = srvdLib.defaults.status_addr;
            description = "The address of the status endpoint (/status and /metrics).";
          };

          status_port = mkOption {
            type = types.port;
            default = srvdLib.defaults.status_port;
            description = "The port of the status endpoint (/status and /metrics).";
          };
        };
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = srvdLib.assertions {
      inherit (cfg) settings socketActivation;
      inherit (builtins) storeDir;
      inherit (config.systemd.services.srvd) serviceConfig;
    };

    environment.etc."srvd/srvd.toml".source = configFile;
    environment.systemPackages = [ cfg.package ];

    # srvd makes a missing dest directory itself, but the unit's file system
    # is read-only outside ReadWritePaths, which must exist.
    systemd.tmpfiles.rules = map (dir: "d ${dir} - - - -") (srvdLib.destDirs cfg.settings);

    systemd.services.srvd = {
      inherit (srvdLib.unit)
        description
        documentation
        wants
        after
        wantedBy
        unitConfig
        ;
      path = [ config.systemd.package ] ++ cfg.path;

      # A changed config is a reload (SIGHUP); only the status endpoint,
      # bound once at start, needs a restart.
      reloadTriggers = [ configFile ];
      restartTriggers = [ (builtins.toJSON (srvdLib.restartSettings cfg.settings)) ];

      serviceConfig = srvdLib.unit.serviceConfig // {
        ExecStart = "${lib.getExe cfg.package} --config ${srvdLib.configPath}";
        # srvd answers SIGHUP with RELOADING=1, re-reads the config (keeping
        # the running one if the new one is bad) and READY=1.
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        ReadWritePaths = srvdLib.destDirs cfg.settings;
      };
    };

    systemd.sockets.srvd = mkIf cfg.socketActivation {
      description = "srvd status endpoint";
      wantedBy = [ "sockets.target" ];
      listenStreams = [ (srvdLib.statusListen cfg.settings) ];
    };
  };
}
