//! From a DNS answer to the records a template sees, through the real
//! binary: order-independent answers (no rewrite when a server rotates),
//! empty and short answers, CNAMEs and RRSIGs, hostile targets dropped and
//! logged once, and `resolve_targets` with and without glue.

mod support;

use hickory_proto::rr::rdata::{CNAME, NULL, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::os::unix::fs::MetadataExt;
use support::dns::{DnsServer, name};
use support::*;

/// Two backends at `ttl` with their A records (db-001 127.0.0.11, db-002
/// 127.0.0.12, TTL 0), and a site with `resolve_targets = true`.
fn resolving_site(server: &DnsServer, ttl: u32) -> Site {
    two_backends(server, ttl);
    server.set_a("db-001.example.com.", 0, "127.0.0.11".parse().unwrap());
    server.set_a("db-002.example.com.", 0, "127.0.0.12".parse().unwrap());
    let site = Site::new();
    basic_config(&site, server, "resolve_targets = true");
    site
}

#[test]
fn rotating_answers_cause_no_rewrite() {
    let server = DnsServer::start();
    server.set_srv(
        D,
        0,
        &[
            (10, 5, 3306, "db-001.example.com."),
            (10, 5, 3306, "db-002.example.com."),
            (10, 5, 3306, "db-003.example.com."),
        ],
    );
    server.set_rotate(true);
    let site = Site::new();
    basic_config(&site, &server, "");
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    let ino = std::fs::metadata(site.path("haproxy.cfg")).unwrap().ino();
    let before = server.queries(D, RecordType::SRV);
    assert!(
        wait_until(secs(10.0), || server.queries(D, RecordType::SRV)
            >= before + 5),
        "it kept polling"
    );
    assert_eq!(site.reloads(), 1);
    assert_eq!(
        std::fs::metadata(site.path("haproxy.cfg")).unwrap().ino(),
        ino,
        "dest not rewritten"
    );
}

/// Found by fuzzing (fuzz/fuzz_targets/records_render.rs): two invalid
/// answers whose meaning depends on the order of their records. A server
/// rotating them would make srvd rewrite and reload every cycle.
#[test]
fn an_invalid_answer_rotated_by_its_server_causes_no_rewrite() {
    let srv = |owner: &str, target: &str, ttl: u32| {
        Record::from_rdata(
            name(owner),
            ttl,
            RData::SRV(SRV::new(10, 5, 3306, name(target))),
        )
    };
    let cname =
        |from: &str, to: &str| Record::from_rdata(name(from), 0, RData::CNAME(CNAME(name(to))));
    let cases: Vec<(&str, Vec<Record>)> = vec![
        (
            "two CNAMEs at the asked name",
            vec![
                cname(D, "_a._tcp.example.com."),
                cname(D, "_b._tcp.example.com."),
                srv("_a._tcp.example.com.", "db-a.example.com.", 0),
                srv("_b._tcp.example.com.", "db-b.example.com.", 0),
            ],
        ),
        (
            "one SRV record twice, with TTLs 0 and 1",
            vec![
                srv(D, "db-001.example.com.", 0),
                srv(D, "db-001.example.com.", 1),
                srv(D, "db-002.example.com.", 0),
            ],
        ),
    ];
    let mut tried = 0;
    for (what, records) in cases {
        // The whole answer, rotated by its server at every query.
        let server = DnsServer::start();
        server.set_answer(D, records);
        server.set_rotate(true);
        let site = Site::new();
        site.write(
            "haproxy.cfg.tmpl",
            "{% for s in srvs %}{{ s.host }} {{ s.ttl }}\n{% endfor %}",
        );
        site.write(
            "srvd.toml",
            &format!(
                "src = \"haproxy.cfg.tmpl\"\ndest = \"haproxy.cfg\"\ndomain = \"_mysql._tcp.example.com\"\n\
                 nameservers = [{}]\ndns_timeout = \"300ms\"\nreload_cmd = \"\"\"{}\"\"\"\n\
                 interval = \"100ms\"\nnohttpd = true\n",
                server.toml_addr(),
                site.reload_cmd()
            ),
        );
        let d = site.start();
        assert!(
            wait_until(secs(5.0), || site.reloads() >= 1),
            "{what}\n{}",
            d.log()
        );
        // Twenty polls of the same answer in another order.
        assert_polls(&server, &d, 20, what);
        assert_eq!(
            site.reloads(),
            1,
            "{what}: rewritten as the order changed\n{}",
            d.log()
        );
        tried += 1;
    }
    assert_eq!(tried, 2);
}

/// An answer whose only record is "." (the service is decidedly not
/// available, RFC 2782) is a failure: the last good dest stays.
#[test]
fn zero_usable_records_are_a_failure_that_keeps_the_last_good_dest() {
    let (server, site, d) = running("");
    server.set_srv(D, 0, &[(0, 0, 0, ".")]);
    assert!(d.wait_log("no usable records", secs(5.0)), "{}", d.log());
    assert_eq!(site.read("haproxy.cfg").lines().count(), 3);
}

#[test]
fn allow_empty_renders_an_empty_set() {
    let server = DnsServer::start();
    server.set_srv(D, 0, &[(0, 0, 0, ".")]);
    let site = Site::new();
    basic_config(&site, &server, "allow_empty = true");
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    assert_eq!(site.read("haproxy.cfg"), "backend db\n");
}

#[test]
fn min_records_refuses_a_half_answer() {
    let server = DnsServer::start();
    server.set_srv(
        D,
        0,
        &[
            (10, 5, 3306, "db-001.example.com."),
            (10, 5, 3306, "db-002.example.com."),
            (10, 5, 3306, "db-003.example.com."),
        ],
    );
    let site = Site::new();
    basic_config(&site, &server, "min_records = 2");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    server.set_srv(D, 0, &[(10, 5, 3306, "db-001.example.com.")]);
    assert!(
        d.wait_log("1 records, fewer than min_records = 2", secs(5.0)),
        "{}",
        d.log()
    );
    assert_eq!(site.read("haproxy.cfg").lines().count(), 4);
}

#[test]
fn cnames_are_followed_and_rrsigs_ignored() {
    let server = DnsServer::start();
    server.set_cname(D, "_mysql._tcp.real.example.com.", 0);
    server.set_srv(
        "_mysql._tcp.real.example.com.",
        0,
        &[(1, 1, 3306, "db-001.example.com.")],
    );
    // An RRSIG-looking record in the answer (as a signed zone sends): ignored.
    server.add_record(Record::from_rdata(
        name("_mysql._tcp.real.example.com."),
        0,
        RData::Unknown {
            code: RecordType::Unknown(46),
            rdata: NULL::with(vec![1, 2, 3, 4]),
        },
    ));
    let site = Site::new();
    basic_config(&site, &server, "");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    assert!(
        site.read("haproxy.cfg")
            .contains("db-001.example.com.:3306")
    );
}

/// Target labels built to break out of a config line, a template or a log line.
const HOSTILE: &[&[u8]] = &[
    b"x\nserver evil 1.2.3.4:80",
    b"x\r\nserver evil 1.2.3.4:80",
    b"db 1",
    b"db\t1",
    b"db\"1",
    b"db'1",
    b"{{ 7*7 }}",
    b"{% raw %}",
    b"{# c #}",
    b"a}b",
    b"a;b",
    b"a#b",
    b"a\\b",
    b"a\0b",
    b"\x01ctl",
    b"a\x1b[31mred",
    b"del\x7f",
    b"d\xc3\xa9j\xc3\xa0",
    b"\xff\xfe",
    b"\xe2\x80\xaeevil",
    b"a.b",
    b"a/b",
    b"a:80",
    b"a,b",
    b"$(reboot)",
    b"`id`",
    b"a|b",
    b"a&b",
    b"<script>",
    b"a=b",
    b"*",
    b"a%0ab",
    b"a@b",
    b"a!b",
];

fn srv_record(owner: &str, priority: u16, weight: u16, port: u16, target: Name) -> Record {
    Record::from_rdata(
        name(owner),
        0,
        RData::SRV(SRV::new(priority, weight, port, target)),
    )
}

#[test]
fn hostile_targets_never_reach_dest_and_each_is_logged_once() {
    let server = DnsServer::start();
    let site = Site::new();
    let addr = config_with_status(&site, &server, "");
    site.write(
        "haproxy.cfg.tmpl",
        "{% for s in srvs %}{{ s.priority }} {{ s.weight }} {{ s.port }} {{ s.host }} {{ s.target }}\n{% endfor %}",
    );
    // Good records at the edges of what is valid: rendered exactly.
    let label63 = "a".repeat(63);
    let name253 = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(name253.len(), 253);
    let good: Vec<(u16, u16, u16, String)> = vec![
        (0, 0, 65535, "max-port.example.com".into()),
        (0, 65535, 1, "max-weight.example.com".into()),
        (65535, 65535, 1, "max-priority.example.com".into()),
        (65535, 0, 1, "last.example.com".into()),
        (7, 7, 7, format!("{label63}.example.com")),
        (8, 8, 8, name253.clone()),
        (9, 9, 9, "UPPER-Case_9.Example.COM".into()),
    ];
    for (p, w, port, host) in &good {
        server.add_record(srv_record(D, *p, *w, *port, name(&format!("{host}."))));
    }
    let mut hostile = 0;
    for label in HOSTILE {
        let target = Name::from_labels([*label, b"example", b"com"]).unwrap();
        server.add_record(srv_record(D, 1, 1, 80, target));
        hostile += 1;
    }
    // Port 0, "." among other records, and a template tag as a label of
    // the root's child.
    server.add_record(srv_record(D, 1, 1, 0, name("port-zero.example.com.")));
    server.add_record(srv_record(D, 1, 1, 80, Name::root()));
    server.add_srv_raw_target(D, 0, 80, &[b"{{ 7*7 }}", b"com"]);
    hostile += 3;
    assert!(hostile >= 30);

    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    // Twenty more cycles with the same answer: nothing is logged again.
    assert_polls(&server, &d, 20, "");
    let out = site.read("haproxy.cfg");
    assert!(!out.contains("evil") && !out.contains("7*7"), "{out}");
    let expected = "0 65535 1 max-weight.example.com max-weight.example.com.\n\
        0 0 65535 max-port.example.com max-port.example.com.\n"
        .to_owned()
        + &format!("7 7 7 {label63}.example.com {label63}.example.com.\n")
        + &format!("8 8 8 {name253} {name253}.\n")
        + "9 9 9 upper-case_9.example.com upper-case_9.example.com.\n\
        65535 65535 1 max-priority.example.com max-priority.example.com.\n\
        65535 0 1 last.example.com last.example.com.\n";
    assert_eq!(out, expected, "only the good records, exactly");
    assert_eq!(
        d.count("dropped SRV record"),
        hostile,
        "each hostile record logged once\n{}",
        d.log()
    );
    assert_eq!(
        metric(&addr, "srvd_rejected_records_total"),
        Some(hostile as f64)
    );
    // No log line was forged by a newline, no control byte reached the log.
    for line in d.log().lines() {
        assert!(
            !line.starts_with("server evil"),
            "forged log line: {line:?}"
        );
        assert!(
            !line.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f),
            "a control byte in the log: {line:?}"
        );
    }
    assert_eq!(site.reloads(), 1);
}

#[test]
fn resolve_targets_gives_addresses_to_the_template() {
    let server = DnsServer::start();
    let site = resolving_site(&server, 0);
    site.write(
        "haproxy.cfg.tmpl",
        "{% for s in srvs %}{{ s.host }}={{ s.addrs[0] }}:{{ s.port }}\n{% endfor %}",
    );
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    assert_eq!(
        site.read("haproxy.cfg"),
        "db-001.example.com=127.0.0.11:3306\ndb-002.example.com=127.0.0.12:3306\n"
    );
}

#[test]
fn resolve_targets_takes_addresses_from_the_additional_section() {
    let server = DnsServer::start();
    server.set_glue(true);
    let site = resolving_site(&server, 0);
    site.write(
        "haproxy.cfg.tmpl",
        "{% for s in srvs %}{{ s.host }}={{ s.addrs | join(sep=\",\") }}\n{% endfor %}",
    );
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    assert_eq!(
        site.read("haproxy.cfg"),
        "db-001.example.com=127.0.0.11\ndb-002.example.com=127.0.0.12\n"
    );
    // An address that changes comes with the next SRV answer (TTL 0: every
    // 100 ms cycle).
    server.set_a("db-002.example.com.", 0, "127.0.0.22".parse().unwrap());
    assert!(
        wait_until(secs(3.0), || site
            .read("haproxy.cfg")
            .contains("127.0.0.22")),
        "{}",
        d.log()
    );
    // TTL 0: the SRV answer is asked again every cycle. Waiting for the
    // count, not for a time, keeps a slow machine from failing this.
    assert!(
        wait_until(secs(10.0), || server.queries(D, RecordType::SRV) >= 5),
        "the SRV answer asked every cycle: {}\n{}",
        server.queries(D, RecordType::SRV),
        d.log()
    );
    for host in ["db-001.example.com.", "db-002.example.com."] {
        for rtype in [RecordType::A, RecordType::AAAA] {
            assert_eq!(server.queries(host, rtype), 0, "{host} {rtype} never asked");
        }
    }
}

#[test]
fn addresses_in_the_additional_section_that_expire_before_the_answer_are_asked_for() {
    let server = DnsServer::start();
    server.set_glue(true);
    let site = resolving_site(&server, 30);
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    assert!(
        wait_until(secs(10.0), || server
            .queries("db-001.example.com.", RecordType::A)
            >= 5),
        "db-001's A (TTL 0) asked every cycle: {}\n{}",
        server.queries("db-001.example.com.", RecordType::A),
        d.log()
    );
    assert_eq!(
        server.queries(D, RecordType::SRV),
        1,
        "the SRV answer is cached for 30 s"
    );
}

#[test]
fn a_target_without_addresses_is_asked_again_after_the_negative_ttl_not_every_cycle() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    server.set_a("db-001.example.com.", 0, "127.0.0.11".parse().unwrap());
    // db-002 has no address: NXDOMAIN, with the zone's SOA giving a
    // negative-caching TTL of 1 s.
    let site = Site::new();
    basic_config(&site, &server, "resolve_targets = true");
    site.write(
        "haproxy.cfg.tmpl",
        "{% for s in srvs %}{{ s.host }}={{ s.addrs[0] }}\n{% endfor %}",
    );
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    let (a1, a2) = (
        server.queries("db-001.example.com.", RecordType::A),
        server.queries("db-002.example.com.", RecordType::A),
    );
    // Twenty cycles: db-001 (TTL 0) is asked in each of them, db-002 only
    // when its negative answer (1 s) has expired. Counting cycles by
    // db-001's queries, not by the clock, keeps a slow machine from
    // failing this.
    let started = std::time::Instant::now();
    assert!(
        wait_until(secs(15.0), || server
            .queries("db-001.example.com.", RecordType::A)
            - a1
            >= 20),
        "db-001 (TTL 0) asked every cycle\n{}",
        d.log()
    );
    let elapsed = started.elapsed().as_secs_f64();
    let asked_002 = server.queries("db-002.example.com.", RecordType::A) - a2;
    assert!(
        asked_002 >= 1 && asked_002 as f64 <= elapsed + 1.0,
        "db-002 asked once a second, not every cycle: {asked_002} in {elapsed:.1} s\n{}",
        d.log()
    );
    assert_eq!(site.read("haproxy.cfg"), "db-001.example.com=127.0.0.11\n");
    assert_eq!(
        d.count("no A or AAAA record"),
        1,
        "logged once\n{}",
        d.log()
    );
}

/// The SRV name of a Kubernetes headless service (CoreDNS).
const K8S: &str = "_http._tcp.web.default.svc.cluster.local.";

/// A headless service with two pods, then scaled to zero, where CoreDNS
/// answers NXDOMAIN for the SRV name (and the pods' names): what dest
/// holds afterwards under `extra`, and srvd's log. Polls go on meanwhile.
fn scaled_to_zero(extra: &str) -> (String, String) {
    let server = DnsServer::start();
    let pods = [
        ("10-0-0-1.web.default.svc.cluster.local.", "10.0.0.1"),
        ("10-0-0-2.web.default.svc.cluster.local.", "10.0.0.2"),
    ];
    // The SRV answer lives 2 s, the pods' addresses 0: the pods' names
    // go NXDOMAIN while the SRV answer is still fresh, as with CoreDNS.
    server.set_srv(
        K8S,
        2,
        &[(0, 50, 8080, pods[0].0), (0, 50, 8080, pods[1].0)],
    );
    for (host, ip) in pods {
        server.set_a(host, 0, ip.parse().unwrap());
    }
    let site = Site::new();
    basic_config(&site, &server, extra);
    site.set_key("domain", "\"_http._tcp.web.default.svc.cluster.local\"");
    site.write(
        "haproxy.cfg.tmpl",
        include_str!("fixtures/field/21-k8s-headless-zero-nxdomain/t.tmpl"),
    );
    let d = site.start();
    assert!(
        wait_until(secs(5.0), || site
            .read("haproxy.cfg")
            .matches("server")
            .count()
            == 2),
        "{extra}: two pods first\n{}",
        d.log()
    );
    server.remove_name(K8S);
    for (host, _) in pods {
        server.remove_name(host);
    }
    let since = server.queries(K8S, RecordType::SRV);
    assert!(
        server.wait_queries(K8S, RecordType::SRV, since, 5, secs(15.0)),
        "{extra}: srvd stopped polling\n{}",
        d.log()
    );
    // The last of those answers has had time to be acted upon.
    assert!(server.wait_queries(K8S, RecordType::SRV, since, 7, secs(15.0)));
    (site.read("haproxy.cfg"), d.log())
}

/// One rule for NXDOMAIN on the SRV name: no instances, like an empty
/// answer, the same with and without `resolve_targets`. With
/// `allow_empty = true` the backend empties; without it, the last good
/// dest stays and the log says NXDOMAIN.
#[test]
fn nxdomain_on_the_srv_name_is_no_instances_with_or_without_resolve_targets() {
    let mut tried = 0;
    for resolve in [false, true] {
        let (empty, log) =
            scaled_to_zero(&format!("allow_empty = true\nresolve_targets = {resolve}"));
        assert_eq!(
            empty, "backend app\n",
            "allow_empty, resolve_targets = {resolve}: emptied\n{log}"
        );
        let (kept, log) =
            scaled_to_zero(&format!("allow_empty = false\nresolve_targets = {resolve}"));
        assert_eq!(
            kept.matches("server").count(),
            2,
            "no allow_empty, resolve_targets = {resolve}: kept\n{log}"
        );
        assert!(log.contains("NXDOMAIN"), "{log}");
        tried += 1;
    }
    assert_eq!(tried, 2);
}

/// `min_records` holds for NXDOMAIN as for any answer: with
/// `allow_empty = true` and `min_records = 1`, the last good dest stays.
#[test]
fn min_records_keeps_the_last_good_dest_on_nxdomain() {
    let (kept, log) = scaled_to_zero("allow_empty = true\nmin_records = 1");
    assert_eq!(kept.matches("server").count(), 2, "{log}");
    assert!(
        log.contains("0 records, fewer than min_records = 1"),
        "{log}"
    );
}
