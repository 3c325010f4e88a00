//! One spelling per file: two paths in srvd.toml name the same file when
//! they resolve to one path (`out/x`, `./out/x`, `a/../out/x`, a symbolic
//! link on the way) or, where both exist, to one device and inode (a hard
//! link). Used wherever srvd must not write a file it reads or writes twice.

use std::path::{Path, PathBuf};

/// Same path, or the same file reached through another path: spelled
/// differently (`out/x` and `./out/x`, `a/../out/x`), through a symbolic
/// link, or a hard link (same device and inode, where both exist).
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if a == b || resolved(a) == resolved(b) {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// `path` made absolute, with its longest existing ancestor's symbolic
/// links resolved (realpath(3)) and the rest's `.` and `..` read lexically:
/// one spelling per file, whether it exists yet or not.
pub fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut rest = Vec::new();
    let mut head = absolute.as_path();
    let mut out = loop {
        if let Ok(real) = std::fs::canonicalize(head) {
            break real;
        }
        match (head.parent(), head.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                head = parent;
            }
            // `..` or the root: read the rest lexically from here.
            _ => break lexical(head),
        }
    };
    for name in rest.iter().rev() {
        match Path::new(name).components().next() {
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::Normal(n)) => out.push(n),
            _ => {}
        }
    }
    out
}

/// `path` with `.` and `..` read lexically.
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_has_one_resolved_path_however_it_is_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("out")).unwrap();
        std::os::unix::fs::symlink("out", d.join("link")).unwrap();
        let want = resolved(&d.join("out/x.cfg"));
        let spellings = [
            "./out/x.cfg",
            "out/./x.cfg",
            "out//x.cfg",
            "missing/../out/x.cfg",
            "link/x.cfg",
            "out/sub/../x.cfg",
        ];
        for s in spellings {
            assert_eq!(resolved(&d.join(s)), want, "{s}");
            assert!(same_file(&d.join(s), &d.join("out/x.cfg")), "{s}");
        }
        assert!(!same_file(&d.join("out/x.cfg"), &d.join("out/y.cfg")));
        assert!(!same_file(&d.join("out/x.cfg"), &d.join("x.cfg")));
    }
}
