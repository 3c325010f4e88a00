//! What srvd remembers of each template between cycles, as one enum per
//! question: is it healthy (`Health`), what does dest hold (`Dest`), is a
//! reload owed (`Reload`), does a change wait (`Change`). Plus the work items
//! a cycle passes between its steps (`Attempt`, `Work`, `Replaced`).
//!
//! ```text
//!  Dest: what dest holds
//!    start ─────────────────────────▶ Absent | Unmatched   (does the path exist?)
//!    each read of dest at a cycle ──▶ Absent               (no file)
//!                                 ──▶ Unmatched            (other bytes, mode or owner)
//!                                 ──▶ Matched{hash, stamp} (the render: trusted unread,
//!                                                           one stat(2), while the stamp holds)
//!    staged, checked, replaced ─────▶ Written
//!    Written ──reload failed, rolled back──▶ Absent | Unmatched (what it was before)
//!
//!  Reload: is one owed?
//!    Settled ──crash marker found at start──────────────▶ Owed{retry_at: now}
//!    Settled ──reload failed, rollback turned off───────▶ Owed{retry_at, backoff}
//!    Owed ────reload fails again────────────────────────▶ Owed (plan::next_backoff doubles it)
//!    Owed ────reload succeeds───────────────────────────▶ Settled
//!
//!  Change: does one wait?            Health: does the template work?
//!    Idle ──plan defers──▶ Waiting     Unknown ──first verdict──▶ Ok | Failing(Error)
//!    Waiting ──next cycle──▶ Idle      Ok ◀────────────────────▶ Failing(Error)
//!    Waiting ──a failure───▶ Idle      (a failure is logged when its text is new)
//! ```
//!
//! Readiness for systemd follows: a template is ready when it is healthy,
//! when it fails while a last good dest exists, or, before its first verdict,
//! when dest already holds the current render (a reload still owed).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::error::Error;
use crate::apply::{DestFile, Owner};
use crate::config::TemplateSettings;
use crate::logging::tlog;
use crate::plan::{PlanState, Why};
use crate::records::Answer;
use crate::stamp::Stamp;
use crate::status::DomainStatus;

/// Whether the template works, as /status reports it.
#[derive(Debug, Default)]
pub enum Health {
    /// No verdict yet: /status says "not rendered yet".
    #[default]
    Unknown,
    Ok,
    Failing(Error),
}

/// What dest holds, as far as srvd knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dest {
    /// No file at dest.
    #[default]
    Absent,
    /// A file srvd has not found equal to the current render.
    Unmatched,
    /// The render hashing to `hash`, read back and compared when dest had
    /// `stamp`: while the stamp stays the same, dest is trusted unread (one
    /// stat(2) per cycle instead of a read).
    Matched { hash: u64, stamp: Option<Stamp> },
    /// What srvd put there this run, not read back since.
    Written,
}

impl Dest {
    /// Whether dest may be trusted to hold the render `hash` without reading
    /// it: it was found so when it had `stamp`, and still has.
    pub fn trusted(self, hash: u64, stamp: Option<Stamp>) -> bool {
        stamp.is_some() && self == Dest::Matched { hash, stamp }
    }

    pub fn exists(self) -> bool {
        self != Dest::Absent
    }

    /// Whether dest holds the current render (read back or written by srvd).
    pub fn holds_render(self) -> bool {
        matches!(self, Dest::Matched { .. } | Dest::Written)
    }
}

/// Whether dest holds content the middleware may not have loaded yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reload {
    #[default]
    Settled,
    /// Reload again at `retry_at`; `backoff` is the wait that led there
    /// (zero for a reload owed since before a restart).
    Owed {
        retry_at: Instant,
        backoff: Duration,
    },
}

impl Reload {
    /// Owed and due at `now`.
    pub fn due(self, now: Instant) -> bool {
        matches!(self, Reload::Owed { retry_at, .. } if retry_at <= now)
    }
}

/// Whether a rendered change waits, why, and until when.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Change {
    #[default]
    Idle,
    Waiting {
        why: Why,
        until: Instant,
    },
}

/// Inputs and result of a template's last render: the render cache.
#[derive(Debug)]
pub struct Attempt {
    pub inputs: Vec<Arc<Answer>>,
    /// The bytes and their hash, or Tera's message. The bytes are shared
    /// with the [`Work`] that writes them, and take their exact size (Tera's
    /// output buffer is several times the text).
    pub result: Result<(Arc<[u8]>, u64), String>,
}

/// Everything srvd keeps about one template between cycles.
#[derive(Debug, Default)]
pub struct TemplateRun {
    pub plan: PlanState,
    /// The render cache.
    pub last: Option<Attempt>,
    pub health: Health,
    pub dest: Dest,
    pub reload: Reload,
    pub change: Change,
    /// Dry run: the hash of the render already shown, treated as in place.
    pub shown: Option<u64>,
    pub domains: Vec<DomainStatus>,
    /// Targets (host:port) in dest as srvd last wrote or found it.
    pub targets: Option<BTreeSet<String>>,
    pub last_change: Option<SystemTime>,
    pub last_success: Option<SystemTime>,
    /// The last time dest was known to hold the current render with its
    /// reload done: found so at a cycle, or written and reloaded.
    pub confirmed: Option<SystemTime>,
    pub changes: u64,
    pub check_failures: u64,
    pub reload_failures: u64,
    /// The last change went through HAProxy's runtime API, with no reload.
    pub no_reload_change: bool,
    /// When srvd last asked HAProxy's stats socket who its worker is, and
    /// the answer (`haproxy_socket`): a new worker means a restart.
    pub haproxy_checked: Option<(Instant, crate::haproxy::runtime::Worker)>,
}

impl TemplateRun {
    /// A template's state at start: whether dest exists, and whether a reload
    /// is owed since before a restart (due at once).
    pub fn new(t: &TemplateSettings, dest_exists: bool, owed: bool) -> Self {
        TemplateRun {
            dest: if dest_exists {
                Dest::Unmatched
            } else {
                Dest::Absent
            },
            reload: if owed {
                Reload::Owed {
                    retry_at: Instant::now(),
                    backoff: Duration::ZERO,
                }
            } else {
                Reload::Settled
            },
            domains: domain_statuses(t),
            ..TemplateRun::default()
        }
    }

    /// Kept across a config reload for the same dest: history stays, but the
    /// template text may have changed, so the render cache goes.
    pub fn carry_over(&mut self, t: &TemplateSettings) {
        self.last = None;
        self.domains = domain_statuses(t);
    }

    /// Ready for systemd (see the module doc).
    pub fn is_ready(&self) -> bool {
        match self.health {
            Health::Ok => true,
            Health::Failing(_) => self.dest.exists(),
            Health::Unknown => self.dest.holds_render(),
        }
    }

    /// When to look at the template again, sooner than its interval: when a
    /// waiting change or an owed reload is due.
    pub fn wake_at(&self) -> Option<Instant> {
        let waiting = match self.change {
            Change::Waiting { until, .. } => Some(until),
            Change::Idle => None,
        };
        let owed = match self.reload {
            Reload::Owed { retry_at, .. } => Some(retry_at),
            Reload::Settled => None,
        };
        match (waiting, owed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Healthy now; logs the recovery when it was failing.
    pub fn set_ok(&mut self, t: &TemplateSettings) {
        if let Health::Failing(reason) = &self.health {
            tlog!(Info, t, None, "{}: recovered (was: {reason})", t.name);
        }
        self.health = Health::Ok;
        self.last_success = Some(SystemTime::now());
    }

    /// Failing for `reason`; a waiting change is dropped. Logged when the
    /// text is new, so that a lasting outage is one line, not one per interval.
    pub fn set_failing(&mut self, t: &TemplateSettings, reason: Error) {
        self.change = Change::Idle;
        let text = reason.to_string();
        let same = matches!(&self.health, Health::Failing(old) if old.to_string() == text);
        if !same {
            tlog!(Warn, t, reason.command(t), "{}: {text}", t.name);
        }
        self.health = Health::Failing(reason);
    }
}

fn domain_statuses(t: &TemplateSettings) -> Vec<DomainStatus> {
    t.domains
        .iter()
        .map(|d| DomainStatus {
            domain: d.text.clone(),
            records: None,
            error: None,
            warning: None,
        })
        .collect()
}

/// What one cycle did, for the daemon's scheduling and `--oneshot`'s exit code.
#[derive(Debug, Default)]
pub struct Report {
    /// Templates that failed this cycle (lookup, render, write, check, reload).
    pub failed: Vec<usize>,
    /// Templates whose dest was changed.
    pub changed: Vec<usize>,
    /// Deferred changes: look at these templates again by then.
    pub wake: Vec<(usize, Instant)>,
}

/// A render to put in place: the decision was "apply".
pub struct Work {
    pub index: usize,
    /// Dest's real path (a symbolic link followed).
    pub dest: PathBuf,
    /// The render, shared with the template's [`Attempt`].
    pub content: Arc<[u8]>,
    pub hash: u64,
    pub owner: Owner,
    /// What dest held, for a rollback.
    pub previous: Option<DestFile>,
    pub targets: BTreeSet<String>,
}

/// A template that got through its check and is now in place.
#[derive(Debug)]
pub struct Replaced {
    pub index: usize,
    pub previous: Option<DestFile>,
    pub hash: u64,
    /// What `targets` was before, for a rollback.
    pub previous_targets: Option<BTreeSet<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> TemplateSettings {
        let text =
            "src = \"t\"\ndest = \"/x/d\"\ndomain = \"_a._tcp.example.com\"\nzone_file = \"z\"\n";
        crate::config::parse(text, std::path::Path::new("/x/srvd.toml"))
            .unwrap()
            .templates
            .remove(0)
    }

    #[test]
    fn a_template_is_ready_once_it_has_a_verdict_or_its_render_is_in_place() {
        let t = template();
        let mut run = TemplateRun::new(&t, false, false);
        assert!(!run.is_ready(), "nothing rendered, no dest");
        run.dest = Dest::Matched {
            hash: 1,
            stamp: None,
        };
        assert!(run.is_ready(), "up to date, only a reload owed");
        run.set_failing(&t, Error::Render("x".into()));
        run.dest = Dest::Absent;
        assert!(!run.is_ready(), "failing without a last good dest");
        run.dest = Dest::Unmatched;
        assert!(run.is_ready(), "failing, but the last good dest serves");
        run.set_ok(&t);
        assert!(run.is_ready());
    }

    #[test]
    fn dest_is_trusted_unread_only_with_the_same_render_and_stamp() {
        let d = Dest::Matched {
            hash: 7,
            stamp: None,
        };
        assert!(!d.trusted(7, None), "no stamp: always read");
        assert!(!Dest::Written.trusted(7, None));
        assert!(!Dest::Unmatched.trusted(7, None));
    }

    #[test]
    fn a_start_after_a_crash_owes_a_reload_due_at_once() {
        let t = template();
        let run = TemplateRun::new(&t, true, true);
        assert!(run.reload.due(Instant::now()));
        assert_eq!(run.dest, Dest::Unmatched);
        assert!(run.wake_at().is_some());
        assert_eq!(TemplateRun::new(&t, true, false).wake_at(), None);
    }

    #[test]
    fn failing_drops_a_waiting_change() {
        let t = template();
        let mut run = TemplateRun::new(&t, true, false);
        let until = Instant::now() + Duration::from_secs(5);
        run.change = Change::Waiting {
            why: Why::Wait,
            until,
        };
        assert_eq!(run.wake_at(), Some(until));
        run.set_failing(&t, Error::Render("x".into()));
        assert_eq!(run.change, Change::Idle);
        assert_eq!(run.wake_at(), None);
    }
}
