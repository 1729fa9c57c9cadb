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
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Empty directories waiting for a tree, in one directory of the tree's
/// filesystem.
pub struct DirPool {
    dir: PathBuf,
    free: Vec<OsString>,
    next: u64,
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
        Ok(DirPool {
            dir: dir.to_path_buf(),
            free,
            next,
        })
    }

    /// Makes an empty directory at `at` with mode `mode`.
    pub fn make(&mut self, at: &Path, mode: u32) -> io::Result<()> {
        loop {
            let Some(name) = self.free.pop() else {
                fs::create_dir(at)?;
                break;
            };
            match fs::rename(self.dir.join(&name), at) {
                Ok(()) => break,
                // Gone, or not empty after all: try another.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTEMPTY)) => {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        fs::set_permissions(at, fs::Permissions::from_mode(mode))
    }

    /// Empties the tree at `root` (which stays, empty) and keeps its
    /// directories for the next one.
    pub fn recycle(&mut self, root: &Path) -> io::Result<()> {
        let mut stack = vec![(root.to_path_buf(), false)];
        while let Some((dir, emptied)) = stack.pop() {
            if emptied {
                if dir != root {
                    let name = OsString::from(self.next.to_string());
                    self.next += 1;
                    fs::rename(&dir, self.dir.join(&name))?;
                    self.free.push(name);
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
