//! Change detection, as pungi's wrapper relies on it: the input hash
//! rpm-ostree records, a cheaper fingerprint checked before any
//! depsolving, and the package diff against the parent commit.

use std::cmp::Ordering;

use glib::prelude::*;
use releng_manifest::{ComposePackage, PkgChange, PkgDiff};
use sha2::{Digest, Sha256};

use crate::treefile::Treefile;

/// Commit metadata key of the input hash (rpm-ostree's name).
pub const INPUTHASH_KEY: &str = "rpmostree.inputhash";
/// Commit metadata key of the pre-solve fingerprint.
pub const INPUTS_KEY: &str = "rpmcompose.inputs";
/// Commit metadata key of the package list (rpm-ostree's name).
pub const PKGLIST_KEY: &str = "rpmostree.rpmdb.pkglist";

/// One package as the pkglist metadata records it.
pub type PkgTuple = (String, u64, String, String, String);

/// What the ref's current commit says about how it was made.
#[derive(Debug, Clone)]
pub struct Previous {
    /// Its checksum.
    pub commit: String,
    /// Its `version`.
    pub version: Option<String>,
    /// Its timestamp.
    pub timestamp: u64,
    /// Its content checksum.
    pub content_checksum: Option<String>,
    /// `rpmostree.inputhash`.
    pub inputhash: Option<String>,
    /// `rpmcompose.inputs`.
    pub inputs: Option<String>,
    /// `rpmostree.rpmdb.pkglist`.
    pub pkglist: Vec<PkgTuple>,
}

/// Reads the ref's current commit, if there is one.
pub fn previous(repo: &ostree::Repo, ref_: &str) -> anyhow::Result<Option<Previous>> {
    let Some(commit) = repo.resolve_rev(ref_, true)? else {
        return Ok(None);
    };
    let commit = commit.to_string();
    let (v, _) = repo.load_commit(&commit)?;
    let meta = glib::VariantDict::new(Some(&v.child_value(0)));
    let s = |k: &str| meta.lookup::<String>(k).ok().flatten();
    Ok(Some(Previous {
        version: s("version"),
        timestamp: ostree::commit_get_timestamp(&v),
        content_checksum: ostree::commit_get_content_checksum(&v).map(|c| c.to_string()),
        inputhash: s(INPUTHASH_KEY),
        inputs: s(INPUTS_KEY),
        pkglist: meta
            .lookup::<Vec<PkgTuple>>(PKGLIST_KEY)
            .ok()
            .flatten()
            .unwrap_or_default(),
        commit,
    }))
}

/// The treefile's inputs hashed once: the treefile (flattened), every file
/// it pulls in and the `.repo` files, each length-prefixed so that no two
/// inputs collide. Both hashes below start from it, so they describe the
/// same reading of those files.
#[derive(Clone)]
pub struct TreefileDigest(Sha256);

impl TreefileDigest {
    /// Reads and hashes the inputs of `tf` for `arch`.
    pub fn new(
        tf: &Treefile,
        repo_files: &[std::path::PathBuf],
        arch: &str,
    ) -> anyhow::Result<TreefileDigest> {
        let mut h = Sha256::new();
        let mut feed = |label: &str, data: &[u8]| {
            h.update((label.len() as u64).to_le_bytes());
            h.update(label.as_bytes());
            h.update((data.len() as u64).to_le_bytes());
            h.update(data);
        };
        feed("arch", arch.as_bytes());
        feed("treefile", &serde_json::to_vec(&tf.flattened)?);
        // Names relative to the treefile: moving the directory changes nothing.
        let dir = tf.path.parent().unwrap_or(std::path::Path::new("/"));
        for f in tf.files.iter().skip(1).chain(repo_files) {
            let data = std::fs::read(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            let name = f.strip_prefix(dir).unwrap_or(f).display().to_string();
            feed(&name, &data);
        }
        Ok(TreefileDigest(h))
    }

    /// The fingerprint checked before depsolving: the treefile's inputs,
    /// each repository's repomd.xml and this tool's version. Equal
    /// fingerprints mean equal metadata and equal requests, so equal
    /// package sets.
    pub fn inputs_fingerprint(&self, repomd_sha256: &[String]) -> String {
        let mut h = self.0.clone();
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        for r in repomd_sha256 {
            h.update(r.as_bytes());
        }
        file_details::hex(&h.finalize())
    }

    /// rpm-ostree's input hash: the treefile's inputs and the checksum of
    /// every chosen package, sorted.
    pub fn inputhash(&self, pkgs: &[solv::Package]) -> String {
        let mut h = self.0.clone();
        let mut sums: Vec<String> = pkgs
            .iter()
            .map(|p| match &p.checksum {
                Some(c) => format!("{}:{}:{}", p.nevra(), c.kind, c.hex),
                None => p.nevra(),
            })
            .collect();
        sums.sort();
        for s in sums {
            h.update(s.as_bytes());
            h.update(b"\n");
        }
        file_details::hex(&h.finalize())
    }
}

/// The pkglist tuple of a package.
pub fn tuple(p: &ComposePackage) -> PkgTuple {
    (
        p.name.clone(),
        p.epoch as u64,
        p.version.clone(),
        p.release.clone(),
        p.arch.clone(),
    )
}

fn evra(t: &PkgTuple) -> String {
    if t.1 == 0 {
        format!("{}-{}.{}", t.2, t.3, t.4)
    } else {
        format!("{}:{}-{}.{}", t.1, t.2, t.3, t.4)
    }
}

/// Packages added, removed, upgraded and downgraded from `old` to `new`
/// (by name and arch, versions compared as rpm compares them).
pub fn pkgdiff(pool: &solv::Pool, old: &[PkgTuple], new: &[PkgTuple]) -> anyhow::Result<PkgDiff> {
    let key = |t: &PkgTuple| (t.0.clone(), t.4.clone());
    let mut d = PkgDiff::default();
    for n in new {
        match old.iter().find(|o| key(o) == key(n)) {
            None => d.added.push(format!("{}-{}", n.0, evra(n))),
            Some(o) => {
                let evr = |t: &PkgTuple| format!("{}:{}-{}", t.1, t.2, t.3);
                let change = || PkgChange {
                    name: n.0.clone(),
                    from: evra(o),
                    to: evra(n),
                };
                match pool.evr_cmp(&evr(n), &evr(o))? {
                    Ordering::Greater => d.upgraded.push(change()),
                    Ordering::Less => d.downgraded.push(change()),
                    Ordering::Equal => {}
                }
            }
        }
    }
    for o in old {
        if !new.iter().any(|n| key(n) == key(o)) {
            d.removed.push(format!("{}-{}", o.0, evra(o)));
        }
    }
    Ok(d)
}

/// The pkglist metadata value.
pub fn pkglist_variant(pkgs: &[PkgTuple]) -> glib::Variant {
    let mut sorted = pkgs.to_vec();
    sorted.sort();
    sorted.to_variant()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: &str, e: u64, v: &str) -> PkgTuple {
        (n.into(), e, v.into(), "1".into(), "x86_64".into())
    }

    #[test]
    fn diff_classifies_by_rpm_version_order() {
        let pool = solv::Pool::new("x86_64").unwrap();
        let old = vec![
            t("a", 0, "1.0"),
            t("b", 0, "2.0~rc1"),
            t("c", 1, "1.0"),
            t("gone", 0, "1"),
        ];
        let new = vec![
            t("a", 0, "1.0"),
            t("b", 0, "2.0"),
            t("c", 0, "9.0"),
            t("fresh", 0, "1"),
        ];
        let d = pkgdiff(&pool, &old, &new).unwrap();
        assert_eq!(d.added, ["fresh-1-1.x86_64"]);
        assert_eq!(d.removed, ["gone-1-1.x86_64"]);
        assert_eq!(d.upgraded.len(), 1);
        assert_eq!(d.upgraded[0].name, "b");
        assert_eq!(d.downgraded[0].name, "c", "an epoch beats a bigger version");
    }
}
