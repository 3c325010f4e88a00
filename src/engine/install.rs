//! The file side of a cycle: stage a render beside dest, run the check on it,
//! put it in place (leaving the crash marker while its reload is owed), and
//! settle each template after its reload: done, rolled back, or owed again.
//! The decisions come from `reload`; this module carries them out.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

use super::error::{Error, Rollback};
use super::reload::Next;
use super::report;
use super::state::{Change, Dest, Reload, Replaced, Report, TemplateRun, Work};
use crate::apply::{self, Method};
use crate::command::{self, CommandLine, Failure};
use crate::config::{Flags, Perms, TemplateSettings};
use crate::logging::tlog;
use crate::plan;

/// The mode and ids to give `t`'s dest, with `owner` and `group` resolved
/// now. A name that does not resolve (yet: LDAP or SSSD at boot, a package
/// not installed yet) fails this template only, as a failed write does: the
/// render `hash` waits srvd's back-off (None while it does), and the other
/// templates go on.
pub fn perms(
    t: &TemplateSettings,
    run: &mut TemplateRun,
    hash: u64,
    now: Instant,
) -> Result<Option<Perms>, Error> {
    let why = match t.perms.resolve() {
        Ok(perms) => return Ok(Some(perms)),
        Err(why) => why,
    };
    match plan::decide(&mut run.plan, hash, false, now, &t.timing, true) {
        plan::Decision::Defer { why, until } => {
            run.change = Change::Waiting { why, until };
            Ok(None)
        }
        _ => {
            let backoff = plan::failed(&mut run.plan, hash, now);
            Err(Error::Owner { why, backoff })
        }
    }
}

/// Stages, checks and puts one change of template `t` in place.
pub async fn install(
    t: &TemplateSettings,
    run: &mut TemplateRun,
    work: Work,
    flags: Flags,
    stop: &mut watch::Receiver<bool>,
) -> Result<Replaced, Error> {
    let now = Instant::now();
    let staged = match apply::stage(&work.dest, &work.content, work.owner) {
        Ok(s) => s,
        Err(e) => {
            plan::failed(&mut run.plan, work.hash, now);
            return Err(Error::Write(e));
        }
    };
    if let (Some(check), false) = (&t.check_cmd, flags.no_check) {
        let argv = check.expand(staged.path(), &t.dest);
        if let Err(failure) = run_command(t, check, &argv, stop).await {
            drop(staged);
            run.check_failures += 1;
            let backoff = plan::failed(&mut run.plan, work.hash, now);
            return Err(Error::Check {
                failure,
                dest: t.dest.clone(),
                backoff,
            });
        }
    }
    let marker = t.reload_cmd.is_some() && !flags.no_reload;
    if marker {
        apply::mark_reload_owed(&work.dest);
    }
    match apply::replace(staged, t.write) {
        Ok(Method::Rename | Method::InPlaceAsked) => {}
        Ok(Method::InPlace) => tlog!(
            Warn,
            t,
            None,
            "{}: {} is a mount point (rename(2) said EBUSY): wrote it in place, which a crash could leave half-written",
            t.name,
            work.dest.display()
        ),
        Err(e) => {
            if marker {
                apply::clear_reload_owed(&work.dest);
            }
            plan::failed(&mut run.plan, work.hash, now);
            return Err(Error::Write(e));
        }
    }
    run.dest = Dest::Written;
    run.last_change = Some(SystemTime::now());
    let before = run.targets.replace(work.targets.clone());
    report::log_change(t, before.as_ref(), &work.targets);
    Ok(Replaced {
        index: work.index,
        previous: work.previous,
        hash: work.hash,
        previous_targets: before,
    })
}

/// Carries out `step` for template `t`, just replaced (`r`), after its
/// group's reload ended with `outcome`.
pub fn after_replace(
    t: &TemplateSettings,
    run: &mut TemplateRun,
    r: Replaced,
    step: Next,
    outcome: &Result<(), Arc<Failure>>,
    now: Instant,
    report: &mut Report,
) {
    let i = r.index;
    let dest = apply::real_dest(&t.dest);
    let failure = match (step, outcome) {
        (Next::Done, _) => {
            apply::clear_reload_owed(&dest);
            plan::applied(&mut run.plan, now);
            run.reload = Reload::Settled;
            run.changes += 1;
            run.confirmed = Some(SystemTime::now());
            run.set_ok(t);
            report.changed.push(i);
            return;
        }
        (Next::Interrupted, _) | (_, Ok(())) => {
            // The marker stays: the next start reloads.
            report.failed.push(i);
            return;
        }
        (_, Err(failure)) => failure,
    };
    run.reload_failures += 1;
    let backoff = plan::failed(&mut run.plan, r.hash, now);
    let rollback = if step == Next::RollBack {
        match apply::restore(&dest, r.previous.as_ref(), t.write) {
            Ok(()) => {
                apply::clear_reload_owed(&dest);
                run.dest = if r.previous.is_some() {
                    Dest::Unmatched
                } else {
                    Dest::Absent
                };
                run.targets = r.previous_targets;
                Rollback::Done
            }
            Err(e) => Rollback::Failed(e),
        }
    } else {
        run.reload = Reload::Owed {
            retry_at: now + backoff,
            backoff,
        };
        if r.previous.is_some() {
            Rollback::Kept
        } else {
            Rollback::FirstVersion
        }
    };
    run.set_failing(
        t,
        Error::Reload {
            failure: failure.clone(),
            dest,
            rollback,
            backoff,
        },
    );
    report.failed.push(i);
}

/// Carries out `step` for template `i` (`t`), which owed its reload, after
/// its group's reload ended with `outcome`.
pub fn after_owed(
    i: usize,
    t: &TemplateSettings,
    run: &mut TemplateRun,
    step: Next,
    outcome: &Result<(), Arc<Failure>>,
    now: Instant,
    report: &mut Report,
) {
    match (step, outcome) {
        (Next::Done, _) => {
            apply::clear_reload_owed(&apply::real_dest(&t.dest));
            run.reload = Reload::Settled;
            run.confirmed = Some(SystemTime::now());
            tlog!(Info, t, None, "{}: owed reload done", t.name);
            run.set_ok(t);
        }
        (Next::RetryOwed, Err(failure)) => {
            let previous = match run.reload {
                Reload::Owed { backoff, .. } => Some(backoff),
                Reload::Settled => None,
            };
            let backoff = plan::next_backoff(previous);
            run.reload = Reload::Owed {
                retry_at: now + backoff,
                backoff,
            };
            let failure = failure.clone();
            run.set_failing(t, Error::OwedReload { failure, backoff });
            report.failed.push(i);
        }
        _ => {}
    }
}

/// Runs `cmd` (expanded to `argv`) for `t` within its timeout; killed when
/// `stop` turns true.
pub async fn run_command(
    t: &TemplateSettings,
    cmd: &CommandLine,
    argv: &[OsString],
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Failure> {
    tlog!(Debug, t, Some(cmd.text()), "{}: running {:?}", t.name, argv);
    command::run(argv, &cmd.label(), t.timing.timeout, stop).await
}
