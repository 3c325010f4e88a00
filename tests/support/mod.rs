//! Helpers shared by srvd's integration tests: a real DNS server (`dns`), a
//! NOTIFY_SOCKET (`systemd`), a real HAProxy (`haproxy`), and the real srvd
//! binary run in a temporary directory with its log captured, its status
//! endpoint read, its processes watched.

#![allow(dead_code)]

pub mod dns;
pub mod haproxy;
pub mod systemd;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const SRVD: &str = env!("CARGO_BIN_EXE_srvd");

/// The binary `Site` runs: srvd built with the tests, or the one `SRVD_BIN`
/// names, to replay a scenario against another build (an older release).
pub fn srvd_bin() -> String {
    std::env::var("SRVD_BIN").unwrap_or_else(|_| SRVD.to_owned())
}

/// The domain of `basic_config`'s template.
pub const D: &str = "_mysql._tcp.example.com.";

/// A scratch directory with a template, a config, and a counter for reloads.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Self {
        Site {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A site holding a copy of the files of tests/fixtures/field/CASE
    /// (srvd.toml, template, zone file: the inputs that reproduced a fault
    /// reported from the field), flat, under their own names.
    pub fn from_field_case(case: &str) -> Self {
        let site = Site::new();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/field");
        for e in std::fs::read_dir(dir.join(case)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), site.path(e.file_name().to_str().unwrap())).unwrap();
        }
        site
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// A reload command that appends a line to `reloads.log` (or fails when
    /// the file `reload.fail` exists).
    pub fn reload_cmd(&self) -> String {
        let log = self.path("reloads.log");
        let fail = self.path("reload.fail");
        format!(
            "sh -c 'test ! -e \"{}\" && echo reload >> \"{}\"'",
            fail.display(),
            log.display()
        )
    }

    /// How many times the reload command ran successfully.
    pub fn reloads(&self) -> usize {
        self.read("reloads.log").lines().count()
    }

    /// A check command that fails when `check.fail` exists, and records each run.
    pub fn check_cmd(&self) -> String {
        format!(
            "sh -c 'echo check >> \"{}\"; test ! -e \"{}\" && test -s \"$0\"' {{{{ src }}}}",
            self.path("checks.log").display(),
            self.path("check.fail").display()
        )
    }

    pub fn checks(&self) -> usize {
        self.read("checks.log").lines().count()
    }

    /// Replaces the line `key = ...` of srvd.toml (or adds it first).
    pub fn set_key(&self, key: &str, value: &str) {
        let text = self.read("srvd.toml");
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
        self.write("srvd.toml", &(out.join("\n") + "\n"));
    }

    /// Replaces `check_cmd` and `reload_cmd` in srvd.toml (None: keep).
    pub fn set_commands(&self, check: Option<&str>, reload: Option<&str>) {
        if let Some(c) = check {
            self.set_key("check_cmd", &format!("\"\"\"{c}\"\"\""));
        }
        if let Some(r) = reload {
            self.set_key("reload_cmd", &format!("\"\"\"{r}\"\"\""));
        }
    }

    /// The process id a command wrote to the file `name`.
    pub fn read_pid(&self, name: &str) -> Option<i32> {
        self.read(name).trim().parse().ok()
    }

    /// Runs srvd to completion with `args` (the config is added).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(srvd_bin())
            .arg("--config")
            .arg(self.path("srvd.toml"))
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// Starts the daemon with NOTIFY_SOCKET and WATCHDOG_USEC set, as
    /// systemd starts a Type=notify service.
    pub fn start_notified(&self, notify: &systemd::NotifySocket, watchdog_usec: &str) -> Daemon {
        self.start_with(
            &[],
            &[
                ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
                ("WATCHDOG_USEC", watchdog_usec),
            ],
        )
    }

    /// Starts the daemon with the site's srvd.toml.
    pub fn start(&self) -> Daemon {
        self.start_with(&[], &[])
    }

    pub fn start_with(&self, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(srvd_bin());
        cmd.arg("--config")
            .arg(self.path("srvd.toml"))
            .arg("--log-level")
            .arg("debug")
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Daemon { child, log }
    }
}

/// A running srvd, killed when dropped.
pub struct Daemon {
    pub child: Child,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Lines of the log that contain `pat`.
    pub fn count(&self, pat: &str) -> usize {
        self.log().lines().filter(|l| l.contains(pat)).count()
    }

    /// Where the log ends now, for `count_since`.
    pub fn mark(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Lines logged after `mark` that contain `pat`.
    pub fn count_since(&self, mark: usize, pat: &str) -> usize {
        self.log()[mark..]
            .lines()
            .filter(|l| l.contains(pat))
            .count()
    }

    pub fn wait_log(&self, pat: &str, limit: Duration) -> bool {
        wait_until(limit, || self.log().contains(pat))
    }

    pub fn signal(&self, sig: Signal) {
        let _ = kill(self.pid(), sig);
    }

    /// SIGTERM, then the exit status and how long it took.
    pub fn stop(&mut self) -> (Option<i32>, Duration) {
        let t = Instant::now();
        self.signal(Signal::SIGTERM);
        let status = self.child.wait().unwrap();
        (status.code(), t.elapsed())
    }

    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 20 ms until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A minimal one-domain template: one line per record.
pub const TEMPLATE: &str = "backend db\n{% for s in srvs %}  server {{ s.host }} {{ s.target }}:{{ s.port }} check\n{% endfor %}";

/// Sets `D`'s answer to two backends, db-001 and db-002, at `ttl`.
pub fn two_backends(server: &dns::DnsServer, ttl: u32) {
    server.set_srv(
        D,
        ttl,
        &[
            (10, 5, 3306, "db-001.example.com."),
            (10, 5, 3306, "db-002.example.com."),
        ],
    );
}

/// A DNS server answering `two_backends` and a site on the usual config
/// plus `extra`, srvd not started yet.
pub fn two_backend_site(extra: &str) -> (dns::DnsServer, Site) {
    let server = dns::DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, extra);
    (server, site)
}

/// srvd on the usual config plus `extra`, after its first render and reload.
pub fn running(extra: &str) -> (dns::DnsServer, Site, Daemon) {
    let (server, site) = two_backend_site(extra);
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    (server, site, d)
}

/// Waits for `n` more SRV queries for `D` than `server` has had: proof that
/// srvd kept polling, so that a test asserting that nothing happened
/// meanwhile (no rewrite, no second check or reload) cannot pass because
/// srvd stopped. The limit allows polls five times slower than the usual
/// 100 ms interval, and 10 s more. `what` names the case in the message.
pub fn assert_polls(server: &dns::DnsServer, d: &Daemon, n: usize, what: &str) {
    let since = server.queries(D, RecordType::SRV);
    assert!(
        server.wait_queries(D, RecordType::SRV, since, n, secs(10.0 + n as f64 * 0.5)),
        "{what}: srvd stopped polling: {} of {n} queries\n{}",
        server.queries(D, RecordType::SRV) - since,
        d.log()
    );
}

/// Runs `srvd check` on srvd.toml `config` and asserts that it is refused
/// as a config error (exit 78, sysexits.h's EX_CONFIG) with a message on
/// stderr that contains each of `needles`, without a panic.
pub fn assert_refused(site: &Site, what: &str, config: &str, needles: &[&str]) {
    site.write("srvd.toml", config);
    let out = site.run(&["check"]);
    let msg = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(78), "{what}: exit code\n{msg}");
    for n in needles {
        assert!(
            msg.contains(n),
            "{what}: message should contain {n:?}:\n{msg}"
        );
    }
    assert!(!msg.contains("panicked"), "{what}: {msg}");
}

/// `basic_config` with the status endpoint on a free port; returns its
/// address.
pub fn config_with_status(site: &Site, server: &dns::DnsServer, extra: &str) -> String {
    let port = free_port();
    let text = basic_config(site, server, &format!("status_port = {port}\n{extra}"))
        .replace("nohttpd = true\n", "");
    site.write("srvd.toml", &text);
    format!("127.0.0.1:{port}")
}

/// The usual config for a site: one template, one domain at `server`.
pub fn basic_config(site: &Site, server: &dns::DnsServer, extra: &str) -> String {
    site.write("haproxy.cfg.tmpl", TEMPLATE);
    let text = format!(
        "src = \"haproxy.cfg.tmpl\"\ndest = \"haproxy.cfg\"\ndomain = \"_mysql._tcp.example.com\"\n\
         nameservers = [{}]\ndns_timeout = \"300ms\"\ndns_attempts = 1\n\
         reload_cmd = \"\"\"{}\"\"\"\ncheck_cmd = \"\"\"{}\"\"\"\ninterval = \"100ms\"\nnohttpd = true\n{extra}\n",
        server.toml_addr(),
        site.reload_cmd(),
        site.check_cmd()
    );
    site.write("srvd.toml", &text);
    text
}

/// Files in `dir` whose name starts with `prefix`.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port free for both UDP and TCP a moment ago.
pub fn free_udp_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// /status as JSON; Null when it cannot be read.
pub fn status_json(addr: &str) -> serde_json::Value {
    let (code, body) = http_get(addr, "/status");
    if code != 200 {
        return serde_json::Value::Null;
    }
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}

/// A value from /metrics, e.g. `srvd_cycles_total`.
pub fn metric(addr: &str, key: &str) -> Option<f64> {
    let (_, body) = http_get(addr, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Whether process `pid` still runs (a zombie still answers kill(0); it is
/// gone for our purpose).
pub fn alive(pid: i32) -> bool {
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = state
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    kill(Pid::from_raw(pid), None).is_ok() && !zombie
}

/// A field of /proc/PID/status in KiB, e.g. "VmRSS" (0 when unreadable).
pub fn proc_kib(pid: Pid, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory of `pid`, in KiB.
pub fn rss_kib(pid: Pid) -> u64 {
    proc_kib(pid, "VmRSS")
}

/// GET `path`; (0, "") when the endpoint cannot be reached.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").is_err() {
        return (0, String::new());
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (code, body)
}
