//! One compose, from treefile to commit.
//!
//! Order matters for safety and speed: everything that can refuse the
//! inputs runs before anything is written; the fingerprint check runs
//! before depsolving; the ref moves last, inside the ostree transaction.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use releng_manifest::progress::Progress;
use releng_manifest::{BadInput, ComposeEntry, ComposePackage, ComposeRepo, ComposeStats};

use crate::changes::{self, Previous};
use crate::fetch::Fetcher;
use crate::lock::{self, StagingRoot};
use crate::payload::Loaded;
use crate::pkgcache::PkgCache;
use crate::unpack::{Root, UnpackOptions};
use crate::{
    commit, download, metadata, pipeline, postprocess, repofile, rpmdb, rpmmd, solve, treefile,
};

/// What rpm-ostree prints, and pungi's wrapper looks for, on a no-op.
pub const NO_CHANGES: &str = "No apparent changes since previous commit";

/// What to compose and where.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The treefile.
    pub treefile: PathBuf,
    /// The ostree repository (not needed for a dry run).
    pub repo: Option<PathBuf>,
    /// Download cache.
    pub cachedir: PathBuf,
    /// Architecture.
    pub arch: String,
    /// Stop after depsolving.
    pub dry_run: bool,
    /// Stop after downloading.
    pub download_only: bool,
    /// Commit even when the inputs did not change.
    pub force_nocache: bool,
    /// Compare with this input hash instead of the ref's commit's.
    pub previous_inputhash: Option<String>,
    /// Move the ref (false when the caller writes it, as pungi does with
    /// `--write-commitid-to`).
    pub update_ref: bool,
    /// Where to assemble the tree (default: the cache with the package
    /// cache, else /dev/shm when roomy, else the cache).
    pub tmpdir: Option<PathBuf>,
    /// Keep unpacked packages in the cache and hard-link them in.
    pub pkgcache: bool,
}

/// Runs a compose and describes it for the manifest.
pub fn compose(o: &Options) -> anyhow::Result<ComposeEntry> {
    let started = Instant::now();
    let treefile_path = std::path::absolute(&o.treefile)?;
    let tf = treefile::load(&treefile_path, &o.arch)?;
    // Open and lock the repository before any download: a wrong path
    // fails fast, and a second compose waits instead of racing.
    let repo = match (&o.repo, o.dry_run) {
        (Some(path), false) => Some(releng_ostree::open(path, "run repo-init first")?),
        _ => None,
    };
    let _lock = match (&o.repo, o.dry_run) {
        (Some(path), false) => Some(lock::repo(path)?),
        _ => None,
    };
    let previous = match &repo {
        Some(r) => changes::previous(r, &tf.ref_)?,
        None => None,
    };
    let dir = treefile_path.parent().unwrap_or(Path::new("/"));
    let configs: Vec<repofile::RepoConfig> =
        repofile::find(dir, &tf.repos, &o.arch, tf.releasever.as_deref())?
            .into_iter()
            .filter(|c| {
                if !c.enabled {
                    log::warn!(
                        "repo `{}` is listed in the treefile but disabled in {}; skipped",
                        c.id,
                        c.file.display()
                    );
                }
                c.enabled
            })
            .collect();
    if configs.is_empty() {
        return Err(BadInput::err(format!(
            "treefile {}: no enabled repository (key `repos`)",
            treefile_path.display()
        )));
    }
    let repo_files: Vec<PathBuf> = configs.iter().map(|c| c.file.clone()).collect();
    std::fs::create_dir_all(&o.cachedir).with_context(|| {
        format!(
            "{}: cannot create the cache directory",
            o.cachedir.display()
        )
    })?;
    let fetcher = Fetcher::new();
    let repomds: Vec<rpmmd::FetchedRepomd> = configs
        .iter()
        .map(|c| rpmmd::fetch_repomd(&fetcher, c))
        .collect::<anyhow::Result<_>>()?;
    let sums: Vec<String> = repomds.iter().map(|r| r.sha256.clone()).collect();
    let digest = changes::TreefileDigest::new(&tf, &repo_files, &o.arch)?;
    let inputs = digest.inputs_fingerprint(&sums);
    let mut entry = new_entry(o, &tf, &treefile_path, &configs, &repomds);

    // Same treefile, same files, same repository metadata: same result,
    // known without loading a single package list.
    if let Some(prev) = previous
        .as_ref()
        .filter(|_| !o.force_nocache && !o.dry_run && !o.download_only)
    {
        if o.previous_inputhash.is_none() && prev.inputs.as_deref() == Some(inputs.as_str()) {
            return Ok(unchanged(entry, prev, started));
        }
    }

    let loaded: Vec<rpmmd::LoadedRepo> = configs
        .iter()
        .zip(repomds)
        .map(|(c, r)| rpmmd::load(&fetcher, c, r, &o.cachedir))
        .collect::<anyhow::Result<_>>()?;
    let pkgs = solve::packages(&fetcher, &loaded, &tf, &o.arch)?;
    log::debug!("solved: {:?}", started.elapsed());
    log::info!("{} packages to install", pkgs.len());
    let inputhash = digest.inputhash(&pkgs);
    entry.inputhash = Some(inputhash.clone());
    let describe = |p: &solv::Package, sha256: Option<String>| ComposePackage {
        name: p.name.clone(),
        epoch: p.epoch,
        version: p.version.clone(),
        release: p.release.clone(),
        arch: p.arch.clone(),
        sha256,
        repo: loaded[p.repo].config.id.clone(),
    };
    let metadata_sha256 = |p: &solv::Package| {
        p.checksum
            .as_ref()
            .filter(|c| c.kind == "sha256")
            .map(|c| c.hex.clone())
    };
    entry.packages = pkgs
        .iter()
        .map(|p| describe(p, metadata_sha256(p)))
        .collect();
    if o.dry_run {
        for p in &pkgs {
            log::info!("  {}", p.nevra());
        }
        entry.duration_s = started.elapsed().as_secs_f64();
        return Ok(entry);
    }
    if !o.force_nocache && !o.download_only {
        let against = o
            .previous_inputhash
            .as_deref()
            .or(previous.as_ref().and_then(|p| p.inputhash.as_deref()));
        if against == Some(inputhash.as_str()) {
            return Ok(match &previous {
                Some(prev) => unchanged(entry, prev, started),
                // Told the hash of a commit that lives elsewhere.
                None => {
                    eprintln!("{NO_CHANGES}");
                    entry.mode = "commit".into();
                    entry.duration_s = started.elapsed().as_secs_f64();
                    entry
                }
            });
        }
    }

    let dl = download::all(&fetcher, &loaded, &pkgs, &o.cachedir)?;
    log::debug!("downloaded: {:?}", started.elapsed());
    entry.stats.packages_downloaded = dl.fetched;
    entry.stats.packages_cached = dl.cached;
    for (p, path) in entry.packages.iter_mut().zip(&dl.paths) {
        if p.sha256.is_none() {
            p.sha256 = Some(file_details::FileDetails::of_path(path)?.sha256);
        }
    }
    if o.download_only {
        entry.mode = "download-only".into();
        entry.duration_s = started.elapsed().as_secs_f64();
        return Ok(entry);
    }
    let (repo, repo_path) = (
        repo.expect("opened unless dry run"),
        o.repo.as_ref().expect("given"),
    );

    // What the commit says does not depend on the tree: settled first.
    let version = tf.automatic_version_prefix.as_deref().map(|prefix| {
        metadata::next_version(prefix, previous.as_ref().and_then(|p| p.version.as_deref()))
    });
    let timestamp = metadata::timestamp()?;
    if let Some(prev) = &previous {
        let pool = solv::Pool::new(&o.arch)?;
        let new: Vec<changes::PkgTuple> = entry.packages.iter().map(changes::tuple).collect();
        entry.pkgdiff = Some(changes::pkgdiff(&pool, &prev.pkglist, &new)?);
    }
    let meta = metadata::commit_metadata(&tf, &entry, version.as_deref(), &inputs)?;
    let subject = match &version {
        Some(v) => format!("{} {v}", tf.ref_),
        None => tf.ref_.clone(),
    };
    let parent = previous.as_ref().map(|p| p.commit.clone());
    let spec = commit::CommitSpec {
        ref_: o.update_ref.then_some(tf.ref_.as_str()),
        parent: parent.as_deref(),
        subject: &subject,
        metadata: &meta,
        timestamp,
    };

    let (pkgcache, base) = staging_place(o, &pkgs)?;
    let staging = StagingRoot::new(&base)?;
    let root_dir = staging.path().to_path_buf();
    let mut root = Root::new(&root_dir);
    if let Some(cache) = &pkgcache {
        root = root.with_dir_pool(cache.dir_pool()?);
    }
    let shas: Vec<String> = entry
        .packages
        .iter()
        .map(|p| p.sha256.clone().unwrap_or_default())
        .collect();
    let built = install(&mut root, &tf, &pkgs, &dl.paths, &shas, pkgcache.as_ref())
        .and_then(|()| {
            log::debug!("installed: {:?}", started.elapsed());
            postprocess::finalize(&root_dir, &mut root.meta)
        })
        .and_then(|()| {
            log::debug!("post-processed: {:?}", started.elapsed());
            commit::commit(&repo, &root_dir, &root.meta, &spec)
                .with_context(|| format!("{}: committing {}", repo_path.display(), tf.ref_))
        });
    // Failed or not, what scripts did to linked files is checked before
    // anything else: the next compose must not inherit it.
    if let Some(cache) = &pkgcache {
        let none = HashMap::new();
        let known = built.as_ref().map_or(&none, |d| &d.by_inode);
        let evicted = cache.check(&root.witness, known)?;
        log::debug!(
            "package cache: {} links checked, {evicted} entries dropped: {:?}",
            root.witness.len(),
            started.elapsed()
        );
        // Checked entries are good ones, whatever became of the tree.
        if let Err(e) = cache.publish() {
            log::warn!("package cache: {e:#}");
        }
        // The tree still links cache files: emptied now (its directories
        // kept for the next tree), or the cache cannot be trusted.
        if let Some(pool) = root.dir_pool() {
            if let Err(e) = pool.recycle(&root_dir) {
                log::warn!(
                    "{}: cannot empty the tree ({e}); the next compose will drop the package cache",
                    root_dir.display()
                );
                cache.distrust();
            }
        }
    }
    let done = built?;
    log::info!(
        "{} => {}{}",
        tf.ref_,
        done.commit,
        version
            .as_ref()
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default()
    );
    log::debug!("committed: {:?}", started.elapsed());
    entry.commit = Some(done.commit);
    entry.parent = parent;
    entry.content_checksum = Some(done.content_checksum);
    entry.version = version;
    entry.timestamp = Some(timestamp);
    entry.changed = true;
    entry.mode = "commit".into();
    let (linked, unpacked) = match &pkgcache {
        Some(c) => c.counts(),
        None => (0, pkgs.len() as u64),
    };
    entry.stats = ComposeStats {
        packages_downloaded: dl.fetched,
        packages_cached: dl.cached,
        packages_unpacked: unpacked,
        packages_linked: linked,
        ..done.stats
    };
    if let Some(cache) = &pkgcache {
        cache.prune(&shas.into_iter().collect());
    }
    entry.duration_s = started.elapsed().as_secs_f64();
    Ok(entry)
}

/// The package cache to use (if any) and where to assemble the tree.
fn staging_place(
    o: &Options,
    pkgs: &[solv::Package],
) -> anyhow::Result<(Option<PkgCache>, PathBuf)> {
    // RPMs hold their payloads compressed about fourfold.
    let expected: u64 = pkgs.iter().map(|p| p.download_size).sum::<u64>() * 5;
    if !o.pkgcache {
        let base = o
            .tmpdir
            .clone()
            .unwrap_or_else(|| lock::staging_base(expected, &o.cachedir));
        return Ok((None, base));
    }
    // Hard links reach only within one filesystem (and one mount).
    let base = o.tmpdir.clone().unwrap_or_else(|| o.cachedir.clone());
    let cache = PkgCache::open(&o.cachedir)?;
    if cache.reaches(&base) {
        return Ok((Some(cache), base));
    }
    log::info!(
        "{}: hard links from the package cache cannot reach it; unpacking every package",
        base.display()
    );
    Ok((None, base))
}

/// Lays every package into `root` in install order with its scriptlets,
/// writes the rpmdb, then applies the treefile's edits and scripts.
fn install(
    root: &mut Root,
    tf: &treefile::Treefile,
    pkgs: &[solv::Package],
    paths: &[PathBuf],
    shas: &[String],
    cache: Option<&PkgCache>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let opts = UnpackOptions {
        documentation: tf.documentation,
        install_langs: tf.install_langs.clone(),
    };
    let mut files_by_pkg = HashMap::new();
    let mut posttrans = Vec::new();
    let nevras: Vec<String> = pkgs.iter().map(solv::Package::nevra).collect();
    let load = |i: usize| match cache {
        Some(c) => {
            let e = match c.entry(&shas[i], &paths[i], &nevras[i]) {
                Ok(e) => e,
                // The cache is a speed-up: a package it cannot take (a
                // full disk, a header it refuses) is unpacked without it.
                Err(err) => {
                    log::warn!("{err:#}; unpacking it without the package cache");
                    return Loaded::read(&paths[i], &nevras[i]);
                }
            };
            Loaded::cached(&paths[i], &nevras[i], &shas[i], &e).or_else(|err| {
                log::warn!("{err:#}; extracting it again");
                c.evict(&shas[i])?;
                let e = c.entry(&shas[i], &paths[i], &nevras[i])?;
                Loaded::cached(&paths[i], &nevras[i], &shas[i], &e)
            })
        }
        None => Loaded::read(&paths[i], &nevras[i]),
    };
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(4);
    let mut names = pkgs.iter().map(|p| p.name.clone());
    let progress = Progress::bar(pkgs.len() as u64, "packages").with_prefix("installing");
    pipeline::in_order(pkgs.len(), workers, load, |loaded| {
        let name = names.next().expect("one name per package");
        progress.message(&name);
        progress.inc(1);
        let nevra = loaded.nevra.clone();
        let scripts = loaded.scripts.clone();
        if let Some(s) = &scripts.pre {
            root.run_script(&name, &nevra, s, &tf.ignore_scripts)?;
        }
        let files = root.unpack(loaded, &opts)?;
        // Multilib: both arches of a name count as that package.
        files_by_pkg
            .entry(name.clone())
            .or_insert_with(Vec::new)
            .extend(files);
        if let Some(s) = &scripts.post {
            root.run_script(&name, &nevra, s, &tf.ignore_scripts)?;
        }
        if let Some(s) = scripts.posttrans {
            posttrans.push((name, nevra, s));
        }
        Ok(())
    })?;
    for (name, nevra, s) in &posttrans {
        root.run_script(name, nevra, s, &tf.ignore_scripts)?;
    }
    progress.finish();
    log::debug!("unpacked: {:?}", started.elapsed());
    rpmdb::write(root.dir(), paths, &opts)?;
    log::debug!("rpmdb written: {:?}", started.elapsed());
    postprocess::treefile_edits(root.dir(), tf, &files_by_pkg)?;
    postprocess::run_scripts(root.dir(), tf)
}

fn new_entry(
    o: &Options,
    tf: &treefile::Treefile,
    path: &Path,
    configs: &[repofile::RepoConfig],
    repomds: &[rpmmd::FetchedRepomd],
) -> ComposeEntry {
    ComposeEntry {
        treefile: path.display().to_string(),
        repo: o
            .repo
            .as_ref()
            .map(|p| {
                std::fs::canonicalize(p)
                    .unwrap_or_else(|_| p.clone())
                    .display()
                    .to_string()
            })
            .unwrap_or_default(),
        ref_: tf.ref_.clone(),
        commit: None,
        parent: None,
        content_checksum: None,
        version: None,
        timestamp: None,
        changed: false,
        mode: "dry-run".into(),
        arch: o.arch.clone(),
        packages: Vec::new(),
        repos: configs
            .iter()
            .zip(repomds)
            .map(|(c, r)| ComposeRepo {
                id: c.id.clone(),
                url: c.baseurl.clone(),
                revision: r.repomd.revision.clone(),
                repomd_sha256: r.sha256.clone(),
            })
            .collect(),
        stats: ComposeStats::default(),
        inputhash: None,
        pkgdiff: None,
        duration_s: 0.0,
    }
}

/// The entry of a compose that found nothing to do: it reports the
/// existing commit.
fn unchanged(mut entry: ComposeEntry, prev: &Previous, started: Instant) -> ComposeEntry {
    eprintln!("{NO_CHANGES}");
    entry.commit = Some(prev.commit.clone());
    entry.content_checksum = prev.content_checksum.clone();
    entry.version = prev.version.clone();
    entry.timestamp = Some(prev.timestamp);
    entry.inputhash = entry.inputhash.or_else(|| prev.inputhash.clone());
    entry.mode = "commit".into();
    entry.changed = false;
    if entry.packages.is_empty() {
        entry.packages = prev
            .pkglist
            .iter()
            .map(|(name, epoch, version, release, arch)| ComposePackage {
                name: name.clone(),
                epoch: *epoch as u32,
                version: version.clone(),
                release: release.clone(),
                arch: arch.clone(),
                sha256: None,
                repo: String::new(),
            })
            .collect();
    }
    entry.duration_s = started.elapsed().as_secs_f64();
    entry
}
