//! Memory over many cycles, through the real binary: records that change
//! every cycle, a check and a reload each time, /metrics read along the
//! way. The long run (100,000 cycles) is tests/reliability/long.sh.

mod support;

use std::time::Instant;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::dns::DnsServer;
use support::*;

/// Runs srvd for `cycles` cycles with records that change every cycle, a
/// check and a reload each time, and /metrics read along the way. Returns
/// (RSS after 1,000 cycles, RSS at the end, cycles, changes applied), in KiB.
fn soak(cycles: u64) -> (u64, u64, u64, u64) {
    let dns = DnsServer::start();
    dns.set_changing(D);
    let site = Site::new();
    let port = free_port();
    site.write("haproxy.cfg.tmpl", TEMPLATE);
    site.write(
        "srvd.toml",
        &format!(
            "src = \"haproxy.cfg.tmpl\"\ndest = \"haproxy.cfg\"\ndomain = \"_mysql._tcp.example.com\"\n\
             nameservers = [{}]\ndns_timeout = \"1s\"\ninterval = \"1ms\"\n\
             check_cmd = \"test -s {{{{ src }}}}\"\nreload_cmd = \"true\"\nstatus_port = {port}\n",
            dns.toml_addr()
        ),
    );
    let addr = format!("127.0.0.1:{port}");
    // Debug logging would be megabytes a second: warnings only, to a file.
    let log = std::fs::File::create(site.path("srvd.log")).unwrap();
    let mut child = std::process::Command::new(SRVD)
        .arg("--config")
        .arg(site.path("srvd.toml"))
        .args(["--log-level", "warn"])
        .env_remove("NOTIFY_SOCKET")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    let cycles_now = || metric(&addr, "srvd_cycles_total").unwrap_or(0.0) as u64;
    let ok = wait_until(secs(60.0), || cycles_now() >= 1_000);
    if !ok {
        let _ = child.kill();
    }
    assert!(ok, "{}", site.read("srvd.log"));
    let early = rss_kib(pid);
    let limit = secs(60.0 + cycles as f64 / 50.0);
    let t = Instant::now();
    while cycles_now() < cycles {
        if t.elapsed() > limit || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!(
                "{} cycles in {:?}\n{}",
                cycles_now(),
                t.elapsed(),
                site.read("srvd.log")
            );
        }
        std::thread::sleep(secs(0.5));
    }
    let late = rss_kib(pid);
    let done = cycles_now();
    let changes = metric(&addr, "srvd_reloads_total{result=\"success\"}").unwrap_or(0.0) as u64;
    let _ = kill(pid, Signal::SIGTERM);
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(0), "{}", site.read("srvd.log"));
    // A soak that ran no cycles would measure nothing.
    assert!(done >= cycles.max(1_000), "{done} cycles, {cycles} asked");
    (early, late, done, changes)
}

#[test]
fn memory_stays_flat_over_3000_cycles_of_changing_records() {
    let (early, late, cycles, changes) = soak(3_000);
    eprintln!(
        "soak: {cycles} cycles, {changes} changes, RSS {early} KiB after 1,000, {late} KiB at the end"
    );
    assert!(
        changes * 10 >= cycles * 9,
        "records changed every cycle: {changes} changes in {cycles} cycles"
    );
    assert!(
        late <= early + 1024,
        "RSS grew from {early} KiB to {late} KiB"
    );
}

/// The long soak, run by tests/reliability/long.sh:
/// `SRVD_SOAK_CYCLES=100000 cargo test --release --test soak -- --ignored long_soak`.
#[test]
#[ignore = "long run: tests/reliability/long.sh"]
fn long_soak() {
    let cycles = std::env::var("SRVD_SOAK_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100_000);
    let (early, late, done, changes) = soak(cycles);
    println!("SOAK cycles={done} changes={changes} rss_after_1000_kib={early} rss_end_kib={late}");
    assert!(
        changes * 10 >= done * 9,
        "{changes} changes in {done} cycles"
    );
    assert!(
        late <= early + 1024,
        "RSS grew from {early} KiB to {late} KiB"
    );
}
