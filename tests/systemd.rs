//! The systemd contract, through the real binary: the sd_notify protocol on
//! a real Unix datagram socket (READY, STATUS, WATCHDOG, RELOADING,
//! STOPPING, in order), READY only once dest exists, the watchdog going
//! quiet when the loop is wedged, and socket activation.

mod support;

use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use nix::sys::signal::Signal;
use support::dns::{DnsServer, Mode};
use support::systemd::NotifySocket;
use support::*;

#[test]
fn notify_protocol_in_order_ready_status_watchdog_reloading_stopping() {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    basic_config(&site, &dns, "");
    let notify = NotifySocket::new(&site);
    let mut d = site.start_notified(&notify, "400000");

    let ready = notify.wait_for("READY=1", secs(5.0)).expect("READY=1");
    assert!(
        notify.seen()[ready].contains("STATUS=1 template ok; 1 target; last change "),
        "{:?}",
        notify.seen()
    );
    assert!(
        site.read("haproxy.cfg").contains("db-001"),
        "READY only after dest is rendered"
    );
    // At most one ping per half period (200 ms)...
    let base = notify.count("WATCHDOG=1");
    let t = Instant::now();
    std::thread::sleep(secs(1.2));
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
    assert!(notify.seen()[reloading].contains("MONOTONIC_USEC="));
    assert!(
        wait_until(secs(3.0), || {
            notify.position_after(reloading, "READY=1").is_some()
        }),
        "READY=1 after RELOADING=1: {:?}",
        notify.seen()
    );

    let (code, took) = d.stop();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(1));
    // Sent before srvd exits; the socket's reader may still hold it.
    notify.wait_for("STOPPING=1", secs(2.0));
    let stopping = notify
        .seen()
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
    let notify = NotifySocket::new(&site);
    let _d = site.start_notified(&notify, "0");
    assert!(
        notify
            .wait_for(
                "STATUS=0 templates ok, 1 failing (_mysql._tcp.example.com: SERVFAIL)",
                secs(3.0)
            )
            .is_some(),
        "{:?}",
        notify.seen()
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
    let notify = NotifySocket::new(&site);
    let _d = site.start_notified(&notify, "0");
    let i = notify.wait_for("READY=1", secs(3.0)).expect("READY=1");
    assert!(
        notify.seen()[i].contains("1 failing (_mysql._tcp.example.com: REFUSED)"),
        "{:?}",
        notify.seen()
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
    let notify = NotifySocket::new(&site);
    let _d = site.start_notified(&notify, "300000");
    notify.wait_for("READY=1", secs(3.0)).expect("READY=1");
    assert!(notify.wait_count("WATCHDOG=1", 2, secs(5.0)));

    // Reading a FIFO with no writer blocks the loop's thread for good.
    let fifo = site.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::rename(&fifo, site.path("z.zone")).unwrap();
    std::thread::sleep(secs(0.3));
    let before = notify.count("WATCHDOG=1");
    std::thread::sleep(secs(1.5));
    assert_eq!(
        notify.count("WATCHDOG=1"),
        before,
        "no ping from a wedged loop"
    );
}

/// Starts BIN with the site's srvd.toml as systemd starts a socket-activated
/// service (sd_listen_fds(3)): LISTENER as fd 3, `LISTEN_FDS=1` and
/// `LISTEN_PID` set to the process's own PID.
fn socket_activated(
    site: &Site,
    listener: &std::net::TcpListener,
    bin: &str,
) -> std::process::Child {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = listener.as_raw_fd();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "LISTEN_PID=$$ LISTEN_FDS=1 exec {} --config {}",
            bin,
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
    cmd.spawn().unwrap()
}

/// The request that socket-activates srvd is answered once the first cycle
/// is done, with what it found, never `Ok: false` for "not tried yet". The
/// DNS server answers late so that the request surely comes first.
#[test]
fn socket_activation_answers_the_first_request_after_the_first_cycle() {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    dns.set_delay(secs(0.8));
    let site = Site::new();
    let text = basic_config(&site, &dns, "dns_timeout = \"3s\"").replace("nohttpd = true\n", "");
    site.write("srvd.toml", &text.replace("dns_timeout = \"300ms\"\n", ""));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut child = socket_activated(&site, &listener, &srvd_bin());
    // The first request, as a client of srvd.socket sends it: at once.
    let (code, body) = http_get(&addr, "/status");
    drop(listener);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Ok"], true, "{v}");
    assert!(dns.queries(D, RecordType::SRV) >= 1, "DNS was asked");
    assert!(site.read("haproxy.cfg").contains("db-001"));
}

#[test]
fn socket_activation_serves_on_the_passed_socket() {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    let text = basic_config(&site, &dns, "").replace("nohttpd = true\n", "");
    site.write("srvd.toml", &text);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut child = socket_activated(&site, &listener, SRVD);
    drop(listener);
    let ok = wait_until(secs(5.0), || {
        std::panic::catch_unwind(|| http_get(&addr, "/status").1.contains("\"Ok\": true"))
            .unwrap_or(false)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "served /status on the socket passed as fd 3");
}

#[test]
fn abstract_notify_socket_gets_ready_status_and_watchdog() {
    // A service manager passing NOTIFY_SOCKET=@name (sd_notify(3)'s abstract
    // namespace form): every message must arrive there.
    let site = Site::from_field_case("02-abstract-notify-socket");
    let notify = NotifySocket::new_abstract(&site);
    assert!(notify.path.to_str().unwrap().starts_with('@'));
    let d = site.start_notified(&notify, "400000");
    let i = notify
        .wait_for("READY=1", secs(5.0))
        .unwrap_or_else(|| panic!("no READY=1: {}", d.log()));
    assert!(
        notify.seen()[i].contains("STATUS=1 template ok; 1 target"),
        "{:?}",
        notify.seen()
    );
    assert!(notify.wait_count("WATCHDOG=1", 2, secs(5.0)));
    assert!(d.log().contains("ready: 1 template ok"), "{}", d.log());
    assert_eq!(d.count("cannot tell systemd"), 0, "{}", d.log());
    d.signal(Signal::SIGTERM);
    assert!(notify.wait_for("STOPPING=1", secs(5.0)).is_some());
}

/// An unreachable NOTIFY_SOCKET: one warning naming it, however many
/// watchdog pings fail, and no "ready" in the log since systemd never heard it.
fn unreachable_notify_socket_warns_once(socket: &str) {
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    basic_config(&site, &dns, "");
    let d = site.start_with(
        &[],
        &[("NOTIFY_SOCKET", socket), ("WATCHDOG_USEC", "200000")],
    );
    assert!(
        d.wait_log("settled, systemd not told: 1 template ok", secs(5.0)),
        "{}",
        d.log()
    );
    // Pings every 100 ms: wait for several failed ones (logged at debug).
    assert!(
        wait_until(secs(10.0), || d.count("sd_notify to ") >= 5),
        "{}",
        d.log()
    );
    let warnings: Vec<_> = d
        .log()
        .lines()
        .filter(|l| l.contains("cannot tell systemd"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", d.log());
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(
        warnings[0].contains(&format!("NOTIFY_SOCKET={socket}")),
        "{}",
        warnings[0]
    );
    assert_eq!(d.count("ready:"), 0, "{}", d.log());
    assert!(site.read("haproxy.cfg").contains("db-001"));
}

#[test]
fn a_notify_socket_path_nobody_listens_on_is_one_warning_and_no_ready() {
    let site = Site::new();
    let missing = site.path("gone/notify.sock");
    unreachable_notify_socket_warns_once(missing.to_str().unwrap());
}

#[test]
fn an_abstract_notify_socket_nobody_listens_on_is_one_warning_and_no_ready() {
    let site = Site::new();
    let name = format!("@srvd-test-nobody{}", site.path("x").display()).replace('/', "-");
    unreachable_notify_socket_warns_once(&name);
}

#[test]
fn a_relative_notify_socket_is_refused_by_name() {
    // sd_notify(3) allows an absolute path or @name only.
    let dns = DnsServer::start();
    dns.set_srv(D, 0, &[(1, 1, 3306, "db-001.example.com.")]);
    let site = Site::new();
    basic_config(&site, &dns, "");
    let d = site.start_with(&[], &[("NOTIFY_SOCKET", "run/notify.sock")]);
    assert!(d.wait_log("cannot tell systemd", secs(5.0)), "{}", d.log());
    assert!(
        d.log()
            .contains("NOTIFY_SOCKET=run/notify.sock: expected an absolute path or @name"),
        "{}",
        d.log()
    );
}
