//! The event loop, through the real binary: a change in DNS followed,
//! `cooldown` and `wait`, and signals at awkward moments (SIGHUP with a
//! good and a bad config, during a reload, in a burst; SIGTERM and SIGINT
//! during a check or a reload).

mod support;

use std::time::Instant;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::dns::DnsServer;
use support::systemd::NotifySocket;
use support::*;

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

/// A change held back by `cooldown` or `wait` is logged once, with the
/// time it waits for, and /status shows it, not every cycle.
#[test]
fn a_deferred_change_is_logged_once_with_its_time_and_shown_in_status() {
    let mut tried = 0;
    for (extra, why) in [
        ("cooldown = \"4s\"", "cooldown"),
        ("wait = \"4s\"", "(wait)"),
    ] {
        let server = DnsServer::start();
        two_backends(&server, 0);
        let site = Site::new();
        let addr = config_with_status(&site, &server, extra);
        let d = site.start();
        assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
        server.set_srv(D, 0, &[(10, 5, 3306, "db-003.example.com.")]);
        assert!(
            d.wait_log("a change waits until", secs(5.0)),
            "{extra}\n{}",
            d.log()
        );
        let line = d
            .log()
            .lines()
            .find(|l| l.contains("a change waits until"))
            .unwrap()
            .to_owned();
        assert!(
            line.contains(why) && line.contains("Z ("),
            "{extra}: {line}"
        );
        let s = status_json(&addr);
        let t = &s["templates"][0];
        assert!(t["pending"].as_str().unwrap_or("").contains(why), "{s}");
        let until = t["pending_until"].as_str().unwrap_or("").to_owned();
        assert!(
            line.contains(&until),
            "the log and /status agree: {line} {s}"
        );
        // Many polls later, still once.
        assert_polls(&server, &d, 10, extra);
        assert_eq!(d.count("a change waits until"), 1, "{extra}\n{}", d.log());
        assert!(wait_until(secs(8.0), || site.reloads() == 2), "{}", d.log());
        assert!(wait_until(secs(3.0), || status_json(&addr)["templates"][0]
            ["pending"]
            .is_null()));
        tried += 1;
    }
    assert_eq!(tried, 2);
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
fn sighup_applies_a_good_config_at_once() {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    basic_config(&site, &dns, "");
    let notify = NotifySocket::new(&site);
    let d = site.start_notified(&notify, "0");
    notify.wait_for("READY=1", secs(5.0)).expect("READY");

    // A good new config with a new template text: rendered at once.
    site.write(
        "haproxy.cfg.tmpl",
        "v2\n{% for s in srvs %}{{ s.host }}\n{% endfor %}",
    );
    d.signal(Signal::SIGHUP);
    assert!(wait_until(secs(3.0), || site
        .read("haproxy.cfg")
        .starts_with("v2\n")));
    assert!(d.wait_log("config reloaded: 1 template(s)", secs(2.0)));
}

#[test]
fn sighup_refuses_a_bad_config_and_the_old_one_keeps_running() {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    let good = basic_config(&site, &dns, "");
    let notify = NotifySocket::new(&site);
    let d = site.start_notified(&notify, "0");
    notify.wait_for("READY=1", secs(5.0)).expect("READY");

    // A bad one: refused, logged, in STATUS; the old one keeps running.
    site.write("srvd.toml", &format!("{good}\nreload_cmnd = \"oops\"\n"));
    let mark = notify.len();
    d.signal(Signal::SIGHUP);
    assert!(
        d.wait_log("config reload refused", secs(3.0)),
        "{}",
        d.log()
    );
    assert!(d.log().contains("reload_cmnd"));
    assert!(
        wait_until(secs(3.0), || {
            notify.seen()[mark..]
                .iter()
                .any(|m| m.contains("READY=1") && m.contains("config reload refused"))
        }),
        "{:?}",
        notify.seen()
    );
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-002.example.com.")]);
    assert!(
        wait_until(secs(3.0), || site.read("haproxy.cfg").contains("db-002")),
        "old config still polls"
    );
}

#[test]
fn sighup_during_a_reload_lets_it_finish_then_reads_the_config() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "");
    let steps = site.path("steps.log");
    site.set_commands(
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
    assert_polls(&server, &d, 15, "");
    assert_eq!(
        site.read("steps.log").lines().count(),
        6,
        "no reload after that"
    );
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
    assert!(!alive(site.read_pid("reload.pid").unwrap()));
    assert!(!site.exists(".srvd-reload-pending-haproxy.cfg"));
}

#[test]
fn a_burst_of_100_sighups_while_the_config_changes_ends_on_the_last_config() {
    let server = DnsServer::start();
    two_backends(&server, 0);
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
    // A consistent daemon: the next change in DNS is one render, one reload.
    let reloads = site.reloads();
    server.set_srv(D, 0, &[(10, 5, 3306, "db-009.example.com.")]);
    assert!(wait_until(secs(5.0), || site.read("haproxy.cfg")
        == "# B\ndb-009.example.com\n"));
    assert!(
        wait_until(secs(5.0), || site.reloads() == reloads + 1),
        "{}",
        d.log()
    );
    assert!(!d.log().contains("panicked"));
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn sigterm_or_sigint_during_a_check_kills_its_whole_group_and_leaves_dest() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let mut tried = 0;
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let site = Site::new();
        basic_config(&site, &server, "timeout = \"30s\"");
        site.write("haproxy.cfg", "good\n");
        site.set_commands(
            Some(&format!(
                "sh -c 'sleep 300 & echo $! > {}; echo $$ > {}; wait' {{{{ src }}}}",
                site.path("child.pid").display(),
                site.path("leader.pid").display()
            )),
            None,
        );
        let mut d = site.start();
        assert!(wait_until(secs(5.0), || site
            .read_pid("child.pid")
            .is_some()
            && site.read_pid("leader.pid").is_some()));
        let t = Instant::now();
        d.signal(sig);
        let status = d.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{sig:?}");
        assert!(t.elapsed() < secs(1.0), "{sig:?}: took {:?}", t.elapsed());
        for f in ["child.pid", "leader.pid"] {
            let pid = site.read_pid(f).unwrap();
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
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "timeout = \"30s\"");
    let steps = site.path("steps.log");
    site.set_commands(
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

/// Field case: two templates; the second's `owner`/`group` come from a
/// directory service (LDAP, SSSD) or a package not installed yet, so they
/// do not resolve at boot. srvd exited 78: every template stopped, HAProxy's
/// included, and the unit does not restart on 78. Now that template fails
/// and waits its back-off, saying why; the other one runs.
#[test]
fn an_owner_that_does_not_resolve_yet_fails_its_template_only() {
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/field/36-owner-unknown-at-start");
    let site = Site::new();
    for f in ["srvd.toml", "t.tmpl", "example.com.zone"] {
        std::fs::copy(case.join(f), site.path(f)).unwrap();
    }
    std::fs::create_dir(site.path("out")).unwrap();
    let port = free_port();
    let config = site
        .read("srvd.toml")
        .replace("nohttpd = true", &format!("status_port = {port}"));
    site.write("srvd.toml", &config);
    let addr = format!("127.0.0.1:{port}");

    let mut d = site.start();
    assert!(
        wait_until(secs(10.0), || site.read("out/haproxy.cfg").trim_end()
            == "server db-001.example.com:3306"),
        "{}",
        d.log()
    );
    assert!(
        d.wait_log(
            "pgbouncer: `owner`: no user named \"pgbouncer\"",
            secs(10.0)
        ),
        "{}",
        d.log()
    );
    assert!(d.log().contains("next try in 10s"), "{}", d.log());
    assert!(!site.exists("out/pgbouncer.ini"));
    let status = status_json(&addr);
    let templates = status["templates"].as_array().cloned().unwrap_or_default();
    assert_eq!(templates.len(), 2, "{status}");
    assert_eq!(templates[0]["ok"], true, "{status}");
    assert_eq!(templates[1]["ok"], false, "{status}");
    let error = templates[1]["error"].as_str().unwrap_or_default();
    assert!(error.contains("no user named \"pgbouncer\""), "{status}");
    // The other template keeps following its records meanwhile.
    let zone = site.read("example.com.zone").replace("db-001", "db-002");
    site.write("example.com.zone.tmp", &zone);
    std::fs::rename(
        site.path("example.com.zone.tmp"),
        site.path("example.com.zone"),
    )
    .unwrap();
    assert!(
        wait_until(secs(10.0), || site.read("out/haproxy.cfg").trim_end()
            == "server db-002.example.com:3306"),
        "{}",
        d.log()
    );
    assert!(!site.exists("out/pgbouncer.ini"));
    assert_eq!(d.count("no user named"), 1, "logged once: {}", d.log());
    let (code, _) = d.stop();
    assert_eq!(code, Some(0), "{}", d.log());
}

// Sleeping until something is due: no look at a template before an answer's
// TTL runs out, unless one of its files changes (inotify).

/// srvd at TTL `ttl` with the status endpoint, after its first reload and
/// once it has stopped looking (its own write of dest is read back once).
/// Returns the status address.
fn settled(server: &DnsServer, site: &Site, ttl: u32, extra: &str) -> (Daemon, String) {
    two_backends(server, ttl);
    let addr = config_with_status(site, server, extra);
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    let cycles = || metric(&addr, "srvd_cycles_total");
    let mut last = cycles();
    assert!(
        wait_until(secs(10.0), || {
            std::thread::sleep(secs(0.5));
            let now = cycles();
            let still = now.is_some() && now == last;
            last = now;
            still
        }),
        "srvd kept cycling at TTL {ttl}\n{}",
        d.log()
    );
    (d, addr)
}

#[test]
fn an_idle_srvd_sends_no_query_and_renders_nothing_until_the_ttl_runs_out() {
    let server = DnsServer::start();
    let site = Site::new();
    let (d, addr) = settled(&server, &site, 30, "");
    let queries = server.queries(D, hickory_proto::rr::RecordType::SRV);
    let cycles = metric(&addr, "srvd_cycles_total");
    let renders = metric(&addr, "srvd_renders_total");
    std::thread::sleep(secs(3.0));
    assert_eq!(
        server.queries(D, hickory_proto::rr::RecordType::SRV),
        queries,
        "no query while the answer is fresh\n{}",
        d.log()
    );
    assert_eq!(metric(&addr, "srvd_cycles_total"), cycles, "no cycle");
    assert_eq!(metric(&addr, "srvd_renders_total"), renders, "no render");
    assert_eq!((site.checks(), site.reloads()), (1, 1));
}

#[test]
fn an_answer_whose_ttl_runs_out_is_asked_again_on_time() {
    let server = DnsServer::start();
    let site = Site::new();
    let (d, _) = settled(&server, &site, 2, "");
    server.set_srv(D, 2, &[(10, 5, 3306, "db-003.example.com.")]);
    // Asked again when the TTL of 2 s runs out, not never.
    assert!(
        wait_until(secs(6.0), || site.read("haproxy.cfg").contains("db-003")),
        "{}",
        d.log()
    );
}

#[test]
fn a_dest_changed_behind_srvds_back_is_put_right_before_the_ttl_runs_out() {
    let server = DnsServer::start();
    let site = Site::new();
    let (d, _) = settled(&server, &site, 300, "mode = \"0640\"");
    let good = site.read("haproxy.cfg");
    site.write("haproxy.cfg", "backend db\n  server intruder 10.9.9.9:1\n");
    assert!(
        wait_until(secs(5.0), || site.read("haproxy.cfg") == good),
        "dest left edited for the TTL of 300 s\n{}",
        d.log()
    );
    // A mode changed with chmod(2) alone is noticed too: an explicit mode
    // that drifted is a change.
    use std::os::unix::fs::PermissionsExt;
    let mode = |site: &Site| {
        std::fs::metadata(site.path("haproxy.cfg"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode(&site), 0o640);
    std::fs::set_permissions(
        site.path("haproxy.cfg"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    assert!(
        wait_until(secs(5.0), || mode(&site) == 0o640),
        "mode left at 0600\n{}",
        d.log()
    );
}

#[test]
fn a_zone_file_replaced_by_rename_is_noticed_at_once() {
    let site = Site::new();
    let zone = |target: &str| {
        format!(
            "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n\
             _mysql._tcp IN SRV 10 5 3306 {target}\n"
        )
    };
    site.write("example.com.zone", &zone("db-001"));
    site.write("haproxy.cfg.tmpl", TEMPLATE);
    site.write(
        "srvd.toml",
        &format!(
            "src = \"haproxy.cfg.tmpl\"\ndest = \"haproxy.cfg\"\ndomain = \"_mysql._tcp.example.com\"\n\
             zone_file = \"example.com.zone\"\nreload_cmd = \"\"\"{}\"\"\"\ninterval = \"100ms\"\nnohttpd = true\n",
            site.reload_cmd()
        ),
    );
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    std::thread::sleep(secs(1.0));
    // As editors and configuration managers write: a new file renamed over.
    site.write("example.com.zone.tmp", &zone("db-002"));
    std::fs::rename(
        site.path("example.com.zone.tmp"),
        site.path("example.com.zone"),
    )
    .unwrap();
    assert!(
        wait_until(secs(5.0), || site.read("haproxy.cfg").contains("db-002")),
        "{}",
        d.log()
    );
    assert!(wait_until(secs(5.0), || site.reloads() == 2));
}
