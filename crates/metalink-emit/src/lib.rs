//! `metalink-emit`: metalinks and mirrorlists from the manifest's `scan`
//! and `mirrors` sections, as files or from a server.
//!
//! Every answer, written to a file or served, goes through the same
//! precomputed [`catalog::Catalog`], the same ordering ([`select`]) and the
//! same writers ([`Format::write`]): a file and a served document for the same
//! client and seed are the same bytes apart from the date.

pub mod catalog;
mod emit;
mod format;
pub mod geoip;
pub mod metalink;
pub mod mirrorlist;
pub mod netblock;
pub mod query;
pub mod select;
mod serve;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use releng_manifest::cli::Common;

pub use format::{Format, Header};

const EXAMPLES: &str = "\
Files are named <repo>.<arch>.metalink (Metalink 3.0), <repo>.<arch>.meta4
(RFC 5854) and <repo>.<arch>.mirrorlist, from the scan's repo= and arch=.

Examples:
  # Last step of the pipeline: one Metalink 3.0 file per repository:
  ... | mm-crawl mirrors --mirrors mirrors.toml | metalink-emit --output-dir metalinks/

  # All three formats, ordered for a client in Germany, repeatably:
  metalink-emit --manifest m.json --output-dir out/ --format metalink3 \\
      --format meta4 --format mirrorlist --country DE --seed 1 > m2.json

  # The mirrorlist server (reloads m.json when it changes, and on SIGHUP):
  metalink-emit serve --listen 127.0.0.1:8080 --manifest m.json
  curl 'http://127.0.0.1:8080/metalink?repo=fedora-atomic&arch=x86_64&country=DE'
";

/// Write metalinks and mirrorlists for the scanned repositories, or serve
/// them.
#[derive(Parser, Debug)]
#[command(
    name = "metalink-emit",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// `serve`; without it, write files.
    #[command(subcommand)]
    pub cmd: Option<Cmd>,

    /// What the files are written with.
    #[command(flatten)]
    pub emit: EmitArgs,

    #[command(flatten)]
    pub common: Common,
}

releng_manifest::impl_tool!(Args);

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Serve MirrorManager-compatible /metalink and /mirrorlist over HTTP.
    Serve(ServeArgs),
}

/// Options of the default action: writing files.
#[derive(clap::Args, Debug, Clone)]
pub struct EmitArgs {
    /// Directory the files go to (created when missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub output_dir: PathBuf,

    /// Formats to write (repeatable).
    #[arg(long, value_enum, value_name = "FORMAT", default_values_t = [Format::Metalink3])]
    pub format: Vec<Format>,

    /// Order for a client in this country (ISO 3166 code).
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,

    /// Order for a client at this address (netblocks, private mirrors).
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<IpAddr>,

    /// List at least N mirrors, adding continent then global ones.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub min_mirrors: usize,

    /// Seed of the weighted shuffle, for repeatable files.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// Options of `serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the address bound is
    /// logged on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The manifest to serve from; reloaded when it changes and on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,

    /// List at least N mirrors, adding continent then global ones.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub min_mirrors: usize,

    /// MaxMind DB (GeoLite2/GeoIP2 Country or City) giving the country and
    /// continent of clients that send no `country=`.
    #[arg(long, value_name = "MMDB")]
    pub geoip: Option<PathBuf>,

    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Runs the tool: writes the files (default) or serves.
pub fn run(args: Args) -> anyhow::Result<()> {
    match &args.cmd {
        Some(Cmd::Serve(s)) => serve::run(s, args.common.quiet),
        None => emit::run(&args.emit, &args.common),
    }
}

/// Reads a manifest's `scan` and `mirrors` sections into a catalog;
/// missing sections are bad input.
pub fn catalog_of(manifest: &releng_manifest::Manifest) -> anyhow::Result<catalog::Catalog> {
    use releng_manifest::{BadInput, MirrorsSection, ScanSection};
    let scan = manifest.get::<ScanSection>()?.ok_or_else(|| {
        BadInput::err("the manifest has no `scan` section: run `mm-crawl scan` first")
    })?;
    let mirrors = manifest.get::<MirrorsSection>()?.ok_or_else(|| {
        BadInput::err("the manifest has no `mirrors` section: run `mm-crawl mirrors` first")
    })?;
    Ok(catalog::Catalog::build(&scan, &mirrors))
}
