//! The parallel walk of the master tree.
//!
//! Repositories are recognised from directory entries alone (the `d_type`
//! `readdir` returns), so the walk costs one `getdents` per directory and no
//! `stat` per file: it is the floor `find -type f` sets. An ostree
//! repository's `objects/` is not entered: it holds most of the files of an
//! Atomic tree and nothing in it is ever compared with a mirror.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use releng_manifest::RepoKind;

/// A repository the walk found: its directory relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `/`-separated path relative to the root, `.` for the root itself.
    pub path: String,
    /// Yum or ostree.
    pub kind: RepoKind,
}

/// What the walk saw.
#[derive(Debug, Default)]
pub struct Walk {
    /// Repositories, sorted by path.
    pub repos: Vec<Found>,
    /// Directories read.
    pub directories: u64,
    /// Regular files seen (`objects/` of ostree repos not included).
    pub files: u64,
    /// Directories that could not be read, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

struct Queue {
    dirs: VecDeque<PathBuf>,
    /// Directories taken but not finished: the walk ends when the queue is
    /// empty and nobody is busy (a busy worker may still push).
    busy: usize,
}

/// Walks `root` with `threads` workers.
pub fn walk(root: &Path, threads: usize) -> Walk {
    let queue = Mutex::new(Queue {
        dirs: VecDeque::from([root.to_path_buf()]),
        busy: 0,
    });
    let wake = Condvar::new();
    let results: Vec<Walk> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| s.spawn(|| worker(root, &queue, &wake)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("walker thread"))
            .collect()
    });
    let mut all = Walk::default();
    for w in results {
        all.repos.extend(w.repos);
        all.directories += w.directories;
        all.files += w.files;
        all.skipped.extend(w.skipped);
    }
    all.repos
        .sort_by(|a, b| (&a.path, a.kind.metadata_path()).cmp(&(&b.path, b.kind.metadata_path())));
    all.skipped.sort();
    all
}

fn worker(root: &Path, queue: &Mutex<Queue>, wake: &Condvar) -> Walk {
    let mut out = Walk::default();
    let mut subdirs = Vec::new();
    loop {
        let dir = {
            let mut q = queue.lock().unwrap();
            loop {
                if let Some(d) = q.dirs.pop_back() {
                    q.busy += 1;
                    break Some(d);
                }
                if q.busy == 0 {
                    break None;
                }
                q = wake.wait(q).unwrap();
            }
        };
        let Some(dir) = dir else {
            wake.notify_all();
            return out;
        };
        read_one(root, &dir, &mut out, &mut subdirs);
        let mut q = queue.lock().unwrap();
        q.busy -= 1;
        let pushed = !subdirs.is_empty();
        q.dirs.extend(subdirs.drain(..));
        let done = q.busy == 0 && q.dirs.is_empty();
        drop(q);
        if pushed || done {
            wake.notify_all();
        }
    }
}

/// Reads one directory: counts, recognises a repository, queues subdirs.
fn read_one(root: &Path, dir: &Path, out: &mut Walk, subdirs: &mut Vec<PathBuf>) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            log::warn!("{}: skipped: {e}", dir.display());
            out.skipped.push((dir.to_path_buf(), e.to_string()));
            return;
        }
    };
    out.directories += 1;
    let (mut summary, mut config, mut objects, mut repomd) = (false, false, false, false);
    let first_sub = subdirs.len();
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let Ok(ft) = entry.file_type() else { continue };
        let name = entry.file_name();
        if ft.is_dir() {
            objects |= name == "objects";
            subdirs.push(entry.path());
        } else if ft.is_file() {
            out.files += 1;
            summary |= name == "summary";
            config |= name == "config";
            repomd |= name == "repomd.xml";
        }
    }
    if summary && config && objects {
        subdirs.retain_mut_from(first_sub, |p| p.file_name() != Some(OsStr::new("objects")));
        out.repos.push(Found {
            path: relative(root, dir),
            kind: RepoKind::Ostree,
        });
    }
    if repomd && dir.file_name() == Some(OsStr::new("repodata")) {
        if let Some(parent) = dir.parent() {
            out.repos.push(Found {
                path: relative(root, parent),
                kind: RepoKind::Yum,
            });
        }
    }
}

trait RetainFrom<T> {
    fn retain_mut_from(&mut self, from: usize, keep: impl FnMut(&T) -> bool);
}

impl<T> RetainFrom<T> for Vec<T> {
    fn retain_mut_from(&mut self, from: usize, mut keep: impl FnMut(&T) -> bool) {
        let tail: Vec<T> = self.drain(from..).filter(|x| keep(x)).collect();
        self.extend(tail);
    }
}

/// `dir` relative to `root`, `/`-separated; `.` for the root.
pub(crate) fn relative(root: &Path, dir: &Path) -> String {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    let s: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if s.is_empty() {
        ".".to_string()
    } else {
        s.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_both_kinds_and_skips_objects() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for d in [
            "a/x86_64/os/repodata",
            "a/x86_64/os/Packages",
            "ost/objects/ab",
            "ost/refs/heads",
            "plain/sub",
        ] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        for f in [
            "a/x86_64/os/repodata/repomd.xml",
            "a/x86_64/os/Packages/p.rpm",
            "ost/summary",
            "ost/config",
            "ost/objects/ab/cd.commit",
            "plain/sub/f",
        ] {
            fs::write(r.join(f), b"x").unwrap();
        }
        let w = walk(r, 2);
        assert_eq!(
            w.repos,
            vec![
                Found {
                    path: "a/x86_64/os".into(),
                    kind: RepoKind::Yum
                },
                Found {
                    path: "ost".into(),
                    kind: RepoKind::Ostree
                },
            ]
        );
        // objects/ab/cd.commit is not counted: the walk did not go there.
        assert_eq!(w.files, 5);
        assert!(w.skipped.is_empty());
    }

    #[test]
    fn root_itself_can_be_a_repo() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("repodata")).unwrap();
        fs::write(dir.path().join("repodata/repomd.xml"), b"x").unwrap();
        let w = walk(dir.path(), 3);
        assert_eq!(w.repos[0].path, ".");
        assert_eq!(w.directories, 2);
    }
}
