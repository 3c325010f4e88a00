//! The daemon loop: it only schedules. Poll ticks and deferred changes (wait,
//! cooldown, back-off) become "cycle these templates now"; SIGHUP becomes
//! "reload the config"; SIGTERM/SIGINT become "stop". After each cycle it
//! publishes the status and tells systemd. Between cycles it sleeps until
//! something is due: a template whose answers are still fresh and whose files
//! (`follow`) have not changed is not looked at before its TTL runs out. The
//! watchdog is fed from this loop
//! only, and only while a cycle stays within its time budget, so a wedged loop
//! stops the pings and systemd restarts srvd.

mod follow;
mod refresh;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior, sleep_until};

use crate::config::{Flags, RecordSource, Settings};
use crate::engine::{self, Engine, Report};
use crate::status::Snapshot;
use crate::systemd::{self, SdNotify};
use crate::{command, http};
use refresh::{CountersWatch, DnsNotifyListener, Refresh};

/// What the command line asks of the daemon.
pub struct Options {
    pub config: PathBuf,
    pub flags: Flags,
    pub no_status: bool,
    /// `--status-listen`: where the status endpoint listens, over the config.
    pub status_listen: Option<SocketAddr>,
}

/// Runs srvd until stopped, or one cycle with `--oneshot`. Returns the exit code.
pub fn run(opts: Options) -> Result<u8> {
    // Before any thread exists: these read the environment systemd set.
    let listen = systemd::listen_fds();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let loaded = engine::load(&opts.config, opts.flags)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut engine = Engine::new(loaded, &opts.config, stop_rx)?;
        let all: Vec<usize> = (0..engine.settings().templates.len()).collect();
        // A dry run writes nothing, so a daemon of dry runs would only print
        // the same diff again and again: like --oneshot, one cycle and exit.
        let flags = engine.settings().flags;
        if flags.oneshot || flags.dry_run {
            let report = engine
                .cycle(&all, std::time::Instant::now(), true, &HashMap::new())
                .await;
            // srvd exits now: what the commands left behind goes with it.
            command::kill_lingering();
            return Ok(if report.failed.is_empty() { 0 } else { 1 });
        }
        let sd_notify = SdNotify::from_env(engine.settings().sd_notify);
        let (snapshots, snapshot_rx) = watch::channel(Arc::new(engine.snapshot()));
        let status_addr = opts.status_listen.or(engine.settings().status);
        let status = start_status(status_addr, listen, opts.no_status)
            .await
            .map(|l| (l, snapshot_rx));
        let dns_notify = match engine.settings().dns_notify.clone() {
            Some(settings) => Some(DnsNotifyListener::start(settings).await?),
            None => None,
        };
        let n = engine.settings().templates.len();
        let ready = sd_notify.clone();
        engine.on_ready(Box::new(move |line| {
            // "ready" only when systemd heard it: a log that says ready while
            // the unit still waits for READY=1 sends the operator elsewhere.
            if ready.ready(line) {
                log::info!("ready: {line}");
            } else {
                log::info!("settled, systemd not told: {line}");
            }
        }));
        let mut daemon = Daemon {
            files: follow::Files::new(engine.settings()),
            looked: vec![Instant::now(); n],
            due: first_due(engine.settings()),
            refresh: vec![Refresh::default(); n],
            counters_watch: dns_notify.as_ref().map(DnsNotifyListener::watch),
            dns_notify,
            engine,
            opts,
            sd_notify,
            stop_tx,
            snapshots,
            last_status: String::new(),
            signals: Signals::new()?,
            watchdog: None,
            status,
        };
        daemon.watchdog = daemon.sd_notify.watchdog_every().map(|every| {
            let mut i = tokio::time::interval(every);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        });
        daemon.run().await;
        Ok(0)
    })
}

/// Serves the status endpoint on the socket systemd passed, else on `addr`
/// (`--status-listen`, else `status_addr:status_port`), unless it is turned
/// off (`nohttpd`, `--no-status`), which wins over a passed socket too.
/// Returns the listener, bound now so that a bad address shows at start;
/// the daemon serves it once its first cycle is done.
async fn start_status(
    addr: Option<SocketAddr>,
    listen: Vec<std::os::fd::OwnedFd>,
    no_status: bool,
) -> Option<tokio::net::TcpListener> {
    let Some(addr) = addr.filter(|_| !no_status) else {
        if !listen.is_empty() {
            log::warn!(
                "the status endpoint is off (nohttpd / --no-status): not serving the socket systemd passed"
            );
        }
        return None;
    };
    let listener = if let Some(fd) = listen.into_iter().next() {
        let std_listener = std::net::TcpListener::from(fd);
        std_listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(std_listener))
            .map_err(|e| format!("the socket passed by systemd: {e}"))
    } else {
        tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            format!(
                "binding the status endpoint on {addr}: {e}{}",
                bind_hint(addr, &e)
            )
        })
    };
    match listener {
        Ok(l) => {
            if let Ok(addr) = l.local_addr() {
                log::info!("status endpoint on http://{addr}/status and /metrics");
            }
            Some(l)
        }
        Err(e) => {
            log::error!("{e}; running without a status endpoint");
            None
        }
    }
}

/// What to do about a failed bind of the status endpoint on `addr`: the two
/// causes a new user meets, another program on the port (EADDRINUSE) and a
/// port below 1024 without CAP_NET_BIND_SERVICE (EACCES, ip(7)).
fn bind_hint(addr: SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            " (port {} in use by another program? set status_port, or --status-listen ADDR:PORT)",
            addr.port()
        ),
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            " (permission denied below 1024: choose a status_port above 1023, or grant CAP_NET_BIND_SERVICE; port {})",
            addr.port()
        ),
        _ => String::new(),
    }
}

/// When each template is first due: at once for a template whose dest does
/// not exist yet, else after a random splay, so that a fleet restarted at
/// once does not ask its resolvers in the same second.
fn first_due(settings: &Settings) -> Vec<Instant> {
    let now = Instant::now();
    settings
        .templates
        .iter()
        .map(|t| {
            if settings.splay.is_zero() || !t.dest.exists() {
                now
            } else {
                now + settings.splay.mul_f64(random_unit())
            }
        })
        .collect()
}

/// A random number in [0, 1), from the OS-seeded hasher keys.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        Ok(Signals {
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }
}

struct Daemon {
    engine: Engine,
    /// Pending NOTIFY-driven refreshes, by template.
    refresh: Vec<Refresh>,
    dns_notify: Option<DnsNotifyListener>,
    counters_watch: Option<CountersWatch>,
    opts: Options,
    sd_notify: SdNotify,
    stop_tx: watch::Sender<bool>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    /// When each template (config index) is next due.
    due: Vec<Instant>,
    /// When each template was last looked at: a file event brings it forward
    /// to no sooner than one interval after that.
    looked: Vec<Instant>,
    /// The files followed with inotify; None without inotify, and then every
    /// template is looked at every interval.
    files: Option<follow::Files>,
    last_status: String,
    signals: Signals,
    watchdog: Option<Interval>,
    /// The status endpoint, until the first cycle is done: a request that
    /// came first (the one that socket-activated srvd) waits in the listen
    /// backlog rather than being told `Ok: false` before anything was tried.
    status: Option<(tokio::net::TcpListener, watch::Receiver<Arc<Snapshot>>)>,
}

/// What a signal asked for while a cycle ran.
#[derive(Default)]
struct Asked {
    stop: bool,
    reload: bool,
}

/// How long a stopping cycle may take to kill its commands before it is dropped.
const STOP_DEADLINE: Duration = Duration::from_millis(700);

impl Daemon {
    async fn run(&mut self) {
        log::info!(
            "srvd {} started: {} template(s), config {}",
            env!("CARGO_PKG_VERSION"),
            self.engine.settings().templates.len(),
            self.opts.config.display()
        );
        loop {
            let next = self
                .due
                .iter()
                .copied()
                .chain(self.refresh.iter().filter_map(|r| r.at))
                .min()
                .unwrap_or_else(Instant::now);
            tokio::select! {
                biased;
                _ = self.signals.term.recv() => break,
                _ = self.signals.int.recv() => break,
                _ = self.signals.hup.recv() => {
                    if self.reload_config().await {
                        break;
                    }
                    continue;
                }
                _ = tick(&mut self.watchdog) => {
                    // Idle and waiting for the next deadline: the loop is alive.
                    self.sd_notify.watchdog();
                }
                _ = refresh::inbox_ready(&self.dns_notify) => {
                    if let Some(listener) = &self.dns_notify {
                        let templates = &self.engine.settings().templates;
                        refresh::schedule(listener, templates, &mut self.refresh, Instant::now());
                    }
                }
                changed = follow::changed(&mut self.files) => {
                    // No sooner than `interval` after the last look: a file
                    // rewritten in a loop must not become a cycle storm.
                    for i in changed {
                        let interval = self.engine.settings().templates[i].timing.interval;
                        self.due[i] = self.due[i].min(self.looked[i] + interval);
                    }
                }
                _ = refresh::counters_moved(&mut self.counters_watch) => {
                    // /status and /metrics read the NOTIFY counters live;
                    // the STATUS line follows within a second.
                    self.publish();
                }
                _ = sleep_until(next) => {}
            }
            // Whatever woke the loop, due work runs now: a flood of NOTIFYs
            // or watchdog ticks can never starve the poll.
            let now = Instant::now();
            let due: Vec<usize> = (0..self.due.len())
                .filter(|&i| self.due[i] <= now || self.refresh[i].at.is_some_and(|t| t <= now))
                .collect();
            if due.is_empty() {
                continue;
            }
            let asked = self.cycle(&due).await;
            if asked.stop {
                break;
            }
            if asked.reload && self.reload_config().await {
                break;
            }
        }
        self.sd_notify.stopping();
        let _ = self.stop_tx.send(true);
        command::kill_lingering();
        log::info!("stopping");
    }

    /// Runs one cycle over `due`, answering signals and feeding the watchdog
    /// meanwhile, then reschedules, publishes status and tells systemd.
    async fn cycle(&mut self, due: &[usize]) -> Asked {
        let started = Instant::now();
        let budget = cycle_budget(self.engine.settings(), due.len());
        let mut asked = Asked::default();
        let mut stop_deadline = None;
        let mut direct: HashMap<Name, Vec<SocketAddr>> = HashMap::new();
        let mut refreshed = Vec::new();
        for &i in due {
            self.looked[i] = started;
            if self.refresh[i].at.is_some_and(|t| t <= started) {
                let r = &mut self.refresh[i];
                direct.extend(r.direct.drain());
                r.at = None;
                r.last = Some(started);
                refreshed.push(i);
            }
        }
        // The cycle's clock is the tick it was scheduled for, not the moment
        // the loop got to it: an answer cached at one tick with TTL equal to
        // the interval is then stale at the next tick, every time, whatever
        // the wake-up jitter.
        let scheduled = due
            .iter()
            .map(|&i| self.due[i])
            .min()
            .unwrap_or(started)
            .min(started);
        let report = {
            let fut = self.engine.cycle(due, scheduled.into_std(), false, &direct);
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    report = &mut fut => break Some(report),
                    _ = self.signals.term.recv(), if !asked.stop => asked.stop = true,
                    _ = self.signals.int.recv(), if !asked.stop => asked.stop = true,
                    _ = self.signals.hup.recv() => asked.reload = true,
                    _ = tick(&mut self.watchdog) => {
                        if started.elapsed() <= budget {
                            self.sd_notify.watchdog();
                        } else {
                            log::error!("a cycle has run for {:?}, longer than its budget of {budget:?}: no more watchdog pings", started.elapsed());
                        }
                    }
                    _ = sleep_until(stop_deadline.unwrap_or_else(far_future)), if stop_deadline.is_some() => break None,
                }
                if asked.stop && stop_deadline.is_none() {
                    self.sd_notify.stopping();
                    let _ = self.stop_tx.send(true);
                    stop_deadline = Some(Instant::now() + STOP_DEADLINE);
                }
            }
        };
        if let Some(report) = report {
            self.reschedule(due, started, &report);
        }
        if !refreshed.is_empty() {
            log::debug!(
                "NOTIFY refresh of {} template(s) took {:?}",
                refreshed.len(),
                started.elapsed()
            );
        }
        self.publish();
        if let Some((listener, snapshots)) = self.status.take() {
            tokio::spawn(http::serve(listener, snapshots));
        }
        asked
    }

    fn reschedule(&mut self, due: &[usize], started: Instant, report: &Report) {
        let now = Instant::now();
        for &i in due {
            if self.due[i] > started {
                // Refreshed for a NOTIFY: the poll phase stays as it was.
                continue;
            }
            let interval = self.engine.settings().templates[i].timing.interval;
            let mut next = self.due[i].max(started - interval) + interval;
            while next <= now {
                next += interval;
            }
            // Nothing to look at before an answer goes stale, as long as
            // inotify tells of any change to dest or the zone file.
            if self.files.as_ref().is_some_and(|f| f.watched(i)) {
                if let Some(q) = self.engine.quiet_until(i, started.into_std()) {
                    next = next.max(Instant::from_std(q));
                }
            }
            self.due[i] = next;
        }
        for &(i, until) in &report.wake {
            let until = Instant::from_std(until);
            if until < self.due[i] {
                self.due[i] = until.max(now);
            }
        }
    }

    /// The engine's snapshot plus the NOTIFY listener's counters.
    fn snapshot(&self) -> Snapshot {
        let mut s = self.engine.snapshot();
        if let Some(n) = &self.dns_notify {
            s.notify = Some(n.counters.clone());
        }
        s
    }

    /// Publishes the snapshot, and the STATUS line when it changed. (READY=1
    /// is sent by the engine's ready hook, before the first reloads.)
    fn publish(&mut self) {
        let snapshot = self.snapshot();
        let line = snapshot.status_line();
        if line != self.last_status {
            self.sd_notify.status(&line);
            self.last_status = line;
        }
        self.snapshots.send_replace(Arc::new(snapshot));
    }

    /// SIGHUP: re-read the config and templates; a bad config is refused and
    /// the running one stays. A SIGHUP that arrives meanwhile reads the config
    /// again. Returns true if a stop was asked meanwhile.
    async fn reload_config(&mut self) -> bool {
        loop {
            self.sd_notify.reloading();
            log::info!("SIGHUP: re-reading {}", self.opts.config.display());
            let result = engine::load(&self.opts.config, self.opts.flags)
                .map_err(anyhow::Error::from)
                .and_then(|loaded| {
                    if self.opts.status_listen.is_none()
                        && loaded.settings.status != self.engine.settings().status
                    {
                        log::warn!(
                            "status_addr/status_port/nohttpd changes take effect at the next restart"
                        );
                    }
                    self.engine.replace_config(loaded)
                });
            if let Err(e) = result {
                log::error!("config reload refused, the running config stays: {e:#}");
                self.engine.config_refused(format!("{e:#}"));
                self.publish();
                self.ready_again();
                return false;
            }
            let n = self.engine.settings().templates.len();
            log::info!("config reloaded: {n} template(s)");
            self.due = vec![Instant::now(); n];
            self.looked = vec![Instant::now(); n];
            self.files = follow::Files::new(self.engine.settings());
            self.refresh = vec![Refresh::default(); n];
            match (&self.dns_notify, self.engine.settings().dns_notify.clone()) {
                (Some(state), Some(new)) => {
                    if new.listen != state.settings.borrow().listen {
                        log::warn!("[notify] listen changes take effect at the next restart");
                    }
                    state.settings.send_replace(Arc::new(new));
                }
                (None, Some(_)) | (Some(_), None) => {
                    log::warn!("adding or removing [notify] takes effect at the next restart");
                }
                (None, None) => {}
            }
            let all: Vec<usize> = (0..n).collect();
            let asked = self.cycle(&all).await;
            self.ready_again();
            if asked.stop || !asked.reload {
                return asked.stop;
            }
        }
    }

    /// READY=1 after RELOADING=1, whatever the outcome, so that
    /// `systemctl reload srvd` returns.
    fn ready_again(&mut self) {
        let snapshot = self.snapshot();
        self.last_status = snapshot.status_line();
        self.sd_notify.ready(&self.last_status);
    }
}

/// The longest a healthy cycle over `templates` can take: every lookup timing
/// out on every attempt, then every check and reload running to its timeout.
fn cycle_budget(settings: &Settings, templates: usize) -> Duration {
    let dns = match &settings.source {
        RecordSource::Dns(d) => d.timeout * (d.attempts as u32).max(1) * 3,
        RecordSource::ZoneFile(_) => Duration::from_secs(1),
    };
    let commands: Duration = settings
        .templates
        .iter()
        // A check and a reload; a runtime API change with its drain.
        .map(|t| {
            let runtime = match t.haproxy.socket {
                Some(_) => t.timing.timeout + t.haproxy.drain,
                None => Duration::ZERO,
            };
            (t.timing.timeout + command::GRACE) * 2 + runtime
        })
        .max()
        .unwrap_or_default()
        * templates as u32;
    dns + commands + Duration::from_secs(5)
}

async fn tick(watchdog: &mut Option<Interval>) {
    match watchdog {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(splay: Duration, dest: &std::path::Path) -> Settings {
        let text = format!(
            "src = \"t\"\ndest = \"{}\"\ndomain = \"_a._tcp.example.com\"\nzone_file = \"z\"\nsplay = \"{}ms\"\n",
            dest.display(),
            splay.as_millis()
        );
        crate::config::parse(&text, std::path::Path::new("/x/srvd.toml")).unwrap()
    }

    #[test]
    fn a_failed_bind_says_what_to_change() {
        use std::io::{Error, ErrorKind};
        let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let taken = bind_hint(at(8080), &Error::from(ErrorKind::AddrInUse));
        assert!(
            taken.contains("port 8080 in use by another program")
                && taken.contains("status_port")
                && taken.contains("--status-listen"),
            "{taken}"
        );
        let low = bind_hint(at(80), &Error::from(ErrorKind::PermissionDenied));
        assert!(
            low.contains("permission denied below 1024") && low.contains("CAP_NET_BIND_SERVICE"),
            "{low}"
        );
        assert_eq!(
            bind_hint(at(8080), &Error::from(ErrorKind::PermissionDenied)),
            "",
            "no guess when the cause is something else"
        );
        assert_eq!(
            bind_hint(at(8080), &Error::from(ErrorKind::AddrNotAvailable)),
            ""
        );
    }

    #[tokio::test(start_paused = true)]
    async fn splay_spreads_the_first_lookup_only_when_dest_exists() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.cfg");
        let existing = dir.path().join("existing.cfg");
        std::fs::write(&existing, "x").unwrap();
        let now = Instant::now();

        assert_eq!(first_due(&settings(Duration::ZERO, &existing)), [now]);
        assert_eq!(
            first_due(&settings(Duration::from_secs(30), &missing)),
            [now]
        );
        let spread: Vec<Duration> = (0..50)
            .map(|_| first_due(&settings(Duration::from_secs(30), &existing))[0] - now)
            .collect();
        assert!(spread.iter().all(|d| *d < Duration::from_secs(30)));
        let distinct: std::collections::BTreeSet<_> = spread.iter().collect();
        assert!(
            distinct.len() > 40,
            "random, not one fixed delay: {spread:?}"
        );
    }
}
