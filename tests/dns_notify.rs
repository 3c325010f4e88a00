//! DNS NOTIFY (RFC 1996) end to end through the real binary: with polling
//! at 60 s and a TTL of 300 s, only a NOTIFY can explain a prompt rewrite.
//! Refused sources, bad TSIG, unrelated zones, malformed packets, a flood,
//! the counters, and every mistake in `[notify]` refused at `srvd check`.

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RecordType, TSigner};
use support::dns::DnsServer;
use support::*;

const SECRET_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

struct Setup {
    dns: DnsServer,
    site: Site,
    port: u16,
    daemon: Daemon,
}

fn setup(extra_notify: &str) -> Setup {
    let dns = DnsServer::start();
    dns.set_srv(D, 300, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    basic_config(&site, &dns, "");
    let port = free_udp_port();
    site.write(
        "notify.key",
        &format!("key \"srvd-notify\" {{ algorithm hmac-sha256; secret \"{SECRET_B64}\"; }};\n"),
    );
    let text = site
        .read("srvd.toml")
        .replace("interval = \"100ms\"", "interval = \"60s\"")
        + &format!(
            "\n[notify]\nlisten = [\"127.0.0.1:{port}\"]\nallow = [\"127.0.0.1\"]\n{extra_notify}\n[notify.primaries]\n\"example.com\" = [\"{}\"]\n",
            dns.addr
        );
    site.write("srvd.toml", &text);
    let daemon = site.start();
    assert!(
        wait_until(secs(5.0), || site.reloads() == 1),
        "{}",
        daemon.log()
    );
    Setup {
        dns,
        site,
        port,
        daemon,
    }
}

fn notify_msg(zone: &str, id: u16) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Notify);
    m.add_query(Query::query(
        Name::from_ascii(zone).unwrap(),
        RecordType::SOA,
    ));
    m
}

/// Sends `bytes` from `source` and returns the answer, if any.
fn send(source: &str, port: u16, bytes: &[u8]) -> Option<Message> {
    let sock = UdpSocket::bind((source, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock.send_to(bytes, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()
}

fn signed(m: &mut Message, secret: &[u8]) -> Vec<u8> {
    let signer = TSigner::new(
        secret.to_vec(),
        TsigAlgorithm::HmacSha256,
        Name::from_ascii("srvd-notify.").unwrap(),
        300,
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (sig, _) = signer.sign_message(m, now).unwrap();
    m.set_signature(sig);
    m.to_vec().unwrap()
}

#[test]
fn a_notify_rewrites_dest_at_once_despite_slow_polling_and_a_long_ttl() {
    let s = setup("");
    let before = s.dns.queries(D, RecordType::SRV);
    s.dns
        .set_srv(D, 300, &[(1, 1, 3306, "db-002.example.com.")]);
    let t = Instant::now();
    let answer = send(
        "127.0.0.1",
        s.port,
        &notify_msg("example.com.", 7).to_vec().unwrap(),
    )
    .expect("answered");
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer.metadata.op_code, OpCode::Notify);
    assert!(
        wait_until(secs(2.0), || s.site.read("haproxy.cfg").contains("db-002")),
        "{}",
        s.daemon.log()
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    assert!(wait_until(secs(2.0), || s.site.reloads() == 2));
    assert_eq!(
        s.dns.queries(D, RecordType::SRV),
        before + 1,
        "one direct query to the primary"
    );
}

#[test]
fn refused_sources_bad_tsig_unrelated_zones_and_garbage_change_nothing() {
    let s = setup("");
    s.dns
        .set_srv(D, 300, &[(1, 1, 3306, "db-002.example.com.")]);
    // Not in `allow`: 127.0.0.2 is another loopback address.
    let a = send(
        "127.0.0.2",
        s.port,
        &notify_msg("example.com.", 1).to_vec().unwrap(),
    )
    .expect("answered");
    assert_eq!(a.metadata.response_code, ResponseCode::Refused);
    // A zone no template uses: answered, ignored.
    let a = send(
        "127.0.0.1",
        s.port,
        &notify_msg("example.net.", 2).to_vec().unwrap(),
    )
    .expect("answered");
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    // Garbage and a plain query: no crash.
    assert!(send("127.0.0.1", s.port, b"\x12\x34\xff\xff garbage").is_none());
    let mut q = notify_msg("example.com.", 3);
    q.metadata.op_code = OpCode::Query;
    assert_eq!(
        send("127.0.0.1", s.port, &q.to_vec().unwrap())
            .unwrap()
            .metadata
            .response_code,
        ResponseCode::FormErr
    );
    std::thread::sleep(secs(0.5));
    assert!(
        s.site.read("haproxy.cfg").contains("db-001"),
        "nothing refreshed"
    );
    assert_eq!(
        s.daemon
            .count("refused: the source is not in [notify] allow"),
        1
    );
    // Still listening after all that.
    send(
        "127.0.0.1",
        s.port,
        &notify_msg("example.com.", 4).to_vec().unwrap(),
    )
    .expect("answered");
    assert!(wait_until(secs(2.0), || s
        .site
        .read("haproxy.cfg")
        .contains("db-002")));
}

#[test]
fn with_a_key_only_correctly_signed_notifies_count() {
    let s = setup("key_name = \"srvd-notify\"\nsecret_file = \"notify.key\"\n");
    s.dns
        .set_srv(D, 300, &[(1, 1, 3306, "db-002.example.com.")]);
    let a = send(
        "127.0.0.1",
        s.port,
        &notify_msg("example.com.", 1).to_vec().unwrap(),
    )
    .expect("answered");
    assert_eq!(a.metadata.response_code, ResponseCode::NotAuth, "unsigned");
    let a = send(
        "127.0.0.1",
        s.port,
        &signed(
            &mut notify_msg("example.com.", 2),
            b"wrong secret, wrong secret, wrong",
        ),
    )
    .expect("answered");
    assert_eq!(
        a.metadata.response_code,
        ResponseCode::NotAuth,
        "bad signature"
    );
    std::thread::sleep(secs(0.5));
    assert!(s.site.read("haproxy.cfg").contains("db-001"));
    let secret = data_encoding::BASE64.decode(SECRET_B64.as_bytes()).unwrap();
    let a = send(
        "127.0.0.1",
        s.port,
        &signed(&mut notify_msg("example.com.", 3), &secret),
    )
    .expect("answered");
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert!(a.signature().is_some());
    assert!(
        wait_until(secs(2.0), || s.site.read("haproxy.cfg").contains("db-002")),
        "{}",
        s.daemon.log()
    );
}

#[test]
fn a_flood_is_coalesced_and_the_loop_keeps_going() {
    let s = setup("debounce = \"300ms\"");
    let before = s.dns.queries(D, RecordType::SRV);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let packet = notify_msg("example.com.", 9).to_vec().unwrap();
    let t = Instant::now();
    let mut sent = 0;
    while sent < 10_000 {
        for _ in 0..100 {
            let _ = sock.send_to(&packet, ("127.0.0.1", s.port));
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t.elapsed();
    let queries = s.dns.queries(D, RecordType::SRV) - before;
    // Refreshes ran during the flood, at most one per debounce (300 ms).
    let most = (took.as_millis() / 300 + 2) as usize;
    assert!(
        (2..=most).contains(&queries),
        "{queries} refreshes for {sent} NOTIFYs in {took:?}"
    );
    // The loop still does its work: a record change plus one NOTIFY.
    s.dns
        .set_srv(D, 300, &[(1, 1, 3306, "db-003.example.com.")]);
    std::thread::sleep(secs(0.4));
    send("127.0.0.1", s.port, &packet).expect("answered");
    assert!(wait_until(secs(2.0), || s
        .site
        .read("haproxy.cfg")
        .contains("db-003")));
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", s.daemon.pid()))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        rss_kib < 32 * 1024,
        "peak RSS {rss_kib} KiB after the flood"
    );
}

#[test]
fn notify_counters_show_in_status_and_metrics() {
    let dns = DnsServer::start();
    dns.set_srv(D, 300, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    basic_config(&site, &dns, "");
    let port = free_udp_port();
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Polling once a minute: the counters must not wait for a poll.
    let text = site
        .read("srvd.toml")
        .replace("interval = \"100ms\"", "interval = \"60s\"")
        .replace("nohttpd = true\n", &format!("status_port = {http}\n"))
        + &format!(
            "\n[notify]\nlisten = [\"127.0.0.1:{port}\"]\nallow = [\"127.0.0.1\"]\n[notify.primaries]\n\"example.com\" = [\"{}\"]\n",
            dns.addr
        );
    site.write("srvd.toml", &text);
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    send(
        "127.0.0.1",
        port,
        &notify_msg("example.com.", 1).to_vec().unwrap(),
    )
    .unwrap();
    send(
        "127.0.0.2",
        port,
        &notify_msg("example.com.", 2).to_vec().unwrap(),
    )
    .unwrap();
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
        write!(c, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    };
    assert!(
        wait_until(secs(3.0), || get("/metrics")
            .contains("srvd_notify_accepted_total 1\n")),
        "{}",
        get("/metrics")
    );
    assert!(
        wait_until(secs(3.0), || get("/metrics")
            .contains("srvd_notify_refused_total{reason=\"source\"} 1\n")),
        "{}",
        get("/metrics")
    );
    let metrics = get("/metrics");
    assert!(
        metrics.contains("srvd_notify_last_timestamp_seconds{zone=\"example.com.\"}"),
        "{metrics}"
    );
    let status = get("/status");
    assert!(
        status.contains("\"accepted\": 1") && status.contains("\"example.com.\""),
        "{status}"
    );
}

/// `[notify]` settings `srvd check` must refuse: (what, lines after a valid
/// template, texts the message must contain).
const BAD_NOTIFY: &[(&str, &str, &[&str])] = &[
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
];

#[test]
fn bad_notify_settings_name_the_key_and_exit_78() {
    let site = Site::new();
    site.write("t.tmpl", "x\n");
    site.write("bad.key", "secret \"!!not base64!!\";\n");
    let head = "src = \"t.tmpl\"\ndest = \"o\"\ndomain = \"_a._tcp.x\"\n";
    let mut tried = 0;
    for (what, tail, needles) in BAD_NOTIFY {
        assert_refused(&site, what, &format!("{head}{tail}"), needles);
        tried += 1;
    }
    assert_eq!(tried, BAD_NOTIFY.len());
}

/// The SRV name of the tests below, in `db.example.com`, a child zone of
/// example.com delegated to other servers.
const CHILD: &str = "_mysql._tcp.db.example.com.";

/// srvd polling `resolvers` every 60 s for `CHILD`, with NOTIFYs for
/// example.com asking `primary` directly; `extra` goes into srvd.toml.
/// Returns the site, the NOTIFY port and the daemon after its first reload.
fn parent_and_child(
    resolvers: &DnsServer,
    primary: &DnsServer,
    extra: &str,
) -> (Site, u16, Daemon) {
    let site = Site::new();
    basic_config(&site, resolvers, extra);
    site.set_key("domain", "\"_mysql._tcp.db.example.com\"");
    site.set_key("interval", "\"60s\"");
    site.write(
        "haproxy.cfg.tmpl",
        include_str!("fixtures/field/31-notify-parent-zone-empties-pool/t.tmpl"),
    );
    let port = free_udp_port();
    let text = site.read("srvd.toml")
        + &format!(
            "\n[notify]\nlisten = [\"127.0.0.1:{port}\"]\nallow = [\"127.0.0.1\"]\n\n[notify.primaries]\n\"example.com\" = [\"{}\"]\n",
            primary.addr
        );
    site.write("srvd.toml", &text);
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    (site, port, d)
}

/// A NOTIFY for example.com while the SRV name lives in db.example.com:
/// example.com's primary answers with a referral (no answer, AA clear, NS
/// in authority). A referral is not an answer: with `allow_empty = true`
/// the pool must not be emptied; srvd asks its name servers instead.
#[test]
fn a_referral_from_the_notified_parent_zone_does_not_empty_the_pool() {
    let resolvers = DnsServer::start();
    resolvers.set_srv(
        CHILD,
        300,
        &[
            (10, 10, 3306, "db-001.db.example.com."),
            (10, 10, 3306, "db-002.db.example.com."),
        ],
    );
    let primary = DnsServer::start();
    primary.set_delegated("db.example.com.");
    let (site, port, d) = parent_and_child(&resolvers, &primary, "allow_empty = true");
    let good = site.read("haproxy.cfg");
    assert_eq!(good.matches("  server ").count(), 2, "{good}");
    let asked = resolvers.queries(CHILD, RecordType::SRV);
    send(
        "127.0.0.1",
        port,
        &notify_msg("example.com.", 31).to_vec().unwrap(),
    )
    .expect("answered");
    assert!(
        primary.wait_queries(CHILD, RecordType::SRV, 0, 1, secs(5.0)),
        "the primary was asked\n{}",
        d.log()
    );
    assert!(
        resolvers.wait_queries(CHILD, RecordType::SRV, asked, 1, secs(5.0)),
        "after the referral, the name servers were asked\n{}",
        d.log()
    );
    assert!(
        d.wait_log("refers to db.example.com.", secs(5.0)),
        "{}",
        d.log()
    );
    // The cycle that asked has ended: the status line follows it.
    std::thread::sleep(secs(0.5));
    assert_eq!(site.read("haproxy.cfg"), good, "{}", d.log());
    assert_eq!(site.reloads(), 1, "no reload\n{}", d.log());
}

/// A primary behind what srvd already took from the zone (restored from a
/// backup: serial 1 after serial 2) must not move dest back to the older
/// records: srvd compares SOA serials (RFC 1982) and asks its name
/// servers instead.
#[test]
fn a_notify_never_moves_dest_to_an_older_serial() {
    let resolvers = DnsServer::start();
    resolvers.set_srv(CHILD, 300, &[(10, 10, 3306, "db-old.db.example.com.")]);
    let primary = DnsServer::start();
    primary.set_serial(2);
    primary.set_srv(CHILD, 300, &[(10, 10, 3306, "db-new.db.example.com.")]);
    let (site, port, d) = parent_and_child(&resolvers, &primary, "");
    assert!(site.read("haproxy.cfg").contains("db-old"));
    let notify = |id| {
        send(
            "127.0.0.1",
            port,
            &notify_msg("example.com.", id).to_vec().unwrap(),
        )
        .expect("answered")
    };
    notify(1);
    assert!(
        wait_until(secs(5.0), || site.read("haproxy.cfg").contains("db-new")
            && site.reloads() == 2),
        "{}",
        d.log()
    );
    // The resolvers catch up; the primary is restored from a backup.
    resolvers.set_srv(CHILD, 300, &[(10, 10, 3306, "db-new.db.example.com.")]);
    primary.set_serial(1);
    primary.set_srv(CHILD, 300, &[(10, 10, 3306, "db-old.db.example.com.")]);
    let asked = resolvers.queries(CHILD, RecordType::SRV);
    // Past the debounce of the first NOTIFY.
    std::thread::sleep(secs(1.1));
    notify(2);
    assert!(
        resolvers.wait_queries(CHILD, RecordType::SRV, asked, 1, secs(5.0)),
        "the name servers were asked instead\n{}",
        d.log()
    );
    assert!(d.wait_log("older than 2", secs(5.0)), "{}", d.log());
    std::thread::sleep(secs(0.5));
    assert!(site.read("haproxy.cfg").contains("db-new"), "{}", d.log());
    assert_eq!(site.reloads(), 2, "{}", d.log());
}
