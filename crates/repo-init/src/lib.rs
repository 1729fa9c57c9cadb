//! `repo-init`: `ostree init` for pipelines.
//!
//! Makes sure an ostree repository exists at a path, in the wanted mode and
//! configuration, and records it in the manifest's `repo` section. Creating
//! is atomic: the repository is built in a hidden sibling directory and
//! renamed into place, so an interrupted run leaves either nothing or a
//! complete repository, and two concurrent runs agree on one.

mod config;
mod init;

use std::path::PathBuf;

use clap::Parser;
use releng_manifest::cli::Common;
use releng_manifest::RepoMode;

pub use config::ConfigSetting;
pub use init::{ensure_repo, InitOutcome, InitRequest};

const EXAMPLES: &str = "\
Examples:
  # Create the archive repo a compose will write to, start a manifest:
  repo-init --repo /srv/atomic/repo > manifest.json

  # At the head of a pipeline:
  repo-init --repo R --mode archive | rpm-compose --treefile host.json | summary-gen

  # A collection id and extra config; re-running changes nothing:
  repo-init --repo R --collection-id org.example.Os --set core.min-free-space-percent=2
";

/// Create an ostree repository (or check an existing one) and record it in
/// the manifest's `repo` section.
#[derive(Parser, Debug)]
#[command(name = "repo-init", version, after_help = EXAMPLES)]
pub struct Args {
    /// Repository path; defaults to the manifest's `repo.path`.
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,

    /// Storage mode (default for a new repository: archive). An existing
    /// repository in another mode is an error.
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub mode: Option<RepoMode>,

    /// core.collection-id of a new repository; must match an existing one.
    #[arg(long, value_name = "ID")]
    pub collection_id: Option<String>,

    /// Set a config key, as `ostree config set` does (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE", value_parser = ConfigSetting::parse)]
    pub settings: Vec<ConfigSetting>,

    #[command(flatten)]
    pub common: Common,
}

releng_manifest::impl_tool!(Args);

/// Parses a `--mode` value; `archive-z2` is ostree's old name for `archive`.
pub fn parse_mode(s: &str) -> Result<RepoMode, String> {
    match s {
        "archive" | "archive-z2" => Ok(RepoMode::Archive),
        "bare" => Ok(RepoMode::Bare),
        "bare-user" => Ok(RepoMode::BareUser),
        "bare-user-only" => Ok(RepoMode::BareUserOnly),
        _ => Err(format!(
            "unknown mode `{s}` (expected archive, archive-z2, bare, bare-user or bare-user-only)"
        )),
    }
}

/// Runs the tool: reads the manifest, ensures the repository, writes the
/// manifest with the new `repo` section.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut manifest = args.common.read_manifest()?;
    let path = manifest.repo_path(args.repo.as_deref())?;
    let outcome = ensure_repo(&InitRequest {
        path,
        mode: args.mode,
        collection_id: args.collection_id.clone(),
        settings: args.settings.clone(),
    })?;
    manifest.set(&outcome.section())?;
    args.common.write_manifest(&manifest)
}
