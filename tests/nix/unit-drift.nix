# Where the NixOS module's unit (nix/lib.nix `unit`) and a packaged unit
# file disagree, one message per key; [ ] when they say the same. ExecStart
# and ExecReload name store paths in the module, ReadWritePaths comes from
# its templates, and ConditionPathExists is moot when the module always
# writes the config: those are the module's own.
{ srvdLib, unitText }:
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    filter
    isBool
    isInt
    isList
    isString
    split
    toJSON
    ;

  file = import ./unit-file.nix unitText;
  m = srvdLib.unit;

  render =
    v:
    if isList v then
      concatMap render v
    else if isBool v then
      [ (if v then "yes" else "no") ]
    else if isInt v then
      [ (toString v) ]
    else
      [ v ];

  words = lines: concatMap (l: filter (w: isString w && w != "") (split "[[:space:]]+" l)) lines;

  # Dependency lists may be split over lines in any way; everything else is
  # compared line by line (SystemCallFilter's `~` covers its own line only).
  wordKeys = [
    "After"
    "Wants"
    "Documentation"
    "WantedBy"
  ];
  norm = key: lines: if builtins.elem key wordKeys then words lines else lines;

  own = [
    "ExecStart"
    "ExecReload"
    "ReadWritePaths"
    "ConditionPathExists"
  ];

  compare =
    section: expected:
    let
      got = removeAttrs (file.${section} or { }) own;
      keys = attrNames (got // expected);
      differs = key: norm key (got.${key} or [ ]) != norm key (render (expected.${key} or [ ]));
    in
    map (
      key:
      "[${section}] ${key}: the unit file has ${toJSON (got.${key} or [ ])}, the module ${toJSON (render (expected.${key} or [ ]))}"
    ) (filter differs keys);
in
compare "Unit" (
  {
    Description = m.description;
    Documentation = m.documentation;
    Wants = m.wants;
    After = m.after;
  }
  // m.unitConfig
)
++ compare "Service" m.serviceConfig
++ compare "Install" { WantedBy = m.wantedBy; }
