//! `mm-crawl scan`: the master tree's repositories into the `scan` section.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use file_details::FileDetails;
use releng_manifest::{
    BadInput, MetadataFile, RepoKind, ScanRepo, ScanSection, SummaryRef, SummarySection,
};

use crate::naming::{self, RepoMap};
use crate::state::{FileState, StatKey, State};
use crate::walk::{walk, Found};
use crate::ScanArgs;

pub(crate) const EXAMPLES: &str = "\
Examples:
  mm-crawl scan --root /pub/fedora/linux --state mm-state.json < /dev/null
  mm-crawl scan --root /pub/alt --category 'Fedora Other' --repo-map map.toml < /dev/null

Repo map (TOML, first match wins; path is a regex on the repo path):
  [[map]]
  path = 'atomic/(\\w+)'
  prefix = 'fedora-atomic-$1'
  arch = 'x86_64'     # optional, yum only: ostree arches come from the refs
  kind = 'ostree'     # optional
";

/// Runs `scan`.
pub fn run(args: ScanArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut manifest = args.common.read_manifest()?;
    let root = std::fs::canonicalize(&args.root)
        .map_err(|e| BadInput::err(format!("--root {}: {e}", args.root.display())))?;
    if !root.is_dir() {
        return Err(BadInput::err(format!(
            "--root {}: not a directory",
            args.root.display()
        )));
    }
    let map = match &args.repo_map {
        Some(p) => RepoMap::load(p)?,
        None => RepoMap::default(),
    };
    let mut state = State::load(args.state.as_deref())?;
    let summary = manifest.get::<SummarySection>()?;

    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    let w = walk(&root, threads);
    log::debug!(
        "walked {} directories, {} files in {:?}",
        w.directories,
        w.files,
        started.elapsed()
    );
    let ctx = Ctx {
        root: &root,
        map: &map,
        summary: summary.as_ref(),
        now: crate::now(),
        keep_s: i64::from(args.keep_days) * 86_400,
    };
    let mut repos = Vec::new();
    let mut hashed = 0;
    let mut seen = BTreeSet::new();
    for found in &w.repos {
        // Seen even when describing it fails below (a file unreadable for a
        // moment): its history and alternates stay in the state.
        seen.insert(ctx.state_key(found));
        match ctx.describe(found, &mut state) {
            Ok((mut r, h)) => {
                hashed += u64::from(h);
                repos.append(&mut r);
            }
            Err(e) => log::warn!("{}: skipped: {e:#}", root.join(&found.path).display()),
        }
    }
    // Forget files under this root that are gone: their history would only
    // grow the state file.
    let under = format!("{}/", root.display());
    state
        .files
        .retain(|k, _| !k.starts_with(&under) || seen.contains(k));
    repos.sort_by(|a, b| (&a.path, &a.arch).cmp(&(&b.path, &b.arch)));
    let section = ScanSection {
        root: root.to_string_lossy().into_owned(),
        category: args.category.clone(),
        directories: w.directories,
        files: w.files,
        hashed,
        repos,
        duration_s: started.elapsed().as_secs_f64(),
    };
    log::info!(
        "{}: {} repositories ({} entries) in {} directories, {} files; {} hashed, {:.2}s",
        root.display(),
        w.repos.len(),
        section.repos.len(),
        section.directories,
        section.files,
        section.hashed,
        section.duration_s
    );
    state.save(args.state.as_deref())?;
    manifest.set(&section)?;
    args.common.write_manifest(&manifest)
}

struct Ctx<'a> {
    root: &'a Path,
    map: &'a RepoMap,
    summary: Option<&'a SummarySection>,
    now: i64,
    keep_s: i64,
}

impl Ctx<'_> {
    /// The absolute path of a repository's directory.
    fn repo_dir(&self, found: &Found) -> std::path::PathBuf {
        if found.path == "." {
            self.root.to_path_buf()
        } else {
            self.root.join(&found.path)
        }
    }

    /// The absolute path of a repository's metadata file.
    fn metadata_file(&self, found: &Found) -> std::path::PathBuf {
        self.repo_dir(found).join(found.kind.metadata_path())
    }

    /// A repository's key in the state's `files`.
    fn state_key(&self, found: &Found) -> String {
        self.metadata_file(found).to_string_lossy().into_owned()
    }

    /// The scan entries of one repository, and whether it was hashed.
    fn describe(&self, found: &Found, state: &mut State) -> anyhow::Result<(Vec<ScanRepo>, bool)> {
        let dir = self.repo_dir(found);
        let md_path = dir.join(found.kind.metadata_path());
        let state_key = self.state_key(found);
        let meta = std::fs::metadata(&md_path).with_context(|| format!("{}", md_path.display()))?;
        let key = StatKey::of(&meta);
        let mut hashed = false;
        let known = state
            .files
            .get(&state_key)
            .filter(|f| f.key == key)
            .cloned();
        let (file, refs) = match known {
            Some(f) => (f.file, f.refs),
            None => {
                let (file, refs, key, did_hash) = self.read_metadata(found.kind, &md_path)?;
                hashed = did_hash;
                match state.files.get_mut(&state_key) {
                    Some(f) => {
                        f.replace(key, file.clone(), self.now);
                        f.refs = refs.clone();
                    }
                    None => {
                        state.files.insert(
                            state_key.clone(),
                            FileState {
                                key,
                                file: file.clone(),
                                first_seen: self.now,
                                refs: refs.clone(),
                                history: Vec::new(),
                            },
                        );
                    }
                }
                (file, refs)
            }
        };
        let alternates = state
            .files
            .get_mut(&state_key)
            .map(|f| f.alternates(self.now, self.keep_s))
            .unwrap_or_default();
        let mapped = self.map.lookup(&found.path, found.kind);
        let repos = match found.kind {
            RepoKind::Yum => {
                let (prefix, arch) = naming::yum_default(&found.path);
                let (prefix, arch) = match mapped {
                    Some((p, a)) => (p, a.unwrap_or(arch)),
                    None => (prefix, arch),
                };
                vec![ScanRepo {
                    path: found.path.clone(),
                    kind: RepoKind::Yum,
                    prefix,
                    arch,
                    file,
                    alternates,
                    refs: Vec::new(),
                    mode: None,
                }]
            }
            RepoKind::Ostree => {
                let prefix = match mapped {
                    Some((p, _)) => p,
                    None => {
                        let root_name = self
                            .root
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_else(|| "root".into());
                        naming::ostree_default(&found.path, &root_name)
                    }
                };
                let mode = repo_mode(&dir.join("config"));
                by_arch(refs)
                    .into_iter()
                    .map(|(arch, refs)| ScanRepo {
                        path: found.path.clone(),
                        kind: RepoKind::Ostree,
                        prefix: prefix.clone(),
                        arch,
                        file: file.clone(),
                        alternates: alternates.clone(),
                        refs,
                        mode: mode.clone(),
                    })
                    .collect()
            }
        };
        Ok((repos, hashed))
    }

    /// Reads (and hashes) a metadata file, or takes it from the manifest's
    /// `summary` section when that describes this very file.
    fn read_metadata(
        &self,
        kind: RepoKind,
        path: &Path,
    ) -> anyhow::Result<(MetadataFile, Vec<SummaryRef>, StatKey, bool)> {
        let mut f = File::open(path).with_context(|| format!("{}", path.display()))?;
        let meta = f.metadata()?;
        let key = StatKey::of(&meta);
        let mtime = file_details::mtime_secs(&meta)?;
        if let Some(s) = self.summary {
            if kind == RepoKind::Ostree
                && Path::new(&s.path) == path
                && s.file.size == meta.len()
                && s.file.mtime == mtime
            {
                log::debug!("{}: digests from the manifest's summary", path.display());
                let file = MetadataFile {
                    name: kind.metadata_name().into(),
                    details: s.file.clone(),
                    timestamp: s.last_modified.map_or(mtime, |t| t as i64),
                };
                return Ok((file, s.refs.clone(), key, false));
            }
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        f.read_to_end(&mut bytes)
            .with_context(|| format!("{}", path.display()))?;
        let details = FileDetails::from_bytes(&bytes, mtime);
        let (timestamp, refs) = match kind {
            RepoKind::Yum => {
                let t = match crate::repomd::timestamp(&bytes) {
                    Ok(Some(t)) => t,
                    Ok(None) => mtime,
                    Err(e) => {
                        log::warn!("{}: {e}; timestamp from the mtime", path.display());
                        mtime
                    }
                };
                (t, Vec::new())
            }
            RepoKind::Ostree => {
                let s = ostree_summary::Summary::parse(&bytes)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let refs = s.manifest_refs();
                (s.last_modified().map_or(mtime, |t| t as i64), refs)
            }
        };
        let file = MetadataFile {
            name: kind.metadata_name().into(),
            details,
            timestamp,
        };
        Ok((file, refs, key, true))
    }
}

/// Refs grouped by the architecture in their name; refs naming none are
/// grouped under `noarch` (as is an empty summary), never guessed.
fn by_arch(refs: Vec<SummaryRef>) -> BTreeMap<String, Vec<SummaryRef>> {
    let mut out: BTreeMap<String, Vec<SummaryRef>> = BTreeMap::new();
    for r in refs {
        let arch = naming::ref_arch(&r.name).unwrap_or("noarch").to_string();
        out.entry(arch).or_default().push(r);
    }
    if out.is_empty() {
        out.insert("noarch".into(), Vec::new());
    }
    out
}

/// `core.mode` of an ostree `config` (ini); `None` when unreadable.
fn repo_mode(config: &Path) -> Option<String> {
    let text = std::fs::read_to_string(config).ok()?;
    let mut in_core = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_core = line == "[core]";
        } else if in_core {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == "mode" {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str) -> SummaryRef {
        SummaryRef {
            name: name.into(),
            commit: "0".repeat(64),
            timestamp: 1,
            version: None,
        }
    }

    #[test]
    fn refs_split_by_arch() {
        let g = by_arch(vec![
            r("fedora-atomic/rawhide/aarch64/docker-host"),
            r("fedora-atomic/rawhide/x86_64/docker-host"),
            r("fedora-atomic/rawhide/x86_64/workstation"),
        ]);
        assert_eq!(g.keys().collect::<Vec<_>>(), ["aarch64", "x86_64"]);
        assert_eq!(g["x86_64"].len(), 2);
        assert_eq!(by_arch(vec![]).keys().collect::<Vec<_>>(), ["noarch"]);
    }

    #[test]
    fn mode_from_config() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config");
        std::fs::write(
            &p,
            "[core]\nrepo_version=1\nmode=archive-z2\n[remote \"x\"]\nmode=bare\n",
        )
        .unwrap();
        assert_eq!(repo_mode(&p).as_deref(), Some("archive-z2"));
    }
}
