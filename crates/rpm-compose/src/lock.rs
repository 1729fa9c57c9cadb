//! Locks that make concurrent and interrupted composes safe.
//!
//! A compose holds an exclusive `flock` on the repository directory for
//! its whole run: a second compose into the same repository waits. Its
//! staging root holds a lock too, so the next run can tell a root left by
//! a killed compose (unlocked: removed) from one in use.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Holds a lock until dropped.
pub struct Held(#[allow(dead_code)] File);

fn flock(file: &File, blocking: bool) -> std::io::Result<bool> {
    let op = libc::LOCK_EX | if blocking { 0 } else { libc::LOCK_NB };
    // SAFETY: flock on an open descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Takes the repository's compose lock, waiting (and saying so) while
/// another compose holds it.
pub fn repo(path: &Path) -> anyhow::Result<Held> {
    exclusive(path, "repository")
}

/// Takes an exclusive lock on the directory `path` (`what` it is, for the
/// message), waiting while another compose holds it.
pub fn exclusive(path: &Path, what: &str) -> anyhow::Result<Held> {
    let dir =
        File::open(path).with_context(|| format!("{}: cannot open to lock", path.display()))?;
    if !flock(&dir, false)? {
        log::info!(
            "{}: another rpm-compose is using this {what}; waiting for it",
            path.display()
        );
        flock(&dir, true)?;
    }
    Ok(Held(dir))
}

/// A locked, empty directory for the new tree, removed when dropped.
pub struct StagingRoot {
    dir: tempfile::TempDir,
    _lock: Held,
}

impl StagingRoot {
    /// Makes one under `base/rpm-compose-roots`, first removing roots that
    /// killed composes left behind there.
    pub fn new(base: &Path) -> anyhow::Result<StagingRoot> {
        let roots = base.join("rpm-compose-roots");
        std::fs::create_dir_all(&roots)?;
        remove_stale(&roots);
        let dir = tempfile::Builder::new()
            .prefix("root-")
            .tempdir_in(&roots)
            .context("creating the staging root")?;
        let f = File::open(dir.path())?;
        flock(&f, true)?;
        Ok(StagingRoot {
            dir,
            _lock: Held(f),
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn remove_stale(roots: &Path) {
    let Ok(entries) = std::fs::read_dir(roots) else {
        return;
    };
    for e in entries.flatten() {
        let path: PathBuf = e.path();
        let Ok(f) = File::open(&path) else { continue };
        if let Ok(true) = flock(&f, false) {
            log::debug!("removing {} left by an interrupted compose", path.display());
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Where to assemble a tree of about `bytes`: `/dev/shm` when it has room
/// for twice that (creating tens of thousands of files on a disk
/// filesystem that just deleted as many is slow: ext4 searches its inode
/// tables for each one), else `fallback`.
pub fn staging_base(bytes: u64, fallback: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let Ok(c) = std::ffi::CString::new("/dev/shm") else {
        return fallback.to_path_buf();
    };
    // SAFETY: statvfs fills the struct we pass.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if shm.is_dir() && unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0 {
        let free = st.f_bavail as u64 * st.f_frsize as u64;
        if free > bytes.saturating_mul(2) {
            return shm.to_path_buf();
        }
    }
    fallback.to_path_buf()
}
