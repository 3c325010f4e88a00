//! The status endpoint, through the real binary: /status and /metrics,
//! `started`, and a thousand hostile clients (idle, slow, oversized,
//! garbage) that must not stall the poll loop or the watchdog.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::dns::{DnsServer, Mode};
use support::systemd::NotifySocket;
use support::*;

#[test]
fn status_and_metrics_over_http() {
    let dns = DnsServer::start();
    dns.set_srv(
        D,
        0,
        &[
            (1, 1, 3306, "db-001.example.com."),
            (1, 1, 3306, "db-002.example.com."),
        ],
    );
    let site = Site::new();
    let port = free_port();
    let text =
        basic_config(&site, &dns, &format!("status_port = {port}")).replace("nohttpd = true\n", "");
    site.write("srvd.toml", &text);
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    let addr = format!("127.0.0.1:{port}");
    assert!(wait_until(secs(3.0), || http_get(&addr, "/status")
        .1
        .contains("\"Ok\": true")));
    let (code, body) = http_get(&addr, "/status");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Ok"], true);
    assert!(v["LastUpdate"].as_str().unwrap().starts_with("20"));
    assert_eq!(v["templates"][0]["domains"][0]["records"], 2);
    assert_eq!(v["templates"][0]["changes"], 1);

    let (code, body) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains("srvd_records{domain=\"_mysql._tcp.example.com\"} 2\n"),
        "{body}"
    );
    assert!(
        body.contains("srvd_reloads_total{result=\"success\"} 1\n"),
        "{body}"
    );

    dns.set_mode(D, Mode::ServFail);
    assert!(wait_until(secs(3.0), || http_get(&addr, "/status")
        .1
        .contains("SERVFAIL")));
    assert!(wait_until(secs(3.0), || http_get(&addr, "/metrics")
        .1
        .contains("srvd_dns_errors_total{kind=\"servfail\"}")));
    assert_eq!(http_get(&addr, "/nope").0, 404);
    drop(d);
}

/// The port taken by another program: srvd runs on without the endpoint,
/// and the error names the port and what to change.
#[test]
fn a_taken_status_port_is_named_with_what_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    let text = basic_config(&site, &server, &format!("status_port = {port}"))
        .replace("nohttpd = true\n", "");
    site.write("srvd.toml", &text);
    let d = site.start();
    assert!(
        d.wait_log("running without a status endpoint", secs(5.0)),
        "{}",
        d.log()
    );
    let log = d.log();
    assert!(
        log.contains(&format!("127.0.0.1:{port}"))
            && log.contains("in use by another program? set status_port, or --status-listen"),
        "{log}"
    );
    assert!(
        wait_until(secs(5.0), || site.reloads() == 1),
        "srvd runs on\n{log}"
    );
}

/// `--status-listen` wins over status_port and nohttpd for one run.
#[test]
fn status_listen_overrides_the_config() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    basic_config(&site, &server, ""); // nohttpd = true
    let addr = format!("127.0.0.1:{}", free_port());
    let _d = site.start_with(&["--status-listen", &addr], &[]);
    assert!(wait_until(secs(5.0), || status_json(&addr)["Ok"] == true));
    let out = site.run(&["--no-status", "--status-listen", &addr, "--oneshot"]);
    assert_eq!(out.status.code(), Some(2), "the two contradict each other");
}

/// After a restart whose dest was already up to date, `LastUpdate` is when
/// srvd confirmed it current, not Go's zero time.
#[test]
fn last_update_after_a_restart_with_dest_up_to_date() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    let addr = config_with_status(&site, &server, "");
    let mut d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    d.stop();
    let before_restart = std::time::SystemTime::now();
    let d = site.start();
    assert!(
        wait_until(secs(5.0), || status_json(&addr)["Ok"] == true),
        "{}",
        d.log()
    );
    let v = status_json(&addr);
    let last = v["LastUpdate"].as_str().unwrap_or("").to_owned();
    assert!(!last.starts_with("0001"), "{v}");
    assert_eq!(site.reloads(), 1, "nothing was rewritten or reloaded");
    // Confirmed by the new run: not older than the restart (same format
    // as `started`, so the strings compare in time order).
    let started = v["started"].as_str().unwrap();
    assert!(last.as_str() >= started, "{last} < {started}");
    assert!(before_restart.elapsed().unwrap() < secs(60.0));
}

/// `started` in /status is when the daemon started, not when the snapshot was taken.
#[test]
fn status_started_is_the_start_time() {
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    let addr = config_with_status(&site, &server, "");
    let _d = site.start();
    assert!(wait_until(secs(5.0), || status_json(&addr)["ready"] == true));
    let first = status_json(&addr)["started"].clone();
    std::thread::sleep(secs(1.2));
    assert_eq!(status_json(&addr)["started"], first);
}

/// Lets this process hold more than the usual 1,024 descriptors.
fn raise_fd_limit() {
    let mut lim = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(65536);
            nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[test]
fn a_thousand_hostile_clients_do_not_stop_the_watchdog_or_the_poll() {
    raise_fd_limit();
    let server = DnsServer::start();
    two_backends(&server, 0);
    let site = Site::new();
    let addr = config_with_status(&site, &server, "");
    let notify = NotifySocket::new(&site);
    let d = site.start_notified(&notify, "1000000");
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    assert!(wait_until(secs(3.0), || status_json(&addr)["ready"] == true));

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut opened = 0;
    // 600 clients that connect and never send a byte.
    let idle: Vec<TcpStream> = (0..600)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    opened += idle.len();
    // One that sends 64 KiB without a line end and waits.
    let mut big = TcpStream::connect(&addr).unwrap();
    let _ = big.write_all(&vec![b'a'; 64 * 1024]);
    opened += 1;
    // 100 that send one byte every 200 ms, forever.
    let slow: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    opened += slow.len();
    {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut slow = slow;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for s in &mut slow {
                    let _ = s.set_nonblocking(true);
                    let _ = s.write(b"G");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
    }
    // 50 that send a 1 MiB request head, 50 that send garbage, 200 ordinary GETs.
    for kind in 0..300 {
        let addr = addr.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(&addr) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                let _ = s.set_read_timeout(Some(Duration::from_secs(6)));
                let request: Vec<u8> = match kind {
                    0..50 => {
                        let mut r = b"GET /status HTTP/1.1\r\nX: ".to_vec();
                        r.extend(std::iter::repeat_n(b'a', 1 << 20));
                        r
                    }
                    50..100 => (0..4096u32)
                        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                        .collect(),
                    _ => b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                };
                let _ = s.write_all(&request);
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            }
        }));
    }
    opened += 300;
    assert!(opened >= 1000, "{opened} clients");

    // Meanwhile: five changes in DNS, each followed within two seconds.
    let started = Instant::now();
    for round in 0..5 {
        server.set_srv(
            D,
            0,
            &[(10, 5, 3306, &format!("db-{round:03}.example.com."))],
        );
        assert!(
            wait_until(secs(2.0), || site
                .read("haproxy.cfg")
                .contains(&format!("db-{round:03}"))),
            "round {round}: the poll loop fell behind\n{}",
            d.log()
        );
        std::thread::sleep(secs(0.5));
    }
    let abused = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(idle);
    drop(big);
    for t in threads {
        let _ = t.join();
    }
    // The watchdog (WATCHDOG_USEC = 1 s) was pinged all along.
    let times: Vec<Instant> = notify
        .times("WATCHDOG=1")
        .into_iter()
        .filter(|t| *t >= started)
        .collect();
    assert!(
        times.len() as f64 >= abused.as_secs_f64() / 0.5 * 0.7,
        "{} pings in {abused:?}",
        times.len()
    );
    let mut last = started;
    for t in &times {
        assert!(
            t.duration_since(last) < secs(1.0),
            "a gap of {:?} between pings",
            t.duration_since(last)
        );
        last = *t;
    }
    // And the endpoint serves again once they are gone.
    assert!(wait_until(secs(8.0), || http_get(&addr, "/status").0 == 200));
    assert!(!d.log().contains("panicked"));
}
