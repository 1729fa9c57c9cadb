//! What the releng tools share about libostree.
//!
//! Every tool that takes a repository opens it the same way, so a wrong
//! path gets the same clear, exit-2 error everywhere.

use std::path::Path;

use releng_manifest::{BadInput, RepoMode};

/// Opens the existing repository at `path`. Not a repository, or one
/// libostree cannot open, is [`BadInput`] naming the path; `hint` is
/// appended to the not-a-repository message (e.g. "run repo-init first").
pub fn open(path: &Path, hint: &str) -> anyhow::Result<ostree::Repo> {
    if !path.join("objects").is_dir() || !path.join("config").is_file() {
        let hint = if hint.is_empty() {
            String::new()
        } else {
            format!("; {hint}")
        };
        return Err(BadInput::err(format!(
            "{}: not an ostree repository (no config and objects/){hint}",
            path.display()
        )));
    }
    let repo = ostree::Repo::new_for_path(path);
    repo.open(gio::Cancellable::NONE).map_err(|e| {
        BadInput::err(format!(
            "{}: cannot open the repository: {}",
            path.display(),
            e.message()
        ))
    })?;
    Ok(repo)
}

/// libostree's mode for ours.
pub fn mode_to_ostree(mode: RepoMode) -> ostree::RepoMode {
    match mode {
        RepoMode::Archive => ostree::RepoMode::Archive,
        RepoMode::Bare => ostree::RepoMode::Bare,
        RepoMode::BareUser => ostree::RepoMode::BareUser,
        RepoMode::BareUserOnly => ostree::RepoMode::BareUserOnly,
    }
}

/// Our mode for libostree's; `None` for modes newer than we support.
pub fn mode_from_ostree(mode: ostree::RepoMode) -> Option<RepoMode> {
    match mode {
        ostree::RepoMode::Archive => Some(RepoMode::Archive),
        ostree::RepoMode::Bare => Some(RepoMode::Bare),
        ostree::RepoMode::BareUser => Some(RepoMode::BareUser),
        ostree::RepoMode::BareUserOnly => Some(RepoMode::BareUserOnly),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_names_the_path_and_the_hint() {
        let d = tempfile::tempdir().unwrap();
        let e = open(d.path(), "run repo-init first").unwrap_err();
        assert_eq!(releng_manifest::exit_code(&e), 2);
        let text = format!("{e}");
        assert!(
            text.contains(&d.path().display().to_string()) && text.contains("repo-init"),
            "{text}"
        );
    }

    #[test]
    fn modes_round_trip() {
        for m in [
            RepoMode::Archive,
            RepoMode::Bare,
            RepoMode::BareUser,
            RepoMode::BareUserOnly,
        ] {
            assert_eq!(mode_from_ostree(mode_to_ostree(m)), Some(m));
        }
    }
}
