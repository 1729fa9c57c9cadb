//! Makes the repository `cargo xtask bench summary` measures: an archive
//! repository with N refs, each pointing at its own commit (distinct
//! timestamp and version) written through libostree in one transaction.
//!
//! Usage: bench-repo PATH N

use std::path::Path;

use anyhow::{bail, Context};
use glib::prelude::*;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, n] = args.as_slice() else {
        bail!("usage: bench-repo PATH N");
    };
    let n: u64 = n.parse().context("N must be a number")?;
    let path = Path::new(path);
    if path.exists() {
        bail!("{} exists; remove it first", path.display());
    }
    let cancel = gio::Cancellable::NONE;
    let repo = ostree::Repo::new_for_path(path);
    repo.create(ostree::RepoMode::Archive, cancel)?;

    let tree = tempfile::tempdir()?;
    std::fs::create_dir_all(tree.path().join("usr/lib"))?;
    std::fs::write(
        tree.path().join("usr/lib/os-release"),
        "ID=bench\nPRETTY_NAME=Bench\n",
    )?;

    repo.prepare_transaction(cancel)?;
    let mtree = ostree::MutableTree::new();
    repo.write_directory_to_mtree(&gio::File::for_path(tree.path()), &mtree, None, cancel)?;
    let root = repo
        .write_mtree(&mtree, cancel)?
        .downcast::<ostree::RepoFile>()
        .map_err(|_| anyhow::anyhow!("write_mtree returned no RepoFile"))?;
    let base_time = 1_400_000_000u64;
    for i in 0..n {
        let meta = glib::VariantDict::new(None);
        meta.insert("version", format!("{}.{}", 20 + i / 1000, i % 1000));
        let commit = repo.write_commit_with_time(
            None,
            Some(&format!("bench commit {i}")),
            None,
            Some(&meta.end()),
            &root,
            base_time + i,
            cancel,
        )?;
        let arch = ["x86_64", "aarch64", "ppc64le", "s390x"][(i % 4) as usize];
        repo.transaction_set_ref(None, &format!("bench/{arch}/ref-{i:06}"), Some(&commit));
    }
    repo.commit_transaction(cancel)?;
    eprintln!("bench-repo: {} refs in {}", n, path.display());
    Ok(())
}
