//! Templates, through the real binary: the ones that do not compile are
//! refused by `srvd check` and at start naming their line, the ones that
//! fail to render leave dest unwritten, and a template iterating maps
//! renders the same text every time.

mod support;

use support::dns::DnsServer;
use support::*;

/// Templates `srvd check` must refuse: (what, text, line named in the message).
const BAD_TEMPLATES: &[(&str, &str, &str)] = &[
    ("for without a list", "ok\n{% for x in %}\n", "2"),
    ("unclosed variable", "a\n{{ srvs\n", "2"),
    ("if never closed", "a\nb\n{% if srvs %}\nno endif\n", "5"),
    ("endfor without for", "a\n{% endfor %}\n", "2"),
    ("endif without if", "{% endif %}\n", "1"),
    (
        "for closed by endif",
        "\n{% for s in srvs %}{% endif %}\n",
        "2",
    ),
    ("empty expression", "a\n\n{{ }}\n", "3"),
    ("unknown tag", "{% frobnicate %}\n", "1"),
    ("filter without a name", "a\n{{ srvs | }}\n", "2"),
    ("dangling operator", "{{ 1 + }}\n", "1"),
    ("unterminated string", "a\n{{ \"abc }}\n", "2"),
    ("set without a name", "{% set %}\n", "1"),
    (
        "macro with a bad signature",
        "{% macro m( %}{% endmacro m %}\n",
        "1",
    ),
    (
        "block without a name",
        "a\n{% block %}{% endblock %}\n",
        "2",
    ),
    ("index never closed", "{{ srvs[ }}\n", "1"),
    ("unknown filter", "a\nb\n{{ srvs | nofilter }}\n", "3"),
    (
        "unknown test",
        "{% if srvs is notatest %}{% endif %}\n",
        "1",
    ),
    ("for without a variable", "{% for %}{% endfor %}\n", "1"),
    ("raw never closed", "a\n{% raw %}never closed\n", "2"),
    ("comment never closed", "a\n\n{# never closed\n", "3"),
    ("two operators", "{{ 1 ++ 2 }}\n", "1"),
    ("elif without if", "a\n{% elif x %}\n", "2"),
    ("else without if", "{% else %}\n", "1"),
    ("filter block never closed", "a\n{% filter upper %}x\n", "3"),
    ("break outside a loop", "{% break %}\n", "1"),
    ("continue outside a loop", "a\n{% continue %}\n", "2"),
    (
        "keyword argument without a value",
        "\n\n\n{{ srvs | rotate(n=) }}\n",
        "4",
    ),
    ("concatenation of nothing", "{{ \"a\" ~ }}\n", "1"),
    ("set without a value", "a\n{% set x = %}\n", "2"),
    (
        "three loop variables",
        "{% for a, b, c in srvs %}{% endfor %}\n",
        "1",
    ),
    ("attribute without a name", "{{ srvs.0. }}\n", "1"),
    (
        "extends a missing template",
        "{% extends \"base.tmpl\" %}\n",
        "inheriting from 'base.tmpl'",
    ),
    (
        "include of a missing template",
        "a\n{% include \"other.tmpl\" %}\n",
        "2",
    ),
    ("expression nested too deep", "", "1"),
    ("tags nested too deep", "", "1"),
];

/// Templates that compile but cannot render: `--oneshot` fails, dest is
/// not written, and the message names the line.
const FAILING_TEMPLATES: &[(&str, &str, &str)] = &[
    ("undefined variable", "a\n{{ missing }}\n", "2"),
    ("undefined field", "line\n{{ srvs[0].nope }}\n", "2"),
    ("index out of range", "a\nb\n{{ srvs[99].host }}\n", "3"),
    ("division by zero", "{{ srvs[0].port / 0 }}\n", "1"),
    ("not an IPv4 address", "a\n{{ \"x\" | ipv4_to_int }}\n", "2"),
    ("not hexadecimal", "{{ \"zz\" | hex_to_int }}\n", "1"),
    ("missing keyword argument", "a\n{{ srvs | rotate }}\n", "2"),
    (
        "wrong argument type",
        "{{ srvs | shuffle(seed=\"a\") }}\n",
        "1",
    ),
    (
        "loop over a number",
        "a\n{% for s in srvs[0].port %}{% endfor %}\n",
        "2",
    ),
    ("adding a list and a number", "{{ srvs + 1 }}\n", "1"),
    (
        "unknown domain",
        "a\n{{ domains[\"_nope._tcp.example.com\"] }}\n",
        "2",
    ),
    ("a field of a number", "{{ srvs[0].port.host }}\n", "1"),
    (
        "endless recursion",
        "{% component r() %}{{ <r /> }}{% endcomponent r %}\n{{ <r /> }}\n",
        "recursion depth",
    ),
];

/// "3" stands for `TMPL:3`; anything else is taken as it is.
fn named(tmpl: &str, line: &str) -> String {
    match line.parse::<usize>() {
        Ok(n) => format!("{tmpl}:{n}"),
        Err(_) => line.to_owned(),
    }
}

/// A site whose records come from `ok.zone` (one record for `D`).
fn zone_site() -> Site {
    let site = Site::new();
    site.write(
        "ok.zone",
        "$ORIGIN example.com.\n$TTL 30\n_mysql._tcp IN SRV 10 5 3306 db-001\n",
    );
    site
}

#[test]
fn malformed_templates_are_refused_with_their_line_and_no_panic() {
    let site = zone_site();
    let mut tried = 0;
    for (i, (what, text, line)) in BAD_TEMPLATES.iter().enumerate() {
        let text = match *what {
            "expression nested too deep" => {
                format!("{{{{ {}1{} }}}}\n", "(".repeat(10_000), ")".repeat(10_000))
            }
            "tags nested too deep" => "{% if srvs %}".repeat(10_000),
            _ => text.to_string(),
        };
        let tmpl = format!("bad{i:02}.tmpl");
        site.write(&tmpl, &text);
        site.write(
            "srvd.toml",
            &format!("src = \"{tmpl}\"\ndest = \"out.cfg\"\ndomain = \"_mysql._tcp.example.com\"\nzone_file = \"ok.zone\"\n"),
        );
        for args in [&["check"][..], &["--oneshot"][..]] {
            let out = site.run(args);
            let msg = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(
                out.status.code(),
                Some(78),
                "{what} ({args:?}): exit code\n{msg}"
            );
            let needle = named(&tmpl, line);
            assert!(
                msg.contains(&needle),
                "{what} ({args:?}): names {needle}\n{msg}"
            );
            assert!(!msg.contains("panicked"), "{what}: {msg}");
        }
        assert!(!site.exists("out.cfg"), "{what}");
        tried += 1;
    }
    // Not UTF-8: refused naming the file.
    std::fs::write(site.path("binary.tmpl"), b"a\n\xff\xfe\n").unwrap();
    site.write("srvd.toml", "src = \"binary.tmpl\"\ndest = \"out.cfg\"\ndomain = \"_mysql._tcp.example.com\"\nzone_file = \"ok.zone\"\n");
    let out = site.run(&["check"]);
    let msg = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(78), "{msg}");
    assert!(
        msg.contains("binary.tmpl") && msg.contains("UTF-8"),
        "{msg}"
    );
    tried += 1;
    assert_eq!(tried, BAD_TEMPLATES.len() + 1);
    assert!(tried >= 30, "{tried} templates");
}

#[test]
fn templates_that_fail_with_any_records_are_refused_at_load_naming_their_line() {
    let site = zone_site();
    let mut tried = 0;
    for (i, (what, text, line)) in FAILING_TEMPLATES.iter().enumerate() {
        let tmpl = format!("fail{i:02}.tmpl");
        site.write(&tmpl, text);
        site.write(
            "srvd.toml",
            &format!("src = \"{tmpl}\"\ndest = \"out.cfg\"\ndomain = \"_mysql._tcp.example.com\"\nzone_file = \"ok.zone\"\nnohttpd = true\n"),
        );
        // Each fails with any records: refused where a config is loaded
        // (check, start, render) as a config error, before any write.
        for args in [&["check"][..], &["--oneshot"][..], &["render"][..]] {
            let out = site.run(args);
            let msg = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(
                out.status.code(),
                Some(78),
                "{what} {args:?}: exit code\n{msg}"
            );
            let needle = named(&tmpl, line);
            assert!(msg.contains(&needle), "{what}: names {needle}\n{msg}");
            assert!(!msg.contains("panicked"), "{what}: {msg}");
            assert!(!site.exists("out.cfg"), "{what}: nothing written");
        }
        tried += 1;
    }
    assert_eq!(tried, FAILING_TEMPLATES.len());
}

/// A template that renders with sample records but not with the records
/// of the zone file: `srvd check` renders it against the zone file as the
/// first render will, and refuses it; the daemon starts, and its first
/// render fails (a one-shot run exits 1), writing nothing.
#[test]
fn check_renders_against_the_zone_file_as_the_first_render_will() {
    let site = zone_site();
    site.write("second.tmpl", "{{ srvs[1].host }}\n");
    site.write(
        "srvd.toml",
        "src = \"second.tmpl\"\ndest = \"out.cfg\"\ndomain = \"_mysql._tcp.example.com\"\nzone_file = \"ok.zone\"\nnohttpd = true\n",
    );
    let out = site.run(&["check"]);
    let msg = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(78), "{msg}");
    assert!(
        msg.contains("fails to render with the records of") && msg.contains("ok.zone"),
        "{msg}"
    );
    assert!(msg.contains("second.tmpl:1"), "{msg}");
    let out = site.run(&["--oneshot"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!site.exists("out.cfg"));
}

#[test]
fn a_template_error_in_the_daemon_leaves_dest_untouched() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "");
    // Fails with these records only (weight 5), not with any records: the
    // config loads, and the first render fails.
    site.write(
        "haproxy.cfg.tmpl",
        "{% if srvs[0].weight == 5 %}{{ srvs[0].nope }}{% endif %}\n",
    );
    site.write("haproxy.cfg", "good\n");
    let d = site.start();
    assert!(d.wait_log("haproxy.cfg.tmpl:1", secs(5.0)), "{}", d.log());
    assert_eq!(site.read("haproxy.cfg"), "good\n");
    assert_eq!(site.reloads(), 0);
}

/// A template that iterates maps (the domains, a record's fields) renders
/// the same text at every start: no rewrite, no reload when nothing changed.
#[test]
fn a_template_iterating_maps_is_up_to_date_at_the_next_start() {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(10, 5, 3306, "db-001.example.com.")]);
    let names = [
        "_e._tcp.example.com.",
        "_a._tcp.example.com.",
        "_d._tcp.example.com.",
    ];
    for n in names {
        dns.set_srv(n, 0, &[(10, 5, 3306, "db-001.example.com.")]);
    }
    let site = Site::new();
    let text = basic_config(&site, &dns, "").replace(
        "domain = \"_mysql._tcp.example.com\"",
        &format!("domains = {names:?}"),
    );
    site.write("srvd.toml", &text);
    site.write(
        "haproxy.cfg.tmpl",
        "{% for name, recs in domains %}backend {{ name }}\n\
         {% for s in recs %}{% for k, v in s %} {{ k }}={{ v }}{% endfor %}\n{% endfor %}{% endfor %}",
    );
    let out = site.run(&["--oneshot"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let first = site.read("haproxy.cfg");
    assert!(
        first.starts_with("backend _e._tcp.example.com.\n target=db-001.example.com. host="),
        "config order, field order: {first}"
    );
    for _ in 0..5 {
        assert_eq!(site.run(&["--oneshot"]).status.code(), Some(0));
        assert_eq!(site.read("haproxy.cfg"), first);
    }
    assert_eq!(site.reloads(), 1, "nothing changed, nothing to reload");
}
