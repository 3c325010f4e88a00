//! Writing dest, through the real binary: rendered, checked and replaced
//! only when it changed; a failed check leaves it untouched; modes kept or
//! set and drift repaired; symbolic links followed; crash leftovers
//! cleaned; kill -9 never leaves a partial file. Read-only, full and
//! bind-mounted filesystems need root and mounts: tests/reliability/run.sh;
//! a thousand kill -9 are tests/reliability/long.sh.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use support::dns::DnsServer;
use support::*;

#[test]
fn renders_dest_then_reloads_once() {
    let (server, site, d) = running("");
    assert_eq!(
        site.read("haproxy.cfg"),
        "backend db\n  server db-001.example.com db-001.example.com.:3306 check\n  server db-002.example.com db-002.example.com.:3306 check\n"
    );
    // Ten more polls with the same answer.
    assert_polls(&server, &d, 10, "");
    assert_eq!(site.reloads(), 1, "nothing changed: no second reload");
    assert_eq!(site.checks(), 1, "nothing changed: no second check");
}

#[test]
fn a_failing_check_leaves_dest_untouched_and_runs_no_reload() {
    let (server, site, d) = running("");
    let good = site.read("haproxy.cfg");
    site.write("check.fail", "");
    server.set_srv(D, 0, &[(10, 5, 3306, "db-009.example.com.")]);
    assert!(
        d.wait_log("check_cmd exited with status 1", secs(5.0)),
        "{}",
        d.log()
    );
    std::thread::sleep(secs(0.5));
    assert_eq!(site.read("haproxy.cfg"), good);
    assert_eq!(site.reloads(), 1);
    assert!(
        files_with_prefix(site.dir.path(), ".srvd-staged-").is_empty(),
        "staged file removed"
    );
}

#[test]
fn back_off_stops_a_reload_storm() {
    let (server, site, d) = running("");
    site.write("check.fail", "");
    server.set_srv(D, 0, &[(10, 5, 3306, "db-009.example.com.")]);
    assert!(d.wait_log("check_cmd exited", secs(5.0)));
    let checks = site.checks();
    // 25 polls at 100 ms see the same failing output: no check is run again.
    assert_polls(&server, &d, 25, "");
    assert_eq!(site.checks(), checks, "{}", d.log());
    assert_eq!(
        d.count("check_cmd exited"),
        1,
        "logged once, not every cycle"
    );
    // New output is tried at once.
    server.set_srv(D, 0, &[(10, 5, 3306, "db-010.example.com.")]);
    assert!(wait_until(secs(3.0), || site.checks() == checks + 1));
}

#[test]
fn mode_and_owner_are_kept_or_set_and_drift_is_repaired() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (_server, site) = two_backend_site("");
    site.write("haproxy.cfg", "old\n");
    std::fs::set_permissions(
        site.path("haproxy.cfg"),
        std::fs::Permissions::from_mode(0o440),
    )
    .unwrap();
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    let mode = std::fs::metadata(site.path("haproxy.cfg")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o440, "the existing file's mode is kept");
    drop(d);
}

#[test]
fn an_explicit_mode_is_set_and_drift_is_repaired() {
    let (_server, site) = two_backend_site("mode = \"0600\"");
    let _d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1));
    assert_eq!(
        std::fs::metadata(site.path("haproxy.cfg")).unwrap().mode() & 0o7777,
        0o600
    );
    std::fs::set_permissions(
        site.path("haproxy.cfg"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert!(
        wait_until(secs(5.0), || site.reloads() == 2),
        "mode drift is a change"
    );
    assert_eq!(
        std::fs::metadata(site.path("haproxy.cfg")).unwrap().mode() & 0o7777,
        0o600
    );
}

#[test]
fn a_symlinked_dest_has_its_final_target_replaced_and_keeps_its_links() {
    use std::os::unix::fs::symlink;
    let server = DnsServer::start();
    two_backends(&server, 0);
    let mut tried = 0;
    // (what, links from dest to the real file, whether the real file exists first)
    for (what, chain, exists) in [
        ("a link to a file in another directory", 1, true),
        ("a link to a link to a file", 2, true),
        ("a dangling link", 1, false),
    ] {
        two_backends(&server, 0);
        let site = Site::new();
        basic_config(&site, &server, "");
        std::fs::create_dir(site.path("real")).unwrap();
        let real = site.path("real/haproxy.cfg");
        if exists {
            std::fs::write(&real, "old\n").unwrap();
        }
        let mut to = real.clone();
        for i in 1..chain {
            let link = site.path(&format!("link{i}.cfg"));
            symlink(&to, &link).unwrap();
            to = link;
        }
        symlink(&to, site.path("haproxy.cfg")).unwrap();
        let d = site.start();
        assert!(
            wait_until(secs(5.0), || site.reloads() == 1),
            "{what}\n{}",
            d.log()
        );
        server.set_srv(D, 0, &[(10, 5, 3306, "db-003.example.com.")]);
        assert!(
            wait_until(secs(5.0), || site.reloads() == 2),
            "{what}\n{}",
            d.log()
        );
        assert!(
            std::fs::read_to_string(&real).unwrap().contains("db-003"),
            "{what}"
        );
        assert!(
            std::fs::symlink_metadata(site.path("haproxy.cfg"))
                .unwrap()
                .file_type()
                .is_symlink(),
            "{what}: dest is still a link"
        );
        for i in 1..chain {
            assert!(
                std::fs::symlink_metadata(site.path(&format!("link{i}.cfg")))
                    .unwrap()
                    .file_type()
                    .is_symlink(),
                "{what}: the middle link stays"
            );
        }
        // The reload-pending marker lives until reload_cmd has exited, a
        // moment after the reload recorded itself.
        for dir in [site.dir.path().to_owned(), site.path("real")] {
            assert!(
                wait_until(secs(2.0), || files_with_prefix(&dir, ".srvd-").is_empty()),
                "{what}: leftovers in {dir:?}: {:?}",
                files_with_prefix(&dir, ".srvd-")
            );
        }
        tried += 1;
    }
    assert_eq!(tried, 3);
}

/// What a crash leaves beside dest: staged files, found at the first start
/// and at a later one; files that only look alike are not srvd's to remove.
#[test]
fn staged_files_left_by_a_crash_are_removed_at_start() {
    let (_server, site) = two_backend_site("");
    // Before dest was ever written.
    site.write(".srvd-staged-0badc0de-haproxy.cfg", "half a fi");
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    assert!(files_with_prefix(site.dir.path(), ".srvd-staged-").is_empty());
    // The reload's marker is removed just after it returns.
    assert!(wait_until(secs(2.0), || !site
        .exists(".srvd-reload-pending-haproxy.cfg")));
    drop(d);
    let good = site.read("haproxy.cfg");
    // Ten staged files of this dest, as ten crashes would leave them, and
    // files that only look alike: another dest's, a non-hex nonce.
    let ours: Vec<String> = (0..10u32)
        .map(|i| {
            format!(
                ".srvd-staged-{:08x}-haproxy.cfg",
                i.wrapping_mul(0x9e37_79b9)
            )
        })
        .collect();
    for n in &ours {
        site.write(n, "half a fi");
    }
    let others = [
        ".srvd-staged-0badc0de-other.cfg",
        ".srvd-staged-zzzzzzzz-haproxy.cfg",
        ".srvd-staged-0badc0de-haproxy.cfg.bak",
    ];
    for n in others {
        site.write(n, "not ours");
    }
    let d = site.start();
    assert!(
        wait_until(secs(5.0), || ours.iter().all(|n| !site.exists(n))),
        "left: {:?}\n{}",
        files_with_prefix(site.dir.path(), ".srvd-staged-"),
        d.log()
    );
    for n in others {
        assert!(site.exists(n), "{n} removed, but it is not ours");
    }
    assert_eq!(site.read("haproxy.cfg"), good, "dest untouched");
    assert!(
        wait_until(secs(2.0), || d.count("left by an earlier run")
            == ours.len()),
        "{}",
        d.log()
    );
}

#[test]
fn kill_9_during_applies_leaves_a_complete_file() {
    let server = DnsServer::start();
    let site = Site::new();
    basic_config(&site, &server, "");
    // Large outputs that differ every cycle, so kill -9 lands mid-apply often.
    let versions: Vec<Vec<String>> = (0..4)
        .map(|v| {
            (0..400)
                .map(|i| format!("h{v}-{i:03}.example.com."))
                .collect()
        })
        .collect();
    // A kill before the first write leaves no file; such rounds do not
    // count, so a slow machine runs more of them.
    let mut seen_complete = 0;
    for round in 0..60 {
        if seen_complete == 20 {
            break;
        }
        let v = &versions[round % versions.len()];
        let recs: Vec<(u16, u16, u16, &str)> = v.iter().map(|t| (1, 1, 3306, t.as_str())).collect();
        server.set_srv(D, 0, &recs);
        let mut d = site.start();
        std::thread::sleep(Duration::from_millis(150 + (round as u64 * 37) % 200));
        d.kill9();
        let out = site.read("haproxy.cfg");
        if out.is_empty() {
            continue;
        }
        assert!(
            out.starts_with("backend db\n") && out.ends_with(" check\n"),
            "round {round}: partial file"
        );
        assert_eq!(
            out.lines().count(),
            401,
            "round {round}: a complete version"
        );
        seen_complete += 1;
    }
    assert_eq!(seen_complete, 20, "complete files seen");
    let _d = site.start();
    assert!(wait_until(secs(5.0), || files_with_prefix(
        site.dir.path(),
        ".srvd-staged-"
    )
    .is_empty()));
}

/// What the field cases' template renders for their zone's one record.
const DB1: &str = "server db-001.example.com:3306\n\n";

/// A field case's site (`Site::from_field_case`), polling every 100 ms,
/// with an empty out/ for dest.
fn field_site(case: &str) -> Site {
    let site = Site::from_field_case(case);
    site.set_key("interval", "\"100ms\"");
    std::fs::create_dir_all(site.path("out")).unwrap();
    site
}

/// Replaces the site's zone file as the docs say: a new file renamed over.
fn set_zone(site: &Site, records: &str) {
    let head = "$ORIGIN example.com.\n$TTL 30\n@ IN SOA ns1 hostmaster 1 3600 600 86400 30\n";
    site.write("zone.new", &format!("{head}{records}"));
    std::fs::rename(site.path("zone.new"), site.path("example.com.zone")).unwrap();
}

/// Makes the next reload fail, moves the zone's one record to db-002, and
/// waits for srvd to roll dest back.
#[track_caller]
fn change_with_failing_reload(site: &Site, d: &Daemon) {
    site.write("reload.fail", "");
    set_zone(site, "_mysql._tcp IN SRV 10 10 3306 db-002\n");
    assert!(
        d.wait_log("rolled back to the previous content", secs(5.0)),
        "{}",
        d.log()
    );
}

/// `setfacl -m u:UID:r` on a 0640 file, as the kernel stores it (acl(5)):
/// owner rw, user UID r, group r, mask r, other nothing.
fn acl_user_read(uid: u32) -> Vec<u8> {
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, uid),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        acl.extend(tag.to_le_bytes());
        acl.extend(perm.to_le_bytes());
        acl.extend(id.to_le_bytes());
    }
    acl
}

#[test]
fn an_acl_and_xattrs_on_dest_survive_a_change_and_a_rollback() {
    // dest is 0640 plus an ACL letting the reading service's user in: the
    // rename used to drop it, and so did the rollback.
    let site = field_site("22-acl-lost-on-rewrite");
    site.set_commands(None, Some(&site.reload_cmd()));
    let dest = site.write("out/haproxy.cfg", "server old:1\n");
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o640)).unwrap();
    let acl = acl_user_read(65534);
    xattr::set(&dest, "system.posix_acl_access", &acl).unwrap();
    xattr::set(&dest, "user.managed-by", b"srvd").unwrap();
    let attrs = || {
        (
            xattr::get(&dest, "system.posix_acl_access").unwrap(),
            xattr::get(&dest, "user.managed-by").unwrap(),
            std::fs::metadata(&dest).unwrap().mode() & 0o7777,
        )
    };
    let want = (Some(acl.clone()), Some(b"srvd".to_vec()), 0o640);
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    assert_eq!(site.read("out/haproxy.cfg"), DB1);
    assert_eq!(attrs(), want, "after the change");

    // A change whose reload fails: rolled back, still with its ACL.
    change_with_failing_reload(&site, &d);
    assert_eq!(site.read("out/haproxy.cfg"), DB1);
    assert_eq!(attrs(), want, "after the rollback");
}

/// The hard-link half of the shared-inode case: out/haproxy.cfg is also
/// chroot/haproxy.cfg.
fn hard_linked_site() -> Site {
    let site = field_site("24-dest-inode-shared");
    std::fs::create_dir_all(site.path("chroot")).unwrap();
    site.write("out/haproxy.cfg", "server old:1\n");
    std::fs::hard_link(
        site.path("out/haproxy.cfg"),
        site.path("chroot/haproxy.cfg"),
    )
    .unwrap();
    // The case's reload prints what the chroot sees; relative to the site.
    let reload = format!(
        "sh -c 'echo hard link sees: $(cat {}/chroot/haproxy.cfg)'",
        site.dir.path().display()
    );
    site.set_commands(None, Some(&reload));
    site
}

#[test]
fn a_hard_linked_dest_is_never_split_silently() {
    let site = hard_linked_site();
    let port = free_port();
    let text = site.read("srvd.toml").replace("nohttpd = true\n", "");
    site.write("srvd.toml", &format!("status_port = {port}\n{text}"));
    let d = site.start();
    assert!(
        d.wait_log(
            "shares its inode with another path (it has 2 hard links)",
            secs(5.0)
        ),
        "{}",
        d.log()
    );
    assert!(d.log().contains("write = \"in-place\""), "{}", d.log());
    let status = status_json(&format!("127.0.0.1:{port}"));
    let t = &status["templates"][0];
    assert_eq!(t["ok"], false, "{status}");
    assert!(
        t["error"].as_str().unwrap().contains("it has 2 hard links"),
        "{status}"
    );
    // Nothing split, nothing reloaded: both paths still one file.
    assert_eq!(site.read("out/haproxy.cfg"), "server old:1\n");
    assert_eq!(
        std::fs::metadata(site.path("out/haproxy.cfg"))
            .unwrap()
            .nlink(),
        2
    );
    assert_eq!(d.count("hard link sees"), 0, "{}", d.log());
}

#[test]
fn write_in_place_updates_every_path_to_a_hard_linked_dest() {
    let site = hard_linked_site();
    site.set_key("write", "\"in-place\"");
    let d = site.start();
    assert!(
        d.wait_log("hard link sees: server db-001.example.com:3306", secs(5.0)),
        "{}",
        d.log()
    );
    assert_eq!(site.read("chroot/haproxy.cfg"), DB1);
    assert_eq!(
        std::fs::metadata(site.path("out/haproxy.cfg"))
            .unwrap()
            .nlink(),
        2
    );
    assert!(!d.log().contains("shares its inode"), "{}", d.log());
}

#[test]
fn an_in_place_rollback_reaches_every_path_too() {
    // Not a field case: with write = "in-place", a failed reload puts the
    // previous content back into the same inode, so the chroot follows.
    let site = hard_linked_site();
    site.set_key("write", "\"in-place\"");
    site.set_commands(None, Some(&site.reload_cmd()));
    let d = site.start();
    assert!(wait_until(secs(5.0), || site.reloads() == 1), "{}", d.log());
    change_with_failing_reload(&site, &d);
    for path in ["out/haproxy.cfg", "chroot/haproxy.cfg"] {
        assert_eq!(site.read(path), DB1, "{path}");
    }
    assert_eq!(
        std::fs::metadata(site.path("chroot/haproxy.cfg"))
            .unwrap()
            .nlink(),
        2
    );
    assert!(files_with_prefix(&site.path("out"), ".srvd-staged-").is_empty());
}
