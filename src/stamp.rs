//! What identifies one version of a file on disk, so that a file can be
//! trusted unread while it stays the same (dest, a zone file).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How recent a change must be for its stamp not to be trusted. The kernel
/// stamps ctime from a coarse clock (a timer tick, up to 10 ms; 1 s on some
/// filesystems, 2 s on FAT), so a second write in the same tick, of the
/// same size and with its mtime put back (`cp -p`, `rsync -t --inplace`),
/// leaves the stamp as it was. A file changed less than this ago is read
/// again: once it is older, any later write moves ctime past it.
pub const RACY: Duration = Duration::from_secs(2);

/// One version of a file: any write, rename, chmod or chown changes it (ctime
/// moves on each of them; dev and inode change when another file is renamed
/// into place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    /// The stamp of the file at `path` (symbolic links followed), or None when
    /// it cannot be had (missing, unreadable directory) or cannot be trusted
    /// yet: its ctime is less than `RACY` ago, or in the future.
    pub fn of(path: &Path) -> Option<Stamp> {
        Self::settled_at(path, SystemTime::now())
    }

    /// The stamp of `path` as `of` gives it, with `now` as the time.
    fn settled_at(path: &Path, now: SystemTime) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        let ctime = UNIX_EPOCH.checked_add(Duration::new(
            m.ctime().try_into().ok()?,
            m.ctime_nsec() as u32,
        ))?;
        now.duration_since(ctime).ok().filter(|age| *age >= RACY)?;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `of` as it answers once the last change is old enough.
    fn later(path: &Path) -> Option<Stamp> {
        Stamp::settled_at(path, SystemTime::now() + RACY)
    }

    #[test]
    fn a_file_changed_within_the_racy_window_has_no_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "a").unwrap();
        assert_eq!(Stamp::of(&f), None, "just written: read it again");
        assert!(later(&f).is_some());
        let past = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(Stamp::settled_at(&f, past), None, "ctime in the future");
    }

    #[test]
    fn a_rewrite_or_a_chmod_changes_the_stamp() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        assert_eq!(later(&f), None);
        std::fs::write(&f, "a").unwrap();
        let first = later(&f).unwrap();
        assert_eq!(later(&f), Some(first));
        std::fs::write(&f, "ab").unwrap();
        let second = later(&f).unwrap();
        assert_ne!(first, second);
        let staged = dir.path().join("g");
        std::fs::write(&staged, "ab").unwrap();
        std::fs::rename(&staged, &f).unwrap();
        assert_ne!(later(&f).unwrap(), second, "another inode");
        let third = later(&f).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(later(&f).unwrap(), third, "chmod moves ctime");
    }
}
