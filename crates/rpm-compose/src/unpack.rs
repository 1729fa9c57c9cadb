//! Unpacking RPM payloads into the new root, the way rpm lays files down,
//! without letting any entry land outside the root.
//!
//! Parent directories are resolved component by component inside the
//! root: relative symlinks are followed as rpm follows them (a package
//! shipping /bin/foo lands in /usr/bin/foo when /bin → usr/bin), an
//! absolute symlink or one that climbs out of the root is refused, and the
//! last component is always replaced by rename, never written through.
//! Ownership and capabilities are recorded for the commit rather than
//! applied to disk, so a compose needs no privileges.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use rpm::{FileFlags, FileType};

use crate::dirpool::DirPool;
use crate::payload::{Content, Loaded};
use crate::pkgcache::{self, write_new};
use releng_manifest::treepath;

/// Options from the treefile.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Install files rpm flags as documentation.
    pub documentation: bool,
    /// Install only files of these languages (and language-neutral ones).
    pub install_langs: Option<Vec<String>>,
}

/// Ownership and capabilities of one tree path, applied at commit time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// File capabilities in rpm's text form (`cap_net_raw=ep`).
    pub caps: Option<String>,
}

/// One file as installed, for the rpmdb and checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledFile {
    /// Path as the package names it (`/bin/sh`).
    pub package_path: String,
    /// Path where it landed in the tree (`/usr/bin/sh`).
    pub tree_path: String,
}

/// The tree being composed.
pub struct Root {
    dir: PathBuf,
    /// Tree path → owner and caps, for every entry whose owner is not
    /// root:root or that has capabilities.
    pub meta: HashMap<String, Meta>,
    /// Every link made from the package cache.
    pub witness: pkgcache::Witness,
    /// Where new directories come from, with the package cache.
    dirs: Option<DirPool>,
    /// Resolved parent directories, by payload parent path: valid until
    /// a symlink is placed or a script runs.
    parents: HashMap<PathBuf, PathBuf>,
    users: HashMap<String, u32>,
    groups: HashMap<String, u32>,
    warned: std::collections::HashSet<String>,
}

impl Root {
    /// A tree in the (existing, empty) directory `dir`.
    pub fn new(dir: &Path) -> Root {
        Root {
            dir: dir.to_path_buf(),
            meta: HashMap::new(),
            witness: Default::default(),
            dirs: None,
            parents: HashMap::new(),
            users: HashMap::new(),
            groups: HashMap::new(),
            warned: Default::default(),
        }
    }

    /// Takes new directories from `pool` (see [`DirPool`]).
    pub fn with_dir_pool(mut self, pool: DirPool) -> Root {
        self.dirs = Some(pool);
        self
    }

    /// The directory pool, to recycle the tree into when done.
    pub fn dir_pool(&mut self) -> Option<&mut DirPool> {
        self.dirs.as_mut()
    }

    /// Runs a scriptlet of package `name` in the tree. It may change
    /// anything there, so directories are resolved afresh after it.
    pub fn run_script(
        &mut self,
        name: &str,
        nevra: &str,
        script: &crate::scriptlets::Script,
        ignore: &[String],
    ) -> anyhow::Result<()> {
        self.parents.clear();
        crate::scriptlets::run(&self.dir, name, nevra, script, ignore)
    }

    /// The directory holding the tree.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new, empty directory with permission bits `mode`.
    fn make_dir(&mut self, at: &Path, mode: u32) -> std::io::Result<()> {
        match &mut self.dirs {
            Some(pool) => pool.make(at, mode),
            None => treepath::mkdir(at, mode),
        }
    }

    /// Lays one loaded package into the tree.
    pub fn unpack(
        &mut self,
        pkg: Loaded,
        opts: &UnpackOptions,
    ) -> anyhow::Result<Vec<InstalledFile>> {
        let Loaded {
            nevra,
            files,
            identity,
            cache_key,
            ..
        } = pkg;
        let nevra = nevra.as_str();
        let mut landed_by_identity: HashMap<(u32, u32), PathBuf> = HashMap::new();
        let mut pending_links: Vec<(PathBuf, String, (u32, u32))> = Vec::new();
        let mut installed = Vec::new();
        let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
        let mut touched_accounts = false;

        for (m, content) in files {
            let m = &m;
            let pkg_path = m.path().to_string_lossy().into_owned();
            let flags = m.flags();
            if flags.contains(FileFlags::GHOST) {
                continue;
            }
            if !opts.documentation && flags.contains(FileFlags::DOC) {
                continue;
            }
            if let (Some(langs), Some(lang)) = (&opts.install_langs, m.language()) {
                if !lang.is_empty()
                    && !langs
                        .iter()
                        .any(|l| lang == l || lang.starts_with(&format!("{l}_")))
                {
                    continue;
                }
            }
            let rel = checked_relative(&pkg_path)
                .with_context(|| format!("{nevra}: payload path `{pkg_path}`"))?;
            let parent = self
                .resolve_parent(&rel)
                .with_context(|| format!("{nevra}: payload path `{pkg_path}`"))?;
            let name = rel.file_name().expect("checked path has a name");
            let target = parent.join(name);
            let tree_path = format!(
                "/{}",
                target
                    .strip_prefix(&self.dir)
                    .expect("inside root")
                    .display()
            );
            let mode = m.permissions() as u32 & 0o7777;
            let mtime = m.modified_at().0 as i64;
            match m.file_type() {
                FileType::Dir => {
                    match fs::symlink_metadata(&target) {
                        // rpm keeps a symlink where a package lists a
                        // directory (/bin in filesystem vs UsrMove).
                        Ok(md) if md.file_type().is_symlink() => continue,
                        Ok(md) if md.is_dir() => {
                            fs::set_permissions(&target, fs::Permissions::from_mode(mode))?
                        }
                        Ok(_) => bail!("{nevra}: `{pkg_path}` is a directory in the package but a file in the tree"),
                        Err(_) => self.make_dir(&target, mode).with_context(|| format!("{nevra}: creating `{pkg_path}`"))?,
                    }
                    dir_times.push((target.clone(), mtime));
                }
                FileType::Regular => {
                    let landed = match content {
                        Content::Bytes(data) => {
                            self.place(&target, |at| write_new(at, &data, mode, mtime))
                                .with_context(|| format!("{nevra}: writing `{pkg_path}`"))?;
                            true
                        }
                        // Privileged bits are never in the cache: such a
                        // file gets a copy of its own.
                        Content::Cached(source, _) if mode & pkgcache::PRIVILEGED_BITS != 0 => {
                            let data = fs::read(&source)
                                .with_context(|| format!("{nevra}: {}", source.display()))?;
                            self.place(&target, |at| write_new(at, &data, mode, mtime))
                                .with_context(|| format!("{nevra}: copying `{pkg_path}`"))?;
                            true
                        }
                        Content::Cached(source, cached) => {
                            self.place(&target, |at| fs::hard_link(&source, at))
                                .with_context(|| format!("{nevra}: linking `{pkg_path}`"))?;
                            if let Some(key) = &cache_key {
                                self.witness
                                    .record(&source, &cached, key, nevra)
                                    .with_context(|| format!("{nevra}: {}", source.display()))?;
                            }
                            true
                        }
                        Content::None => match identity.get(&pkg_path) {
                            Some(id) => {
                                pending_links.push((target.clone(), pkg_path.clone(), *id));
                                false
                            }
                            None => bail!("{nevra}: `{pkg_path}` has no content in the payload"),
                        },
                    };
                    if landed {
                        if let Some(id) = identity.get(&pkg_path) {
                            landed_by_identity.insert(*id, target.clone());
                        }
                    }
                }
                FileType::SymbolicLink => match content {
                    // A symlink cannot be written through: it needs no
                    // witness.
                    Content::Cached(source, _) => {
                        self.place(&target, |at| fs::hard_link(&source, at))
                            .with_context(|| format!("{nevra}: linking symlink `{pkg_path}`"))?;
                    }
                    _ => {
                        let to = m.linkto().ok_or_else(|| {
                            anyhow!("{nevra}: symlink `{pkg_path}` has no target")
                        })?;
                        self.place(&target, |at| symlink(to, at))
                            .with_context(|| format!("{nevra}: creating symlink `{pkg_path}`"))?;
                        set_mtime(&target, mtime, true);
                    }
                },
                _ => {
                    // Device nodes and FIFOs: ostree commits cannot hold them.
                    log::debug!("{nevra}: skipping special file {pkg_path}");
                    continue;
                }
            }
            let uid = self.user_id(m.user(), nevra);
            let gid = self.group_id(m.group(), nevra);
            let caps = m.caps().map(str::to_string).filter(|c| !c.is_empty());
            if uid != 0 || gid != 0 || caps.is_some() {
                self.meta.insert(tree_path.clone(), Meta { uid, gid, caps });
            } else {
                self.meta.remove(&tree_path);
            }
            if tree_path == "/etc/passwd" || tree_path == "/etc/group" {
                touched_accounts = true;
            }
            installed.push(InstalledFile {
                package_path: pkg_path,
                tree_path,
            });
        }
        for (target, pkg_path, id) in pending_links {
            let source = landed_by_identity.get(&id).ok_or_else(|| {
                anyhow!("{nevra}: hard link `{pkg_path}` has no member with content")
            })?;
            self.place(&target, |at| fs::hard_link(source, at))
                .with_context(|| format!("{nevra}: linking `{pkg_path}`"))?;
        }
        // Directory mtimes last: creating entries inside changed them.
        for (dir, mtime) in dir_times {
            set_mtime(&dir, mtime, false);
        }
        if touched_accounts {
            self.reload_accounts()?;
        }
        Ok(installed)
    }

    /// Resolves the parent directories of `rel` inside the root, creating
    /// missing ones, following relative symlinks that stay inside.
    fn resolve_parent(&mut self, rel: &Path) -> anyhow::Result<PathBuf> {
        let key = rel.parent().unwrap_or(Path::new(""));
        if let Some(p) = self.parents.get(key) {
            return Ok(p.clone());
        }
        let resolved = self.resolve_parent_uncached(rel)?;
        self.parents.insert(key.to_path_buf(), resolved.clone());
        Ok(resolved)
    }

    fn resolve_parent_uncached(&mut self, rel: &Path) -> anyhow::Result<PathBuf> {
        let root = self.dir.clone();
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok(
            treepath::resolve(&root, parent, Some(&mut |p: &Path| self.make_dir(p, 0o755)))?
                .expect("missing directories are made"),
        )
    }

    fn user_id(&mut self, name: &str, nevra: &str) -> u32 {
        match name {
            "" | "root" => 0,
            n => match self.users.get(n) {
                Some(id) => *id,
                None => {
                    if self.warned.insert(format!("u:{n}")) {
                        log::warn!(
                            "{nevra}: user `{n}` is not in the tree's /etc/passwd; using root"
                        );
                    }
                    0
                }
            },
        }
    }

    fn group_id(&mut self, name: &str, nevra: &str) -> u32 {
        match name {
            "" | "root" => 0,
            n => match self.groups.get(n) {
                Some(id) => *id,
                None => {
                    if self.warned.insert(format!("g:{n}")) {
                        log::warn!(
                            "{nevra}: group `{n}` is not in the tree's /etc/group; using root"
                        );
                    }
                    0
                }
            },
        }
    }

    /// Reads the tree's own /etc/passwd and /etc/group: package owners are
    /// names, and only the tree knows what ids they have there.
    pub fn reload_accounts(&mut self) -> anyhow::Result<()> {
        self.users = read_ids(&self.dir.join("etc/passwd"), 2)?;
        self.groups = read_ids(&self.dir.join("etc/group"), 2)?;
        Ok(())
    }
}

fn read_ids(path: &Path, field: usize) -> anyhow::Result<HashMap<String, u32>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(text
        .lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.split(':').collect();
            Some((parts.first()?.to_string(), parts.get(field)?.parse().ok()?))
        })
        .collect())
}

/// `path` from a payload as a relative path with only normal components.
pub fn checked_relative(path: &str) -> anyhow::Result<PathBuf> {
    if path.contains('\0') {
        bail!("contains a NUL byte");
    }
    let p = Path::new(path);
    if !p.is_absolute() {
        bail!("is not absolute");
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => bail!("contains `..`"),
            Component::CurDir | Component::Prefix(_) => bail!("is not a plain path"),
        }
    }
    if out.as_os_str().is_empty() {
        bail!("names the root itself");
    }
    Ok(out)
}

impl Root {
    /// Makes a new entry at `target` with `make`, which must fail with
    /// `AlreadyExists` rather than touch an existing entry (link, symlink,
    /// `create_new`): the common case, nothing there yet, costs one call;
    /// when something is there, it is replaced as [`treepath::replace`] does.
    fn place(
        &mut self,
        target: &Path,
        make: impl Fn(&Path) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        match make(target) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // What it replaces may have been a directory symlink.
                self.parents.clear();
                treepath::replace(target, make)
            }
            r => r,
        }
    }
}

/// Sets the mtime (and atime) of `path` to `secs`, best effort.
pub fn set_mtime(path: &Path, secs: i64, nofollow: bool) {
    let Ok(c) = crate::inode::c_path(path) else {
        return;
    };
    let ts = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    let flags = if nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    // SAFETY: valid C string and a two-element timespec array.
    unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), flags) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_paths_must_be_plain() {
        assert_eq!(
            checked_relative("/usr/bin/x").unwrap(),
            PathBuf::from("usr/bin/x")
        );
        for bad in ["/usr/../etc/x", "usr/bin/x", "/", "/a/b/.."] {
            assert!(checked_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parents_follow_relative_links_and_refuse_escapes() {
        let d = tempfile::tempdir().unwrap();
        let mut root = Root::new(d.path());
        fs::create_dir_all(d.path().join("usr/bin")).unwrap();
        symlink("usr/bin", d.path().join("bin")).unwrap();
        let p = root.resolve_parent(Path::new("bin/sh")).unwrap();
        assert_eq!(p, d.path().join("usr/bin"));
        symlink("/etc", d.path().join("usr/abs")).unwrap();
        let e = root
            .resolve_parent(Path::new("usr/abs/passwd"))
            .unwrap_err();
        assert!(format!("{e}").contains("absolute symlink"), "{e}");
        symlink("../../..", d.path().join("usr/up")).unwrap();
        assert!(root.resolve_parent(Path::new("usr/up/x/y")).is_err());
        // Missing parents are created.
        assert_eq!(
            root.resolve_parent(Path::new("opt/a/b/c")).unwrap(),
            d.path().join("opt/a/b")
        );
    }
}
