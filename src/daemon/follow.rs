//! Following files with inotify(7): each template's dest and the zone file,
//! so that a change made behind srvd's back wakes the loop at once instead of
//! being found by a stat(2) at every interval, and an idle srvd can sleep
//! until an answer's TTL runs out.
//!
//! Directories are watched, not the files: a file replaced by rename(2) (as
//! srvd, editors and configuration managers do) is a new inode that a watch
//! on the old one would never report. When a followed path is a symbolic
//! link, the directory of its target is watched too, and any event in the
//! link's own directory counts (a Kubernetes ConfigMap swaps a `..data` link
//! beside the file, not the file).

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;

use crate::config::{RecordSource, Settings};

/// What happens in a watched directory that may change a followed file.
const MASK: AddWatchFlags = AddWatchFlags::IN_CLOSE_WRITE
    .union(AddWatchFlags::IN_MODIFY)
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_CREATE)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF);

/// A followed path and the templates (config indexes) it matters to.
struct Followed {
    path: PathBuf,
    templates: Vec<usize>,
}

/// Who cares about events in one watched directory.
#[derive(Default)]
struct Dir {
    /// By file name.
    names: HashMap<OsString, Vec<usize>>,
    /// Whatever the name (the directory of a symbolic link).
    any: Vec<usize>,
}

/// The inotify instance, as tokio wants it.
struct Owned(Inotify);

impl AsRawFd for Owned {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// The inotify instance and what each of its watches stands for.
pub(super) struct Files {
    inotify: AsyncFd<Owned>,
    followed: Vec<Followed>,
    dirs: HashMap<WatchDescriptor, Dir>,
    /// Per template: every path it depends on is watched.
    watched: Vec<bool>,
    templates: usize,
}

impl Files {
    /// Follows every dest of `settings` and its zone file. None when inotify
    /// is not available (no kernel support, `fs.inotify.max_user_instances`
    /// reached): the daemon then looks at each template every interval.
    pub(super) fn new(settings: &Settings) -> Option<Self> {
        let inotify = match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
            Ok(i) => i,
            Err(e) => {
                log::warn!(
                    "inotify is not available ({e}): dests and zone files are looked at every interval"
                );
                return None;
            }
        };
        // SAFETY: the descriptor belongs to the `Inotify` that the `AsyncFd`
        // owns, so it stays open for as long as it is registered.
        let inotify = match unsafe { AsyncFd::register(Owned(inotify)) } {
            Ok(r) => r,
            Err(e) => {
                log::warn!("inotify: {e}: dests and zone files are looked at every interval");
                return None;
            }
        };
        let n = settings.templates.len();
        let mut followed: Vec<Followed> = settings
            .templates
            .iter()
            .enumerate()
            .map(|(i, t)| Followed {
                path: t.dest.clone(),
                templates: vec![i],
            })
            .collect();
        if let RecordSource::ZoneFile(zone) = &settings.source {
            followed.push(Followed {
                path: zone.clone(),
                templates: (0..n).collect(),
            });
        }
        let mut files = Files {
            inotify,
            followed,
            dirs: HashMap::new(),
            watched: vec![true; n],
            templates: n,
        };
        files.rewatch();
        Some(files)
    }

    /// Whether every file template `i` depends on is followed.
    pub(super) fn watched(&self, i: usize) -> bool {
        self.watched.get(i).copied().unwrap_or(false)
    }

    /// (Re)adds the watches: after a followed directory went away or was
    /// replaced, or a symbolic link now points elsewhere.
    fn rewatch(&mut self) {
        for wd in std::mem::take(&mut self.dirs).into_keys() {
            let _ = self.inotify.get_ref().0.rm_watch(wd);
        }
        self.watched = vec![true; self.templates];
        let mut watches: Vec<(PathBuf, Option<OsString>, Vec<usize>)> = Vec::new();
        for f in &self.followed {
            let real = crate::apply::real_dest(&f.path);
            if real != f.path {
                watches.push((parent(&f.path), None, f.templates.clone()));
            }
            if let Some(name) = real.file_name() {
                watches.push((parent(&real), Some(name.to_owned()), f.templates.clone()));
            }
        }
        for (dir, name, templates) in watches {
            match self.inotify.get_ref().0.add_watch(&dir, MASK) {
                Ok(wd) => {
                    let d = self.dirs.entry(wd).or_default();
                    match name {
                        Some(name) => d.names.entry(name).or_default().extend(&templates),
                        None => d.any.extend(&templates),
                    }
                }
                Err(e) => {
                    log::debug!("not following {}: {e}", dir.display());
                    for i in templates {
                        self.watched[i] = false;
                    }
                }
            }
        }
    }

    /// Waits until followed files changed; returns the templates (config
    /// indexes, sorted, each once) they matter to.
    pub(super) async fn changed(&mut self) -> Vec<usize> {
        loop {
            let Ok(mut guard) = self.inotify.readable().await else {
                return std::future::pending().await;
            };
            let events = match self.inotify.get_ref().0.read_events() {
                Ok(events) => events,
                Err(nix::errno::Errno::EAGAIN) => {
                    guard.clear_ready();
                    continue;
                }
                Err(e) => {
                    log::warn!("reading inotify events: {e}");
                    guard.clear_ready();
                    continue;
                }
            };
            drop(guard);
            let mut hit = vec![false; self.templates];
            let mut again = false;
            for e in events {
                if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    // Events were lost: any file may have changed.
                    hit.iter_mut().for_each(|h| *h = true);
                    again = true;
                    continue;
                }
                let Some(dir) = self.dirs.get(&e.wd) else {
                    continue;
                };
                let self_event = e.mask.intersects(
                    AddWatchFlags::IN_DELETE_SELF
                        | AddWatchFlags::IN_MOVE_SELF
                        | AddWatchFlags::IN_IGNORED,
                );
                let mut mark = |is: &[usize]| is.iter().for_each(|&i| hit[i] = true);
                mark(&dir.any);
                if self_event {
                    dir.names.values().for_each(|is| mark(is));
                    again = true;
                } else if let Some(is) = e.name.as_ref().and_then(|n| dir.names.get(n)) {
                    mark(is);
                }
                if !dir.any.is_empty() {
                    // A link may point elsewhere now.
                    again = true;
                }
            }
            if again {
                self.rewatch();
            }
            let changed: Vec<usize> = (0..self.templates).filter(|&i| hit[i]).collect();
            if !changed.is_empty() {
                return changed;
            }
        }
    }
}

/// The directory holding `path` ("." for a bare file name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Waits for `files` to change; never resolves without them.
pub(super) async fn changed(files: &mut Option<Files>) -> Vec<usize> {
    match files {
        Some(f) => f.changed().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(dir: &Path) -> Settings {
        let text = format!(
            "zone_file = \"{z}\"\n[[template]]\nsrc = \"t\"\ndest = \"{a}\"\ndomain = \"_a._tcp.example.com\"\n\
             [[template]]\nsrc = \"t\"\ndest = \"{b}\"\ndomain = \"_b._tcp.example.com\"\n",
            z = dir.join("zone").display(),
            a = dir.join("a.cfg").display(),
            b = dir.join("b.cfg").display(),
        );
        crate::config::parse(&text, &dir.join("srvd.toml")).unwrap()
    }

    async fn next(files: &mut Files) -> Vec<usize> {
        tokio::time::timeout(Duration::from_secs(10), files.changed())
            .await
            .expect("an inotify event within 10 s")
    }

    #[tokio::test]
    async fn a_dest_edit_names_its_template_and_a_zone_rename_names_all() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("zone"), "x").unwrap();
        let mut files = Files::new(&settings(dir.path())).expect("inotify on Linux");
        assert!(files.watched(0) && files.watched(1));

        std::fs::write(dir.path().join("b.cfg"), "edited").unwrap();
        assert_eq!(next(&mut files).await, [1]);

        // Unrelated files in the same directory name no template; the
        // rename of the zone file names all of them.
        std::fs::write(dir.path().join("other"), "x").unwrap();
        std::fs::write(dir.path().join("zone.new"), "y").unwrap();
        std::fs::rename(dir.path().join("zone.new"), dir.path().join("zone")).unwrap();
        loop {
            let changed = next(&mut files).await;
            assert!(changed == [1] || changed == [0, 1], "{changed:?}");
            if changed == [0, 1] {
                break;
            }
        }
    }

    #[tokio::test]
    async fn a_dest_in_a_missing_directory_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "zone_file = \"z\"\nsrc = \"t\"\ndest = \"{}\"\ndomain = \"_a._tcp.example.com\"\n",
            dir.path().join("nope/a.cfg").display()
        );
        let s = crate::config::parse(&text, &dir.path().join("srvd.toml")).unwrap();
        let files = Files::new(&s).unwrap();
        assert!(!files.watched(0), "its template keeps its interval");
    }
}
