//! Packages read for unpacking: the payload decompressed in memory, or
//! the package cache's files in its place, with what unpacking needs of
//! the header.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rpm::{FileType, IndexTag};

use crate::pkgcache;

/// Where the bytes of one payload file come from.
pub(crate) enum Content {
    /// Nowhere: a hard link whose data another member of its set carries.
    None,
    /// Decompressed in memory.
    Bytes(Vec<u8>),
    /// A file of the package cache, linked into the tree.
    Cached(PathBuf, pkgcache::CachedFile),
}

/// A package read and decompressed (or found in the package cache),
/// ready to lay down: the expensive part, done off the thread that writes
/// the tree.
pub struct Loaded {
    /// `name-[epoch:]version-release.arch`, for messages.
    pub nevra: String,
    pub(crate) files: Vec<(rpm::FileEntry<'static>, Content)>,
    /// Payload path → (device, inode): hard links share one.
    pub(crate) identity: HashMap<String, (u32, u32)>,
    /// The package cache entry its content comes from (its sha256).
    pub(crate) cache_key: Option<String>,
    /// Its install-time scriptlets.
    pub scripts: crate::scriptlets::Scripts,
}

impl Loaded {
    /// Reads the RPM at `rpm_path` and decompresses its payload.
    ///
    /// The RPM's own header and payload digests are not checked here: the
    /// download step has already verified the whole file against the
    /// repository metadata's checksum (on fetch and on every cache hit),
    /// which covers every byte, so hashing it again would only cost time.
    pub fn read(rpm_path: &Path, nevra: &str) -> anyhow::Result<Loaded> {
        let pkg = rpm::Package::open(rpm_path)
            .with_context(|| format!("{nevra}: cannot read the RPM"))?;
        let mut files = Vec::new();
        for f in pkg
            .files()
            .with_context(|| format!("{nevra}: cannot read the payload"))?
        {
            let f = f.with_context(|| format!("{nevra}: corrupt payload"))?;
            let entry = f.metadata.clone().into_owned();
            files.push((
                entry,
                f.into_content().map_or(Content::None, Content::Bytes),
            ));
        }
        Ok(Loaded {
            nevra: nevra.to_string(),
            files,
            identity: identities(
                &pkg.metadata,
                &pkg.metadata.get_file_entries().unwrap_or_default(),
            ),
            cache_key: None,
            scripts: crate::scriptlets::from_metadata(&pkg.metadata),
        })
    }

    /// The package whose payload is the cache entry `entry` (of the RPM
    /// `rpm_path`, sha256 `sha256`): only the header is read.
    pub fn cached(
        rpm_path: &Path,
        nevra: &str,
        sha256: &str,
        entry: &pkgcache::Entry,
    ) -> anyhow::Result<Loaded> {
        let metadata = rpm::PackageMetadata::open(rpm_path)
            .with_context(|| format!("{nevra}: cannot read the RPM header"))?;
        let entries = metadata.get_file_entries().unwrap_or_default();
        // Payload order, as unpacking without the cache meets the files.
        let mut files = Vec::with_capacity(entry.order.len());
        for &i in &entry.order {
            let e = entries
                .get(i)
                .with_context(|| format!("{nevra}: cache entry names header file {i}"))?;
            let content = match entry.files.get(&i) {
                Some(c) => {
                    let kind = e.file_type();
                    let fits = if c.symlink {
                        kind == FileType::SymbolicLink
                    } else {
                        kind == FileType::Regular
                    };
                    if !fits {
                        bail!("{nevra}: cache entry file {i} is not the header's {kind:?}");
                    }
                    Content::Cached(entry.file(i), c.clone())
                }
                None => Content::None,
            };
            files.push((e.clone().into_owned(), content));
        }
        Ok(Loaded {
            nevra: nevra.to_string(),
            files,
            identity: identities(&metadata, &entries),
            cache_key: Some(sha256.to_string()),
            scripts: crate::scriptlets::from_metadata(&metadata),
        })
    }
}

/// Payload path → (device, inode) of every file: hard links share one,
/// and rpm's payload carries their data once, with the last member.
fn identities(
    metadata: &rpm::PackageMetadata,
    entries: &[rpm::FileEntry],
) -> HashMap<String, (u32, u32)> {
    let header = &metadata.header;
    let devices = header
        .get_entry_data_as_u32_array(IndexTag::RPMTAG_FILEDEVICES)
        .unwrap_or_default();
    let inodes = header
        .get_entry_data_as_u32_array(IndexTag::RPMTAG_FILEINODES)
        .unwrap_or_default();
    let mut identity = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let (Some(d), Some(n)) = (devices.get(i), inodes.get(i)) {
            identity.insert(e.path().to_string_lossy().into_owned(), (*d, *n));
        }
    }
    identity
}
