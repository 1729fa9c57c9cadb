//! Creating or checking the repository.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use releng_manifest::{BadInput, RepoMode, RepoSection};

use crate::config::{self, ConfigSetting};

/// What the caller wants to exist.
#[derive(Debug, Clone)]
pub struct InitRequest {
    /// Repository path (relative paths are taken from the current directory).
    pub path: PathBuf,
    /// Wanted mode; `None` accepts any existing mode and creates `archive`.
    pub mode: Option<RepoMode>,
    /// Wanted collection id; `None` accepts whatever exists.
    pub collection_id: Option<String>,
    /// Config keys to set.
    pub settings: Vec<ConfigSetting>,
}

/// What was found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOutcome {
    /// Canonical absolute path.
    pub path: PathBuf,
    /// The repository's mode.
    pub mode: RepoMode,
    /// True when this call created it.
    pub created: bool,
    /// `core.collection-id`.
    pub collection_id: Option<String>,
    /// The `--set` keys with the values they now hold.
    pub config: BTreeMap<String, String>,
}

impl InitOutcome {
    /// The manifest's `repo` section.
    pub fn section(&self) -> RepoSection {
        RepoSection {
            path: self.path.to_string_lossy().into_owned(),
            mode: self.mode,
            created: self.created,
            collection_id: self.collection_id.clone(),
            config: self.config.clone(),
        }
    }
}

enum Found {
    Nothing,
    EmptyDir,
    Repo,
}

/// Makes sure the repository of `req` exists. Every refusal happens before
/// anything is written.
pub fn ensure_repo(req: &InitRequest) -> anyhow::Result<InitOutcome> {
    config::check_conflicts(&req.settings)?;
    if let Some(id) = &req.collection_id {
        ostree::validate_collection_id(Some(id))
            .map_err(|e| BadInput::err(format!("--collection-id `{id}`: {}", e.message())))?;
    }
    let path = std::path::absolute(&req.path)
        .with_context(|| format!("{}: cannot resolve the path", req.path.display()))?;
    // Two runs can race to create the same repository; the loser of the
    // rename finds the winner's repository on its second look.
    for _ in 0..2 {
        match probe(&path)? {
            Found::Repo => return open_existing(&path, req),
            Found::Nothing | Found::EmptyDir => {
                if let Some(outcome) = create(&path, req)? {
                    return Ok(outcome);
                }
            }
        }
    }
    Err(anyhow!(
        "{}: the directory keeps changing under us; is another tool writing to it?",
        path.display()
    ))
}

fn probe(path: &Path) -> anyhow::Result<Found> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot inspect", path.display())),
    };
    if !meta.is_dir() {
        return Err(BadInput::err(format!(
            "{}: exists and is not a directory",
            path.display()
        )));
    }
    if path.join("config").is_file() && path.join("objects").is_dir() {
        return Ok(Found::Repo);
    }
    let mut entries =
        fs::read_dir(path).with_context(|| format!("{}: cannot list", path.display()))?;
    if entries.next().is_none() {
        return Ok(Found::EmptyDir);
    }
    Err(BadInput::err(format!(
        "{}: a non-empty directory that is not an ostree repository \
         (no config and objects/); refusing to touch it",
        path.display()
    )))
}

fn open_existing(path: &Path, req: &InitRequest) -> anyhow::Result<InitOutcome> {
    let repo = ostree::Repo::new_for_path(path);
    repo.open(gio::Cancellable::NONE).map_err(|e| {
        BadInput::err(format!(
            "{}: looks like an ostree repository but cannot be opened: {}",
            path.display(),
            e.message()
        ))
    })?;
    let mode = releng_ostree::mode_from_ostree(repo.mode())
        .ok_or_else(|| BadInput::err(format!("{}: unsupported repository mode", path.display())))?;
    if let Some(wanted) = req.mode {
        if wanted != mode {
            return Err(BadInput::err(format!(
                "{}: repository exists in mode {mode}, but --mode {wanted} was asked for; \
                 nothing changed",
                path.display()
            )));
        }
    }
    let existing_id = repo.collection_id().map(|s| s.to_string());
    if let Some(wanted) = &req.collection_id {
        if existing_id.as_deref() != Some(wanted.as_str()) {
            return Err(BadInput::err(format!(
                "{}: repository has collection id {}, but --collection-id {wanted} was asked for; \
                 nothing changed",
                path.display(),
                existing_id.as_deref().unwrap_or("(none)")
            )));
        }
    }
    let keyfile = repo.copy_config();
    if config::apply(&keyfile, &req.settings) {
        // ostree writes the config through a temporary file and a rename.
        repo.write_config(&keyfile)
            .with_context(|| format!("{}: writing config", path.display()))?;
        log::info!("{}: updated config", path.display());
    } else {
        log::info!(
            "{}: existing {mode} repository, nothing to do",
            path.display()
        );
    }
    Ok(InitOutcome {
        path: fs::canonicalize(path)?,
        mode,
        created: false,
        collection_id: existing_id,
        config: settings_map(&req.settings),
    })
}

/// Builds the repository in a hidden sibling and renames it into place.
/// Returns `None` when another process put something there first.
fn create(path: &Path, req: &InitRequest) -> anyhow::Result<Option<InitOutcome>> {
    let parent = path.parent().ok_or_else(|| {
        BadInput::err(format!(
            "{}: cannot create a repository at /",
            path.display()
        ))
    })?;
    fs::create_dir_all(parent)
        .with_context(|| format!("{}: cannot create the parent directory", parent.display()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.repo-init-"))
        .tempdir_in(parent)
        .with_context(|| format!("{}: cannot create a staging directory", parent.display()))?;
    let mode = req.mode.unwrap_or(RepoMode::Archive);
    let repo = ostree::Repo::new_for_path(staging.path());
    repo.set_collection_id(req.collection_id.as_deref())
        .context("setting the collection id")?;
    repo.create(releng_ostree::mode_to_ostree(mode), gio::Cancellable::NONE)
        .with_context(|| format!("{}: ostree init failed", path.display()))?;
    if !req.settings.is_empty() {
        let keyfile = repo.copy_config();
        config::apply(&keyfile, &req.settings);
        repo.write_config(&keyfile).context("writing config")?;
    }
    // tempdir makes the directory 0700; a repository is served and shared.
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o777 & !umask()))?;
    sync_dir(staging.path())?;
    match fs::rename(staging.path(), path) {
        Ok(()) => {
            // The staging directory is the repository now: keep it.
            let _ = staging.keep();
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
            log::debug!("{}: another process created it first", path.display());
            return Ok(None);
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "{}: cannot move the new repository into place",
                    path.display()
                )
            })
        }
    }
    sync_dir(parent)?;
    log::info!("{}: created {mode} repository", path.display());
    Ok(Some(InitOutcome {
        path: fs::canonicalize(path)?,
        mode,
        created: true,
        collection_id: req.collection_id.clone(),
        config: settings_map(&req.settings),
    }))
}

fn settings_map(settings: &[ConfigSetting]) -> BTreeMap<String, String> {
    settings
        .iter()
        .map(|s| (s.name(), s.value.clone()))
        .collect()
}

fn umask() -> u32 {
    // SAFETY: umask only swaps the process mask; we restore it at once.
    // Nothing else in this single-threaded tool creates files meanwhile.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old as u32
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}
