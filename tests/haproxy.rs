//! HAProxy's runtime API and master CLI, against a real HAProxy in
//! master-worker mode: server changes applied with no reload, the running
//! servers equal to the file after every change, sessions to servers that stay
//! untouched, sessions to a removed server closed after the drain, and
//! reloads through the master CLI with a verdict.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use srvd::haproxy::master::{self, Verdict};
use srvd::haproxy::runtime;
use srvd::haproxy::servers::{Change, Layout, diff};
use srvd::haproxy::socket::CliAddress;
use support::haproxy::{Backend, Haproxy, Session};
use support::{free_port, wait_until};

const LIMIT: Duration = Duration::from_secs(5);

fn config(front: u16, servers: &str) -> String {
    format!(
        "global\n  stats socket {{admin}} level admin\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  retries 3\n  option redispatch\n\
         frontend fe\n  bind 127.0.0.1:{front}\n  default_backend be\n\
         backend be\n  balance roundrobin\n{servers}"
    )
}

fn server_lines(pool: &[Backend], chosen: &[(usize, u16, bool)]) -> String {
    chosen
        .iter()
        .map(|(i, w, backup)| {
            format!(
                "  server {} 127.0.0.1:{} weight {w}{}\n",
                pool[*i].name,
                pool[*i].port,
                if *backup { " backup" } else { "" }
            )
        })
        .collect()
}

fn runtime_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends the runtime-API script for CHANGES to the socket at ADDR, on RT,
/// draining removed servers for up to DRAIN.
fn run_script(
    rt: &tokio::runtime::Runtime,
    addr: &CliAddress,
    changes: &[Change],
    drain: Duration,
) -> Result<runtime::Applied, runtime::RuntimeError> {
    rt.block_on(runtime::apply(
        addr,
        &runtime::script(changes),
        LIMIT,
        drain,
    ))
}

/// Applies the change from `old` to `new` through the stats socket and
/// checks the running servers against `new`.
fn apply(rt: &tokio::runtime::Runtime, h: &Haproxy, old: &str, new: &str, drain: Duration) {
    let (old_l, new_l) = (Layout::parse(old), Layout::parse(new));
    let changes = diff(&old_l, &new_l).unwrap_or_else(|e| panic!("{e}\n{old}\n{new}"));
    let addr = CliAddress::Unix(h.admin.clone());
    run_script(rt, &addr, &changes, drain).unwrap_or_else(|e| panic!("{e}: {changes:?}"));
    let be = new_l.backend("be").unwrap();
    let m = rt.block_on(runtime::verify(&addr, be, LIMIT)).unwrap();
    assert_eq!(m, None, "after {changes:?}");
    h.write_cfg(new);
}

/// A client opening a connection through HAProxy every few milliseconds,
/// counting the ones that did not reach a backend.
struct Client {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Client {
    fn start(port: u16) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match Session::open(port) {
                    Some(_) => o.fetch_add(1, Ordering::SeqCst),
                    None => f.fetch_add(1, Ordering::SeqCst),
                };
                thread::sleep(Duration::from_millis(20));
            }
        });
        Client {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

#[test]
fn server_changes_apply_through_the_runtime_api_without_a_reload() {
    let pool: Vec<Backend> = (1..=6)
        .map(|i| Backend::start(&format!("db-00{i}")))
        .collect();
    let front = free_port();
    // db-001 stays from start to end, active, with one long-lived session.
    let mut current = config(
        front,
        &server_lines(&pool, &[(0, 10, false), (1, 10, false)]),
    );
    let h = Haproxy::start(&current);
    let worker = h.worker_pid();
    let rt = runtime_rt();
    let mut pinned = None;
    assert!(wait_until(Duration::from_secs(10), || {
        pinned = Session::open(front).filter(|s| s.server == "db-001");
        pinned.is_some()
    }));
    let mut pinned = pinned.unwrap();
    let client = Client::start(front);
    // A fixed walk of 200 steps through sets of servers: added, removed,
    // weights, backup.
    let mut seed = 7u32;
    let mut applied = 0;
    for step in 0..200 {
        let mut chosen = vec![(0usize, 10u16, false)];
        for i in 1..pool.len() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if (seed >> 16) % 3 != 0 {
                let weight = [1u16, 5, 10, 100, 256][((seed >> 8) % 5) as usize];
                chosen.push((i, weight, (seed >> 20) % 4 == 0));
            }
        }
        let next = config(front, &server_lines(&pool, &chosen));
        if next == current {
            continue;
        }
        // A leaving server drains first: a connection HAProxy just sent
        // there may finish (a drain of zero would cut it).
        apply(&rt, &h, &current, &next, Duration::from_secs(1));
        applied += 1;
        current = next;
        assert!(
            pinned.alive(),
            "the session to db-001 was cut at step {step}"
        );
    }
    let (ok, failed) = client.finish();
    assert!(
        applied >= 150,
        "only {applied} of 200 steps changed the servers"
    );
    assert!(ok > 0, "the client made no connection");
    assert_eq!(
        failed,
        0,
        "{failed} of {} client connections failed",
        ok + failed
    );
    assert_eq!(h.reloads(), (0, 0), "HAProxy reloaded");
    assert_eq!(h.worker_pid(), worker, "the worker changed");
    // The file srvd leaves is what a restarted HAProxy would run.
    assert!(
        std::process::Command::new("haproxy")
            .args(["-c", "-q", "-f"])
            .arg(&h.cfg)
            .status()
            .unwrap()
            .success()
    );
}

/// HAProxy with db-001 and db-002, and the config without db-002.
struct TwoServers {
    _pool: [Backend; 2],
    front: u16,
    both: String,
    only_a: String,
    haproxy: Haproxy,
}

impl TwoServers {
    fn start() -> TwoServers {
        let pool = [Backend::start("db-001"), Backend::start("db-002")];
        let front = free_port();
        let both = config(
            front,
            &server_lines(&pool, &[(0, 10, false), (1, 10, false)]),
        );
        let only_a = both
            .lines()
            .filter(|l| !l.contains("server db-002"))
            .map(|l| format!("{l}\n"))
            .collect();
        let haproxy = Haproxy::start(&both);
        TwoServers {
            _pool: pool,
            front,
            both,
            only_a,
            haproxy,
        }
    }
}

#[test]
fn a_removed_server_drains_then_its_sessions_are_closed() {
    let two = TwoServers::start();
    let (front, both, only_a, h, rt) = (
        two.front,
        &two.both,
        &two.only_a,
        &two.haproxy,
        runtime_rt(),
    );
    let mut on_b = None;
    assert!(wait_until(Duration::from_secs(10), || {
        on_b = Session::open(front).filter(|s| s.server == "db-002");
        on_b.is_some()
    }));
    let mut on_b = on_b.unwrap();
    let drain = Duration::from_millis(1500);
    let started = Instant::now();
    let addr = CliAddress::Unix(h.admin.clone());
    let changes = diff(&Layout::parse(both), &Layout::parse(only_a)).unwrap();
    let applied = run_script(&rt, &addr, &changes, drain).unwrap();
    // The session was busy, so the drain lasted its whole time, then the
    // session was shut down.
    assert!(applied.drained >= drain, "{applied:?}");
    assert!(on_b.closed_within(Duration::from_secs(1)));
    assert!(started.elapsed() < drain + Duration::from_secs(2));
    let new_be = Layout::parse(only_a);
    assert_eq!(
        rt.block_on(runtime::verify(&addr, new_be.backend("be").unwrap(), LIMIT))
            .unwrap(),
        None
    );
    // New connections all go to db-001.
    for _ in 0..5 {
        assert_eq!(Session::open(front).unwrap().server, "db-001");
    }
}

#[test]
fn a_server_without_sessions_leaves_without_waiting_for_the_drain() {
    let two = TwoServers::start();
    let (both, only_a, h, rt) = (&two.both, &two.only_a, &two.haproxy, runtime_rt());
    let addr = CliAddress::Unix(h.admin.clone());
    let changes = diff(&Layout::parse(both), &Layout::parse(only_a)).unwrap();
    let applied = run_script(&rt, &addr, &changes, Duration::from_secs(30)).unwrap();
    assert!(applied.drained < Duration::from_secs(5), "{applied:?}");
}

#[test]
fn a_keyword_the_runtime_refuses_is_an_error_naming_the_command() {
    let pool = [Backend::start("db-001")];
    let front = free_port();
    let old = config(front, &server_lines(&pool, &[(0, 10, false)]));
    let h = Haproxy::start(&old);
    let rt = runtime_rt();
    // `foo-bar` is no server keyword: the runtime API refuses the whole line.
    let new = format!("{old}  server db-009 127.0.0.1:1 foo-bar\n");
    let changes = diff(&Layout::parse(&old), &Layout::parse(&new)).unwrap();
    let addr = CliAddress::Unix(h.admin.clone());
    let e = run_script(&rt, &addr, &changes, Duration::ZERO).unwrap_err();
    assert_eq!(e.reason, "refused");
    assert!(
        e.detail.contains("add server be/db-009") && e.detail.contains("foo-bar"),
        "{e}"
    );
    // A socket nobody listens on is a socket error, at once.
    let gone = CliAddress::Unix(h.dir.path().join("gone.sock"));
    let e = run_script(&rt, &gone, &changes, Duration::ZERO).unwrap_err();
    assert_eq!(e.reason, "socket");
}

#[test]
fn a_reload_through_the_master_cli_reports_its_verdict() {
    let pool = [Backend::start("db-001")];
    let front = free_port();
    let cfg = config(front, &server_lines(&pool, &[(0, 10, false)]));
    let h = Haproxy::start(&cfg);
    let rt = runtime_rt();
    let addr = CliAddress::Unix(h.master.clone());
    let before = h.worker_pid();
    let v = rt
        .block_on(master::reload(&addr, Duration::from_secs(10)))
        .unwrap();
    let Verdict::Reloaded { worker } = v else {
        panic!("{v:?}")
    };
    assert_ne!(worker, before);
    assert_eq!(h.reloads(), (1, 0));
    assert!(Session::open(front).is_some());

    // A config that `haproxy -c` accepts but the reload cannot start: it
    // binds a port another process holds.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    let bad = cfg.replace(
        &format!("bind 127.0.0.1:{front}"),
        &format!("bind 127.0.0.1:{front}\n  bind 127.0.0.1:{held}"),
    );
    h.write_cfg(&bad);
    let v = rt
        .block_on(master::reload(&addr, Duration::from_secs(10)))
        .unwrap();
    assert!(matches!(v, Verdict::Failed(_)), "{v:?}");
    assert_eq!(h.reloads(), (2, 1));
    // The old worker goes on serving.
    assert!(Session::open(front).is_some());

    // A socket that is not a master CLI gives no verdict.
    let admin = CliAddress::Unix(h.admin.clone());
    let e = rt
        .block_on(master::reload(&admin, Duration::from_secs(2)))
        .unwrap_err();
    assert!(e.to_string().contains("master CLI"), "{e}");
}

/// The whole chain with srvd as a daemon: records in a zone file, a template
/// of server lines with weights and backups, HAProxy in master-worker mode
/// on srvd's dest with its stats socket and master CLI.
mod daemon {
    use super::*;
    use support::Site;

    const TEMPLATE: &str = "global\n  stats socket {admin} level admin\n\
        defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  retries 3\n  option redispatch\n\
        frontend fe\n  bind 127.0.0.1:{front}\n  default_backend be\n\
        backend be\n  balance roundrobin{extra}\n\
        {%- for s in srvs %}\n  server {{ s.host }}-{{ s.port }} 127.0.0.1:{{ s.port }} weight {{ s.weight }}{% if s.priority > srvs[0].priority %} backup{% endif %}\n{%- endfor %}\n";

    struct Stack {
        site: Site,
        pool: Vec<Backend>,
        haproxy: Haproxy,
        srvd: support::Daemon,
    }

    fn zone(records: &[(u16, u16, u16)]) -> String {
        let mut z = String::from(
            "$ORIGIN example.com.\n$TTL 1\n@ IN SOA ns1 hostmaster 1 3600 600 86400 1\n@ IN NS ns1\nns1 IN A 127.0.0.1\n",
        );
        for (prio, weight, port) in records {
            z.push_str(&format!("_mysql._tcp IN SRV {prio} {weight} {port} db\n"));
        }
        z
    }

    fn template(site: &Site, front: u16, extra: &str) -> String {
        TEMPLATE
            .replace("{admin}", &site.path("admin.sock").to_string_lossy())
            .replace("{front}", &front.to_string())
            .replace("{extra}", extra)
    }

    /// Renders dest once, starts HAProxy on it, then srvd.
    fn stack(first: &[(u16, u16, u16)], config_extra: &str) -> Stack {
        let pool: Vec<Backend> = (1..=4)
            .map(|i| Backend::start(&format!("db-00{i}")))
            .collect();
        let site = Site::new();
        let front = free_port();
        site.write("haproxy.cfg.tmpl", &template(&site, front, ""));
        let records: Vec<(u16, u16, u16)> = first
            .iter()
            .map(|(p, w, i)| (*p, *w, pool[*i as usize].port))
            .collect();
        site.write("example.com.zone", &zone(&records));
        site.write(
            "srvd.toml",
            &format!(
                "src = \"haproxy.cfg.tmpl\"\ndest = \"haproxy.cfg\"\ndomain = \"_mysql._tcp.example.com\"\n\
                 zone_file = \"example.com.zone\"\ninterval = \"100ms\"\ntimeout = \"5s\"\nnohttpd = true\n\
                 check_cmd = \"haproxy -c -f {{{{ src }}}}\"\n\
                 haproxy_socket = \"admin.sock\"\nhaproxy_master_socket = \"master.sock\"\n{config_extra}"
            ),
        );
        let out = site.run(&["render"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        site.write("haproxy.cfg", &String::from_utf8_lossy(&out.stdout));
        let dir = tempfile::tempdir().unwrap();
        let haproxy = Haproxy::run(
            dir,
            site.path("haproxy.cfg"),
            site.path("admin.sock"),
            site.path("master.sock"),
        );
        let srvd = site.start();
        assert!(
            srvd.wait_log("ready", Duration::from_secs(10)),
            "{}",
            srvd.log()
        );
        Stack {
            site,
            pool,
            haproxy,
            srvd,
        }
    }

    impl Stack {
        fn set_records(&self, records: &[(u16, u16, usize)]) {
            let records: Vec<(u16, u16, u16)> = records
                .iter()
                .map(|(p, w, i)| (*p, *w, self.pool[*i].port))
                .collect();
            // Replaced by rename, as the docs say a zone file should be.
            let tmp = self.site.write("example.com.zone.tmp", &zone(&records));
            std::fs::rename(tmp, self.site.path("example.com.zone")).unwrap();
        }

        /// Waits until dest's server lines are exactly these records'.
        fn dest_has(&self, records: &[(u16, u16, usize)]) -> bool {
            let top = records.iter().map(|r| r.0).min().unwrap_or(0);
            let mut want: Vec<String> = records
                .iter()
                .map(|(prio, weight, i)| {
                    format!(
                        "127.0.0.1:{} weight {weight}{}",
                        self.pool[*i].port,
                        if *prio > top { " backup" } else { "" }
                    )
                })
                .collect();
            want.sort();
            wait_until(Duration::from_secs(10), || {
                let text = self.site.read("haproxy.cfg");
                let mut have: Vec<String> = text
                    .lines()
                    .filter(|l| l.trim_start().starts_with("server "))
                    .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
                    .collect();
                have.sort();
                have == want
            })
        }

        /// Waits until HAProxy runs what dest says.
        fn haproxy_runs_dest(&self) -> bool {
            let rt = runtime_rt();
            let addr = CliAddress::Unix(self.haproxy.admin.clone());
            wait_until(Duration::from_secs(10), || {
                let layout = Layout::parse(&self.site.read("haproxy.cfg"));
                let be = layout.backend("be").unwrap();
                rt.block_on(runtime::verify(&addr, be, LIMIT)).ok() == Some(None)
            })
        }

        fn haproxy_runs_dest_now(&self) -> bool {
            let rt = runtime_rt();
            let addr = CliAddress::Unix(self.haproxy.admin.clone());
            let layout = Layout::parse(&self.site.read("haproxy.cfg"));
            let be = layout.backend("be").unwrap();
            rt.block_on(runtime::verify(&addr, be, LIMIT)).ok() == Some(None)
        }

        fn log_lines(&self, name: &str) -> u64 {
            self.srvd.log().lines().filter(|l| l.contains(name)).count() as u64
        }
    }

    #[test]
    fn record_changes_reach_haproxy_with_no_reload() {
        let s = stack(&[(10, 10, 0), (10, 10, 1)], "drain = \"1s\"\n");
        let worker = s.haproxy.worker_pid();
        let front = {
            let text = s.site.read("haproxy.cfg");
            let bind = text
                .lines()
                .find(|l| l.contains("bind 127.0.0.1:"))
                .unwrap();
            bind.rsplit(':')
                .next()
                .unwrap()
                .trim()
                .parse::<u16>()
                .unwrap()
        };
        let client = Client::start(front);
        let steps: &[&[(u16, u16, usize)]] = &[
            &[(10, 10, 0), (10, 10, 1), (10, 10, 2)],
            &[(10, 10, 0), (10, 50, 1), (10, 10, 2)],
            &[(10, 10, 0), (10, 50, 1), (20, 10, 2)],
            &[(10, 10, 0), (20, 10, 2), (10, 0, 3)],
            &[(10, 10, 0), (10, 10, 3)],
            &[(10, 100, 0), (10, 10, 1), (10, 10, 2), (10, 10, 3)],
        ];
        for step in steps {
            s.set_records(step);
            assert!(
                s.dest_has(step),
                "dest never followed {step:?}:\n{}",
                s.srvd.log()
            );
            assert!(
                s.haproxy_runs_dest(),
                "HAProxy does not run dest after {step:?}:\n{}",
                s.srvd.log()
            );
        }
        let (ok, failed) = client.finish();
        assert!(ok > 0);
        assert_eq!(
            failed,
            0,
            "{failed} of {} client connections failed",
            ok + failed
        );
        assert_eq!(
            s.haproxy.reloads(),
            (0, 0),
            "HAProxy reloaded:\n{}",
            s.srvd.log()
        );
        assert_eq!(s.haproxy.worker_pid(), worker);
        assert_eq!(
            s.log_lines("runtime: "),
            steps.len() as u64,
            "{}",
            s.srvd.log()
        );
    }

    #[test]
    fn a_change_beyond_servers_reloads_through_the_master_cli() {
        let s = stack(&[(10, 10, 0)], "");
        // A new balance line: no runtime command can do that.
        let text = s
            .site
            .read("haproxy.cfg.tmpl")
            .replace("balance roundrobin", "balance leastconn");
        s.site.write("haproxy.cfg.tmpl", &text);
        s.srvd.signal(nix::sys::signal::Signal::SIGHUP);
        assert!(
            wait_until(Duration::from_secs(10), || s.haproxy.reloads() == (1, 0)),
            "no reload through the master CLI:\n{}",
            s.srvd.log()
        );
        assert!(s.srvd.wait_log(
            "HAProxy confirmed the reload over the master CLI",
            Duration::from_secs(5)
        ));
        assert!(s.srvd.wait_log(
            "the runtime API cannot apply this change (lines)",
            Duration::from_secs(5)
        ));
        assert!(s.haproxy_runs_dest());
    }

    #[test]
    fn a_reload_haproxy_refuses_is_rolled_back() {
        let s = stack(&[(10, 10, 0)], "");
        let before = s.site.read("haproxy.cfg");
        // Passes `haproxy -c`, fails at reload: a port another process holds.
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let held = holder.local_addr().unwrap().port();
        let text = s.site.read("haproxy.cfg.tmpl").replace(
            "default_backend be",
            &format!("bind 127.0.0.1:{held}\n  default_backend be"),
        );
        s.site.write("haproxy.cfg.tmpl", &text);
        s.srvd.signal(nix::sys::signal::Signal::SIGHUP);
        assert!(
            s.srvd.wait_log(
                "HAProxy refused the new configuration",
                Duration::from_secs(15)
            ),
            "{}",
            s.srvd.log()
        );
        assert!(
            s.srvd.wait_log("rolled back", Duration::from_secs(5)),
            "{}",
            s.srvd.log()
        );
        assert_eq!(
            s.site.read("haproxy.cfg"),
            before,
            "dest was not rolled back"
        );
        assert_eq!(s.haproxy.reloads(), (1, 1));
    }

    #[test]
    fn a_socket_that_does_not_answer_falls_back_to_a_reload() {
        let s = stack(&[(10, 10, 0)], "");
        // Point srvd at a socket nobody serves.
        let conf = s.site.read("srvd.toml").replace(
            "haproxy_socket = \"admin.sock\"",
            "haproxy_socket = \"nobody.sock\"",
        );
        s.site.write("srvd.toml", &conf);
        s.srvd.signal(nix::sys::signal::Signal::SIGHUP);
        assert!(s.srvd.wait_log("config", Duration::from_secs(5)));
        s.set_records(&[(10, 10, 0), (10, 10, 1)]);
        assert!(s.dest_has(&[(10, 10, 0), (10, 10, 1)]));
        assert!(
            wait_until(Duration::from_secs(10), || s.haproxy.reloads() == (1, 0)),
            "{}",
            s.srvd.log()
        );
        assert!(s.srvd.log().contains("(socket)"), "{}", s.srvd.log());
        assert!(s.haproxy_runs_dest());
    }

    #[test]
    fn servers_changed_behind_srvds_back_are_reconciled_at_start() {
        let mut s = stack(&[(10, 10, 0), (10, 10, 1)], "");
        s.srvd.stop();
        // Someone changes a weight by hand while srvd is down.
        let cmd = format!("set server be/db.example.com-{} weight 77", s.pool[0].port);
        assert_eq!(s.haproxy.ask(&cmd).trim(), "");
        assert!(!s.haproxy_runs_dest_now());
        s.srvd = s.site.start();
        assert!(
            s.srvd.wait_log(
                "HAProxy does not run dest's servers",
                Duration::from_secs(15)
            ),
            "{}",
            s.srvd.log()
        );
        assert!(wait_until(Duration::from_secs(10), || s.haproxy.reloads() == (1, 0)));
        assert!(s.haproxy_runs_dest());
    }
}
