//! A real HAProxy in master-worker mode (`haproxy -W -S`) for tests, with its
//! master CLI and stats socket in a scratch directory, and TCP backends that
//! say their name and then echo.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use super::wait_until;

pub struct Haproxy {
    child: Child,
    pub dir: tempfile::TempDir,
    pub cfg: PathBuf,
    pub master: PathBuf,
    pub admin: PathBuf,
}

impl Haproxy {
    /// Writes `cfg` (which must have `stats socket {admin} level admin`; the
    /// text `{admin}` is replaced by the socket's path) and starts HAProxy on
    /// it, waiting until both sockets answer.
    pub fn start(cfg: &str) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let admin = dir.path().join("admin.sock");
        let master = dir.path().join("master.sock");
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg.replace("{admin}", &admin.to_string_lossy())).unwrap();
        Haproxy::run(dir, path, admin, master)
    }

    /// Starts HAProxy on the config file `cfg`, whose stats socket is
    /// `admin`, with its master CLI on `master`; `dir` is kept as long as
    /// HAProxy runs.
    pub fn run(dir: tempfile::TempDir, cfg: PathBuf, admin: PathBuf, master: PathBuf) -> Haproxy {
        let child = Command::new("haproxy")
            .arg("-W")
            .arg("-S")
            .arg(&master)
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy must be installed (tests/all.sh installs it)");
        let h = Haproxy {
            child,
            dir,
            cfg,
            master,
            admin,
        };
        assert!(
            wait_until(Duration::from_secs(10), || {
                h.ask_master("show proc").contains("worker") && h.ask("show info").contains("Pid:")
            }),
            "HAProxy did not start on {}",
            h.cfg.display()
        );
        h
    }

    /// One command on the stats socket.
    pub fn ask(&self, cmd: &str) -> String {
        ask(&self.admin, cmd)
    }

    /// One command on the master CLI.
    pub fn ask_master(&self, cmd: &str) -> String {
        ask(&self.master, cmd)
    }

    /// The master's reload count and failed count (`show proc`). While the
    /// master re-executes itself for a reload its socket may not answer:
    /// asks again for up to 10 s.
    pub fn reloads(&self) -> (u64, u64) {
        let mut found = None;
        wait_until(Duration::from_secs(10), || {
            found = srvd::haproxy::master::parse_show_proc(&self.ask_master("show proc"));
            found.is_some()
        });
        let p = found.expect("the master CLI answers show proc");
        (p.reloads, p.failed)
    }

    /// The current worker's process id (`show info`).
    pub fn worker_pid(&self) -> u32 {
        srvd::haproxy::runtime::parse_info(&self.ask("show info"))
            .expect("show info")
            .pid
    }

    /// Replaces the config file (the next reload reads it).
    pub fn write_cfg(&self, cfg: &str) {
        std::fs::write(
            &self.cfg,
            cfg.replace("{admin}", &self.admin.to_string_lossy()),
        )
        .unwrap();
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = wait_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ask(path: &PathBuf, cmd: &str) -> String {
    let Ok(mut s) = UnixStream::connect(path) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if s.write_all(format!("{cmd}\n").as_bytes()).is_err() {
        return String::new();
    }
    let _ = s.shutdown(Shutdown::Write);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A TCP server that writes its name and a newline to each connection, then
/// echoes what it reads. Counts the connections it accepted.
pub struct Backend {
    pub name: String,
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, a, st) = (name.to_owned(), accepted.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut c) = conn else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                let n = n.clone();
                thread::spawn(move || {
                    if c.write_all(format!("{n}\n").as_bytes()).is_err() {
                        return;
                    }
                    let mut buf = [0u8; 512];
                    while let Ok(k) = c.read(&mut buf) {
                        if k == 0 || c.write_all(&buf[..k]).is_err() {
                            break;
                        }
                    }
                    let _ = c.shutdown(Shutdown::Both);
                });
            }
        });
        Backend {
            name: name.to_owned(),
            port,
            accepted,
            stop,
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A client session through HAProxy: connects, reads which backend answered.
pub struct Session {
    pub stream: BufReader<TcpStream>,
    pub server: String,
}

impl Session {
    pub fn open(port: u16) -> Option<Session> {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut stream = BufReader::new(s);
        let mut server = String::new();
        stream.read_line(&mut server).ok()?;
        let server = server.trim().to_owned();
        if server.is_empty() {
            return None;
        }
        Some(Session { stream, server })
    }

    /// Whether the session still carries data both ways.
    pub fn alive(&mut self) -> bool {
        if self.stream.get_mut().write_all(b"ping\n").is_err() {
            return false;
        }
        let mut line = String::new();
        matches!(self.stream.read_line(&mut line), Ok(n) if n > 0 && line == "ping\n")
    }

    /// Whether the peer closed the session (end of file or reset) within `limit`.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        self.stream.get_mut().set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 64];
        match self.stream.get_mut().read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}
