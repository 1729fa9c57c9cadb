//! The unpacked-package cache: each RPM's payload decompressed once, so
//! that later composes lay unchanged packages down with hard links
//! instead of decompressing and writing them again (what rpm-ostree's
//! pkgcache repository does for it).
//!
//! An entry is `<cachedir>/pkgcache/<rpm sha256>/`: the payload's files,
//! flat, named by their index in the RPM header (so no payload path ever
//! becomes a cache path), and an `index` with each file's sha256 and
//! mode. Entries appear by rename only when complete and synced to disk;
//! leftovers of a killed compose are removed by the next one.
//!
//! Hard links share one inode between the cache and the tree being
//! composed, so a scriptlet that writes into a file in place would write
//! into the cache. Every link is therefore witnessed: its ctime is noted
//! when it is made, the clock is let pass that tick before any scriptlet
//! runs, and before the commit every witnessed inode whose ctime moved
//! is compared with the index. A cache file that no longer matches
//! evicts its whole entry. One compose uses a cache at a time (a lock),
//! so no compose can see another one's scriptlets at work.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::lock::{self, Held};

/// Bumped when the layout of an entry changes: older entries are rebuilt.
const FORMAT: u32 = 1;
/// Mode bits a cache file never carries: a setuid binary must not sit in
/// the cache with its privileges. Files that need them are copied into
/// the tree instead of linked.
pub const PRIVILEGED_BITS: u32 = 0o6000;
/// Entries unused this long are removed after a compose.
const MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

/// One payload file of an entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedFile {
    /// Index in the RPM header's file list.
    pub index: usize,
    /// sha256 of its content.
    pub sha256: String,
    /// Its permission bits in the cache (without [`PRIVILEGED_BITS`]).
    pub mode: u32,
    /// A symlink (no content to check: it cannot be written through).
    pub symlink: bool,
}

#[derive(Serialize, Deserialize)]
struct Index {
    format: u32,
    nevra: String,
    files: Vec<CachedFile>,
}

/// A complete entry: where its files are and what they hold.
pub struct Entry {
    /// The entry's directory.
    pub dir: PathBuf,
    /// Payload files with content, by header index.
    pub files: HashMap<usize, CachedFile>,
}

impl Entry {
    /// The cache file of header index `i`.
    pub fn file(&self, i: usize) -> PathBuf {
        self.dir.join("f").join(i.to_string())
    }
}

/// The cache, locked for this compose.
pub struct PkgCache {
    dir: PathBuf,
    dev: u64,
    /// Entries extracted by this compose, by sha256: still under their
    /// temporary names until [`PkgCache::publish`].
    new: Mutex<HashMap<String, PathBuf>>,
    hits: AtomicU64,
    extracted: AtomicU64,
    _lock: Held,
}

impl PkgCache {
    /// Opens (creating) `<cachedir>/pkgcache`, waiting while another
    /// compose uses it, and removes what a killed compose left there.
    pub fn open(cachedir: &Path) -> anyhow::Result<PkgCache> {
        let dir = cachedir.join("pkgcache");
        fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create the package cache", dir.display()))?;
        // Payloads hold whatever their packages hold: not for other users.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let held = lock::exclusive(&dir, "package cache")?;
        for e in fs::read_dir(&dir)?.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                log::debug!(
                    "removing {}, left by an interrupted compose",
                    e.path().display()
                );
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let dev = fs::metadata(&dir)?.dev();
        Ok(PkgCache {
            dir,
            dev,
            new: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            extracted: AtomicU64::new(0),
            _lock: held,
        })
    }

    /// The pool of directories for trees assembled beside the cache.
    pub fn dir_pool(&self) -> std::io::Result<crate::dirpool::DirPool> {
        crate::dirpool::DirPool::open(&self.dir.join("dirs"))
    }

    /// Whether `path` is on the cache's filesystem (hard links can reach it).
    pub fn same_filesystem(&self, path: &Path) -> bool {
        fs::metadata(path).is_ok_and(|m| m.dev() == self.dev)
    }

    /// The entry of the RPM at `rpm` (whose sha256 is `sha256`, already
    /// verified), extracting it first when the cache lacks it.
    pub fn entry(&self, sha256: &str, rpm: &Path, nevra: &str) -> anyhow::Result<Entry> {
        if !is_sha256(sha256) {
            anyhow::bail!("{nevra}: `{sha256}` is not a sha256 checksum");
        }
        let dir = self.dir.join(sha256);
        match read_index(&dir) {
            Ok(Some(files)) => {
                // Its age is its last use: pruning keeps what is in use.
                touch(&dir);
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Entry { dir, files });
            }
            Ok(None) => {}
            Err(e) => {
                log::warn!("{nevra}: cached payload unusable ({e:#}); extracting it again");
                self.evict(sha256);
            }
        }
        let tmp = self
            .dir
            .join(format!(".new-{sha256}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let files = extract(rpm, nevra, &tmp).inspect_err(|_| {
            let _ = fs::remove_dir_all(&tmp);
        })?;
        self.extracted.fetch_add(1, Ordering::Relaxed);
        self.new
            .lock()
            .expect("no panics")
            .insert(sha256.to_string(), tmp.clone());
        Ok(Entry {
            dir: tmp,
            files: files.into_iter().map(|f| (f.index, f)).collect(),
        })
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
        Ok(())
    }

    /// Removes the entry of `sha256` (renamed away first, so that no
    /// half-removed entry is ever taken for a complete one).
    pub fn evict(&self, sha256: &str) {
        if let Some(tmp) = self.new.lock().expect("no panics").remove(sha256) {
            let _ = fs::remove_dir_all(tmp);
            return;
        }
        let dir = self.dir.join(sha256);
        let trash = self.dir.join(format!(".evicted-{sha256}"));
        if fs::rename(&dir, &trash).is_ok() {
            let _ = fs::remove_dir_all(&trash);
        }
    }

    /// Compares every witnessed link with the index and evicts entries
    /// whose files were changed in place; returns how many were evicted.
    pub fn check(&self, witness: &Witness) -> anyhow::Result<usize> {
        let mut bad: HashSet<&str> = HashSet::new();
        for w in &witness.links {
            if bad.contains(w.sha256.as_str()) {
                continue;
            }
            let unchanged = match fs::symlink_metadata(&w.path) {
                Ok(m) if ctime(&m) == w.ctime => true,
                // The ctime also moves when a link is added or removed:
                // only the content and mode say whether it was written.
                Ok(m) => {
                    m.mode() & 0o7777 == w.mode
                        && fs::read(&w.path)
                            .is_ok_and(|data| file_details::sha256_hex(&data) == w.expected)
                }
                Err(_) => false,
            };
            if !unchanged {
                log::warn!(
                    "{}: a file of its cached payload was changed during the compose (by a scriptlet?); dropping it from the package cache",
                    w.nevra
                );
                bad.insert(&w.sha256);
            }
        }
        for sha256 in &bad {
            self.evict(sha256);
        }
        Ok(bad.len())
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
                self.evict(&name);
            }
        }
    }
}

fn read_index(dir: &Path) -> anyhow::Result<Option<HashMap<usize, CachedFile>>> {
    let text = match fs::read(dir.join("index")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let index: Index = serde_json::from_slice(&text)?;
    if index.format != FORMAT {
        anyhow::bail!("format {} (now {FORMAT})", index.format);
    }
    Ok(Some(
        index.files.into_iter().map(|f| (f.index, f)).collect(),
    ))
}

/// Decompresses the payload of `rpm` into the new entry `dir`.
fn extract(rpm: &Path, nevra: &str, dir: &Path) -> anyhow::Result<Vec<CachedFile>> {
    let pkg = rpm::Package::open(rpm).with_context(|| format!("{nevra}: cannot read the RPM"))?;
    let index_of: HashMap<String, usize> = pkg
        .metadata
        .get_file_entries()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path().to_string_lossy().into_owned(), i))
        .collect();
    let files_dir = dir.join("f");
    fs::create_dir_all(&files_dir)?;
    let mut out = Vec::new();
    for f in pkg
        .files()
        .with_context(|| format!("{nevra}: cannot read the payload"))?
    {
        let f = f.with_context(|| format!("{nevra}: corrupt payload"))?;
        let path = f.metadata.path().to_string_lossy().into_owned();
        let index = || {
            index_of
                .get(&path)
                .copied()
                .with_context(|| format!("{nevra}: payload file `{path}` is not in the header"))
        };
        if f.metadata.file_type() == rpm::FileType::SymbolicLink {
            // Symlinks too are linked rather than made: each one made is
            // an inode to allocate.
            let Some(to) = f.metadata.linkto() else {
                continue;
            };
            let index = index()?;
            let file = files_dir.join(index.to_string());
            std::os::unix::fs::symlink(to, &file)
                .with_context(|| format!("{}: cannot write", file.display()))?;
            crate::unpack::set_mtime(&file, f.metadata.modified_at().0 as i64, true);
            out.push(CachedFile {
                index,
                sha256: String::new(),
                mode: 0o777,
                symlink: true,
            });
            continue;
        }
        let Some(content) = f.content() else { continue };
        if f.metadata.file_type() != rpm::FileType::Regular {
            continue;
        }
        let index = index()?;
        let mode = f.metadata.permissions() as u32 & 0o7777 & !PRIVILEGED_BITS;
        let file = files_dir.join(index.to_string());
        fs::write(&file, content).with_context(|| format!("{}: cannot write", file.display()))?;
        fs::set_permissions(&file, fs::Permissions::from_mode(mode))?;
        crate::unpack::set_mtime(&file, f.metadata.modified_at().0 as i64, false);
        out.push(CachedFile {
            index,
            sha256: file_details::sha256_hex(content),
            mode,
            symlink: false,
        });
    }
    let index = Index {
        format: FORMAT,
        nevra: nevra.to_string(),
        files: out.clone(),
    };
    fs::write(dir.join("index"), serde_json::to_vec(&index)?)?;
    Ok(out)
}

fn is_sha256(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn touch(dir: &Path) {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: a valid C string; null times mean "now".
    unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0) };
}

fn ctime(m: &fs::Metadata) -> (i64, i64) {
    (m.ctime(), m.ctime_nsec())
}

/// One hard link from the cache into the tree.
struct Link {
    /// The cache file: the tree's path may be replaced or removed later.
    path: PathBuf,
    ctime: (i64, i64),
    mode: u32,
    expected: String,
    sha256: String,
    nevra: String,
}

/// The links made into the tree, with the ctime each had when made.
#[derive(Default)]
pub struct Witness {
    links: Vec<Link>,
    /// The newest ctime noted since the clock last passed one.
    pending: Option<(i64, i64)>,
}

impl Witness {
    /// Notes the link just made to `source`, the cache file `cached` of
    /// package `sha256`.
    pub fn record(
        &mut self,
        source: &Path,
        cached: &CachedFile,
        sha256: &str,
        nevra: &str,
    ) -> std::io::Result<()> {
        let m = fs::symlink_metadata(source)?;
        let c = ctime(&m);
        self.pending = Some(self.pending.map_or(c, |p| p.max(c)));
        self.links.push(Link {
            path: source.to_path_buf(),
            ctime: c,
            mode: cached.mode,
            expected: cached.sha256.clone(),
            sha256: sha256.to_string(),
            nevra: nevra.to_string(),
        });
        Ok(())
    }

    /// Waits until the clock that stamps ctimes has moved past every
    /// noted one, so that whatever runs next cannot change a linked file
    /// without changing its ctime. Call before any scriptlet.
    pub fn settle(&mut self) {
        let Some(newest) = self.pending.take() else {
            return;
        };
        // The kernel stamps ctimes from its coarse clock (a tick of a few
        // milliseconds), so a write in the same tick as the link could
        // leave the ctime as noted.
        while coarse_now() <= newest {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// How many links were made.
    pub fn len(&self) -> usize {
        self.links.len()
    }
}

fn coarse_now() -> (i64, i64) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    (ts.tv_sec, ts.tv_nsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package with a plain file, a setuid binary and a hard-link pair.
    fn package(out: &Path) -> (PathBuf, String) {
        let rpm = testkit::build_rpm(
            "Name: cached\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\nBuildArch: noarch\n\
             %description\nd\n%install\nmkdir -p %{buildroot}/usr/bin %{buildroot}/usr/share/c\n\
             echo plain > %{buildroot}/usr/share/c/plain\n\
             echo suid > %{buildroot}/usr/bin/su-ish\n\
             echo same > %{buildroot}/usr/share/c/one\n\
             ln %{buildroot}/usr/share/c/one %{buildroot}/usr/share/c/two\n\
             ln -s plain %{buildroot}/usr/share/c/sym\n\
             %files\n/usr/share/c\n%attr(4755,root,root) /usr/bin/su-ish\n",
            out,
        );
        let sha = file_details::FileDetails::of_path(&rpm).unwrap().sha256;
        (rpm, sha)
    }

    fn by_content(entry: &Entry, text: &str) -> (PathBuf, CachedFile) {
        let f = entry
            .files
            .values()
            .filter(|f| !f.symlink)
            .find(|f| fs::read(entry.file(f.index)).unwrap() == text.as_bytes())
            .unwrap_or_else(|| panic!("no cached file holds {text:?}"));
        (entry.file(f.index), f.clone())
    }

    #[test]
    fn entries_are_extracted_once_and_published_whole() {
        let d = tempfile::tempdir().unwrap();
        let (rpm, sha) = package(&d.path().join("rpms"));
        let cache = PkgCache::open(&d.path().join("cache")).unwrap();
        let e = cache.entry(&sha, &rpm, "cached-1-1").unwrap();
        // Not visible under its name until published.
        assert!(!d.path().join("cache/pkgcache").join(&sha).exists());
        // The hard-link pair is stored once, the symlink as a symlink; no
        // file keeps setuid.
        assert_eq!(e.files.len(), 4, "{:?}", e.files);
        let sym = e.files.values().find(|f| f.symlink).unwrap();
        assert_eq!(
            fs::read_link(e.file(sym.index)).unwrap(),
            Path::new("plain")
        );
        let (suid, meta) = by_content(&e, "suid\n");
        assert_eq!(meta.mode, 0o755);
        assert_eq!(fs::metadata(&suid).unwrap().mode() & 0o7777, 0o755);
        cache.publish().unwrap();
        assert!(d.path().join("cache/pkgcache").join(&sha).is_dir());
        assert_eq!(cache.counts(), (0, 1));
        let again = cache.entry(&sha, &rpm, "cached-1-1").unwrap();
        assert_eq!(again.files.len(), 4);
        assert_eq!(cache.counts(), (1, 1));
        drop(cache);

        // A killed compose's half-made entry is removed by the next one,
        // and never taken for an entry.
        let half = d.path().join(format!("cache/pkgcache/.new-{sha}-1"));
        fs::create_dir_all(half.join("f")).unwrap();
        let cache = PkgCache::open(&d.path().join("cache")).unwrap();
        assert!(!half.exists());
        assert!(
            cache.entry("zz", &rpm, "x").is_err(),
            "a bad key is refused"
        );
    }

    #[test]
    fn writes_through_a_link_evict_the_entry_other_changes_do_not() {
        let d = tempfile::tempdir().unwrap();
        let (rpm, sha) = package(&d.path().join("rpms"));
        let cache = PkgCache::open(&d.path().join("cache")).unwrap();
        cache.entry(&sha, &rpm, "cached-1-1").unwrap();
        cache.publish().unwrap();
        let e = cache.entry(&sha, &rpm, "cached-1-1").unwrap();
        let tree = d.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let mut witness = Witness::default();
        for text in ["plain\n", "same\n"] {
            let (source, meta) = by_content(&e, text);
            let at = tree.join(text.trim());
            fs::hard_link(&source, &at).unwrap();
            witness.record(&source, &meta, &sha, "cached-1-1").unwrap();
        }
        witness.settle();
        // Unlinking and relinking move the ctime but change nothing.
        fs::remove_file(tree.join("same")).unwrap();
        assert_eq!(cache.check(&witness).unwrap(), 0);
        assert!(d.path().join("cache/pkgcache").join(&sha).is_dir());

        // An append right after the links, in the same clock tick as
        // they were made, is still seen.
        let mut witness = Witness::default();
        let (source, meta) = by_content(&e, "plain\n");
        fs::remove_file(tree.join("plain")).unwrap();
        fs::hard_link(&source, tree.join("plain")).unwrap();
        witness.record(&source, &meta, &sha, "cached-1-1").unwrap();
        witness.settle();
        use std::io::Write;
        fs::OpenOptions::new()
            .append(true)
            .open(tree.join("plain"))
            .unwrap()
            .write_all(b"tampered\n")
            .unwrap();
        assert_eq!(cache.check(&witness).unwrap(), 1);
        assert!(!d.path().join("cache/pkgcache").join(&sha).exists());
        // The next use extracts it afresh.
        let fresh = cache.entry(&sha, &rpm, "cached-1-1").unwrap();
        let (source, _) = by_content(&fresh, "plain\n");
        assert_eq!(fs::read_to_string(source).unwrap(), "plain\n");
    }

    #[test]
    fn a_chmod_through_a_link_evicts_too() {
        let d = tempfile::tempdir().unwrap();
        let (rpm, sha) = package(&d.path().join("rpms"));
        let cache = PkgCache::open(&d.path().join("cache")).unwrap();
        let e = cache.entry(&sha, &rpm, "cached-1-1").unwrap();
        let (source, meta) = by_content(&e, "plain\n");
        let mut witness = Witness::default();
        witness.record(&source, &meta, &sha, "cached-1-1").unwrap();
        witness.settle();
        fs::set_permissions(&source, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(cache.check(&witness).unwrap(), 1);
    }
}
