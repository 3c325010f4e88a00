//! `srvd migrate-template`: converts a Go srvd template (Go text/template)
//! into the Tera template srvd renders to the same bytes.
//!
//! The Go srvd (github.com/winebarrel/srvd) ran its templates through
//! gliderlabs/sigil 0.4, which is Go's text/template plus string helpers,
//! predefined `$srvs`/`$domains` variables and the `\}}` line join; records
//! were miekg/dns `SRV` structs (`.Target` keeps the trailing dot, as srvd's
//! `target` does). The first release gave templates `.srvs`, later ones
//! `.domains` and `fetchsrvs`.
//!
//! The conversion is lexical: each Go action becomes Tera tags at the same
//! place, and the text between actions is kept byte for byte. Neither Go nor
//! Tera removes the newline after a tag, so the blank lines come out as the
//! Go srvd wrote them; Go's `{{-`/`-}}` become Tera's `{%-`/`-%}` where both
//! trim the same characters, and are applied to the text here where they
//! would not (Go trims only space, tab, CR and LF; Tera any Unicode space).
//!
//! What has no Tera equivalent (reading files, running commands, named
//! templates, printf widths...) is refused with the line and column of the
//! action and what to write instead; what converts with a visible
//! difference (a shuffle's order, the order of a map) comes with a note.

use std::collections::HashSet;
use std::fmt;

mod emit;
mod funcs;
mod lex;
mod parse;
mod value;

use emit::Emitter;
use lex::{apply_trims, lex};
use parse::{Parser, collect_vars};

/// A converted template.
#[derive(Debug)]
pub struct Converted {
    /// The Tera template.
    pub text: String,
    /// Where srvd's output may differ from the Go srvd's, in source order.
    pub notes: Vec<Problem>,
}

/// A place in the Go template and what is wrong or different there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the action in the Go template.
    pub line: usize,
    /// 1-based column (in characters) of the action's `{{`.
    pub column: usize,
    /// The action as written (its first line, shortened).
    pub action: String,
    /// Why, and what to write instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: `{}`: {}",
            self.line, self.column, self.action, self.message
        )
    }
}

/// Converts the text of a Go srvd template. Errors: every action that
/// cannot be converted, in source order (a structural error such as an
/// unclosed action or a missing `{{ end }}` stops at the first).
pub fn convert(src: &str) -> Result<Converted, Vec<Problem>> {
    let pieces = lex(src).map_err(|p| vec![p])?;
    let pieces = apply_trims(pieces);
    let mut parser = Parser {
        src,
        pieces,
        next: 0,
    };
    let (nodes, end) = parser.list().map_err(|p| vec![p])?;
    if let Some(stray) = end {
        return Err(vec![parser.problem(
            stray.at,
            format!(
                "`{{{{ {} }}}}` without an open if, range or with",
                stray.word
            ),
        )]);
    }
    let go_vars = collect_vars(&nodes);
    // A Go variable named like a context value (`$srvs := ...`) keeps its
    // name unless the template also reads that context value; then it is
    // renamed, which needs a second pass.
    let mut avoid = HashSet::new();
    loop {
        let mut e = Emitter::new(src, &go_vars, &avoid);
        e.nodes(&nodes);
        let clash: HashSet<String> = e
            .context_refs
            .intersection(&e.user_names)
            .cloned()
            .collect();
        if !clash.is_empty() && !clash.is_subset(&avoid) {
            avoid.extend(clash);
            continue;
        }
        return if e.problems.is_empty() {
            Ok(Converted {
                text: e.out,
                notes: e.notes,
            })
        } else {
            Err(e.problems)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Srv;
    use crate::render::Renderer;

    fn srv(host: &str, port: u16, priority: u16, weight: u16) -> Srv {
        Srv::new(host, port, priority, weight, 30)
    }

    /// The Go srvd's seed records: db-001 and db-002, `10 10 3306`.
    fn seed() -> Vec<Srv> {
        vec![
            srv("db-001.example.com", 3306, 10, 10),
            srv("db-002.example.com", 3306, 10, 10),
        ]
    }

    fn tera(go: &str) -> String {
        match convert(go) {
            Ok(c) => c.text,
            Err(p) => panic!("{go:?} did not convert: {p:?}"),
        }
    }

    /// What the converted template renders with these records for
    /// `_mysql._tcp.example.com` (and none for `_redis._tcp.example.com`).
    fn render_with(go: &str, records: &[Srv]) -> String {
        let text = tera(go);
        let r = Renderer::from_sources(vec![("t".into(), text.clone())])
            .unwrap_or_else(|e| panic!("{text:?} does not compile: {e:?}"));
        r.render(
            0,
            &[
                ("_mysql._tcp.example.com", records),
                ("_redis._tcp.example.com", &[]),
            ],
            "app-1",
        )
        .unwrap_or_else(|e| panic!("{text:?} does not render: {e}"))
    }

    fn render(go: &str) -> String {
        render_with(go, &seed())
    }

    fn refusal(go: &str) -> Problem {
        match convert(go) {
            Ok(c) => panic!("{go:?} converted to {:?}", c.text),
            Err(mut p) => p.remove(0),
        }
    }

    #[test]
    fn the_first_release_seed_converts_and_renders_the_go_bytes() {
        let go = include_str!("../../tests/fixtures/go-srvd/haproxy.cfg.tmpl.go-early");
        assert_eq!(
            tera(go),
            "backend nodes\n  mode tcp\n  # see https://godoc.org/github.com/miekg/dns#SRV\n  \
             {% for s in srvs %}\n  server {{ s.target }} {{ s.target }}:{{ s.port }} check\n  \
             {% endfor %}\n"
        );
        assert_eq!(
            render(go),
            include_str!("../../tests/fixtures/go-srvd/expected.go-early.cfg")
        );
    }

    #[test]
    fn the_0_3_seed_converts_and_renders_the_go_bytes() {
        let go = include_str!("../../tests/fixtures/go-srvd/haproxy.cfg.tmpl.go-0.3");
        assert!(
            tera(go).contains("  {% set srvs = domains[\"_mysql._tcp.example.com\"] %}\n"),
            "{}",
            tera(go)
        );
        assert_eq!(
            render(go),
            include_str!("../../tests/fixtures/go-srvd/expected.go-0.3.cfg")
        );
    }

    #[test]
    fn trim_markers_trim_what_go_trims() {
        let go = "a \n {{- range .srvs -}} \n [{{ .Port }}] \t\n {{- end }}\nz";
        assert_eq!(
            tera(go),
            "a \n {%- for s in srvs -%} \n [{{ s.port }}] \t\n {%- endfor %}\nz"
        );
        assert_eq!(render(go), "a[3306][3306]\nz");
        // Go trims only space, tab, CR and LF: a no-break space stays, so
        // the trim is done here instead of by Tera, which would remove it.
        let go = "a\u{a0} {{- \"x\" -}} \u{a0}b";
        assert_eq!(tera(go), "a\u{a0}{{ \"x\" }}\u{a0}b");
        assert_eq!(render(go), "a\u{a0}x\u{a0}b");
    }

    #[test]
    fn blank_lines_after_plain_actions_stay() {
        assert_eq!(
            render("{{ $x := 1 }}\n{{ range .srvs }}\n{{ end }}\n"),
            "\n\n\n\n"
        );
    }

    #[test]
    fn fields_map_to_srvd_record_fields() {
        let recs = [srv("db-001.example.com", 3306, 10, 5)];
        assert_eq!(
            render_with(
                "{{ range .srvs }}{{ .Target }} {{ .Port }} {{ .Priority }} {{ .Weight }} {{ .Hdr.Ttl }}{{ end }}",
                &recs
            ),
            "db-001.example.com. 3306 10 5 30"
        );
    }

    #[test]
    fn variables_declare_assign_and_shadow_as_in_go() {
        assert_eq!(
            render("{{ $p := 0 }}{{ range .srvs }}{{ $p = .Port }}{{ end }}{{ $p }}"),
            "3306"
        );
        assert!(
            tera("{{ $p := 0 }}{{ range .srvs }}{{ $p = .Port }}{{ end }}")
                .contains("set_global p")
        );
        assert_eq!(
            render("{{ $x := \"a\" }}{{ if true }}{{ $x := \"b\" }}{{ $x }}{{ end }}{{ $x }}"),
            "ba"
        );
        assert_eq!(
            render("{{ range $i, $s := .srvs }}{{ $i }}={{ $s.Target }} {{ end }}"),
            "0=db-001.example.com. 1=db-002.example.com. "
        );
        assert_eq!(
            render("{{ range $s := .srvs }}{{ range $.srvs }}{{ $s.Port }}{{ end }}{{ end }}"),
            "3306330633063306"
        );
        // sigil predefines a variable for each value of the data.
        assert_eq!(
            render(
                "{{ range $srvs }}{{ .Port }}{{ end }} {{ len (index $domains \"_mysql._tcp.example.com\") }}"
            ),
            "33063306 2"
        );
    }

    #[test]
    fn a_variable_named_like_a_context_value_is_renamed_only_when_both_are_used() {
        let go = "{{ $srvs := fetchsrvs .domains \"_redis._tcp.example.com\" }}{{ len $srvs }} {{ len .srvs }}";
        assert!(tera(go).contains("set srvs_ = "), "{}", tera(go));
        assert_eq!(render(go), "0 2");
    }

    #[test]
    fn if_else_if_else_and_comparisons() {
        let go = "{{ range .srvs }}{{ if eq .Port 1 2 }}a{{ else if and (gt .Weight 5) (not (lt .Priority 10)) }}b{{ else }}c{{ end }}{{ end }}";
        assert!(tera(go).contains("{% elif "), "{}", tera(go));
        assert_eq!(render(go), "bb");
        assert_eq!(
            render(
                "{{ if or (ne (len .srvs) 2) false }}x{{ else }}y{{ end }}{{ if $x := len .srvs }}{{ $x }}{{ end }}"
            ),
            "y2"
        );
    }

    #[test]
    fn with_and_its_else() {
        let go = "{{ with index .srvs 0 }}{{ .Target }}{{ else }}none{{ end }}|{{ with $d := index .domains \"_redis._tcp.example.com\" }}{{ len $d }}{{ else }}empty{{ end }}";
        assert_eq!(render(go), "db-001.example.com.|empty");
    }

    #[test]
    fn range_else_break_and_continue() {
        assert_eq!(
            render(
                "{{ range fetchsrvs .domains \"_redis._tcp.example.com\" }}x{{ else }}none{{ end }}"
            ),
            "none"
        );
        assert_eq!(
            render(
                "{{ range $i, $s := .srvs }}{{ if eq $i 0 }}{{ continue }}{{ end }}{{ $s.Target }}{{ break }}{{ end }}"
            ),
            "db-002.example.com."
        );
    }

    #[test]
    fn comments_become_tera_comments() {
        let go = "a{{/* one */}}b {{- /* two #} */ -}} c\n";
        assert_eq!(tera(go), "a{# one #}b {#- two # } -#} c\n");
        assert_eq!(render(go), "abc\n");
    }

    #[test]
    fn the_go_srvd_helpers_convert() {
        let go = "{{ range rotatesrvs .srvs 1 }}{{ .Target }} {{ end }}|{{ len (shufflesrvs 42 .srvs) }}|\
                  {{ ipv4toi \"10.0.0.1\" }} {{ hextoi \"ff\" }} {{ hostname }}|\
                  {{ range ifaddrs }}{{ end }}{{ range $k, $v := ipv4sbyif }}{{ end }}{{ len ipv4byif | printf \"%d\" | printf \"%s\" | lower }}{{ printf \"%d\" 42 | len }}";
        // The last two: a count of interfaces, then 2 (the length of "42").
        let out = render(go);
        let head = format!(
            "db-002.example.com. db-001.example.com. |2|167772161 255 {}|",
            crate::render::host_name()
        );
        assert!(out.starts_with(&head), "{out}");
        assert!(out.len() > head.len() + 1 && out.ends_with('2'), "{out}");
        assert!(
            out[head.len()..].bytes().all(|b| b.is_ascii_digit()),
            "{out}"
        );
        let notes = convert(go).unwrap().notes;
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].message.contains("shuffle"), "{notes:?}");
    }

    #[test]
    fn printf_print_and_pipelines() {
        let go = "{{ range .srvs }}{{ printf \"%s:%d %v%%\" .Target .Port .Weight }};{{ end }}\
                  {{ print 1 2 \"a\" 3 }}|{{ println \"x\" 1 }}|{{ .srvs | len }}|{{ \"AbC\" | lower | printf \"<%s>\" }}";
        assert_eq!(
            render(go),
            "db-001.example.com.:3306 10%;db-002.example.com.:3306 10%;1 2a3|x 1\n|2|<abc>"
        );
    }

    #[test]
    fn sigil_string_helpers_convert() {
        let go = "{{ upper \"a\" }} {{ replace \"-\" \"_\" \"a-b\" }} {{ join \",\" (split \":\" \"a:b\") }} \
                  {{ default \"d\" \"\" }} {{ or \"\" \"o\" }} {{ indent \"  \" \"a\\nb\" }}";
        assert_eq!(render(go), "A a_b a,b d o a\n  b");
    }

    #[test]
    fn text_that_looks_like_tera_stays_text() {
        let go = "log-format {%ci} {# x #} %[src] {{ \"}}\" }}\n";
        assert_eq!(render(go), "log-format {%ci} {# x #} %[src] }}\n");
    }

    #[test]
    fn sigil_line_joins_drop_the_newline() {
        assert_eq!(render("{{ $x := 7 \\}}\n{{ $x }}\n"), "7\n");
    }

    #[test]
    fn refusals_name_the_line_column_and_what_to_do() {
        let p = refusal("backend\n  {{ template \"servers\" . }}\n");
        assert_eq!((p.line, p.column), (2, 3));
        assert_eq!(p.action, "{{ template \"servers\" . }}");
        assert!(p.message.contains("one file"), "{p}");

        let p = refusal("a\nb\n{{ range .srvs }}{{ printf \"%-30s\" .Target }}{{ end }}");
        assert_eq!((p.line, p.column), (3, 18));
        assert!(p.message.contains("printf's %-30s has no Tera form"), "{p}");

        let p = refusal("{{ sh \"hostname -f\" }}");
        assert!(
            p.message.contains("write the content in the template"),
            "{p}"
        );
        let p = refusal("{{ var \"HOME\" }}");
        assert!(p.message.contains("environment"), "{p}");
        let p = refusal("{{ range .srvs }}\n{{ .Hdr.Name }}{{ end }}");
        assert_eq!(p.line, 2);
        assert!(p.message.contains("owner name"), "{p}");
        let p = refusal("{{ range .srvs }}{{ . }}{{ end }}");
        assert!(p.message.contains("print the fields"), "{p}");
        let p = refusal("{{ interfaces }}");
        assert!(p.message.contains("interface_addrs()"), "{p}");
        let p = refusal("{{ nosuch 1 }}");
        assert!(p.message.contains("not a function"), "{p}");
        let p = refusal("{{ .nodes }}");
        assert!(p.message.contains(".srvs"), "{p}");

        let p = refusal("x\n{{ range .srvs }}\n");
        assert_eq!(p.line, 2);
        assert!(p.message.contains("no {{ end }}"), "{p}");
        let p = refusal("{{ end }}");
        assert!(p.message.contains("without an open"), "{p}");
        let p = refusal("{{ .srvs ");
        assert!(p.message.contains("not closed"), "{p}");
    }

    /// Whatever a user's file holds, the converter answers and never panics:
    /// every prefix of a template using every construct, cut anywhere
    /// (inside strings, comments, trim markers, multi-byte characters).
    #[test]
    fn any_truncation_converts_or_is_refused_without_panicking() {
        let go = "é {{- /* c */ -}} {{ $x := 'a' }}{{ range $i, $s := fetchsrvs .domains `r}}` }}\
                  {{ if and (eq $s.Port 1) (ne .Hdr.Ttl 2) }}{{ printf \"%s\\n%d\" .Target $i }}\
                  {{ else if not $x }}{{ \"\\u00e9\" | upper }}{{ else }}{{ 0x1F }}{{ end }}\
                  {{ with $y := index $.srvs 0 }}{{ $y.Weight }}{{ end }}{{ end }} \\}}\n{{ 3 -}} ü";
        for (end, _) in go.char_indices() {
            let _ = convert(&go[..end]);
        }
        assert!(convert(go).is_ok(), "{:?}", convert(go).err());
    }

    #[test]
    fn every_refusal_is_reported_not_just_the_first() {
        let Err(problems) = convert("{{ sh \"a\" }}\n{{ var \"b\" }}\n") else {
            panic!("converted");
        };
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 2]);
    }

    #[test]
    fn ranging_over_domains_notes_the_order() {
        let go = "{{ range $name, $recs := .domains }}{{ $name }}={{ len $recs }} {{ end }}";
        assert_eq!(
            render(go),
            "_mysql._tcp.example.com=2 _redis._tcp.example.com=0 "
        );
        let notes = convert(go).unwrap().notes;
        assert!(notes[0].message.contains("sorted"), "{notes:?}");
    }
}
