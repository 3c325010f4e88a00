//! The reload plan, decided without running anything: which templates share
//! which reload command (each distinct command once, in config order, as the
//! Go srvd and consul-template users expect), and what becomes of each
//! template when its command fails (roll back, keep and owe, or retry).

use std::ffi::OsString;

use super::state::Replaced;
use crate::command::Failure;
use crate::haproxy::socket::CliAddress;

/// How a group reloads its middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloader {
    /// `reload_cmd`, its words after expansion.
    Command(Vec<OsString>),
    /// HAProxy's master CLI (`haproxy_master_socket`).
    Master(CliAddress),
}

/// Templates that share one way to reload: the same command words after
/// expansion, or the same master CLI. `reloader` None: no reload (none
/// configured, or `--no-reload`).
#[derive(Debug)]
pub struct Group {
    pub reloader: Option<Reloader>,
    /// Templates whose dest was just replaced.
    pub replaced: Vec<Replaced>,
    /// Templates whose dest already holds the render but owe a reload.
    pub owed: Vec<usize>,
}

impl Group {
    /// The template whose settings (timeout, command text) the run uses:
    /// the first replaced in config order, else the first owing.
    pub fn first(&self) -> usize {
        self.replaced
            .first()
            .map(|r| r.index)
            .or(self.owed.first().copied())
            .expect("a group has a member")
    }
}

/// Groups the templates just replaced and those owing a reload by how they
/// reload (`reloader_of` a config index), groups in config order of first use.
pub fn groups(
    replaced: Vec<Replaced>,
    owed: &[usize],
    reloader_of: impl Fn(usize) -> Option<Reloader>,
) -> Vec<Group> {
    let mut members: Vec<(usize, Option<Replaced>)> = replaced
        .into_iter()
        .map(|r| (r.index, Some(r)))
        .chain(owed.iter().map(|&i| (i, None)))
        .collect();
    members.sort_by_key(|(i, _)| *i);
    let mut groups: Vec<Group> = Vec::new();
    for (i, r) in members {
        let reloader = reloader_of(i);
        let slot = match groups.iter().position(|g| g.reloader == reloader) {
            Some(p) => p,
            None => {
                groups.push(Group {
                    reloader,
                    replaced: Vec::new(),
                    owed: Vec::new(),
                });
                groups.len() - 1
            }
        };
        match r {
            Some(r) => groups[slot].replaced.push(r),
            None => groups[slot].owed.push(i),
        }
    }
    groups
}

/// What to do with a template after its group's reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The middleware has dest: the change is done.
    Done,
    /// srvd is stopping and killed the command: leave the crash marker, so
    /// that the next start reloads.
    Interrupted,
    /// Put back what dest held before (the default on a failed reload).
    RollBack,
    /// Keep the new dest and owe its reload, retried after the back-off
    /// (`disable_rollback_on_reload_failure`).
    KeepAndOwe,
    /// An owed reload failed again: retry after a longer back-off.
    RetryOwed,
}

/// The next step for a template just replaced, after `outcome`.
/// `had_previous`: dest existed before. A first version has nothing to roll
/// back to, and removing a checked file helps no one: the middleware that
/// could not be reloaded (often not running yet) needs it to start. It is
/// kept and its reload owed.
pub fn after_replace<F: std::borrow::Borrow<Failure>>(
    outcome: &Result<(), F>,
    rollback: bool,
    had_previous: bool,
) -> Next {
    match outcome.as_ref().map_err(|f| f.borrow()) {
        Ok(()) => Next::Done,
        Err(Failure::Stopped) => Next::Interrupted,
        Err(_) if rollback && had_previous => Next::RollBack,
        Err(_) => Next::KeepAndOwe,
    }
}

/// The next step for a template that owed its reload, after `outcome`.
pub fn after_owed<F: std::borrow::Borrow<Failure>>(outcome: &Result<(), F>) -> Next {
    match outcome.as_ref().map_err(|f| f.borrow()) {
        Ok(()) => Next::Done,
        Err(Failure::Stopped) => Next::Interrupted,
        Err(_) => Next::RetryOwed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replaced(index: usize) -> Replaced {
        Replaced {
            index,
            previous: None,
            hash: index as u64,
            previous_targets: None,
        }
    }

    fn argv(words: &[&str]) -> Option<Reloader> {
        Some(Reloader::Command(
            words.iter().map(OsString::from).collect(),
        ))
    }

    /// Per group: the command, the replaced templates, the owing ones.
    type Summary = (Option<Reloader>, Vec<usize>, Vec<usize>);

    fn summary(groups: &[Group]) -> Vec<Summary> {
        groups
            .iter()
            .map(|g| {
                (
                    g.reloader.clone(),
                    g.replaced.iter().map(|r| r.index).collect(),
                    g.owed.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn each_distinct_command_runs_once_in_config_order() {
        // Templates 0 and 2 reload haproxy, 1 reloads nginx, 3 has none.
        let of = |i: usize| match i {
            0 | 2 => argv(&["systemctl", "reload", "haproxy"]),
            1 => argv(&["systemctl", "reload", "nginx"]),
            _ => None,
        };
        let g = groups(vec![replaced(2), replaced(3), replaced(1)], &[0], of);
        assert_eq!(
            summary(&g),
            [
                (argv(&["systemctl", "reload", "haproxy"]), vec![2], vec![0]),
                (argv(&["systemctl", "reload", "nginx"]), vec![1], vec![]),
                (None, vec![3], vec![]),
            ]
        );
        assert_eq!(g[0].first(), 2, "a replaced template's settings first");
        assert_eq!(g[1].first(), 1);
    }

    #[test]
    fn the_same_command_expanded_differently_is_two_commands() {
        let of = |i: usize| argv(&["reload", if i == 0 { "/a" } else { "/b" }]);
        let g = groups(vec![replaced(0), replaced(1)], &[], of);
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn one_master_cli_reloads_once_for_every_template_behind_it() {
        let master = |p: &str| Some(Reloader::Master(CliAddress::Unix(p.into())));
        let of = |i: usize| match i {
            0 | 2 => master("/run/haproxy/master.sock"),
            1 => argv(&["systemctl", "reload", "haproxy"]),
            _ => master("/run/other/master.sock"),
        };
        let g = groups(
            vec![replaced(0), replaced(1), replaced(2), replaced(3)],
            &[],
            of,
        );
        assert_eq!(
            summary(&g),
            [
                (master("/run/haproxy/master.sock"), vec![0, 2], vec![]),
                (argv(&["systemctl", "reload", "haproxy"]), vec![1], vec![]),
                (master("/run/other/master.sock"), vec![3], vec![]),
            ]
        );
    }

    #[test]
    fn nothing_replaced_and_nothing_owed_runs_nothing() {
        assert!(groups(Vec::new(), &[], |_| argv(&["x"])).is_empty());
    }

    #[test]
    fn a_failed_reload_rolls_back_unless_told_to_keep() {
        let failed: Result<(), Failure> = Err(Failure::Timeout(std::time::Duration::from_secs(1)));
        assert_eq!(after_replace(&failed, true, true), Next::RollBack);
        assert_eq!(after_replace(&failed, false, true), Next::KeepAndOwe);
        assert_eq!(
            after_replace(&Ok::<(), Failure>(()), true, true),
            Next::Done
        );
        assert_eq!(
            after_replace(&Err::<(), _>(Failure::Stopped), true, true),
            Next::Interrupted,
            "stopping is not a failure of the content"
        );
    }

    #[test]
    fn a_first_version_is_kept_and_its_reload_owed_when_the_reload_fails() {
        let failed: Result<(), Failure> = Err(Failure::Timeout(std::time::Duration::from_secs(1)));
        assert_eq!(after_replace(&failed, true, false), Next::KeepAndOwe);
        assert_eq!(after_replace(&failed, false, false), Next::KeepAndOwe);
        assert_eq!(
            after_replace(&Ok::<(), Failure>(()), true, false),
            Next::Done
        );
        assert_eq!(
            after_replace(&Err::<(), _>(Failure::Stopped), true, false),
            Next::Interrupted
        );
    }

    #[test]
    fn an_owed_reload_is_retried_never_rolled_back() {
        let failed: Result<(), Failure> = Err(Failure::Timeout(std::time::Duration::from_secs(1)));
        assert_eq!(after_owed(&failed), Next::RetryOwed);
        assert_eq!(after_owed(&Ok::<(), Failure>(())), Next::Done);
        assert_eq!(
            after_owed(&Err::<(), _>(Failure::Stopped)),
            Next::Interrupted
        );
    }
}
