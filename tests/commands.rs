//! Running check and reload commands, through the real binary: past their
//! timeout the whole process group is killed, megabytes of output keep
//! memory and the log bounded, and a missing or unexecutable command leaves
//! dest untouched or rolled back. Each test counts the cases it tried.

mod support;

use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::dns::DnsServer;
use support::*;

#[test]
fn a_check_past_its_timeout_is_killed_with_its_whole_group() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "timeout = \"500ms\"");
    let pidfile = site.path("grandchild.pid");
    site.set_commands(
        Some(&format!(
            "sh -c 'sleep 30 & echo $! > {}; wait'",
            pidfile.display()
        )),
        None,
    );
    let d = site.start();
    assert!(
        d.wait_log("check_cmd timed out after 500ms", secs(6.0)),
        "{}",
        d.log()
    );
    let pid: i32 = site.read("grandchild.pid").trim().parse().unwrap();
    assert!(
        wait_until(secs(3.0), || kill(Pid::from_raw(pid), None).is_err()),
        "the grandchild is gone"
    );
    assert!(!site.exists("haproxy.cfg"));
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
    two_backends(&server, 0);
    let mut tried = 0;
    for code in [1, 0] {
        let site = Site::new();
        basic_config(&site, &server, "timeout = \"500ms\"");
        let pidfile = site.path("child.pid");
        site.set_commands(Some(&leaves_a_child(&pidfile, code)), None);
        let d = site.start();
        assert!(wait_until(secs(5.0), || site
            .read_pid("child.pid")
            .is_some()));
        let pid = site.read_pid("child.pid").unwrap();
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
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "timeout = \"500ms\"");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    let good = site.read("haproxy.cfg");
    drop(d);
    let pidfile = site.path("child.pid");
    site.set_commands(
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
        let pid = site.read_pid(f).unwrap();
        assert!(wait_until(secs(3.0), || !alive(pid)), "{f}: still running");
    }
    assert!(files_with_prefix(site.dir.path(), ".srvd-staged-").is_empty());
}

#[test]
fn megabytes_of_output_keep_memory_and_the_log_bounded() {
    let server = DnsServer::start();
    two_backends(&server, 0);
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
        site.set_commands(check, reload);
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

/// A script without the execute bit, in a scratch directory that stays
/// alive as long as the returned site.
fn not_executable() -> (Site, std::path::PathBuf) {
    let scratch = Site::new();
    let script = scratch.write("not-executable.sh", "#!/bin/sh\nexit 0\n");
    (scratch, script)
}

/// Runs each case (what, check_cmd, reload_cmd, what the log says) on a
/// site that rendered once with working commands: dest must stay as it
/// was, the failure logged once, no staged file left. Returns the cases tried.
fn cannot_start(cases: &[(&str, Option<String>, Option<String>, &str)]) -> usize {
    let server = DnsServer::start();
    let mut tried = 0;
    for (round, (what, check, reload, says)) in cases.iter().enumerate() {
        let site = Site::new();
        basic_config(&site, &server, "");
        two_backends(&server, 0);
        let d = site.start();
        assert!(wait_until(secs(5.0), || site.reloads() == 1), "{what}");
        // The reload's marker is removed just after it returns.
        std::thread::sleep(secs(0.3));
        let good = site.read("haproxy.cfg");
        drop(d);
        site.set_commands(check.as_deref(), reload.as_deref());
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
    tried
}

#[test]
fn a_check_that_cannot_be_started_leaves_dest_untouched() {
    let (scratch, script) = not_executable();
    let cases = [
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
    ];
    assert_eq!(cannot_start(&cases), 3);
}

#[test]
fn a_reload_that_cannot_be_started_is_rolled_back() {
    let (_scratch, script) = not_executable();
    let cases = [
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
    assert_eq!(cannot_start(&cases), 2);
}

#[test]
fn a_check_that_fails_without_a_word_is_named_as_silent_and_a_loud_one_is_logged() {
    // `haproxy -c -q` prints nothing when it refuses a file (HAProxy 2.6):
    // the log must say that nothing explains the failure, and what to use.
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, "");
    site.write("haproxy.cfg.tmpl", "backend b\n  bogus_keyword\n");
    site.set_commands(Some("haproxy -c -q -f {{ src }}"), None);
    let out = site.run(&["--oneshot"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        log.contains("check_cmd exited with status 1 and printed nothing")
            && log.contains("use `haproxy -c`"),
        "{log}"
    );
    // Without -q, HAProxy's reason is in the log, and no "printed nothing".
    site.set_commands(Some("haproxy -c -f {{ src }}"), None);
    let out = site.run(&["--oneshot"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(log.contains("check_cmd exited with status 1"), "{log}");
    assert!(!log.contains("printed nothing"), "{log}");
    assert!(
        log.contains("haproxy (stderr):") && log.contains("bogus_keyword"),
        "{log}"
    );
    assert!(!site.exists("haproxy.cfg"));
    // A reload that fails in silence, with no quiet flag: said, but no
    // advice about `-q`, which is not the cause there.
    site.write("haproxy.cfg.tmpl", "backend b\n");
    site.set_commands(Some("true"), Some("false"));
    let out = site.run(&["--oneshot"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        log.contains("reload_cmd exited with status 1 and printed nothing"),
        "{log}"
    );
    assert!(!log.contains("quiet flag"), "{log}");
}
