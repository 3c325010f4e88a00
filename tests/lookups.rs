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
