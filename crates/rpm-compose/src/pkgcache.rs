//! The unpacked-package cache: each RPM's payload decompressed once, so
//! that later composes lay unchanged packages down with hard links
//! instead of decompressing and writing them again (what rpm-ostree's
//! pkgcache repository does for it).
//!
//! An entry is `<cachedir>/pkgcache/<rpm sha256>/`: the payload's regular
//! files and symlinks, flat, named by their index in the RPM header (so no
//! payload path ever becomes a cache path), and an `index` with the
//! payload order and, per file, its mode and the checksum of the ostree
//! object it makes when owned by root. Entries appear by rename only when
//! complete and synced to disk; leftovers of a killed compose are removed
//! by the next one.
//!
//! Hard links share one inode between the cache and the tree, so a script
//! that writes into a file in place writes into the cache. Every link is
//! therefore checked once the tree is done ([`witness`]): its metadata
//! against what it had when linked, its content against the index (for
//! free where the commit already checksummed it). A changed file evicts
//! its package's entry. A compose that dies before that check leaves an
//! `in-use` marker, and the next compose drops the whole cache. One
//! compose uses a cache at a time (a lock), so none sees another's
//! scripts at work.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::lock::{self, Held};

pub mod witness;

pub use witness::Witness;

/// Bumped when the layout of an entry changes: older entries are rebuilt.
const FORMAT: u32 = 2;
/// Mode bits a cache file never carries: a setuid binary must not sit in
/// the cache with its privileges. Files that need them are copied into
/// the tree instead of linked.
pub const PRIVILEGED_BITS: u32 = 0o6000;
/// Entries unused this long are removed after a compose.
const MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
/// Present while a compose may have cache files linked into a tree that
/// scripts can write to, and not yet checked.
const IN_USE: &str = "in-use";
/// The directory pool (see [`crate::dirpool`]).
const DIRS: &str = "dirs";

/// One payload file of an entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedFile {
    /// Index in the RPM header's file list.
    pub index: usize,
    /// The ostree content object it makes owned by root:root without
    /// xattrs (empty for a symlink).
    pub object: String,
    /// Its permission bits in the cache (without [`PRIVILEGED_BITS`]).
    pub mode: u32,
    /// A symlink (cannot be written through: nothing to check).
    pub symlink: bool,
}

#[derive(Serialize, Deserialize)]
struct Index {
    format: u32,
    nevra: String,
    /// Header indices in payload order (ghosts last), as unpacking
    /// without the cache meets them.
    order: Vec<usize>,
    files: Vec<CachedFile>,
}

/// A complete entry: where its files are and what they hold.
pub struct Entry {
    /// The entry's directory.
    pub dir: PathBuf,
    /// Header indices in payload order.
    pub order: Vec<usize>,
    /// Payload files with content, by header index.
    pub files: HashMap<usize, CachedFile>,
}

impl Entry {
    /// The cache file of header index `i`.
    pub fn file(&self, i: usize) -> PathBuf {
        self.dir.join("f").join(i.to_string())
    }
}

/// The checksum of the content object `data` makes with permission bits
/// `mode`, owned by root, without xattrs.
pub fn plain_object(mode: u32, data: &[u8]) -> String {
    crate::archive::ArchiveWriter::checksum(&crate::archive::Object {
        uid: 0,
        gid: 0,
        mode: libc::S_IFREG | mode,
        symlink: None,
        xattrs: &[],
        data,
    })
}

/// The cache, locked for this compose.
pub struct PkgCache {
    dir: PathBuf,
    /// Entries extracted by this compose, by sha256: still under their
    /// temporary names until [`PkgCache::publish`].
    new: Mutex<HashMap<String, PathBuf>>,
    hits: AtomicU64,
    extracted: AtomicU64,
    /// Entries were handed out and their links not yet checked.
    unchecked: AtomicBool,
    _lock: Held,
}

impl PkgCache {
    /// Opens (creating) `<cachedir>/pkgcache`, waiting while another
    /// compose uses it; removes what a killed compose left there, and
    /// drops every entry if one died before checking its links.
    pub fn open(cachedir: &Path) -> anyhow::Result<PkgCache> {
        let dir = cachedir.join("pkgcache");
        fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create the package cache", dir.display()))?;
        // Payloads hold whatever their packages hold: not for other users.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let held = lock::exclusive(&dir, "package cache")?;
        let cache = PkgCache {
            dir,
            new: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            extracted: AtomicU64::new(0),
            unchecked: AtomicBool::new(false),
            _lock: held,
        };
        let suspect = cache.dir.join(IN_USE).exists();
        if suspect {
            log::warn!(
                "{}: the last compose using it stopped before checking the files it had linked; dropping every cached payload",
                cache.dir.display()
            );
        }
        for e in fs::read_dir(&cache.dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || (suspect && (is_sha256(&name) || name == DIRS)) {
                log::debug!("removing {}", e.path().display());
                fs::remove_dir_all(e.path())
                    .with_context(|| format!("{}: cannot remove", e.path().display()))?;
            }
        }
        // The marker must outlive a crash: written and synced before any
        // file can be linked.
        let marker = cache.dir.join(IN_USE);
        fs::File::create(&marker)?.sync_all()?;
        sync_dir(&cache.dir)?;
        Ok(cache)
    }

    /// The pool of directories for trees assembled beside the cache.
    pub fn dir_pool(&self) -> std::io::Result<crate::dirpool::DirPool> {
        crate::dirpool::DirPool::open(&self.dir.join(DIRS))
    }

    /// Whether hard links and renames reach `path` from the cache: same
    /// device is not enough (a bind mount is another mount).
    pub fn reaches(&self, path: &Path) -> bool {
        let probe = self.dir.join(".probe");
        let there = path.join(format!(".rpm-compose-probe-{}", std::process::id()));
        let _ = fs::remove_file(&probe);
        let ok = fs::write(&probe, b"").is_ok() && fs::hard_link(&probe, &there).is_ok();
        let _ = fs::remove_file(&there);
        let _ = fs::remove_file(&probe);
        ok
    }

    /// The entry of the RPM at `rpm` (whose sha256 is `sha256`, already
    /// verified), extracting it first when the cache lacks it.
    pub fn entry(&self, sha256: &str, rpm: &Path, nevra: &str) -> anyhow::Result<Entry> {
        if !is_sha256(sha256) {
            anyhow::bail!("{nevra}: `{sha256}` is not a sha256 checksum");
        }
        self.unchecked.store(true, Ordering::SeqCst);
        let dir = self.dir.join(sha256);
        match read_index(&dir) {
            Ok(Some(index)) => {
                // Its age is its last use: pruning keeps what is in use.
                touch(&dir);
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(entry_of(dir, index));
            }
            Ok(None) => {}
            Err(e) => {
                log::warn!("{nevra}: cached payload unusable ({e:#}); extracting it again");
                self.evict(sha256)?;
            }
        }
        let tmp = self
            .dir
            .join(format!(".new-{sha256}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let index = extract(rpm, nevra, &tmp).inspect_err(|_| {
            let _ = fs::remove_dir_all(&tmp);
        })?;
        self.extracted.fetch_add(1, Ordering::Relaxed);
        self.new
            .lock()
            .expect("no panics")
            .insert(sha256.to_string(), tmp.clone());
        Ok(entry_of(tmp, index))
    }

    /// Packages found in the cache and packages extracted, so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.extracted.load(Ordering::Relaxed),
        )
    }

    /// Makes the entries this compose extracted durable, then visible to
    /// later composes: a crash can lose them, never leave one that lies.
    /// Call after [`PkgCache::check`].
    pub fn publish(&self) -> anyhow::Result<()> {
        let new = std::mem::take(&mut *self.new.lock().expect("no panics"));
        if new.is_empty() {
            return Ok(());
        }
        let d = fs::File::open(&self.dir)?;
        // One syncfs for all of them: far cheaper than an fsync per file.
        // SAFETY: syncfs on a descriptor we own.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d)) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("{}: syncfs", self.dir.display()));
        }
        for (sha256, tmp) in new {
            let dir = self.dir.join(&sha256);
            fs::rename(&tmp, &dir)
                .with_context(|| format!("{}: cannot add to the package cache", dir.display()))?;
        }
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// Removes the entry of `sha256`: renamed away first (and that made
    /// durable), so that no half-removed entry is ever taken for a
    /// complete one.
    pub fn evict(&self, sha256: &str) -> anyhow::Result<()> {
        if let Some(tmp) = self.new.lock().expect("no panics").remove(sha256) {
            return fs::remove_dir_all(&tmp)
                .with_context(|| format!("{}: cannot remove", tmp.display()));
        }
        let dir = self.dir.join(sha256);
        let trash = self.dir.join(format!(".evicted-{sha256}"));
        match fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot evict", dir.display())),
        }
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&trash).with_context(|| format!("{}: cannot remove", trash.display()))
    }

    /// Checks every link `witness` saw (see [`witness`]) and evicts the
    /// entries whose files changed; `known` holds the content objects the
    /// commit computed, by (device, inode), for files owned by root
    /// without xattrs. Returns how many entries were evicted.
    pub fn check(
        &self,
        witness: &Witness,
        known: &HashMap<(u64, u64), String>,
    ) -> anyhow::Result<usize> {
        let bad = witness.changed(known);
        for (sha256, nevra) in &bad {
            log::warn!(
                "{nevra}: a file of its cached payload was changed during the compose (by a script?); dropping it from the package cache"
            );
            self.evict(sha256)?;
        }
        self.unchecked.store(false, Ordering::SeqCst);
        Ok(bad.len())
    }

    /// Leaves the `in-use` marker in place: the next compose drops every
    /// entry (for when links into a tree could not be removed).
    pub fn distrust(&self) {
        self.unchecked.store(true, Ordering::SeqCst);
    }

    /// Removes entries unused for a while, except those in `keep`.
    pub fn prune(&self, keep: &HashSet<String>) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_sha256(&name) || keep.contains(&name) {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > MAX_AGE);
            if old {
                log::debug!("pruning {name} from the package cache");
                if let Err(e) = self.evict(&name) {
                    log::warn!("{e:#}");
                }
            }
        }
    }
}

impl Drop for PkgCache {
    fn drop(&mut self) {
        // Links left unchecked (a panic, or a bug): the marker stays, and
        // the next compose drops the cache.
        if !self.unchecked.load(Ordering::SeqCst) {
            let _ = fs::remove_file(self.dir.join(IN_USE));
        }
    }
}

fn entry_of(dir: PathBuf, index: Index) -> Entry {
    Entry {
        dir,
        order: index.order,
        files: index.files.into_iter().map(|f| (f.index, f)).collect(),
    }
}

fn read_index(dir: &Path) -> anyhow::Result<Option<Index>> {
    let text = match fs::read(dir.join("index")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let index: Index = serde_json::from_slice(&text)?;
    if index.format != FORMAT {
        anyhow::bail!("format {} (now {FORMAT})", index.format);
    }
    // A file gone from the entry would only fail the link later.
    let present = fs::read_dir(dir.join("f"))?.count();
    if present != index.files.len() {
        anyhow::bail!("{present} files, its index lists {}", index.files.len());
    }
    Ok(Some(index))
}

/// Decompresses the payload of `rpm` into the new entry `dir`.
fn extract(rpm: &Path, nevra: &str, dir: &Path) -> anyhow::Result<Index> {
    let pkg = rpm::Package::open(rpm).with_context(|| format!("{nevra}: cannot read the RPM"))?;
    let mut index_of: HashMap<String, usize> = HashMap::new();
    for (i, e) in pkg
        .metadata
        .get_file_entries()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = e.path().to_string_lossy().into_owned();
        // Two entries of one path could make one cache file twice, the
        // second time through what the first made.
        if index_of.insert(path.clone(), i).is_some() {
            anyhow::bail!("{nevra}: the header lists `{path}` twice");
        }
    }
    let files_dir = dir.join("f");
    fs::create_dir_all(&files_dir)?;
    let mut order = Vec::new();
    let mut out = Vec::new();
    for f in pkg
        .files()
        .with_context(|| format!("{nevra}: cannot read the payload"))?
    {
        let f = f.with_context(|| format!("{nevra}: corrupt payload"))?;
        let path = f.metadata.path().to_string_lossy().into_owned();
        let index = index_of
            .get(&path)
            .copied()
            .with_context(|| format!("{nevra}: payload file `{path}` is not in the header"))?;
        order.push(index);
        let file = files_dir.join(index.to_string());
        let mtime = f.metadata.modified_at().0 as i64;
        let written = match f.metadata.file_type() {
            rpm::FileType::SymbolicLink => match f.metadata.linkto() {
                // symlink() never replaces: a second record of one index
                // fails here.
                Some(to) => {
                    std::os::unix::fs::symlink(to, &file)
                        .with_context(|| format!("{}: cannot write", file.display()))?;
                    crate::unpack::set_mtime(&file, mtime, true);
                    Some(CachedFile {
                        index,
                        object: String::new(),
                        mode: 0o777,
                        symlink: true,
                    })
                }
                None => None,
            },
            rpm::FileType::Regular => match f.content() {
                Some(content) => {
                    let mode = f.metadata.permissions() as u32 & 0o7777 & !PRIVILEGED_BITS;
                    write_new(&file, content, mode, mtime)
                        .with_context(|| format!("{}: cannot write", file.display()))?;
                    Some(CachedFile {
                        index,
                        object: plain_object(mode, content),
                        mode,
                        symlink: false,
                    })
                }
                None => None,
            },
            _ => None,
        };
        out.extend(written);
    }
    let index = Index {
        format: FORMAT,
        nevra: nevra.to_string(),
        order,
        files: out,
    };
    fs::write(dir.join("index"), serde_json::to_vec(&index)?)?;
    Ok(index)
}

/// Creates `file` (never through anything already there) with `data`,
/// `mode` and `mtime`, all on the open descriptor.
pub(crate) fn write_new(file: &Path, data: &[u8], mode: u32, mtime: i64) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(file)?;
    f.write_all(data)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime.max(0) as u64);
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("{}: cannot sync", dir.display()))
}

fn is_sha256(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn touch(dir: &Path) {
    let _ = fs::File::open(dir).and_then(|d| d.set_modified(SystemTime::now()));
}

#[cfg(test)]
mod tests;
