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
use srvd::haproxy::servers::{Layout, diff};
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

/// Applies the change from `old` to `new` through the stats socket and
/// checks the running servers against `new`.
fn apply(rt: &tokio::runtime::Runtime, h: &Haproxy, old: &str, new: &str, drain: Duration) {
    let (old_l, new_l) = (Layout::parse(old), Layout::parse(new));
    let changes = diff(&old_l, &new_l).unwrap_or_else(|e| panic!("{e}\n{old}\n{new}"));
    let addr = CliAddress::Unix(h.admin.clone());
    let script = runtime::script(&changes);
    rt.block_on(runtime::apply(&addr, &script, LIMIT, drain))
        .unwrap_or_else(|e| panic!("{e}: {changes:?}"));
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
    // A fixed walk through sets of servers: added, removed, weights, backup.
    let mut seed = 7u32;
    for step in 0..40 {
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
        apply(&rt, &h, &current, &next, Duration::ZERO);
        current = next;
        assert!(
            pinned.alive(),
            "the session to db-001 was cut at step {step}"
        );
    }
    let (ok, failed) = client.finish();
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

#[test]
fn a_removed_server_drains_then_its_sessions_are_closed() {
    let pool = [Backend::start("db-001"), Backend::start("db-002")];
    let front = free_port();
    let both = config(
        front,
        &server_lines(&pool, &[(0, 10, false), (1, 10, false)]),
    );
    let h = Haproxy::start(&both);
    let rt = runtime_rt();
    let mut on_b = None;
    assert!(wait_until(Duration::from_secs(10), || {
        on_b = Session::open(front).filter(|s| s.server == "db-002");
        on_b.is_some()
    }));
    let mut on_b = on_b.unwrap();
    let only_a: String = both
        .lines()
        .filter(|l| !l.contains("server db-002"))
        .map(|l| format!("{l}\n"))
        .collect();
    let drain = Duration::from_millis(1500);
    let started = Instant::now();
    let addr = CliAddress::Unix(h.admin.clone());
    let changes = diff(&Layout::parse(&both), &Layout::parse(&only_a)).unwrap();
    let applied = rt
        .block_on(runtime::apply(
            &addr,
            &runtime::script(&changes),
            LIMIT,
            drain,
        ))
        .unwrap();
    // The session was busy, so the drain lasted its whole time, then the
    // session was shut down.
    assert!(applied.drained >= drain, "{applied:?}");
    assert!(on_b.closed_within(Duration::from_secs(1)));
    assert!(started.elapsed() < drain + Duration::from_secs(2));
    let new_be = Layout::parse(&only_a);
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
    let pool = [Backend::start("db-001"), Backend::start("db-002")];
    let front = free_port();
    let both = config(
        front,
        &server_lines(&pool, &[(0, 10, false), (1, 10, false)]),
    );
    let h = Haproxy::start(&both);
    let rt = runtime_rt();
    let only_a: String = both
        .lines()
        .filter(|l| !l.contains("server db-002"))
        .map(|l| format!("{l}\n"))
        .collect();
    let addr = CliAddress::Unix(h.admin.clone());
    let changes = diff(&Layout::parse(&both), &Layout::parse(&only_a)).unwrap();
    let applied = rt
        .block_on(runtime::apply(
            &addr,
            &runtime::script(&changes),
            LIMIT,
            Duration::from_secs(30),
        ))
        .unwrap();
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
    let e = rt
        .block_on(runtime::apply(
            &addr,
            &runtime::script(&changes),
            LIMIT,
            Duration::ZERO,
        ))
        .unwrap_err();
    assert_eq!(e.reason, "refused");
    assert!(
        e.detail.contains("add server be/db-009") && e.detail.contains("foo-bar"),
        "{e}"
    );
    // A socket nobody listens on is a socket error, at once.
    let gone = CliAddress::Unix(h.dir.path().join("gone.sock"));
    let e = rt
        .block_on(runtime::apply(
            &gone,
            &runtime::script(&changes),
            LIMIT,
            Duration::ZERO,
        ))
        .unwrap_err();
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
