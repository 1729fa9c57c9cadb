//! `cargo xtask bench compose`: rpm-compose against Debian's
//! `dnf --installroot … install` followed by `ostree commit`, on a corpus
//! of real Debian packages repackaged as RPMs (see [`corpus`]).
//!
//! Each round runs the baseline, then rpm-compose cold (fresh repository,
//! empty cache), warm (`--force-nocache` on the full cache), with one
//! package changed (the corpus with one RPM rebuilt) and as a no-op (the
//! same inputs again); the baseline goes first in even rounds and last in
//! odd ones, so drift on the machine hits both alike. Wall time is taken
//! here; CPU time (user + system, of the whole process tree) and peak RSS
//! (its largest process) come from `/usr/bin/time`. CPU time shows what
//! wall time hides on a machine that is busy with something else.

pub(super) mod corpus;
mod deb;
mod report;
mod rpmbuild;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::{root, run};

/// What rpm-compose prints when the inputs are unchanged.
const NO_CHANGES: &str = "No apparent changes since previous commit";

/// One timed run: wall time, CPU time and peak RSS.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    rss_kib: u64,
}

/// The contenders, in report order.
const CASES: [&str; 5] = ["baseline", "cold", "warm", "one_changed", "noop"];

/// Runs the benchmark: `runs` rounds.
pub fn run(runs: usize) -> anyhow::Result<()> {
    let root = root();
    let started = Instant::now();
    run::cargo(
        &root,
        &[
            "build",
            "--release",
            "-p",
            "rpm-compose",
            "-p",
            "repo-init",
            "--bins",
        ],
    )?;
    let dir = root.join("target/bench/compose");
    let corpus = corpus::ensure(&dir)?;
    let f = &corpus.figures;
    let corpus_line = format!(
        "corpus: {} RPMs, {:.1} MB of RPMs, {:.1} MB installed, {} files skipped; built in {:.0} s{}",
        f["rpms"],
        f["rpm_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        f["installed_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        f["skipped_files"],
        corpus::build_time(f).as_secs_f64(),
        if corpus.reused { " (cached)" } else { "" },
    );
    eprintln!("bench compose: {corpus_line}");
    // Both contenders read the RPMs from the page cache, whoever goes first.
    warm_page_cache(&corpus.repo)?;

    let bench = Bench {
        compose: run::release_bin(&root, "rpm-compose"),
        repo_init: run::release_bin(&root, "repo-init"),
        scratch: dir.join("runs"),
        corpus: &corpus,
    };
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); CASES.len()];
    for round in 0..runs {
        eprintln!("bench compose: round {}/{runs}", round + 1);
        if round % 2 == 0 {
            samples[0].push(bench.baseline()?);
        }
        for (i, s) in bench.ours()?.into_iter().enumerate() {
            samples[i + 1].push(s);
        }
        if round % 2 == 1 {
            samples[0].push(bench.baseline()?);
        }
    }
    let _ = fs::remove_dir_all(&bench.scratch);
    report::report(&dir, &root, &corpus, &corpus_line, runs, &samples)?;
    eprintln!(
        "bench compose: took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

struct Bench<'a> {
    compose: PathBuf,
    repo_init: PathBuf,
    scratch: PathBuf,
    corpus: &'a corpus::Corpus,
}

impl Bench<'_> {
    /// dnf into a fresh installroot with a fresh cache, then `ostree commit`
    /// of it into a fresh archive repository; the sum of the two.
    fn baseline(&self) -> anyhow::Result<Sample> {
        let (root, cache, repo) = (
            self.fresh("dnf-root")?,
            self.fresh("dnf-cache")?,
            self.fresh("ostree-baseline")?,
        );
        run::output(
            Command::new("ostree")
                .arg("init")
                .arg(repo_arg(&repo))
                .arg("--mode=archive"),
        )?;
        let mut dnf = Command::new("dnf");
        dnf.arg("--installroot")
            .arg(&root)
            .arg(format!("--setopt=cachedir={}", cache.display()))
            .arg(format!(
                "--repofrompath=corpus,file://{}",
                self.corpus.repo.display()
            ))
            .args([
                "--releasever=12",
                "--setopt=reposdir=/dev/null",
                "--repo=corpus",
                "--nogpgcheck",
                "-y",
                "--setopt=install_weak_deps=False",
                "--setopt=keepcache=False",
                "install",
            ])
            .args(&self.corpus.names);
        let (dnf_s, _) = self.timed(&mut dnf)?;
        // dnf must have installed exactly the corpus, or the comparison is
        // unfair. Debian's rpm and dnf both find the database through the
        // same %_dbpath (under HOME), so --root alone reads it.
        let qa = run::output(Command::new("rpm").arg("--root").arg(&root).arg("-qa"))?;
        let installed = String::from_utf8_lossy(&qa).lines().count();
        if installed != self.corpus.names.len() {
            bail!(
                "dnf installed {installed} packages, not the corpus' {}",
                self.corpus.names.len()
            );
        }
        let mut commit = Command::new("ostree");
        commit
            .arg("commit")
            .arg(repo_arg(&repo))
            .args(["-b", corpus::REF, "--no-xattrs"])
            .arg(format!("--tree=dir={}", root.display()));
        let (commit_s, _) = self.timed(&mut commit)?;
        eprintln!(
            "bench compose: baseline: dnf {:.1} s, ostree commit {:.1} s",
            dnf_s.wall.as_secs_f64(),
            commit_s.wall.as_secs_f64()
        );
        Ok(Sample {
            wall: dnf_s.wall + commit_s.wall,
            cpu: dnf_s.cpu + commit_s.cpu,
            rss_kib: dnf_s.rss_kib.max(commit_s.rss_kib),
        })
    }

    /// rpm-compose cold, warm, one package changed, no-op, in that order:
    /// each starts from what the previous left.
    fn ours(&self) -> anyhow::Result<[Sample; 4]> {
        let (repo, cache) = (self.fresh("ostree-ours")?, self.fresh("cache-ours")?);
        // repo-init is not timed, as `ostree init` is not for the baseline.
        fs::remove_dir(&repo)?;
        run::output(
            Command::new(&self.repo_init)
                .arg("--repo")
                .arg(&repo)
                .args(["--mode", "archive", "-q"]),
        )?;
        let n = self.corpus.names.len();
        let compose = |treefile: &Path, extra: &[&str]| {
            let mut c = Command::new(&self.compose);
            c.arg("--treefile")
                .arg(treefile)
                .arg("--repo")
                .arg(&repo)
                .arg("--cachedir")
                .arg(&cache)
                .args(extra);
            c
        };
        let (cold, out) = self.timed(&mut compose(&self.corpus.treefile, &[]))?;
        check(&out, "cold", true, |e| {
            let got = e["packages"].as_array().map_or(0, Vec::len);
            (got == n)
                .then_some(())
                .with_context(|| format!("{got} packages, not {n}"))
        })?;
        let (warm, out) = self.timed(&mut compose(&self.corpus.treefile, &["--force-nocache"]))?;
        check(&out, "warm", true, |_| Ok(()))?;
        let (changed, out) = self.timed(&mut compose(&self.corpus.changed_treefile, &[]))?;
        check(&out, "one changed", true, |e| {
            let up = e["pkgdiff"]["upgraded"].as_array().map_or(0, Vec::len);
            (up == 1)
                .then_some(())
                .with_context(|| format!("{up} packages upgraded, not 1"))?;
            // Only the changed package is decompressed; the others come
            // from the package cache.
            let stats = &e["stats"];
            (stats["packages_unpacked"] == 1 && stats["packages_linked"] == n as u64 - 1)
                .then_some(())
                .with_context(|| format!("package cache not used as expected: {stats}"))
        })?;
        let (noop, out) = self.timed(&mut compose(&self.corpus.changed_treefile, &[]))?;
        check(&out, "no-op", false, |_| Ok(()))?;
        if !out.stderr.contains(NO_CHANGES) {
            bail!(
                "no-op compose did not print \"{NO_CHANGES}\":\n{}",
                out.stderr
            );
        }
        Ok([cold, warm, changed, noop])
    }

    /// `scratch/name`, empty.
    fn fresh(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.scratch.join(name);
        crate::fixtures::fresh_dir(&dir)?;
        Ok(dir)
    }

    /// Runs `cmd` under `/usr/bin/time`, stdin from /dev/null, output
    /// captured. Dirty pages of the previous run are flushed first, so
    /// that their writeback is not charged to this one.
    fn timed(&self, cmd: &mut Command) -> anyhow::Result<(Sample, Output)> {
        run::output(&mut Command::new("sync"))?;
        let rss_file = self.scratch.join("time");
        let mut timed = Command::new("/usr/bin/time");
        timed
            .args(["-f", "%M %U %S", "-o"])
            .arg(&rss_file)
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => timed.env(k, v),
                None => timed.env_remove(k),
            };
        }
        let start = Instant::now();
        let out = timed
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
        let wall = start.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "{} failed: {}\n{}",
                describe(cmd),
                out.status,
                tail.join("\n")
            );
        }
        let text = fs::read_to_string(&rss_file)?;
        let (rss_kib, cpu) = text
            .lines()
            .rev()
            .find_map(parse_time)
            .with_context(|| format!("no figures in /usr/bin/time's output `{text}`"))?;
        Ok((
            Sample { wall, cpu, rss_kib },
            Output {
                stdout: out.stdout,
                stderr,
            },
        ))
    }
}

/// `%M %U %S`: peak RSS in KiB, user and system seconds.
fn parse_time(line: &str) -> Option<(u64, Duration)> {
    let mut f = line.split_whitespace();
    let rss = f.next()?.parse().ok()?;
    let user: f64 = f.next()?.parse().ok()?;
    let sys: f64 = f.next()?.parse().ok()?;
    Some((rss, Duration::from_secs_f64(user + sys)))
}

struct Output {
    stdout: Vec<u8>,
    stderr: String,
}

/// Checks the compose entry rpm-compose appended to the manifest: `changed`
/// as expected, and whatever `more` checks.
fn check(
    out: &Output,
    case: &str,
    changed: bool,
    more: impl Fn(&serde_json::Value) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{case}: rpm-compose's stdout is not a manifest"))?;
    let entry = manifest["payload"]["composes"]
        .as_array()
        .and_then(|c| c.last())
        .with_context(|| format!("{case}: no compose entry in the manifest"))?;
    if entry["changed"] != changed {
        bail!(
            "{case}: compose reported changed: {}, expected {changed}",
            entry["changed"]
        );
    }
    more(entry).with_context(|| format!("{case} compose"))
}

/// Reads every file under `dir` once.
fn warm_page_cache(dir: &Path) -> anyhow::Result<()> {
    for e in fs::read_dir(dir)? {
        let path = e?.path();
        if path.is_dir() {
            warm_page_cache(&path)?;
        } else {
            std::io::copy(&mut fs::File::open(&path)?, &mut std::io::sink())?;
        }
    }
    Ok(())
}

fn repo_arg(repo: &Path) -> String {
    format!("--repo={}", repo.display())
}

fn describe(cmd: &Command) -> String {
    let args: Vec<&OsStr> = cmd.get_args().take(6).collect();
    format!("{:?} {:?}…", cmd.get_program(), args)
}
