//! DNS servers that fail or lie, through the real binary: every kind of
//! failure of one domain keeps the last good dest, says why once and
//! recovers; answers for another name, forged answers racing the real one
//! and names too long for DNS never reach dest. Each test counts the cases
//! it tried.

mod support;

use std::time::Duration;

use support::dns::{DnsServer, Forge, Mode, labels};
use support::*;

const E: &str = "_redis._tcp.example.com.";

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
    // A timeout long enough that a loaded machine still sees the answers a
    // fault sends (garbage, a refusal) before it: 300 ms was not always.
    site.set_key("dns_timeout", "\"1s\"");
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
    two_backends(&server, 0);
    server.set_srv(E, 0, &[(0, 0, 6379, "cache-1.example.com.")]);
    let (site, addr) = two_domain_site(&server);
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    let mut tried = 0;
    for (round, (mode, why)) in DNS_FAULTS.iter().enumerate() {
        let reloads = round + 1;
        let good = site.read("haproxy.cfg");
        let mark = d.mark();
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
                let s = status_json(&addr);
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
        let s = status_json(&addr);
        let template_error = s["templates"][0]["error"].as_str().unwrap_or("");
        assert!(
            template_error.contains("_mysql._tcp.example.com"),
            "{mode:?}: the template's error names the domain: {template_error:?}"
        );
        // More polls of the failing domain: each could have written dest.
        assert_polls(&server, &d, 2, &format!("{mode:?}"));
        assert_eq!(
            site.read("haproxy.cfg"),
            good,
            "{mode:?}: last good dest kept"
        );
        assert_eq!(site.reloads(), reloads, "{mode:?}: no reload");
        assert_eq!(
            d.count_since(
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
            wait_until(secs(2.0), || d.count_since(mark, "recovered") >= 1),
            "{mode:?}: the recovery is logged\n{}",
            d.log()
        );
        assert!(
            wait_until(secs(2.0), || status_json(&addr)["Ok"] == true),
            "{mode:?}"
        );
        let out = site.read("haproxy.cfg");
        assert!(out.contains(&format!("db-{round:03}")), "{mode:?}: {out}");
        assert!(out.contains(&format!("cache-{round}b")), "{mode:?}: {out}");
        tried += 1;
    }
    assert_eq!(tried, DNS_FAULTS.len());
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

/// Every real answer is raced by forged ones pointing at evil.example.com:
/// the right ID from another port, and a wrong ID from the right port.
#[test]
fn spoofed_answers_racing_the_real_one_are_ignored() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    server.set_forge(Forge::Race);
    server.set_delay(Duration::from_millis(5));
    let site = Site::new();
    basic_config(&site, &server, "");
    site.set_key("dns_timeout", "\"1s\"");
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
    server.set_forge(Forge::Control);
    let control = Site::new();
    basic_config(&control, &server, "");
    let _d = control.start();
    assert!(wait_until(secs(5.0), || control
        .read("haproxy.cfg")
        .contains("evil.example.com")));
}

#[test]
fn names_too_long_for_dns_fail_the_lookup_and_keep_the_last_good_dest() {
    let server = DnsServer::start();
    server.set_raw_srv(D, vec![(1, 1, 3306, 0, labels("db-001.example.com"))]);
    let site = Site::new();
    site.write("haproxy.cfg.tmpl", TEMPLATE);
    site.write(
        "srvd.toml",
        &format!(
            "src = \"haproxy.cfg.tmpl\"\ndest = \"haproxy.cfg\"\ndomain = \"_mysql._tcp.example.com\"\n\
             nameservers = [{}]\ndns_timeout = \"300ms\"\ndns_attempts = 1\nedns0_size = 0\n\
             reload_cmd = \"\"\"{}\"\"\"\ninterval = \"100ms\"\nnohttpd = true\n",
            server.toml_addr(),
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
        let mark = d.mark();
        server.set_raw_srv(
            D,
            vec![
                (1, 1, 3306, 0, labels("db-002.example.com")),
                (1, 1, 80, 0, target),
            ],
        );
        assert!(
            wait_until(secs(5.0), || d.count_since(mark, "WARN") >= 1),
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
            d.count_since(mark, "WARN"),
            1,
            "{what}: logged once\n{}",
            d.log()
        );
        assert_eq!(site.reloads(), 1, "{what}");
        tried += 1;
    }
    server.set_raw_srv(D, vec![(1, 1, 3306, 0, labels("db-003.example.com"))]);
    assert!(
        wait_until(secs(5.0), || site.reloads() == 2),
        "recovered\n{}",
        d.log()
    );
    assert!(site.read("haproxy.cfg").contains("db-003"));
    assert_eq!(tried, 2);
}

/// A server that neither holds the name nor recurses answers with a
/// referral (no answer, AA clear, NS in authority). It is not an empty
/// answer: even with `allow_empty = true` the last good dest stays, and
/// /status says what the server did and what to do.
#[test]
fn a_referral_is_not_an_empty_answer() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    let addr = config_with_status(&site, &server, "allow_empty = true");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    let good = site.read("haproxy.cfg");
    server.set_delegated("example.com.");
    let mut error = String::new();
    assert!(
        wait_until(secs(5.0), || {
            error = status_json(&addr)["templates"][0]["domains"][0]["error"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            !error.is_empty()
        }),
        "{}",
        d.log()
    );
    assert!(error.contains("referral to example.com."), "{error}");
    assert!(
        error.contains("list a server that answers for it"),
        "{error}"
    );
    assert_polls(&server, &d, 5, "referrals");
    assert_eq!(site.read("haproxy.cfg"), good);
    assert_eq!(site.reloads(), 1);
}
