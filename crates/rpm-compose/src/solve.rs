//! Depsolving a treefile's package list over the loaded repositories.

use anyhow::anyhow;

use crate::fetch::Fetcher;
use crate::repofile::glob_match;
use crate::rpmmd::LoadedRepo;
use crate::treefile::Treefile;

/// The packages to install, in libsolv's install order.
pub fn packages(
    fetcher: &Fetcher,
    repos: &[LoadedRepo],
    tf: &Treefile,
    arch: &str,
) -> anyhow::Result<Vec<solv::Package>> {
    let mut pool = solv::Pool::new(arch)?;
    for r in repos {
        pool.add_rpmmd(&r.config.id, &r.primary)?;
    }
    let excludes: Vec<(usize, String)> = repos
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.config.exclude.iter().map(move |g| (i, g.clone())))
        .collect();
    if !excludes.is_empty() || !tf.exclude_packages.is_empty() {
        pool.exclude(|repo, name| {
            excludes
                .iter()
                .any(|(i, g)| *i == repo && glob_match(g, name))
                || tf.exclude_packages.iter().any(|g| glob_match(g, name))
        });
    }
    let missing = pool.prepare();
    if !missing.is_empty() {
        // Primary metadata lists only the usual binary and /etc paths;
        // anything else needs the (much larger) filelists.
        log::info!(
            "loading filelists for file dependencies: {}",
            missing.join(", ")
        );
        for (i, r) in repos.iter().enumerate() {
            if let Some(path) = r.filelists(fetcher)? {
                pool.add_filelists(i, &path)?;
            }
        }
        pool.prepare();
    }
    pool.solve(&solv::Request {
        install: tf.packages.clone(),
        recommends: tf.recommends,
    })
    .map_err(|e| match e {
        solv::Error::NoMatch(name) => {
            anyhow!("no package provides `{name}` (named in the treefile's packages)")
        }
        other => anyhow!(other),
    })
}
