//! Paths inside the tree being composed, resolved as the tree itself sees
//! them, from the host.
//!
//! Packages and scripts put symlinks in the tree. A relative one that
//! stays inside is followed as rpm follows it (a package shipping /bin/foo
//! lands in /usr/bin/foo when /bin → usr/bin); an absolute one means the
//! tree's own root, which on the host is somewhere else entirely, so it is
//! refused, as is one that climbs out. Every host-side access to a path
//! below the tree's top goes through here: a plain `root.join(path)`
//! would follow `/usr/share/rpm → /var/lib/rpm` to the host's own rpmdb.
//! And the last component is replaced, never written through
//! ([`replace`]).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::bail;

/// How many symlinks one path may pass through, as the kernel's limit.
const MAX_SYMLINKS: usize = 40;

/// Makes one missing directory of the tree.
pub type Mkdir<'a> = &'a mut dyn FnMut(&Path) -> std::io::Result<()>;

/// Resolves the directory `rel` (relative to the tree at `root`) to a real
/// directory inside the tree. Missing directories are made with `mkdir`,
/// or, without one, make the answer `None`.
pub fn resolve(
    root: &Path,
    rel: &Path,
    mut mkdir: Option<Mkdir>,
) -> anyhow::Result<Option<PathBuf>> {
    let mut queue: VecDeque<OsString> = rel
        .components()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut cur: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = queue.pop_front() {
        if c == OsStr::new(".") || c == OsStr::new("/") {
            continue;
        }
        if c == OsStr::new("..") {
            if cur.pop().is_none() {
                bail!("a symlink leads out of the root");
            }
            continue;
        }
        let mut next = root.to_path_buf();
        next.extend(&cur);
        next.push(&c);
        match fs::symlink_metadata(&next) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match mkdir.as_mut() {
                Some(make) => {
                    make(&next)?;
                    cur.push(c);
                }
                None => return Ok(None),
            },
            Err(e) => return Err(e.into()),
            Ok(md) if md.is_dir() => cur.push(c),
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    bail!("too many levels of symlinks");
                }
                let to = fs::read_link(&next)?;
                let shown = format!(
                    "/{}",
                    Path::new(&cur.iter().collect::<PathBuf>())
                        .join(&c)
                        .display()
                );
                if to.is_absolute() {
                    bail!(
                        "its directory `{shown}` is an absolute symlink to `{}`, which will not be followed",
                        to.display()
                    );
                }
                for part in to.components().rev() {
                    match part {
                        Component::Normal(p) => queue.push_front(p.to_os_string()),
                        Component::ParentDir => queue.push_front("..".into()),
                        Component::CurDir => {}
                        _ => bail!("`{shown}` is a symlink with an unusable target"),
                    }
                }
            }
            Ok(_) => bail!("a parent directory is a file in the tree"),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&cur);
    Ok(Some(out))
}

/// Makes a directory of the tree with permission bits `mode`, whatever
/// the umask.
pub fn mkdir(p: &Path, mode: u32) -> std::io::Result<()> {
    fs::create_dir(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
}

/// A directory, not a symlink to one: the tree's symlinks are not the
/// host's to follow (nor bwrap's, binding it).
pub fn is_real_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// Whether `name` can be a systemd unit file name in a tree: no path in
/// it, nothing hidden.
pub fn is_unit_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.starts_with('.')
}

/// The directory `rel` of the tree, made where missing.
pub fn dir(root: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    Ok(
        resolve(root, Path::new(rel), Some(&mut |p: &Path| mkdir(p, 0o755)))?
            .expect("missing directories are made"),
    )
}

/// Where the entry `rel` of the tree is (its directories made where
/// missing). The entry itself is not followed: replace it, don't write
/// through it.
pub fn entry(root: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let (parent, name) = split(rel)?;
    Ok(dir(root, parent)?.join(name))
}

/// Where the entry `rel` of the tree is, if its directories exist.
pub fn find(root: &Path, rel: &str) -> anyhow::Result<Option<PathBuf>> {
    let (parent, name) = split(rel)?;
    Ok(resolve(root, Path::new(parent), None)?.map(|d| d.join(name)))
}

fn split(rel: &str) -> anyhow::Result<(&str, &str)> {
    let rel = rel.trim_start_matches('/');
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    if name.is_empty() || name == "." || name == ".." {
        bail!("`/{rel}` does not name an entry");
    }
    Ok((parent, name))
}

/// Creates the new entry under a temporary name beside `target` and
/// renames it over whatever is there: a symlink at `target` is replaced,
/// never written through, and a file hard-linked elsewhere (rpm-compose's
/// package cache) is never written into.
pub fn replace(
    target: &Path,
    make: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if let Ok(md) = fs::symlink_metadata(target) {
        if md.is_dir() && !md.file_type().is_symlink() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a directory is in the way",
            ));
        }
    }
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let tmp = target.with_file_name(format!(".{name}.rpm-compose-tmp"));
    let _ = fs::remove_file(&tmp);
    make(&tmp)?;
    fs::rename(&tmp, target).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn follows_relative_links_and_refuses_the_host() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        assert_eq!(entry(root, "/bin/sh").unwrap(), root.join("usr/bin/sh"));
        // An absolute link means the tree's root, not the host's.
        symlink("/etc", root.join("usr/abs")).unwrap();
        let e = dir(root, "usr/abs/x").unwrap_err();
        assert!(format!("{e}").contains("absolute symlink"), "{e}");
        symlink("../../..", root.join("usr/up")).unwrap();
        assert!(entry(root, "usr/up/x/y").is_err());
        // Missing directories: made by `dir` (0755), absent for `find`.
        assert_eq!(find(root, "opt/a/b").unwrap(), None);
        assert_eq!(dir(root, "opt/a").unwrap(), root.join("opt/a"));
        assert_eq!(
            fs::metadata(root.join("opt/a"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o755
        );
        assert!(entry(root, "/usr/..").is_err());
    }

    #[test]
    fn replacing_a_symlink_does_not_write_through_it() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        fs::write(&outside, "keep").unwrap();
        let link = d.path().join("link");
        symlink(&outside, &link).unwrap();
        replace(&link, |tmp| fs::write(tmp, "new")).unwrap();
        assert_eq!(fs::read_to_string(&outside).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&link).unwrap(), "new");
        assert!(!fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
