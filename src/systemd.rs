//! The systemd edge: the sd_notify(3) protocol (READY, STATUS, RELOADING,
//! STOPPING, WATCHDOG), sockets passed by socket activation, and whether stderr is the
//! journal. Each is a no-op when srvd does not run under systemd.

use std::os::fd::{FromRawFd, OwnedFd};
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
#[derive(Debug, Clone)]
pub struct SdNotify {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl SdNotify {
    /// Reads NOTIFY_SOCKET and WATCHDOG_USEC; `allowed` is srvd.toml's `sdnotify`.
    pub fn from_env(allowed: bool) -> Self {
        let enabled = allowed && std::env::var_os("NOTIFY_SOCKET").is_some();
        SdNotify {
            enabled,
            // WATCHDOG_USEC=0 means no watchdog, not "ping constantly".
            watchdog: sd_notify::watchdog_enabled().filter(|w| enabled && !w.is_zero()),
        }
    }

    /// How often to ping the watchdog: half its period, as sd_watchdog_enabled(3) advises.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
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
        }
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    fn send(&self, state: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(state) {
            log::debug!("sd_notify: {e}");
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
