//! When to apply a rendered change: quiescence (`wait`), `cooldown`, and the
//! back-off after a failed check or reload (also the one an owed reload
//! retries by). Plain functions over values and
//! instants, so every rule is tested without clocks, sockets or files.

use std::time::{Duration, Instant};

use crate::config::Timing;

/// First back-off after a change failed its check or reload.
pub const BACKOFF_START: Duration = Duration::from_secs(10);
/// The back-off doubles up to this.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What the planner remembers of one template between cycles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanState {
    /// A render has been seen this run: later changes go through `wait`.
    pub settled: bool,
    /// A change not applied yet.
    pub pending: Option<Pending>,
    pub last_applied: Option<Instant>,
    /// The last change that failed its check or reload.
    pub failed: Option<Failed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub hash: u64,
    pub first_seen: Instant,
    pub last_changed: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    pub hash: u64,
    pub retry_at: Instant,
    pub backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Dest already holds this render.
    UpToDate,
    Apply,
    /// Not now; look again at `until` at the latest.
    Defer {
        until: Instant,
        why: Why,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Wait,
    Cooldown,
    Backoff,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Why::Wait => "waiting for the records to settle (wait)",
            Why::Cooldown => "cooldown since the last change",
            Why::Backoff => "back-off after a failed check or reload",
        })
    }
}

/// Decides what to do with a render whose content hashes to `hash`.
///
/// `immediate` skips `wait` and `cooldown` (a one-shot run). The first render
/// of a run is applied at once too: there is no burst to wait out yet.
pub fn decide(
    state: &mut PlanState,
    hash: u64,
    up_to_date: bool,
    now: Instant,
    timing: &Timing,
    immediate: bool,
) -> Decision {
    if up_to_date {
        state.pending = None;
        state.failed = None;
        state.settled = true;
        return Decision::UpToDate;
    }
    if let Some(f) = state.failed {
        if f.hash == hash && now < f.retry_at {
            return Decision::Defer {
                until: f.retry_at,
                why: Why::Backoff,
            };
        }
    }
    let pending = match state.pending {
        Some(p) if p.hash == hash => p,
        Some(p) => Pending {
            hash,
            first_seen: p.first_seen,
            last_changed: now,
        },
        None => Pending {
            hash,
            first_seen: now,
            last_changed: now,
        },
    };
    state.pending = Some(pending);
    if immediate || !state.settled {
        return Decision::Apply;
    }

    let mut until = now;
    let mut why = None;
    if let Some(wait) = timing.wait {
        let ready_at = (pending.last_changed + wait.min).min(pending.first_seen + wait.max);
        if now < ready_at {
            until = ready_at;
            why = Some(Why::Wait);
        }
    }
    if let Some(last) = state.last_applied {
        let ready_at = last + timing.cooldown;
        if now < ready_at && ready_at > until {
            until = ready_at;
            why = Some(Why::Cooldown);
        }
    }
    match why {
        None => Decision::Apply,
        Some(why) => Decision::Defer { until, why },
    }
}

/// The change went in: dest holds it and the reload (if any) succeeded.
pub fn applied(state: &mut PlanState, now: Instant) {
    state.pending = None;
    state.failed = None;
    state.settled = true;
    state.last_applied = Some(now);
}

/// srvd's one back-off: `BACKOFF_START` after a first failure (`previous`
/// None, or shorter than the start), then twice the previous wait, at most
/// `BACKOFF_MAX`. Used for a change that fails its check or reload and for an
/// owed reload that fails again.
pub fn next_backoff(previous: Option<Duration>) -> Duration {
    match previous {
        Some(b) => (b * 2).clamp(BACKOFF_START, BACKOFF_MAX),
        None => BACKOFF_START,
    }
}

/// The change failed its check or reload: do not try the same content again
/// before the back-off, which doubles while the same content keeps failing.
pub fn failed(state: &mut PlanState, hash: u64, now: Instant) -> Duration {
    let backoff = next_backoff(state.failed.filter(|f| f.hash == hash).map(|f| f.backoff));
    state.failed = Some(Failed {
        hash,
        retry_at: now + backoff,
        backoff,
    });
    state.settled = true;
    backoff
}

/// A render could not be made this cycle (lookup or template failure).
pub fn unavailable(state: &mut PlanState) {
    state.settled = true;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Wait;

    fn timing(wait: Option<(u64, u64)>, cooldown: u64) -> Timing {
        Timing {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            cooldown: Duration::from_secs(cooldown),
            wait: wait.map(|(min, max)| Wait {
                min: Duration::from_secs(min),
                max: Duration::from_secs(max),
            }),
        }
    }

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn up_to_date_clears_pending_and_failures() {
        let t0 = Instant::now();
        let mut s = PlanState::default();
        failed(&mut s, 1, t0);
        assert_eq!(
            decide(&mut s, 1, true, t0, &timing(None, 0), false),
            Decision::UpToDate
        );
        assert_eq!(s.failed, None);
        assert!(s.settled);
    }

    #[test]
    fn the_first_render_applies_at_once_despite_wait() {
        let t0 = Instant::now();
        let mut s = PlanState::default();
        assert_eq!(
            decide(&mut s, 1, false, t0, &timing(Some((5, 20)), 60), false),
            Decision::Apply
        );
    }

    #[test]
    fn wait_turns_a_burst_into_one_apply() {
        let t0 = Instant::now();
        let tm = timing(Some((2, 10)), 0);
        let mut s = PlanState {
            settled: true,
            ..Default::default()
        };
        // Changes at t=0, 1, 2: each resets the quiet period.
        for (t, h) in [(0, 1), (1, 2), (2, 3)] {
            assert_eq!(
                decide(&mut s, h, false, at(t0, t), &tm, false),
                Decision::Defer {
                    until: at(t0, t + 2),
                    why: Why::Wait
                }
            );
        }
        assert!(matches!(
            decide(&mut s, 3, false, at(t0, 3), &tm, false),
            Decision::Defer { .. }
        ));
        assert_eq!(
            decide(&mut s, 3, false, at(t0, 4), &tm, false),
            Decision::Apply
        );
    }

    #[test]
    fn wait_max_caps_a_burst_that_never_settles() {
        let t0 = Instant::now();
        let tm = timing(Some((2, 5)), 0);
        let mut s = PlanState {
            settled: true,
            ..Default::default()
        };
        for t in 0..5 {
            assert!(matches!(
                decide(&mut s, t, false, at(t0, t), &tm, false),
                Decision::Defer { why: Why::Wait, .. }
            ));
        }
        assert_eq!(
            decide(&mut s, 5, false, at(t0, 5), &tm, false),
            Decision::Apply
        );
    }

    #[test]
    fn cooldown_defers_and_never_drops_a_change() {
        let t0 = Instant::now();
        let tm = timing(None, 60);
        let mut s = PlanState::default();
        assert_eq!(decide(&mut s, 1, false, t0, &tm, false), Decision::Apply);
        applied(&mut s, t0);
        assert_eq!(
            decide(&mut s, 2, false, at(t0, 10), &tm, false),
            Decision::Defer {
                until: at(t0, 60),
                why: Why::Cooldown
            }
        );
        assert_eq!(
            decide(&mut s, 2, false, at(t0, 59), &tm, false).clone(),
            Decision::Defer {
                until: at(t0, 60),
                why: Why::Cooldown
            }
        );
        assert_eq!(
            decide(&mut s, 2, false, at(t0, 60), &tm, false),
            Decision::Apply
        );
    }

    #[test]
    fn a_failed_change_backs_off_doubling_to_five_minutes() {
        let t0 = Instant::now();
        let tm = timing(None, 0);
        let mut s = PlanState::default();
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            assert_eq!(decide(&mut s, 7, false, now, &tm, false), Decision::Apply);
            let b = failed(&mut s, 7, now);
            waits.push(b.as_secs());
            assert!(matches!(
                decide(
                    &mut s,
                    7,
                    false,
                    now + b - Duration::from_millis(1),
                    &tm,
                    false
                ),
                Decision::Defer {
                    why: Why::Backoff,
                    ..
                }
            ));
            now += b;
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn the_back_off_starts_at_ten_seconds_and_doubles_to_five_minutes() {
        let mut b = None;
        let mut waits = Vec::new();
        for _ in 0..7 {
            let next = next_backoff(b);
            waits.push(next.as_secs());
            b = Some(next);
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        // A retry owed from before a restart has no back-off yet.
        assert_eq!(next_backoff(Some(Duration::ZERO)), BACKOFF_START);
    }

    #[test]
    fn new_content_is_tried_at_once_after_a_failure() {
        let t0 = Instant::now();
        let tm = timing(None, 0);
        let mut s = PlanState::default();
        decide(&mut s, 1, false, t0, &tm, false);
        failed(&mut s, 1, t0);
        assert_eq!(
            decide(&mut s, 2, false, at(t0, 1), &tm, false),
            Decision::Apply
        );
    }

    #[test]
    fn immediate_ignores_wait_and_cooldown() {
        let t0 = Instant::now();
        let tm = timing(Some((5, 20)), 60);
        let mut s = PlanState {
            settled: true,
            last_applied: Some(t0),
            ..Default::default()
        };
        assert_eq!(
            decide(&mut s, 1, false, at(t0, 1), &tm, true),
            Decision::Apply
        );
    }
}
