//! One cycle over the due templates: records → render → decide → stage →
//! check → replace → reload (each distinct reload command once, in config
//! order) → roll back what a failed reload covered. The daemon loop decides
//! when a cycle runs; this module decides what it does.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::rr::Name;
use tokio::sync::watch;

use crate::apply::{self, DestFile};
use crate::clock;
use crate::command::{self, CommandLine};
use crate::config::{self, ConfigError, Flags, Settings, TemplateSettings};
use crate::plan::{self, Decision, PlanState};
use crate::records::{self, Answer, LookupError, Rejected, Srv};
use crate::render::{self, Renderer};
use crate::source::{Source, SrvResult};
use crate::status::{Counters, DomainStatus, Snapshot, TemplateStatus};

/// Logs an event about template `t`, with its journal fields (SRVD_TEMPLATE,
/// SRVD_DEST, one SRVD_DOMAIN per domain, SRVD_COMMAND when given).
macro_rules! tlog {
    ($level:ident, $t:expr, $cmd:expr, $($arg:tt)+) => {{
        let t: &TemplateSettings = $t;
        let domains: Vec<&str> = t.domains.iter().map(|d| d.text.as_str()).collect();
        crate::logging::event(
            log::Level::$level,
            &crate::logging::Fields {
                template: &t.name,
                dest: &t.dest.to_string_lossy(),
                domains: &domains,
                command: $cmd,
            },
            format_args!($($arg)+),
        )
    }};
}

/// A config that loaded: settings plus compiled templates.
pub struct Loaded {
    pub settings: Settings,
    pub renderer: Renderer,
}

/// Reads srvd.toml and every template it names; `cli` flags are added to the
/// config's own.
pub fn load(path: &Path, cli: Flags) -> Result<Loaded, ConfigError> {
    let mut settings = config::load(path)?;
    settings.flags.dry_run |= cli.dry_run;
    settings.flags.no_reload |= cli.no_reload;
    settings.flags.no_check |= cli.no_check;
    settings.flags.oneshot |= cli.oneshot;
    let renderer = Renderer::load(&settings.templates).map_err(|problems| ConfigError {
        path: path.display().to_string(),
        problems,
    })?;
    Ok(Loaded { settings, renderer })
}

/// Told the STATUS line when srvd first becomes ready.
pub type ReadyHook = Box<dyn FnMut(&str)>;

/// Prefix of the marker that says "dest changed, its reload has not
/// succeeded yet": it survives a crash so that the next start reloads.
const RELOAD_MARKER: &str = ".srvd-reload-pending-";

pub struct Engine {
    settings: Settings,
    config_path: PathBuf,
    renderer: Renderer,
    source: Source,
    runs: Vec<TemplateRun>,
    hostname: String,
    stop: watch::Receiver<bool>,
    counters: Counters,
    last_change: Option<SystemTime>,
    /// Rejected records already logged, per domain: each is logged once.
    warned: HashMap<Name, Vec<Rejected>>,
    /// The same for targets left out for want of an address.
    warned_addrs: HashMap<Name, Vec<Rejected>>,
    config_error: Option<String>,
    /// When srvd started, for /status.
    started: SystemTime,
    ready: bool,
    /// Called once, with the STATUS line, when srvd first becomes ready.
    ready_hook: Option<ReadyHook>,
}

#[derive(Default)]
struct TemplateRun {
    plan: PlanState,
    /// Inputs and result of the last render attempt.
    last: Option<Attempt>,
    health: Health,
    domains: Vec<DomainStatus>,
    last_change: Option<SystemTime>,
    last_success: Option<SystemTime>,
    /// Targets (host:port) in dest as srvd last wrote or found it.
    targets: Option<BTreeSet<String>>,
    /// A change waiting, why, and until when.
    pending: Option<(plan::Why, Instant)>,
    changes: u64,
    check_failures: u64,
    reload_failures: u64,
    /// Dry run: the content already shown.
    shown: Option<u64>,
    /// A reload is owed: dest holds content the middleware may not have loaded.
    owed: Option<plan::Failed>,
    /// Dest was found to hold the render with this hash, and had this stamp.
    verified: Option<(u64, Option<apply::Stamp>)>,
    dest_exists: bool,
    /// Dest has held the current render at least once this run.
    in_place: bool,
}

/// What `prepare` found for one template.
enum Prepared {
    /// Nothing to do now (waiting, or a dry run that printed its diff).
    Nothing,
    /// Dest already holds the render.
    UpToDate,
    Apply(Work),
}

struct Attempt {
    inputs: Vec<Arc<Answer>>,
    result: Result<(Vec<u8>, u64), String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Health {
    #[default]
    Unknown,
    Ok,
    Failing(String),
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

/// A template that got through its check and is now in place.
struct Replaced {
    index: usize,
    previous: Option<DestFile>,
    hash: u64,
    /// What `targets` was before, for a rollback.
    previous_targets: Option<BTreeSet<String>>,
}

impl Engine {
    pub fn new(
        loaded: Loaded,
        config_path: &Path,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let source = Source::new(&loaded.settings.source)?;
        let mut engine = Engine {
            runs: Vec::new(),
            settings: loaded.settings,
            config_path: config_path.to_owned(),
            renderer: loaded.renderer,
            source,
            hostname: render::host_name(),
            stop,
            counters: Counters::default(),
            last_change: None,
            warned: HashMap::new(),
            warned_addrs: HashMap::new(),
            config_error: None,
            started: SystemTime::now(),
            ready: false,
            ready_hook: None,
        };
        engine.runs = engine
            .settings
            .templates
            .iter()
            .map(|t| engine.new_run(t))
            .collect();
        Ok(engine)
    }

    /// The state a template starts with: stale staged files removed, and a
    /// reload owed if a crash interrupted one.
    fn new_run(&self, t: &TemplateSettings) -> TemplateRun {
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
        let owed = marker_path(&dest).exists() && t.reload_cmd.is_some();
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
        TemplateRun {
            owed: owed.then(|| plan::Failed {
                hash: 0,
                retry_at: Instant::now(),
                backoff: Duration::ZERO,
            }),
            dest_exists: dest.exists(),
            domains: t
                .domains
                .iter()
                .map(|d| DomainStatus {
                    domain: d.text.clone(),
                    records: None,
                    error: None,
                })
                .collect(),
            ..TemplateRun::default()
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Puts a newly loaded config in force (SIGHUP). Templates writing the
    /// same dest keep their history (cooldown, back-off, last change), and
    /// cached DNS answers are kept when the record source did not change.
    pub fn replace_config(&mut self, loaded: Loaded) -> anyhow::Result<()> {
        if loaded.settings.source != self.settings.source {
            self.source = Source::new(&loaded.settings.source)?;
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
                    // The template text may have changed: render again.
                    run.last = None;
                    run.domains = t
                        .domains
                        .iter()
                        .map(|d| DomainStatus {
                            domain: d.text.clone(),
                            records: None,
                            error: None,
                        })
                        .collect();
                    run
                }
                None => self.new_run(t),
            })
            .collect();
        let names: Vec<Name> = loaded
            .settings
            .templates
            .iter()
            .flat_map(|t| t.domains.iter().map(|d| d.name.clone()))
            .collect();
        self.source.retain(&names);
        self.settings = loaded.settings;
        self.renderer = loaded.renderer;
        self.hostname = render::host_name();
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
        self.runs.iter().all(|r| match r.health {
            Health::Ok => true,
            Health::Failing(_) => r.dest_exists,
            // Up to date, with only a reload owed from before a crash.
            Health::Unknown => r.in_place,
        })
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
        let fetched = self.source.srv(&wanted, now, direct).await;
        let mut answers: HashMap<Name, SrvResult> = HashMap::new();
        for f in fetched {
            if f.asked {
                match &f.result {
                    Ok(answer) => self.warn_rejected(&f.domain, &answer.rejected, false),
                    Err(e) => *self.counters.dns_errors.entry(e.kind()).or_default() += 1,
                }
            }
            answers.insert(f.domain, f.result);
        }

        let mut to_apply = Vec::new();
        let mut up_to_date = Vec::new();
        for &i in due {
            match self.prepare(i, &answers, now, immediate).await {
                Ok(Prepared::Apply(work)) => to_apply.push(work),
                Ok(Prepared::UpToDate) => up_to_date.push(i),
                Ok(Prepared::Nothing) => {}
                Err(reason) => {
                    self.set_failing(i, reason, None);
                    plan::unavailable(&mut self.runs[i].plan);
                    report.failed.push(i);
                }
            }
        }

        let mut replaced = Vec::new();
        for work in to_apply {
            let i = work.index;
            match self.install(work).await {
                Ok(r) => replaced.push(r),
                Err((reason, command)) => {
                    self.set_failing(i, reason, command.as_deref());
                    report.failed.push(i);
                }
            }
        }

        for r in &replaced {
            self.set_ok(r.index);
        }
        self.announce_ready();
        self.reload(replaced, &up_to_date, now, &mut report).await;
        self.announce_ready();
        for &i in due {
            if let Some(until) = self.defer_until(i) {
                report.wake.push((i, until));
            }
        }
        self.counters.dns_queries = self.source.queries();
        report
    }

    /// When template `i` must be looked at again, sooner than its interval.
    fn defer_until(&self, i: usize) -> Option<Instant> {
        let run = &self.runs[i];
        let owed = run.owed.map(|o| o.retry_at);
        match (run.pending.map(|(_, until)| until), owed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The records of template `i`'s domains under its rules (`allow_empty`,
    /// `min_records`, `resolve_targets`), or why they cannot be used.
    async fn inputs(
        &mut self,
        i: usize,
        answers: &HashMap<Name, SrvResult>,
        now: Instant,
    ) -> Result<Vec<Arc<Answer>>, String> {
        let t = &self.settings.templates[i];
        let (allow_empty, min_records, resolve) = (t.allow_empty, t.min_records, t.resolve_targets);
        let mut inputs = Vec::with_capacity(t.domains.len());
        let mut errors = Vec::new();
        for k in 0..t.domains.len() {
            let d = &self.settings.templates[i].domains[k];
            let result = match answers.get(&d.name) {
                Some(Ok(answer)) => {
                    records::usable(answer, allow_empty, min_records).map(|()| answer.clone())
                }
                Some(Err(e)) => Err(e.clone()),
                None => Err(LookupError::Other("not looked up".into())),
            };
            let result = match result {
                Ok(answer) if resolve => {
                    let name = d.name.clone();
                    match self.source.resolve_targets(&name, &answer, now).await {
                        Ok(a) => {
                            // Past the SRV answer's own rejections: the
                            // targets without any address.
                            let unresolved = a.rejected.get(answer.rejected.len()..).unwrap_or(&[]);
                            self.warn_rejected(&name, unresolved, true);
                            records::usable(&a, allow_empty, min_records).map(|()| a)
                        }
                        Err(e) => Err(e),
                    }
                }
                other => other,
            };
            let status = &mut self.runs[i].domains[k];
            match result {
                Ok(answer) => {
                    status.records = Some(answer.records.len());
                    status.error = None;
                    inputs.push(answer);
                }
                Err(e) => {
                    status.error = Some(e.to_string());
                    errors.push(format!(
                        "{}: {e}",
                        self.settings.templates[i].domains[k].text
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(inputs)
        } else {
            Err(errors.join("; "))
        }
    }

    /// Renders template `i` and returns the hash of the result, or reuses the
    /// last render when the records are the same (the common case: nothing
    /// changed in DNS). The bytes stay in `runs[i].last`.
    fn rendered(&mut self, i: usize, inputs: &[Arc<Answer>]) -> Result<u64, String> {
        let reuse = self.runs[i]
            .last
            .as_ref()
            .is_some_and(|a| same_inputs(&a.inputs, inputs));
        if !reuse {
            self.counters.renders += 1;
            let t = &self.settings.templates[i];
            let domains: Vec<(&str, &[Srv])> = t
                .domains
                .iter()
                .zip(inputs)
                .map(|(d, a)| (d.text.as_str(), a.records.as_slice()))
                .collect();
            let result = self
                .renderer
                .render(i, &domains, &self.hostname)
                .map(|text| {
                    let bytes = text.into_bytes();
                    let hash = hash_of(&bytes);
                    (bytes, hash)
                });
            if result.is_err() {
                self.counters.render_errors += 1;
            }
            self.runs[i].last = Some(Attempt {
                inputs: inputs.to_vec(),
                result,
            });
        }
        match &self.runs[i].last.as_ref().expect("set above").result {
            Ok((_, hash)) => Ok(*hash),
            Err(e) => Err(format!("template {e}")),
        }
    }

    /// The bytes of template `i`'s last successful render.
    fn content(&self, i: usize) -> &[u8] {
        match self.runs[i].last.as_ref().map(|a| &a.result) {
            Some(Ok((content, _))) => content,
            _ => &[],
        }
    }

    /// Looks up and renders template `i` without deciding or writing anything
    /// (`srvd render`).
    pub async fn preview(&mut self, i: usize) -> Result<Vec<u8>, String> {
        let now = Instant::now();
        let names: Vec<Name> = self.settings.templates[i]
            .domains
            .iter()
            .map(|d| d.name.clone())
            .collect();
        let answers = self
            .source
            .srv(&names, now, &HashMap::new())
            .await
            .into_iter()
            .map(|f| (f.domain, f.result))
            .collect();
        let inputs = self.inputs(i, &answers, now).await?;
        self.rendered(i, &inputs)?;
        Ok(self.content(i).to_vec())
    }

    /// Looks up, renders and decides for template `i`. Returns the work to
    /// apply, None when there is nothing to do now, or why it failed.
    async fn prepare(
        &mut self,
        i: usize,
        answers: &HashMap<Name, SrvResult>,
        now: Instant,
        immediate: bool,
    ) -> Result<Prepared, String> {
        let inputs = self.inputs(i, answers, now).await?;
        let hash = self.rendered(i, &inputs)?;
        let t = &self.settings.templates[i];
        let dest = apply::real_dest(&t.dest);
        // The common case costs one stat(2): dest is as srvd last found it.
        let stamp = apply::stamp(&dest);
        let run = &mut self.runs[i];
        let verified = stamp.is_some() && run.verified == Some((hash, stamp));
        let (up_to_date, current, owner) = if verified {
            run.dest_exists = true;
            (true, None, None)
        } else {
            let current = apply::read_dest(&dest).map_err(|e| format!("{e:#}"))?;
            run.dest_exists = current.is_some();
            let owner = apply::wanted_owner(&t.perms, current.as_ref());
            let content = match run.last.as_ref().map(|a| &a.result) {
                Some(Ok((content, _))) => content.as_slice(),
                _ => &[],
            };
            let same = apply::is_up_to_date(current.as_ref(), content, owner);
            run.verified = if same { Some((hash, stamp)) } else { None };
            (same, current, Some(owner))
        };
        let up_to_date = up_to_date || (self.settings.flags.dry_run && run.shown == Some(hash));
        let decision = plan::decide(&mut run.plan, hash, up_to_date, now, &t.timing, immediate);
        run.pending = None;
        match decision {
            Decision::UpToDate => {
                if run.targets.is_none() {
                    run.targets = Some(targets_of(&inputs));
                }
                run.in_place = true;
                // Healthy once no reload is owed for what dest holds.
                if run.owed.is_none() {
                    self.set_ok(i);
                }
                Ok(Prepared::UpToDate)
            }
            Decision::Defer { why, until } => {
                run.pending = Some((why, until));
                // A change blocked by its back-off is still a failure; one
                // waiting for quiescence or cooldown is healthy.
                if why != plan::Why::Backoff {
                    self.set_ok(i);
                }
                Ok(Prepared::Nothing)
            }
            Decision::Apply if self.settings.flags.dry_run => {
                print_dry_run(t, current.as_ref(), self.content(i));
                let run = &mut self.runs[i];
                run.shown = Some(hash);
                plan::applied(&mut run.plan, now);
                run.targets = Some(targets_of(&inputs));
                self.set_ok(i);
                Ok(Prepared::Nothing)
            }
            Decision::Apply => Ok(Prepared::Apply(Work {
                index: i,
                dest,
                content: self.content(i).to_vec(),
                hash,
                owner: owner.expect("read when not verified"),
                previous: current,
                targets: targets_of(&inputs),
            })),
        }
    }

    /// Stages, checks and puts one change in place. On failure, says why and
    /// which command failed, if it was the check.
    async fn install(&mut self, work: Work) -> Result<Replaced, (String, Option<String>)> {
        let i = work.index;
        let t = self.settings.templates[i].clone();
        let now = Instant::now();
        let staged = match apply::stage(&work.dest, &work.content, work.owner) {
            Ok(s) => s,
            Err(e) => {
                plan::failed(&mut self.runs[i].plan, work.hash, now);
                return Err((format!("{e:#}"), None));
            }
        };
        if let (Some(check), false) = (&t.check_cmd, self.settings.flags.no_check) {
            let argv = check.expand(staged.path(), &t.dest);
            if let Err(failure) = self.run_command(&t, check, &argv).await {
                drop(staged);
                let run = &mut self.runs[i];
                run.check_failures += 1;
                let backoff = plan::failed(&mut run.plan, work.hash, now);
                return Err((
                    format!(
                        "check_cmd {failure}; {} left as it was; next try when the output changes, or in {}",
                        t.dest.display(),
                        config::duration::display(backoff)
                    ),
                    Some(check.text().to_owned()),
                ));
            }
        }
        let marker = t.reload_cmd.is_some() && !self.settings.flags.no_reload;
        if marker {
            let _ = std::fs::File::create(marker_path(&work.dest));
        }
        if let Err(e) = apply::replace(staged) {
            if marker {
                let _ = std::fs::remove_file(marker_path(&work.dest));
            }
            plan::failed(&mut self.runs[i].plan, work.hash, now);
            return Err((format!("{e:#}"), None));
        }
        let wall = SystemTime::now();
        let run = &mut self.runs[i];
        run.dest_exists = true;
        run.in_place = true;
        run.last_change = Some(wall);
        self.last_change = Some(wall);
        let before = self.runs[i].targets.replace(work.targets.clone());
        log_change(&t, before.as_ref(), &work.targets);
        Ok(Replaced {
            index: i,
            previous: work.previous,
            hash: work.hash,
            previous_targets: before,
        })
    }

    /// Runs each distinct reload command once, in config order, for the
    /// templates just replaced and those owing a reload; rolls back what a
    /// failed reload covered.
    async fn reload(
        &mut self,
        replaced: Vec<Replaced>,
        up_to_date: &[usize],
        now: Instant,
        report: &mut Report,
    ) {
        // Templates whose dest holds the current render but whose reload is
        // still owed (it failed without rollback, or a crash interrupted it).
        let mut owed: Vec<usize> = up_to_date
            .iter()
            .copied()
            .filter(|&i| self.runs[i].owed.is_some_and(|o| o.retry_at <= now))
            .collect();
        owed.sort();

        // Groups by the command's words, in config order of first use.
        let mut groups: Vec<ReloadGroup> = Vec::new();
        let mut members: Vec<(usize, Option<Replaced>)> = replaced
            .into_iter()
            .map(|r| (r.index, Some(r)))
            .chain(owed.into_iter().map(|i| (i, None)))
            .collect();
        members.sort_by_key(|(i, _)| *i);
        for (i, r) in members {
            let t = &self.settings.templates[i];
            let argv = match (&t.reload_cmd, self.settings.flags.no_reload) {
                (Some(cmd), false) => Some(cmd.expand(&t.dest, &t.dest)),
                _ => None,
            };
            let slot = match groups.iter().position(|g| g.argv == argv) {
                Some(p) => p,
                None => {
                    groups.push(ReloadGroup {
                        argv,
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

        for ReloadGroup {
            argv,
            replaced: done,
            owed,
        } in groups
        {
            let outcome = match &argv {
                None => Ok(()),
                Some(argv) => {
                    let first = done.first().map(|r| r.index).or(owed.first().copied());
                    let t = self.settings.templates[first.expect("a group has a member")].clone();
                    let cmd = t.reload_cmd.clone().expect("argv comes from reload_cmd");
                    let result = self.run_command(&t, &cmd, argv).await;
                    match &result {
                        Ok(()) => self.counters.reloads_ok += 1,
                        Err(_) => self.counters.reloads_failed += 1,
                    }
                    result
                }
            };
            for r in done {
                let i = r.index;
                let t = self.settings.templates[i].clone();
                let dest = apply::real_dest(&t.dest);
                match &outcome {
                    Ok(()) => {
                        let _ = std::fs::remove_file(marker_path(&dest));
                        let run = &mut self.runs[i];
                        plan::applied(&mut run.plan, now);
                        run.owed = None;
                        run.changes += 1;
                        self.set_ok(i);
                        report.changed.push(i);
                    }
                    Err(command::Failure::Stopped) => {
                        // The marker stays: the next start reloads.
                        report.failed.push(i);
                    }
                    Err(failure) => {
                        let run = &mut self.runs[i];
                        run.reload_failures += 1;
                        let backoff = plan::failed(&mut run.plan, r.hash, now);
                        let rolled_back = if self.settings.rollback_on_reload_failure {
                            match apply::restore(&dest, r.previous.as_ref()) {
                                Ok(()) => {
                                    let _ = std::fs::remove_file(marker_path(&dest));
                                    run.dest_exists = r.previous.is_some();
                                    run.targets = r.previous_targets.clone();
                                    "rolled back to the previous content".to_owned()
                                }
                                Err(e) => format!("rollback FAILED: {e:#}"),
                            }
                        } else {
                            run.owed = Some(plan::Failed {
                                hash: r.hash,
                                retry_at: now + backoff,
                                backoff,
                            });
                            "kept (disable_rollback_on_reload_failure)".to_owned()
                        };
                        let msg = format!(
                            "reload_cmd {failure}; {} {rolled_back}; next try when the output changes, or in {}",
                            dest.display(),
                            config::duration::display(backoff)
                        );
                        let command = t.reload_cmd.as_ref().map(|c| c.text().to_owned());
                        self.set_failing(i, msg, command.as_deref());
                        report.failed.push(i);
                    }
                }
            }
            for i in owed {
                let t = self.settings.templates[i].clone();
                let run = &mut self.runs[i];
                match &outcome {
                    Ok(()) => {
                        let _ = std::fs::remove_file(marker_path(&apply::real_dest(&t.dest)));
                        run.owed = None;
                        tlog!(Info, &t, None, "{}: owed reload done", t.name);
                        self.set_ok(i);
                    }
                    Err(command::Failure::Stopped) => {}
                    Err(failure) => {
                        let backoff = run
                            .owed
                            .map(|o| (o.backoff * 2).clamp(plan::BACKOFF_START, plan::BACKOFF_MAX))
                            .unwrap_or(plan::BACKOFF_START);
                        run.owed = Some(plan::Failed {
                            hash: 0,
                            retry_at: now + backoff,
                            backoff,
                        });
                        let msg = format!(
                            "reload_cmd {failure}; next try in {}",
                            config::duration::display(backoff)
                        );
                        let command = t.reload_cmd.as_ref().map(|c| c.text().to_owned());
                        self.set_failing(i, msg, command.as_deref());
                        report.failed.push(i);
                    }
                }
            }
        }
    }

    async fn run_command(
        &mut self,
        t: &TemplateSettings,
        cmd: &CommandLine,
        argv: &[OsString],
    ) -> Result<(), command::Failure> {
        tlog!(Debug, t, Some(cmd.text()), "{}: running {:?}", t.name, argv);
        command::run(argv, &cmd.label(), t.timing.timeout, &mut self.stop).await
    }

    fn set_ok(&mut self, i: usize) {
        let t = &self.settings.templates[i];
        let run = &mut self.runs[i];
        if let Health::Failing(reason) = &run.health {
            tlog!(Info, t, None, "{}: recovered (was: {reason})", t.name);
        }
        run.health = Health::Ok;
        run.last_success = Some(SystemTime::now());
    }

    /// Marks template `i` unhealthy; logs when the reason is new, so that a
    /// lasting outage is one line, not one per interval. `command` names the
    /// check or reload command that failed, if one did.
    fn set_failing(&mut self, i: usize, reason: String, command: Option<&str>) {
        let t = &self.settings.templates[i];
        let run = &mut self.runs[i];
        run.pending = None;
        if run.health != Health::Failing(reason.clone()) {
            tlog!(Warn, t, command, "{}: {reason}", t.name);
        }
        run.health = Health::Failing(reason);
    }

    /// Logs each rejected record of `domain` once, until it comes back after
    /// having gone; `addresses` picks the list of targets without an address.
    fn warn_rejected(&mut self, domain: &Name, rejected: &[Rejected], addresses: bool) {
        let warned = if addresses {
            &mut self.warned_addrs
        } else {
            &mut self.warned
        };
        let seen = warned.entry(domain.clone()).or_default();
        for r in rejected {
            if !seen.contains(r) {
                self.counters.rejected_records += 1;
                log::warn!(srvd_domain = domain.to_string().as_str();
                    "{domain}: dropped SRV record {} port {}: {}", r.target, r.port, r.reason);
            }
        }
        *seen = rejected.to_vec();
    }

    /// The daemon's picture of itself, for STATUS, /status and /metrics.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::new(self.config_path.display().to_string());
        s.started = clock::rfc3339(self.started);
        if let Some(t) = self.last_change {
            s.set_last_change(t);
        }
        s.ready = self.ready;
        s.config_error = self.config_error.clone();
        s.counters = self.counters.clone();
        s.templates = self
            .settings
            .templates
            .iter()
            .zip(&self.runs)
            .map(|(t, r)| TemplateStatus {
                name: t.name.clone(),
                dest: t.dest.display().to_string(),
                ok: r.health == Health::Ok,
                error: match &r.health {
                    Health::Failing(e) => Some(e.clone()),
                    Health::Unknown => Some("not rendered yet".into()),
                    Health::Ok => None,
                },
                domains: r.domains.clone(),
                targets: r.targets.as_ref().map_or(0, |t| t.len()),
                last_change: r.last_change.map(clock::rfc3339),
                last_success: r.last_success.map(clock::rfc3339),
                pending: r.pending.map(|(why, _)| why.to_string()),
                changes: r.changes,
                check_failures: r.check_failures,
                reload_failures: r.reload_failures,
                last_success_at: r.last_success,
            })
            .collect();
        s.ok = !s.templates.is_empty() && s.templates.iter().all(|t| t.ok);
        s
    }
}

/// Templates that share one reload command (same words after expansion).
struct ReloadGroup {
    argv: Option<Vec<OsString>>,
    replaced: Vec<Replaced>,
    owed: Vec<usize>,
}

struct Work {
    index: usize,
    dest: PathBuf,
    content: Vec<u8>,
    hash: u64,
    owner: apply::Owner,
    previous: Option<DestFile>,
    targets: BTreeSet<String>,
}

fn marker_path(dest: &Path) -> PathBuf {
    let base = dest
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!("{RELOAD_MARKER}{base}"))
}

fn hash_of(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Same records as last time: the same shared answers, or equal ones.
fn same_inputs(a: &[Arc<Answer>], b: &[Arc<Answer>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| Arc::ptr_eq(x, y) || x.records == y.records)
}

fn targets_of(inputs: &[Arc<Answer>]) -> BTreeSet<String> {
    inputs
        .iter()
        .flat_map(|a| a.records.iter())
        .map(|r| format!("{}:{}", r.host, r.port))
        .collect()
}

fn log_change(t: &TemplateSettings, before: Option<&BTreeSet<String>>, after: &BTreeSet<String>) {
    let domains: Vec<&str> = t.domains.iter().map(|d| d.text.as_str()).collect();
    let (added, removed): (Vec<&String>, Vec<&String>) = match before {
        Some(b) => (after.difference(b).collect(), b.difference(after).collect()),
        None => (after.iter().collect(), Vec::new()),
    };
    // A pool of thousands must not make a log line of megabytes.
    const SHOWN: usize = 20;
    let list = |v: &[&String]| match v.len() {
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

fn print_dry_run(t: &TemplateSettings, current: Option<&DestFile>, content: &[u8]) {
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
