//! Reloading the middleware, through the real binary: each distinct reload
//! command once, in config order; a failed reload rolls dest back or, with
//! `disable_rollback_on_reload_failure`, keeps it and stays failing until a
//! retry succeeds; failures do not storm; a reload a crash interrupted runs
//! again at the next start.

mod support;

use hickory_proto::rr::RecordType;
use support::dns::DnsServer;
use support::*;

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

/// dest did not exist and the reload fails (`systemctl reload haproxy`
/// while HAProxy is not running yet): there is nothing to roll back to, so
/// the checked file stays for HAProxy to start with, the failure is in the
/// log and /status, and the reload is retried after its back-off.
#[test]
fn a_first_version_stays_when_its_reload_fails_and_the_reload_is_retried() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    let addr = config_with_status(&site, &server, "");
    site.write("reload.fail", "");
    let d = site.start();
    assert!(
        d.wait_log("no previous version to roll back to", secs(5.0)),
        "{}",
        d.log()
    );
    assert!(site.read("haproxy.cfg").contains("db-001"), "{}", d.log());
    assert_eq!(site.checks(), 1, "checked before it was put in place");
    assert_eq!(d.count("rolled back"), 0, "{}", d.log());
    assert!(wait_until(secs(3.0), || {
        let s = status_json(&addr);
        s["templates"][0]["ok"] == false
            && s["templates"][0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("reload_cmd"))
    }));
    assert!(
        site.exists(".srvd-reload-pending-haproxy.cfg"),
        "a restart would reload"
    );
    // HAProxy comes up; the retry after the back-off (10 s) reloads it.
    std::fs::remove_file(site.path("reload.fail")).unwrap();
    assert!(
        wait_until(secs(20.0), || site.reloads() == 1),
        "{}",
        d.log()
    );
    assert!(wait_until(secs(3.0), || status_json(&addr)["templates"][0]
        ["ok"]
        == true));
    assert!(site.read("haproxy.cfg").contains("db-001"));
    assert_eq!(site.checks(), 1, "the file was not rewritten");
}

/// With `disable_rollback_on_reload_failure`, dest keeps content the
/// middleware has not loaded until a reload succeeds: the template is not
/// healthy meanwhile, /status says so, a restart would reload, and the
/// retry after the back-off makes it healthy again.
#[test]
fn without_rollback_a_failed_reload_keeps_the_new_file_and_stays_failing_until_a_retry_succeeds() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    let addr = config_with_status(&site, &server, "disable_rollback_on_reload_failure = true");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    site.write("reload.fail", "");
    server.set_srv(D, 0, &[(10, 5, 3306, "db-009.example.com.")]);
    assert!(
        d.wait_log("reload_cmd exited with status 1", secs(5.0)),
        "{}",
        d.log()
    );
    assert!(
        d.wait_log("kept (disable_rollback_on_reload_failure)", secs(5.0)),
        "{}",
        d.log()
    );
    assert!(site.read("haproxy.cfg").contains("db-009"));
    // Ten cycles later the reload is still owed.
    assert_polls(&server, &d, 10, "");
    let s = status_json(&addr);
    assert_eq!(s["templates"][0]["ok"], false, "{s}");
    assert!(
        s["templates"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("reload_cmd"),
        "{s}"
    );
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
    // The retry after the back-off succeeds: healthy again.
    std::fs::remove_file(site.path("reload.fail")).unwrap();
    assert!(
        wait_until(secs(15.0), || site.reloads() == 2),
        "{}",
        d.log()
    );
    assert!(wait_until(secs(2.0), || status_json(&addr)["templates"][0]
        ["ok"]
        == true));
}

#[test]
fn failing_reloads_do_not_storm() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let mut tried = 0;
    for extra in ["", "disable_rollback_on_reload_failure = true"] {
        two_backends(&server, 0);
        let site = Site::new();
        basic_config(&site, &server, extra);
        let d = site.start();
        assert!(wait_until(secs(5.0), || site.reloads() == 1));
        std::thread::sleep(secs(0.3));
        drop(d);
        let attempts = site.path("attempts.log");
        site.set_commands(
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
        // 50 intervals of 100 ms with the same failing change, well within
        // the first back-off (10 s); the polls prove they ran.
        let asked = server.queries(D, RecordType::SRV);
        std::thread::sleep(secs(5.0));
        assert!(
            server.queries(D, RecordType::SRV) >= asked + 5,
            "{extra:?}: srvd kept polling\n{}",
            d.log()
        );
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
fn a_reload_interrupted_by_a_crash_is_run_at_the_next_start() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "");
    let out = site.run(&["--oneshot", "--no-reload"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(site.reloads(), 0);
    let good = site.read("haproxy.cfg");
    let checks = site.checks();
    // What a kill -9 between the rename and the end of the reload leaves.
    site.write(".srvd-reload-pending-haproxy.cfg", "");
    let d = site.start();
    assert!(
        wait_until(secs(5.0), || site.reloads() == 1),
        "the interrupted reload runs again\n{}",
        d.log()
    );
    assert!(d.wait_log("owed reload done", secs(2.0)), "{}", d.log());
    assert!(d.log().contains("did not finish; reloading again"));
    assert!(!site.exists(".srvd-reload-pending-haproxy.cfg"));
    assert_eq!(site.read("haproxy.cfg"), good, "dest untouched");
    assert_eq!(
        site.checks(),
        checks,
        "dest was up to date: nothing to check"
    );
    assert_polls(&server, &d, 10, "");
    assert_eq!(site.reloads(), 1, "once, not every cycle");
}
