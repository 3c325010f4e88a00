//! A NOTIFY_SOCKET for tests: a Unix datagram socket that records every
//! message srvd sends (READY, STATUS, WATCHDOG, RELOADING, STOPPING) with the
//! time it arrived, as systemd would receive them.

#![allow(dead_code)]

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Site, wait_until};

/// The socket and what arrived on it so far, in order.
pub struct NotifySocket {
    pub path: PathBuf,
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    /// Binds `notify.sock` in the site's directory and collects in the
    /// background.
    pub fn new(site: &Site) -> Self {
        let path = site.path("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        Self::collect(sock, path)
    }

    /// Binds a socket in Linux's abstract namespace, named after the site's
    /// directory so that parallel tests never share one; `path` is then the
    /// `@name` form of NOTIFY_SOCKET.
    pub fn new_abstract(site: &Site) -> Self {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("srvd-test{}", site.path("notify").display()).replace('/', "-");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        Self::collect(sock, PathBuf::from(format!("@{name}")))
    }

    fn collect(sock: UnixDatagram, path: PathBuf) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push((Instant::now(), text));
            }
        });
        NotifySocket { path, seen }
    }

    /// The messages received so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// When each message containing `pat` arrived.
    pub fn times(&self, pat: &str) -> Vec<Instant> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m)| m.contains(pat))
            .map(|(t, _)| *t)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn count(&self, pat: &str) -> usize {
        self.seen().iter().filter(|m| m.contains(pat)).count()
    }

    /// Waits for a message containing `pat`; returns its index.
    pub fn wait_for(&self, pat: &str, limit: Duration) -> Option<usize> {
        wait_until(limit, || self.count(pat) > 0);
        self.seen().iter().position(|m| m.contains(pat))
    }

    /// The index of the first message from `start` on containing `pat`.
    pub fn position_after(&self, start: usize, pat: &str) -> Option<usize> {
        self.seen()[start..]
            .iter()
            .position(|m| m.contains(pat))
            .map(|i| i + start)
    }

    /// Waits until `n` messages contain `pat`.
    pub fn wait_count(&self, pat: &str, n: usize, limit: Duration) -> bool {
        wait_until(limit, || self.count(pat) >= n)
    }
}
