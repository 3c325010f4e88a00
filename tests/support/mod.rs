//! Helpers shared by srvd's integration tests: a real DNS server (`dns`), and
//! the real srvd binary run in a temporary directory with its log captured.

#![allow(dead_code)]

pub mod dns;
pub mod haproxy;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const SRVD: &str = env!("CARGO_BIN_EXE_srvd");

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

    /// Runs srvd to completion with `args` (the config is added).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(SRVD)
            .arg("--config")
            .arg(self.path("srvd.toml"))
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// Starts the daemon with the site's srvd.toml.
    pub fn start(&self) -> Daemon {
        self.start_with(&[], &[])
    }

    pub fn start_with(&self, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(SRVD);
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
