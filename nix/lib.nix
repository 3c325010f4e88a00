# The logic behind srvd's NixOS module that needs no nixpkgs: which templates
# a config describes, what the module refuses, the config as srvd reads it,
# and the service's unit settings. Only builtins here, so that
# tests/nix/run.sh can check all of it with a bare nix-instantiate.
let
  inherit (builtins)
    all
    any
    attrNames
    baseNameOf
    concatMap
    concatStringsSep
    dirOf
    elem
    filter
    foldl'
    genList
    isAttrs
    isFloat
    isInt
    isList
    isString
    length
    listToAttrs
    mapAttrs
    match
    removeAttrs
    stringLength
    substring
    toString
    ;

  number = "[0-9]+(\\.[0-9]+)?";

  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];

  isDerivation = v: isAttrs v && (v.type or null) == "derivation";

  # Store path names allow only these characters.
  storeName =
    s:
    concatStringsSep "" (
      map (c: if match "[A-Za-z0-9+._?=-]" c != null then c else "-") (
        genList (i: substring i 1 s) (stringLength s)
      )
    );
in
rec {
  # srvd's defaults for the status endpoint (src/config/settings.rs), which
  # the module's options and the socket unit share.
  defaults = {
    status_addr = "127.0.0.1";
    status_port = 8080;
  };

  # Where the module puts the config. A fixed path rather than the store path,
  # so that SIGHUP makes srvd read the new config after a switch; relative
  # paths in it are relative to this directory, as srvd anchors them.
  configDir = "/etc/srvd";
  configPath = "${configDir}/srvd.toml";

  # Durations as srvd.toml accepts them (src/config/duration.rs): seconds as
  # a number, or a string such as "500ms", "2s", "1m30s", "1.5s".
  durationPattern = "${number}|(${number}(ms|s|m|h))+";
  isDuration =
    v:
    (isInt v && v >= 0)
    || (isFloat v && v >= 0.0)
    || (isString v && match durationPattern v != null);

  # `wait` as a string: "2s", or "MIN:MAX" such as "2s:10s".
  waitPattern = "(${durationPattern})(:(${durationPattern}))?";

  # The keys that make the top level a template of its own (the Go srvd's
  # single template); the other template keys there are defaults for the
  # [[template]] tables. `text` is the module's own, see `toConfig`.
  topLevelTemplateKeys = [
    "src"
    "text"
    "dest"
    "domain"
    "domains"
  ];

  # The templates the settings describe, in srvd's order, each with a `label`
  # naming it as srvd's own messages do.
  templates =
    settings:
    let
      set = t: k: (t.${k} or null) != null;
      top =
        if any (set settings) topLevelTemplateKeys then
          [
            (
              listToAttrs (
                map (k: {
                  name = k;
                  value = settings.${k} or null;
                }) topLevelTemplateKeys
              )
              // {
                label = "top level";
              }
            )
          ]
        else
          [ ];
      tables = settings.template or [ ];
      label =
        i: t:
        "[[template]] #${toString (i + 1)}" + (if set t "name" then " (${t.name})" else "");
    in
    top
    ++ genList (
      i:
      let
        t = builtins.elemAt tables i;
      in
      {
        src = null;
        text = null;
        dest = null;
        domain = null;
        domains = null;
      }
      // t
      // {
        label = label i t;
      }
    ) (length tables);

  # A path as srvd resolves it: relative paths against the config's directory.
  absolute =
    p:
    let
      s = toString p;
    in
    if substring 0 1 s == "/" then s else "${configDir}/${s}";

  # The directories srvd writes its files into (each template's dest's).
  destDirs =
    settings:
    unique (
      map (t: dirOf (absolute t.dest)) (filter (t: t.dest != null) (templates settings))
    );

  # Settings srvd would refuse, or that cannot work under the module, each as
  # a NixOS assertion whose message says what to change.
  assertions =
    {
      settings,
      socketActivation ? false,
      storeDir ? "/nix/store",
      # The unit's, to know what its sandbox hides.
      serviceConfig ? unit.serviceConfig,
    }:
    let
      ts = templates settings;
      says = t: msg: "services.srvd.settings: ${t.label}: ${msg}";
      under = dir: path: substring 0 (stringLength dir + 1) path == "${dir}/";
      # Directories srvd sees empty or private: nothing it writes there
      # reaches another service.
      hidden =
        (
          if elem (serviceConfig.ProtectHome or false) [ true "yes" "tmpfs" ] then
            [ "/home" "/root" "/run/user" ]
          else
            [ ]
        )
        ++ (if elem (serviceConfig.PrivateTmp or false) [ true "yes" ] then [ "/tmp" "/var/tmp" ] else [ ]);
      perTemplate = t: [
        {
          assertion = t.dest != null;
          message = says t "`dest` (the file srvd writes) is not set.";
        }
        {
          assertion = t.src != null || t.text != null;
          message = says t "the template is missing: set `text` (the template itself) or `src` (a file).";
        }
        {
          assertion = t.src == null || t.text == null;
          message = says t "set `text` or `src`, not both.";
        }
        {
          assertion = t.src == null || t.dest == null || absolute t.src != absolute t.dest;
          message = says t "`src` and `dest` are the same file (${absolute t.dest}): srvd would overwrite its own template.";
        }
        {
          assertion = t.dest == null || !under storeDir (absolute t.dest);
          message = says t "`dest` ${toString t.dest} is in the Nix store, which is read-only: srvd must write it elsewhere, e.g. /etc/haproxy/haproxy.cfg.";
        }
        {
          assertion = t.dest == null || !any (dir: under dir (absolute t.dest)) hidden;
          message = says t "`dest` ${toString t.dest} is in a directory srvd's sandbox hides (ProtectHome, PrivateTmp): no other service would see the file. Write it elsewhere, e.g. under /etc or /var/lib.";
        }
        {
          assertion = t.domain == null || t.domains == null;
          message = says t "set `domain` or `domains`, not both.";
        }
        {
          assertion = t.domain != null || (t.domains != null && t.domains != [ ]);
          message = says t "no SRV name: set `domains`, e.g. [ \"_mysql._tcp.example.com\" ].";
        }
      ];
    in
    [
      {
        assertion = ts != [ ];
        message = "services.srvd.settings: no template. Add one to services.srvd.settings.template, e.g. { text = \"...\"; dest = \"/etc/haproxy/haproxy.cfg\"; domains = [ \"_mysql._tcp.example.com\" ]; }.";
      }
    ]
    ++ concatMap perTemplate ts
    ++ [
      {
        assertion = (settings.zone_file or null) == null || (settings.nameservers or null) == null;
        message = "services.srvd.settings: `zone_file` and `nameservers` cannot both be set: srvd reads the records from one of them.";
      }
      {
        assertion = !(socketActivation && (settings.nohttpd or null) == true);
        message = "services.srvd: socketActivation hands srvd a socket for its status endpoint, which settings.nohttpd = true turns off; drop one of them.";
      }
    ];

  # Nulls dropped, recursively: TOML has none, and a null option means
  # "srvd's default".
  dropNulls =
    v:
    if isDerivation v then
      v
    else if isAttrs v then
      mapAttrs (_: dropNulls) (
        removeAttrs v (filter (k: v.${k} == null) (attrNames v))
      )
    else if isList v then
      map dropNulls (filter (x: x != null) v)
    else
      v;

  # The config as srvd reads it: each template's inline `text` becomes a file
  # made by `writeText name text` (pkgs.writeText in the module), given as
  # `src`; nulls and an empty template list are dropped.
  toConfig =
    writeText: settings:
    let
      withSrc =
        t:
        removeAttrs t [ "text" ]
        // (
          if (t.text or null) != null then
            {
              src = writeText (templateFileName t) t.text;
            }
          else
            { }
        );
      clean = dropNulls settings;
      tables = clean.template or [ ];
    in
    removeAttrs (withSrc clean) [ "template" ]
    // (if tables == [ ] then { } else { template = map withSrc tables; });

  # The store name of a template given as text: after its name, else after dest.
  templateFileName =
    t:
    "srvd-"
    + storeName (
      if (t.name or null) != null then
        t.name
      else if (t.dest or null) != null then
        baseNameOf (toString t.dest)
      else
        "template"
    )
    + ".tmpl";

  # The unit as packaging/systemd/srvd.service has it, in NixOS's terms
  # (tests/nix/run.sh keeps the two equal). The module adds ExecStart and
  # ExecReload with store paths, and ReadWritePaths from the templates.
  unit = {
    description = "Render config files from DNS SRV records (srvd)";
    documentation = [ "man:srvd(8)" ];
    wants = [ "network-online.target" ];
    # srvd.socket, when enabled, must listen before srvd starts, or srvd
    # would bind the status port itself.
    # After the user and group database too (systemd.special(7), not
    # pulled in): `owner` and `group` resolve at the first write.
    after = [
      "network-online.target"
      "nss-lookup.target"
      "nss-user-lookup.target"
      "srvd.socket"
    ];
    wantedBy = [ "multi-user.target" ];
    # A crash loop (a start every RestartSec) gives up after ten starts, as a
    # bug to look at; the last good files stay. A srvd that cannot become
    # ready (DNS unreachable at boot) ends each try at the start timeout,
    # never reaches ten in ten minutes, and keeps trying.
    unitConfig = {
      StartLimitIntervalSec = "10min";
      StartLimitBurst = 10;
    };
    serviceConfig = {
      Type = "notify";
      Restart = "on-failure";
      RestartSec = "5s";
      # 78 (EX_CONFIG): the config is wrong; restarting will not fix it.
      RestartPreventExitStatus = 78;
      # srvd pings from its poll loop, only while a cycle stays within its
      # time budget: a wedged loop gets SIGABRT and a restart.
      WatchdogSec = "30s";
      TimeoutStopSec = "15s";

      # Root, to write files other services own and to ask systemd to reload
      # them; the sandbox keeps that and little else.
      ProtectSystem = "strict";
      ProtectHome = true;
      PrivateTmp = true;
      PrivateMounts = true;
      PrivateDevices = true;
      ProtectKernelTunables = true;
      ProtectKernelModules = true;
      ProtectKernelLogs = true;
      ProtectControlGroups = true;
      ProtectClock = true;
      ProtectHostname = true;
      ProtectProc = "invisible";
      NoNewPrivileges = true;
      # chown/chmod of dest, and writing into other users' directories.
      CapabilityBoundingSet = "CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_NET_BIND_SERVICE";
      RestrictAddressFamilies = "AF_UNIX AF_INET AF_INET6";
      RestrictNamespaces = true;
      RestrictRealtime = true;
      RestrictSUIDSGID = true;
      LockPersonality = true;
      # No MemoryDenyWriteExecute: check_cmd runs in this sandbox too, and
      # HAProxy JIT-compiles a config's regexes.
      RemoveIPC = true;
      SystemCallArchitectures = "native";
      SystemCallFilter = [
        "@system-service"
        "~@privileged @resources"
        # Back from @privileged: setting dest's owner and group.
        "@chown"
      ];
      SystemCallErrorNumber = "EPERM";
      UMask = "0022";
    };
  };

  # Where the status endpoint listens, as a systemd ListenStream= value.
  statusListen =
    settings:
    let
      addr = if (settings.status_addr or null) != null then settings.status_addr else defaults.status_addr;
      port = toString (
        if (settings.status_port or null) != null then settings.status_port else defaults.status_port
      );
    in
    if match ".*:.*" addr != null then "[${addr}]:${port}" else "${addr}:${port}";

  # The settings a restart (not a reload) must follow: srvd binds the status
  # endpoint once, at start.
  restartSettings = settings: {
    status_addr = settings.status_addr or null;
    status_port = settings.status_port or null;
    nohttpd = settings.nohttpd or null;
  };
}
