//! What identifies one version of a file on disk, so that a file can be
//! trusted unread while it stays the same (dest, a zone file).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

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
    /// it cannot be had (missing, unreadable directory).
    pub fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
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

    #[test]
    fn a_rewrite_or_a_chmod_changes_the_stamp() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        assert_eq!(Stamp::of(&f), None);
        std::fs::write(&f, "a").unwrap();
        let first = Stamp::of(&f).unwrap();
        assert_eq!(Stamp::of(&f), Some(first));
        std::fs::write(&f, "ab").unwrap();
        let second = Stamp::of(&f).unwrap();
        assert_ne!(first, second);
        let staged = dir.path().join("g");
        std::fs::write(&staged, "ab").unwrap();
        std::fs::rename(&staged, &f).unwrap();
        assert_ne!(Stamp::of(&f).unwrap(), second, "another inode");
        let third = Stamp::of(&f).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(Stamp::of(&f).unwrap(), third, "chmod moves ctime");
    }
}
