# A systemd unit file as { Section = { Key = [ value ... ]; }; }: one value
# per line, in file order; comments and blank lines dropped.
text:
let
  inherit (builtins)
    elemAt
    filter
    foldl'
    isString
    match
    split
    ;

  lines = filter isString (split "\n" text);

  step =
    acc: line:
    let
      header = match "[[:space:]]*[[]([A-Za-z]+)[]][[:space:]]*" line;
      entry = match "[[:space:]]*([A-Za-z0-9]+)[[:space:]]*=[[:space:]]*(.*[^[:space:]]|)[[:space:]]*" line;
      section = acc.section;
      current = acc.sections.${section} or { };
    in
    if match "[[:space:]]*([#;].*)?" line != null then
      acc
    else if header != null then
      acc // { section = elemAt header 0; }
    else if entry != null then
      acc
      // {
        sections = acc.sections // {
          ${section} = current // {
            ${elemAt entry 0} = (current.${elemAt entry 0} or [ ]) ++ [ (elemAt entry 1) ];
          };
        };
      }
    else
      throw "not a unit file line: ${line}";
in
(foldl' step {
  section = "";
  sections = { };
} lines).sections
