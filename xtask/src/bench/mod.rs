//! `cargo xtask bench NAME`: benchmarks against the tools we replace, run
//! side by side in one run on the same input. Release builds; medians.

mod compose;
mod crawl;
mod image;
mod serve;
mod summary;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::ValueEnum;

use crate::deps;

/// The benchmarks.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Name {
    /// summary-gen against `ostree summary -u` on a repo with 10,000 refs.
    Summary,
    /// rpm-compose (cold, warm, one package changed, no-op) against
    /// `dnf --installroot` + `ostree commit` on 163 Debian packages as RPMs.
    Compose,
    /// qcow2-build against the same steps scripted by hand, on the compose
    /// corpus plus the fixture kernel, a 6 GiB disk.
    Image,
    /// mm-crawl scan against `find -type f | wc -l` on 400,000 files, and
    /// mm-crawl mirrors against 300 simulated hosts on 127.0.0.1.
    Crawl,
    /// metalink-emit serve against nginx serving the same metalinks as
    /// static files, with wrk, on 300 mirror hosts × 200 repos.
    Serve,
}

impl Name {
    /// Timed runs per contender when `--runs` is not given: a compose
    /// round takes minutes, a summary run a fraction of a second.
    pub fn default_runs(self) -> usize {
        match self {
            Name::Summary => 7,
            Name::Crawl => 5,
            Name::Serve => 1,
            Name::Compose | Name::Image => 3,
        }
    }
}

/// Runs benchmark `name` with `runs` timed runs per contender (its default
/// when `None`).
pub fn run(name: Name, runs: Option<usize>) -> anyhow::Result<()> {
    let runs = runs.unwrap_or_else(|| name.default_runs());
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    deps::ensure()?;
    match name {
        Name::Summary => summary::run(runs),
        Name::Compose => compose::run(runs),
        Name::Image => image::run(runs),
        Name::Crawl => crawl::run(runs),
        Name::Serve => serve::run(runs),
    }
}

/// Runs `cmd` with no input and its stdout discarded, and returns its wall
/// time; fails unless it exits 0.
fn time(cmd: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let st = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    let took = start.elapsed();
    if !st.success() {
        bail!("{:?} failed: {st}", cmd.get_program());
    }
    Ok(took)
}

/// The median of `samples` (sorted in place); the mean of the middle two
/// for an even count.
fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    }
}

/// Writes `report` as `dir/result.json` and says where (relative to the
/// workspace `root`).
fn write_result(root: &Path, dir: &Path, report: &serde_json::Value) -> anyhow::Result<()> {
    let out = dir.join("result.json");
    std::fs::write(&out, serde_json::to_vec_pretty(report)?)?;
    eprintln!("wrote {}", out.strip_prefix(root).unwrap_or(&out).display());
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
