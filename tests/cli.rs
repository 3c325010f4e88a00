//! The command line, through the real binary: --oneshot's exit code,
//! --dry-run, --no-check, --no-reload, `srvd render`, `srvd generate`, the
//! Go srvd's flags, and the bundled example.

mod support;

use std::process::Command;

use support::dns::{DnsServer, Mode};
use support::*;

const D: &str = "_mysql._tcp.example.com.";

/// A DNS server answering db-001 for `D`, and a site on the usual config
/// plus `extra`.
fn configured(extra: &str) -> (DnsServer, Site) {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(10, 5, 3306, "db-001.example.com.")]);
    let site = Site::new();
    basic_config(&site, &dns, extra);
    (dns, site)
}

/// Asserts that a run of srvd exited 0, showing its stderr when not.
#[track_caller]
fn assert_exit_0(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn oneshot_exits_0_when_updated_or_up_to_date() {
    let (_dns, site) = configured("");
    let out = site.run(&["--oneshot"]);
    assert_exit_0(&out);
    assert!(site.read("haproxy.cfg").contains("db-001"));
    assert_eq!(site.reloads(), 1);
    let out = site.run(&["--oneshot"]);
    assert_eq!(out.status.code(), Some(0), "up to date");
    assert_eq!(site.reloads(), 1, "nothing to reload");
}

#[test]
fn oneshot_exits_1_when_dns_or_the_check_fails() {
    let (dns, site) = configured("");
    assert_eq!(site.run(&["--oneshot"]).status.code(), Some(0));
    dns.set_mode(D, Mode::ServFail);
    let out = site.run(&["--oneshot"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SERVFAIL"));
    dns.set_mode(D, Mode::Normal);
    dns.set_srv(D, 0, &[(10, 5, 3306, "db-002.example.com.")]);
    site.write("check.fail", "");
    assert_eq!(
        site.run(&["--oneshot"]).status.code(),
        Some(1),
        "a failed check"
    );
    assert!(site.read("haproxy.cfg").contains("db-001"));
}

#[test]
fn oneshot_ignores_wait_and_cooldown() {
    let (dns, site) = configured("cooldown = \"1h\"\nwait = \"1h\"");
    assert_eq!(site.run(&["--oneshot"]).status.code(), Some(0));
    dns.set_srv(D, 0, &[(10, 5, 3306, "db-002.example.com.")]);
    assert_eq!(site.run(&["--oneshot"]).status.code(), Some(0));
    assert!(site.read("haproxy.cfg").contains("db-002"));
}

#[test]
fn dry_run_prints_the_diff_and_touches_nothing() {
    let (_dns, site) = configured("");
    site.write("haproxy.cfg", "backend db\n  server old old.:1 check\n");
    let out = site.run(&["--oneshot", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("-  server old old.:1 check"), "{stdout}");
    assert!(
        stdout.contains("+  server db-001.example.com db-001.example.com.:3306 check"),
        "{stdout}"
    );
    assert_eq!(
        site.read("haproxy.cfg"),
        "backend db\n  server old old.:1 check\n"
    );
    assert_eq!(site.reloads(), 0);
    assert_eq!(site.checks(), 0);
    assert!(files_with_prefix(site.dir.path(), ".srvd").is_empty());
}

/// How `srvd ARGS` on `site` ended: its exit code, or None if it still ran
/// after `limit` (then it is killed), and its log.
fn exit_within(site: &Site, args: &[&str], limit: std::time::Duration) -> (Option<i32>, String) {
    let mut d = site.start_with(args, &[]);
    let mut code = None;
    let ended = wait_until(limit, || match d.child.try_wait() {
        Ok(Some(status)) => {
            code = status.code();
            true
        }
        _ => false,
    });
    if !ended {
        d.kill9();
    }
    (code, d.log())
}

/// `--dry-run` alone is one cycle, with `--oneshot`'s exit status: a
/// daemon that writes nothing would only print the same diff forever.
#[test]
fn dry_run_without_oneshot_runs_one_cycle_and_exits() {
    let (dns, site) = configured("");
    let (code, log) = exit_within(&site, &["--dry-run"], secs(10.0));
    assert_eq!(code, Some(0), "exits 0 after one cycle\n{log}");
    assert!(log.contains("would change"), "{log}");
    assert!(!site.exists("haproxy.cfg"));
    assert_eq!(site.reloads() + site.checks(), 0);
    // A failing template: exit 1, as --oneshot.
    dns.set_mode(D, Mode::ServFail);
    let (code, log) = exit_within(&site, &["--dry-run"], secs(10.0));
    assert_eq!(code, Some(1), "{log}");
    // The Go srvd's key in the config does the same.
    dns.set_mode(D, Mode::Normal);
    let (_dns2, keyed) = configured("dryrun = true");
    let (code, log) = exit_within(&keyed, &[], secs(10.0));
    assert_eq!(code, Some(0), "{log}");
    assert!(!keyed.exists("haproxy.cfg"));
}

#[test]
fn srvd_help_prints_the_help() {
    let site = Site::new();
    let out = site.run(&["help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_exit_0(&out);
    assert!(
        text.contains("Usage: srvd") && text.contains("--status-listen"),
        "{text}"
    );
    let out = site.run(&["help", "render"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--zone"));
}

#[test]
fn a_misspelt_log_level_lists_the_levels() {
    let site = Site::new();
    let out = site.run(&["--log-level", "verbose", "check"]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("verbose") && msg.contains("off, error, warn, info, debug, trace"),
        "{msg}"
    );
}

#[test]
fn render_of_an_unknown_template_lists_the_names() {
    let (dns, site) = configured("");
    let text = site.read("srvd.toml");
    let table = |name: &str| {
        format!(
            "[[template]]\nname = \"{name}\"\nsrc = \"haproxy.cfg.tmpl\"\n\
             dest = \"{name}.cfg\"\ndomain = \"_mysql._tcp.example.com\"\n"
        )
    };
    let top: String = text
        .lines()
        .filter(|l| {
            !["src =", "dest =", "domain ="]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let two = top + &table("mysql") + &table("redis");
    site.write("srvd.toml", &two);
    let out = site.run(&["render", "--template", "nope"]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("\"nope\"") && msg.contains("mysql, redis"),
        "{msg}"
    );
    assert_eq!(
        site.run(&["render", "--template", "redis"]).status.code(),
        Some(0)
    );
    drop(dns);
}

/// A broken line of a zone file is named with its line number, and said
/// once: not once by the file reader and again by each lookup.
#[test]
fn a_zone_file_syntax_error_names_its_line_once() {
    let site = example_site();
    let zone = site.read("example.com.zone");
    let broken = zone.replace(
        "_mysql._tcp  IN SRV  20 10 3306 db-003",
        "_mysql._tcp  IN SRV  20 10 notaport db-003",
    );
    assert_ne!(broken, zone);
    let line = broken.lines().position(|l| l.contains("notaport")).unwrap() + 1;
    site.write("bad.zone", &broken);
    let out = site.run(&["render", "--zone", site.path("bad.zone").to_str().unwrap()]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains(&format!("bad.zone: line {line}: ")), "{msg}");
    assert_eq!(msg.matches("invalid digit").count(), 1, "said once\n{msg}");
    // The daemon, over several cycles of the same broken file: once too.
    let port = free_port();
    let text = site
        .read("srvd.toml")
        .replace("nohttpd = true", &format!("status_port = {port}"));
    site.write("srvd.toml", &text);
    let addr = format!("127.0.0.1:{port}");
    let d = site.start();
    site.write("example.com.zone", &broken);
    assert!(
        d.wait_log(&format!("line {line}: "), secs(10.0)),
        "{}",
        d.log()
    );
    let cycles = metric(&addr, "srvd_cycles_total").unwrap_or(0.0);
    assert!(
        wait_until(secs(15.0), || metric(&addr, "srvd_cycles_total")
            .is_some_and(|n| n >= cycles + 3.0)),
        "{}",
        d.log()
    );
    let told: Vec<String> = d
        .log()
        .lines()
        .filter(|l| l.contains("invalid digit") && !l.contains("DEBUG"))
        .map(str::to_owned)
        .collect();
    assert_eq!(told.len(), 1, "{told:#?}");
}

#[test]
fn dry_run_in_the_config_touches_nothing() {
    let (_dns, site) = configured("dryrun = true");
    assert_eq!(site.run(&["--oneshot"]).status.code(), Some(0));
    assert!(!site.exists("haproxy.cfg"));
}

#[test]
fn the_go_srvd_flags_work_too() {
    let (_dns, site) = configured("");
    let out = Command::new(SRVD)
        .args([
            "-config",
            site.path("srvd.toml").to_str().unwrap(),
            "-oneshot",
            "-dryrun",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!site.exists("haproxy.cfg"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("+backend db"));
}

#[test]
fn no_check_and_no_reload_skip_their_commands() {
    let (_dns, site) = configured("");
    site.write("check.fail", "");
    assert_eq!(
        site.run(&["--oneshot", "--no-check", "--no-reload"])
            .status
            .code(),
        Some(0)
    );
    assert!(site.read("haproxy.cfg").contains("db-001"));
    assert_eq!(site.checks(), 0);
    assert_eq!(site.reloads(), 0);
}

#[test]
fn render_prints_what_dest_would_be_from_dns_or_a_zone_file() {
    let (_dns, site) = configured("");
    let out = site.run(&["render"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "backend db\n  server db-001.example.com db-001.example.com.:3306 check\n"
    );
    assert!(!site.exists("haproxy.cfg"));
    let out = site.run(&["render", "--template", "nope"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn render_with_a_zone_file_needs_no_dns_server() {
    let (_dns, site) = configured("");
    site.write(
        "z.zone",
        "$ORIGIN example.com.\n@ 30 IN SOA ns1 h 1 1 1 1 1\n_mysql._tcp 30 IN SRV 0 0 3307 zdb\n",
    );
    let out = site.run(&["render", "--zone", site.path("z.zone").to_str().unwrap()]);
    assert_exit_0(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("zdb.example.com.:3307"));
}

#[test]
fn version_prints_the_crate_version() {
    for flag in ["--version", "-version"] {
        let out = Command::new(SRVD).arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("srvd {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let out = Command::new(SRVD).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn generate_writes_the_man_page_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(SRVD)
        .args(["generate", "--man"])
        .arg(dir.path())
        .arg("--completions")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let man = std::fs::read_to_string(dir.path().join("srvd.8")).unwrap();
    assert!(
        man.contains(".TH srvd 8") && man.contains("\\-\\-oneshot"),
        "{man}"
    );
    assert!(
        man.contains("EXIT STATUS") && man.contains("srvd\\-check(8)"),
        "{man}"
    );
    let check = std::fs::read_to_string(dir.path().join("srvd-check.8")).unwrap();
    assert!(check.contains(".TH srvd-check 8"), "{check}");
    assert!(dir.path().join("srvd-render.8").exists());
    assert!(!dir.path().join("srvd-help.8").exists());
    for f in ["srvd.bash", "_srvd", "srvd.fish"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
}

/// The bundled example (examples/) in a scratch directory, its status
/// endpoint off.
fn example_site() -> Site {
    let root = env!("CARGO_MANIFEST_DIR");
    let site = Site::new();
    for f in ["srvd.toml", "haproxy.cfg.tmpl", "example.com.zone"] {
        std::fs::copy(format!("{root}/examples/{f}"), site.path(f)).unwrap();
    }
    let text = site
        .read("srvd.toml")
        .replace("status_port = 9161", "nohttpd = true");
    site.write("srvd.toml", &text);
    site
}

#[test]
fn the_bundled_example_runs_without_a_dns_server() {
    let site = example_site();
    let out = site.run(&["--oneshot"]);
    assert_exit_0(&out);
    let cfg = site.read("out/haproxy.cfg");
    assert!(
        cfg.contains("server db-001.example.com:3306 127.0.0.11:3306 weight 256 check\n"),
        "{cfg}"
    );
    assert!(
        cfg.contains("server db-003.example.com:3306 127.0.0.13:3306 weight 256 check backup\n"),
        "{cfg}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("echo (stdout): reloading haproxy"));
}

#[test]
fn the_bundled_example_follows_edits_of_its_zone_file() {
    let site = example_site();
    let d = site.start();
    assert!(
        wait_until(secs(6.0), || site
            .read("out/haproxy.cfg")
            .contains("db-002")),
        "{}",
        d.log()
    );
    assert!(d.wait_log("ready", secs(5.0)) || d.wait_log("started", secs(1.0)));
    let zone = site
        .read("example.com.zone")
        .replace("_mysql._tcp  IN SRV  10 10 3306 db-002\n", "");
    site.write("example.com.zone", &zone);
    assert!(
        wait_until(secs(6.0), || !site
            .read("out/haproxy.cfg")
            .contains("db-002")),
        "{}",
        d.log()
    );
    assert!(
        d.wait_log("removed: db-002.example.com:3306", secs(2.0)),
        "{}",
        d.log()
    );
}

/// RUST_LOG's `/text` keeps the messages that contain `text`, as a plain
/// substring: `.` and `*` are not regular-expression operators here.
#[test]
fn rust_log_text_filter_is_a_substring() {
    let (_dns, site) = configured("");
    let run = |spec: &str| {
        let out = Command::new(srvd_bin())
            .arg("--config")
            .arg(site.path("srvd.toml"))
            .arg("--oneshot")
            .env_remove("NOTIFY_SOCKET")
            .env("RUST_LOG", spec)
            .output()
            .unwrap();
        assert_exit_0(&out);
        std::fs::remove_file(site.path("haproxy.cfg")).unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let all = run("srvd=debug");
    let about = |log: &str| log.lines().filter(|l| l.contains("haproxy.cfg")).count();
    assert!(
        about(&all) >= 1 && about(&all) < all.lines().count(),
        "{all}"
    );
    let kept = run("srvd=debug/haproxy.cfg");
    assert!(kept.lines().all(|l| l.contains("haproxy.cfg")), "{kept}");
    assert_eq!(about(&kept), about(&all), "{kept}");
    // As a regular expression, `haproxy.cf.` would match the same lines.
    assert_eq!(run("srvd=debug/haproxy.cf."), "");
}
