//! The typed payload sections. Each tool owns one; see [`crate::Section`].
//!
//! Field names are part of the manifest format: add fields freely, but
//! rename or remove one only with a major version bump.

use std::collections::BTreeMap;

use file_details::FileDetails;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::envelope::Section;

/// Storage mode of an ostree repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RepoMode {
    /// Compressed objects, servable over HTTP (`archive-z2` in `config`).
    Archive,
    /// Plain files owned by their real uid/gid: needs root.
    Bare,
    /// Plain files, ownership kept in extended attributes.
    BareUser,
    /// Plain files, no ownership or xattrs kept.
    BareUserOnly,
}

impl RepoMode {
    /// The name used on our command lines and in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoMode::Archive => "archive",
            RepoMode::Bare => "bare",
            RepoMode::BareUser => "bare-user",
            RepoMode::BareUserOnly => "bare-user-only",
        }
    }
}

impl std::fmt::Display for RepoMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `payload.repo`, written by `repo-init`: the ostree repository the
/// pipeline works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RepoSection {
    /// Absolute path of the repository.
    pub path: String,
    /// Storage mode.
    pub mode: RepoMode,
    /// True when this run created the repository, false when it existed.
    pub created: bool,
    /// `core.collection-id`, if any.
    pub collection_id: Option<String>,
    /// Config keys set through `--set SECTION.KEY=VALUE`, as they now read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

impl Section for RepoSection {
    const NAME: &'static str = "repo";
}

/// One ref as the summary file lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryRef {
    /// Ref name, e.g. `fedora-atomic/rawhide/x86_64/docker-host`.
    pub name: String,
    /// Commit checksum (64 hex digits).
    pub commit: String,
    /// `ostree.commit.timestamp`: the commit time, seconds since the epoch.
    pub timestamp: u64,
    /// `ostree.commit.version`, when the commit has one.
    pub version: Option<String>,
}

/// A static delta present in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeltaEntry {
    /// Source commit; `None` for a from-scratch delta.
    pub from: Option<String>,
    /// Target commit.
    pub to: String,
    /// True when this run generated it.
    pub generated: bool,
}

/// The detached GPG signature `summary.sig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignatureFile {
    /// Absolute path of `summary.sig`.
    pub path: String,
    /// Its size, mtime and digests.
    #[serde(flatten)]
    pub file: FileDetails,
    /// Key ids it was signed with in this run.
    pub key_ids: Vec<String>,
}

/// `payload.summary`, written by `summary-gen`: the summary file as written,
/// read back from disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SummarySection {
    /// Absolute path of the repository.
    pub repo: String,
    /// Absolute path of the `summary` file.
    pub path: String,
    /// Size, mtime and digests of the `summary` file.
    #[serde(flatten)]
    pub file: FileDetails,
    /// `ostree.summary.last-modified` from the summary itself, seconds
    /// since the epoch.
    pub last_modified: Option<u64>,
    /// Refs listed in the summary, sorted by name as ostree writes them.
    pub refs: Vec<SummaryRef>,
    /// True when `summary.sig` was written in this run.
    pub signed: bool,
    /// `summary.sig`, when signed.
    pub signature: Option<SignatureFile>,
    /// Static deltas present in the repository.
    pub deltas: Vec<DeltaEntry>,
    /// Every summary-level metadata key with its value in GVariant text
    /// format, e.g. `"ostree.summary.mode": "'archive-z2'"`.
    pub metadata: BTreeMap<String, String>,
    /// Wall-clock seconds the step took.
    pub duration_s: f64,
}

impl Section for SummarySection {
    const NAME: &'static str = "summary";
}

/// One package of a compose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComposePackage {
    /// Name.
    pub name: String,
    /// Epoch (0 when none).
    pub epoch: u32,
    /// Version.
    pub version: String,
    /// Release.
    pub release: String,
    /// Architecture.
    pub arch: String,
    /// SHA-256 of the RPM file (`None` in a dry run when the metadata
    /// only has another digest).
    pub sha256: Option<String>,
    /// Id of the repository it came from.
    pub repo: String,
}

/// One repository a compose read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComposeRepo {
    /// Repository id.
    pub id: String,
    /// Base URL.
    pub url: String,
    /// `<revision>` of its repomd.xml.
    pub revision: Option<String>,
    /// SHA-256 of its repomd.xml.
    pub repomd_sha256: String,
}

/// Counters of a compose, as rpm-ostree's compose JSON reports them plus
/// the download cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComposeStats {
    /// Metadata objects in the repository after the commit.
    pub metadata_objects_total: u64,
    /// Metadata objects written.
    pub metadata_objects_written: u64,
    /// Content objects in the repository after the commit.
    pub content_objects_total: u64,
    /// Content objects written.
    pub content_objects_written: u64,
    /// Bytes of content objects written.
    pub content_bytes_written: u64,
    /// RPMs fetched in this run.
    pub packages_downloaded: u64,
    /// RPMs found, verified, in the download cache.
    pub packages_cached: u64,
    /// Packages whose payload this run decompressed.
    #[serde(default)]
    pub packages_unpacked: u64,
    /// Packages laid down by hard links from the unpacked-package cache.
    #[serde(default)]
    pub packages_linked: u64,
}

/// A package whose version changed between two composes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PkgChange {
    /// Package name.
    pub name: String,
    /// `[epoch:]version-release.arch` in the parent commit.
    pub from: String,
    /// `[epoch:]version-release.arch` in this commit.
    pub to: String,
}

/// How the package set changed against the parent commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PkgDiff {
    /// NEVRAs new in this commit.
    pub added: Vec<String>,
    /// NEVRAs gone from this commit.
    pub removed: Vec<String>,
    /// Packages at a newer version.
    pub upgraded: Vec<PkgChange>,
    /// Packages at an older version.
    pub downgraded: Vec<PkgChange>,
}

/// One entry of `payload.composes`, appended by `rpm-compose`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ComposeEntry {
    /// The treefile, absolute.
    pub treefile: String,
    /// The ostree repository, absolute.
    pub repo: String,
    /// The ref.
    #[serde(rename = "ref")]
    pub ref_: String,
    /// The commit the ref points at (`None` for a dry run or download only).
    pub commit: Option<String>,
    /// The commit's parent.
    pub parent: Option<String>,
    /// Checksum of the committed root tree.
    pub content_checksum: Option<String>,
    /// The commit's `version`.
    pub version: Option<String>,
    /// Commit timestamp, seconds since the epoch.
    pub timestamp: Option<u64>,
    /// True when this run wrote a new commit.
    pub changed: bool,
    /// `dry-run`, `download-only` or `commit`.
    pub mode: String,
    /// Architecture composed.
    pub arch: String,
    /// Packages in install order.
    pub packages: Vec<ComposePackage>,
    /// Repositories read.
    pub repos: Vec<ComposeRepo>,
    /// Counters.
    pub stats: ComposeStats,
    /// `rpmostree.inputhash`: treefile, its files and the package checksums.
    pub inputhash: Option<String>,
    /// Package changes against the parent (none without a parent).
    pub pkgdiff: Option<PkgDiff>,
    /// Wall-clock seconds the compose took.
    pub duration_s: f64,
}

/// One partition of a built image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImagePartition {
    /// Filesystem (and GPT partition) label.
    pub label: String,
    /// `vfat`, `ext4`.
    pub fstype: String,
    /// Where the deployment mounts it.
    pub mountpoint: String,
    /// Size in bytes.
    pub size: u64,
    /// Filesystem UUID.
    pub uuid: String,
}

/// One entry of `payload.images`, appended by `qcow2-build`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImageEntry {
    /// Absolute path of the image file.
    pub path: String,
    /// `qcow2`, `raw` or `raw.xz`.
    pub format: String,
    /// Size, mtime and the four digests of the file (CHECKSUM files,
    /// productmd's images.json and metalinks all read them from here).
    #[serde(flatten)]
    pub file: FileDetails,
    /// Size of the disk it holds, in bytes.
    pub virtual_size: u64,
    /// `ostreesetup --osname`.
    pub osname: String,
    /// The deployed ref.
    #[serde(rename = "ref")]
    pub ref_: String,
    /// The deployed commit.
    pub commit: String,
    /// The partitions, in disk order.
    pub partitions: Vec<ImagePartition>,
    /// `uefi`.
    pub firmware: String,
    /// `grub2`.
    pub bootloader: String,
    /// The deployment's kernel command line.
    pub kernel_args: String,
    /// Wall-clock seconds the build took.
    pub duration_s: f64,
}

/// One entry of `payload.steps`, appended by the releng scripts
/// (`scripts/buildrawhide`…) per step, so a report can show where the time
/// went, tools and plain shell steps (rsync, CHECKSUM) alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepEntry {
    /// Step name, e.g. `rpm-compose`, `publish-atomic`.
    pub name: String,
    /// `complete` or `skipped`.
    pub status: String,
    /// When it started, seconds since the epoch.
    pub started_at: i64,
    /// Wall-clock seconds it took.
    pub duration_s: f64,
    /// Its log file, absolute.
    pub log: String,
}
