//! What a cycle tells people: the log line of a change (targets added and
//! removed) or of a change that waits, the dry run's diff on stdout, and each
//! template's line of the status snapshot (and its `LastUpdate`).

use std::collections::BTreeSet;
use std::time::SystemTime;

use super::state::{Change, Health, TemplateRun};
use crate::apply::DestFile;
use crate::clock;
use crate::config::TemplateSettings;
use crate::logging::tlog;
use crate::plan::Why;
use crate::status::TemplateStatus;

/// At most this many targets are named in one log line: a pool of thousands
/// must not make a log line of megabytes.
const SHOWN: usize = 20;

/// Logs that a change of `t` now waits (`now`, after `before`): once per
/// deferral, not every cycle, with the time it waits for. A back-off is not
/// logged here: the failure that caused it was.
pub fn log_waiting(t: &TemplateSettings, before: Change, now: Change) {
    let Change::Waiting { why, until } = now else {
        return;
    };
    let told = matches!(before, Change::Waiting { why: w, .. } if w == why);
    if why != Why::Backoff && !told {
        let at = clock::rfc3339(clock::wall(until));
        tlog!(
            Info,
            t,
            None,
            "{}: a change waits until {at} ({why})",
            t.name
        );
    }
}

/// The Go srvd's `LastUpdate`: the last time every dest was confirmed to
/// hold its current render (written and reloaded, or found so by a cycle,
/// after a restart too), i.e. the oldest of the templates' confirmations.
/// None while one template has none.
pub fn last_confirmed(runs: &[TemplateRun]) -> Option<SystemTime> {
    let all: Option<Vec<SystemTime>> = runs.iter().map(|r| r.confirmed).collect();
    all?.into_iter().min()
}

/// Logs that dest was written, with the targets added and removed since
/// `before` (None: all are new).
pub fn log_change(
    t: &TemplateSettings,
    before: Option<&BTreeSet<String>>,
    after: &BTreeSet<String>,
) {
    let domains: Vec<&str> = t.domains.iter().map(|d| d.text.as_str()).collect();
    let (added, removed): (Vec<&String>, Vec<&String>) = match before {
        Some(b) => (after.difference(b).collect(), b.difference(after).collect()),
        None => (after.iter().collect(), Vec::new()),
    };
    tlog!(
        Info,
        t,
        None,
        "{}: wrote {} from {} ({} targets); added: {}; removed: {}",
        t.name,
        t.dest.display(),
        domains.join(", "),
        after.len(),
        list(&added),
        list(&removed)
    );
}

/// "a, b and 3 more", or "none".
fn list(v: &[&String]) -> String {
    match v.len() {
        0 => "none".to_owned(),
        n => {
            let shown: Vec<&str> = v.iter().take(SHOWN).map(|s| s.as_str()).collect();
            let more = if n > SHOWN {
                format!(" and {} more", n - SHOWN)
            } else {
                String::new()
            };
            format!("{}{more}", shown.join(", "))
        }
    }
}

/// Dry run: prints the unified diff from dest (`current`) to `content` on
/// stdout and logs that nothing was written.
pub fn print_dry_run(t: &TemplateSettings, current: Option<&DestFile>, content: &[u8]) {
    let old = current
        .map(|c| String::from_utf8_lossy(&c.content).into_owned())
        .unwrap_or_default();
    let new = String::from_utf8_lossy(content);
    let dest = t.dest.display().to_string();
    let diff = similar::TextDiff::from_lines(old.as_str(), new.as_ref());
    println!(
        "{}",
        diff.unified_diff()
            .context_radius(3)
            .header(&dest, &format!("{dest} (rendered)"))
    );
    tlog!(
        Info,
        t,
        None,
        "{}: dry run: {} would change; nothing written, nothing reloaded",
        t.name,
        dest
    );
}

/// Template `t`'s line in /status and /metrics.
pub fn template_status(t: &TemplateSettings, r: &TemplateRun) -> TemplateStatus {
    TemplateStatus {
        name: t.name.clone(),
        dest: t.dest.display().to_string(),
        ok: matches!(r.health, Health::Ok),
        error: match &r.health {
            Health::Failing(e) => Some(e.to_string()),
            Health::Unknown => Some("not rendered yet".into()),
            Health::Ok => None,
        },
        domains: r.domains.clone(),
        targets: r.targets.as_ref().map_or(0, |t| t.len()),
        last_change: r.last_change.map(clock::rfc3339),
        last_success: r.last_success.map(clock::rfc3339),
        pending: match r.change {
            Change::Waiting { why, .. } => Some(why.to_string()),
            Change::Idle => None,
        },
        pending_until: match r.change {
            Change::Waiting { until, .. } => Some(clock::rfc3339(clock::wall(until))),
            Change::Idle => None,
        },
        changes: r.changes,
        check_failures: r.check_failures,
        reload_failures: r.reload_failures,
        last_change_applied: r.last_change.map(|_| {
            if r.no_reload_change {
                "runtime"
            } else {
                "reload"
            }
        }),
        last_success_at: r.last_success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_update_is_the_oldest_confirmation_once_every_template_has_one() {
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        let at = |s: u64| Some(t0 + std::time::Duration::from_secs(s));
        let runs = |times: &[Option<SystemTime>]| -> Vec<TemplateRun> {
            times
                .iter()
                .map(|&confirmed| TemplateRun {
                    confirmed,
                    ..TemplateRun::default()
                })
                .collect()
        };
        assert_eq!(last_confirmed(&runs(&[at(5), at(3)])), at(3));
        assert_eq!(last_confirmed(&runs(&[at(5), None])), None);
        assert_eq!(last_confirmed(&runs(&[at(7)])), at(7));
    }

    #[test]
    fn a_long_list_of_targets_is_cut_with_a_count() {
        let names: Vec<String> = (0..25).map(|i| format!("db-{i:02}:3306")).collect();
        let refs: Vec<&String> = names.iter().collect();
        let text = list(&refs);
        assert!(text.starts_with("db-00:3306, db-01:3306"));
        assert!(text.ends_with("db-19:3306 and 5 more"), "{text}");
        assert_eq!(list(&[]), "none");
    }
}
