//! `summary-gen`: `ostree summary -u` for pipelines.
//!
//! Regenerates the repository's `summary` file through libostree (the same
//! code the ostree CLI runs, so clients see exactly what they would see from
//! `ostree summary -u`), optionally generates static deltas first and signs
//! the result, then reads the written file back and describes it in the
//! manifest's `summary` section: digests for metalinks, refs for mirrors.

mod deltas;
mod metadata;
mod readback;
mod regenerate;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use releng_manifest::cli::Common;
use releng_manifest::{BadInput, SignatureFile, SummarySection};

pub use metadata::MetadataArg;
pub use readback::{read_summary, SummaryFile};

const EXAMPLES: &str = "\
Examples:
  # After a compose, in a pipeline (the repo comes from the manifest):
  repo-init --repo R | rpm-compose --treefile host.json | summary-gen

  # Alone, with extra metadata (values are GVariant text, like ostree's -m):
  summary-gen --repo R --add-metadata xa.title=\"'Fedora Atomic'\" < /dev/null

  # Deltas from each ref's parent, then a signed summary:
  summary-gen --repo R --static-deltas --gpg-sign 0x1234ABCD --gpg-homedir keys/
";

/// Regenerate an ostree repository's summary and record it in the
/// manifest's `summary` section.
#[derive(Parser, Debug)]
#[command(name = "summary-gen", version, after_help = EXAMPLES)]
pub struct Args {
    /// Repository path; defaults to the manifest's `repo.path`.
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,

    /// Extra summary metadata; VALUE is GVariant text, e.g. "'str'" or
    /// "uint32 3", as for `ostree summary -m` (repeatable).
    #[arg(short = 'm', long = "add-metadata", value_name = "KEY=VALUE", value_parser = MetadataArg::parse)]
    pub metadata: Vec<MetadataArg>,

    /// Sign the summary with this GPG key id (repeatable).
    #[arg(long = "gpg-sign", value_name = "KEYID")]
    pub gpg_sign: Vec<String>,

    /// GnuPG home directory holding the signing keys.
    #[arg(long, value_name = "DIR", requires = "gpg_sign")]
    pub gpg_homedir: Option<PathBuf>,

    /// First generate a static delta from each ref's parent to the ref,
    /// unless it exists already.
    #[arg(long)]
    pub static_deltas: bool,

    #[command(flatten)]
    pub common: Common,
}

releng_manifest::impl_tool!(Args);

/// Runs the tool: reads the manifest, regenerates, writes the manifest.
pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut manifest = args.common.read_manifest()?;
    let repo_path = manifest.repo_path(args.repo.as_deref())?;
    if let Some(home) = &args.gpg_homedir {
        if !home.is_dir() {
            return Err(BadInput::err(format!(
                "--gpg-homedir {}: not a directory",
                home.display()
            )));
        }
    }
    let repo = releng_ostree::open(&repo_path, "")?;
    let repo_path = std::fs::canonicalize(&repo_path)?;
    let extra = metadata::to_variant(&args.metadata);

    let mut generated = Vec::new();
    if args.static_deltas {
        generated = deltas::generate_from_parents(&repo)?;
    }
    log::debug!("opened repository: {:?}", started.elapsed());
    regenerate::summary(&repo, &extra, &args.gpg_sign, args.gpg_homedir.as_deref())?;
    log::debug!("regenerated: {:?}", started.elapsed());

    let summary = read_summary(&repo_path.join("summary"))?;
    log::debug!("read back: {:?}", started.elapsed());
    let signature = if args.gpg_sign.is_empty() {
        None
    } else {
        Some(signature_file(&repo_path, &args.gpg_sign)?)
    };
    let section = SummarySection {
        repo: repo_path.to_string_lossy().into_owned(),
        path: repo_path.join("summary").to_string_lossy().into_owned(),
        file: summary.file,
        last_modified: summary.last_modified,
        refs: summary.refs,
        signed: signature.is_some(),
        signature,
        deltas: deltas::list(&repo, &generated)?,
        metadata: summary.metadata,
        duration_s: started.elapsed().as_secs_f64(),
    };
    log::info!(
        "{}: summary with {} refs, {} bytes{}",
        repo_path.display(),
        section.refs.len(),
        section.file.size,
        if section.signed { ", signed" } else { "" }
    );
    manifest.set(&section)?;
    args.common.write_manifest(&manifest)?;
    log::debug!("manifest written: {:?}", started.elapsed());
    Ok(())
}

fn signature_file(repo: &Path, key_ids: &[String]) -> anyhow::Result<SignatureFile> {
    let path = repo.join("summary.sig");
    let file = file_details::FileDetails::of_path(&path)
        .with_context(|| format!("{}: reading the signature just written", path.display()))?;
    Ok(SignatureFile {
        path: path.to_string_lossy().into_owned(),
        file,
        key_ids: key_ids.to_vec(),
    })
}
