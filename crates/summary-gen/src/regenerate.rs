//! Writing the summary as `ostree summary -u` does.

use std::path::Path;

use anyhow::Context;
use glib::prelude::*;
use glib::variant::DictEntry;
use releng_manifest::BadInput;

/// The ref under which a collection-bound repository publishes its
/// metadata commit.
pub(crate) const METADATA_REF: &str = "ostree-metadata";

/// Regenerates `summary` (and `summary.sig` when `key_ids` is not empty).
///
/// A repository with a collection id also gets a new `ostree-metadata`
/// commit carrying the same extra metadata, signed with the same keys:
/// that is what the ostree CLI does for such repositories, and peers that
/// find updates by collection id read it instead of the summary.
pub fn summary(
    repo: &ostree::Repo,
    extra: &Option<glib::Variant>,
    key_ids: &[String],
    homedir: Option<&Path>,
) -> anyhow::Result<()> {
    let homedir = homedir.map(|h| h.to_string_lossy().into_owned());
    if !key_ids.is_empty() {
        check_keys(repo, key_ids, homedir.as_deref())?;
    }
    if let Some(collection_id) = repo.collection_id() {
        metadata_commit(repo, &collection_id, extra, key_ids, homedir.as_deref())
            .context("writing the ostree-metadata commit")?;
    }
    repo.regenerate_summary(extra.as_ref(), gio::Cancellable::NONE)
        .context("regenerating the summary")?;
    if !key_ids.is_empty() {
        let keys: Vec<&str> = key_ids.iter().map(String::as_str).collect();
        repo.add_gpg_signature_summary(&keys, homedir.as_deref(), gio::Cancellable::NONE)
            .with_context(|| format!("signing the summary with {}", key_ids.join(", ")))?;
    }
    Ok(())
}

/// Signs a throw-away blob first, so that a wrong key id or keyring fails
/// the run before the summary is touched: regenerating removes the old
/// `summary.sig`, and a failure after that would leave clients that verify
/// signatures with an unsigned summary.
fn check_keys(
    repo: &ostree::Repo,
    key_ids: &[String],
    homedir: Option<&str>,
) -> anyhow::Result<()> {
    let keys: Vec<&str> = key_ids.iter().map(String::as_str).collect();
    let probe = glib::Bytes::from_static(b"summary-gen signing key check");
    repo.gpg_sign_data(&probe, None, &keys, homedir, gio::Cancellable::NONE)
        .map_err(|e| {
            BadInput::err(format!(
                "cannot sign with {} (GnuPG home {}): {}",
                key_ids.join(", "),
                homedir.unwrap_or("default"),
                e.message()
            ))
        })?;
    Ok(())
}

fn metadata_commit(
    repo: &ostree::Repo,
    collection_id: &str,
    extra: &Option<glib::Variant>,
    key_ids: &[String],
    homedir: Option<&str>,
) -> anyhow::Result<()> {
    let cancel = gio::Cancellable::NONE;
    let parent = repo.resolve_rev(METADATA_REF, true)?;
    let mut entries: Vec<glib::Variant> = match extra {
        Some(v) => v.iter().collect(),
        None => Vec::new(),
    };
    entries
        .push(DictEntry::new("ostree.collection-binding", collection_id.to_variant()).to_variant());
    entries.push(
        DictEntry::new(
            "ostree.ref-binding",
            vec![METADATA_REF.to_string()].to_variant(),
        )
        .to_variant(),
    );
    let ty = glib::VariantTy::new("{sv}").expect("valid type string");
    let metadata = glib::Variant::array_from_iter_with_type(ty, entries);

    repo.prepare_transaction(cancel)?;
    let result = (|| -> anyhow::Result<()> {
        let info = gio::FileInfo::new();
        info.set_attribute_uint32("unix::uid", 0);
        info.set_attribute_uint32("unix::gid", 0);
        info.set_attribute_uint32("unix::mode", 0o40755);
        let dirmeta = ostree::create_directory_metadata(&info, None);
        let dirmeta_csum =
            repo.write_metadata(ostree::ObjectType::DirMeta, None, &dirmeta, cancel)?;
        let mtree = ostree::MutableTree::new();
        mtree.set_metadata_checksum(&dirmeta_csum.to_hex());
        let root = repo.write_mtree(&mtree, cancel)?;
        let root = root
            .downcast::<ostree::RepoFile>()
            .map_err(|_| anyhow::anyhow!("write_mtree did not return a repository file"))?;
        let commit = repo.write_commit(
            parent.as_deref(),
            None,
            None,
            Some(&metadata),
            &root,
            cancel,
        )?;
        for key in key_ids {
            repo.sign_commit(&commit, key, homedir, cancel)?;
        }
        let cref = ostree::CollectionRef::new(Some(collection_id), METADATA_REF);
        repo.transaction_set_collection_ref(&cref, Some(&commit));
        repo.commit_transaction(cancel)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = repo.abort_transaction(cancel);
    }
    result
}
