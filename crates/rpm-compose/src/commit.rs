//! Writing the tree as an ostree commit in one transaction: the ref moves
//! only when every object is written.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use glib::prelude::*;
use releng_manifest::ComposeStats;

use crate::unpack::Meta;

/// What a commit produced.
pub struct Committed {
    /// Commit checksum.
    pub commit: String,
    /// Checksum of the root tree (dirtree + dirmeta), as rpm-ostree reports it.
    pub content_checksum: String,
    /// Transaction statistics.
    pub stats: ComposeStats,
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

/// Commits `root` as `spec` says; `meta` gives owners and capabilities.
pub fn commit(
    repo: &ostree::Repo,
    root: &Path,
    meta: &HashMap<String, Meta>,
    spec: &CommitSpec,
) -> anyhow::Result<Committed> {
    let cancel = gio::Cancellable::NONE;
    let owners: HashMap<String, (u32, u32)> = meta
        .iter()
        .map(|(k, m)| (k.clone(), (m.uid, m.gid)))
        .collect();
    let mut caps: HashMap<String, Vec<u8>> = HashMap::new();
    for (path, m) in meta {
        if let Some(text) = &m.caps {
            let x = crate::caps::to_xattr(text)
                .with_context(|| format!("{path}: file capabilities `{text}`"))?;
            caps.insert(path.clone(), x);
        }
    }
    // Ownership comes from the packages, not from whoever ran the compose.
    let modifier = ostree::RepoCommitModifier::new(
        ostree::RepoCommitModifierFlags::NONE,
        Some(Box::new(
            move |_repo: &ostree::Repo, path: &str, info: &gio::FileInfo| {
                let (uid, gid) = owners.get(path).copied().unwrap_or((0, 0));
                info.set_attribute_uint32("unix::uid", uid);
                info.set_attribute_uint32("unix::gid", gid);
                ostree::RepoCommitFilterResult::Allow
            },
        )),
    );
    // xattrs come only from here: host labels must not leak into the tree.
    modifier.set_xattr_callback(move |_repo, path, _info| {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = match caps.get(path) {
            Some(x) => vec![(b"security.capability\0".to_vec(), x.clone())],
            None => Vec::new(),
        };
        entries.to_variant()
    });

    repo.prepare_transaction(cancel)
        .context("starting an ostree transaction")?;
    let result = (|| -> anyhow::Result<Committed> {
        let mtree = ostree::MutableTree::new();
        repo.write_directory_to_mtree(&gio::File::for_path(root), &mtree, Some(&modifier), cancel)
            .context("writing the tree into the repository")?;
        let root_file = repo
            .write_mtree(&mtree, cancel)?
            .downcast::<ostree::RepoFile>()
            .map_err(|_| anyhow::anyhow!("write_mtree returned no repository file"))?;
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
            stats: ComposeStats {
                metadata_objects_total: stats.get_metadata_objects_total() as u64,
                metadata_objects_written: stats.get_metadata_objects_written() as u64,
                content_objects_total: stats.get_content_objects_total() as u64,
                content_objects_written: stats.get_content_objects_written() as u64,
                content_bytes_written: stats.get_content_bytes_written(),
                packages_downloaded: 0,
                packages_cached: 0,
            },
        })
    })();
    if result.is_err() {
        let _ = repo.abort_transaction(cancel);
    }
    result
}
