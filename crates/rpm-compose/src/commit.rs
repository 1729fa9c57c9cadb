//! Writing the tree as an ostree commit in one transaction: the ref moves
//! only when every object is written.
//!
//! libostree's own directory commit reads, checksums and compresses one
//! file at a time. Here the content objects are checksummed first and
//! written only when the repository lacks them (a recompose rewrites just
//! what changed), on one thread per core; the directory tree is then
//! assembled from the checksums. Owners and capabilities come from the
//! packages (the `meta` map), never from the files on disk.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, Context};
use gio::prelude::*;
use releng_manifest::progress::Progress;
use releng_manifest::ComposeStats;

use crate::archive;
use crate::unpack::Meta;

/// What a commit produced.
pub struct Committed {
    /// Commit checksum.
    pub commit: String,
    /// Checksum of the root tree (dirtree + dirmeta), as rpm-ostree reports it.
    pub content_checksum: String,
    /// Transaction statistics.
    pub stats: ComposeStats,
    /// The content object of every regular file owned by root without
    /// xattrs, by (device, inode): what the package cache checks its
    /// links against.
    pub by_inode: HashMap<(u64, u64), String>,
}

/// What the commit object says.
pub struct CommitSpec<'a> {
    /// The ref to move (`None`: the caller moves it).
    pub ref_: Option<&'a str>,
    /// The ref's previous commit.
    pub parent: Option<&'a str>,
    /// Subject line.
    pub subject: &'a str,
    /// `a{sv}` commit metadata.
    pub metadata: &'a glib::Variant,
    /// Commit time, seconds since the epoch.
    pub timestamp: u64,
}

/// A directory of the tree, by its path relative to the root ("" is the
/// root itself).
struct Dir {
    rel: String,
    mode: u32,
}

/// A regular file or symlink: a content object.
struct Leaf {
    rel: String,
    /// Index of its directory in the `Dir` list.
    dir: usize,
    name: String,
    mode: u32,
    size: u64,
    symlink: Option<String>,
    /// (device, inode).
    id: (u64, u64),
}

impl Leaf {
    /// Its bytes: the file's content, nothing for a symlink.
    fn read(&self, root: &Path) -> anyhow::Result<Vec<u8>> {
        match &self.symlink {
            Some(_) => Ok(Vec::new()),
            None => archive::read_file(&root.join(&self.rel)),
        }
    }

    /// It as a content object with `data` from [`Leaf::read`].
    fn object<'a>(
        &'a self,
        owner: (u32, u32),
        xattrs: &'a [(Vec<u8>, Vec<u8>)],
        data: &'a [u8],
    ) -> archive::Object<'a> {
        archive::Object {
            uid: owner.0,
            gid: owner.1,
            mode: self.mode,
            symlink: self.symlink.as_deref(),
            xattrs,
            data,
        }
    }
}

/// Commits `root` as `spec` says; `meta` gives owners and capabilities.
pub fn commit(
    repo: &ostree::Repo,
    root: &Path,
    meta: &HashMap<String, Meta>,
    spec: &CommitSpec,
) -> anyhow::Result<Committed> {
    let cancel = gio::Cancellable::NONE;
    let (dirs, leaves) = scan(root)?;
    let xattrs = Xattrs::new(meta)?;
    repo.prepare_transaction(cancel)
        .context("starting an ostree transaction")?;
    let result = (|| -> anyhow::Result<Committed> {
        let counts = DirectCounts::default();
        let sums = write_contents(repo, root, &leaves, meta, &xattrs, &counts)?;
        log::debug!("content objects checked and written");
        let mtree = build_tree(repo, &dirs, &leaves, &sums, meta, &xattrs)?;
        let by_inode = leaves
            .iter()
            .zip(&sums)
            .filter(|(leaf, _)| {
                let path = format!("/{}", leaf.rel);
                leaf.symlink.is_none()
                    && owner(meta, &path) == (0, 0)
                    && xattrs.pairs(&path).is_empty()
            })
            .map(|(leaf, sum)| (leaf.id, sum.clone()))
            .collect();
        let root_file = repo
            .write_mtree(&mtree, cancel)?
            .downcast::<ostree::RepoFile>()
            .map_err(|_| anyhow!("write_mtree returned no repository file"))?;
        let commit = repo
            .write_commit_with_time(
                spec.parent,
                Some(spec.subject),
                None,
                Some(spec.metadata),
                &root_file,
                spec.timestamp,
                cancel,
            )
            .context("writing the commit")?
            .to_string();
        if let Some(r) = spec.ref_ {
            repo.transaction_set_ref(None, r, Some(&commit));
        }
        let stats = repo
            .commit_transaction(cancel)
            .context("committing the transaction")?;
        let (commit_v, _) = repo.load_commit(&commit)?;
        let content_checksum = ostree::commit_get_content_checksum(&commit_v)
            .map(|s| s.to_string())
            .unwrap_or_default();
        Ok(Committed {
            commit,
            content_checksum,
            by_inode,
            stats: ComposeStats {
                metadata_objects_total: stats.get_metadata_objects_total() as u64,
                metadata_objects_written: stats.get_metadata_objects_written() as u64,
                // Both write paths ask `has_object` first, so libostree
                // never sees the objects already present: the total is one
                // content object per regular file or symlink of the tree.
                content_objects_total: leaves.len() as u64,
                content_objects_written: stats.get_content_objects_written() as u64
                    + counts.objects.load(Ordering::Relaxed),
                content_bytes_written: stats.get_content_bytes_written()
                    + counts.bytes.load(Ordering::Relaxed),
                ..ComposeStats::default()
            },
        })
    })();
    if result.is_err() {
        let _ = repo.abort_transaction(cancel);
    }
    result
}

/// Lists the tree: directories in depth-first order (parents first),
/// regular files and symlinks. Anything else cannot be committed.
fn scan(root: &Path) -> anyhow::Result<(Vec<Dir>, Vec<Leaf>)> {
    let mut dirs = vec![Dir {
        rel: String::new(),
        mode: fs::symlink_metadata(root)?.mode(),
    }];
    let mut leaves = Vec::new();
    let mut i = 0;
    while i < dirs.len() {
        let rel = dirs[i].rel.clone();
        let path = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let mut entries: Vec<_> = fs::read_dir(&path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e
                .file_name()
                .into_string()
                .map_err(|n| anyhow!("{}: file name {n:?} is not UTF-8", path.display()))?;
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let md = e.metadata()?;
            let ft = md.file_type();
            if ft.is_dir() {
                dirs.push(Dir {
                    rel: child,
                    mode: md.mode(),
                });
            } else if ft.is_file() || ft.is_symlink() {
                let symlink = if ft.is_symlink() {
                    Some(
                        fs::read_link(e.path())?
                            .into_os_string()
                            .into_string()
                            .map_err(|t| anyhow!("/{child}: symlink target {t:?} is not UTF-8"))?,
                    )
                } else {
                    None
                };
                leaves.push(Leaf {
                    rel: child,
                    dir: i,
                    name,
                    mode: md.mode(),
                    size: md.len(),
                    symlink,
                    id: (md.dev(), md.ino()),
                });
            } else {
                log::warn!("/{child}: special files cannot be committed; dropped");
            }
        }
        i += 1;
    }
    Ok((dirs, leaves))
}

/// The `security.capability` values of the tree, by tree path: plain
/// bytes, so the writer threads can share them (GVariants are not Send).
struct Xattrs(HashMap<String, archive::XattrPairs>);

impl Xattrs {
    fn new(meta: &HashMap<String, Meta>) -> anyhow::Result<Xattrs> {
        let mut by_path = HashMap::new();
        for (path, m) in meta {
            if let Some(text) = &m.caps {
                let x = crate::caps::to_xattr(text)
                    .with_context(|| format!("{path}: file capabilities `{text}`"))?;
                by_path.insert(path.clone(), vec![(b"security.capability\0".to_vec(), x)]);
            }
        }
        Ok(Xattrs(by_path))
    }

    /// The `a(ayay)` ostree records for `tree_path` (empty for most).
    fn variant(&self, tree_path: &str) -> glib::Variant {
        archive::xattrs_variant(self.pairs(tree_path))
    }

    /// The same as `(name, value)` pairs.
    fn pairs(&self, tree_path: &str) -> &[(Vec<u8>, Vec<u8>)] {
        self.0.get(tree_path).map_or(&[], Vec::as_slice)
    }
}

fn file_info(mode: u32, size: u64, owner: (u32, u32), symlink: Option<&str>) -> gio::FileInfo {
    let info = gio::FileInfo::new();
    info.set_attribute_uint32("unix::uid", owner.0);
    info.set_attribute_uint32("unix::gid", owner.1);
    info.set_attribute_uint32("unix::mode", mode);
    match symlink {
        Some(target) => {
            info.set_file_type(gio::FileType::SymbolicLink);
            info.set_symlink_target(target);
            info.set_size(0);
        }
        None => {
            info.set_file_type(if mode & 0o170000 == 0o040000 {
                gio::FileType::Directory
            } else {
                gio::FileType::Regular
            });
            info.set_size(size as i64);
        }
    }
    info
}

fn owner(meta: &HashMap<String, Meta>, tree_path: &str) -> (u32, u32) {
    meta.get(tree_path)
        .map(|m| (m.uid, m.gid))
        .unwrap_or((0, 0))
}

/// Checksums every leaf and writes the content objects the repository
/// lacks, on one worker per core. Returns the checksums in leaf order.
fn write_contents(
    repo: &ostree::Repo,
    root: &Path,
    leaves: &[Leaf],
    meta: &HashMap<String, Meta>,
    xattrs: &Xattrs,
    counts: &DirectCounts,
) -> anyhow::Result<Vec<String>> {
    let direct = archive::ArchiveWriter::for_repo(repo);
    let progress = Progress::bar(leaves.len() as u64, "files").with_prefix("committing");
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<anyhow::Result<String>>>> =
        Mutex::new((0..leaves.len()).map(|_| None).collect());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(8);
    // The workers share the repository: libostree writes objects from
    // several threads during a pull, too.
    std::thread::scope(|s| {
        for _ in 0..workers {
            let repo = repo.clone();
            let (next, results, direct, counts, progress) =
                (&next, &results, &direct, &counts, &progress);
            s.spawn(move || {
                // One compressor per worker, reused for every object.
                let mut compressor = direct.as_ref().map(archive::ArchiveWriter::compressor);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(leaf) = leaves.get(i) else { break };
                    let tree_path = format!("/{}", leaf.rel);
                    let owner = owner(meta, &tree_path);
                    let r = match (direct, compressor.as_mut()) {
                        (Some(w), Some(c)) if leaf.size <= archive::MAX_DIRECT => write_direct(
                            &repo,
                            w,
                            c,
                            root,
                            leaf,
                            owner,
                            xattrs.pairs(&tree_path),
                            counts,
                        ),
                        _ => write_one(&repo, root, leaf, owner, xattrs.pairs(&tree_path)),
                    }
                    .with_context(|| format!("writing {tree_path} into the repository"));
                    results.lock().expect("no worker panics")[i] = Some(r);
                    progress.inc(1);
                }
            });
        }
    });
    progress.finish();
    results
        .into_inner()
        .expect("workers done")
        .into_iter()
        .map(|r| r.expect("every leaf was tried"))
        .collect()
}

/// Objects and bytes the direct archive writer wrote, which libostree's
/// transaction statistics do not see.
#[derive(Default)]
pub(crate) struct DirectCounts {
    objects: AtomicU64,
    bytes: AtomicU64,
}

#[allow(clippy::too_many_arguments)]
fn write_direct(
    repo: &ostree::Repo,
    w: &archive::ArchiveWriter,
    compressor: &mut libdeflater::Compressor,
    root: &Path,
    leaf: &Leaf,
    owner: (u32, u32),
    xattrs: &[(Vec<u8>, Vec<u8>)],
    counts: &DirectCounts,
) -> anyhow::Result<String> {
    let data = leaf.read(root)?;
    let obj = leaf.object(owner, xattrs, &data);
    let written = w.write(&obj, compressor, |sum| {
        Ok(repo.has_object(ostree::ObjectType::File, sum, gio::Cancellable::NONE)?)
    })?;
    if written.new {
        counts.objects.fetch_add(1, Ordering::Relaxed);
        counts.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    }
    Ok(written.checksum)
}

/// Writes one leaf through libostree: into a repository that is not an
/// archive, or a file too large for [`write_direct`].
///
/// Each file is read once. Up to [`archive::MAX_DIRECT`] it is held in
/// memory, checksummed (the checksum does not depend on the repository's
/// mode) and handed over only when the repository lacks it; a larger file
/// is streamed straight in and libostree checksums it on the way.
fn write_one(
    repo: &ostree::Repo,
    root: &Path,
    leaf: &Leaf,
    owner: (u32, u32),
    xattrs: &[(Vec<u8>, Vec<u8>)],
) -> anyhow::Result<String> {
    let cancel = gio::Cancellable::NONE;
    let xattrs_v = archive::xattrs_variant(xattrs);
    if leaf.symlink.is_some() || leaf.size <= archive::MAX_DIRECT {
        let data = leaf.read(root)?;
        let sum = archive::ArchiveWriter::checksum(&leaf.object(owner, xattrs, &data));
        if repo.has_object(ostree::ObjectType::File, &sum, cancel)? {
            return Ok(sum);
        }
        let info = file_info(leaf.mode, data.len() as u64, owner, leaf.symlink.as_deref());
        let input = gio::MemoryInputStream::from_bytes(&glib::Bytes::from_owned(data));
        let (stream, len) =
            ostree::raw_file_to_content_stream(&input, &info, Some(&xattrs_v), cancel)?;
        repo.write_content(Some(&sum), &stream, len, cancel)?;
        return Ok(sum);
    }
    let info = file_info(leaf.mode, leaf.size, owner, None);
    let input = gio::File::for_path(root.join(&leaf.rel)).read(cancel)?;
    let (stream, len) = ostree::raw_file_to_content_stream(&input, &info, Some(&xattrs_v), cancel)?;
    Ok(repo.write_content(None, &stream, len, cancel)?.to_hex())
}

/// Assembles the directory tree from the content checksums, writing one
/// dirmeta object per distinct (mode, owner, xattrs).
fn build_tree(
    repo: &ostree::Repo,
    dirs: &[Dir],
    leaves: &[Leaf],
    sums: &[String],
    meta: &HashMap<String, Meta>,
    xattrs: &Xattrs,
) -> anyhow::Result<ostree::MutableTree> {
    let cancel = gio::Cancellable::NONE;
    let mut trees: Vec<ostree::MutableTree> = Vec::with_capacity(dirs.len());
    let mut index: HashMap<&str, usize> = HashMap::new();
    // A tree has thousands of directories and a handful of distinct
    // (mode, owner, xattrs): each dirmeta is built and written once.
    let mut dirmetas: HashMap<(u32, (u32, u32), archive::XattrPairs), String> = HashMap::new();
    for (i, d) in dirs.iter().enumerate() {
        let tree_path = if d.rel.is_empty() {
            "/".to_string()
        } else {
            format!("/{}", d.rel)
        };
        let key = (
            d.mode,
            owner(meta, &tree_path),
            xattrs.pairs(&tree_path).to_vec(),
        );
        let csum = match dirmetas.get(&key) {
            Some(c) => c.clone(),
            None => {
                let info = file_info(d.mode, 0, key.1, None);
                let dirmeta =
                    ostree::create_directory_metadata(&info, Some(&xattrs.variant(&tree_path)));
                let c = repo
                    .write_metadata(ostree::ObjectType::DirMeta, None, &dirmeta, cancel)?
                    .to_hex();
                dirmetas.insert(key, c.clone());
                c
            }
        };
        let tree = match d.rel.rsplit_once('/') {
            _ if d.rel.is_empty() => ostree::MutableTree::new(),
            Some((parent, name)) => trees[index[parent]].ensure_dir(name)?,
            None => trees[0].ensure_dir(&d.rel)?,
        };
        tree.set_metadata_checksum(&csum);
        index.insert(d.rel.as_str(), i);
        trees.push(tree);
    }
    for (leaf, sum) in leaves.iter().zip(sums) {
        trees[leaf.dir].replace_file(&leaf.name, sum)?;
    }
    Ok(trees.swap_remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both libostree paths give the checksum the direct writer computes:
    /// in memory up to `MAX_DIRECT`, streamed beyond it.
    #[test]
    fn write_one_checksums_like_the_direct_writer() {
        let dir = tempfile::tempdir().unwrap();
        let repo = ostree::Repo::new_for_path(dir.path().join("repo"));
        repo.create(ostree::RepoMode::BareUser, gio::Cancellable::NONE)
            .unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let caps = vec![(b"security.capability\0".to_vec(), vec![1, 0, 0, 2])];
        for (name, size) in [("small", 5_000u64), ("large", archive::MAX_DIRECT + 1)] {
            let f = fs::File::create(root.join(name)).unwrap();
            f.set_len(size).unwrap();
            let leaf = Leaf {
                rel: name.to_string(),
                dir: 0,
                name: name.to_string(),
                mode: 0o100755,
                size,
                symlink: None,
                id: (0, 0),
            };
            repo.prepare_transaction(gio::Cancellable::NONE).unwrap();
            let sum = write_one(&repo, &root, &leaf, (0, 0), &caps).unwrap();
            repo.commit_transaction(gio::Cancellable::NONE).unwrap();
            let data = vec![0u8; size as usize];
            let expected = archive::ArchiveWriter::checksum(&leaf.object((0, 0), &caps, &data));
            assert_eq!(sum, expected, "{name}");
            assert!(repo
                .has_object(ostree::ObjectType::File, &sum, gio::Cancellable::NONE)
                .unwrap());
        }
    }
}
