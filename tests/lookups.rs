//! How srvd asks DNS, through the real binary and the test DNS server on
//! loopback: TTLs honoured (and the top bit of one ignored), truncated and
//! huge answers over TCP, `net = "tcp"`, and a dead first nameserver.

mod support;

use std::time::Instant;

use hickory_proto::rr::RecordType;
use support::dns::{DnsServer, Mode, dead_nameserver};
use support::*;

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

/// RFC 2181, section 8: a TTL with the most significant bit set is to be
/// treated as zero. Taken as it is, one such answer would pin srvd to its
/// records for 68 years and more.
#[test]
fn a_ttl_with_the_top_bit_set_counts_as_zero() {
    let server = DnsServer::start();
    server.set_srv(D, 0x8000_0000, &[(10, 5, 3306, "db-001.example.com.")]);
    let site = Site::new();
    basic_config(&site, &server, "");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    server.set_srv(D, 0xffff_ffff, &[(10, 5, 3306, "db-002.example.com.")]);
    assert!(
        wait_until(secs(5.0), || site.read("haproxy.cfg").contains("db-002")),
        "the change was never asked for\n{}",
        d.log()
    );
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

/// Answers too big for UDP come whole over TCP, the first one too, and a
/// small answer after a huge one is not mistaken for a part of it.
#[test]
fn a_huge_answer_then_a_small_one_are_rendered_whole() {
    let server = DnsServer::start();
    let first: Vec<String> = (0..300)
        .map(|i| format!("db-{i:03}.example.com."))
        .collect();
    let recs: Vec<(u16, u16, u16, &str)> =
        first.iter().map(|t| (10, 5, 3306, t.as_str())).collect();
    server.set_srv(D, 0, &recs);
    let site = Site::new();
    basic_config(&site, &server, "");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    assert_eq!(site.read("haproxy.cfg").lines().count(), 301);
    assert!(server.tcp_queries(D) >= 1, "the first one came over TCP");
    for (round, n) in [500usize, 2, 800, 1].into_iter().enumerate() {
        let targets: Vec<String> = (0..n)
            .map(|i| format!("r{round}-db-{i:04}.example.com."))
            .collect();
        let recs: Vec<(u16, u16, u16, &str)> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| ((i % 3) as u16, 5, 3306, t.as_str()))
            .collect();
        server.set_srv(D, 0, &recs);
        assert!(
            wait_until(secs(10.0), || site.reloads() == round + 2),
            "{n} records\n{}",
            d.log()
        );
        let out = site.read("haproxy.cfg");
        assert_eq!(
            out.lines().count(),
            n + 1,
            "{n} records: every one rendered"
        );
        for t in &targets {
            assert!(out.contains(&format!(" {t}:3306 ")), "{t} missing");
        }
    }
    assert!(server.tcp_queries(D) >= 2, "the big ones came over TCP");
}

#[test]
fn net_tcp_forces_tcp() {
    let (server, _site, _d) = running("net = \"tcp\"");
    let q = server.queries(D, RecordType::SRV);
    assert_eq!(server.tcp_queries(D), q);
}

#[test]
fn with_the_first_nameserver_dead_changes_are_still_followed_every_interval() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let dead = dead_nameserver();
    let site = Site::new();
    let addr = config_with_status(&site, &server, "");
    site.set_key(
        "nameservers",
        &format!(
            "[\"{}\", {}]",
            dead.local_addr().unwrap(),
            server.toml_addr()
        ),
    );
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    let started = Instant::now();
    for round in 0..5 {
        server.set_srv(
            D,
            0,
            &[(10, 5, 3306, &format!("db-{round:03}.example.com."))],
        );
        assert!(
            wait_until(secs(3.0), || site.reloads() == round + 2),
            "round {round}\n{}",
            d.log()
        );
    }
    assert!(
        started.elapsed() < secs(10.0),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status_json(&addr)["Ok"], true);
    drop(dead);
}

/// Consul DNS by default: 40 instances at TTL 0, shuffled, and over UDP
/// only what fits the client's EDNS size, without TC. Trusting one UDP
/// answer would rewrite dest and reload at every poll, each file a random
/// subset; srvd confirms over TCP, settles on all 40, names the cause once
/// in the log and in /status with the fix, and rewrites nothing more.
#[test]
fn a_server_that_trims_udp_answers_without_tc_causes_no_rewrite() {
    let server = DnsServer::start();
    let targets: Vec<String> = (1..=40)
        .map(|i| format!("mysql-replica-{i:02}.node.dc1.consul."))
        .collect();
    let recs: Vec<(u16, u16, u16, &str)> =
        targets.iter().map(|t| (1, 1, 3306, t.as_str())).collect();
    server.set_srv(D, 0, &recs);
    server.set_trim_udp(true);
    let site = Site::new();
    let addr = config_with_status(&site, &server, "");
    site.write(
        "haproxy.cfg.tmpl",
        include_str!("fixtures/field/04-consul-udp-trim/t.tmpl"),
    );
    let d = site.start();
    let servers = |site: &Site| site.read("haproxy.cfg").matches("  server ").count();
    // The first answer fills the UDP payload size: with nothing to compare
    // it with, it is confirmed over TCP before dest is first written, so
    // dest never holds a trimmed set: one write, one reload, and no more.
    assert!(
        wait_until(secs(10.0), || site.reloads() == 1),
        "never reloaded\n{}",
        d.log()
    );
    assert_eq!(
        servers(&site),
        40,
        "the first write has every instance\n{}",
        d.log()
    );
    let content = site.read("haproxy.cfg");
    assert_polls(&server, &d, 30, "a trimming server");
    assert_eq!(site.reloads(), 1, "no reload\n{}", d.log());
    assert_eq!(site.read("haproxy.cfg"), content, "no rewrite");
    assert_eq!(
        d.count("trims its UDP answers"),
        1,
        "the cause, logged once\n{}",
        d.log()
    );
    assert!(d.log().contains("net = \"tcp\""), "{}", d.log());
    let status = status_json(&addr);
    let warning = status["templates"][0]["domains"][0]["warning"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(warning.contains("net = \"tcp\""), "{status}");
}

/// A UDP answer that is a real change (a target gone) is confirmed over
/// TCP and then followed, from a server that does not trim.
#[test]
fn a_target_gone_is_confirmed_over_tcp_and_followed() {
    let (server, site, d) = running("");
    let tcp_before = server.tcp_queries(D);
    server.set_srv(D, 0, &[(10, 5, 3306, "db-001.example.com.")]);
    assert!(
        wait_until(secs(5.0), || !site.read("haproxy.cfg").contains("db-002")),
        "{}",
        d.log()
    );
    assert!(server.tcp_queries(D) > tcp_before, "confirmed over TCP");
    assert_eq!(d.count("trims its UDP answers"), 0, "{}", d.log());
}

/// Name servers are asked in the order listed, the next one only when one
/// fails: a faster second server that answers differently (a secondary
/// lagging behind) is never asked while the first answers, so srvd never
/// alternates between the two answers.
#[test]
fn nameservers_are_asked_in_the_order_given_not_by_speed() {
    let first = DnsServer::start();
    two_backends(&first, 0);
    first.set_delay(std::time::Duration::from_millis(150));
    let second = DnsServer::start();
    second.set_srv(D, 0, &[(10, 5, 3306, "db-lagging.example.com.")]);
    let site = Site::new();
    basic_config(&site, &first, "");
    site.set_key("dns_timeout", "\"2s\"");
    site.set_key(
        "nameservers",
        &format!("[{}, {}]", first.toml_addr(), second.toml_addr()),
    );
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    assert_polls(&first, &d, 20, "two servers");
    assert_eq!(second.queries(D, RecordType::SRV), 0, "{}", d.log());
    assert_eq!(site.reloads(), 1);
    assert!(!site.read("haproxy.cfg").contains("db-lagging"));
}

/// A SERVFAIL is a failure of that server: the next one is asked, and
/// the first one again at the next lookup once it answers.
#[test]
fn a_servfail_from_the_first_server_hands_over_to_the_second_and_back() {
    let first = DnsServer::start();
    two_backends(&first, 0);
    let second = DnsServer::start();
    second.set_srv(D, 0, &[(10, 5, 3306, "db-003.example.com.")]);
    let site = Site::new();
    basic_config(&site, &first, "");
    site.set_key(
        "nameservers",
        &format!("[{}, {}]", first.toml_addr(), second.toml_addr()),
    );
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    first.set_mode(D, Mode::ServFail);
    assert!(
        wait_until(secs(5.0), || site.read("haproxy.cfg").contains("db-003")),
        "{}",
        d.log()
    );
    first.set_mode(D, Mode::Normal);
    assert!(
        wait_until(secs(5.0), || site.read("haproxy.cfg").contains("db-002")),
        "{}",
        d.log()
    );
}

/// srvd.toml(5): `dns_timeout` is how long one query waits, `dns_attempts`
/// how many times it is sent. With the defaults (2 s, 2 attempts) a silent
/// server gets exactly 2 queries over about 4 s, and the error names the
/// server, the attempts and the timeout.
#[test]
fn a_timeout_takes_what_the_docs_say_and_names_the_servers() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    server.set_mode(D, Mode::Silent);
    let site = Site::new();
    let text = basic_config(&site, &server, "")
        .replace("dns_timeout = \"300ms\"\n", "")
        .replace("dns_attempts = 1\n", "");
    site.write("srvd.toml", &text);
    let started = Instant::now();
    let out = site.run(&["--oneshot"]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(server.queries(D, RecordType::SRV), 2, "{stderr}");
    assert!(
        (secs(3.8)..secs(6.0)).contains(&took),
        "took {took:?}\n{stderr}"
    );
    assert!(stderr.contains(&server.addr.to_string()), "{stderr}");
    assert!(stderr.contains("2 attempts of 2s each"), "{stderr}");
}

/// With two silent servers, each gets `dns_attempts` queries, one at a
/// time (4 × `dns_timeout` in all), and the error names both.
#[test]
fn a_timeout_of_every_server_asks_each_attempts_times_and_names_them_all() {
    let servers = [DnsServer::start(), DnsServer::start()];
    for s in &servers {
        two_backends(s, 0);
        s.set_mode(D, Mode::Silent);
    }
    let site = Site::new();
    basic_config(&site, &servers[0], "");
    site.set_key("dns_attempts", "2");
    site.set_key(
        "nameservers",
        &format!("[{}, {}]", servers[0].toml_addr(), servers[1].toml_addr()),
    );
    let started = Instant::now();
    let out = site.run(&["--oneshot"]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for s in &servers {
        assert_eq!(s.queries(D, RecordType::SRV), 2, "{stderr}");
        assert!(stderr.contains(&s.addr.to_string()), "{stderr}");
    }
    assert!(
        (secs(1.1)..secs(3.0)).contains(&took),
        "4 queries of 300 ms one after the other: {took:?}\n{stderr}"
    );
    assert!(
        stderr.contains("2 attempts of 0.3s each, per server"),
        "{stderr}"
    );
}

/// However many names expire at once, srvd has at most 64 lookups in flight
/// (each holds a socket and its buffers): the rest are asked as earlier ones
/// are answered, and every name gets its answer.
#[test]
fn lookups_in_flight_are_bounded_and_every_name_is_answered() {
    const NAMES: usize = 150;
    let server = DnsServer::start();
    let domains: Vec<String> = (0..NAMES)
        .map(|i| format!("_mysql._tcp.pool-{i:03}.example.com."))
        .collect();
    for (i, d) in domains.iter().enumerate() {
        server.set_srv(d, 300, &[(10, 5, 3306, &format!("db-{i:03}.example.com."))]);
    }
    server.hold();
    let site = Site::new();
    let list: Vec<String> = domains.iter().map(|d| format!("{d:?}")).collect();
    let template = "{% for name, records in domains %}{% for s in records %}{{ s.host }}\n{% endfor %}{% endfor %}";
    site.write("pools.tmpl", template);
    let config = basic_config(&site, &server, "")
        .replace("dns_timeout = \"300ms\"", "dns_timeout = \"30s\"")
        .replace("haproxy.cfg.tmpl", "pools.tmpl")
        .replace(
            "domain = \"_mysql._tcp.example.com\"",
            &format!("domains = [{}]", list.join(", ")),
        );
    site.write("srvd.toml", &config);
    let d = site.start();
    assert!(
        wait_until(secs(10.0), || server.held() >= 64),
        "{} queries held\n{}",
        server.held(),
        d.log()
    );
    // The 64 wait for their answers, which do not come: no 65th is sent.
    std::thread::sleep(secs(1.0));
    assert_eq!(server.held(), 64, "lookups in flight\n{}", d.log());
    server.release();
    assert!(
        wait_until(secs(10.0), || site.reloads() == 1),
        "never written\n{}",
        d.log()
    );
    let hosts: Vec<String> = (0..NAMES)
        .map(|i| format!("db-{i:03}.example.com"))
        .collect();
    assert_eq!(site.read("haproxy.cfg"), hosts.join("\n") + "\n");
    let asked: usize = domains
        .iter()
        .map(|d| server.queries(d, RecordType::SRV))
        .sum();
    assert_eq!(asked, NAMES, "each name asked once");
}
