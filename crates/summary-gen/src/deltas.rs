//! Static deltas: generating one from each ref's parent, listing them all.

use std::collections::HashSet;

use anyhow::Context;
use releng_manifest::DeltaEntry;

/// A delta from `from` (none: from scratch) to `to`.
pub type DeltaName = (Option<String>, String);

/// Generates the missing delta parent → commit for every local ref whose
/// commit has its parent in the repository, as `ostree static-delta
/// generate --to=REF` does by default. Returns the deltas it made.
pub fn generate_from_parents(repo: &ostree::Repo) -> anyhow::Result<Vec<DeltaName>> {
    let cancel = gio::Cancellable::NONE;
    let flags = ostree::RepoListRefsExtFlags::EXCLUDE_REMOTES
        | ostree::RepoListRefsExtFlags::EXCLUDE_MIRRORS;
    let mut refs: Vec<(String, String)> = repo
        .list_refs_ext(None, flags, cancel)?
        .into_iter()
        .collect();
    refs.sort();
    let existing: HashSet<DeltaName> = names(repo)?.into_iter().collect();
    let mut made = Vec::new();
    let mut seen = HashSet::new();
    for (name, commit) in refs {
        // Collection peers fetch the metadata commit whole; ostree never
        // makes deltas for it.
        if name == crate::regenerate::METADATA_REF {
            continue;
        }
        let (commit_v, _) = repo
            .load_commit(&commit)
            .with_context(|| format!("ref {name}: loading commit {commit}"))?;
        let Some(parent) = ostree::commit_get_parent(&commit_v) else {
            log::debug!("ref {name}: no parent, no delta");
            continue;
        };
        let parent = parent.to_string();
        if !repo.has_object(ostree::ObjectType::Commit, &parent, cancel)? {
            log::debug!("ref {name}: parent {parent} is not in the repository, no delta");
            continue;
        }
        let delta = (Some(parent.clone()), commit.clone());
        if existing.contains(&delta) || !seen.insert(delta.clone()) {
            continue;
        }
        log::info!("ref {name}: static delta {parent:.12} → {commit:.12}");
        let params = glib::VariantDict::new(None).end();
        repo.static_delta_generate(
            ostree::StaticDeltaGenerateOpt::Major,
            Some(&parent),
            &commit,
            None,
            Some(&params),
            cancel,
        )
        .with_context(|| format!("ref {name}: generating the delta {parent} → {commit}"))?;
        made.push(delta);
    }
    Ok(made)
}

/// Every static delta in the repository, marking those in `generated`.
pub fn list(repo: &ostree::Repo, generated: &[DeltaName]) -> anyhow::Result<Vec<DeltaEntry>> {
    let mut out: Vec<DeltaEntry> = names(repo)?
        .into_iter()
        .map(|(from, to)| {
            let generated = generated.iter().any(|(f, t)| *f == from && *t == to);
            DeltaEntry {
                from,
                to,
                generated,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.to, &a.from).cmp(&(&b.to, &b.from)));
    Ok(out)
}

fn names(repo: &ostree::Repo) -> anyhow::Result<Vec<DeltaName>> {
    let names = repo
        .list_static_delta_names(gio::Cancellable::NONE)
        .context("listing static deltas")?;
    Ok(names
        .iter()
        .map(|n| match n.split_once('-') {
            Some((from, to)) => (Some(from.to_string()), to.to_string()),
            None => (None, n.to_string()),
        })
        .collect())
}
