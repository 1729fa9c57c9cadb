//! `mm-crawl`: MirrorManager's umdl and crawler for pipelines.
//!
//! `scan` walks a master tree, finds yum repositories (`repodata/repomd.xml`)
//! and ostree repositories (`summary`, `objects/`, `config`) and records
//! their metadata files with digests in the manifest's `scan` section.
//! `mirrors` fetches each mirror's copy of those metadata files and compares
//! checksums, so a stale summary of the same size is caught, and writes the
//! `mirrors` section.
//!
//! Both keep what they learn between runs in one JSON state file
//! (`--state`): the scan's stat keys and older digests (alternates), the
//! crawler's ETags and failure counts.

mod crawl;
mod deep;
mod http;
mod mirrorsfile;
mod naming;
mod pool;
mod repomd;
mod rsync;
mod scan;
mod state;
mod walk;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use releng_manifest::cli::{Common, Tool};

pub use mirrorsfile::{HostConfig, MirrorsFile};
pub use naming::RepoMap;
pub use state::State;
pub use walk::{walk, Found, Walk};

const EXAMPLES: &str = "\
Examples:
  # Find the repositories of the master tree (with state: rescans hash nothing):
  mm-crawl scan --root /pub/fedora/linux --state mm-state.json < /dev/null > m.json

  # Then crawl the mirrors listed in mirrors.toml against that scan:
  mm-crawl mirrors --mirrors mirrors.toml --state mm-state.json < m.json

  # In a pipeline, after summary-gen (its repo is picked up without re-hashing):
  summary-gen --repo R | mm-crawl scan --root /pub | mm-crawl mirrors --mirrors m.toml
";

/// Find yum and ostree repositories in a master tree and crawl mirrors for
/// freshness by checksum.
#[derive(Parser, Debug)]
#[command(name = "mm-crawl", version, after_help = EXAMPLES)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Walk a master tree and record its repositories in the `scan` section.
    #[command(after_help = scan::EXAMPLES)]
    Scan(ScanArgs),
    /// Crawl mirrors against the `scan` section; writes the `mirrors`
    /// section.
    #[command(after_help = crawl::EXAMPLES)]
    Mirrors(MirrorsArgs),
}

/// `mm-crawl scan`.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// The master tree to walk (what the mirrors' base URLs mirror).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,

    /// MirrorManager category recorded in the manifest.
    #[arg(long, value_name = "NAME", default_value = "Fedora Linux")]
    pub category: String,

    /// TOML file of `[[map]]` rules (regex on the repo path → prefix, arch)
    /// that beat the built-in Fedora layout names.
    #[arg(long, value_name = "FILE")]
    pub repo_map: Option<PathBuf>,

    /// JSON state kept between runs (stat keys, alternates, crawl state);
    /// without it every run hashes every metadata file and has no
    /// alternates.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Keep earlier versions of a metadata file as alternates for this many
    /// days after they were replaced.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub keep_days: u32,

    #[command(flatten)]
    pub common: Common,
}

/// `mm-crawl mirrors`.
#[derive(clap::Args, Debug)]
pub struct MirrorsArgs {
    /// TOML file of `[[host]]` tables.
    #[arg(long, value_name = "FILE")]
    pub mirrors: PathBuf,

    /// JSON state kept between runs (ETags, failure counts, disabled hosts).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Hosts crawled at once (each with at most 2 requests in flight): a
    /// host's crawl is mostly waiting on latency, so many in flight is cheap.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub concurrency: usize,

    /// Seconds one host's whole crawl may take; connecting gets at most 10.
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    pub timeout: f64,

    /// Consecutive failed crawls after which a host is disabled.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_failures: u32,

    /// Also check a sample of each repo's other files by size (and mtime
    /// where the mirror gives one): yum the files repomd.xml lists, ostree
    /// the refs' commit objects. Needs the scan root on this machine.
    #[arg(long)]
    pub deep: bool,

    #[command(flatten)]
    pub common: Common,
}

impl Tool for Args {
    fn common(&self) -> &Common {
        match &self.cmd {
            Cmd::Scan(a) => &a.common,
            Cmd::Mirrors(a) => &a.common,
        }
    }
}

/// Runs the tool.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Scan(a) => scan::run(a),
        Cmd::Mirrors(a) => crawl::run(a),
    }
}

/// Seconds since the epoch, now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
