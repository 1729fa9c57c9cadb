//! Whether the cache files linked into a tree were changed through it.
//!
//! Each link is noted with what its inode looked like right after it was
//! made. At the end every noted inode must still have that mode, owner,
//! size, mtime, xattrs and inode flags, and the content the index
//! promises. The
//! content check costs nothing where the commit already checksummed the
//! file (the object of a root-owned file without xattrs is exactly what
//! the index holds); files the tree no longer shows (removed, replaced)
//! are read and checksummed here. No timestamp is trusted to reveal a
//! write: a script can restore an mtime, and ctimes are only as fine as
//! the filesystem keeps them.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::{plain_object, CachedFile};
use crate::inode;

/// One hard link from the cache into the tree, as its inode was.
struct Link {
    /// The cache file: the tree's path may be replaced or removed later.
    path: PathBuf,
    stat: inode::Stat,
    /// Its xattrs (an SELinux label, say) as linked.
    xattrs: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    object: String,
    sha256: String,
    nevra: String,
}

/// The links made into a tree.
#[derive(Default)]
pub struct Witness {
    links: Vec<Link>,
}

impl Witness {
    /// Notes the link just made to `source`, the cache file `cached` of
    /// package `sha256` (`nevra` for messages).
    pub fn record(
        &mut self,
        source: &Path,
        cached: &CachedFile,
        sha256: &str,
        nevra: &str,
    ) -> std::io::Result<()> {
        self.links.push(Link {
            path: source.to_path_buf(),
            stat: inode::stat(source)?,
            xattrs: inode::xattrs(source),
            object: cached.object.clone(),
            sha256: sha256.to_string(),
            nevra: nevra.to_string(),
        });
        Ok(())
    }

    /// How many links were made.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// The packages (sha256, nevra) one of whose linked files changed.
    /// `known`: content objects by (device, inode), from the commit.
    pub fn changed(&self, known: &HashMap<(u64, u64), String>) -> Vec<(String, String)> {
        let mut bad: Vec<(String, String)> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for w in &self.links {
            if seen.contains(w.sha256.as_str()) {
                continue;
            }
            if !w.unchanged(known) {
                seen.insert(&w.sha256);
                bad.push((w.sha256.clone(), w.nevra.clone()));
            }
        }
        bad
    }
}

impl Link {
    fn unchanged(&self, known: &HashMap<(u64, u64), String>) -> bool {
        // Mode, owner, size, mtime and inode flags in one statx.
        let same_inode = inode::stat(&self.path).is_ok_and(|s| s == self.stat)
            && self.xattrs.is_some()
            && inode::xattrs(&self.path) == self.xattrs;
        same_inode
            && match known.get(&self.stat.id) {
                Some(object) => *object == self.object,
                None => fs::read(&self.path)
                    .is_ok_and(|data| plain_object(self.stat.mode, &data) == self.object),
            }
    }
}
