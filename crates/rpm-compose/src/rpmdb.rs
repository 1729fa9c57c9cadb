//! The tree's rpmdb, at /usr/share/rpm as rpm-ostree puts it, written by
//! rpm itself (`--justdb`) so that `rpm -qa`, `rpm -ql` and every other
//! rpm reader see exactly the installed packages and their files.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context};

use crate::unpack::UnpackOptions;

/// Where the database lives in the tree.
pub const DBPATH: &str = "usr/share/rpm";

/// Records `rpms` (verified package files, in install order) in a new
/// rpmdb under `root`, and points /var/lib/rpm at it. rpm takes the
/// install time from `SOURCE_DATE_EPOCH` when set, which keeps the
/// database reproducible.
pub fn write(root: &Path, rpms: &[PathBuf], opts: &UnpackOptions) -> anyhow::Result<()> {
    // rpm follows symlinks: a package's /usr/share/rpm → /var/lib/rpm
    // would have it write the host's database.
    let db = releng_manifest::treepath::dir(root, DBPATH).context("the rpmdb directory")?;
    // A private HOME: Debian's rpm reads ~/.rpmmacros, which may set
    // another _dbpath.
    let home = tempfile::tempdir()?;
    let mut cmd = Command::new("rpm");
    cmd.env("HOME", home.path())
        .arg("--dbpath")
        .arg(&db)
        .args([
            "--justdb",
            "--nodeps",
            "--noscripts",
            "--notriggers",
            "--ignorearch",
            "--ignoreos",
            "--ignoresize",
        ])
        // Every package was verified before unpacking: rpm need not read
        // the payloads again.
        .args(["--nosignature", "--nodigest"]);
    // The database records which files the unpack left out, as rpm would.
    if !opts.documentation {
        cmd.arg("--excludedocs");
    }
    if let Some(langs) = &opts.install_langs {
        cmd.arg("--define")
            .arg(format!("_install_langs {}", langs.join(":")));
    }
    let out = cmd
        .arg("-i")
        .args(rpms)
        .output()
        .map_err(|e| anyhow!("cannot run rpm to write the rpmdb (install rpm): {e}"))?;
    if !out.status.success() {
        bail!(
            "rpm --justdb failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Only the database itself belongs in the commit.
    for leftover in [
        ".rpm.lock",
        "rpmdb.sqlite-shm",
        "rpmdb.sqlite-wal",
        ".dbenv.lock",
    ] {
        let _ = fs::remove_file(db.join(leftover));
    }
    let var_lib = releng_manifest::treepath::dir(root, "var/lib").context("/var/lib")?;
    let link = var_lib.join("rpm");
    if fs::symlink_metadata(&link).is_ok() {
        if link.is_dir() && !fs::symlink_metadata(&link)?.file_type().is_symlink() {
            fs::remove_dir_all(&link)?;
        } else {
            fs::remove_file(&link)?;
        }
    }
    symlink("../../usr/share/rpm", &link)?;
    Ok(())
}
