//! Migrating from the Go srvd: `srvd migrate-template` converts both of the
//! Go srvd's template forms to templates that render the bytes the Go srvd
//! wrote, and a Go template left as it is is named as such by `srvd check`
//! and at start.
//!
//! tests/fixtures/go-srvd/ holds the Go srvd's seed config and templates,
//! the files it wrote for two records (db-001 and db-002, `10 10 3306`), and
//! a zone file with those records.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/go-srvd")
        .join(name)
}

fn srvd(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(SRVD)
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn migrate(template: &Path) -> Output {
    srvd(&["migrate-template".as_ref(), template.as_os_str()])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The Go srvd's own srvd.toml, unchanged but for where the template and
/// dest are and the commands (no HAProxy here).
fn go_config(site: &Site) {
    let go = std::fs::read_to_string(fixture("srvd.toml")).unwrap();
    let text = go
        .replace("/etc/haproxy/haproxy.cfg.tmpl", "haproxy.cfg.tmpl")
        .replace("/etc/haproxy/haproxy.cfg", "haproxy.cfg")
        .replace(
            "/bin/systemctl reload haproxy.service",
            &site.reload_cmd().replace('"', "\\\""),
        )
        .replace(
            "/usr/sbin/haproxy -c -V -f {{ .src }}",
            "test -s {{ .src }}",
        );
    assert_ne!(text, go);
    site.write("srvd.toml", &text);
}

/// The template converted by `srvd migrate-template`, installed in `site`.
fn converted(site: &Site, form: &str) {
    let out = migrate(&fixture(&format!("haproxy.cfg.tmpl.{form}")));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    site.write("haproxy.cfg.tmpl", &text(&out.stdout));
}

#[test]
fn both_converted_seed_templates_render_the_go_srvd_bytes() {
    for form in ["go-early", "go-0.3"] {
        let site = Site::new();
        go_config(&site);
        converted(&site, form);
        let zone = fixture("example.com.zone");
        let out = site.run(&["render", "--zone", zone.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{form}: {}", text(&out.stderr));
        let expected = std::fs::read(fixture(&format!("expected.{form}.cfg"))).unwrap();
        assert_eq!(
            text(&out.stdout),
            text(&expected),
            "{form}: rendered (left) and what the Go srvd wrote (right)"
        );
        assert_eq!(out.stdout, expected, "{form}: byte for byte");
    }
}

#[test]
fn a_converted_template_is_written_to_dest_byte_for_byte() {
    let site = Site::new();
    go_config(&site);
    converted(&site, "go-0.3");
    let zone = fixture("example.com.zone");
    let mut config = site.read("srvd.toml");
    config.insert_str(0, &format!("zone_file = {:?}\n", zone.to_str().unwrap()));
    site.write("srvd.toml", &config);
    let out = site.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = site.run(&["--oneshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(site.path("haproxy.cfg")).unwrap(),
        std::fs::read(fixture("expected.go-0.3.cfg")).unwrap()
    );
    assert_eq!(site.reloads(), 1);
}

#[test]
fn check_names_go_syntax_the_line_and_the_way_out() {
    for (form, place) in [("go-early", ":4:3:"), ("go-0.3", ":3:3:")] {
        let site = Site::new();
        go_config(&site);
        std::fs::copy(
            fixture(&format!("haproxy.cfg.tmpl.{form}")),
            site.path("haproxy.cfg.tmpl"),
        )
        .unwrap();
        let out = site.run(&["check"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{form}: {err}");
        assert!(
            err.contains("this looks like a Go srvd template (text/template syntax)"),
            "{form}: {err}"
        );
        assert!(
            err.contains(&format!("haproxy.cfg.tmpl{place}")),
            "{form}: {err}"
        );
        assert!(err.contains("docs/migrating.md"), "{form}: {err}");
        assert!(err.contains("srvd migrate-template"), "{form}: {err}");
        assert!(!err.contains("Found `.`"), "{form}: Tera's message: {err}");
    }
}

#[test]
fn the_daemon_does_not_start_on_a_go_template() {
    let site = Site::new();
    go_config(&site);
    std::fs::copy(
        fixture("haproxy.cfg.tmpl.go-early"),
        site.path("haproxy.cfg.tmpl"),
    )
    .unwrap();
    let mut child = Command::new(SRVD)
        .arg("--config")
        .arg(site.path("srvd.toml"))
        .arg("--no-status")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let limit = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > limit {
            child.kill().unwrap();
            panic!("srvd kept running on a Go template");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(status.code(), Some(78), "{err}");
    assert!(err.contains("looks like a Go srvd template"), "{err}");
    assert!(!site.exists("haproxy.cfg"), "nothing written");
}

#[test]
fn migrate_template_refuses_with_the_line_and_exits_1() {
    let site = Site::new();
    let t = site.write(
        "t.tmpl",
        "backend nodes\n  {{ range .srvs }}\n  server {{ sh \"hostname\" }}\n  {{ end }}\n",
    );
    let out = migrate(&t);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        out.stdout.is_empty(),
        "nothing printed: {}",
        text(&out.stdout)
    );
    assert!(err.contains("t.tmpl:3:10:"), "{err}");
    assert!(err.contains("`{{ sh \"hostname\" }}`"), "{err}");
    assert!(err.contains("write the content in the template"), "{err}");
}

#[test]
fn migrate_template_notes_differences_on_stderr() {
    let site = Site::new();
    let t = site.write(
        "t.tmpl",
        "{{ range shufflesrvs 7 .srvs }}{{ .Target }}\n{{ end }}",
    );
    let out = migrate(&t);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "{% for s in srvs | shuffle(seed=7) %}{{ s.target }}\n{% endfor %}"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("t.tmpl:1:1:") && err.contains("shuffle"),
        "{err}"
    );
}

#[test]
fn migrate_template_names_a_missing_file() {
    let out = migrate(Path::new("/nonexistent/haproxy.cfg.tmpl"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("reading template /nonexistent/haproxy.cfg.tmpl"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_converter_has_its_man_page() {
    let dir = tempfile::tempdir().unwrap();
    let out = srvd(&[
        "generate".as_ref(),
        "--man".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(dir.path().join("srvd-migrate-template.8")).unwrap();
    assert!(page.contains("Go srvd template"), "{page}");
    let main = std::fs::read_to_string(dir.path().join("srvd.8")).unwrap();
    assert!(main.contains("srvd\\-migrate\\-template(8)"), "{main}");
}
