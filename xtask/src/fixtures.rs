//! `cargo xtask fixtures`: fixture RPMs and rpm-md repositories.
//!
//! Every `fixtures/rpms/*.spec` is built with `rpmbuild` into
//! `target/fixtures/rpms/<spec>/`, then `createrepo_c` makes
//! `target/fixtures/repo` (gzip metadata) and `target/fixtures/repo-xz` (xz
//! metadata) from all of them. The paths are fixed under the workspace's
//! `target/`, whatever `CARGO_TARGET_DIR` says, because the committed
//! `.repo` file points there by a relative path.
//!
//! The `kernel` spec also needs files staged from Debian's kernel package
//! (see [`kernel`]); they are made only when that spec is rebuilt.

mod kernel;

use std::collections::BTreeSet;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::{deps, root, run};

/// Build time and file mtimes of every fixture RPM (2023-11-14): with a
/// fixed build host too, a rebuild is byte-identical, so the checksums the
/// compose tests see do not depend on when the fixtures were built.
const SOURCE_DATE_EPOCH: &str = "1700000000";

/// The repositories made from the RPMs: directory name and metadata
/// compression. createrepo_c 0.17 cannot write zstd metadata.
const REPOS: &[(&str, &str)] = &[("repo", "gz"), ("repo-xz", "xz")];

/// Builds the fixture RPMs whose inputs changed, and remakes the
/// repositories when any RPM did; a run with nothing to do takes no
/// rpmbuild or createrepo_c at all.
pub fn build() -> anyhow::Result<()> {
    deps::ensure()?;
    let root = root();
    let specs_dir = root.join("fixtures/rpms");
    let files = specs_dir.join("files");
    let out = root.join("target/fixtures");
    // rpmbuild splits macro bodies and shell lines on whitespace.
    if out.to_string_lossy().contains(char::is_whitespace) {
        bail!(
            "{}: rpmbuild cannot build under a path with spaces",
            out.display()
        );
    }
    fs::create_dir_all(&out)?;
    let _lock = lock(&out.join(".lock"))?;
    let work = out.join("work");
    fresh_dir(&work)?;
    let busybox = busybox()?;

    let mut defines = vec![
        "_build_id_links none".to_string(),
        "debug_package %{nil}".to_string(),
        "use_source_date_epoch_as_buildtime 1".to_string(),
        "clamp_mtime_to_source_date_epoch 1".to_string(),
        "_buildhost fixtures.invalid".to_string(),
        format!("_fixturesdir {}", files.display()),
        format!("busybox_bin {}", busybox.display()),
    ];
    // Inputs every spec may read: a change to any of them rebuilds all,
    // which takes seconds.
    let mut shared = DefaultHasher::new();
    (SOURCE_DATE_EPOCH, &defines).hash(&mut shared);
    hash_tree(&files, &mut shared)?;
    fs::read(&busybox)
        .with_context(|| format!("reading {}", busybox.display()))?
        .hash(&mut shared);
    let shared = shared.finish();
    // Paths under work/ change nothing in the output, so they stay out of
    // the key.
    defines.push(format!("_tmppath {}", work.join("tmp").display()));

    let specs = list_with_extension(&specs_dir, "spec")?;
    if specs.is_empty() {
        bail!("no spec files under {}", specs_dir.display());
    }

    let rpms_dir = out.join("rpms");
    fs::create_dir_all(&rpms_dir)?;
    let mut rpms = Vec::new();
    let mut repo_key = DefaultHasher::new();
    let mut built = 0;
    let mut stems = BTreeSet::new();
    let init = root.join("fixtures/initramfs/init");
    for spec in &specs {
        let stem = file_stem(spec)?;
        let text = fs::read(spec).with_context(|| spec.display().to_string())?;
        // The std hasher is not stable across Rust releases; a toolchain
        // update at worst rebuilds the fixtures once.
        let mut h = DefaultHasher::new();
        (shared, &text).hash(&mut h);
        let deb = if stem == kernel::SPEC {
            let deb = kernel::Deb::locate(&out.join("downloads"))?;
            deb.hash_inputs(&init, &mut h)?;
            Some(deb)
        } else {
            None
        };
        let key = h.finish();
        (&stem, key).hash(&mut repo_key);
        let dir = rpms_dir.join(&stem);
        if read_stamp(&dir) != Some(key) || list_rpms(&dir)?.is_empty() {
            let mut defines = defines.clone();
            if let Some(deb) = &deb {
                defines.extend(deb.stage(&work, &busybox, &init)?);
            }
            rpmbuild(spec, &stem, &work, &defines, &dir, key)?;
            built += 1;
        }
        rpms.extend(list_rpms(&dir)?);
        stems.insert(stem);
    }
    // RPMs of a spec that no longer exists must not reach the repositories.
    for entry in fs::read_dir(&rpms_dir)? {
        let entry = entry?;
        if !stems.contains(&*entry.file_name().to_string_lossy()) {
            fs::remove_dir_all(entry.path())?;
        }
    }

    let repo_key = repo_key.finish();
    for (name, compress) in REPOS {
        publish(&rpms, &out, &work, name, compress, repo_key)?;
    }
    fs::remove_dir_all(&work)?;
    if built == 0 {
        eprintln!("fixtures: {} packages up to date", rpms.len());
    }
    Ok(())
}

/// The host's busybox, which the busybox fixture repackages. deps installs
/// Debian's busybox-static (conflicting with the dynamic `busybox`) or
/// Fedora's busybox, static too: the fixture host has no libc to load.
fn busybox() -> anyhow::Result<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox", "/usr/sbin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("no busybox binary: install busybox-static (Debian) or busybox (Fedora)")
}

/// Makes the repository `out/name` from `rpms` unless its stamp says it
/// holds them already. It is made under `work` and renamed into place, so
/// a reader sees the old repository, the new one or, for an instant between
/// two renames, none; never a half-made one.
fn publish(
    rpms: &[PathBuf],
    out: &Path,
    work: &Path,
    name: &str,
    compress: &str,
    key: u64,
) -> anyhow::Result<()> {
    let repo = out.join(name);
    let stamp = out.join(format!("{name}.stamp"));
    if read_key(&stamp) == Some(key) && repo.join("repodata/repomd.xml").is_file() {
        return Ok(());
    }
    createrepo(rpms, &work.join(name), compress)?;
    // The stamp goes first and comes back last: an interrupted swap
    // leaves a repository that the next run rebuilds.
    remove_file_if_exists(&stamp)?;
    if repo.exists() {
        let old = work.join(format!("{name}.old"));
        fs::rename(&repo, &old)?;
    }
    fs::rename(work.join(name), &repo)
        .with_context(|| format!("renaming into {}", repo.display()))?;
    fs::write(&stamp, format!("{key:016x}\n"))?;
    eprintln!(
        "fixtures: wrote target/fixtures/{name} ({} packages, {compress} metadata)",
        rpms.len()
    );
    Ok(())
}

/// Builds one spec into `dest` (replaced whole), with its stamp inside.
fn rpmbuild(
    spec: &Path,
    stem: &str,
    work: &Path,
    defines: &[String],
    dest: &Path,
    key: u64,
) -> anyhow::Result<()> {
    let tmp = work.join("build").join(stem);
    let rpmdir = tmp.join("rpms");
    fresh_dir(&tmp)?;
    fs::create_dir_all(work.join("tmp"))?;
    let mut cmd = Command::new("rpmbuild");
    // A private HOME keeps the user's ~/.rpmmacros out, and Debian's rpm
    // keeps its database under HOME (%_dbpath is ~/.rpmdb).
    cmd.env("HOME", tmp.join("home"))
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .env("LC_ALL", "C")
        .args(["-bb", "--quiet", "--nodeps", "--dbpath"])
        .arg(tmp.join("rpmdb"))
        .arg("--define")
        .arg(format!("_topdir {}", tmp.join("top").display()))
        .arg("--define")
        .arg(format!("_rpmdir {}", rpmdir.display()));
    for d in defines {
        cmd.arg("--define").arg(d);
    }
    run::output(cmd.arg(spec))?;

    // rpmbuild writes into per-arch subdirectories; the cache is flat.
    let staged = tmp.join("out");
    fs::create_dir(&staged)?;
    let mut names = Vec::new();
    for arch in fs::read_dir(&rpmdir)? {
        for rpm in list_rpms(&arch?.path())? {
            let name = rpm.file_name().context("rpm without a name")?.to_owned();
            fs::rename(&rpm, staged.join(&name))?;
            names.push(name.to_string_lossy().into_owned());
        }
    }
    if names.is_empty() {
        bail!("rpmbuild wrote no package for {}", spec.display());
    }
    fs::write(staged.join("stamp"), format!("{key:016x}\n"))?;
    if dest.exists() {
        fs::remove_dir_all(dest)?;
    }
    fs::rename(&staged, dest)?;
    names.sort();
    for name in names {
        eprintln!("fixtures: built {name}");
    }
    Ok(())
}

/// Makes an rpm-md repository at `dir` holding copies of `rpms`, laid out
/// as Fedora's are (`Packages/<first letter>/`). Copies rather than hard
/// links: a test that corrupts a repository's RPM must not corrupt the
/// cache.
fn createrepo(rpms: &[PathBuf], dir: &Path, compress: &str) -> anyhow::Result<()> {
    fresh_dir(dir)?;
    for rpm in rpms {
        let name = rpm.file_name().context("rpm without a name")?;
        let letter = name.to_string_lossy().chars().next().unwrap_or('_');
        let sub = dir
            .join("Packages")
            .join(letter.to_ascii_lowercase().to_string());
        fs::create_dir_all(&sub)?;
        fs::copy(rpm, sub.join(name)).with_context(|| format!("copying {}", rpm.display()))?;
    }
    run::output(
        Command::new("createrepo_c")
            .args(["--quiet", &format!("--general-compress-type={compress}")])
            .arg(dir),
    )?;
    Ok(())
}

fn list_rpms(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    list_with_extension(dir, "rpm")
}

/// The files in `dir` named `*.ext`, sorted; none when `dir` is missing.
fn list_with_extension(dir: &Path, ext: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    if !dir.is_dir() {
        return Ok(found);
    }
    for entry in fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == ext) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Feeds every file under `dir` (relative name and bytes, in name order)
/// into `h`.
fn hash_tree(dir: &Path, h: &mut DefaultHasher) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        e.file_name().hash(h);
        if path.is_dir() {
            hash_tree(&path, h)?;
        } else {
            fs::read(&path)
                .with_context(|| path.display().to_string())?
                .hash(h);
        }
    }
    Ok(())
}

fn read_stamp(dir: &Path) -> Option<u64> {
    read_key(&dir.join("stamp"))
}

fn read_key(path: &Path) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    u64::from_str_radix(text.trim(), 16).ok()
}

fn file_stem(path: &Path) -> anyhow::Result<String> {
    Ok(path
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{}: name is not UTF-8", path.display()))?
        .to_string())
}

/// Makes `dir` an empty directory.
pub fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Holds an exclusive lock on `path` until the file is dropped, so that
/// parallel test runs that each ask for the fixtures build them once.
fn lock(path: &Path) -> anyhow::Result<fs::File> {
    use std::os::fd::AsRawFd;
    extern "C" {
        fn flock(fd: i32, operation: i32) -> i32;
    }
    const LOCK_EX: i32 = 2;
    let file = fs::File::create(path).with_context(|| path.display().to_string())?;
    // SAFETY: the descriptor is open for the duration of the call.
    if unsafe { flock(file.as_raw_fd(), LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("locking {}", path.display()));
    }
    Ok(file)
}

fn remove_file_if_exists(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}
