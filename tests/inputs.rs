//! The files srvd reads besides srvd.toml: `resolv_conf` and zone files are
//! read again on SIGHUP, a zone file is followed whatever its writer keeps
//! (size, mtime) or however it is replaced, and every relative path is
//! relative to the config file's directory, wherever srvd was started from.
//!
//! tests/fixtures/field/ holds the inputs of faults operators reported in
//! tools of srvd's kind; each test here copies what it needs.

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::signal::Signal;
use support::*;

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/field")
        .join(case)
}

/// A site holding the files of field case `case` (its folders too).
fn field_site(case: &str) -> Site {
    let site = Site::new();
    copy_dir(&fixture(case), site.dir.path());
    site
}

/// Waits up to 10 s for out/list.txt to read WANT (trailing white space
/// aside); else fails with CONTEXT and srvd's log.
#[track_caller]
fn wait_for_list(site: &Site, d: &Daemon, want: &str, context: &str) {
    assert!(
        wait_until(secs(10.0), || site.read("out/list.txt").trim_end() == want),
        "{context}{}",
        d.log()
    );
}

/// Puts PATH's modification time to T, as `touch -d` or `cp -p` would.
fn set_mtime(path: &Path, t: std::time::SystemTime) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// srvd run as systemd runs it, from `/`, with `config` given as an
/// absolute path; its log goes to `log`.
struct FromRoot {
    child: Child,
    log: PathBuf,
}

impl FromRoot {
    fn start(config: &Path, log: PathBuf) -> Self {
        let child = Command::new(SRVD)
            .arg("--config")
            .arg(config)
            .args(["--log-level", "debug"])
            .current_dir("/")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        FromRoot { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for FromRoot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `srvd check` on `config`, from `/`: exit code and stderr.
fn check_from_root(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(SRVD)
        .arg("--config")
        .arg(config)
        .arg("check")
        .current_dir("/")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Field case: `etc/srvd.toml` with `resolv_conf = "resolv.conf"` beside it
/// (a per-instance resolver file for `srvd@NAME`), srvd started from `/` as
/// systemd starts it. The file was looked for in `/`: `srvd check` passed,
/// the daemon exited 1 at every start, a restart loop.
#[test]
fn a_relative_resolv_conf_is_read_beside_the_config() {
    let site = field_site("30-resolv-conf-relative-path");
    let etc = site.path("etc");
    std::fs::create_dir(etc.join("out")).unwrap();
    let config = etc.join("srvd.toml");
    let resolv = etc.join("resolv.conf");

    let (code, msg) = check_from_root(&config);
    assert_eq!(code, Some(0), "{msg}");

    let mut d = FromRoot::start(&config, site.path("srvd.log"));
    let wanted = format!(
        "name servers 127.0.0.1:53 (resolv_conf {})",
        resolv.display()
    );
    assert!(
        wait_until(secs(10.0), || d.log().contains(&wanted)),
        "{}",
        d.log()
    );
    // Its first lookup is done (nothing may answer on 127.0.0.1:53 here: a
    // failed lookup is retried, which is no reason to exit), and it runs on.
    assert!(
        wait_until(secs(10.0), || d.log().contains("_mysql._tcp.example.com")),
        "{}",
        d.log()
    );
    assert!(
        !wait_until(secs(3.0), || !d.running()),
        "srvd exited:\n{}",
        d.log()
    );
}

/// Every other path key too: `src`, `dest` and `zone_file` beside the
/// config, with srvd started elsewhere.
#[test]
fn relative_paths_resolve_beside_the_config_whatever_the_working_directory() {
    let site = Site::new();
    let etc = site.path("etc");
    copy_dir(&fixture("08-zone-inplace-same-mtime"), &etc);
    std::fs::copy(etc.join("src-a.zone"), etc.join("example.com.zone")).unwrap();
    std::fs::create_dir(etc.join("out")).unwrap();
    let config = etc.join("srvd.toml");

    let (code, msg) = check_from_root(&config);
    assert_eq!(code, Some(0), "{msg}");
    let d = FromRoot::start(&config, site.path("srvd.log"));
    assert!(
        wait_until(secs(10.0), || site.read("etc/out/list.txt").trim_end()
            == "server db-001.example.com:3306"),
        "{}",
        d.log()
    );
    assert!(!Path::new("/out/list.txt").exists());
}

/// Field case: the zone file rewritten in place with a file of the same
/// size whose mtime is put back (`cp -p`, `rsync -t --inplace`, builds with
/// a fixed mtime). Never noticed, not even after SIGHUP.
#[test]
fn a_zone_file_rewritten_in_place_keeping_size_and_mtime_is_followed() {
    let site = field_site("08-zone-inplace-same-mtime");
    std::fs::create_dir(site.path("out")).unwrap();
    let zone = site.path("example.com.zone");
    std::fs::copy(site.path("src-a.zone"), &zone).unwrap();
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    set_mtime(&zone, mtime);
    let d = site.start();
    wait_for_list(&site, &d, "server db-001.example.com:3306", "");

    // In place: the same inode, the same size, the mtime put back.
    let b = std::fs::read(site.path("src-b.zone")).unwrap();
    assert_eq!(b.len() as u64, std::fs::metadata(&zone).unwrap().len());
    let before = std::fs::metadata(&zone).unwrap();
    std::fs::write(&zone, &b).unwrap();
    set_mtime(&zone, mtime);
    let after = std::fs::metadata(&zone).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (before.ino(), before.size(), before.mtime()),
        (after.ino(), after.size(), after.mtime())
    );

    wait_for_list(&site, &d, "server db-002.example.com:3306", "");
}

/// The way the docs say to replace a zone file: a temporary file beside it,
/// renamed over it.
#[test]
fn a_zone_file_replaced_by_rename_is_followed() {
    let site = field_site("08-zone-inplace-same-mtime");
    std::fs::create_dir(site.path("out")).unwrap();
    std::fs::copy(site.path("src-a.zone"), site.path("example.com.zone")).unwrap();
    let d = site.start();
    assert!(
        wait_until(secs(10.0), || site.read("out/list.txt").contains("db-001")),
        "{}",
        d.log()
    );
    for (i, host) in ["db-002", "db-003", "db-004"].iter().enumerate() {
        let text = site
            .read("src-a.zone")
            .replace("db-001", host)
            .replace(" 1 3600", &format!(" {} 3600", i + 2));
        site.write("example.com.zone.tmp", &text);
        std::fs::rename(
            site.path("example.com.zone.tmp"),
            site.path("example.com.zone"),
        )
        .unwrap();
        let want = format!("server {host}.example.com:3306\n");
        wait_for_list(&site, &d, want.trim_end(), &format!("{host}: "));
    }
}

/// Field case: `resolv_conf` names 127.0.0.1; the operator changes it to
/// 127.0.0.2 and sends SIGHUP. Every query still went to 127.0.0.1 until a
/// restart. (Nothing can listen on port 53 without root here: the log says
/// which servers the resolver was built with.)
#[test]
fn sighup_reads_resolv_conf_again() {
    let site = field_site("03-resolvconf-not-reread");
    std::fs::create_dir(site.path("out")).unwrap();
    let resolv = site.path("resolv.conf");
    let d = site.start();
    let first = format!(
        "name servers 127.0.0.1:53 (resolv_conf {})",
        resolv.display()
    );
    assert!(d.wait_log(&first, secs(10.0)), "{}", d.log());

    site.write("resolv.conf", "nameserver 127.0.0.2\n");
    let mark = d.mark();
    d.signal(Signal::SIGHUP);
    let second = format!(
        "records now from name servers 127.0.0.2:53 (resolv_conf {})",
        resolv.display()
    );
    assert!(
        wait_until(secs(10.0), || d.count_since(mark, &second) == 1),
        "{}",
        d.log()
    );
    // A resolv.conf gone by the next SIGHUP: refused, the servers stay.
    std::fs::remove_file(&resolv).unwrap();
    let mark = d.mark();
    d.signal(Signal::SIGHUP);
    assert!(
        wait_until(secs(10.0), || d.count_since(mark, "config reload refused")
            == 1),
        "{}",
        d.log()
    );
    assert!(d.log()[mark..].contains("`resolv_conf`"), "{}", d.log());
    assert_eq!(d.count_since(mark, "records now from"), 0, "{}", d.log());
}
