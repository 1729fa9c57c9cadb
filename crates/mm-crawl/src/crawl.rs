//! `mm-crawl mirrors`: every host's copy of every repository's metadata
//! file, compared by sha256.
//!
//! Hosts are crawled `--concurrency` at a time; each host gets its own
//! connection pool and two workers, so a mirror never sees more than two
//! requests from us at once. A host's whole crawl runs against one
//! deadline (`--timeout`), so a mirror that accepts and never answers costs
//! that long and no more.
//!
//! Failures: a host that answers nothing (no HTTP status, no rsync listing)
//! fails the crawl; after `--max-failures` failed crawls in a row it is
//! `disabled`. A disabled host gets one cheap probe per later crawl (http:
//! a GET of the first repository's metadata file; rsync: a listing of that
//! file, nothing fetched; both capped at 5 s; file: whether the base
//! directory is there): if that answers, the host is crawled in full and
//! enabled again, otherwise it stays disabled and its repositories are
//! `unknown`. A `file://` host whose base directory is not there has not
//! answered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use releng_manifest::progress::Progress;
use releng_manifest::{BadInput, HostState, MirrorsSection, RepoKind, ScanSection};

use crate::deep::{self, SampleFile};
use crate::mirrorsfile::MirrorsFile;
use crate::pool;
use crate::state::State;
use crate::MirrorsArgs;

mod fetch;
mod host;
mod verdict;

use host::HostCrawl;

pub(crate) const EXAMPLES: &str = "\
Examples:
  mm-crawl mirrors --mirrors mirrors.toml --state mm-state.json < scan.json
  mm-crawl scan --root /pub/fedora/linux < /dev/null \\
    | mm-crawl mirrors --mirrors mirrors.toml --timeout 30 --concurrency 64

Mirrors file (TOML):
  [[host]]
  name = \"mirror.example.org\"
  country = \"DE\"
  continent = \"EU\"                       # optional
  bandwidth = 1000                       # default 100
  asn = 3320                             # optional
  netblocks = [\"192.0.2.0/24\"]           # optional
  private = false
  always_up2date = false                 # not crawled, reported up to date
  urls = [\"https://mirror.example.org/fedora/linux\", \"rsync://mirror.example.org/fedora-linux\"]
";

/// One distinct repository to check: what the master has.
struct Target {
    path: String,
    /// The metadata file's path relative to the root.
    metadata: String,
    kind: RepoKind,
    current: String,
    alternates: Vec<String>,
    /// `--deep`: other files of the repo to look for.
    sample: Vec<SampleFile>,
}

impl Target {
    /// The metadata file's URL under a host's `base` URL.
    fn url(&self, base: &str) -> String {
        format!("{base}/{}", self.metadata)
    }
}

/// Runs `mirrors`.
pub fn run(args: MirrorsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let crawled_at = crate::now();
    let mut manifest = args.common.read_manifest()?;
    let scan = manifest.get::<ScanSection>()?.ok_or_else(|| {
        BadInput::err(
            "the manifest has no `scan` section: run `mm-crawl scan --root DIR` first \
             and pipe its manifest in (or pass --manifest FILE)",
        )
    })?;
    let mirrors = MirrorsFile::load(&args.mirrors)?;
    if args.concurrency == 0 {
        return Err(BadInput::err("--concurrency must be at least 1"));
    }
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return Err(BadInput::err(
            "--timeout must be a positive number of seconds",
        ));
    }
    let source = std::fs::canonicalize(&args.mirrors)
        .unwrap_or_else(|_| args.mirrors.clone())
        .to_string_lossy()
        .into_owned();
    let mut state = State::load(args.state.as_deref())?;
    let targets = targets(&scan, args.deep);
    let timeout = Duration::from_secs_f64(args.timeout);

    let progress = Progress::bar(mirrors.hosts.len() as u64, "hosts").with_prefix("crawling");
    let crawled = pool::map(&mirrors.hosts, args.concurrency, |host| {
        let crawl = HostCrawl {
            host,
            targets: &targets,
            record: state.hosts.get(&host.name).cloned().unwrap_or_default(),
            timeout,
            max_failures: args.max_failures,
        };
        let done = crawl.run();
        progress.inc(1);
        done
    });
    progress.finish();
    let mut hosts = Vec::new();
    for (cfg, (host, record)) in mirrors.hosts.iter().zip(crawled) {
        state.hosts.insert(cfg.name.clone(), record);
        hosts.push(host);
    }
    // Hosts no longer in the mirrors file take their validators with them.
    state
        .hosts
        .retain(|name, _| mirrors.hosts.iter().any(|h| &h.name == name));
    let section = MirrorsSection {
        source,
        crawled_at,
        duration_s: started.elapsed().as_secs_f64(),
        hosts,
    };
    let count = |st: HostState| section.hosts.iter().filter(|h| h.state == st).count();
    log::info!(
        "{} hosts × {} repositories in {:.2}s: {} ok, {} unreachable, {} disabled",
        section.hosts.len(),
        targets.len(),
        section.duration_s,
        count(HostState::Ok),
        count(HostState::Unreachable),
        count(HostState::Disabled)
    );
    state.save(args.state.as_deref())?;
    manifest.set(&section)?;
    args.common.write_manifest(&manifest)
}

/// The scan's repositories, one per path (ostree repos have an entry per
/// arch, all sharing one summary).
fn targets(scan: &ScanSection, deep: bool) -> Vec<Target> {
    let mut by_path: BTreeMap<&str, Target> = BTreeMap::new();
    let root = std::path::Path::new(&scan.root);
    if deep && !root.is_dir() {
        log::warn!(
            "--deep: the scan root {} is not here: no samples",
            scan.root
        );
    }
    for r in &scan.repos {
        by_path.entry(&r.path).or_insert_with(|| Target {
            sample: if deep {
                let same: Vec<_> = scan.repos.iter().filter(|x| x.path == r.path).collect();
                deep::sample(root, &same)
            } else {
                Vec::new()
            },
            path: r.path.clone(),
            metadata: r.metadata_path(),
            kind: r.kind,
            current: r.file.details.sha256.clone(),
            alternates: r
                .alternates
                .iter()
                .map(|a| a.details.sha256.clone())
                .collect(),
        });
    }
    by_path.into_values().collect()
}
