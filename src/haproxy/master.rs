//! Reloading HAProxy through its master CLI (`haproxy -W -S SOCKET`) and
//! learning whether the reload worked: the way to reload a HAProxy that runs
//! in another container, where no signal or `systemctl` reaches it.
//!
//! HAProxy 2.6 answers `reload` at once and reloads afterwards; the verdict is
//! read from `show proc` (management.txt section 9.4): the master's reload
//! count goes up by one, and either a worker of the new generation (its
//! `reloads` column 0, a process id not seen before) runs, or the master's
//! failed count goes up. Later versions answer `reload` with `Success=1` or
//! `Success=0` and the startup messages; srvd takes that answer when it comes.

use std::fmt;
use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::socket::{CliAddress, ask};

/// `show proc` as srvd reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processes {
    pub master_pid: u32,
    /// Reloads since the master started.
    pub reloads: u64,
    /// Reloads that failed.
    pub failed: u64,
    /// The current workers: (process id, reloads since it started).
    pub workers: Vec<(u32, u64)>,
}

/// Reads `show proc`. `None` when the answer is not one (an error message, a
/// socket that is not a master CLI).
pub fn parse_show_proc(text: &str) -> Option<Processes> {
    let mut master = None;
    let mut workers = Vec::new();
    let mut section = "";
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('#') {
            section = match rest.trim() {
                "workers" => "workers",
                "programs" => "programs",
                "old workers" => "old",
                _ if rest.starts_with("<PID>") => "",
                other => {
                    if other.ends_with("workers") {
                        "old"
                    } else {
                        "other"
                    }
                }
            };
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        match cols.as_slice() {
            [pid, "master", reloads, rest @ ..] => {
                let failed = rest
                    .windows(2)
                    .find(|w| w[0] == "[failed:")
                    .and_then(|w| w[1].trim_end_matches(']').parse().ok())
                    .unwrap_or(0);
                master = Some((pid.parse().ok()?, reloads.parse().ok()?, failed));
            }
            [pid, "worker", reloads, ..] if section == "workers" => {
                workers.push((pid.parse().ok()?, reloads.parse().ok()?));
            }
            _ => {}
        }
    }
    let (master_pid, reloads, failed) = master?;
    Some(Processes {
        master_pid,
        reloads,
        failed,
        workers,
    })
}

/// How a reload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A new worker runs the new configuration.
    Reloaded { worker: u32 },
    /// HAProxy refused the new configuration; the old workers go on.
    Failed(String),
}

/// What `reload` over the master CLI could not establish.
#[derive(Debug)]
pub struct MasterError(pub String);

impl fmt::Display for MasterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MasterError {}

/// Decides a verdict from `show proc` before and after a reload, or `None`
/// while it is not known yet.
pub fn verdict(before: &Processes, now: &Processes) -> Option<Verdict> {
    if now.reloads <= before.reloads && now.master_pid == before.master_pid {
        return None;
    }
    if now.failed > before.failed {
        return Some(Verdict::Failed(format!(
            "HAProxy's master counts a failed reload ({} -> {})",
            before.failed, now.failed
        )));
    }
    let old: Vec<u32> = before.workers.iter().map(|w| w.0).collect();
    now.workers
        .iter()
        .find(|(pid, reloads)| *reloads == 0 && !old.contains(pid))
        .map(|(pid, _)| Verdict::Reloaded { worker: *pid })
}

/// Reads the direct answer of HAProxy versions that give one (`Success=1`).
fn direct_answer(text: &str) -> Option<Verdict> {
    let first = text.lines().next()?.trim();
    match first {
        "Success=1" => Some(Verdict::Reloaded { worker: 0 }),
        "Success=0" => {
            let logs: Vec<&str> = text
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty() && l.trim() != "--")
                .collect();
            Some(Verdict::Failed(if logs.is_empty() {
                "HAProxy answered Success=0".into()
            } else {
                logs.join("; ")
            }))
        }
        _ => None,
    }
}

/// Sends `reload` to the master CLI at `addr` and waits up to `limit` for the
/// verdict. `Err` when there is no verdict: the socket cannot be reached, it
/// is not a master CLI, or nothing is decided within `limit` (the caller
/// treats that as a failed reload).
pub async fn reload(addr: &CliAddress, limit: Duration) -> Result<Verdict, MasterError> {
    let deadline = Instant::now() + limit;
    let left = || deadline.saturating_duration_since(Instant::now());
    let before_text = ask(addr, "show proc", left())
        .await
        .map_err(|e| MasterError(format!("master CLI {addr}: show proc: {e}")))?;
    let before = parse_show_proc(&before_text).ok_or_else(|| {
        MasterError(format!(
            "{addr} did not answer `show proc` as HAProxy's master CLI does (is it the -S socket?): {:?}",
            before_text.lines().next().unwrap_or("")
        ))
    })?;
    let answer = ask(addr, "reload", left())
        .await
        .map_err(|e| MasterError(format!("master CLI {addr}: reload: {e}")))?;
    if let Some(v) = direct_answer(&answer) {
        return Ok(v);
    }
    let mut pause = Duration::from_millis(10);
    loop {
        // While the master re-executes itself the socket may refuse or close
        // early: that is not an answer, ask again.
        if let Ok(text) = ask(addr, "show proc", left()).await {
            if let Some(now) = parse_show_proc(&text) {
                if let Some(v) = verdict(&before, &now) {
                    return Ok(v);
                }
            }
        }
        if left().is_zero() {
            return Err(MasterError(format!(
                "master CLI {addr}: no new worker and no failure reported within {:?} of `reload`",
                limit
            )));
        }
        sleep(pause.min(left())).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
        14262           master          1 [failed: 0]   0d00h00m06s     2.6.12-1+deb12u4\n\
        # workers\n\
        14580           worker          0               0d00h00m01s     2.6.12-1+deb12u4\n\
        # programs\n\n";

    #[test]
    fn reads_show_proc_of_haproxy_2_6() {
        let p = parse_show_proc(BEFORE).unwrap();
        assert_eq!(
            p,
            Processes {
                master_pid: 14262,
                reloads: 1,
                failed: 0,
                workers: vec![(14580, 0)]
            }
        );
        assert_eq!(parse_show_proc("Unknown command: 'show proc'\n"), None);
        assert_eq!(parse_show_proc(""), None);
    }

    #[test]
    fn old_workers_are_not_current_workers() {
        let text = BEFORE.replace(
            "# programs",
            "# old workers\n14400           worker          1               0d00h00m09s     2.6.12\n# programs",
        );
        assert_eq!(parse_show_proc(&text).unwrap().workers, vec![(14580, 0)]);
    }

    #[test]
    fn the_verdict_needs_a_new_worker_or_a_failure() {
        let before = parse_show_proc(BEFORE).unwrap();
        // Nothing yet.
        assert_eq!(verdict(&before, &before), None);
        // Counted, but the new worker is not listed yet.
        let mut counted = before.clone();
        counted.reloads = 2;
        counted.workers = vec![(14580, 1)];
        assert_eq!(verdict(&before, &counted), None);
        let mut ok = counted.clone();
        ok.workers.push((14700, 0));
        assert_eq!(
            verdict(&before, &ok),
            Some(Verdict::Reloaded { worker: 14700 })
        );
        let mut failed = counted.clone();
        failed.failed = 1;
        assert!(matches!(
            verdict(&before, &failed),
            Some(Verdict::Failed(_))
        ));
    }

    #[test]
    fn later_versions_answer_directly() {
        assert_eq!(
            direct_answer("Success=1\n--\n[NOTICE] loaded\n"),
            Some(Verdict::Reloaded { worker: 0 })
        );
        let Some(Verdict::Failed(why)) =
            direct_answer("Success=0\n--\n[ALERT] Starting frontend fe: cannot bind socket\n")
        else {
            panic!()
        };
        assert!(why.contains("cannot bind"), "{why}");
        assert_eq!(direct_answer(""), None);
    }
}
