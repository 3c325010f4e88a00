//! The systemd contract, in process: the notify protocol on a real Unix
//! datagram socket (READY, STATUS, WATCHDOG, RELOADING, STOPPING, in order),
//! the watchdog going quiet when the loop is wedged, SIGHUP with a good and a
//! bad config, SIGTERM, the status endpoint and socket activation.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::dns::{DnsServer, Mode};
use support::*;

const D: &str = "_mysql._tcp.example.com.";

/// A NOTIFY_SOCKET that collects what srvd sends.
struct NotifySocket {
    sock: UnixDatagram,
    path: std::path::PathBuf,
    seen: Vec<String>,
}

impl NotifySocket {
    fn new(site: &Site) -> Self {
        let path = site.path("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        NotifySocket {
            sock,
            path,
            seen: Vec::new(),
        }
    }

    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.sock.recv(&mut buf) {
            self.seen
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }

    /// Waits for a message containing `pat`; returns its index.
    fn wait_for(&mut self, pat: &str, limit: Duration) -> Option<usize> {
        wait_until(limit, || {
            self.drain();
            self.count(pat) > 0
        });
        self.seen.iter().position(|m| m.contains(pat))
    }

    fn position_after(&self, start: usize, pat: &str) -> Option<usize> {
        self.seen[start..]
            .iter()
            .position(|m| m.contains(pat))
            .map(|i| i + start)
    }

    fn count(&self, pat: &str) -> usize {
        self.seen.iter().filter(|m| m.contains(pat)).count()
    }

    /// Waits until `n` messages contain `pat`.
    fn wait_count(&mut self, pat: &str, n: usize, limit: Duration) -> bool {
        wait_until(limit, || {
            self.drain();
            self.count(pat) >= n
        })
    }
}

fn start_notified(site: &Site, notify: &NotifySocket, watchdog_usec: &str) -> Daemon {
    site.start_with(
        &[],
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("WATCHDOG_USEC", watchdog_usec),
        ],
    )
}

#[test]
fn notify_protocol_in_order_ready_status_watchdog_reloading_stopping() {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    basic_config(&site, &dns, "");
    let mut notify = NotifySocket::new(&site);
    let mut d = start_notified(&site, &notify, "400000");

    let ready = notify.wait_for("READY=1", secs(5.0)).expect("READY=1");
    assert!(
        notify.seen[ready].contains("STATUS=1 template ok; 1 target; last change "),
        "{:?}",
        notify.seen
    );
    assert!(
        site.read("haproxy.cfg").contains("db-001"),
        "READY only after dest is rendered"
    );
    // At most one ping per half period (200 ms)...
    notify.drain();
    let base = notify.count("WATCHDOG=1");
    let t = Instant::now();
    std::thread::sleep(secs(1.2));
    notify.drain();
    let pings = notify.count("WATCHDOG=1") - base;
    let most = (t.elapsed().as_secs_f64() / 0.2).ceil() as usize + 2;
    assert!(
        pings <= most,
        "{pings} pings in {:?} with WATCHDOG_USEC=400ms",
        t.elapsed()
    );
    // ... and they keep coming (waited for, so a slow machine passes).
    assert!(
        notify.wait_count("WATCHDOG=1", base + 3, secs(5.0)),
        "{pings} pings"
    );

    d.signal(Signal::SIGHUP);
    let reloading = notify
        .wait_for("RELOADING=1", secs(3.0))
        .expect("RELOADING=1");
    assert!(notify.seen[reloading].contains("MONOTONIC_USEC="));
    notify.wait_for("READY=1\n", secs(0.0));
    assert!(
        wait_until(secs(3.0), || {
            notify.drain();
            notify.position_after(reloading, "READY=1").is_some()
        }),
        "READY=1 after RELOADING=1: {:?}",
        notify.seen
    );

    let (code, took) = d.stop();
    notify.drain();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(1));
    let stopping = notify
        .seen
        .iter()
        .rposition(|m| m.contains("STOPPING=1"))
        .expect("STOPPING=1");
    assert!(stopping > reloading);
}

#[test]
fn no_ready_while_a_template_has_never_been_written() {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    dns.set_mode(D, Mode::ServFail);
    let site = Site::new();
    basic_config(&site, &dns, "");
    let mut notify = NotifySocket::new(&site);
    let _d = start_notified(&site, &notify, "0");
    assert!(
        notify
            .wait_for(
                "STATUS=0 templates ok, 1 failing (_mysql._tcp.example.com: SERVFAIL)",
                secs(3.0)
            )
            .is_some(),
        "{:?}",
        notify.seen
    );
    assert_eq!(
        notify.count("READY=1"),
        0,
        "activating while nothing was ever rendered"
    );
    dns.set_mode(D, Mode::Normal);
    assert!(notify.wait_for("READY=1", secs(3.0)).is_some());
}

#[test]
fn ready_but_degraded_when_a_last_good_dest_exists() {
    let dns = DnsServer::start();
    dns.set_mode(D, Mode::Refused);
    let site = Site::new();
    basic_config(&site, &dns, "");
    site.write("haproxy.cfg", "last good\n");
    let mut notify = NotifySocket::new(&site);
    let _d = start_notified(&site, &notify, "0");
    let i = notify.wait_for("READY=1", secs(3.0)).expect("READY=1");
    assert!(
        notify.seen[i].contains("1 failing (_mysql._tcp.example.com: REFUSED)"),
        "{:?}",
        notify.seen
    );
    assert_eq!(site.read("haproxy.cfg"), "last good\n");
}

#[test]
fn the_watchdog_goes_quiet_when_the_loop_is_wedged() {
    let site = Site::new();
    site.write("t.tmpl", "{% for s in srvs %}{{ s.host }}\n{% endfor %}");
    site.write(
        "z.zone",
        "$ORIGIN example.com.\n@ 30 IN SOA ns1 h 1 1 1 1 1\n_mysql._tcp 30 IN SRV 0 0 1 db\n",
    );
    site.write(
        "srvd.toml",
        "src = \"t.tmpl\"\ndest = \"out\"\ndomain = \"_mysql._tcp.example.com\"\nzone_file = \"z.zone\"\ninterval = \"100ms\"\nnohttpd = true\n",
    );
    let mut notify = NotifySocket::new(&site);
    let _d = start_notified(&site, &notify, "300000");
    notify.wait_for("READY=1", secs(3.0)).expect("READY=1");
    assert!(notify.wait_count("WATCHDOG=1", 2, secs(5.0)));

    // Reading a FIFO with no writer blocks the loop's thread for good.
    let fifo = site.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::rename(&fifo, site.path("z.zone")).unwrap();
    std::thread::sleep(secs(0.3));
    notify.drain();
    let before = notify.count("WATCHDOG=1");
    std::thread::sleep(secs(1.5));
    notify.drain();
    assert_eq!(
        notify.count("WATCHDOG=1"),
        before,
        "no ping from a wedged loop"
    );
}

#[test]
fn sighup_applies_a_good_config_and_refuses_a_bad_one() {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    let good = basic_config(&site, &dns, "");
    let mut notify = NotifySocket::new(&site);
    let d = start_notified(&site, &notify, "0");
    notify.wait_for("READY=1", secs(5.0)).expect("READY");

    // A good new config with a new template text: rendered at once.
    site.write(
        "haproxy.cfg.tmpl",
        "v2\n{% for s in srvs %}{{ s.host }}\n{% endfor %}",
    );
    d.signal(Signal::SIGHUP);
    assert!(wait_until(secs(3.0), || site
        .read("haproxy.cfg")
        .starts_with("v2\n")));
    assert!(d.wait_log("config reloaded: 1 template(s)", secs(2.0)));

    // A bad one: refused, logged, in STATUS; the old one keeps running.
    site.write("srvd.toml", &format!("{good}\nreload_cmnd = \"oops\"\n"));
    let mark = notify.seen.len();
    d.signal(Signal::SIGHUP);
    assert!(
        d.wait_log("config reload refused", secs(3.0)),
        "{}",
        d.log()
    );
    assert!(d.log().contains("reload_cmnd"));
    assert!(
        wait_until(secs(3.0), || {
            notify.drain();
            notify.seen[mark..]
                .iter()
                .any(|m| m.contains("READY=1") && m.contains("config reload refused"))
        }),
        "{:?}",
        notify.seen
    );
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-002.example.com.")]);
    assert!(
        wait_until(secs(3.0), || site.read("haproxy.cfg").contains("db-002")),
        "old config still polls"
    );
}

#[test]
fn a_hundred_sighups_in_a_second_leave_a_consistent_daemon() {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    basic_config(&site, &dns, "");
    let mut d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    for _ in 0..100 {
        d.signal(Signal::SIGHUP);
        std::thread::sleep(Duration::from_millis(10));
    }
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-002.example.com.")]);
    assert!(wait_until(secs(5.0), || site.reloads() == 2), "{}", d.log());
    assert!(site.read("haproxy.cfg").contains("db-002"));
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
}

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

#[test]
fn slow_and_oversized_clients_do_not_stall_the_loop() {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    let port = free_port();
    let text =
        basic_config(&site, &dns, &format!("status_port = {port}")).replace("nohttpd = true\n", "");
    site.write("srvd.toml", &text);
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    let addr = format!("127.0.0.1:{port}");
    // 200 clients that connect and say nothing, and one that sends too much.
    let idle: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    let mut big = TcpStream::connect(&addr).unwrap();
    let _ = big.write_all(&vec![b'a'; 64 * 1024]);
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-002.example.com.")]);
    assert!(
        wait_until(secs(3.0), || site.read("haproxy.cfg").contains("db-002")),
        "the loop kept its schedule"
    );
    drop(idle);
    assert!(wait_until(secs(8.0), || std::panic::catch_unwind(
        || http_get(&addr, "/status").0 == 200
    )
    .unwrap_or(false)));
}

#[test]
fn socket_activation_serves_on_the_passed_socket() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    let text = basic_config(&site, &dns, "").replace("nohttpd = true\n", "");
    site.write("srvd.toml", &text);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fd = listener.as_raw_fd();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "LISTEN_PID=$$ LISTEN_FDS=1 exec {SRVD} --config {}",
            site.path("srvd.toml").display()
        ))
        .stderr(std::process::Stdio::null());
    // SAFETY: dup2 is async-signal-safe; fd 3 becomes the passed socket.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(listener);
    let ok = wait_until(secs(5.0), || {
        std::panic::catch_unwind(|| http_get(&addr, "/status").1.contains("\"Ok\": true"))
            .unwrap_or(false)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "served /status on the socket passed as fd 3");
}
