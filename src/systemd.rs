//! The systemd edge: the sd_notify(3) protocol (READY, STATUS, RELOADING,
//! STOPPING, WATCHDOG), sockets passed by socket activation, and whether stderr is the
//! journal. Each is a no-op when srvd does not run under systemd.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// Variables srvd reads from systemd that its commands must not inherit: a
/// reload command that speaks sd_notify would otherwise talk for srvd.
pub const PRIVATE_ENV: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// Talks to the service manager over sd_notify(3) when there is one (not to
/// be confused with DNS NOTIFY, `dns_notify`).
///
/// srvd sends the datagrams itself rather than through `sd_notify::notify`:
/// the crate (0.5) connects to NOTIFY_SOCKET as a file path, so the abstract
/// form `@name` that sd_notify(3) allows (and that service managers other
/// than systemd's own use) never arrived, and its error was easy to lose.
/// The crate still formats the messages and reads WATCHDOG_USEC and LISTEN_FDS.
#[derive(Debug, Clone)]
pub struct SdNotify {
    /// NOTIFY_SOCKET as given, when `sdnotify` allows it.
    socket: Option<OsString>,
    watchdog: Option<Duration>,
    /// Whether the last send failed and was warned about: one warning per
    /// outage, not one per watchdog ping. Shared by the clones.
    failing: Arc<AtomicBool>,
}

/// Where NOTIFY_SOCKET points, in the forms sd_notify(3) lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyAddr {
    /// An absolute path of a Unix datagram socket in the file system.
    Path(std::path::PathBuf),
    /// `@name`: a socket in Linux's abstract namespace (unix(7)), named
    /// without the `@`.
    Abstract(Vec<u8>),
}

impl NotifyAddr {
    /// Reads NOTIFY_SOCKET's value. Errors: an empty value, a relative
    /// path, and the `vsock:` forms (AF_VSOCK, for virtual machines), which
    /// srvd does not speak; the message says what was expected.
    pub fn parse(value: &std::ffi::OsStr) -> Result<Self, String> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = value.as_bytes();
        match bytes.first() {
            Some(b'/') => Ok(NotifyAddr::Path(value.into())),
            Some(b'@') if bytes.len() > 1 => Ok(NotifyAddr::Abstract(bytes[1..].to_vec())),
            _ if bytes.starts_with(b"vsock") => Err(
                "AF_VSOCK notify sockets are not supported; run srvd with a Unix socket \
                 (an absolute path or @name)"
                    .into(),
            ),
            _ => Err("expected an absolute path or @name (sd_notify(3))".into()),
        }
    }

    fn send(&self, msg: &[u8]) -> std::io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        let n = match self {
            NotifyAddr::Path(p) => sock.send_to(msg, p)?,
            NotifyAddr::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                sock.send_to_addr(msg, &SocketAddr::from_abstract_name(name)?)?
            }
        };
        if n != msg.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("sent {n} of {} bytes", msg.len()),
            ));
        }
        Ok(())
    }
}

impl SdNotify {
    /// Reads NOTIFY_SOCKET and WATCHDOG_USEC; `allowed` is srvd.toml's `sdnotify`.
    pub fn from_env(allowed: bool) -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").filter(|_| allowed);
        let enabled = socket.is_some();
        SdNotify {
            socket,
            failing: Arc::new(AtomicBool::new(false)),
            // WATCHDOG_USEC=0 means no watchdog, not "ping constantly".
            watchdog: sd_notify::watchdog_enabled().filter(|w| enabled && !w.is_zero()),
        }
    }

    /// How often to ping the watchdog: half its period, as sd_watchdog_enabled(3) advises.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// READY=1 with STATUS. False when systemd waits for it and was not
    /// told (the failure is warned about), so that srvd does not log "ready".
    pub fn ready(&self, status: &str) -> bool {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)])
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// RELOADING=1 with the MONOTONIC_USEC systemd uses to match the reload.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[
                NotifyState::Reloading,
                now,
                NotifyState::Status("reloading the config"),
            ]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        };
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    /// Sends one datagram; true when it went or when there is no service
    /// manager to tell. A failure is a warning naming the socket, once until
    /// a send succeeds again.
    fn send(&self, state: &[NotifyState]) -> bool {
        let Some(socket) = &self.socket else {
            return true;
        };
        let mut msg = String::new();
        for s in state {
            let _ = writeln!(msg, "{s}");
        }
        let sent = NotifyAddr::parse(socket)
            .map_err(|e| e.to_string())
            .and_then(|addr| addr.send(msg.as_bytes()).map_err(|e| e.to_string()));
        match sent {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    log::info!(
                        "systemd notify socket {} works again",
                        socket.to_string_lossy()
                    );
                }
                true
            }
            Err(e) => {
                let what = msg.lines().next().unwrap_or_default();
                if self.failing.swap(true, Ordering::Relaxed) {
                    log::debug!("sd_notify to {}: {what}: {e}", socket.to_string_lossy());
                } else {
                    log::warn!(
                        "cannot tell systemd {what}: NOTIFY_SOCKET={}: {e}; systemd will not \
                         see srvd's state (a Type=notify unit times out); check the socket or \
                         set sdnotify = false",
                        socket.to_string_lossy()
                    );
                }
                false
            }
        }
    }
}

/// The sockets systemd passed (LISTEN_FDS/LISTEN_PID), owned from here on.
pub fn listen_fds() -> Vec<OwnedFd> {
    match sd_notify::listen_fds() {
        // SAFETY: systemd hands these descriptors to this process (LISTEN_PID
        // is checked by listen_fds) and nothing else in srvd uses them.
        Ok(fds) => fds.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }).collect(),
        Err(e) => {
            log::warn!("ignoring the sockets passed by systemd: {e}");
            Vec::new()
        }
    }
}

/// Whether stderr is connected to the journal (JOURNAL_STREAM names its
/// device and inode), so that logs can go there natively with fields.
pub fn stderr_is_journal() -> bool {
    systemd_journal_logger::connected_to_journal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn notify_socket_forms_of_sd_notify_3() {
        assert_eq!(
            NotifyAddr::parse(OsStr::new("/run/systemd/notify")),
            Ok(NotifyAddr::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            NotifyAddr::parse(OsStr::new("@srvd/notify")),
            Ok(NotifyAddr::Abstract(b"srvd/notify".to_vec()))
        );
        for refused in ["", "@", "run/notify", "vsock:2:1234", "vsock-dgram:2:1"] {
            let e = NotifyAddr::parse(OsStr::new(refused)).unwrap_err();
            assert!(e.contains("absolute path or @name"), "{refused}: {e}");
        }
    }
}
