//! The sections of the mirror network: what `mm-crawl scan` found in the
//! master tree, what `mm-crawl mirrors` saw on each mirror, and the files
//! `metalink-emit` wrote from both.

use file_details::FileDetails;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::envelope::Section;
use crate::sections::SummaryRef;

/// What kind of repository a scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RepoKind {
    /// A yum/dnf repository: `repodata/repomd.xml`.
    Yum,
    /// An ostree repository: `summary`, `objects/` and `config`.
    Ostree,
}

impl RepoKind {
    /// Path of the metadata file clients verify, relative to the repo.
    pub fn metadata_path(self) -> &'static str {
        match self {
            RepoKind::Yum => "repodata/repomd.xml",
            RepoKind::Ostree => "summary",
        }
    }

    /// The metalink's `<file name=…>`: the metadata file's base name.
    pub fn metadata_name(self) -> &'static str {
        match self {
            RepoKind::Yum => "repomd.xml",
            RepoKind::Ostree => "summary",
        }
    }
}

/// One version of a repository's metadata file (`repomd.xml` or `summary`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MetadataFile {
    /// Base name: `repomd.xml` or `summary`.
    pub name: String,
    /// Size, mtime and the four digests.
    #[serde(flatten)]
    pub details: FileDetails,
    /// repomd.xml: its `<revision>` (or the newest `<timestamp>` of its
    /// data); summary: its `ostree.summary.last-modified` (else the mtime).
    /// Seconds since the epoch.
    pub timestamp: i64,
}

/// One repository found in the master tree, for one architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScanRepo {
    /// Directory of the repository, relative to the scan root, `/`-separated
    /// and without a leading or trailing slash (`.` for the root itself).
    pub path: String,
    /// `yum` or `ostree`.
    pub kind: RepoKind,
    /// The `repo=` name clients ask for, e.g. `fedora-rawhide`.
    pub prefix: String,
    /// The `arch=` clients ask for, e.g. `x86_64`.
    pub arch: String,
    /// The metadata file as it is now.
    pub file: MetadataFile,
    /// Earlier versions of the metadata file younger than `--keep-days`,
    /// newest first: a mirror serving one of them is one sync behind.
    #[serde(default)]
    pub alternates: Vec<MetadataFile>,
    /// ostree: the refs of this architecture the summary lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<SummaryRef>,
    /// ostree: the repository mode from its `config` (`archive-z2`, `bare`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl ScanRepo {
    /// The metadata file's path relative to the scan root.
    pub fn metadata_path(&self) -> String {
        if self.path == "." {
            self.kind.metadata_path().to_string()
        } else {
            format!("{}/{}", self.path, self.kind.metadata_path())
        }
    }
}

/// `payload.scan`, written by `mm-crawl scan`: the repositories of a master
/// tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScanSection {
    /// Absolute path of the scanned tree.
    pub root: String,
    /// MirrorManager category, e.g. `Fedora Linux`.
    pub category: String,
    /// Repositories, sorted by path, then arch.
    pub repos: Vec<ScanRepo>,
    /// Directories walked.
    pub directories: u64,
    /// Files seen.
    pub files: u64,
    /// Metadata files hashed in this run (the rest came from the state).
    pub hashed: u64,
    /// Wall-clock seconds the scan took.
    pub duration_s: f64,
}

impl Section for ScanSection {
    const NAME: &'static str = "scan";
}

/// How a mirror's copy of a repository compares with the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RepoStatus {
    /// Same sha256 as the master's current metadata file.
    Up2date,
    /// Same sha256 as one of the alternates: one sync behind.
    Stale,
    /// Present, but matches nothing the master has had lately.
    Mismatch,
    /// Not there (404, or absent from the rsync listing).
    Missing,
    /// Not checked: the host did not answer.
    Unknown,
}

/// One repository as one mirror serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MirrorRepo {
    /// The scan repo's `path`.
    pub path: String,
    /// Verdict.
    pub status: RepoStatus,
    /// sha256 of the metadata file the mirror served, when it served one.
    pub sha256: Option<String>,
    /// The URL that was checked.
    pub url: String,
    /// HTTP status, error or rsync note, when not plainly up to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How a host's crawl went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HostState {
    /// It answered.
    Ok,
    /// It did not answer this time.
    Unreachable,
    /// It failed too many crawls in a row and is skipped until it answers.
    Disabled,
}

/// One mirror host as configured and as crawled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MirrorHost {
    /// Host name from the mirrors file.
    pub name: String,
    /// ISO 3166 country code, upper case.
    pub country: String,
    /// Continent code (`EU`, `NA`…), when given.
    pub continent: Option<String>,
    /// Relative bandwidth weight.
    pub bandwidth: u32,
    /// Autonomous system number, when given.
    pub asn: Option<u32>,
    /// Networks (CIDR) the host serves preferentially, or exclusively when
    /// private.
    pub netblocks: Vec<String>,
    /// Only for clients inside `netblocks`.
    pub private: bool,
    /// Trusted to be current without a crawl.
    pub always_up2date: bool,
    /// Base URLs mirroring the scan root.
    pub urls: Vec<String>,
    /// How the crawl went.
    pub state: HostState,
    /// Seconds the host's crawl took.
    pub duration_s: f64,
    /// When it was crawled, seconds since the epoch.
    pub crawled_at: i64,
    /// Per repository of the scan.
    pub repos: Vec<MirrorRepo>,
}

/// `payload.mirrors`, written by `mm-crawl mirrors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MirrorsSection {
    /// The mirrors file, absolute.
    pub source: String,
    /// When the crawl started, seconds since the epoch.
    pub crawled_at: i64,
    /// Wall-clock seconds of the whole crawl.
    pub duration_s: f64,
    /// Hosts in the mirrors file's order.
    pub hosts: Vec<MirrorHost>,
}

impl Section for MirrorsSection {
    const NAME: &'static str = "mirrors";
}

/// A file format metalink-emit writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MetalinkFormat {
    /// Metalink 3.0 as MirrorManager writes it.
    Metalink3,
    /// RFC 5854 Metalink 4 (`.meta4`).
    Meta4,
    /// Plain list of URLs with a `#` header line.
    Mirrorlist,
}

/// One entry of `payload.metalinks`, appended by `metalink-emit` per file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MetalinkEntry {
    /// Absolute path of the file written.
    pub path: String,
    /// Format.
    pub format: MetalinkFormat,
    /// The scan repo's `path`.
    pub repo_path: String,
    /// The scan repo's `prefix` (`repo=`).
    pub repo: String,
    /// The scan repo's `arch`.
    pub arch: String,
    /// Mirror URLs listed.
    pub urls: u32,
    /// Size of the file written.
    pub size: u64,
    /// sha256 of the file written.
    pub sha256: String,
}
