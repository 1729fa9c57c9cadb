//! Turning an installed root into an ostree tree, as rpm-ostree does:
//! treefile edits, units, postprocess scripts, /var to tmpfiles.d, /etc
//! to /usr/etc, and the top-level compat symlinks.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;

use anyhow::{anyhow, bail, Context};

use crate::treefile::Treefile;
use crate::unpack::{checked_relative, InstalledFile, Meta};
use releng_manifest::treepath;

/// Where the /var conversion writes its tmpfiles.d entries.
const AUTOVAR: &str = "usr/lib/tmpfiles.d/rpm-compose-autovar.conf";

/// Top-level names that become symlinks into /var, /run or /sysroot.
const COMPAT_LINKS: &[(&str, &str)] = &[
    ("home", "var/home"),
    ("root", "var/roothome"),
    ("opt", "var/opt"),
    ("srv", "var/srv"),
    ("mnt", "var/mnt"),
    ("media", "run/media"),
    ("tmp", "sysroot/tmp"),
    ("ostree", "sysroot/ostree"),
];

/// Top-level entries kept as they are (besides COMPAT_LINKS).
const KEEP_TOP: &[&str] = &[
    "usr", "boot", "var", "etc", "bin", "sbin", "lib", "lib64", "dev", "proc", "sys", "run",
    "sysroot",
];

/// Applies the treefile's edits to the installed tree; `files` maps
/// package names to what they installed (for remove-from-packages).
pub fn treefile_edits(
    root: &Path,
    tf: &Treefile,
    files: &HashMap<String, Vec<InstalledFile>>,
) -> anyhow::Result<()> {
    for (pkg, patterns) in &tf.remove_from_packages {
        let installed = files.get(pkg).ok_or_else(|| {
            anyhow!("remove-from-packages: package `{pkg}` is not in the compose")
        })?;
        for pattern in patterns {
            let re = regex::Regex::new(pattern).map_err(|e| {
                releng_manifest::BadInput::err(format!("remove-from-packages: `{pattern}`: {e}"))
            })?;
            for f in installed
                .iter()
                .filter(|f| re.is_match(&f.package_path) || re.is_match(&f.tree_path))
            {
                // Scripts ran since: resolve the path afresh.
                let Some(p) = treepath::find(root, &f.tree_path)
                    .with_context(|| format!("remove-from-packages: `{}`", f.tree_path))?
                else {
                    continue;
                };
                if fs::symlink_metadata(&p).is_ok_and(|m| !m.is_dir()) {
                    fs::remove_file(&p)?;
                }
            }
        }
    }
    for path in &tf.remove_files {
        let rel = checked_relative(&format!("/{}", path.trim_start_matches('/')))
            .with_context(|| format!("remove-files: `{path}`"))?;
        let found = treepath::find(root, &rel.to_string_lossy())
            .with_context(|| format!("remove-files: `{path}`"))?;
        let Some(p) = found else {
            log::warn!("remove-files: `{path}` is not in the tree");
            continue;
        };
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p)?,
            Ok(_) => fs::remove_file(&p)?,
            Err(_) => log::warn!("remove-files: `{path}` is not in the tree"),
        }
    }
    for (src, dest) in &tf.add_files {
        let rel = checked_relative(dest).with_context(|| format!("add-files: `{dest}`"))?;
        let to = treepath::entry(root, &rel.to_string_lossy())
            .with_context(|| format!("add-files: `{dest}`"))?;
        treepath::replace(&to, |tmp| fs::copy(src, tmp).map(drop))
            .with_context(|| format!("add-files: copying {} to {dest}", src.display()))?;
    }
    for unit in &tf.units {
        if !treepath::is_unit_name(unit) {
            bail!("units: `{unit}` is not a unit name");
        }
        let shipped = treepath::find(root, &format!("usr/lib/systemd/system/{unit}"))?;
        if !shipped.is_some_and(|p| fs::symlink_metadata(p).is_ok()) {
            log::warn!("units: `{unit}` is not in /usr/lib/systemd/system; enabling it anyway");
        }
        let wants =
            treepath::dir(root, "etc/systemd/system/multi-user.target.wants").context("units")?;
        replace_symlink(
            &format!("/usr/lib/systemd/system/{unit}"),
            &wants.join(unit),
        )?;
    }
    if let Some(target) = &tf.default_target {
        if !treepath::is_unit_name(target) {
            bail!("default-target: `{target}` is not a unit name");
        }
        let dir = treepath::dir(root, "etc/systemd/system").context("default-target")?;
        replace_symlink(
            &format!("/usr/lib/systemd/system/{target}"),
            &dir.join("default.target"),
        )?;
    }
    Ok(())
}

/// Runs the treefile's postprocess script and inline scripts inside the
/// tree with bubblewrap: the tree as /, no network, private /tmp.
pub fn run_scripts(root: &Path, tf: &Treefile) -> anyhow::Result<()> {
    let mut scripts: Vec<(String, String)> = Vec::new();
    if let Some(path) = &tf.postprocess_script {
        let text = fs::read_to_string(path).map_err(|e| {
            releng_manifest::BadInput::err(format!("postprocess-script {}: {e}", path.display()))
        })?;
        scripts.push((path.display().to_string(), text));
    }
    for (i, text) in tf.postprocess.iter().enumerate() {
        scripts.push((format!("postprocess[{i}]"), text.clone()));
    }
    for (name, text) in scripts {
        let program = if text.starts_with("#!") {
            Vec::new()
        } else {
            vec!["/bin/sh".to_string()]
        };
        crate::sandbox::run(root, &name, &program, &text, &[], false)?;
    }
    Ok(())
}

/// The final layout: /var content becomes tmpfiles.d entries, /etc moves
/// to /usr/etc, top-level directories become compat symlinks. `meta`
/// paths follow the moves.
pub fn finalize(root: &Path, meta: &mut HashMap<String, Meta>) -> anyhow::Result<()> {
    var_to_tmpfiles(root, meta)?;
    let etc = root.join("etc");
    if treepath::is_real_dir(&etc) {
        let usr_etc = treepath::entry(root, "usr/etc").context("moving /etc to /usr/etc")?;
        if fs::symlink_metadata(&usr_etc).is_ok() {
            bail!("the tree already has /usr/etc; cannot move /etc there");
        }
        fs::rename(&etc, &usr_etc)?;
        rekey(meta, "/etc/", "/usr/etc/");
        if let Some(m) = meta.remove("/etc") {
            meta.insert("/usr/etc".into(), m);
        }
    }
    // /usr/local belongs to the machine, not the image.
    let local = treepath::entry(root, "usr/local")?;
    if fs::symlink_metadata(&local).is_ok() {
        remove_any(&local)?;
    }
    symlink("../var/usrlocal", &local)?;

    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if COMPAT_LINKS.iter().any(|(n, _)| *n == name) {
            remove_any(&entry.path())?;
        } else if !KEEP_TOP.contains(&name.as_str()) {
            log::warn!("dropping /{name}: only /usr, /boot, /var and compat links stay at the top of an ostree tree");
            remove_any(&entry.path())?;
        }
    }
    for (name, to) in COMPAT_LINKS {
        symlink(to, root.join(name))?;
    }
    for dir in ["sysroot", "dev", "proc", "sys", "run", "boot", "var", "usr"] {
        treepath::dir(root, dir).with_context(|| format!("/{dir}"))?;
    }
    meta.retain(|path, _| {
        path.starts_with("/usr/") || path.starts_with("/boot/") || path == "/usr"
    });
    Ok(())
}

/// Every directory and symlink under /var becomes a tmpfiles.d line, and
/// /var is emptied: an ostree deployment's /var is the machine's.
fn var_to_tmpfiles(root: &Path, meta: &mut HashMap<String, Meta>) -> anyhow::Result<()> {
    let var = root.join("var");
    let mut lines: BTreeMap<String, String> = BTreeMap::new();
    for (dir, mode) in [
        ("/var/home", 0o755),
        ("/var/roothome", 0o700),
        ("/var/opt", 0o755),
        ("/var/srv", 0o755),
        ("/var/mnt", 0o755),
        ("/var/usrlocal", 0o755),
    ] {
        lines.insert(dir.to_string(), format!("d {dir} {mode:04o} root root - -"));
    }
    if treepath::is_real_dir(&var) {
        walk_var(root, &var, meta, &mut lines)?;
        for entry in fs::read_dir(&var)? {
            remove_any(&entry?.path())?;
        }
    }
    let mut text =
        String::from("# Generated by rpm-compose: the /var content of the composed packages.\n");
    for line in lines.values() {
        writeln!(text, "{line}").expect("writing to a String");
    }
    let path = treepath::entry(root, AUTOVAR)?;
    treepath::replace(&path, |tmp| fs::write(tmp, &text))?;
    meta.retain(|p, _| !p.starts_with("/var/"));
    Ok(())
}

fn walk_var(
    root: &Path,
    dir: &Path,
    meta: &HashMap<String, Meta>,
    lines: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let tree = format!("/{}", path.strip_prefix(root).expect("inside").display());
        let md = fs::symlink_metadata(&path)?;
        let (uid, gid) = meta.get(&tree).map(|m| (m.uid, m.gid)).unwrap_or((0, 0));
        if md.file_type().is_symlink() {
            let to = fs::read_link(&path)?;
            lines.insert(tree.clone(), format!("L {tree} - - - - {}", to.display()));
        } else if md.is_dir() {
            lines.insert(
                tree.clone(),
                format!("d {tree} {:04o} {uid} {gid} - -", md.mode() & 0o7777),
            );
            walk_var(root, &path, meta, lines)?;
        } else {
            log::debug!("dropping {tree}: files under /var are not part of an ostree commit");
        }
    }
    Ok(())
}

fn rekey(meta: &mut HashMap<String, Meta>, from: &str, to: &str) {
    let moved: Vec<String> = meta
        .keys()
        .filter(|k| k.starts_with(from))
        .cloned()
        .collect();
    for k in moved {
        let v = meta.remove(&k).expect("listed");
        meta.insert(format!("{to}{}", &k[from.len()..]), v);
    }
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn replace_symlink(to: &str, at: &Path) -> std::io::Result<()> {
    let _ = fs::remove_file(at);
    symlink(to, at)
}
