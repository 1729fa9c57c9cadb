//! Building one corpus RPM: unpack the .deb, list it, write the spec, run
//! rpmbuild; and running those builds on every core.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context};
use serde_json::json;

use super::deb::{self, Control, SpecInput};
use crate::fixtures::fresh_dir;
use crate::run;

/// Build time and mtime clamp of every corpus RPM (2023-11-14), so that a
/// rebuild from the same .debs gives the same RPM bytes.
pub const SOURCE_DATE_EPOCH: &str = "1700000000";

/// One RPM to build.
pub struct Job {
    /// The .deb.
    pub deb: PathBuf,
    /// Where the RPM goes: `rpms/` or `rpms-changed/`.
    pub dest: PathBuf,
    /// Cache key of the RPM, kept in its sidecar `<dest>/<name>.json`.
    pub key: String,
    /// The one-package-changed variant: Release bumped, one file modified.
    pub changed: bool,
}

/// Runs the jobs on as many threads as there are cores: rpmbuild's zstd
/// compression is single-threaded, so one build per core keeps all busy.
pub fn build_all(jobs: &[Job], set: &BTreeSet<&str>, work: &Path) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.min(jobs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                if !errors.lock().unwrap().is_empty() {
                    break;
                }
                match build_one(job, set, work) {
                    Ok(rpm) => {
                        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                        eprintln!("bench compose: [{n}/{}] built {rpm}", jobs.len());
                    }
                    Err(e) => errors.lock().unwrap().push(e),
                }
            });
        }
    });
    match errors.into_inner().unwrap().into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Unpacks, lists, writes the spec, runs rpmbuild, and moves the RPM and
/// its sidecar into `job.dest`. Returns the RPM's file name.
fn build_one(job: &Job, set: &BTreeSet<&str>, work: &Path) -> anyhow::Result<String> {
    let control = Control::read(&job.deb)?;
    let suffix = if job.changed { ".1" } else { "" };
    let tmp = work.join(format!("{}{suffix}", control.name));
    fresh_dir(&tmp)?;
    let staging = tmp.join("root");
    run::output(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&job.deb)
            .arg(&staging),
    )?;
    if job.changed {
        // A real content change, not only a new NEVRA: one file differs.
        let file = staging.join(format!("usr/share/doc/{}/copyright", control.name));
        if !fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
            bail!("{}: not a regular file to modify", file.display());
        }
        let mut f = fs::OpenOptions::new().append(true).open(&file)?;
        writeln!(f, "\n(changed by cargo xtask bench compose)")?;
    }
    let listing = deb::list_tree(&staging)?;
    let requires = control.requires(set);
    let spec = deb::spec(&SpecInput {
        control: &control,
        release_suffix: suffix,
        requires: &requires,
        staging: &staging,
        listing: &listing,
    })?;
    let spec_path = tmp.join(format!("{}.spec", control.name));
    fs::write(&spec_path, spec)?;
    let out = tmp.join("out");
    let mut cmd = Command::new("rpmbuild");
    // A private HOME keeps ~/.rpmmacros out, and Debian's rpm keeps its
    // database under HOME.
    cmd.env("HOME", tmp.join("home"))
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .env("LC_ALL", "C")
        .args(["-bb", "--quiet", "--nodeps", "--dbpath"])
        .arg(tmp.join("rpmdb"));
    let defines = [
        format!("_topdir {}", tmp.join("top").display()),
        format!("_tmppath {}", tmp.display()),
        format!("_rpmdir {}", out.display()),
        // Flat, not per-arch subdirectories.
        "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm".into(),
        // Fedora's payload: what rpm-compose meets in production.
        "_binary_payload w19.zstdio".into(),
        "_build_id_links none".into(),
        "debug_package %{nil}".into(),
        // The files stay Debian's: no stripping, byte-compiling, shebang
        // mangling or buildroot scan.
        "__os_install_post %{nil}".into(),
        "__arch_install_post %{nil}".into(),
        "_binaries_in_noarch_packages_terminate_build 0".into(),
        "use_source_date_epoch_as_buildtime 1".into(),
        "clamp_mtime_to_source_date_epoch 1".into(),
        "_buildhost bench.invalid".into(),
    ];
    for d in defines {
        cmd.arg("--define").arg(d);
    }
    quiet(cmd.arg(&spec_path)).with_context(|| format!("rpmbuild of {}", control.name))?;
    let built: Vec<PathBuf> = fs::read_dir(&out)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    let [rpm] = &built[..] else {
        bail!("rpmbuild of {} left {} files", control.name, built.len());
    };
    let file = rpm.file_name().context("rpm without a name")?.to_owned();
    fs::create_dir_all(&job.dest)?;
    fs::rename(rpm, job.dest.join(&file))?;
    let side = json!({
        "key": job.key,
        "rpm": file.to_string_lossy(),
        "installed_bytes": listing.installed_bytes,
        "skipped": listing.skipped,
    });
    let side_path = job.dest.join(format!("{}.json", control.name));
    fs::write(side_path, serde_json::to_vec_pretty(&side)?)?;
    fs::remove_dir_all(&tmp)?;
    Ok(file.to_string_lossy().into_owned())
}

/// The sidecar of `name` in `dir` when its key is `key` and its RPM exists.
pub fn read_sidecar(dir: &Path, name: &str, key: &str) -> Option<serde_json::Value> {
    let side: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join(format!("{name}.json"))).ok()?).ok()?;
    let ok = side["key"] == key && dir.join(side["rpm"].as_str()?).is_file();
    ok.then_some(side)
}

/// Runs `cmd` with its output captured, shown only when it fails: two
/// builds at once would interleave their warnings.
pub fn quiet(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{:?} failed: {}\n{}",
            cmd.get_program(),
            out.status,
            tail.join("\n")
        );
    }
    Ok(())
}
