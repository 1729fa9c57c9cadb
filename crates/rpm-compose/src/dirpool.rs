//! Directories recycled from one compose's tree to the next.
//!
//! With the package cache, a tree is mostly hard links, which cost little;
//! its directories are what is left to create, and creating an inode is
//! the slow part of a disk filesystem (ext4 searches its inode tables for
//! a free one, skipping recently freed ones: a fraction of a millisecond
//! each). So a finished tree is not deleted: its links are removed and its
//! emptied directories are renamed into the pool, and the next tree takes
//! its directories from there. A pooled directory is empty, and it gets
//! its mode set when taken, so nothing of the old tree carries over.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::inode::{self, c_path};

/// Empty directories waiting for a tree, in one directory of the tree's
/// filesystem.
pub struct DirPool {
    dir: PathBuf,
    free: Vec<OsString>,
    next: u64,
    /// Inode flags and xattrs (an SELinux label, say) of a directory made
    /// here: a pooled one must carry nothing else (a script's `chattr` or
    /// default ACL must not reach the next tree).
    fresh_flags: libc::c_long,
    fresh_xattrs: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl DirPool {
    /// Opens (creating) the pool at `dir`.
    pub fn open(dir: &Path) -> io::Result<DirPool> {
        fs::create_dir_all(dir)?;
        let free: Vec<OsString> = fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        let next = free
            .iter()
            .filter_map(|n| n.to_str()?.parse::<u64>().ok())
            .max()
            .map_or(0, |m| m + 1);
        let probe = dir.join(".probe");
        let _ = fs::remove_dir(&probe);
        fs::create_dir(&probe)?;
        let fresh_flags = inode::flags(&probe).unwrap_or(0);
        let fresh_xattrs = inode::xattrs(&probe);
        fs::remove_dir(&probe)?;
        Ok(DirPool {
            dir: dir.to_path_buf(),
            free,
            next,
            fresh_flags,
            fresh_xattrs,
        })
    }

    /// Makes an empty directory at `at` (where nothing is) with mode `mode`.
    pub fn make(&mut self, at: &Path, mode: u32) -> io::Result<()> {
        loop {
            let Some(name) = self.free.pop() else {
                fs::create_dir(at)?;
                break;
            };
            match rename_noreplace(&self.dir.join(&name), at) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        fs::set_permissions(at, fs::Permissions::from_mode(mode))
    }

    /// Empties the tree at `root` (which stays, empty) and keeps its
    /// directories for the next one: only those that carry nothing a
    /// script could have set (owner, xattrs such as a default ACL, inode
    /// flags); the others are removed.
    pub fn recycle(&mut self, root: &Path) -> io::Result<()> {
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        let mut stack = vec![(root.to_path_buf(), false)];
        while let Some((dir, emptied)) = stack.pop() {
            if emptied {
                if dir != root {
                    if self.reusable(&dir, me) {
                        let name = OsString::from(self.next.to_string());
                        self.next += 1;
                        fs::rename(&dir, self.dir.join(&name))?;
                        self.free.push(name);
                    } else {
                        fs::remove_dir(&dir)?;
                    }
                }
                continue;
            }
            // Scripts may have left directories we could not write into.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
            stack.push((dir.clone(), true));
            for e in fs::read_dir(&dir)? {
                let e = e?;
                if e.file_type()?.is_dir() {
                    stack.push((e.path(), false));
                } else {
                    fs::remove_file(e.path())?;
                }
            }
        }
        Ok(())
    }

    fn reusable(&self, dir: &Path, me: u32) -> bool {
        fs::symlink_metadata(dir).is_ok_and(|m| m.uid() == me && m.gid() == egid())
            && self.fresh_xattrs.is_some()
            && inode::xattrs(dir) == self.fresh_xattrs
            // An htree index only says the directory was once large.
            && inode::flags(dir).is_some_and(|f| f & !INDEX_FL == self.fresh_flags & !INDEX_FL)
    }
}

/// ext4's "hashed directory" flag (`FS_INDEX_FL`).
const INDEX_FL: libc::c_long = 0x1000;

fn egid() -> u32 {
    // SAFETY: getegid cannot fail.
    unsafe { libc::getegid() }
}

/// `rename` that fails rather than replace what is at `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (f, t) = (c_path(from)?, c_path(to)?);
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn recycled_directories_come_back_empty_with_the_mode_asked() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        fs::create_dir_all(tree.join("a/b/c")).unwrap();
        fs::write(tree.join("a/b/file"), "x").unwrap();
        std::os::unix::fs::symlink("b", tree.join("a/link")).unwrap();
        fs::set_permissions(tree.join("a/b"), fs::Permissions::from_mode(0o500)).unwrap();
        let inode = fs::metadata(tree.join("a/b/c")).unwrap().ino();

        let mut pool = DirPool::open(&d.path().join("pool")).unwrap();
        pool.recycle(&tree).unwrap();
        assert_eq!(fs::read_dir(&tree).unwrap().count(), 0, "tree not emptied");
        assert_eq!(fs::read_dir(d.path().join("pool")).unwrap().count(), 3);

        // A new pool over the same directory finds them, names new ones
        // apart from them, and hands out the same inodes.
        let mut pool = DirPool::open(&d.path().join("pool")).unwrap();
        assert_eq!(pool.next, 3);
        let mut inodes = Vec::new();
        for (i, mode) in [0o755, 0o700, 0o555, 0o750].into_iter().enumerate() {
            let at = tree.join(format!("n{i}"));
            pool.make(&at, mode).unwrap();
            let m = fs::metadata(&at).unwrap();
            assert_eq!(m.mode() & 0o7777, mode);
            assert_eq!(fs::read_dir(&at).unwrap().count(), 0);
            inodes.push(m.ino());
        }
        assert!(
            inodes.contains(&inode),
            "the pooled directories were not reused"
        );
        assert_eq!(fs::read_dir(d.path().join("pool")).unwrap().count(), 0);
    }
}
