//! One cycle over the due templates, its steps in order: look up and render
//! (`inputs`), decide (`plan`), stage, check and replace (`install`), reload
//! each distinct command once (`reload` plans, `install` settles each
//! template: done, rolled back or owed), and say what happened (`report`).
//! The daemon loop decides when a cycle runs; this module decides what it
//! does, and holds nothing but the order of the steps and the engine's state.
//!
//! Arrows point down: `state` (each template's state between cycles, drawn
//! there) and `error` (why a template failed) are at the bottom; `inputs`,
//! `reload` and `report` use only those; `install` uses them and `report`;
//! this module uses all.

mod error;
mod haproxy;
mod inputs;
mod install;
mod reload;
mod report;
mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hickory_proto::rr::Name;
use tokio::sync::watch;

pub use error::{Error, Rollback};
pub use state::Report;

use crate::apply;
use crate::clock;
use crate::config::{self, ConfigError, Flags, Settings, TemplateSettings};
use crate::logging::tlog;
use crate::plan::{self, Decision};
use crate::render::Renderer;
use crate::source::SrvResult;
use crate::stamp::Stamp;
use crate::status::{Counters, Snapshot};
use inputs::{Inputs, content, shared_content, targets_of};
use reload::Reloader;
use state::{Change, Dest, Reload, Replaced, TemplateRun, Work};

/// A config that loaded: settings plus compiled templates.
pub struct Loaded {
    pub settings: Settings,
    pub renderer: Renderer,
}

/// Reads srvd.toml with the command line's `cli` flags added, and compiles
/// every template it names (and renders it against sample records, see
/// `Renderer::load`), so that start-up, SIGHUP and `srvd check` refuse the
/// same configs. Compiling happens here, above both config and render, so
/// that neither imports the other. Errors list every problem.
pub fn load(path: &Path, cli: Flags) -> Result<Loaded, ConfigError> {
    let settings = config::load_with_flags(path, cli)?;
    let renderer = Renderer::load(&settings.templates).map_err(|problems| ConfigError {
        path: path.display().to_string(),
        problems,
    })?;
    Ok(Loaded { settings, renderer })
}

/// Told the STATUS line when srvd first becomes ready.
pub type ReadyHook = Box<dyn FnMut(&str)>;

pub struct Engine {
    settings: Settings,
    config_path: PathBuf,
    inputs: Inputs,
    runs: Vec<TemplateRun>,
    stop: watch::Receiver<bool>,
    counters: Counters,
    last_change: Option<SystemTime>,
    config_error: Option<String>,
    /// When srvd started, for /status.
    started: SystemTime,
    ready: bool,
    /// Called once, with the STATUS line, when srvd first becomes ready.
    ready_hook: Option<ReadyHook>,
}

/// What `prepare` found for one template.
enum Prepared {
    /// Nothing to do now (waiting, or a dry run that printed its diff).
    Nothing,
    /// Dest already holds the render.
    UpToDate,
    Apply(Work),
}

impl Engine {
    /// An engine for `loaded` (read from `config_path`, named in /status);
    /// commands it runs are killed when `stop` turns true.
    pub fn new(
        loaded: Loaded,
        config_path: &Path,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let inputs = Inputs::new(&loaded.settings.source, loaded.renderer)?;
        let runs = loaded.settings.templates.iter().map(new_run).collect();
        Ok(Engine {
            runs,
            settings: loaded.settings,
            config_path: config_path.to_owned(),
            inputs,
            stop,
            counters: Counters::default(),
            last_change: None,
            config_error: None,
            started: SystemTime::now(),
            ready: false,
            ready_hook: None,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Puts a newly loaded config in force (SIGHUP). Templates writing the
    /// same dest keep their history (cooldown, back-off, last change), and
    /// cached DNS answers are kept when the record source did not change
    /// (the same name servers, `resolv_conf` read again). A zone file is
    /// always read again, whatever its stamp says.
    pub fn replace_config(&mut self, loaded: Loaded) -> anyhow::Result<()> {
        let zone = matches!(loaded.settings.source, config::RecordSource::ZoneFile(_));
        if zone || loaded.settings.source != self.settings.source {
            self.inputs.source = crate::source::Source::new(&loaded.settings.source)?;
        }
        if loaded.settings.source != self.settings.source {
            let now = crate::source::describe(&loaded.settings.source);
            log::info!("records now from {now}");
        }
        let mut old: HashMap<PathBuf, TemplateRun> = self
            .settings
            .templates
            .iter()
            .map(|t| t.dest.clone())
            .zip(std::mem::take(&mut self.runs))
            .collect();
        self.runs = loaded
            .settings
            .templates
            .iter()
            .map(|t| match old.remove(&t.dest) {
                Some(mut run) => {
                    run.carry_over(t);
                    run
                }
                None => new_run(t),
            })
            .collect();
        let names: Vec<Name> = loaded
            .settings
            .templates
            .iter()
            .flat_map(|t| t.domains.iter().map(|d| d.name.clone()))
            .collect();
        self.inputs.source.retain(&names);
        self.settings = loaded.settings;
        self.inputs.renderer = loaded.renderer;
        self.inputs.hostname = crate::render::host_name();
        self.config_error = None;
        self.counters.config_reloads_ok += 1;
        Ok(())
    }

    /// Records why a new config was refused; the old one keeps running.
    pub fn config_refused(&mut self, error: String) {
        self.counters.config_reloads_failed += 1;
        self.config_error = Some(error);
    }

    /// Ready for systemd: every template is rendered or up to date, or failing
    /// while a last good dest exists. A template that never produced its dest
    /// keeps srvd "activating".
    pub fn is_ready(&self) -> bool {
        self.runs.iter().all(TemplateRun::is_ready)
    }

    /// Until when template `i` needs no look if none of the files it depends
    /// on changes: until one of its answers' TTL runs out. None while anything
    /// about it is pending or unsure, so that it keeps its interval: a change
    /// waits or a reload is owed (their own wake-ups), it fails or has no
    /// verdict, dest has not been read back since srvd wrote it, HAProxy's
    /// runtime socket is polled for restarts, or this is a dry run.
    pub fn quiet_until(&self, i: usize, now: Instant) -> Option<Instant> {
        let (t, run) = (&self.settings.templates[i], &self.runs[i]);
        let settled = matches!(run.health, state::Health::Ok)
            && matches!(run.dest, Dest::Matched { .. })
            && run.wake_at().is_none()
            && t.haproxy.socket.is_none()
            && !self.settings.flags.dry_run;
        if !settled {
            return None;
        }
        let names: Vec<Name> = t.domains.iter().map(|d| d.name.clone()).collect();
        self.inputs
            .source
            .fresh_until(&names, t.resolve_targets, now)
    }

    /// `hook` is called once, with the STATUS line, the first time every
    /// template is rendered or up to date (see `is_ready`). That happens
    /// between writing dest and running the reload commands, so that a
    /// reload of a unit ordered after srvd (haproxy.service with
    /// After=srvd.service) does not wait for srvd's own start to finish.
    pub fn on_ready(&mut self, hook: ReadyHook) {
        self.ready_hook = Some(hook);
    }

    fn announce_ready(&mut self) {
        if !self.ready && self.is_ready() {
            self.ready = true;
            let line = self.snapshot().status_line();
            if let Some(hook) = &mut self.ready_hook {
                hook(&line);
            }
        }
    }

    /// Runs one cycle over the templates in `due` (config indexes).
    /// `immediate` skips wait and cooldown, as `--oneshot` does; `direct` names
    /// domains to ask a zone's primaries for now, bypassing the cache (NOTIFY).
    pub async fn cycle(
        &mut self,
        due: &[usize],
        now: Instant,
        immediate: bool,
        direct: &HashMap<Name, Vec<std::net::SocketAddr>>,
    ) -> Report {
        let mut report = Report::default();
        self.counters.cycles += 1;

        let mut wanted: Vec<Name> = Vec::new();
        for &i in due {
            for d in &self.settings.templates[i].domains {
                if !wanted.contains(&d.name) {
                    wanted.push(d.name.clone());
                }
            }
        }
        let answers = self
            .inputs
            .fetch(&wanted, now, direct, &mut self.counters)
            .await;

        let mut to_apply = Vec::new();
        let mut up_to_date = Vec::new();
        for &i in due {
            match self.prepare(i, &answers, now, immediate).await {
                Ok(Prepared::Apply(work)) => to_apply.push(work),
                Ok(Prepared::UpToDate) => up_to_date.push(i),
                Ok(Prepared::Nothing) => {}
                Err(reason) => {
                    self.runs[i].set_failing(&self.settings.templates[i], reason);
                    plan::unavailable(&mut self.runs[i].plan);
                    report.failed.push(i);
                }
            }
        }

        let mut replaced = Vec::new();
        for work in to_apply {
            let i = work.index;
            let (t, run) = (&self.settings.templates[i], &mut self.runs[i]);
            match install::install(t, run, work, self.settings.flags, &mut self.stop).await {
                Ok(r) => {
                    self.last_change = run.last_change;
                    replaced.push(r);
                }
                Err(reason) => {
                    self.runs[i].set_failing(&self.settings.templates[i], reason);
                    report.failed.push(i);
                }
            }
        }

        for r in &replaced {
            self.runs[r.index].set_ok(&self.settings.templates[r.index]);
        }
        self.announce_ready();
        self.reconcile(&up_to_date, now).await;
        self.reload(replaced, &up_to_date, now, &mut report).await;
        self.announce_ready();
        for &i in due {
            if let Some(until) = self.runs[i].wake_at() {
                report.wake.push((i, until));
            }
        }
        self.counters.dns_queries = self.inputs.source.queries();
        report
    }

    /// Looks up and renders template `i` without deciding or writing anything
    /// (`srvd render`).
    pub async fn preview(&mut self, i: usize) -> Result<Vec<u8>, Error> {
        let now = Instant::now();
        let t = &self.settings.templates[i];
        let names: Vec<Name> = t.domains.iter().map(|d| d.name.clone()).collect();
        // Unlike a cycle, a preview neither logs rejected records nor counts.
        let answers: HashMap<Name, SrvResult> = self
            .inputs
            .source
            .srv(&names, now, &HashMap::new())
            .await
            .into_iter()
            .map(|f| (f.domain, f.result))
            .collect();
        let run = &mut self.runs[i];
        let inputs = self
            .inputs
            .records(t, run, &answers, now, &mut self.counters)
            .await?;
        self.inputs.render(i, t, run, &inputs, &mut self.counters)?;
        Ok(content(run).to_vec())
    }

    /// Looks up, renders and decides for template `i`. Returns the work to
    /// apply, None when there is nothing to do now, or why it failed.
    async fn prepare(
        &mut self,
        i: usize,
        answers: &HashMap<Name, SrvResult>,
        now: Instant,
        immediate: bool,
    ) -> Result<Prepared, Error> {
        let t = &self.settings.templates[i];
        let run = &mut self.runs[i];
        let inputs = self
            .inputs
            .records(t, run, answers, now, &mut self.counters)
            .await?;
        let hash = self.inputs.render(i, t, run, &inputs, &mut self.counters)?;
        let Some(perms) = install::perms(t, run, hash, now)? else {
            return Ok(Prepared::Nothing);
        };
        let dest = apply::real_dest(&t.dest);
        // The common case costs one stat(2): dest is as srvd last found it.
        let stamp = Stamp::of(&dest);
        let (up_to_date, current, owner) = if run.dest.trusted(hash, stamp) {
            (true, None, None)
        } else {
            let current = apply::read_dest(&dest).map_err(Error::Read)?;
            let owner = apply::wanted_owner(&perms, current.as_ref());
            let same = apply::is_up_to_date(current.as_ref(), content(run), owner);
            run.dest = match (&current, same) {
                (None, _) => Dest::Absent,
                (Some(_), true) => Dest::Matched { hash, stamp },
                (Some(_), false) => Dest::Unmatched,
            };
            (same, current, Some(owner))
        };
        let up_to_date = up_to_date || (self.settings.flags.dry_run && run.shown == Some(hash));
        let decision = plan::decide(&mut run.plan, hash, up_to_date, now, &t.timing, immediate);
        let before = std::mem::take(&mut run.change);
        match decision {
            Decision::UpToDate => {
                if run.targets.is_none() {
                    run.targets = Some(targets_of(&inputs));
                }
                // Healthy once no reload is owed for what dest holds.
                if run.reload == Reload::Settled {
                    run.confirmed = Some(SystemTime::now());
                    run.set_ok(t);
                }
                Ok(Prepared::UpToDate)
            }
            Decision::Defer { why, until } => {
                run.change = Change::Waiting { why, until };
                report::log_waiting(t, before, run.change);
                // A change blocked by its back-off is still a failure; one
                // waiting for quiescence or cooldown is healthy.
                if why != plan::Why::Backoff {
                    run.set_ok(t);
                }
                Ok(Prepared::Nothing)
            }
            Decision::Apply if self.settings.flags.dry_run => {
                report::print_dry_run(t, current.as_ref(), content(run));
                run.shown = Some(hash);
                plan::applied(&mut run.plan, now);
                run.targets = Some(targets_of(&inputs));
                run.set_ok(t);
                Ok(Prepared::Nothing)
            }
            Decision::Apply => Ok(Prepared::Apply(Work {
                index: i,
                dest,
                content: shared_content(run),
                hash,
                owner: owner.expect("read when not trusted"),
                previous: current,
                targets: targets_of(&inputs),
            })),
        }
    }

    /// Runs each distinct reload once, in config order, for the templates
    /// just replaced and those owing a reload (see `reload`); rolls back what
    /// a failed reload covered. A template with `haproxy_socket` whose change
    /// is only in servers goes through HAProxy's runtime API instead, and
    /// leaves its group; a group left with nothing to reload runs nothing.
    async fn reload(
        &mut self,
        replaced: Vec<Replaced>,
        up_to_date: &[usize],
        now: Instant,
        report: &mut Report,
    ) {
        let replaced = self.apply_runtime(replaced, now, report).await;
        // Templates whose dest holds the current render but whose reload is
        // still owed (it failed without rollback, a crash interrupted it, or
        // HAProxy runs other servers than dest's).
        let mut owed: Vec<usize> = up_to_date
            .iter()
            .copied()
            .filter(|&i| self.runs[i].reload.due(now))
            .collect();
        owed.sort();
        let settings = &self.settings;
        let groups = reload::groups(replaced, &owed, |i| {
            let t = &settings.templates[i];
            if settings.flags.no_reload {
                return None;
            }
            match (&t.haproxy.master_socket, &t.reload_cmd) {
                (Some(master), _) => Some(Reloader::Master(master.clone())),
                (None, Some(cmd)) => Some(Reloader::Command(cmd.expand(&t.dest, &t.dest))),
                (None, None) => None,
            }
        });
        for group in groups {
            let outcome = match &group.reloader {
                None => Ok(()),
                Some(reloader) => {
                    let t = self.settings.templates[group.first()].clone();
                    let result = match reloader {
                        Reloader::Command(argv) => {
                            let cmd = t.reload_cmd.clone().expect("argv comes from reload_cmd");
                            install::run_command(&t, &cmd, argv, &mut self.stop).await
                        }
                        Reloader::Master(addr) => {
                            tlog!(
                                Debug,
                                &t,
                                None,
                                "{}: reloading over the master CLI {addr}",
                                t.name
                            );
                            let started = Instant::now();
                            let verdict =
                                haproxy::reload_master(addr, t.timing.timeout, &mut self.stop)
                                    .await;
                            // The verdict and its latency; a failure is told by
                            // the caller's report.
                            if let Ok(worker) = verdict {
                                let by = match worker {
                                    0 => String::new(),
                                    pid => format!(", new worker {pid}"),
                                };
                                tlog!(
                                    Info,
                                    &t,
                                    None,
                                    "{}: HAProxy confirmed the reload over the master CLI {addr} in {} ms{by}",
                                    t.name,
                                    started.elapsed().as_millis()
                                );
                            }
                            verdict.map(|_| ())
                        }
                    };
                    match &result {
                        Ok(()) => self.counters.reloads_ok += 1,
                        Err(_) => self.counters.reloads_failed += 1,
                    }
                    result
                }
            };
            // One failure, told by every template the command covered.
            let outcome = outcome.map_err(Arc::new);
            let rollback = self.settings.rollback_on_reload_failure;
            for r in group.replaced {
                let step = reload::after_replace(&outcome, rollback, r.previous.is_some());
                let (t, run) = (&self.settings.templates[r.index], &mut self.runs[r.index]);
                install::after_replace(t, run, r, step, &outcome, now, report);
            }
            for i in group.owed {
                let step = reload::after_owed(&outcome);
                let (t, run) = (&self.settings.templates[i], &mut self.runs[i]);
                install::after_owed(i, t, run, step, &outcome, now, report);
            }
        }
    }

    /// The daemon's picture of itself, for STATUS, /status and /metrics.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::new(self.config_path.display().to_string());
        s.started = clock::rfc3339(self.started);
        if let Some(t) = self.last_change {
            s.set_last_change(t);
        }
        if let Some(t) = report::last_confirmed(&self.runs) {
            s.last_update = clock::rfc3339(t);
        }
        s.ready = self.ready;
        s.config_error = self.config_error.clone();
        s.counters = self.counters.clone();
        s.templates = self
            .settings
            .templates
            .iter()
            .zip(&self.runs)
            .map(|(t, r)| report::template_status(t, r))
            .collect();
        s.ok = !s.templates.is_empty() && s.templates.iter().all(|t| t.ok);
        s.last_change_no_reload = self
            .runs
            .iter()
            .filter(|r| r.last_change.is_some())
            .max_by_key(|r| r.last_change)
            .is_some_and(|r| r.no_reload_change);
        s
    }
}

/// The state a template starts with: stale staged files removed, and a
/// reload owed if a crash interrupted one.
fn new_run(t: &TemplateSettings) -> TemplateRun {
    let dest = apply::real_dest(&t.dest);
    for stale in apply::remove_stale(&dest) {
        tlog!(
            Info,
            t,
            None,
            "{}: removed {} left by an earlier run",
            t.name,
            stale.display()
        );
    }
    let owed = apply::reload_owed(&dest) && t.reload_cmd.is_some();
    if owed {
        tlog!(
            Warn,
            t,
            None,
            "{}: the last reload after writing {} did not finish; reloading again",
            t.name,
            dest.display()
        );
    }
    TemplateRun::new(t, dest.exists(), owed)
}
