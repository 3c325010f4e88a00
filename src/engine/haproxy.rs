//! The HAProxy step of a cycle: a template's change carried out through the
//! runtime API instead of a reload when only servers changed, and a reload
//! through the master CLI with a verdict where one is configured.
//!
//! Both run after the check and the rename, as a reload does, so that dest
//! always holds what HAProxy should run and a restart gets the same servers.
//! What the runtime API cannot finish, a reload completes: a change is never
//! left half applied.

use std::time::Duration;

use tokio::sync::watch;

use std::time::Instant;

use super::Engine;
use super::inputs::content;
use super::install;
use super::reload;
use super::state::{Reload, Replaced, Report};
use crate::apply;
use crate::command::Failure;
use crate::config::TemplateSettings;
use crate::haproxy::master::{self, Verdict};
use crate::haproxy::runtime::{self, Applied};
use crate::haproxy::servers::{Change, Layout, diff};
use crate::haproxy::socket::CliAddress;
use crate::logging::tlog;

/// Why a change went to a reload instead of the runtime API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// A short, stable label for /metrics: `lines`, `default-server`,
    /// `balance-first`, `address`, `first-write`, `refused`, `socket`,
    /// `timeout`, `verify`, `stopping`.
    pub reason: &'static str,
    /// The sentence for the log.
    pub detail: String,
}

/// What the runtime API did for one template.
#[derive(Debug)]
pub struct RuntimeDone {
    pub changes: Vec<Change>,
    pub applied: Applied,
}

/// Applies the change from `old` to `new` (dest's content before and after)
/// through the stats socket `addr`: each command within `t`'s timeout, a
/// leaving server drained for up to `t`'s drain, then every touched backend
/// compared with `new`. `Err` says why a reload must do it instead.
pub async fn apply_runtime(
    t: &TemplateSettings,
    addr: &CliAddress,
    old: Option<&[u8]>,
    new: &[u8],
    stop: &mut watch::Receiver<bool>,
) -> Result<RuntimeDone, Fallback> {
    let Some(old) = old else {
        return Err(Fallback {
            reason: "first-write",
            detail: "dest did not exist before, so HAProxy may not run it yet".into(),
        });
    };
    let (old_l, new_l) = (
        Layout::parse(&String::from_utf8_lossy(old)),
        Layout::parse(&String::from_utf8_lossy(new)),
    );
    let changes = diff(&old_l, &new_l).map_err(|e| Fallback {
        reason: e.reason,
        detail: e.detail,
    })?;
    let script = runtime::script(&changes);
    let limit = t.timing.timeout;
    let work = async {
        let applied = runtime::apply(addr, &script, limit, t.haproxy.drain).await?;
        let mut touched: Vec<&str> = changes.iter().map(Change::backend).collect();
        touched.dedup();
        for name in touched {
            let Some(backend) = new_l.backend(name) else {
                continue;
            };
            if let Some(m) = runtime::verify(addr, backend, limit).await? {
                return Err(runtime::RuntimeError {
                    reason: "verify",
                    detail: format!("after the change, {m}"),
                });
            }
        }
        Ok(applied)
    };
    // Every command has `limit`; all of them together too, plus the drain,
    // so that a slow socket cannot hold the cycle for long.
    let bounded = async {
        match tokio::time::timeout(limit + t.haproxy.drain, work).await {
            Ok(r) => r,
            Err(_) => Err(runtime::RuntimeError {
                reason: "timeout",
                detail: format!(
                    "runtime API {addr}: the change took longer than timeout + drain ({})",
                    crate::config::duration::display(limit + t.haproxy.drain)
                ),
            }),
        }
    };
    let applied = tokio::select! {
        r = bounded => r.map_err(|e| Fallback { reason: e.reason, detail: e.detail })?,
        _ = stopping(stop) => {
            return Err(Fallback {
                reason: "stopping",
                detail: "srvd is stopping".into(),
            })
        }
    };
    Ok(RuntimeDone { changes, applied })
}

/// Whether HAProxy's running servers differ from `content` (dest), for
/// srvd's start and after HAProxy restarted: `Some(why)` when they differ,
/// `None` when they match or HAProxy cannot be asked (a reload then would
/// not help either; the next change tells).
pub async fn differs_from(addr: &CliAddress, content: &[u8], limit: Duration) -> Option<String> {
    let layout = Layout::parse(&String::from_utf8_lossy(content));
    for backend in layout.backends.values() {
        match runtime::verify(addr, backend, limit).await {
            Ok(Some(m)) => return Some(m),
            Ok(None) => {}
            Err(_) => return None,
        }
    }
    None
}

/// HAProxy's worker as `show info` tells it, `None` when it cannot be asked.
pub async fn worker(addr: &CliAddress, limit: Duration) -> Option<runtime::Worker> {
    let info = crate::haproxy::socket::ask(addr, "show info", limit)
        .await
        .ok()?;
    runtime::parse_info(&info)
}

/// Reloads HAProxy through its master CLI at `addr` and waits for the
/// verdict within `limit`; a failed or unconfirmed reload is a failure, as a
/// reload command's non-zero exit is. `Ok`: the new worker's process id
/// (0 when HAProxy answered the verdict itself, without one).
pub async fn reload_master(
    addr: &CliAddress,
    limit: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<u32, Failure> {
    tokio::select! {
        r = master::reload(addr, limit) => match r {
            Ok(Verdict::Reloaded { worker }) => Ok(worker),
            Ok(Verdict::Failed(why)) => Err(Failure::Refused(format!(
                "over the master CLI {addr}: HAProxy refused the new configuration ({why})"
            ))),
            Err(e) => Err(Failure::Refused(format!("over the master CLI: {e}"))),
        },
        _ = stopping(stop) => Err(Failure::Stopped),
    }
}

async fn stopping(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            // The sender is gone: never stopping from here.
            std::future::pending::<()>().await;
        }
    }
}

/// How often srvd asks HAProxy's stats socket whether HAProxy restarted
/// (`show info`), per template with `haproxy_socket`.
pub(super) const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl Engine {
    /// Applies what the runtime API can for templates with `haproxy_socket`;
    /// returns the templates still to reload.
    pub(super) async fn apply_runtime(
        &mut self,
        replaced: Vec<Replaced>,
        now: Instant,
        report: &mut Report,
    ) -> Vec<Replaced> {
        let mut rest = Vec::new();
        for r in replaced {
            let t = &self.settings.templates[r.index];
            let Some(addr) = t
                .haproxy
                .socket
                .clone()
                .filter(|_| !self.settings.flags.no_reload)
            else {
                rest.push(r);
                continue;
            };
            let new = content(&self.runs[r.index]).to_vec();
            let old = r.previous.as_ref().map(|p| p.content.as_slice());
            match apply_runtime(t, &addr, old, &new, &mut self.stop).await {
                Ok(done) => {
                    self.counters.runtime_changes += 1;
                    self.counters.reloads_avoided += 1;
                    self.counters.runtime_commands += done.applied.commands as u64;
                    let list: Vec<String> = done.changes.iter().map(|c| c.to_string()).collect();
                    tlog!(
                        Info,
                        t,
                        None,
                        "{}: runtime: {} through {addr}, no reload{}",
                        t.name,
                        if list.is_empty() {
                            "nothing HAProxy runs changed".into()
                        } else {
                            list.join(", ")
                        },
                        if done.applied.drained.is_zero() {
                            String::new()
                        } else {
                            format!(
                                " (drained {})",
                                crate::config::duration::display(done.applied.drained)
                            )
                        }
                    );
                    let run = &mut self.runs[r.index];
                    run.no_reload_change = true;
                    install::after_replace(t, run, r, reload::Next::Done, &Ok(()), now, report);
                }
                Err(fallback) => {
                    *self
                        .counters
                        .runtime_fallbacks
                        .entry(fallback.reason)
                        .or_default() += 1;
                    self.runs[r.index].no_reload_change = false;
                    tlog!(
                        Info,
                        t,
                        None,
                        "{}: reload: the runtime API cannot apply this change ({}): {}",
                        t.name,
                        fallback.reason,
                        fallback.detail
                    );
                    rest.push(r);
                }
            }
        }
        rest
    }

    /// At srvd's start and after HAProxy restarted (its worker's process id
    /// or uptime went back), compares HAProxy's running servers with dest
    /// for templates with `haproxy_socket`, and owes a reload where they
    /// differ. Asks at most every `RECONCILE_EVERY` per template.
    pub(super) async fn reconcile(&mut self, up_to_date: &[usize], now: Instant) {
        for &i in up_to_date {
            let t = &self.settings.templates[i];
            let Some(addr) = t.haproxy.socket.clone() else {
                continue;
            };
            let run = &mut self.runs[i];
            if run.reload != Reload::Settled
                || run
                    .haproxy_checked
                    .is_some_and(|(at, _)| now < at + RECONCILE_EVERY)
            {
                continue;
            }
            let limit = t.timing.timeout;
            let Some(worker) = worker(&addr, limit).await else {
                continue;
            };
            let known = run.haproxy_checked.map(|(_, w)| w);
            run.haproxy_checked = Some((now, worker));
            let same_worker =
                known.is_some_and(|k| k.pid == worker.pid && worker.uptime_sec >= k.uptime_sec);
            if same_worker {
                continue;
            }
            let Ok(Some(current)) = apply::read_dest(&apply::real_dest(&t.dest)) else {
                continue;
            };
            if let Some(why) = differs_from(&addr, &current.content, limit).await {
                tlog!(
                    Warn,
                    t,
                    None,
                    "{}: HAProxy does not run dest's servers ({why}); reloading",
                    t.name
                );
                self.counters.runtime_reconciled += 1;
                run.reload = Reload::Owed {
                    retry_at: now,
                    backoff: std::time::Duration::ZERO,
                };
            }
        }
    }
}
