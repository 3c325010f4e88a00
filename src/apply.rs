//! Files on disk: what dest holds now, the staged file beside it, the atomic
//! replace, the rollback, and the marker of a reload still owed. Checking and
//! reloading are run by the engine between these steps.
//!
//! Crash safety: the staged file is written and fsynced before `rename(2)`
//! puts it in place, and the directory is fsynced after, so a crash at any
//! moment leaves dest either the old or the new complete file. A staged file
//! left by a crash carries a fixed prefix and is removed at the next start.
//!
//! The same file in all but its content: a rename puts a new inode in
//! place, so the staged file first gets dest's mode, owner and extended
//! attributes (POSIX ACLs are `system.posix_acl_access`, SELinux labels
//! `security.selinux`), and a rollback carries them back the same way. What
//! a rename cannot keep is a second path to dest's inode (a hard link, a
//! bind mount of the file): that dest is refused unless `write = "in-place"`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{Perms, WriteMode};

/// Prefix of staged files in dest's directory.
const STAGED_PREFIX: &str = ".srvd-staged-";

/// Prefix of the marker that says "dest changed, its reload has not
/// succeeded yet": it survives a crash so that the next start reloads.
const RELOAD_MARKER: &str = ".srvd-reload-pending-";

/// Mode, owner and group of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Dest as it is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestFile {
    pub content: Vec<u8>,
    pub owner: Owner,
}

/// The file to write: dest itself, or, when dest is a symbolic link, the file
/// it points to (the link is kept; its target is replaced atomically).
pub fn real_dest(dest: &Path) -> PathBuf {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(dest).unwrap_or_else(|_| {
            // A dangling link: follow it by hand, one level.
            match fs::read_link(dest) {
                Ok(target) if target.is_absolute() => target,
                Ok(target) => dest.parent().unwrap_or(Path::new("/")).join(target),
                Err(_) => dest.to_owned(),
            }
        }),
        _ => dest.to_owned(),
    }
}

/// Reads dest; `None` when it does not exist yet.
pub fn read_dest(dest: &Path) -> Result<Option<DestFile>> {
    match File::open(dest) {
        Ok(mut f) => {
            let meta = f
                .metadata()
                .with_context(|| format!("reading {}", dest.display()))?;
            let mut content = Vec::with_capacity(meta.len() as usize);
            io::Read::read_to_end(&mut f, &mut content)
                .with_context(|| format!("reading {}", dest.display()))?;
            Ok(Some(DestFile {
                content,
                owner: owner_of(&meta),
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", dest.display())),
    }
}

fn owner_of(meta: &fs::Metadata) -> Owner {
    Owner {
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }
}

/// The mode and owner the new dest gets: what the config says, else the
/// existing file's, else 0644 and srvd's own ids.
pub fn wanted_owner(perms: &Perms, current: Option<&DestFile>) -> Owner {
    let fallback = current.map(|c| c.owner).unwrap_or_else(|| Owner {
        mode: 0o644,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    });
    Owner {
        mode: perms.mode.unwrap_or(fallback.mode),
        uid: perms.uid.unwrap_or(fallback.uid),
        gid: perms.gid.unwrap_or(fallback.gid),
    }
}

/// Nothing to do: same bytes, same mode, same owner.
pub fn is_up_to_date(current: Option<&DestFile>, rendered: &[u8], wanted: Owner) -> bool {
    current.is_some_and(|c| c.content == rendered && c.owner == wanted)
}

/// A complete, fsynced copy of the new content beside dest, not yet in place.
/// Dropping it removes the file.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl Staged {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `content` to a new staged file in dest's directory (same
/// filesystem, so the rename is atomic) with `owner`, and fsyncs it.
pub fn stage(dest: &Path, content: &[u8], owner: Owner) -> Result<Staged> {
    let dir = parent(dest);
    let base = dest
        .file_name()
        .with_context(|| format!("{} has no file name", dest.display()))?
        .to_string_lossy();
    if !dir.exists() {
        // As consul-template does: a missing directory is made, not an error.
        fs::create_dir_all(dir).with_context(|| {
            format!(
                "creating directory {} for {}",
                dir.display(),
                dest.display()
            )
        })?;
    }
    let mut attempt = 0u32;
    let (path, mut file) = loop {
        let path = dir.join(format!("{STAGED_PREFIX}{:08x}-{base}", nonce(attempt)));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => break (path, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "creating a staged file in {} for {}",
                        dir.display(),
                        dest.display()
                    )
                });
            }
        }
    };
    let staged = Staged {
        path,
        dest: dest.to_owned(),
        done: false,
    };
    let what = || format!("writing staged file {}", staged.path.display());
    file.write_all(content).with_context(what)?;
    copy_xattrs(dest, &file).with_context(|| {
        format!(
            "carrying the extended attributes of {} over to its replacement \
             (ACLs, SELinux labels); {} left as it was",
            dest.display(),
            dest.display()
        )
    })?;
    // After the attributes: an ACL copied over carries the old mode bits,
    // which the wanted mode then replaces (chmod rewrites the ACL's owner,
    // mask and other entries, and keeps its named users and groups).
    set_owner(&file, owner).with_context(what)?;
    file.sync_all().with_context(what)?;
    Ok(staged)
}

/// Attributes that describe the content, not the file: the kernel computes
/// them for the new content (IMA/EVM), so copying the old ones would lie.
const CONTENT_BOUND_XATTRS: &[&str] = &["security.ima", "security.evm"];

/// Gives `to` every extended attribute `from` has (nothing when `from` does
/// not exist or its filesystem has none). An attribute `to` already has with
/// the same value (an SELinux label from the directory's default) is left
/// alone. Errors name the attribute: a file that would lose an ACL or a
/// label never replaces dest.
fn copy_xattrs(from: &Path, to: &File) -> io::Result<()> {
    use xattr::FileExt;
    let source = match File::open(from) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let names = match source.list_xattr() {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in names {
        if CONTENT_BOUND_XATTRS.iter().any(|c| name == *c) {
            continue;
        }
        let named =
            |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", name.to_string_lossy()));
        let Some(value) = source.get_xattr(&name).map_err(named)? else {
            continue;
        };
        if to.get_xattr(&name).ok().flatten().as_deref() != Some(value.as_slice()) {
            to.set_xattr(&name, &value).map_err(named)?;
        }
    }
    Ok(())
}

/// Another path to dest's inode, which a rename would leave on the old
/// content: `Some(description)` when dest has more than one hard link, or
/// when a mount in srvd's mount namespace shows dest's file elsewhere (a
/// single-file bind mount, proc_pid_mountinfo(5)). Dest being itself a
/// mount point is not sharing: rename(2) fails with EBUSY there and dest is
/// written in place. A bind mount made in another namespace (a container's)
/// is invisible from here; docs/configuration.md says what to do.
pub fn shared_inode(dest: &Path) -> Option<String> {
    let meta = fs::metadata(dest).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.nlink() > 1 {
        return Some(format!("it has {} hard links", meta.nlink()));
    }
    let here = fs::canonicalize(dest).ok()?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let dev = (nix::libc::major(meta.dev()), nix::libc::minor(meta.dev()));
    mountinfo.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let (majmin, root, point) = (fields.get(2)?, fields.get(3)?, fields.get(4)?);
        // Only mounts of dest's own filesystem, and not of a whole one: no
        // stat(2) of an unrelated (perhaps hung network) mount.
        let (major, minor) = majmin.split_once(':')?;
        if (major.parse().ok()?, minor.parse().ok()?) != dev || *root == "/" {
            return None;
        }
        let point = PathBuf::from(unescape_mountinfo(point));
        let m = fs::metadata(&point).ok()?;
        (m.ino() == meta.ino() && m.dev() == meta.dev() && point != here)
            .then(|| format!("it is also mounted at {}", point.display()))
    })
}

/// Mount points in mountinfo escape space, tab, newline and backslash as
/// `\ooo` octal.
fn unescape_mountinfo(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn set_owner(file: &File, owner: Owner) -> io::Result<()> {
    let meta = file.metadata()?;
    if meta.uid() != owner.uid || meta.gid() != owner.gid {
        std::os::unix::fs::fchown(file, Some(owner.uid), Some(owner.gid))?;
    }
    // After chown, which may clear set-id bits.
    file.set_permissions(fs::Permissions::from_mode(owner.mode))
}

fn nonce(attempt: u32) -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16) ^ attempt.wrapping_mul(0x9e37_79b9)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// How the new content got into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Rename,
    /// rename(2) failed with EBUSY (dest is a bind mount): written in place.
    InPlace,
    /// Written in place as `write = "in-place"` asks.
    InPlaceAsked,
}

/// Puts the staged file in place of dest and makes the change durable, by
/// `write`'s method. Errors: with `Rename`, a dest that shares its inode
/// with another path ([`shared_inode`]) is left as it is, and the message
/// names the other path and the two ways out.
pub fn replace(mut staged: Staged, write: WriteMode) -> Result<Method> {
    let dest = staged.dest.clone();
    if write == WriteMode::InPlace && dest.exists() {
        let content = fs::read(&staged.path)
            .with_context(|| format!("reading back {}", staged.path.display()))?;
        let owner = owner_of(&fs::metadata(&staged.path)?);
        write_in_place(&dest, &content, owner)?;
        return Ok(Method::InPlaceAsked);
    }
    if let Some(shared) = shared_inode(&dest) {
        anyhow::bail!(
            "{} shares its inode with another path ({shared}): a rename would leave that \
             path on the old content, so dest was left as it was; set write = \"in-place\" \
             for this template to update every path (readers may then see a partial \
             file), or remove the other path",
            dest.display()
        );
    }
    match fs::rename(&staged.path, &dest) {
        Ok(()) => {
            staged.done = true;
            sync_dir(parent(&dest))?;
            Ok(Method::Rename)
        }
        Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
            // A bind-mounted file cannot be renamed over (as confd found):
            // copy the checked content into it instead. Not atomic against a
            // crash, but never partial on an I/O error: see `write_in_place`.
            let content = fs::read(&staged.path)
                .with_context(|| format!("reading back {}", staged.path.display()))?;
            let owner = owner_of(&fs::metadata(&staged.path)?);
            write_in_place(&dest, &content, owner)?;
            Ok(Method::InPlace)
        }
        Err(e) => Err(e)
            .with_context(|| format!("renaming {} to {}", staged.path.display(), dest.display())),
    }
}

/// Overwrites dest's content in place; on a failed write, puts the old
/// content back before returning the error.
fn write_in_place(dest: &Path, content: &[u8], owner: Owner) -> Result<()> {
    let old = fs::read(dest).with_context(|| format!("reading {}", dest.display()))?;
    let mut f = OpenOptions::new()
        .write(true)
        .open(dest)
        .with_context(|| format!("opening {} to write in place", dest.display()))?;
    let write = |f: &mut File, bytes: &[u8]| -> io::Result<()> {
        io::Seek::seek(f, io::SeekFrom::Start(0))?;
        f.write_all(bytes)?;
        f.set_len(bytes.len() as u64)?;
        f.sync_all()
    };
    if let Err(e) = write(&mut f, content) {
        let restored = write(&mut f, &old);
        return Err(e).with_context(|| {
            format!(
                "writing {} in place (old content {})",
                dest.display(),
                if restored.is_ok() {
                    "restored"
                } else {
                    "NOT restored"
                }
            )
        });
    }
    set_owner(&f, owner).with_context(|| format!("setting mode and owner of {}", dest.display()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Puts back what dest held before a change: the old content (by `write`'s
/// method, as any change, with the attributes dest has now), or no file at
/// all if there was none.
pub fn restore(dest: &Path, previous: Option<&DestFile>, write: WriteMode) -> Result<()> {
    match previous {
        Some(old) => {
            let staged = stage(dest, &old.content, old.owner)?;
            replace(staged, write).map(|_| ())
        }
        None => match fs::remove_file(dest) {
            Ok(()) => sync_dir(parent(dest)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", dest.display())),
        },
    }
}

/// The crash marker of `dest` (its real path): a file beside it named
/// `.srvd-reload-pending-` + dest's file name.
fn marker_path(dest: &Path) -> PathBuf {
    let base = dest
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!("{RELOAD_MARKER}{base}"))
}

/// Leaves the crash marker beside `dest` before it is replaced, so that a
/// crash between the replace and a successful reload makes the next start
/// reload. Best effort: without it, srvd only loses that guarantee.
pub fn mark_reload_owed(dest: &Path) {
    let _ = File::create(marker_path(dest));
}

/// Removes the crash marker of `dest`: its reload succeeded, or dest went back
/// to what the middleware already runs. Best effort, as `mark_reload_owed`.
pub fn clear_reload_owed(dest: &Path) {
    let _ = fs::remove_file(marker_path(dest));
}

/// Whether a crash interrupted a reload after `dest` was last replaced.
pub fn reload_owed(dest: &Path) -> bool {
    marker_path(dest).exists()
}

/// Removes staged files of dest left by an earlier crash. Returns what it removed.
pub fn remove_stale(dest: &Path) -> Vec<PathBuf> {
    let Some(base) = dest.file_name().map(|b| b.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let suffix = format!("-{base}");
    let Ok(entries) = fs::read_dir(parent(dest)) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_ours = name
            .strip_prefix(STAGED_PREFIX)
            .and_then(|rest| rest.strip_suffix(&suffix))
            .is_some_and(|nonce| nonce.len() == 8 && nonce.bytes().all(|b| b.is_ascii_hexdigit()));
        if is_ours && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Owner {
        Owner {
            mode: 0o644,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }

    #[test]
    fn stage_then_replace_puts_the_whole_content_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("haproxy.cfg");
        fs::write(&dest, "old").unwrap();
        let staged = stage(
            &dest,
            b"new content",
            Owner {
                mode: 0o640,
                ..me()
            },
        )
        .unwrap();
        assert!(staged.path().starts_with(dir.path()));
        assert!(staged.path().to_string_lossy().ends_with("-haproxy.cfg"));
        assert_eq!(fs::read(staged.path()).unwrap(), b"new content");
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(replace(staged, WriteMode::Rename).unwrap(), Method::Rename);
        let now = read_dest(&dest).unwrap().unwrap();
        assert_eq!(now.content, b"new content");
        assert_eq!(now.owner.mode, 0o640);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no staged file left"
        );
    }

    #[test]
    fn a_dropped_staged_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.cfg");
        let staged = stage(&dest, b"x", me()).unwrap();
        let path = staged.path().to_owned();
        drop(staged);
        assert!(!path.exists());
        assert!(!dest.exists());
    }

    #[test]
    fn wanted_owner_prefers_config_then_existing_then_defaults() {
        let existing = DestFile {
            content: vec![],
            owner: Owner {
                mode: 0o440,
                uid: 1,
                gid: 2,
            },
        };
        let none = Perms::default();
        assert_eq!(wanted_owner(&none, Some(&existing)), existing.owner);
        assert_eq!(wanted_owner(&none, None), me());
        let set = Perms {
            mode: Some(0o600),
            uid: None,
            gid: Some(7),
        };
        assert_eq!(
            wanted_owner(&set, Some(&existing)),
            Owner {
                mode: 0o600,
                uid: 1,
                gid: 7
            }
        );
    }

    #[test]
    fn up_to_date_needs_same_bytes_and_same_owner() {
        let cur = DestFile {
            content: b"a".to_vec(),
            owner: me(),
        };
        assert!(is_up_to_date(Some(&cur), b"a", me()));
        assert!(!is_up_to_date(Some(&cur), b"b", me()));
        assert!(!is_up_to_date(
            Some(&cur),
            b"a",
            Owner {
                mode: 0o600,
                ..me()
            }
        ));
        assert!(!is_up_to_date(None, b"a", me()));
    }

    #[test]
    fn restore_brings_back_old_content_or_removes_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("d");
        fs::write(&dest, "new").unwrap();
        let old = DestFile {
            content: b"old".to_vec(),
            owner: Owner {
                mode: 0o600,
                ..me()
            },
        };
        restore(&dest, Some(&old), WriteMode::Rename).unwrap();
        assert_eq!(read_dest(&dest).unwrap().unwrap(), old);
        restore(&dest, None, WriteMode::Rename).unwrap();
        assert!(!dest.exists());
    }

    #[test]
    fn stale_staged_files_of_this_dest_only_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("haproxy.cfg");
        for name in [
            ".srvd-staged-0123abcd-haproxy.cfg",
            ".srvd-staged-0123abcd-other.cfg",
            ".srvd-staged-zz-haproxy.cfg",
            "haproxy.cfg",
        ] {
            fs::write(dir.path().join(name), "x").unwrap();
        }
        let removed = remove_stale(&dest);
        assert_eq!(
            removed,
            [dir.path().join(".srvd-staged-0123abcd-haproxy.cfg")]
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn the_reload_marker_sits_beside_dest_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("haproxy.cfg");
        assert!(!reload_owed(&dest));
        mark_reload_owed(&dest);
        assert!(reload_owed(&dest));
        assert!(dir.path().join(".srvd-reload-pending-haproxy.cfg").exists());
        clear_reload_owed(&dest);
        assert!(!reload_owed(&dest));
    }

    /// A POSIX ACL as the kernel stores it (acl(5), xattr format version 2):
    /// owner rw, user `uid` r, group r, mask r, other nothing: `0640` with
    /// `setfacl -m u:UID:r`.
    pub fn acl_user_read(uid: u32) -> Vec<u8> {
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
    fn acls_and_xattrs_survive_a_replace_and_a_restore() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("haproxy.cfg");
        fs::write(&dest, "old").unwrap();
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o640)).unwrap();
        let acl = acl_user_read(65534);
        xattr::set(&dest, "system.posix_acl_access", &acl).unwrap();
        xattr::set(&dest, "user.origin", b"puppet").unwrap();
        let old = read_dest(&dest).unwrap().unwrap();
        let staged = stage(&dest, b"new", old.owner).unwrap();
        replace(staged, WriteMode::Rename).unwrap();
        let attrs = |p: &Path| {
            (
                xattr::get(p, "system.posix_acl_access").unwrap(),
                xattr::get(p, "user.origin").unwrap(),
            )
        };
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(attrs(&dest), (Some(acl.clone()), Some(b"puppet".to_vec())));
        restore(&dest, Some(&old), WriteMode::Rename).unwrap();
        assert_eq!(read_dest(&dest).unwrap().unwrap(), old);
        assert_eq!(attrs(&dest), (Some(acl), Some(b"puppet".to_vec())));
    }

    #[test]
    fn a_hard_linked_dest_is_refused_by_rename_and_written_in_place_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("haproxy.cfg");
        let other = dir.path().join("chroot.cfg");
        fs::write(&dest, "old").unwrap();
        fs::hard_link(&dest, &other).unwrap();
        assert_eq!(shared_inode(&dest).as_deref(), Some("it has 2 hard links"));
        let staged = stage(&dest, b"new", me()).unwrap();
        let err = format!("{:#}", replace(staged, WriteMode::Rename).unwrap_err());
        assert!(
            err.contains("shares its inode with another path (it has 2 hard links)"),
            "{err}"
        );
        assert!(err.contains("write = \"in-place\""), "{err}");
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        let staged = stage(&dest, b"new", me()).unwrap();
        assert_eq!(
            replace(staged, WriteMode::InPlace).unwrap(),
            Method::InPlaceAsked
        );
        assert_eq!(fs::read(&other).unwrap(), b"new");
        assert_eq!(fs::metadata(&dest).unwrap().nlink(), 2);
        let old = DestFile {
            content: b"old".to_vec(),
            owner: me(),
        };
        restore(&dest, Some(&old), WriteMode::InPlace).unwrap();
        assert_eq!(fs::read(&other).unwrap(), b"old");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no staged file left"
        );
    }

    #[test]
    fn a_lone_file_shares_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("d");
        assert_eq!(shared_inode(&dest), None, "absent");
        fs::write(&dest, "x").unwrap();
        assert_eq!(shared_inode(&dest), None);
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape_mountinfo(r"/plain\"), "/plain\\");
    }

    #[test]
    fn a_symlinked_dest_resolves_to_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.cfg");
        fs::write(&target, "x").unwrap();
        let link = dir.path().join("link.cfg");
        std::os::unix::fs::symlink("real.cfg", &link).unwrap();
        assert_eq!(real_dest(&link), fs::canonicalize(&target).unwrap());
        assert_eq!(real_dest(&target), target);
    }
}
