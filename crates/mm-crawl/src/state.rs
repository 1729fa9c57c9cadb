//! The state file kept between runs: JSON, replaced atomically.
//!
//! `scan` owns `files` (per metadata file: the stat key it was hashed under,
//! its details, and the earlier versions); `mirrors` owns `hosts` (failure
//! counts and per-URL validators). Each subcommand rewrites the whole file
//! but carries the other's part through unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use releng_manifest::{BadInput, MetadataFile};
use serde::{Deserialize, Serialize};

/// The whole state file.
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    /// Format version: 1.
    #[serde(default = "one")]
    pub version: u32,
    /// Per absolute metadata file path.
    #[serde(default)]
    pub files: BTreeMap<String, FileState>,
    /// Per host name of the mirrors file.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostRecord>,
}

fn one() -> u32 {
    1
}

impl Default for State {
    fn default() -> State {
        State {
            version: 1,
            files: BTreeMap::new(),
            hosts: BTreeMap::new(),
        }
    }
}

/// What `scan` knows about one metadata file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileState {
    /// The stat key the details were computed under: a rescan hashes the
    /// file again only when one of these changed.
    pub key: StatKey,
    /// The current details.
    pub file: MetadataFile,
    /// When this version was first seen, seconds since the epoch.
    pub first_seen: i64,
    /// ostree: the refs, arch-independent, as read from the summary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<releng_manifest::SummaryRef>,
    /// Earlier versions, newest first.
    #[serde(default)]
    pub history: Vec<Previous>,
}

/// size, mtime (ns) and inode: what changes when a file is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatKey {
    /// Bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Inode number.
    pub inode: u64,
    /// Device number.
    pub dev: u64,
}

impl StatKey {
    /// The key of `meta`.
    pub fn of(meta: &std::fs::Metadata) -> StatKey {
        use std::os::unix::fs::MetadataExt;
        StatKey {
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            inode: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// An earlier version of a metadata file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Previous {
    /// Its details.
    pub file: MetadataFile,
    /// When it was first seen.
    pub first_seen: i64,
    /// When a scan first saw it replaced: alternates age from here, so a
    /// file that stayed current for weeks still validates a mirror one sync
    /// behind for `--keep-days` after it changed.
    pub replaced_at: i64,
}

/// What `mirrors` knows about one host.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostRecord {
    /// Crawls in a row that failed (no answer at all).
    pub failures: u32,
    /// Set when `failures` reached the limit; cleared by an answer.
    pub disabled: bool,
    /// Last crawl that got an answer, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ok: Option<i64>,
    /// Per URL checked: the validators of the last answer.
    #[serde(default)]
    pub urls: BTreeMap<String, Validators>,
}

/// What makes the next request conditional, and what it meant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    /// HTTP `ETag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// HTTP `Last-Modified` (rsync: `size mtime` of the listing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// sha256 of the body those validators belong to.
    pub sha256: String,
}

impl State {
    /// Reads `path`; a missing file is an empty state.
    pub fn load(path: Option<&Path>) -> anyhow::Result<State> {
        let Some(path) = path else {
            return Ok(State::default());
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(e).with_context(|| format!("--state {}", path.display())),
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| {
            BadInput::err(format!("--state {}: not a state file: {e}", path.display()))
        })?;
        if state.version != 1 {
            return Err(BadInput::err(format!(
                "--state {}: version {} is not supported",
                path.display(),
                state.version
            )));
        }
        Ok(state)
    }

    /// Writes `path` atomically (nothing without a path).
    pub fn save(&self, path: Option<&Path>) -> anyhow::Result<()> {
        let Some(path) = path else { return Ok(()) };
        releng_manifest::write_atomic(path, |w| {
            serde_json::to_writer_pretty(&mut *w, self).map_err(std::io::Error::other)?;
            std::io::Write::write_all(w, b"\n")
        })
        .with_context(|| format!("writing --state {}", path.display()))
    }
}

impl FileState {
    /// Records `file` (seen `now` under `key`) as current; the previous
    /// current version, when its bytes differ, moves into the history.
    pub fn replace(&mut self, key: StatKey, file: MetadataFile, now: i64) {
        self.key = key;
        if file.details.sha256 == self.file.details.sha256 {
            self.file = file;
            return;
        }
        let old = std::mem::replace(&mut self.file, file);
        self.history
            .retain(|p| p.file.details.sha256 != old.details.sha256);
        self.history.insert(
            0,
            Previous {
                file: old,
                first_seen: self.first_seen,
                replaced_at: now,
            },
        );
        self.first_seen = now;
    }

    /// Drops history older than `keep_s` seconds and returns the alternates:
    /// earlier versions, newest first, never the current bytes.
    pub fn alternates(&mut self, now: i64, keep_s: i64) -> Vec<MetadataFile> {
        let current = self.file.details.sha256.clone();
        self.history.retain(|p| now - p.replaced_at < keep_s);
        self.history
            .iter()
            .filter(|p| p.file.details.sha256 != current)
            .map(|p| p.file.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use file_details::FileDetails;

    fn meta(bytes: &[u8]) -> MetadataFile {
        MetadataFile {
            name: "summary".into(),
            details: FileDetails::from_bytes(bytes, 1),
            timestamp: 1,
        }
    }

    fn key(n: u64) -> StatKey {
        StatKey {
            size: n,
            mtime_ns: 0,
            inode: n,
            dev: 0,
        }
    }

    #[test]
    fn history_ages_from_replacement_and_skips_current() {
        let mut f = FileState {
            key: key(1),
            file: meta(b"one"),
            first_seen: 0,
            refs: vec![],
            history: vec![],
        };
        f.replace(key(2), meta(b"two"), 100);
        f.replace(key(3), meta(b"three"), 200);
        let alt = f.alternates(300, 1000);
        assert_eq!(alt, vec![meta(b"two"), meta(b"one")]);
        // Back to "one": it is current, not an alternate of itself.
        f.replace(key(4), meta(b"one"), 400);
        let alt = f.alternates(400, 1000);
        assert_eq!(alt, vec![meta(b"three"), meta(b"two")]);
        // "two" was replaced at 200: gone after keep.
        let alt = f.alternates(1250, 1000);
        assert_eq!(alt, vec![meta(b"three")]);
    }
}
