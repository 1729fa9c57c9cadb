//! `rpm-compose`: compose a treefile's RPMs into an ostree commit, on any
//! Linux host: libsolv picks the packages, the rpm crate unpacks them,
//! libostree commits the tree.
//!
//! The steps, each in its module: [`treefile`] and [`repofile`] read the
//! inputs, [`rpmmd`] fetches and verifies repository metadata, [`solve`]
//! depsolves, [`download`] fetches and verifies the RPMs, [`unpack`] lays
//! them into a fresh root, [`postprocess`] turns it into an ostree tree and
//! [`commit`] writes it.

mod archive;
mod caps;
mod changes;
mod commit;
mod compose;
mod dirpool;
mod download;
mod fetch;
mod inode;
mod lock;
mod metadata;
mod outputs;
mod payload;
mod pipeline;
mod pkgcache;
mod postprocess;
mod repofile;
mod rpmdb;
mod rpmmd;
mod sandbox;
mod scriptlets;
mod solve;
mod treefile;
mod unpack;

use std::path::PathBuf;

use clap::Parser;
use releng_manifest::cli::Common;

pub use compose::{compose, Options};

const EXAMPLES: &str = "\
Examples:
  # The Atomic host compose of the old releng scripts, in a pipeline:
  repo-init --repo R | rpm-compose --treefile fedora-atomic-docker-host.json | summary-gen

  # What would be installed, without fetching or committing:
  rpm-compose --treefile host.json --repo R --dry-run < /dev/null

  # Fill the download cache only (e.g. before going offline):
  rpm-compose --treefile host.json --repo R --cachedir /var/cache/compose --download-only
";

/// Compose the RPMs a treefile names into an ostree commit and append it to
/// the manifest's `composes` list.
#[derive(Parser, Debug)]
#[command(name = "rpm-compose", version, after_help = EXAMPLES)]
pub struct Args {
    /// The treefile (rpm-ostree's JSON or YAML format).
    #[arg(long, value_name = "FILE")]
    pub treefile: PathBuf,

    /// ostree repository; defaults to the manifest's `repo.path`.
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,

    /// Where downloaded metadata and RPMs are kept between runs
    /// [default: ~/.cache/rpm-compose, /var/cache/rpm-compose for root].
    #[arg(long, value_name = "DIR")]
    pub cachedir: Option<PathBuf>,

    /// Where to assemble the tree [default: the cache directory, whose
    /// unpacked packages are hard-linked in; with --no-pkgcache, /dev/shm
    /// when it has room for the tree]. Outside the cache directory's
    /// filesystem, every package is unpacked afresh.
    #[arg(long, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,

    /// Do not keep unpacked packages in the cache directory: decompress
    /// every package on every compose (saves the disk an unpacked tree
    /// takes).
    #[arg(long)]
    pub no_pkgcache: bool,

    /// Architecture to compose for [default: this machine's].
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,

    /// Resolve the package set and stop.
    #[arg(long, conflicts_with = "download_only")]
    pub dry_run: bool,

    /// Resolve and download, then stop.
    #[arg(long)]
    pub download_only: bool,

    /// Commit even when nothing changed.
    #[arg(long)]
    pub force_nocache: bool,

    /// Compare against this input hash instead of the ref's commit's.
    #[arg(long, value_name = "HASH")]
    pub previous_inputhash: Option<String>,

    /// Write the new commit's checksum to FILE and leave the ref alone
    /// (the caller moves it, as pungi does).
    #[arg(long, value_name = "FILE")]
    pub write_commitid_to: Option<PathBuf>,

    /// Touch FILE when a new commit was made, only then.
    #[arg(long, value_name = "FILE")]
    pub touch_if_changed: Option<PathBuf>,

    /// Write rpm-ostree's compose JSON (ostree-commit, rpm-ostree-inputhash,
    /// ostree-n-*, pkgdiff…) to FILE.
    #[arg(long, value_name = "FILE")]
    pub write_composejson_to: Option<PathBuf>,

    #[command(flatten)]
    pub common: Common,
}

releng_manifest::impl_tool!(Args);

/// Runs the tool.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut manifest = args.common.read_manifest()?;
    let repo = if args.dry_run {
        manifest.repo_path(args.repo.as_deref()).ok()
    } else {
        Some(manifest.repo_path(args.repo.as_deref())?)
    };
    let cachedir = args.cachedir.clone().unwrap_or_else(default_cachedir);
    let entry = compose(&Options {
        treefile: args.treefile.clone(),
        repo,
        cachedir,
        arch: args
            .arch
            .clone()
            .unwrap_or_else(|| std::env::consts::ARCH.to_string()),
        dry_run: args.dry_run,
        download_only: args.download_only,
        force_nocache: args.force_nocache,
        previous_inputhash: args.previous_inputhash.clone(),
        update_ref: args.write_commitid_to.is_none(),
        tmpdir: args.tmpdir.clone(),
        pkgcache: !args.no_pkgcache,
    })?;
    outputs::write(&entry, &args)?;
    manifest.push("composes", &entry)?;
    args.common.write_manifest(&manifest)
}

fn default_cachedir() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/cache/rpm-compose");
    }
    match std::env::var_os("XDG_CACHE_HOME").or_else(|| {
        std::env::var_os("HOME").map(|h| {
            let mut p = PathBuf::from(h);
            p.push(".cache");
            p.into_os_string()
        })
    }) {
        Some(base) => PathBuf::from(base).join("rpm-compose"),
        None => std::env::temp_dir().join("rpm-compose-cache"),
    }
}
