//! Fetching the chosen RPMs into the cache, verified against the
//! repository metadata, on several threads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, Context};
use releng_manifest::progress::Progress;

use crate::fetch::{file_matches, safe_href, Expected, Fetcher};
use crate::rpmmd::LoadedRepo;

/// Largest RPM we accept (kernel-devel-sized packages fit easily).
const MAX_RPM: u64 = 4 << 30;
/// Parallel downloads: network latency, not the cores, is the limit.
const WORKERS: usize = 4;

/// One package's outcome: its path and whether the cache had it.
type Fetched = anyhow::Result<(PathBuf, bool)>;

/// Where each package's verified RPM is, and how many were cached.
pub struct Downloaded {
    /// Paths in the order of the packages given.
    pub paths: Vec<PathBuf>,
    /// RPMs fetched now.
    pub fetched: u64,
    /// RPMs already in the cache, verified.
    pub cached: u64,
}

/// Makes sure every package is in `cache`, verified.
pub fn all(
    fetcher: &Fetcher,
    repos: &[LoadedRepo],
    pkgs: &[solv::Package],
    cache: &Path,
) -> anyhow::Result<Downloaded> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Fetched>>> = Mutex::new((0..pkgs.len()).map(|_| None).collect());
    let progress = Progress::bar(pkgs.len() as u64, "packages").with_prefix("fetching");
    std::thread::scope(|s| {
        for _ in 0..WORKERS.min(pkgs.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(pkg) = pkgs.get(i) else { break };
                progress.message(&pkg.name);
                let r = one(fetcher, &repos[pkg.repo], pkg, cache);
                results.lock().expect("no worker panics")[i] = Some(r);
                progress.inc(1);
            });
        }
    });
    progress.finish();
    let mut out = Downloaded {
        paths: Vec::new(),
        fetched: 0,
        cached: 0,
    };
    for r in results.into_inner().expect("workers done") {
        let (path, was_cached) = r.expect("every package was tried")?;
        if was_cached {
            out.cached += 1;
        } else {
            out.fetched += 1;
        }
        out.paths.push(path);
    }
    Ok(out)
}

fn one(
    fetcher: &Fetcher,
    repo: &LoadedRepo,
    pkg: &solv::Package,
    cache: &Path,
) -> anyhow::Result<(PathBuf, bool)> {
    let what = || format!("{} from repo `{}`", pkg.nevra(), repo.config.id);
    let href = safe_href(&pkg.location).with_context(what)?;
    let checksum = pkg
        .checksum
        .as_ref()
        .ok_or_else(|| anyhow!("{}: the repository metadata has no checksum for it", what()))?;
    let expected = Expected {
        kind: checksum.kind.clone(),
        hex: checksum.hex.clone(),
    };
    let base = href.rsplit('/').next().unwrap_or(href);
    let dest = cache.join("packages").join(&repo.config.id).join(base);
    if file_matches(&dest, &expected)? {
        return Ok((dest, true));
    }
    let url = format!("{}{}", repo.config.baseurl, href);
    fetcher
        .fetch_to(&url, &dest, &expected, MAX_RPM)
        .with_context(what)?;
    Ok((dest, false))
}
