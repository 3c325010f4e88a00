//! The engine end to end through the real binary and a real DNS server on
//! loopback: what gets written, checked, reloaded, kept or rolled back.

mod support;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use support::dns::{DnsServer, Mode};
use support::*;

const D: &str = "_mysql._tcp.example.com.";

/// srvd on the usual config plus `extra`, after its first render and reload.
fn running(extra: &str) -> (DnsServer, Site, Daemon) {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, extra);
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    (server, site, d)
}

fn two_backends(server: &DnsServer, ttl: u32) {
    server.set_srv(
        D,
        ttl,
        &[
            (10, 5, 3306, "db-001.example.com."),
            (10, 5, 3306, "db-002.example.com."),
        ],
    );
}

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
fn renders_dest_then_reloads_once() {
    let (_server, site, _d) = running("");
    assert_eq!(
        site.read("haproxy.cfg"),
        "backend db\n  server db-001.example.com db-001.example.com.:3306 check\n  server db-002.example.com db-002.example.com.:3306 check\n"
    );
    std::thread::sleep(secs(1.0));
    assert_eq!(site.reloads(), 1, "nothing changed: no second reload");
    assert_eq!(site.checks(), 1, "nothing changed: no second check");
}

#[test]
fn a_change_in_dns_is_followed() {
    let (server, site, d) = running("");
    server.set_srv(D, 0, &[(10, 5, 3306, "db-003.example.com.")]);
    assert!(wait_until(secs(5.0), || site.reloads() == 2));
    assert!(site.read("haproxy.cfg").contains("db-003"));
    assert!(!site.read("haproxy.cfg").contains("db-001"));
    assert!(d.wait_log("added: db-003.example.com:3306; removed: db-001.example.com:3306, db-002.example.com:3306", secs(2.0)), "{}", d.log());
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

#[test]
fn ttl_is_honoured_between_queries() {
    let server = DnsServer::start();
    two_backends(&server, 2);
    let site = Site::new();
    basic_config(&site, &server, "");
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    let start = server.queries(D, RecordType::SRV);
    std::thread::sleep(secs(3.1));
    let asked = server.queries(D, RecordType::SRV) - start;
    // 31 polls at 100 ms, but TTL 2 s allows one query per 2 s.
    assert!(
        (1..=2).contains(&asked),
        "{asked} queries in 3.1 s with TTL 2"
    );
}

#[test]
fn a_failing_check_leaves_dest_untouched_and_runs_no_reload() {
    let (server, site, d) = running("");
    let good = site.read("haproxy.cfg");
    site.write("check.fail", "");
    server.set_srv(D, 0, &[(10, 5, 3306, "db-009.example.com.")]);
    assert!(
        d.wait_log("check_cmd exited with status 1", secs(5.0)),
        "{}",
        d.log()
    );
    std::thread::sleep(secs(0.5));
    assert_eq!(site.read("haproxy.cfg"), good);
    assert_eq!(site.reloads(), 1);
    assert!(
        files_with_prefix(site.dir.path(), ".srvd-staged-").is_empty(),
        "staged file removed"
    );
}

#[test]
fn a_failing_reload_rolls_back() {
    let (server, site, d) = running("");
    let good = site.read("haproxy.cfg");
    site.write("reload.fail", "");
    server.set_srv(D, 0, &[(10, 5, 3306, "db-009.example.com.")]);
    assert!(
        d.wait_log("rolled back to the previous content", secs(5.0)),
        "{}",
        d.log()
    );
    assert_eq!(site.read("haproxy.cfg"), good);
}

#[test]
fn without_rollback_a_failed_reload_keeps_the_new_file_and_retries_the_reload() {
    let (server, site, d) = running("disable_rollback_on_reload_failure = true");
    site.write("reload.fail", "");
    server.set_srv(D, 0, &[(10, 5, 3306, "db-009.example.com.")]);
    assert!(
        d.wait_log("kept (disable_rollback_on_reload_failure)", secs(5.0)),
        "{}",
        d.log()
    );
    assert!(site.read("haproxy.cfg").contains("db-009"));
}

#[test]
fn back_off_stops_a_reload_storm() {
    let (server, site, d) = running("");
    site.write("check.fail", "");
    server.set_srv(D, 0, &[(10, 5, 3306, "db-009.example.com.")]);
    assert!(d.wait_log("check_cmd exited", secs(5.0)));
    let checks = site.checks();
    std::thread::sleep(secs(2.5));
    // 25 polls at 100 ms see the same failing output: no check is run again.
    assert_eq!(site.checks(), checks, "{}", d.log());
    assert_eq!(
        d.count("check_cmd exited"),
        1,
        "logged once, not every cycle"
    );
    // New output is tried at once.
    server.set_srv(D, 0, &[(10, 5, 3306, "db-010.example.com.")]);
    assert!(wait_until(secs(3.0), || site.checks() == checks + 1));
}

#[test]
fn dns_failures_keep_the_last_good_dest_and_recover() {
    for mode in [
        Mode::ServFail,
        Mode::Refused,
        Mode::NxDomain,
        Mode::NoData,
        Mode::Silent,
        Mode::Garbage,
        Mode::WrongId,
        Mode::OtherPort,
        Mode::TruncateNoTcp,
    ] {
        let server = DnsServer::start();
        two_backends(&server, 0);
        let site = Site::new();
        basic_config(&site, &server, "");
        let d = site.start();
        assert!(wait_until(secs(5.0), || site.reloads() == 1), "{mode:?}");
        let good = site.read("haproxy.cfg");
        server.set_mode(D, mode.clone());
        assert!(
            d.wait_log("_mysql._tcp.example.com: ", secs(5.0)),
            "{mode:?}: failure logged\n{}",
            d.log()
        );
        std::thread::sleep(secs(0.5));
        assert_eq!(site.read("haproxy.cfg"), good, "{mode:?}");
        assert_eq!(site.reloads(), 1, "{mode:?}");
        server.set_mode(D, Mode::Normal);
        server.set_srv(D, 0, &[(10, 5, 3306, "db-003.example.com.")]);
        assert!(
            wait_until(secs(5.0), || site.reloads() == 2),
            "{mode:?}: recovered\n{}",
            d.log()
        );
        assert!(d.wait_log("recovered", secs(1.0)), "{mode:?}");
    }
}

#[test]
fn an_answer_for_another_name_is_not_used() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    server.set_mode(D, Mode::OtherName);
    let site = Site::new();
    basic_config(&site, &server, "");
    let d = site.start();
    assert!(
        d.wait_log("no SRV records in the answer", secs(5.0)),
        "{}",
        d.log()
    );
    assert!(!site.exists("haproxy.cfg"));
}

#[test]
fn a_truncated_udp_answer_is_asked_again_over_tcp() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    server.set_mode(D, Mode::TruncateUdp);
    let site = Site::new();
    basic_config(&site, &server, "");
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    assert!(server.tcp_queries(D) >= 1);
}

#[test]
fn a_huge_answer_comes_through_tcp() {
    let server = DnsServer::start();
    let targets: Vec<String> = (0..300)
        .map(|i| format!("db-{i:03}.example.com."))
        .collect();
    let recs: Vec<(u16, u16, u16, &str)> =
        targets.iter().map(|t| (10, 5, 3306, t.as_str())).collect();
    server.set_srv(D, 0, &recs);
    let site = Site::new();
    basic_config(&site, &server, "");
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    assert_eq!(site.read("haproxy.cfg").lines().count(), 301);
    assert!(server.tcp_queries(D) >= 1);
}

#[test]
fn net_tcp_forces_tcp() {
    let (server, _site, _d) = running("net = \"tcp\"");
    let q = server.queries(D, RecordType::SRV);
    assert_eq!(server.tcp_queries(D), q);
}

#[test]
fn the_first_nameserver_dead_the_second_answers() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    let site = Site::new();
    basic_config(&site, &server, "");
    let text = site.read("srvd.toml").replace(
        &format!("nameservers = [{}]", server.toml_addr()),
        &format!("nameservers = [\"{dead_addr}\", {}]", server.toml_addr()),
    );
    site.write("srvd.toml", &text);
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    drop(dead);
}

#[test]
fn zero_records_is_a_failure_unless_allow_empty() {
    let (server, site, d) = running("");
    server.set_srv(D, 0, &[(0, 0, 0, ".")]);
    assert!(d.wait_log("no usable records", secs(5.0)), "{}", d.log());
    assert_eq!(site.read("haproxy.cfg").lines().count(), 3);
    drop(d);

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
    use hickory_proto::rr::{RData, Record, rdata::NULL};
    server.add_record(Record::from_rdata(
        support::dns::name("_mysql._tcp.real.example.com."),
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

#[test]
fn hostile_targets_never_reach_dest_and_are_logged_once() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    server.add_srv_raw_target(
        D,
        0,
        80,
        &[b"x\nserver evil 1.2.3.4:80", b"example", b"com"],
    );
    server.add_srv_raw_target(D, 0, 80, &[b"{{ 7*7 }}", b"com"]);
    let site = Site::new();
    basic_config(&site, &server, "");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    std::thread::sleep(secs(1.0));
    let out = site.read("haproxy.cfg");
    assert!(!out.contains("evil") && !out.contains("7*7"), "{out}");
    assert_eq!(out.lines().count(), 3);
    assert_eq!(
        d.count("dropped SRV record"),
        2,
        "each logged once\n{}",
        d.log()
    );
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

#[test]
fn cooldown_defers_a_change_and_applies_it_when_it_ends() {
    let (server, site, d) = running("cooldown = \"2s\"");
    server.set_srv(D, 0, &[(10, 5, 3306, "db-003.example.com.")]);
    std::thread::sleep(secs(1.0));
    assert_eq!(site.reloads(), 1, "still in cooldown\n{}", d.log());
    assert!(!site.read("haproxy.cfg").contains("db-003"));
    assert!(
        wait_until(secs(3.0), || site.reloads() == 2),
        "applied when the cooldown ended"
    );
    assert!(site.read("haproxy.cfg").contains("db-003"));
}

#[test]
fn wait_turns_a_burst_into_one_reload() {
    let (server, site, _d) = running("wait = { min = \"700ms\", max = \"5s\" }");
    for i in 3..8 {
        server.set_srv(D, 0, &[(10, 5, 3306, &format!("db-00{i}.example.com."))]);
        std::thread::sleep(secs(0.3));
    }
    assert!(wait_until(secs(3.0), || site.reloads() == 2));
    std::thread::sleep(secs(1.0));
    assert_eq!(site.reloads(), 2, "one reload for the burst");
    assert!(site.read("haproxy.cfg").contains("db-007"));
}

#[test]
fn shared_reload_commands_run_once_in_config_order() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    server.set_srv(
        "_redis._tcp.example.com.",
        0,
        &[(0, 0, 6379, "cache.example.com.")],
    );
    let site = Site::new();
    site.write("a.tmpl", support::TEMPLATE);
    site.write("b.tmpl", "{% for s in srvs %}{{ s.host }}\n{% endfor %}");
    let order = site.path("order.log");
    site.write(
        "srvd.toml",
        &format!(
            r#"nameservers = [{ns}]
interval = "100ms"
nohttpd = true
reload_cmd = "sh -c 'echo shared >> {o}'"

[[template]]
src = "a.tmpl"
dest = "a.cfg"
domain = "_mysql._tcp.example.com"

[[template]]
src = "b.tmpl"
dest = "b.cfg"
domain = "_redis._tcp.example.com"
reload_cmd = "sh -c 'echo own >> {o}'"

[[template]]
src = "b.tmpl"
dest = "c.cfg"
domains = ["_redis._tcp.example.com", "_mysql._tcp.example.com"]
"#,
            ns = server.toml_addr(),
            o = order.display()
        ),
    );
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site
        .read("order.log")
        .lines()
        .count()
        >= 2));
    std::thread::sleep(secs(0.5));
    assert_eq!(site.read("order.log"), "shared\nown\n");
    assert_eq!(
        site.read("c.cfg"),
        "cache.example.com\n",
        "srvs is the first domain"
    );
}

#[test]
fn staged_files_from_a_crash_are_removed_at_start() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "");
    site.write(".srvd-staged-0badc0de-haproxy.cfg", "half a fi");
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    assert!(files_with_prefix(site.dir.path(), ".srvd-staged-").is_empty());
}

#[test]
fn kill_9_during_applies_leaves_a_complete_file() {
    let server = DnsServer::start();
    let site = Site::new();
    basic_config(&site, &server, "");
    // Large outputs that differ every cycle, so kill -9 lands mid-apply often.
    let versions: Vec<Vec<String>> = (0..4)
        .map(|v| {
            (0..400)
                .map(|i| format!("h{v}-{i:03}.example.com."))
                .collect()
        })
        .collect();
    // A kill before the first write leaves no file; such rounds do not
    // count, so a slow machine runs more of them.
    let mut seen_complete = 0;
    for round in 0..60 {
        if seen_complete == 20 {
            break;
        }
        let v = &versions[round % versions.len()];
        let recs: Vec<(u16, u16, u16, &str)> = v.iter().map(|t| (1, 1, 3306, t.as_str())).collect();
        server.set_srv(D, 0, &recs);
        let mut d = site.start();
        std::thread::sleep(Duration::from_millis(150 + (round as u64 * 37) % 200));
        d.kill9();
        let out = site.read("haproxy.cfg");
        if out.is_empty() {
            continue;
        }
        assert!(
            out.starts_with("backend db\n") && out.ends_with(" check\n"),
            "round {round}: partial file"
        );
        assert_eq!(
            out.lines().count(),
            401,
            "round {round}: a complete version"
        );
        seen_complete += 1;
    }
    assert_eq!(seen_complete, 20, "complete files seen");
    let _d = site.start();
    assert!(wait_until(secs(5.0), || files_with_prefix(
        site.dir.path(),
        ".srvd-staged-"
    )
    .is_empty()));
}

#[test]
fn mode_and_owner_are_kept_or_set_and_drift_is_repaired() {
    use std::os::unix::fs::PermissionsExt;
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "");
    site.write("haproxy.cfg", "old\n");
    std::fs::set_permissions(
        site.path("haproxy.cfg"),
        std::fs::Permissions::from_mode(0o440),
    )
    .unwrap();
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    let mode = std::fs::metadata(site.path("haproxy.cfg")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o440, "the existing file's mode is kept");
    drop(d);

    let site = Site::new();
    basic_config(&site, &server, "mode = \"0600\"");
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    assert_eq!(
        std::fs::metadata(site.path("haproxy.cfg")).unwrap().mode() & 0o7777,
        0o600
    );
    std::fs::set_permissions(
        site.path("haproxy.cfg"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert!(
        wait_until(secs(5.0), || site.reloads() == 2),
        "mode drift is a change"
    );
    assert_eq!(
        std::fs::metadata(site.path("haproxy.cfg")).unwrap().mode() & 0o7777,
        0o600
    );
}

#[test]
fn a_template_error_leaves_dest_untouched() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "");
    site.write("haproxy.cfg.tmpl", "{{ srvs[0].nope }}\n");
    site.write("haproxy.cfg", "good\n");
    let d = site.start();
    assert!(d.wait_log("haproxy.cfg.tmpl:1", secs(5.0)), "{}", d.log());
    assert_eq!(site.read("haproxy.cfg"), "good\n");
    assert_eq!(site.reloads(), 0);
}

#[test]
fn a_command_past_its_timeout_is_killed_with_its_whole_group() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "timeout = \"500ms\"");
    let pidfile = site.path("grandchild.pid");
    let text = site.read("srvd.toml").replace(
        &format!("check_cmd = \"\"\"{}\"\"\"", site.check_cmd()),
        &format!(
            "check_cmd = \"\"\"sh -c 'sleep 30 & echo $! > {}; wait'\"\"\"",
            pidfile.display()
        ),
    );
    site.write("srvd.toml", &text);
    let d = site.start();
    assert!(
        d.wait_log("check_cmd timed out after 500ms", secs(6.0)),
        "{}",
        d.log()
    );
    let pid: i32 = site.read("grandchild.pid").trim().parse().unwrap();
    assert!(
        wait_until(secs(3.0), || nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            None
        )
        .is_err()),
        "the grandchild is gone"
    );
    assert!(!site.exists("haproxy.cfg"));
}

#[test]
fn sigterm_stops_promptly_even_during_a_check() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "timeout = \"30s\"");
    let text = site.read("srvd.toml").replace(
        &format!("check_cmd = \"\"\"{}\"\"\"", site.check_cmd()),
        &format!(
            "check_cmd = \"\"\"sh -c 'echo started > {}; sleep 30'\"\"\"",
            site.path("started").display()
        ),
    );
    site.write("srvd.toml", &text);
    let mut d = site.start();
    assert!(wait_until(secs(5.0), || site.exists("started")));
    let (code, took) = d.stop();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(files_with_prefix(site.dir.path(), ".srvd-staged-").is_empty());
}

#[test]
fn a_reload_interrupted_by_a_crash_is_run_at_the_next_start() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "");
    let out = site.run(&["--oneshot", "--no-reload"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(site.reloads(), 0);
    let checks = site.checks();
    // What a kill -9 between the rename and the end of the reload leaves.
    site.write(".srvd-reload-pending-haproxy.cfg", "");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    assert!(d.wait_log("owed reload done", secs(2.0)));
    assert!(!site.exists(".srvd-reload-pending-haproxy.cfg"));
    assert_eq!(
        site.checks(),
        checks,
        "dest was up to date: nothing to check"
    );
}

#[test]
fn without_rollback_the_template_stays_failing_until_its_reload_succeeds() {
    let (server, site, d) = running("disable_rollback_on_reload_failure = true");
    site.write("reload.fail", "");
    server.set_srv(D, 0, &[(10, 5, 3306, "db-009.example.com.")]);
    assert!(d.wait_log("kept (disable_rollback_on_reload_failure)", secs(5.0)));
    std::thread::sleep(secs(1.0));
    assert_eq!(
        d.count("recovered"),
        0,
        "an owed reload is not a recovery\n{}",
        d.log()
    );
    assert!(
        site.exists(".srvd-reload-pending-haproxy.cfg"),
        "a restart would reload"
    );
}
