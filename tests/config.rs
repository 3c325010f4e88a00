//! srvd.toml as users write it: the Go srvd's configs load unchanged, and
//! every mistake is refused with a message that names the key (and its line
//! where TOML knows it), exit code 78, and no panic.

mod support;

use support::*;

fn check(site: &Site, config: &str) -> (i32, String) {
    site.write("srvd.toml", config);
    let out = site.run(&["check"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn site_with_template() -> Site {
    let site = Site::new();
    site.write("t.tmpl", "{% for s in srvs %}{{ s.target }}\n{% endfor %}");
    site
}

#[test]
fn the_go_srvd_readme_config_loads_as_it_is() {
    let text = r#"src = "/etc/haproxy/haproxy.cfg.tmpl"
dest = "/etc/haproxy/haproxy.cfg"
domain = "_mysql._tcp.example.com"
reload_cmd = "/bin/systemctl reload haproxy.service"
check_cmd = "/usr/sbin/haproxy -c -V -f {{ .src }}"
interval = 1
timeout = 3
cooldown = 60
"#;
    let s = srvd::config::parse(text, std::path::Path::new("/etc/srvd/srvd.toml")).unwrap();
    let t = &s.templates[0];
    assert_eq!(t.dest, std::path::Path::new("/etc/haproxy/haproxy.cfg"));
    assert_eq!(t.domains[0].text, "_mysql._tcp.example.com");
    assert_eq!(t.timing.interval.as_secs(), 1);
    assert_eq!(t.timing.timeout.as_secs(), 3);
    assert_eq!(t.timing.cooldown.as_secs(), 60);
    let argv = t
        .check_cmd
        .as_ref()
        .unwrap()
        .expand(std::path::Path::new("/etc/haproxy/.staged"), &t.dest);
    assert_eq!(argv.last().unwrap(), "/etc/haproxy/.staged");
}

#[test]
fn every_key_of_the_go_srvd_is_accepted() {
    let site = site_with_template();
    let (code, out) = check(
        &site,
        r#"src = "t.tmpl"
dest = "out.cfg"
domains = ["_http._tcp.example.com", "_mysql._tcp.example.com"]
reload_cmd = "true"
check_cmd = "true {{ src }}"
interval = 1
timeout = 3
cooldown = 60
resolv_conf = "/etc/resolv.conf"
status_port = 8080
sdnotify = false
disable_rollback_on_reload_failure = false
edns0_size = 4096
net = "udp"
dryrun = false
noreload = false
nocheck = false
nohttpd = true
oneshot = false
"#,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK (1 template"), "{out}");
}

#[test]
fn several_templates_and_new_keys_are_accepted() {
    let site = site_with_template();
    let (code, out) = check(
        &site,
        r#"nameservers = ["127.0.0.1:5353", "[::1]:53", "10.0.0.1"]
dns_timeout = "500ms"
dns_attempts = 3
interval = "2s"
wait = { min = "1s", max = "4s" }
splay = "5s"
reload_cmd = "systemctl reload haproxy"

[[template]]
name = "haproxy"
src = "t.tmpl"
dest = "a.cfg"
domain = "_mysql._tcp.example.com"
mode = "0640"
owner = 0
group = "root"
min_records = 2
resolve_targets = true

[[template]]
src = "t.tmpl"
dest = "b.cfg"
domains = ["_redis._tcp.example.com"]
allow_empty = true
wait = "500ms:2s"
cooldown = "1m"
"#,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 templates: haproxy,"), "{out}");
}

/// (what, config, text the message must contain)
const BAD: &[(&str, &str, &[&str])] = &[
    (
        "unknown key",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nreload_cmnd = \"x\"\n",
        &["reload_cmnd", "line 4"],
    ),
    (
        "unknown key in a template",
        "[[template]]\nsrc = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nsorce = 1\n",
        &["sorce", "line 5"],
    ),
    (
        "unknown key in wait",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nwait = { min = \"1s\", maks = \"2s\" }\n",
        &["maks"],
    ),
    ("bad TOML", "src = \"t.tmpl\ndest = \"o\"\n", &["line 1"]),
    (
        "wrong type",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ninterval = true\n",
        &["interval", "line 4"],
    ),
    (
        "interval 0",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ninterval = 0\n",
        &["`interval`"],
    ),
    (
        "timeout 0",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ntimeout = \"0s\"\n",
        &["`timeout`"],
    ),
    (
        "bad duration",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ncooldown = \"2x\"\n",
        &["2x", "line 4"],
    ),
    (
        "negative duration",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ncooldown = -1\n",
        &["cooldown", "line 4"],
    ),
    (
        "wait max below min",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nwait = \"5s:1s\"\n",
        &["wait", "max"],
    ),
    ("no template at all", "interval = 1\n", &["no template"]),
    (
        "src missing",
        "dest = \"o\"\ndomain = \"_a._tcp.x\"\n",
        &["`src`"],
    ),
    (
        "dest missing",
        "src = \"t.tmpl\"\ndomain = \"_a._tcp.x\"\n",
        &["`dest`"],
    ),
    (
        "src equals dest",
        "src = \"t.tmpl\"\ndest = \"t.tmpl\"\ndomain = \"_a._tcp.x\"\n",
        &["`src` and `dest` are the same file"],
    ),
    (
        "no domains",
        "src = \"t.tmpl\"\ndest = \"o\"\n",
        &["`domains`"],
    ),
    (
        "empty domains",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomains = []\n",
        &["`domains` is empty"],
    ),
    (
        "domain and domains",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ndomains = [\"_b._tcp.x\"]\n",
        &["`domain` or `domains`"],
    ),
    (
        "bad domain",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"a b..c\"\n",
        &["`domains`", "a b..c"],
    ),
    (
        "duplicate domain",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomains = [\"_a._tcp.x\", \"_A._tcp.x.\"]\n",
        &["twice"],
    ),
    (
        "empty check_cmd",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ncheck_cmd = \"\"\n",
        &["`check_cmd`", "empty"],
    ),
    (
        "empty reload_cmd",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nreload_cmd = \"  \"\n",
        &["`reload_cmd`", "empty"],
    ),
    (
        "unbalanced quotes",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nreload_cmd = \"echo 'x\"\n",
        &["`reload_cmd`", "unbalanced"],
    ),
    (
        "unknown placeholder",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ncheck_cmd = \"haproxy -c -f {{ .source }}\"\n",
        &["`check_cmd`", "source"],
    ),
    (
        "bad mode",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nmode = \"rw-r--r--\"\n",
        &["`mode`"],
    ),
    (
        "mode as a number",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nmode = 644\n",
        &["mode", "line 4"],
    ),
    (
        "a field records do not have",
        "src = \"hostname.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nnameservers = [\"127.0.0.1\"]\n",
        &["hostname.tmpl:2", "hostname", "sample records"],
    ),
    (
        "a template that fails on the empty set allow_empty allows",
        "src = \"first.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nnameservers = [\"127.0.0.1\"]\nallow_empty = true\n",
        &["first.tmpl:1", "no records (`allow_empty`)"],
    ),
    (
        "a resolv_conf that is not there",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nresolv_conf = \"no-such-resolv.conf\"\n",
        &[
            "`resolv_conf`",
            "no-such-resolv.conf",
            "No such file",
            "`nameservers`",
        ],
    ),
    (
        "a resolv_conf without a nameserver",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nresolv_conf = \"empty-resolv.conf\"\n",
        &["`resolv_conf`", "empty-resolv.conf", "no `nameserver`"],
    ),
    (
        "one template's dest is another's src",
        "nameservers = [\"127.0.0.1\"]\n[[template]]\nname = \"a\"\nsrc = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\n\
         [[template]]\nname = \"b\"\nsrc = \"first.tmpl\"\ndest = \"./t.tmpl\"\ndomain = \"_b._tcp.x\"\n",
        &["`dest` of \"b\" is the template of \"a\""],
    ),
    (
        "a dest that is the zone file",
        "src = \"t.tmpl\"\ndest = \"./z.zone\"\ndomain = \"_a._tcp.x\"\nzone_file = \"z.zone\"\n",
        &["is the zone file", "z.zone"],
    ),
    (
        "one dest spelled two ways, through ..",
        "nameservers = [\"127.0.0.1\"]\n[[template]]\nsrc = \"t.tmpl\"\ndest = \"out/x.cfg\"\ndomain = \"_a._tcp.x\"\n\
         [[template]]\nsrc = \"t.tmpl\"\ndest = \"out/../out/x.cfg\"\ndomain = \"_b._tcp.x\"\n",
        &["`dest`", "both write"],
    ),
    (
        "bad net",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nnet = \"sctp\"\n",
        &["sctp", "line 4"],
    ),
    (
        "bad nameserver",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nnameservers = [\"ns1.example.com\"]\n",
        &["`nameservers`", "ns1.example.com"],
    ),
    (
        "empty nameservers",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nnameservers = []\n",
        &["`nameservers` is empty"],
    ),
    (
        "zone_file and nameservers",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nzone_file = \"z\"\nnameservers = [\"127.0.0.1\"]\n",
        &["`zone_file` and `nameservers`"],
    ),
    (
        "status_port out of range",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nstatus_port = 70000\n",
        &["status_port", "line 4"],
    ),
    (
        "bad status_addr",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nstatus_addr = \"localhost\"\n",
        &["status_addr", "line 4"],
    ),
    (
        "tiny edns0_size",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nedns0_size = 100\n",
        &["`edns0_size`"],
    ),
    (
        "dns_attempts 0",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ndns_attempts = 0\n",
        &["`dns_attempts`"],
    ),
    (
        "two templates, one dest",
        "[[template]]\nsrc = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\n[[template]]\nsrc = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_b._tcp.x\"\n",
        &["`dest`", "both write"],
    ),
    (
        "missing template file",
        "src = \"nope.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\n",
        &["nope.tmpl", "cannot read"],
    ),
    (
        "template syntax error",
        "src = \"bad.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\n",
        &["bad.tmpl:2"],
    ),
    (
        "template unknown filter",
        "src = \"filter.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\n",
        &["filter.tmpl:1", "nofilter"],
    ),
    (
        "template as a list",
        "src = [\"t.tmpl\"]\ndest = \"o\"\ndomain = \"_a._tcp.x\"\n",
        &["src", "line 1"],
    ),
    (
        "template table not a list",
        "[template]\nsrc = \"t.tmpl\"\n",
        &["template"],
    ),
    // Values out of their range or of the wrong kind.
    (
        "infinite interval",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ninterval = inf\n",
        &["interval", "line 4"],
    ),
    (
        "NaN interval",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ninterval = nan\n",
        &["interval", "line 4"],
    ),
    (
        "interval rounding to 0",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ninterval = 1e-10\n",
        &["`interval`"],
    ),
    (
        "exponent in a duration",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ntimeout = \"1e999s\"\n",
        &["timeout", "line 4"],
    ),
    (
        "negative splay",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nsplay = \"-1s\"\n",
        &["splay", "line 4"],
    ),
    (
        "negative owner",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nowner = -1\n",
        &["owner", "line 4"],
    ),
    (
        "owner past 32 bits",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nowner = 4294967296\n",
        &["owner", "line 4"],
    ),
    (
        "negative min_records",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nmin_records = -1\n",
        &["min_records", "line 4"],
    ),
    (
        "edns0_size past 16 bits",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nedns0_size = 70000\n",
        &["edns0_size", "line 4"],
    ),
    (
        "a key twice",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ninterval = 1\ninterval = 2\n",
        &["duplicate key", "line 5"],
    ),
    (
        "wait without min",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nwait = { max = \"2s\" }\n",
        &["min", "line 4"],
    ),
    (
        "wait of words",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nwait = \"x:y\"\n",
        &["wait", "line 4"],
    ),
    (
        "dns_timeout 0",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ndns_timeout = 0\n",
        &["`dns_timeout`"],
    ),
    (
        "five-digit mode",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nmode = \"07777\"\n",
        &["`mode`", "07777"],
    ),
    (
        "empty mode",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nmode = \"\"\n",
        &["`mode`"],
    ),
    (
        "bad IPv6 status_addr",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nstatus_addr = \"::1::\"\n",
        &["status_addr", "line 4"],
    ),
    (
        "resolv_conf a number",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nresolv_conf = 5\n",
        &["resolv_conf", "line 4"],
    ),
    (
        "a number in the domains list",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\ndomains = [\"_b._tcp.x\", 5]\n",
        &["line 4"],
    ),
];

#[test]
fn every_bad_config_names_the_key_and_exits_78() {
    let site = site_with_template();
    site.write("bad.tmpl", "ok\n{% for x in %}\n");
    site.write("filter.tmpl", "{{ srvs | nofilter }}\n");
    site.write(
        "hostname.tmpl",
        "backend db\n{% for s in srvs %}{{ s.hostname }}\n{% endfor %}",
    );
    site.write("first.tmpl", "{{ srvs[0].host }}\n");
    site.write(
        "empty-resolv.conf",
        "# no nameserver line\nsearch example.com\n",
    );
    assert!(BAD.len() >= 30);
    let mut tried = 0;
    for (what, config, needles) in BAD {
        assert_refused(&site, what, config, needles);
        tried += 1;
    }
    assert_eq!(tried, BAD.len());
}

/// TOML built to break a parser, and bytes a text editor would hide:
/// (what, lines after a valid template, texts the message must contain).
const MALFORMED_TOML: &[(&str, &str, &[&str])] = &[
    ("arrays nested 100,000 deep", "", &["recursion", "line 4"]),
    ("tables nested 5,000 deep", "", &["recursion", "line 4"]),
    ("a NUL byte in a key", "a\0b = 1\n", &["line 4"]),
    (
        "a byte-order mark inside",
        "\u{feff}interval = 1\n",
        &["line 4"],
    ),
    (
        "a control character in a string",
        "reload_cmd = \"a\u{1}b\"\n",
        &["line 4"],
    ),
];

#[test]
fn malformed_toml_is_refused_naming_its_line_without_panic() {
    let site = Site::new();
    site.write("t.tmpl", "x\n");
    let head = "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\n";
    let mut tried = 0;
    for (what, tail, needles) in MALFORMED_TOML {
        let tail = match *what {
            "arrays nested 100,000 deep" => {
                format!("x = {}{}\n", "[".repeat(100_000), "]".repeat(100_000))
            }
            "tables nested 5,000 deep" => {
                format!("x = {}1{}\n", "{a=".repeat(5_000), "}".repeat(5_000))
            }
            _ => tail.to_string(),
        };
        assert_refused(&site, what, &format!("{head}{tail}"), needles);
        tried += 1;
    }
    // Not UTF-8 at all.
    std::fs::write(site.path("srvd.toml"), b"src = \"\xff\"\n").unwrap();
    let out = site.run(&["check"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UTF-8"));
    tried += 1;
    assert_eq!(tried, MALFORMED_TOML.len() + 1);
}

#[test]
fn all_problems_are_listed_at_once() {
    let site = site_with_template();
    let (code, out) = check(
        &site,
        "src = \"t.tmpl\"\ndest = \"o\"\ninterval = 0\nmode = \"9\"\n",
    );
    assert_eq!(code, 78);
    assert!(out.contains("3 problems"), "{out}");
    assert!(
        out.contains("`domains`") && out.contains("`interval`") && out.contains("`mode`"),
        "{out}"
    );
}

#[test]
fn a_missing_config_file_is_a_config_error() {
    let site = Site::new();
    let out = site.run(&["check"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config"));
}

/// A new user's first run: srvd looked for a config that is not there, and
/// says how to name the right one.
#[test]
fn a_missing_config_suggests_the_config_flag() {
    let site = Site::new();
    let out = site.run(&["check"]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{msg}");
    assert!(
        msg.contains("srvd.toml") && msg.contains("--config PATH"),
        "{msg}"
    );
}

/// Values of the wrong shape, told in the user's words rather than serde's
/// ("expected u16") or toml's ("unexpected leading zero, expected nothing").
#[test]
fn values_of_the_wrong_shape_say_what_to_write() {
    let site = site_with_template();
    let head = "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\n";
    let cases: &[(&str, &[&str])] = &[
        (
            "mode = 0644",
            &["line 4", "mode = \"0644\"", "cannot start with 0"],
        ),
        ("mode = 644", &["line 4", "mode = \"0644\""]),
        (
            "status_port = \"8080\"",
            &["line 4", "a port number, 1–65535"],
        ),
        ("status_port = 99999", &["line 4", "a port number, 1–65535"]),
        ("dns_attempts = -1", &["line 4", "a whole number"]),
    ];
    let mut tried = 0;
    for (line, needles) in cases {
        assert_refused(&site, line, &format!("{head}{line}\n"), needles);
        let (_, msg) = check(&site, &format!("{head}{line}\n"));
        assert!(
            !msg.contains("expected u16")
                && !msg.contains("expected u32")
                && !msg.contains("expected nothing"),
            "{line}: {msg}"
        );
        tried += 1;
    }
    assert_eq!(tried, cases.len());
}

#[test]
fn the_daemon_refuses_a_bad_config_at_start_with_78() {
    let site = site_with_template();
    site.write(
        "srvd.toml",
        "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nreload_cmnd = \"x\"\n",
    );
    let out = site.run(&[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reload_cmnd"));
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let s = srvd::config::parse(
        "src = \"t.tmpl\"\ndest = \"out/x.cfg\"\ndomain = \"_a._tcp.x\"\nzone_file = \"z.zone\"\n",
        std::path::Path::new("/etc/srvd/srvd.toml"),
    )
    .unwrap();
    assert_eq!(s.templates[0].src, std::path::Path::new("/etc/srvd/t.tmpl"));
    assert_eq!(
        s.templates[0].dest,
        std::path::Path::new("/etc/srvd/out/x.cfg")
    );
    assert_eq!(
        s.source,
        srvd::config::RecordSource::ZoneFile("/etc/srvd/z.zone".into())
    );
}

/// Every other key that names a file: `resolv_conf` (read by `config::load`,
/// so `parse` leaves its servers empty) and HAProxy's sockets.
#[test]
fn every_path_key_is_relative_to_the_config_file() {
    let s = srvd::config::parse(
        "src = \"t.tmpl\"\ndest = \"x.cfg\"\ndomain = \"_a._tcp.x\"\nresolv_conf = \"resolv.conf\"\n\
         haproxy_socket = \"admin.sock\"\nhaproxy_master_socket = \"unix@run/master.sock\"\n",
        std::path::Path::new("/etc/srvd/srvd.toml"),
    )
    .unwrap();
    match &s.source {
        srvd::config::RecordSource::Dns(dns) => assert_eq!(
            dns.servers,
            srvd::config::Servers::ResolvConf {
                path: "/etc/srvd/resolv.conf".into(),
                listed: Vec::new()
            }
        ),
        other => panic!("{other:?}"),
    }
    let haproxy = format!("{:?}", s.templates[0].haproxy);
    assert!(haproxy.contains("\"/etc/srvd/admin.sock\""), "{haproxy}");
    assert!(
        haproxy.contains("\"/etc/srvd/run/master.sock\""),
        "{haproxy}"
    );
}

#[test]
fn top_level_keys_are_defaults_for_templates() {
    let s = srvd::config::parse(
        "interval = 5\ncheck_cmd = \"check {{ src }}\"\n[[template]]\nsrc = \"a\"\ndest = \"b\"\ndomain = \"_a._tcp.x\"\n[[template]]\nsrc = \"a\"\ndest = \"c\"\ndomain = \"_a._tcp.x\"\ninterval = 2\ncheck_cmd = \"other\"\n",
        std::path::Path::new("/x/srvd.toml"),
    )
    .unwrap();
    assert_eq!(s.templates[0].timing.interval.as_secs(), 5);
    assert_eq!(s.templates[1].timing.interval.as_secs(), 2);
    assert_eq!(
        s.templates[0].check_cmd.as_ref().unwrap().text(),
        "check {{ src }}"
    );
    assert_eq!(s.templates[1].check_cmd.as_ref().unwrap().text(), "other");
}

fn field_case(case: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/field")
        .join(case)
}

/// Field case: two `[[template]]` tables with `dest = "out/haproxy.cfg"` and
/// `dest = "./out/haproxy.cfg"`, srvd run from the config's directory.
/// `srvd check` said OK; the daemon then wrote the two outputs in turn, a
/// write and a reload every second with unchanged records.
#[test]
fn one_dest_spelled_two_ways_is_refused_at_check_and_at_start() {
    let site = Site::new();
    for f in ["srvd.toml", "t.tmpl", "example.com.zone"] {
        std::fs::copy(
            field_case("12-same-dest-two-spellings").join(f),
            site.path(f),
        )
        .unwrap();
    }
    std::fs::create_dir(site.path("out")).unwrap();
    for args in [&["check"][..], &["--oneshot"][..], &[][..]] {
        let mut child = std::process::Command::new(SRVD)
            .args(["--config", "srvd.toml"])
            .args(args)
            .current_dir(site.dir.path())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(site.path("stderr")).unwrap())
            .spawn()
            .unwrap();
        // The daemon that takes the config runs on: give it 10 s to exit.
        let exited = wait_until(secs(10.0), || child.try_wait().unwrap().is_some());
        let _ = child.kill();
        let status = child.wait().unwrap();
        let msg = site.read("stderr");
        assert!(exited, "{args:?}: still running\n{msg}");
        assert_eq!(status.code(), Some(78), "{args:?}: {msg}");
        assert!(
            msg.contains("templates \"mysql\" and \"redis\" both write"),
            "{args:?}: {msg}"
        );
    }
    assert!(!site.exists("out/haproxy.cfg"));
    assert_eq!(site.reloads(), 0);
}

/// The same file under two names in other ways: through a symbolic link to
/// its directory, as a symbolic link to it, and as a hard link.
#[test]
fn one_dest_reached_through_links_is_refused() {
    let site = site_with_template();
    std::fs::create_dir(site.path("out")).unwrap();
    std::os::unix::fs::symlink("out", site.path("linked")).unwrap();
    site.write("out/a.cfg", "a\n");
    std::os::unix::fs::symlink("out/a.cfg", site.path("a-link.cfg")).unwrap();
    std::fs::hard_link(site.path("out/a.cfg"), site.path("hard.cfg")).unwrap();
    let two = |a: &str, b: &str| {
        format!(
            "nameservers = [\"127.0.0.1\"]\n[[template]]\nsrc = \"t.tmpl\"\ndest = \"{a}\"\ndomain = \"_a._tcp.x\"\n\
             [[template]]\nsrc = \"t.tmpl\"\ndest = \"{b}\"\ndomain = \"_b._tcp.x\"\n"
        )
    };
    let cases = [
        ("a directory link", "out/new.cfg", "linked/new.cfg"),
        ("a link to the file", "out/a.cfg", "a-link.cfg"),
        ("a hard link", "out/a.cfg", "hard.cfg"),
    ];
    for (what, a, b) in cases {
        assert_refused(&site, what, &two(a, b), &["`dest`", "both write"]);
    }
    // Two files are two files.
    let (code, out) = check(&site, &two("out/a.cfg", "out/b.cfg"));
    assert_eq!(code, 0, "{out}");
}

/// An `owner` or `group` that does not resolve yet is not a config error:
/// `srvd check` says what will happen, and accepts the config, as start-up
/// does.
#[test]
fn an_owner_or_group_that_does_not_resolve_yet_is_a_warning() {
    let site = site_with_template();
    let mut tried = 0;
    for (key, name) in [
        ("owner", "no-such-user-srvd"),
        ("group", "no-such-group-srvd"),
    ] {
        let (code, out) = check(
            &site,
            &format!(
                "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\nnameservers = [\"127.0.0.1\"]\n{key} = \"{name}\"\n"
            ),
        );
        assert_eq!(code, 0, "{key}: {out}");
        assert!(
            out.contains(&format!("`{key}`")) && out.contains(name),
            "{out}"
        );
        assert!(
            out.contains("fails (and retries) until it resolves"),
            "{out}"
        );
        tried += 1;
    }
    assert_eq!(tried, 2);
}
