//! The corpus of `cargo xtask bench compose`: the Debian packages of
//! [`deb::PACKAGES`] as RPMs in an rpm-md repository, with a treefile that
//! names them all, built once into `target/bench/compose/` and reused.
//!
//! The .debs come from `apt-get download` (kept in `debs/`, so an archive
//! update does not change the corpus under a cached build), are unpacked
//! with `dpkg-deb -x` and repackaged by rpmbuild, one generated spec each,
//! as many at once as there are cores. `repo-changed/` is the same
//! repository with [`CHANGED`] rebuilt at a higher Release and one file
//! modified: the "one package changed" case.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use super::deb;
use super::rpmbuild::{build_all, quiet, read_sidecar, Job, SOURCE_DATE_EPOCH};
use crate::fixtures::fresh_dir;
use crate::run;

/// The package rebuilt for `repo-changed`: mid-sized, and its doc
/// directory is its own (not a symlink to another package's).
pub const CHANGED: &str = "bash";

/// Bumped into every cache key: a change to how RPMs are made rebuilds them.
const GENERATOR: &str = "bench-compose-corpus 2";

/// The ostree ref the treefiles compose, and the repository id.
pub const REF: &str = "bench/x86_64/corpus";
const REPO_ID: &str = "corpus";

/// A built corpus.
pub struct Corpus {
    /// Package names, as in the treefile.
    pub names: Vec<String>,
    /// The treefile of the corpus repository.
    pub treefile: PathBuf,
    /// The same treefile on `repo-changed`.
    pub changed_treefile: PathBuf,
    /// The corpus repository (rpm-md).
    pub repo: PathBuf,
    /// Its `corpus-figures.json`: RPM count and bytes, installed bytes,
    /// skipped files, build time.
    pub figures: serde_json::Value,
    /// Whether it was there already (then `build_s` is of an earlier run).
    pub reused: bool,
}

/// The corpus under `dir`, built unless `dir/corpus-figures.json` says it is
/// there already for this package list and generator.
pub fn ensure(dir: &Path) -> anyhow::Result<Corpus> {
    let names = deb::packages();
    let mut h = DefaultHasher::new();
    // The std hasher is not stable across Rust releases; a toolchain update
    // at worst rebuilds the RPMs once (the .debs stay).
    (GENERATOR, SOURCE_DATE_EPOCH, CHANGED, &names).hash(&mut h);
    let key = format!("{:016x}", h.finish());
    let corpus = Corpus {
        names: names.iter().map(|n| deb::rpm_name(n)).collect(),
        treefile: dir.join("treefile/corpus.json"),
        changed_treefile: dir.join("treefile-changed/corpus.json"),
        repo: dir.join("repo"),
        figures: serde_json::Value::Null,
        reused: false,
    };
    let stamp = dir.join("corpus-figures.json");
    if let Ok(text) = fs::read(&stamp) {
        let figures: serde_json::Value = serde_json::from_slice(&text).unwrap_or_default();
        if figures["key"] == key.as_str()
            && corpus.repo.join("repodata/repomd.xml").is_file()
            && dir.join("repo-changed/repodata/repomd.xml").is_file()
            && corpus.treefile.is_file()
            && corpus.changed_treefile.is_file()
        {
            return Ok(Corpus {
                figures,
                reused: true,
                ..corpus
            });
        }
    }
    let start = Instant::now();
    let figures = build(dir, &names, &key)?;
    let figures = json!({
        "key": key,
        "rpms": figures.rpms,
        "rpm_bytes": figures.rpm_bytes,
        "installed_bytes": figures.installed_bytes,
        "skipped_files": figures.skipped,
        "build_s": start.elapsed().as_secs_f64(),
    });
    // Written last: an interrupted build leaves no stamp and is resumed
    // (per-package RPMs are kept) by the next run.
    fs::write(&stamp, serde_json::to_vec_pretty(&figures)?)?;
    Ok(Corpus { figures, ..corpus })
}

struct Figures {
    rpms: usize,
    rpm_bytes: u64,
    installed_bytes: u64,
    skipped: usize,
}

fn build(dir: &Path, names: &[&str], key: &str) -> anyhow::Result<Figures> {
    for tool in ["apt-get", "dpkg-deb", "rpmbuild", "createrepo_c"] {
        if !on_path(tool) {
            bail!("`{tool}` not found: the compose corpus is made from Debian packages, on Debian");
        }
    }
    // rpmbuild splits macro bodies on whitespace and expands % in them.
    if dir
        .to_string_lossy()
        .contains(|c: char| c.is_whitespace() || c == '%')
    {
        bail!("{}: rpmbuild cannot build under this path", dir.display());
    }
    eprintln!(
        "bench compose: building the corpus ({} Debian packages) in {}",
        names.len(),
        dir.display()
    );
    let debs = download(&dir.join("debs"), names)?;
    let work = dir.join("work");
    fresh_dir(&work)?;
    let mut jobs = Vec::new();
    for (name, deb) in &debs {
        let file = deb.file_name().context("deb without a name")?;
        let k = format!("{key} {}", file.to_string_lossy());
        for changed in [false, true] {
            if changed && name != CHANGED {
                continue;
            }
            let dest = dir.join(if changed { "rpms-changed" } else { "rpms" });
            if read_sidecar(&dest, name, &k).is_none() {
                jobs.push(Job {
                    deb: deb.clone(),
                    dest,
                    key: k.clone(),
                    changed,
                });
            }
        }
    }
    // Biggest first, so that no core is left alone with gcc at the end.
    jobs.sort_by_cached_key(|j| Reverse(fs::metadata(&j.deb).map_or(0, |m| m.len())));
    let set: BTreeSet<&str> = names.iter().copied().collect();
    build_all(&jobs, &set, &work)?;

    let (mut rpms, mut changed_rpms) = (Vec::new(), Vec::new());
    let mut figures = Figures {
        rpms: 0,
        rpm_bytes: 0,
        installed_bytes: 0,
        skipped: 0,
    };
    for (name, deb) in &debs {
        let file = deb.file_name().context("deb without a name")?;
        let k = format!("{key} {}", file.to_string_lossy());
        let side = read_sidecar(&dir.join("rpms"), name, &k)
            .with_context(|| format!("{name}: no RPM after the build"))?;
        let rpm = dir
            .join("rpms")
            .join(side["rpm"].as_str().unwrap_or_default());
        figures.rpms += 1;
        figures.rpm_bytes += fs::metadata(&rpm)?.len();
        figures.installed_bytes += side["installed_bytes"].as_u64().unwrap_or(0);
        figures.skipped += side["skipped"].as_array().map_or(0, Vec::len);
        if name == CHANGED {
            let side = read_sidecar(&dir.join("rpms-changed"), name, &k)
                .context("no changed RPM after the build")?;
            let dir = dir.join("rpms-changed");
            changed_rpms.push(dir.join(side["rpm"].as_str().unwrap_or_default()));
        } else {
            changed_rpms.push(rpm.clone());
        }
        rpms.push(rpm);
    }
    publish(&rpms, &dir.join("repo"), &work.join("repo"))?;
    publish(
        &changed_rpms,
        &dir.join("repo-changed"),
        &work.join("repo-changed"),
    )?;
    let rpm_names: Vec<String> = names.iter().map(|n| deb::rpm_name(n)).collect();
    treefile(&dir.join("treefile"), &dir.join("repo"), &rpm_names)?;
    treefile(
        &dir.join("treefile-changed"),
        &dir.join("repo-changed"),
        &rpm_names,
    )?;
    fs::remove_dir_all(&work)?;
    Ok(figures)
}

/// The .deb of every name in `dir`, downloading the missing ones with
/// `apt-get download` (as root, apt would drop to `_apt`, which cannot
/// write here, and fall back with a warning; go straight to root).
fn download(dir: &Path, names: &[&str]) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut have = debs_in(dir)?;
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !have.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        eprintln!("bench compose: downloading {} .debs", missing.len());
        let start = Instant::now();
        let partial = dir.join(".partial");
        fresh_dir(&partial)?;
        run::output(
            Command::new("apt-get")
                .current_dir(&partial)
                .args(["-q", "-o", "APT::Sandbox::User=root", "download"])
                .args(&missing),
        )?;
        for (_, deb) in debs_in(&partial)? {
            fs::rename(
                &deb,
                dir.join(deb.file_name().context("deb without a name")?),
            )?;
        }
        fs::remove_dir_all(&partial)?;
        eprintln!(
            "bench compose: downloaded in {:.0} s",
            start.elapsed().as_secs_f64()
        );
        have = debs_in(dir)?;
    }
    let mut out = BTreeMap::new();
    for n in names {
        let deb = have
            .remove(*n)
            .with_context(|| format!("apt-get download left no .deb of {n}"))?;
        out.insert(n.to_string(), deb);
    }
    Ok(out)
}

/// The .debs in `dir` by package name (what precedes the first `_` of
/// `name_version_arch.deb`); two of one name is an error.
fn debs_in(dir: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir)? {
        let path = e?.path();
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let (Some(name), true) = (file.split('_').next(), file.ends_with(".deb")) {
            if let Some(old) = out.insert(name.to_string(), path.clone()) {
                bail!(
                    "two .debs of {name}: {} and {}; keep one",
                    old.display(),
                    path.display()
                );
            }
        }
    }
    Ok(out)
}

/// Makes the rpm-md repository `dest` from `rpms` (hard links, laid out as
/// Fedora's: `Packages/<first letter>/`), built at `tmp` and renamed into
/// place.
fn publish(rpms: &[PathBuf], dest: &Path, tmp: &Path) -> anyhow::Result<()> {
    fresh_dir(tmp)?;
    for rpm in rpms {
        let name = rpm.file_name().context("rpm without a name")?;
        let letter = name.to_string_lossy().chars().next().unwrap_or('_');
        let sub = tmp
            .join("Packages")
            .join(letter.to_ascii_lowercase().to_string());
        fs::create_dir_all(&sub)?;
        if fs::hard_link(rpm, sub.join(name)).is_err() {
            fs::copy(rpm, sub.join(name))?;
        }
    }
    quiet(
        Command::new("createrepo_c")
            .args(["--quiet", "--no-database"])
            .arg(tmp),
    )?;
    if dest.exists() {
        fs::remove_dir_all(dest)?;
    }
    fs::rename(tmp, dest)?;
    eprintln!(
        "bench compose: wrote {} ({} RPMs)",
        dest.display(),
        rpms.len()
    );
    Ok(())
}

/// Writes `dir/corpus.json`, a treefile naming every package, and
/// `dir/corpus.repo` pointing at `repo`.
fn treefile(dir: &Path, repo: &Path, names: &[String]) -> anyhow::Result<()> {
    fresh_dir(dir)?;
    let tf = json!({
        "ref": REF,
        "repos": [REPO_ID],
        "packages": names,
        "recommends": false,
    });
    fs::write(dir.join("corpus.json"), serde_json::to_vec_pretty(&tf)?)?;
    let repo = fs::canonicalize(repo)?;
    fs::write(
        dir.join("corpus.repo"),
        format!(
            "[{REPO_ID}]\nname=Debian packages as RPMs (bench compose)\n\
             baseurl=file://{}\nenabled=1\ngpgcheck=0\n",
            repo.display()
        ),
    )?;
    Ok(())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Seconds the corpus build took, from its figures.
pub fn build_time(figures: &serde_json::Value) -> Duration {
    Duration::from_secs_f64(figures["build_s"].as_f64().unwrap_or(0.0))
}
