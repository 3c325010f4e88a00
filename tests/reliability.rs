//! The reliability and security suite, in process: DNS faults per domain,
//! hostile DNS data, command faults, symbolic links and crash leftovers,
//! malformed templates, signals at awkward moments, status endpoint abuse and
//! a short memory soak, all through the real binary. What needs root and
//! mounts (read-only and full filesystems, bind mounts) and the long runs
//! (1,000 kill -9, the 100,000-cycle soak, fuzzing) are in tests/reliability/.
//!
//! Each test counts the cases it tried in its assertions' messages; the
//! README's reliability table is the sum of them.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::SRV;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::dns::{DnsServer, Mode, name};
use support::*;

const D: &str = "_mysql._tcp.example.com.";
const E: &str = "_redis._tcp.example.com.";

// --- helpers ------------------------------------------------------------------

fn status(addr: &str) -> serde_json::Value {
    let (code, body) = http_get(addr, "/status");
    if code != 200 {
        return serde_json::Value::Null;
    }
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}

/// A value from /metrics, e.g. `srvd_cycles_total`.
fn metric(addr: &str, key: &str) -> Option<f64> {
    let (_, body) = http_get(addr, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Replaces the line `key = ...` of the site's srvd.toml (or adds it).
fn set_key(site: &Site, key: &str, value: &str) {
    let text = site.read("srvd.toml");
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} = ")) {
                found = true;
                format!("{key} = {value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !found {
        out.insert(0, format!("{key} = {value}"));
    }
    site.write("srvd.toml", &(out.join("\n") + "\n"));
}

/// basic_config with the status endpoint on a free port; returns its address.
fn config_with_status(site: &Site, server: &DnsServer, extra: &str) -> String {
    let port = free_port();
    let text = basic_config(site, server, &format!("status_port = {port}\n{extra}"))
        .replace("nohttpd = true\n", "");
    site.write("srvd.toml", &text);
    format!("127.0.0.1:{port}")
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); it is gone for our purpose.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = state
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    kill(Pid::from_raw(pid), None).is_ok() && !zombie
}

fn read_pid(site: &Site, name: &str) -> Option<i32> {
    site.read(name).trim().parse().ok()
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: Pid) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Lines logged after byte `mark` of the log that contain `pat`.
fn count_since(d: &Daemon, mark: usize, pat: &str) -> usize {
    d.log()[mark..].lines().filter(|l| l.contains(pat)).count()
}

fn two_backends(server: &DnsServer, domain: &str, ttl: u32) {
    server.set_srv(
        domain,
        ttl,
        &[
            (10, 5, 3306, "db-001.example.com."),
            (10, 5, 3306, "db-002.example.com."),
        ],
    );
}

// --- 1. DNS faults, per domain --------------------------------------------------

/// One template over two domains; the first is made to misbehave while the
/// second keeps answering.
const TWO_DOMAINS: &str = "{% for s in srvs %}server {{ s.host }}:{{ s.port }}\n{% endfor %}\
{% for s in domains[\"_redis._tcp.example.com\"] %}cache {{ s.host }}:{{ s.port }}\n{% endfor %}";

fn two_domain_site(server: &DnsServer) -> (Site, String) {
    let site = Site::new();
    let addr = config_with_status(&site, server, "");
    let text = site.read("srvd.toml").replace(
        "domain = \"_mysql._tcp.example.com\"",
        "domains = [\"_mysql._tcp.example.com\", \"_redis._tcp.example.com\"]",
    );
    site.write("srvd.toml", &text);
    site.write("haproxy.cfg.tmpl", TWO_DOMAINS);
    (site, addr)
}

/// (fault, what /status must say about the faulty domain)
const DNS_FAULTS: &[(Mode, &str)] = &[
    (Mode::Silent, "timeout"),
    (Mode::ServFail, "SERVFAIL"),
    (Mode::Refused, "REFUSED"),
    (Mode::NxDomain, "NXDOMAIN"),
    (Mode::NoData, "no SRV records in the answer"),
    (Mode::TruncateNoTcp, "truncated"),
    (Mode::Garbage, "decoding error"),
    (Mode::WrongId, "timeout"),
    (Mode::OtherPort, "timeout"),
    (Mode::OtherName, "no SRV records in the answer"),
];

#[test]
fn dns_faults_of_one_domain_keep_the_last_good_dest_say_why_and_recover() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    server.set_srv(E, 0, &[(0, 0, 6379, "cache-1.example.com.")]);
    let (site, addr) = two_domain_site(&server);
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    let mut tried = 0;
    for (round, (mode, why)) in DNS_FAULTS.iter().enumerate() {
        let reloads = round + 1;
        let good = site.read("haproxy.cfg");
        let mark = d.log().len();
        server.set_mode(D, mode.clone());
        // The healthy domain changes too: nothing may be written meanwhile.
        server.set_srv(
            E,
            0,
            &[(0, 0, 6379, &format!("cache-{round}b.example.com."))],
        );
        let mut error = String::new();
        assert!(
            wait_until(secs(5.0), || {
                let s = status(&addr);
                let t = &s["templates"][0];
                error = t["domains"][0]["error"].as_str().unwrap_or("").to_owned();
                t["ok"] == false && !error.is_empty() && t["domains"][1]["error"].is_null()
            }),
            "{mode:?}: /status names the failing domain\n{}",
            d.log()
        );
        assert!(
            error.contains(why),
            "{mode:?}: status says {error:?}, expected {why:?}"
        );
        let s = status(&addr);
        let template_error = s["templates"][0]["error"].as_str().unwrap_or("");
        assert!(
            template_error.contains("_mysql._tcp.example.com"),
            "{mode:?}: the template's error names the domain: {template_error:?}"
        );
        std::thread::sleep(secs(0.6));
        assert_eq!(
            site.read("haproxy.cfg"),
            good,
            "{mode:?}: last good dest kept"
        );
        assert_eq!(site.reloads(), reloads, "{mode:?}: no reload");
        assert_eq!(
            count_since(
                &d,
                mark,
                &format!(
                    "WARN  {}: _mysql._tcp.example.com: {error}",
                    site.path("haproxy.cfg").display()
                )
            ),
            1,
            "{mode:?}: logged once, not every cycle\n{}",
            d.log()
        );

        server.set_mode(D, Mode::Normal);
        server.set_srv(
            D,
            0,
            &[(10, 5, 3306, &format!("db-{round:03}.example.com."))],
        );
        assert!(
            wait_until(secs(5.0), || site.reloads() == reloads + 1),
            "{mode:?}: recovered without help\n{}",
            d.log()
        );
        assert!(
            wait_until(secs(2.0), || status(&addr)["Ok"] == true),
            "{mode:?}"
        );
        let out = site.read("haproxy.cfg");
        assert!(out.contains(&format!("db-{round:03}")), "{mode:?}: {out}");
        assert!(out.contains(&format!("cache-{round}b")), "{mode:?}: {out}");
        tried += 1;
    }
    assert_eq!(tried, DNS_FAULTS.len());
}

/// A UDP front for a DNS server that races every real answer with forged
/// ones pointing at evil.example.com: the right ID from another port, and a
/// wrong ID from the right port. Returns its address. `control` sends the
/// right-ID forgery from the right port instead, which a client must accept:
/// proof that the forgeries really reach it.
fn spoofing_front(real: SocketAddr, control: bool) -> SocketAddr {
    let front = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = front.local_addr().unwrap();
    std::thread::spawn(move || {
        let other = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let upstream = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        upstream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, client)) = front.recv_from(&mut buf) else {
                return;
            };
            let query = buf[..n].to_vec();
            if let Ok(q) = Message::from_vec(&query) {
                let mut forged = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
                forged.metadata.authoritative = true;
                forged.metadata.recursion_desired = q.metadata.recursion_desired;
                if let Some(question) = q.queries.first() {
                    forged.add_query(question.clone());
                    forged.add_answer(Record::from_rdata(
                        question.name().clone(),
                        0,
                        RData::SRV(SRV::new(0, 0, 80, name("evil.example.com."))),
                    ));
                }
                let right_id = forged.to_vec().unwrap();
                forged.metadata.id = q.metadata.id.wrapping_add(1);
                let wrong_id = forged.to_vec().unwrap();
                let from = if control { &front } else { &other };
                let _ = from.send_to(&right_id, client);
                let _ = front.send_to(&wrong_id, client);
            }
            let _ = upstream.send_to(&query, real);
            if let Ok(n) = upstream.recv(&mut buf) {
                std::thread::sleep(Duration::from_millis(5));
                let _ = front.send_to(&buf[..n], client);
            }
        }
    });
    addr
}

#[test]
fn spoofed_answers_racing_the_real_one_are_ignored() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let front = spoofing_front(server.addr, false);
    let site = Site::new();
    basic_config(&site, &server, "");
    set_key(&site, "dns_timeout", "\"1s\"");
    set_key(&site, "nameservers", &format!("[\"{front}\"]"));
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    for round in 0..5 {
        server.set_srv(
            D,
            0,
            &[(10, 5, 3306, &format!("db-{round:03}.example.com."))],
        );
        assert!(
            wait_until(secs(5.0), || site.reloads() == round + 2),
            "round {round}\n{}",
            d.log()
        );
        let out = site.read("haproxy.cfg");
        assert!(
            !out.contains("evil"),
            "a forged answer reached dest:\n{out}"
        );
        assert_eq!(out.lines().count(), 2, "{out}");
    }
    drop(d);

    // The control: the same forgery from the port asked is taken for the answer.
    let control = Site::new();
    basic_config(&control, &server, "");
    set_key(
        &control,
        "nameservers",
        &format!("[\"{}\"]", spoofing_front(server.addr, true)),
    );
    let _d = control.start();
    assert!(wait_until(secs(5.0), || control
        .read("haproxy.cfg")
        .contains("evil.example.com")));
}

#[test]
fn a_huge_answer_then_a_small_one_are_rendered_whole() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let site = Site::new();
    basic_config(&site, &server, "");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
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
fn with_the_first_nameserver_dead_changes_are_still_followed_every_interval() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    // Bound and silent: queries to it time out (a dead server, not a refused port).
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let site = Site::new();
    let addr = config_with_status(&site, &server, "");
    set_key(
        &site,
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
    assert_eq!(status(&addr)["Ok"], true);
    drop(dead);
}

// --- 2. Hostile DNS data --------------------------------------------------------

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
    // Port 0, and "." among other records.
    server.add_record(srv_record(D, 1, 1, 0, name("port-zero.example.com.")));
    server.add_record(srv_record(D, 1, 1, 80, Name::root()));
    hostile += 2;
    assert!(hostile >= 30);

    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    // Twenty more cycles with the same answer: nothing is logged again.
    std::thread::sleep(secs(2.0));
    let out = site.read("haproxy.cfg");
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

/// SRV records as raw labels, encoded by hand: what hickory refuses to build
/// (a 64-octet label, a 254-octet name) can still arrive on the wire.
type RawSrv = (u16, u16, u16, u32, Vec<Vec<u8>>);

/// A UDP DNS server that answers every query with the records in `answers`.
fn raw_server(answers: std::sync::Arc<std::sync::Mutex<Vec<RawSrv>>>) -> SocketAddr {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                return;
            };
            let q = &buf[..n];
            if n < 17 {
                continue;
            }
            // The question: the name's labels, then type and class.
            let mut end = 12;
            while end < n && q[end] != 0 {
                end += 1 + q[end] as usize;
            }
            let question_end = end + 5;
            if question_end > n {
                continue;
            }
            let records = answers.lock().unwrap().clone();
            let mut out = Vec::new();
            out.extend_from_slice(&q[..2]);
            out.extend_from_slice(&[0x84 | (q[2] & 1), 0x00, 0, 1]);
            out.extend_from_slice(&(records.len() as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0]);
            out.extend_from_slice(&q[12..question_end]);
            for (priority, weight, port, ttl, labels) in records {
                let mut rdata = Vec::new();
                rdata.extend_from_slice(&priority.to_be_bytes());
                rdata.extend_from_slice(&weight.to_be_bytes());
                rdata.extend_from_slice(&port.to_be_bytes());
                for l in &labels {
                    rdata.push(l.len() as u8);
                    rdata.extend_from_slice(l);
                }
                rdata.push(0);
                out.extend_from_slice(&[0xc0, 0x0c, 0, 33, 0, 1]);
                out.extend_from_slice(&ttl.to_be_bytes());
                out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                out.extend_from_slice(&rdata);
            }
            let _ = sock.send_to(&out, peer);
        }
    });
    addr
}

fn labels(host: &str) -> Vec<Vec<u8>> {
    host.split('.').map(|l| l.as_bytes().to_vec()).collect()
}

#[test]
fn names_too_long_for_dns_fail_the_lookup_and_keep_the_last_good_dest() {
    let records = std::sync::Arc::new(std::sync::Mutex::new(vec![(
        1,
        1,
        3306,
        0,
        labels("db-001.example.com"),
    )]));
    let server_addr = raw_server(records.clone());
    let site = Site::new();
    site.write("haproxy.cfg.tmpl", TEMPLATE);
    site.write(
        "srvd.toml",
        &format!(
            "src = \"haproxy.cfg.tmpl\"\ndest = \"haproxy.cfg\"\ndomain = \"_mysql._tcp.example.com\"\n\
             nameservers = [\"{server_addr}\"]\ndns_timeout = \"300ms\"\ndns_attempts = 1\nedns0_size = 0\n\
             reload_cmd = \"\"\"{}\"\"\"\ninterval = \"100ms\"\nnohttpd = true\n",
            site.reload_cmd()
        ),
    );
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    let good = site.read("haproxy.cfg");
    assert!(good.contains("db-001.example.com"), "{good}");

    let label64 = vec![b'a'; 64];
    let name254: Vec<Vec<u8>> = vec![
        vec![b'a'; 63],
        vec![b'b'; 63],
        vec![b'c'; 63],
        vec![b'd'; 62],
    ];
    assert_eq!(name254.iter().map(|l| l.len() + 1).sum::<usize>() - 1, 254);
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "a 64-octet label",
            vec![label64, b"example".to_vec(), b"com".to_vec()],
        ),
        ("a 254-octet name", name254),
    ];
    let mut tried = 0;
    for (what, target) in cases {
        let mark = d.log().len();
        *records.lock().unwrap() = vec![
            (1, 1, 3306, 0, labels("db-002.example.com")),
            (1, 1, 80, 0, target),
        ];
        assert!(
            wait_until(secs(5.0), || count_since(&d, mark, "WARN") >= 1),
            "{what}: the failure is logged\n{}",
            d.log()
        );
        std::thread::sleep(secs(1.0));
        assert_eq!(
            site.read("haproxy.cfg"),
            good,
            "{what}: last good dest kept"
        );
        assert_eq!(
            count_since(&d, mark, "WARN"),
            1,
            "{what}: logged once\n{}",
            d.log()
        );
        assert_eq!(site.reloads(), 1, "{what}");
        tried += 1;
    }
    *records.lock().unwrap() = vec![(1, 1, 3306, 0, labels("db-003.example.com"))];
    assert!(
        wait_until(secs(5.0), || site.reloads() == 2),
        "recovered\n{}",
        d.log()
    );
    assert!(site.read("haproxy.cfg").contains("db-003"));
    assert_eq!(tried, 2);
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

// --- 3. Command faults ------------------------------------------------------------

/// The site's config with `check_cmd` and `reload_cmd` replaced (None: keep).
fn commands(site: &Site, check: Option<&str>, reload: Option<&str>) {
    if let Some(c) = check {
        set_key(site, "check_cmd", &format!("\"\"\"{c}\"\"\""));
    }
    if let Some(r) = reload {
        set_key(site, "reload_cmd", &format!("\"\"\"{r}\"\"\""));
    }
}

/// A command that starts `sleep 300` in the background, writes its pid to
/// `pidfile`, and exits with `code` at once.
fn leaves_a_child(pidfile: &Path, code: i32) -> String {
    format!(
        "sh -c 'sleep 300 & echo $! > {}; exit {code}'",
        pidfile.display()
    )
}

#[test]
fn a_check_that_exits_leaving_a_child_running_has_its_group_killed_by_the_timeout() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let mut tried = 0;
    for code in [1, 0] {
        let site = Site::new();
        basic_config(&site, &server, "timeout = \"500ms\"");
        let pidfile = site.path("child.pid");
        commands(&site, Some(&leaves_a_child(&pidfile, code)), None);
        let d = site.start();
        assert!(wait_until(secs(5.0), || read_pid(&site, "child.pid").is_some()));
        let pid = read_pid(&site, "child.pid").unwrap();
        // The timeout, the grace between SIGTERM and SIGKILL, and a margin.
        let gone = wait_until(secs(4.0), || !alive(pid));
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        assert!(
            gone,
            "check exiting {code}: its background child outlived the timeout\n{}",
            d.log()
        );
        tried += 1;
    }
    assert_eq!(tried, 2);
}

#[test]
fn a_reload_that_hangs_is_killed_with_its_group_and_rolled_back() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let site = Site::new();
    basic_config(&site, &server, "timeout = \"500ms\"");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    let good = site.read("haproxy.cfg");
    drop(d);
    let pidfile = site.path("child.pid");
    commands(
        &site,
        None,
        Some(&format!(
            "sh -c 'sleep 300 & echo $! > {}; echo $$ > {}; wait'",
            pidfile.display(),
            site.path("leader.pid").display()
        )),
    );
    let d = site.start();
    server.set_srv(D, 0, &[(10, 5, 3306, "db-009.example.com.")]);
    assert!(
        d.wait_log("reload_cmd timed out after 500ms", secs(6.0)),
        "{}",
        d.log()
    );
    assert!(d.wait_log("rolled back to the previous content", secs(2.0)));
    assert_eq!(site.read("haproxy.cfg"), good, "rolled back");
    for f in ["child.pid", "leader.pid"] {
        let pid = read_pid(&site, f).unwrap();
        assert!(wait_until(secs(3.0), || !alive(pid)), "{f}: still running");
    }
    assert!(files_with_prefix(site.dir.path(), ".srvd-staged-").is_empty());
}

#[test]
fn megabytes_of_output_keep_memory_and_the_log_bounded() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let site = Site::new();
    // (case, timeout, check_cmd, reload_cmd, what the log says when it is over)
    let cases = [
        (
            "check: 32 MiB without a newline, then exit 1",
            "20s",
            Some("sh -c 'head -c 33554432 /dev/zero | tr \"\\\\0\" x; exit 1'"),
            None,
            "check_cmd exited with status 1",
        ),
        (
            "reload: 1,000,000 lines on stdout and on stderr, then exit 0",
            "20s",
            None,
            Some("sh -c 'seq 1000000; seq 1000000 >&2'"),
            "more lines not logged",
        ),
        (
            "reload: prints until its timeout kills it",
            "2s",
            None,
            Some("yes"),
            "reload_cmd timed out",
        ),
    ];
    let mut tried = 0;
    for (round, (what, timeout, check, reload, over)) in cases.into_iter().enumerate() {
        basic_config(&site, &server, &format!("timeout = \"{timeout}\""));
        let d = site.start();
        assert!(
            wait_until(secs(5.0), || d.log().contains("ready:")),
            "{}",
            d.log()
        );
        std::thread::sleep(secs(0.3));
        let before = rss_kib(d.pid());
        drop(d);
        commands(&site, check, reload);
        let d = site.start();
        server.set_srv(
            D,
            0,
            &[(10, 5, 3306, &format!("db-{round:03}.example.com."))],
        );
        let mut peak = 0;
        let done = wait_until(secs(30.0), || {
            peak = peak.max(rss_kib(d.pid()));
            d.log().contains(over)
        });
        assert!(done, "{what}\n{}", d.log());
        std::thread::sleep(secs(0.3));
        let grew = peak.saturating_sub(before);
        assert!(grew < 16 * 1024, "{what}: RSS grew by {grew} KiB");
        let output_lines = d
            .log()
            .lines()
            .filter(|l| l.contains("(stdout)") || l.contains("(stderr)"))
            .count();
        assert!(
            output_lines <= 100,
            "{what}: {output_lines} output lines logged"
        );
        assert!(
            d.log().lines().all(|l| l.len() < 8 * 1024),
            "{what}: a log line over 8 KiB"
        );
        tried += 1;
    }
    assert_eq!(tried, 3);
}

#[test]
fn missing_or_unexecutable_commands_leave_dest_untouched_or_rolled_back() {
    let server = DnsServer::start();
    let scratch = Site::new();
    let script = scratch.write("not-executable.sh", "#!/bin/sh\nexit 0\n");
    let cases: [(&str, Option<String>, Option<String>, &str); 5] = [
        (
            "check_cmd missing",
            Some("/nonexistent/haproxy -c -f {{ src }}".into()),
            None,
            "check_cmd could not be started",
        ),
        (
            "check_cmd not executable",
            Some(format!("{} {{{{ src }}}}", script.display())),
            None,
            "check_cmd could not be started",
        ),
        (
            "check_cmd a directory",
            Some(format!("{} {{{{ src }}}}", scratch.dir.path().display())),
            None,
            "check_cmd could not be started",
        ),
        (
            "reload_cmd missing",
            None,
            Some("/nonexistent/systemctl reload haproxy".into()),
            "reload_cmd could not be started",
        ),
        (
            "reload_cmd not executable",
            None,
            Some(script.display().to_string()),
            "reload_cmd could not be started",
        ),
    ];
    let mut tried = 0;
    for (round, (what, check, reload, says)) in cases.iter().enumerate() {
        let site = Site::new();
        basic_config(&site, &server, "");
        two_backends(&server, D, 0);
        let d = site.start();
        assert!(wait_until(secs(5.0), || site.reloads() == 1), "{what}");
        // The reload's marker is removed just after it returns.
        std::thread::sleep(secs(0.3));
        let good = site.read("haproxy.cfg");
        drop(d);
        commands(&site, check.as_deref(), reload.as_deref());
        let d = site.start();
        server.set_srv(
            D,
            0,
            &[(10, 5, 3306, &format!("db-1{round:02}.example.com."))],
        );
        assert!(d.wait_log(says, secs(5.0)), "{what}\n{}", d.log());
        std::thread::sleep(secs(0.5));
        assert_eq!(site.read("haproxy.cfg"), good, "{what}: dest as it was");
        assert_eq!(
            d.count(&format!(
                "WARN  {}: {says}",
                site.path("haproxy.cfg").display()
            )),
            1,
            "{what}: logged once\n{}",
            d.log()
        );
        assert!(
            files_with_prefix(site.dir.path(), ".srvd-staged-").is_empty(),
            "{what}"
        );
        tried += 1;
    }
    assert_eq!(tried, 5);
}

#[test]
fn failing_reloads_do_not_storm() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let mut tried = 0;
    for extra in ["", "disable_rollback_on_reload_failure = true"] {
        two_backends(&server, D, 0);
        let site = Site::new();
        basic_config(&site, &server, extra);
        let d = site.start();
        assert!(wait_until(secs(5.0), || site.reloads() == 1));
        std::thread::sleep(secs(0.3));
        drop(d);
        let attempts = site.path("attempts.log");
        commands(
            &site,
            None,
            Some(&format!("sh -c 'echo x >> {}; exit 1'", attempts.display())),
        );
        let d = site.start();
        server.set_srv(D, 0, &[(10, 5, 3306, "db-003.example.com.")]);
        assert!(
            d.wait_log("reload_cmd exited with status 1", secs(5.0)),
            "{}",
            d.log()
        );
        // 50 intervals of 100 ms with the same failing change.
        std::thread::sleep(secs(5.0));
        assert_eq!(
            site.read("attempts.log").lines().count(),
            1,
            "{extra:?}: one reload per back-off (10 s), not one per interval\n{}",
            d.log()
        );
        assert_eq!(
            d.count(&format!(
                "WARN  {}: reload_cmd exited with status 1",
                site.path("haproxy.cfg").display()
            )),
            1,
            "{extra:?}: logged once\n{}",
            d.log()
        );
        tried += 1;
    }
    assert_eq!(tried, 2);
}

/// With `disable_rollback_on_reload_failure`, dest keeps content the
/// middleware has not loaded until a reload succeeds: the template is not
/// healthy meanwhile, and /status must say so.
#[test]
fn a_kept_file_whose_reload_failed_stays_failing_until_a_reload_succeeds() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let site = Site::new();
    let addr = config_with_status(&site, &server, "disable_rollback_on_reload_failure = true");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    site.write("reload.fail", "");
    server.set_srv(D, 0, &[(10, 5, 3306, "db-003.example.com.")]);
    assert!(
        d.wait_log("reload_cmd exited with status 1", secs(5.0)),
        "{}",
        d.log()
    );
    // 15 intervals later the reload is still owed.
    std::thread::sleep(secs(1.5));
    let s = status(&addr);
    assert_eq!(s["templates"][0]["ok"], false, "{s}");
    assert!(
        s["templates"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("reload_cmd"),
        "{s}"
    );
    assert_eq!(d.count("recovered"), 0, "{}", d.log());
    // The retry after the back-off succeeds: healthy again.
    std::fs::remove_file(site.path("reload.fail")).unwrap();
    assert!(
        wait_until(secs(15.0), || site.reloads() == 2),
        "{}",
        d.log()
    );
    assert!(wait_until(
        secs(2.0),
        || status(&addr)["templates"][0]["ok"] == true
    ));
}

/// `started` in /status is when the daemon started, not when the snapshot was taken.
#[test]
fn status_started_is_the_start_time() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let site = Site::new();
    let addr = config_with_status(&site, &server, "");
    let _d = site.start();
    assert!(wait_until(secs(5.0), || status(&addr)["ready"] == true));
    let first = status(&addr)["started"].clone();
    std::thread::sleep(secs(1.2));
    assert_eq!(status(&addr)["started"], first);
}

// --- 4. Filesystem: symbolic links and crash leftovers ------------------------------
// (read-only, full and bind-mounted filesystems are in tests/reliability/run.sh)

#[test]
fn a_symlinked_dest_has_its_final_target_replaced_and_keeps_its_links() {
    use std::os::unix::fs::symlink;
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let mut tried = 0;
    // (what, links from dest to the real file, whether the real file exists first)
    for (what, chain, exists) in [
        ("a link to a file in another directory", 1, true),
        ("a link to a link to a file", 2, true),
        ("a dangling link", 1, false),
    ] {
        two_backends(&server, D, 0);
        let site = Site::new();
        basic_config(&site, &server, "");
        std::fs::create_dir(site.path("real")).unwrap();
        let real = site.path("real/haproxy.cfg");
        if exists {
            std::fs::write(&real, "old\n").unwrap();
        }
        let mut to = real.clone();
        for i in 1..chain {
            let link = site.path(&format!("link{i}.cfg"));
            symlink(&to, &link).unwrap();
            to = link;
        }
        symlink(&to, site.path("haproxy.cfg")).unwrap();
        let d = site.start();
        assert!(
            wait_until(secs(5.0), || site.reloads() == 1),
            "{what}\n{}",
            d.log()
        );
        server.set_srv(D, 0, &[(10, 5, 3306, "db-003.example.com.")]);
        assert!(
            wait_until(secs(5.0), || site.reloads() == 2),
            "{what}\n{}",
            d.log()
        );
        assert!(
            std::fs::read_to_string(&real).unwrap().contains("db-003"),
            "{what}"
        );
        assert!(
            std::fs::symlink_metadata(site.path("haproxy.cfg"))
                .unwrap()
                .file_type()
                .is_symlink(),
            "{what}: dest is still a link"
        );
        for i in 1..chain {
            assert!(
                std::fs::symlink_metadata(site.path(&format!("link{i}.cfg")))
                    .unwrap()
                    .file_type()
                    .is_symlink(),
                "{what}: the middle link stays"
            );
        }
        // The reload-pending marker lives until reload_cmd has exited, a
        // moment after the reload recorded itself.
        for dir in [site.dir.path().to_owned(), site.path("real")] {
            assert!(
                wait_until(secs(2.0), || files_with_prefix(&dir, ".srvd-").is_empty()),
                "{what}: leftovers in {dir:?}: {:?}",
                files_with_prefix(&dir, ".srvd-")
            );
        }
        tried += 1;
    }
    assert_eq!(tried, 3);
}

#[test]
fn leftovers_of_a_crash_are_cleaned_and_an_interrupted_reload_runs_again() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let site = Site::new();
    basic_config(&site, &server, "");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    std::thread::sleep(secs(0.3));
    drop(d);
    let good = site.read("haproxy.cfg");
    // Ten staged files of this dest, as ten crashes would leave them, and
    // files that only look alike: another dest's, a non-hex nonce.
    let ours: Vec<String> = (0..10u32)
        .map(|i| {
            format!(
                ".srvd-staged-{:08x}-haproxy.cfg",
                i.wrapping_mul(0x9e37_79b9)
            )
        })
        .collect();
    for n in &ours {
        site.write(n, "half a fi");
    }
    let others = [
        ".srvd-staged-0badc0de-other.cfg",
        ".srvd-staged-zzzzzzzz-haproxy.cfg",
        ".srvd-staged-0badc0de-haproxy.cfg.bak",
    ];
    for n in others {
        site.write(n, "not ours");
    }
    // A crash between the rename and the end of the reload leaves this marker.
    site.write(".srvd-reload-pending-haproxy.cfg", "");
    let d = site.start();
    assert!(
        wait_until(secs(5.0), || site.reloads() == 2),
        "the interrupted reload runs again\n{}",
        d.log()
    );
    assert!(d.log().contains("did not finish; reloading again"));
    std::thread::sleep(secs(0.3));
    for n in &ours {
        assert!(!site.exists(n), "{n} left");
    }
    for n in others {
        assert!(site.exists(n), "{n} removed, but it is not ours");
    }
    assert!(!site.exists(".srvd-reload-pending-haproxy.cfg"));
    assert_eq!(site.read("haproxy.cfg"), good, "dest untouched");
    assert_eq!(d.count("left by an earlier run"), ours.len());
    std::thread::sleep(secs(1.0));
    assert_eq!(site.reloads(), 2, "once, not every cycle");
}

// --- 6. Malformed templates and configs ------------------------------------------------
// (tests/config.rs has 38 malformed configs; these add templates and more configs)

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

#[test]
fn malformed_templates_are_refused_with_their_line_and_no_panic() {
    let site = Site::new();
    site.write(
        "ok.zone",
        "$ORIGIN example.com.\n$TTL 30\n_mysql._tcp IN SRV 10 5 3306 db-001\n",
    );
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
    for (i, (what, text, line)) in FAILING_TEMPLATES.iter().enumerate() {
        let tmpl = format!("fail{i:02}.tmpl");
        site.write(&tmpl, text);
        site.write(
            "srvd.toml",
            &format!("src = \"{tmpl}\"\ndest = \"out.cfg\"\ndomain = \"_mysql._tcp.example.com\"\nzone_file = \"ok.zone\"\nnohttpd = true\n"),
        );
        let out = site.run(&["--oneshot"]);
        let msg = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{what}: exit code\n{msg}");
        let needle = named(&tmpl, line);
        assert!(msg.contains(&needle), "{what}: names {needle}\n{msg}");
        assert!(!msg.contains("panicked"), "{what}: {msg}");
        assert!(!site.exists("out.cfg"), "{what}: nothing written");
        let out = site.run(&["render"]);
        assert_eq!(out.status.code(), Some(1), "{what}: srvd render");
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
    assert!(tried >= 30, "{tried} templates");
}

/// Malformed configs beyond tests/config.rs: (what, lines after a valid
/// template, texts the message must contain).
const MORE_BAD_CONFIGS: &[(&str, &str, &[&str])] = &[
    (
        "infinite interval",
        "interval = inf\n",
        &["interval", "line 4"],
    ),
    ("NaN interval", "interval = nan\n", &["interval", "line 4"]),
    (
        "interval rounding to 0",
        "interval = 1e-10\n",
        &["`interval`"],
    ),
    (
        "exponent in a duration",
        "timeout = \"1e999s\"\n",
        &["timeout", "line 4"],
    ),
    ("negative splay", "splay = \"-1s\"\n", &["splay", "line 4"]),
    ("negative owner", "owner = -1\n", &["owner", "line 4"]),
    (
        "owner past 32 bits",
        "owner = 4294967296\n",
        &["owner", "line 4"],
    ),
    (
        "negative min_records",
        "min_records = -1\n",
        &["min_records", "line 4"],
    ),
    (
        "edns0_size past 16 bits",
        "edns0_size = 70000\n",
        &["edns0_size", "line 4"],
    ),
    (
        "a key twice",
        "interval = 1\ninterval = 2\n",
        &["duplicate key", "line 5"],
    ),
    (
        "wait without min",
        "wait = { max = \"2s\" }\n",
        &["min", "line 4"],
    ),
    ("wait of words", "wait = \"x:y\"\n", &["wait", "line 4"]),
    ("dns_timeout 0", "dns_timeout = 0\n", &["`dns_timeout`"]),
    (
        "five-digit mode",
        "mode = \"07777\"\n",
        &["`mode`", "07777"],
    ),
    ("empty mode", "mode = \"\"\n", &["`mode`"]),
    (
        "bad IPv6 status_addr",
        "status_addr = \"::1::\"\n",
        &["status_addr", "line 4"],
    ),
    (
        "resolv_conf a number",
        "resolv_conf = 5\n",
        &["resolv_conf", "line 4"],
    ),
    (
        "a number in the domains list",
        "domains = [\"_b._tcp.x\", 5]\n",
        &["line 4"],
    ),
    (
        "notify without listen",
        "[notify]\nlisten = []\n",
        &["[notify]", "`listen`"],
    ),
    (
        "notify listen without a port",
        "[notify]\nlisten = [\"127.0.0.1\"]\n",
        &["`listen`", "127.0.0.1"],
    ),
    (
        "notify allow of words",
        "[notify]\nlisten = [\"127.0.0.1:5353\"]\nallow = [\"bad\"]\n",
        &["`allow`", "bad"],
    ),
    (
        "TSIG key without a secret",
        "[notify]\nlisten = [\"127.0.0.1:5353\"]\nkey_name = \"k\"\n",
        &["`secret_file`"],
    ),
    (
        "TSIG secret file missing",
        "[notify]\nlisten = [\"127.0.0.1:5353\"]\nkey_name = \"k\"\nsecret_file = \"nope.key\"\n",
        &["`secret_file`", "nope.key"],
    ),
    (
        "TSIG algorithm unknown",
        "[notify]\nlisten = [\"127.0.0.1:5353\"]\nkey_name = \"k\"\nsecret_file = \"bad.key\"\nalgorithm = \"hmac-md5\"\n",
        &["`algorithm`", "hmac-md5"],
    ),
    (
        "TSIG secret not base64",
        "[notify]\nlisten = [\"127.0.0.1:5353\"]\nkey_name = \"k\"\nsecret_file = \"bad.key\"\n",
        &["`secret_file`", "base64"],
    ),
    (
        "notify table twice",
        "[notify]\nlisten = [\"127.0.0.1:5353\"]\n[notify]\nlisten = [\"127.0.0.1:5354\"]\n",
        &["duplicate key", "line 6"],
    ),
    (
        "primaries of words",
        "[notify]\nlisten = [\"127.0.0.1:5353\"]\n[notify.primaries]\n\"example.com\" = [\"nope\"]\n",
        &["[notify.primaries]", "nope"],
    ),
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
fn more_malformed_configs_name_the_key_and_exit_78_without_panic() {
    let site = Site::new();
    site.write("t.tmpl", "x\n");
    site.write("bad.key", "secret \"!!not base64!!\";\n");
    let head = "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\n";
    let mut tried = 0;
    for (what, tail, needles) in MORE_BAD_CONFIGS {
        let tail = match *what {
            "arrays nested 100,000 deep" => {
                format!("x = {}{}\n", "[".repeat(100_000), "]".repeat(100_000))
            }
            "tables nested 5,000 deep" => {
                format!("x = {}1{}\n", "{a=".repeat(5_000), "}".repeat(5_000))
            }
            _ => tail.to_string(),
        };
        site.write("srvd.toml", &format!("{head}{tail}"));
        let out = site.run(&["check"]);
        let msg = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(78), "{what}: exit code\n{msg}");
        for n in *needles {
            assert!(
                msg.contains(n),
                "{what}: message should contain {n:?}:\n{msg}"
            );
        }
        assert!(!msg.contains("panicked"), "{what}: {msg}");
        tried += 1;
    }
    // Not UTF-8 at all.
    std::fs::write(site.path("srvd.toml"), b"src = \"\xff\"\n").unwrap();
    let out = site.run(&["check"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UTF-8"));
    tried += 1;
    assert!(tried >= 30, "{tried}");
}

// --- 7. Signals ---------------------------------------------------------------------------

#[test]
fn sighup_during_a_reload_lets_it_finish_then_reads_the_config() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let site = Site::new();
    basic_config(&site, &server, "");
    let steps = site.path("steps.log");
    commands(
        &site,
        None,
        Some(&format!(
            "sh -c 'echo start >> {s}; echo $$ > {p}; sleep 1; echo done >> {s}'",
            s = steps.display(),
            p = site.path("reload.pid").display()
        )),
    );
    let mut d = site.start();
    assert!(
        wait_until(secs(5.0), || site.read("steps.log") == "start\ndone\n"),
        "{}",
        d.log()
    );
    site.write("haproxy.cfg.tmpl", &format!("# v2\n{TEMPLATE}"));
    server.set_srv(D, 0, &[(10, 5, 3306, "db-003.example.com.")]);
    assert!(wait_until(secs(5.0), || site
        .read("steps.log")
        .lines()
        .count()
        == 3));
    for _ in 0..10 {
        d.signal(Signal::SIGHUP);
    }
    assert!(
        wait_until(secs(5.0), || d.log().contains("config reloaded")),
        "{}",
        d.log()
    );
    // The reload ran to its end, and the new template was rendered after it.
    assert!(wait_until(secs(5.0), || site
        .read("haproxy.cfg")
        .starts_with("# v2\n")));
    assert!(site.read("haproxy.cfg").contains("db-003"));
    assert!(
        wait_until(secs(5.0), || site.read("steps.log")
            == "start\ndone\nstart\ndone\nstart\ndone\n"),
        "{:?}",
        site.read("steps.log")
    );
    assert!(
        !d.log().contains("reload_cmd was interrupted"),
        "{}",
        d.log()
    );
    std::thread::sleep(secs(1.5));
    assert_eq!(
        site.read("steps.log").lines().count(),
        6,
        "no reload after that"
    );
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
    assert!(!alive(read_pid(&site, "reload.pid").unwrap()));
    assert!(!site.exists(".srvd-reload-pending-haproxy.cfg"));
}

#[test]
fn sigterm_or_sigint_during_a_check_kills_its_whole_group_and_leaves_dest() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let mut tried = 0;
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let site = Site::new();
        basic_config(&site, &server, "timeout = \"30s\"");
        site.write("haproxy.cfg", "good\n");
        commands(
            &site,
            Some(&format!(
                "sh -c 'sleep 300 & echo $! > {}; echo $$ > {}; wait' {{{{ src }}}}",
                site.path("child.pid").display(),
                site.path("leader.pid").display()
            )),
            None,
        );
        let mut d = site.start();
        assert!(wait_until(secs(5.0), || read_pid(&site, "child.pid")
            .is_some()
            && read_pid(&site, "leader.pid").is_some()));
        let t = Instant::now();
        d.signal(sig);
        let status = d.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{sig:?}");
        assert!(t.elapsed() < secs(1.5), "{sig:?}: took {:?}", t.elapsed());
        for f in ["child.pid", "leader.pid"] {
            let pid = read_pid(&site, f).unwrap();
            let gone = wait_until(secs(1.0), || !alive(pid));
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            assert!(gone, "{sig:?}: {f} still running after srvd stopped");
        }
        assert_eq!(site.read("haproxy.cfg"), "good\n", "{sig:?}");
        assert!(
            files_with_prefix(site.dir.path(), ".srvd-").is_empty(),
            "{sig:?}"
        );
        tried += 1;
    }
    assert_eq!(tried, 2);
}

#[test]
fn sigterm_during_a_reload_kills_it_and_the_next_start_reloads_again() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let site = Site::new();
    basic_config(&site, &server, "timeout = \"30s\"");
    let steps = site.path("steps.log");
    commands(
        &site,
        None,
        Some(&format!(
            "sh -c 'echo start >> {s}; test -e {quick} || sleep 300; echo done >> {s}'",
            s = steps.display(),
            quick = site.path("quick").display()
        )),
    );
    let mut d = site.start();
    assert!(wait_until(secs(5.0), || site.read("steps.log") == "start\n"));
    let (code, took) = d.stop();
    assert_eq!(code, Some(0));
    assert!(took < secs(1.5), "took {took:?}");
    assert!(
        site.read("haproxy.cfg").contains("db-002"),
        "dest stays written"
    );
    assert!(
        site.exists(".srvd-reload-pending-haproxy.cfg"),
        "the reload is owed"
    );
    assert!(
        !std::process::Command::new("pgrep")
            .args(["-f", &format!("test -e {}", site.path("quick").display())])
            .status()
            .unwrap()
            .success(),
        "the reload's processes are gone"
    );
    site.write("quick", "");
    let d = site.start();
    assert!(
        wait_until(secs(5.0), || site.read("steps.log")
            == "start\nstart\ndone\n"),
        "{:?}\n{}",
        site.read("steps.log"),
        d.log()
    );
    assert!(wait_until(secs(2.0), || !site
        .exists(".srvd-reload-pending-haproxy.cfg")));
}

#[test]
fn a_burst_of_100_sighups_while_the_config_changes_ends_on_the_last_config() {
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let site = Site::new();
    basic_config(&site, &server, "");
    site.write(
        "a.tmpl",
        "# A\n{% for s in srvs %}{{ s.host }}\n{% endfor %}",
    );
    site.write(
        "b.tmpl",
        "# B\n{% for s in srvs %}{{ s.host }}\n{% endfor %}",
    );
    let with = |t: &str| {
        site.read("srvd.toml")
            .replace("src = \"haproxy.cfg.tmpl\"", &format!("src = \"{t}\""))
    };
    let (a, b) = (with("a.tmpl"), with("b.tmpl"));
    site.write("srvd.toml", &a);
    let mut d = site.start();
    assert!(wait_until(secs(5.0), || site
        .read("haproxy.cfg")
        .starts_with("# A")));
    let t = Instant::now();
    for i in 0..100 {
        site.write("srvd.toml", if i % 2 == 0 { &b } else { &a });
        d.signal(Signal::SIGHUP);
    }
    site.write("srvd.toml", &b);
    d.signal(Signal::SIGHUP);
    assert!(t.elapsed() < secs(1.0), "the burst took {:?}", t.elapsed());
    assert!(
        wait_until(secs(10.0), || site.read("haproxy.cfg").starts_with("# B")),
        "{}",
        d.log()
    );
    std::thread::sleep(secs(1.0));
    assert!(
        site.read("haproxy.cfg").starts_with("# B"),
        "and stays there"
    );
    server.set_srv(D, 0, &[(10, 5, 3306, "db-009.example.com.")]);
    assert!(wait_until(secs(5.0), || site.read("haproxy.cfg")
        == "# B\ndb-009.example.com\n"));
    assert!(!d.log().contains("panicked"));
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
}

// --- 10. Status endpoint abuse -------------------------------------------------------------

/// Lets this process hold more than the usual 1,024 descriptors.
fn raise_fd_limit() {
    let mut lim = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(65536);
            nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Receives what srvd sends to NOTIFY_SOCKET, with the time it arrived.
fn notify_socket(
    site: &Site,
) -> (
    std::path::PathBuf,
    std::sync::mpsc::Receiver<(Instant, String)>,
) {
    let path = site.path("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            if tx
                .send((
                    Instant::now(),
                    String::from_utf8_lossy(&buf[..n]).into_owned(),
                ))
                .is_err()
            {
                return;
            }
        }
    });
    (path, rx)
}

#[test]
fn a_thousand_hostile_clients_do_not_stop_the_watchdog_or_the_poll() {
    raise_fd_limit();
    let server = DnsServer::start();
    two_backends(&server, D, 0);
    let site = Site::new();
    let addr = config_with_status(&site, &server, "");
    let (sock, pings) = notify_socket(&site);
    let d = site.start_with(
        &[],
        &[
            ("NOTIFY_SOCKET", sock.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    assert!(wait_until(secs(3.0), || status(&addr)["ready"] == true));

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut opened = 0;
    // 600 clients that connect and never send a byte.
    let idle: Vec<TcpStream> = (0..600)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    opened += idle.len();
    // 100 that send one byte every 200 ms, forever.
    let slow: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    opened += slow.len();
    {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut slow = slow;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for s in &mut slow {
                    let _ = s.set_nonblocking(true);
                    let _ = s.write(b"G");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
    }
    // 50 that send a 1 MiB request head, 50 that send garbage, 200 ordinary GETs.
    for kind in 0..300 {
        let addr = addr.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(&addr) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                let _ = s.set_read_timeout(Some(Duration::from_secs(6)));
                let request: Vec<u8> = match kind {
                    0..50 => {
                        let mut r = b"GET /status HTTP/1.1\r\nX: ".to_vec();
                        r.extend(std::iter::repeat_n(b'a', 1 << 20));
                        r
                    }
                    50..100 => (0..4096u32)
                        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                        .collect(),
                    _ => b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                };
                let _ = s.write_all(&request);
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            }
        }));
    }
    opened += 300;
    assert!(opened >= 1000, "{opened} clients");

    // Meanwhile: five changes in DNS, each followed within two seconds.
    let started = Instant::now();
    for round in 0..5 {
        server.set_srv(
            D,
            0,
            &[(10, 5, 3306, &format!("db-{round:03}.example.com."))],
        );
        assert!(
            wait_until(secs(2.0), || site
                .read("haproxy.cfg")
                .contains(&format!("db-{round:03}"))),
            "round {round}: the poll loop fell behind\n{}",
            d.log()
        );
        std::thread::sleep(secs(0.5));
    }
    let abused = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(idle);
    for t in threads {
        let _ = t.join();
    }
    // The watchdog (WATCHDOG_USEC = 1 s) was pinged all along.
    let times: Vec<Instant> = pings
        .try_iter()
        .filter(|(t, m)| m.contains("WATCHDOG=1") && *t >= started)
        .map(|(t, _)| t)
        .collect();
    assert!(
        times.len() as f64 >= abused.as_secs_f64() / 0.5 * 0.7,
        "{} pings in {abused:?}",
        times.len()
    );
    let mut last = started;
    for t in &times {
        assert!(
            t.duration_since(last) < secs(1.0),
            "a gap of {:?} between pings",
            t.duration_since(last)
        );
        last = *t;
    }
    // And the endpoint serves again once they are gone.
    assert!(wait_until(secs(10.0), || http_get(&addr, "/status").0 == 200));
    assert!(!d.log().contains("panicked"));
}

// --- 9. Soak ---------------------------------------------------------------------------------

/// A DNS server whose SRV answer changes with every query: version N of the
/// records for the Nth query.
fn changing_server() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = sock.local_addr().unwrap();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(question) = q.queries.first().cloned() else {
                continue;
            };
            let v = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            m.metadata.authoritative = true;
            m.metadata.recursion_desired = q.metadata.recursion_desired;
            m.add_query(question.clone());
            if question.query_type() == RecordType::SRV {
                for i in 0..3u16 {
                    m.add_answer(Record::from_rdata(
                        question.name().clone(),
                        0,
                        RData::SRV(SRV::new(
                            i,
                            5,
                            3306 + i,
                            name(&format!("v{v}-{i}.example.com.")),
                        )),
                    ));
                }
            }
            let _ = sock.send_to(&m.to_vec().unwrap(), peer);
        }
    });
    (addr, served)
}

/// Runs srvd for `cycles` cycles with records that change every cycle, a
/// check and a reload each time, and /metrics read along the way. Returns
/// (RSS after 1,000 cycles, RSS at the end, cycles, changes applied), in KiB.
fn soak(cycles: u64) -> (u64, u64, u64, u64) {
    let (dns, _) = changing_server();
    let site = Site::new();
    let port = free_port();
    site.write("haproxy.cfg.tmpl", TEMPLATE);
    site.write(
        "srvd.toml",
        &format!(
            "src = \"haproxy.cfg.tmpl\"\ndest = \"haproxy.cfg\"\ndomain = \"_mysql._tcp.example.com\"\n\
             nameservers = [\"{dns}\"]\ndns_timeout = \"1s\"\ninterval = \"1ms\"\n\
             check_cmd = \"test -s {{{{ src }}}}\"\nreload_cmd = \"true\"\nstatus_port = {port}\n"
        ),
    );
    let addr = format!("127.0.0.1:{port}");
    // Debug logging would be megabytes a second: warnings only, to a file.
    let log = std::fs::File::create(site.path("srvd.log")).unwrap();
    let mut child = std::process::Command::new(SRVD)
        .arg("--config")
        .arg(site.path("srvd.toml"))
        .args(["--log-level", "warn"])
        .env_remove("NOTIFY_SOCKET")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    let cycles_now = || metric(&addr, "srvd_cycles_total").unwrap_or(0.0) as u64;
    let ok = wait_until(secs(60.0), || cycles_now() >= 1_000);
    if !ok {
        let _ = child.kill();
    }
    assert!(ok, "{}", site.read("srvd.log"));
    let early = rss_kib(pid);
    let limit = secs(60.0 + cycles as f64 / 50.0);
    let t = Instant::now();
    while cycles_now() < cycles {
        if t.elapsed() > limit || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!(
                "{} cycles in {:?}\n{}",
                cycles_now(),
                t.elapsed(),
                site.read("srvd.log")
            );
        }
        std::thread::sleep(secs(0.5));
    }
    let late = rss_kib(pid);
    let done = cycles_now();
    let changes = metric(&addr, "srvd_reloads_total{result=\"success\"}").unwrap_or(0.0) as u64;
    let _ = kill(pid, Signal::SIGTERM);
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(0), "{}", site.read("srvd.log"));
    (early, late, done, changes)
}

#[test]
fn memory_stays_flat_over_3000_cycles_of_changing_records() {
    let (early, late, cycles, changes) = soak(3_000);
    eprintln!(
        "soak: {cycles} cycles, {changes} changes, RSS {early} KiB after 1,000, {late} KiB at the end"
    );
    assert!(
        changes * 10 >= cycles * 9,
        "records changed every cycle: {changes} changes in {cycles} cycles"
    );
    assert!(
        late <= early + 1024,
        "RSS grew from {early} KiB to {late} KiB"
    );
}

/// The long soak, run by tests/reliability/long.sh:
/// `SRVD_SOAK_CYCLES=100000 cargo test --release --test reliability -- --ignored long_soak`.
#[test]
#[ignore = "long run: tests/reliability/long.sh"]
fn long_soak() {
    let cycles = std::env::var("SRVD_SOAK_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100_000);
    let (early, late, done, changes) = soak(cycles);
    println!("SOAK cycles={done} changes={changes} rss_after_1000_kib={early} rss_end_kib={late}");
    assert!(
        changes * 10 >= done * 9,
        "{changes} changes in {done} cycles"
    );
    assert!(
        late <= early + 1024,
        "RSS grew from {early} KiB to {late} KiB"
    );
}

/// A UDP DNS server that answers SRV queries with `records`, rotated by one
/// more place on every query, as round-robin servers do.
fn rotating_server(records: Vec<Record>) -> SocketAddr {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut records = records;
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(question) = q.queries.first().cloned() else {
                continue;
            };
            let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            m.metadata.authoritative = true;
            m.metadata.recursion_desired = q.metadata.recursion_desired;
            m.add_query(question);
            records.rotate_left(1);
            m.add_answers(records.clone());
            let _ = sock.send_to(&m.to_vec().unwrap(), peer);
        }
    });
    addr
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
    let cname = |from: &str, to: &str| {
        Record::from_rdata(
            name(from),
            0,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(name(to))),
        )
    };
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
        let server = rotating_server(records);
        let site = Site::new();
        site.write(
            "haproxy.cfg.tmpl",
            "{% for s in srvs %}{{ s.host }} {{ s.ttl }}\n{% endfor %}",
        );
        site.write(
            "srvd.toml",
            &format!(
                "src = \"haproxy.cfg.tmpl\"\ndest = \"haproxy.cfg\"\ndomain = \"_mysql._tcp.example.com\"\n\
                 nameservers = [\"{server}\"]\ndns_timeout = \"300ms\"\nreload_cmd = \"\"\"{}\"\"\"\n\
                 interval = \"100ms\"\nnohttpd = true\n",
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
        std::thread::sleep(secs(2.0));
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
