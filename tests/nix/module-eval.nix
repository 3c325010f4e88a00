# srvd's NixOS module evaluated with nixpkgs' real lib.evalModules, against
# stand-ins for the NixOS options it sets and the few packages it names.
# Needs a nixpkgs lib (run.sh skips this without one) but no store and no
# NixOS: what it shows is that the module's options, types and definitions
# fit together and give the expected unit and config.
{ nixpkgsLib }:
let
  lib = import nixpkgsLib;
  inherit (lib) mkOption types;
  root = ../..;

  # pkgs.formats.toml's type, as nixpkgs defines it.
  tomlValue =
    let
      valueType =
        types.oneOf [
          types.bool
          types.int
          types.float
          types.str
          types.path
          (types.attrsOf valueType)
          (types.listOf valueType)
        ]
        // {
          description = "TOML value";
        };
    in
    valueType;

  # Enough TOML for srvd.toml, standing in for remarshal's json2toml.
  toTOML =
    value:
    let
      isTableList =
        v: builtins.isList v && v != [ ] && lib.all (e: builtins.isAttrs e && !(e ? outPath)) v;
      scalar =
        x:
        if builtins.isString x then
          builtins.toJSON x
        else if builtins.isBool x then
          lib.boolToString x
        else if builtins.isInt x || builtins.isFloat x then
          toString x
        else if builtins.isPath x || (builtins.isAttrs x && x ? outPath) then
          builtins.toJSON "${x}"
        else if builtins.isList x then
          "[ " + lib.concatMapStringsSep ", " scalar x + " ]"
        else if builtins.isAttrs x then
          "{ " + lib.concatStringsSep ", " (lib.mapAttrsToList (k: v: "${k} = ${scalar v}") x) + " }"
        else
          throw "toTOML: cannot write a ${builtins.typeOf x}";
      keyValues =
        set:
        lib.concatStrings (
          lib.mapAttrsToList (k: v: "${k} = ${scalar v}\n") (lib.filterAttrs (_: v: !isTableList v) set)
        );
      tables = lib.concatStrings (
        lib.mapAttrsToList (k: l: lib.concatMapStrings (t: "\n[[${k}]]\n" + keyValues t) l) (
          lib.filterAttrs (_: isTableList) value
        )
      );
    in
    keyValues value + tables;

  package = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };

  pkgs = {
    formats.toml =
      { }:
      {
        type = tomlValue;
        generate = name: value: builtins.toFile name (toTOML value);
      };
    writeText = builtins.toFile;
    coreutils = package "coreutils";
    haproxy = package "haproxy";
    srvd = package "srvd";
  };

  unitOptions = extra: {
    options = {
      description = mkOption {
        type = types.str;
        default = "";
      };
      wantedBy = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      unitConfig = mkOption {
        type = types.attrsOf (types.oneOf [ types.bool types.int types.str ]);
        default = { };
      };
    } // extra;
  };
  list = type: mkOption {
    type = types.listOf type;
    default = [ ];
  };
  # NixOS's unitOption: a value, or a list of values for repeated keys.
  unitValues = mkOption {
    type = types.attrsOf (
      let
        atom = types.oneOf [ types.bool types.int types.str types.path ];
      in
      types.either atom (types.listOf atom)
    );
    default = { };
  };

  nixos = {
    options = {
      assertions = list types.unspecified;
      environment.etc = mkOption {
        type = types.attrsOf (types.submodule { options.source = mkOption { type = types.path; }; });
        default = { };
      };
      environment.systemPackages = list types.package;
      systemd.package = mkOption {
        type = types.package;
        default = package "systemd";
      };
      systemd.tmpfiles.rules = list types.str;
      systemd.services = mkOption {
        type = types.attrsOf (types.submodule (unitOptions {
          documentation = list types.str;
          wants = list types.str;
          after = list types.str;
          path = list (types.either types.package types.str);
          reloadTriggers = list types.unspecified;
          restartTriggers = list types.unspecified;
          serviceConfig = unitValues;
        }));
        default = { };
      };
      systemd.sockets = mkOption {
        type = types.attrsOf (types.submodule (unitOptions {
          listenStreams = list types.str;
        }));
        default = { };
      };
    };
  };

  eval =
    modules:
    (lib.evalModules {
      modules = [
        nixos
        (root + "/nix/module.nix")
        { _module.args.pkgs = pkgs; }
      ] ++ modules;
    }).config;

  failing = config: map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);

  haproxy = {
    services.srvd = {
      enable = true;
      path = [ pkgs.haproxy ];
      settings = {
        nameservers = [ "127.0.0.1:53" ];
        resolve_targets = true;
        interval = "2s";
        wait = {
          min = "500ms";
        };
        template = [
          {
            name = "haproxy";
            src = root + "/examples/haproxy.cfg.tmpl";
            dest = "/etc/haproxy/haproxy.cfg";
            domains = [ "_mysql._tcp.example.com" ];
            check_cmd = "haproxy -c -f {{ src }}";
            reload_cmd = "systemctl reload haproxy.service";
          }
          {
            name = "replicas list";
            text = "{% for s in srvs %}{{ s.host }}\n{% endfor %}";
            dest = "/var/lib/replicas/list.txt";
            domains = [ "_mysql._tcp.example.com" ];
          }
        ];
      };
    };
  };

  good = eval [ haproxy ];

  # Whether each value is accepted, a type error being an answer, not a failure.
  accepted =
    option: values:
    map (
      v:
      let
        value = (eval [ { services.srvd.settings.${option} = v; } ]).services.srvd.settings.${option};
      in
      (builtins.tryEval (builtins.deepSeq value value)).success
    ) values;
in
{
  failing = failing good;
  service = good.systemd.services.srvd;
  path = map (p: p.name) good.systemd.services.srvd.path;
  config = good.environment.etc."srvd/srvd.toml".source;
  tmpfiles = good.systemd.tmpfiles.rules;
  sockets = good.systemd.sockets;
  socket =
    (eval [
      haproxy
      {
        services.srvd.socketActivation = true;
        services.srvd.settings.status_port = 9180;
      }
    ]).systemd.sockets.srvd.listenStreams;
  noTemplate = failing (eval [ { services.srvd.enable = true; } ]);
  # The assertions read the unit as configured, overrides included.
  tmpDest =
    let
      tmp = {
        services.srvd.settings.template = lib.mkForce [
          {
            text = "x";
            dest = "/tmp/x.cfg";
            domains = [ "_a._tcp.example.com" ];
          }
        ];
      };
    in
    map (c: builtins.length (failing c)) [
      (eval [ haproxy tmp ])
      (eval [
        haproxy
        tmp
        { systemd.services.srvd.serviceConfig.PrivateTmp = lib.mkForce false; }
      ])
    ];
  disabled = (eval [ { services.srvd.settings.interval = "2s"; } ]).systemd.services;
  intervals = accepted "interval" [
    "1m30s"
    5
    "5 seconds"
  ];
  waits = accepted "wait" [
    "2s:10s"
    { min = "2s"; }
    "2s:"
    { min = "2 s"; }
  ];
}
