//! Everything a request needs, computed once per manifest: which hosts may
//! serve each repository, their parsed netblocks, escaped URL fragments and
//! each repository's document header.

use std::collections::HashMap;

use quick_xml::escape::escape;
use releng_manifest::{
    HostState, MirrorHost, MirrorsSection, RepoKind, RepoStatus, ScanRepo, ScanSection,
};

use crate::metalink;
use crate::netblock::Netblock;

/// A URL scheme a mirror serves, as a bit so a request's `protocol=` is a
/// mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http://`
    Http = 1,
    /// `https://`
    Https = 2,
    /// `ftp://`
    Ftp = 4,
    /// `rsync://`
    Rsync = 8,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: u8 = 15;
    /// What ostree fetches: http and https only.
    pub const WEB: u8 = 3;
    /// What a plain mirrorlist lists: what dnf and ostree can fetch from.
    pub const LISTABLE: u8 = 7;

    /// The scheme name, as the metalink's `protocol` and `type`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::Ftp => "ftp",
            Protocol::Rsync => "rsync",
        }
    }

    /// The protocol named `name` (a `protocol=` value or a URL scheme).
    pub fn from_name(name: &str) -> Option<Protocol> {
        Some(match name.to_ascii_lowercase().as_str() {
            "http" => Protocol::Http,
            "https" => Protocol::Https,
            "ftp" => Protocol::Ftp,
            "rsync" => Protocol::Rsync,
            _ => return None,
        })
    }

    /// This protocol's bit.
    pub fn bit(self) -> u8 {
        self as u8
    }
}

/// One base URL of a host (a mirror of the scan root), without a trailing
/// slash, plain and XML-escaped.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    /// Scheme.
    pub protocol: Protocol,
    /// As configured.
    pub plain: Box<str>,
    /// Escaped for XML text.
    pub xml: Box<str>,
    /// `<url …preference="` of a Metalink 3 document, with the host's
    /// location, up to the preference value.
    pub elem3: Box<[u8]>,
    /// `<url location="…" priority="` of a meta4 document.
    pub elem4: Box<[u8]>,
}

/// A mirror host as requests see it.
#[derive(Debug, Clone)]
pub struct Host {
    /// Name from the mirrors file (for logs).
    pub name: String,
    /// Upper-case country code.
    pub country: String,
    /// Continent code, upper case.
    pub continent: Option<String>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Relative weight, at least 1.
    pub bandwidth: u32,
    /// Parsed `netblocks`.
    pub netblocks: Vec<Netblock>,
    /// Only for clients inside `netblocks`.
    pub private: bool,
    /// Base URLs.
    pub urls: Vec<BaseUrl>,
    /// The [`Protocol`] bits of `urls`: selection skips a host that has no
    /// URL a document may list.
    pub protocols: u8,
}

/// A repository as requests see it.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The scan's description.
    pub scan: ScanRepo,
    /// `/<path>/<metadata path>`, appended to a base URL.
    pub file_suffix: String,
    /// The same, escaped for XML.
    pub file_suffix_xml: String,
    /// `/<path>/`, appended to a base URL for a mirrorlist line.
    pub dir_suffix: String,
    /// Metalink 3 header before and after the pubdate.
    pub header3: (Vec<u8>, Vec<u8>),
    /// meta4 header before and after the `published` date.
    pub header4: (Vec<u8>, Vec<u8>),
    /// Hosts that may serve it (up to date, reachable, with a usable URL),
    /// as indexes into [`Catalog::hosts`].
    pub hosts: Vec<u32>,
}

/// The precomputed answer space of one manifest.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Every usable host, in the mirrors file's order.
    pub hosts: Vec<Host>,
    /// Every scan repository, in the scan's order.
    pub repos: Vec<Repo>,
    /// prefix → arch → repo index.
    by_name: HashMap<String, HashMap<String, usize>>,
    /// Normalized path (directory or metadata file) → repo index.
    by_path: HashMap<String, usize>,
    /// Country → continent, learnt from the hosts.
    continents: HashMap<String, String>,
}

impl Catalog {
    /// Builds the catalog from the manifest's sections. Bad host data (an
    /// unparsable netblock, a URL of an unknown scheme) is skipped with a
    /// warning: one bad host must not take down every answer.
    pub fn build(scan: &ScanSection, mirrors: &MirrorsSection) -> Catalog {
        let mut cat = Catalog::default();
        let mut verdicts: Vec<HashMap<&str, RepoStatus>> = Vec::new();
        let mut always: Vec<bool> = Vec::new();
        for h in &mirrors.hosts {
            if h.state != HostState::Ok {
                log::debug!("{}: skipped, {:?}", h.name, h.state);
                continue;
            }
            let Some(host) = host_of(h) else { continue };
            if let Some(c) = &host.continent {
                cat.continents
                    .entry(host.country.clone())
                    .or_insert_with(|| c.clone());
            }
            verdicts.push(
                h.repos
                    .iter()
                    .map(|r| (r.path.as_str(), r.status))
                    .collect(),
            );
            always.push(h.always_up2date);
            cat.hosts.push(host);
        }
        for (i, r) in scan.repos.iter().enumerate() {
            let hosts = (0..cat.hosts.len())
                .filter(|&h| {
                    always[h] || verdicts[h].get(r.path.as_str()) == Some(&RepoStatus::Up2date)
                })
                .filter(|&h| {
                    let usable = metalink::allowed(r.kind, crate::Format::Metalink3);
                    cat.hosts[h].protocols & usable != 0
                })
                .map(|h| h as u32)
                .collect();
            let dir = if r.path == "." {
                String::new()
            } else {
                format!("/{}", r.path)
            };
            let file_suffix = format!("{dir}/{}", r.kind.metadata_path());
            cat.repos.push(Repo {
                file_suffix_xml: escape(&file_suffix).into_owned(),
                file_suffix,
                dir_suffix: format!("{dir}/"),
                header3: metalink::header3(r),
                header4: metalink::header4(r),
                scan: r.clone(),
                hosts,
            });
            cat.by_name
                .entry(r.prefix.clone())
                .or_default()
                .entry(r.arch.clone())
                .or_insert(i);
            for p in [r.path.clone(), r.metadata_path()] {
                cat.by_path.entry(normalize_path(&p)).or_insert(i);
            }
            if r.kind == RepoKind::Yum {
                cat.by_path
                    .entry(normalize_path(&format!("{}/repodata", r.path)))
                    .or_insert(i);
            }
        }
        cat
    }

    /// The repository clients call `repo=prefix&arch=arch`.
    pub fn by_name(&self, prefix: &str, arch: &str) -> Option<usize> {
        self.by_name.get(prefix)?.get(arch).copied()
    }

    /// The repository at `path` (its directory or its metadata file,
    /// relative to the scan root). Pure string lookup: the filesystem is
    /// never consulted.
    pub fn by_path(&self, path: &str) -> Option<usize> {
        self.by_path.get(&normalize_path(path)).copied()
    }

    /// The continent of `country`, as the hosts of that country say.
    pub fn continent_of(&self, country: &str) -> Option<&str> {
        self.continents.get(country).map(String::as_str)
    }
}

fn host_of(h: &MirrorHost) -> Option<Host> {
    let mut netblocks = Vec::new();
    for n in &h.netblocks {
        match Netblock::parse(n) {
            Ok(b) => netblocks.push(b),
            Err(e) => log::warn!("{}: {e}: ignored", h.name),
        }
    }
    if h.private && netblocks.is_empty() {
        log::warn!("{}: private without a netblock: never listed", h.name);
        return None;
    }
    let country = h.country.to_ascii_uppercase();
    let (upper, lower) = (escape(&country), escape(country.to_ascii_lowercase()));
    let urls: Vec<BaseUrl> = h
        .urls
        .iter()
        .filter_map(|u| {
            let scheme = u.split_once("://")?.0;
            let Some(protocol) = Protocol::from_name(scheme) else {
                log::warn!("{}: {u}: unknown scheme, ignored", h.name);
                return None;
            };
            let plain = u.trim_end_matches('/');
            let p = protocol.name();
            let elem3 = format!(
                "\n    <url protocol=\"{p}\" type=\"{p}\" location=\"{upper}\" preference=\""
            );
            let elem4 = format!("\n  <url location=\"{lower}\" priority=\"");
            Some(BaseUrl {
                protocol,
                xml: escape(plain).into(),
                plain: plain.into(),
                elem3: elem3.into_bytes().into(),
                elem4: elem4.into_bytes().into(),
            })
        })
        .collect();
    if urls.is_empty() {
        log::warn!("{}: no usable URL", h.name);
        return None;
    }
    Some(Host {
        name: h.name.clone(),
        country,
        continent: h.continent.as_ref().map(|c| c.to_ascii_uppercase()),
        asn: h.asn,
        bandwidth: h.bandwidth.max(1),
        netblocks,
        private: h.private,
        protocols: urls.iter().fold(0, |m, u| m | u.protocol.bit()),
        urls,
    })
}

/// `a//b/./c/` → `a/b/c`; the root is `.`.
pub fn normalize_path(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// Small hand-made sections for unit tests.
#[cfg(test)]
pub mod testdata {
    use file_details::FileDetails;
    use releng_manifest::*;

    /// A scan repository at `path` with fake digests.
    pub fn repo(path: &str, kind: RepoKind, prefix: &str) -> ScanRepo {
        let file = MetadataFile {
            name: kind.metadata_name().to_string(),
            details: FileDetails::from_bytes(path.as_bytes(), 1_700_000_000),
            timestamp: 1_700_000_000,
        };
        ScanRepo {
            path: path.to_string(),
            kind,
            prefix: prefix.to_string(),
            arch: "x86_64".to_string(),
            file,
            alternates: vec![],
            refs: vec![],
            mode: None,
        }
    }

    /// A reachable public host up to date for every path in `paths`.
    pub fn host(
        name: &str,
        country: &str,
        continent: &str,
        bandwidth: u32,
        paths: &[&str],
    ) -> MirrorHost {
        MirrorHost {
            name: name.to_string(),
            country: country.to_string(),
            continent: Some(continent.to_string()),
            bandwidth,
            asn: None,
            netblocks: vec![],
            private: false,
            always_up2date: false,
            urls: vec![format!("http://{name}/pub/"), format!("rsync://{name}/pub")],
            state: HostState::Ok,
            duration_s: 0.1,
            crawled_at: 1_700_000_000,
            repos: paths
                .iter()
                .map(|p| MirrorRepo {
                    path: p.to_string(),
                    status: RepoStatus::Up2date,
                    sha256: None,
                    url: String::new(),
                    detail: None,
                })
                .collect(),
        }
    }

    /// Sections from `repos` and `hosts`.
    pub fn sections(repos: Vec<ScanRepo>, hosts: Vec<MirrorHost>) -> (ScanSection, MirrorsSection) {
        (
            ScanSection {
                root: "/srv/pub".to_string(),
                category: "Test".to_string(),
                repos,
                directories: 1,
                files: 1,
                hashed: 1,
                duration_s: 0.0,
            },
            MirrorsSection {
                source: "/srv/mirrors.toml".to_string(),
                crawled_at: 1_700_000_000,
                duration_s: 0.0,
                hosts,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::testdata::*;
    use super::*;

    #[test]
    fn only_up_to_date_reachable_hosts_serve_a_repo() {
        let mut stale = host("stale", "DE", "EU", 1, &["a"]);
        stale.repos[0].status = RepoStatus::Stale;
        let mut down = host("down", "DE", "EU", 1, &["a"]);
        down.state = HostState::Unreachable;
        let mut disabled = host("disabled", "DE", "EU", 1, &["a"]);
        disabled.state = HostState::Disabled;
        let mut trusted = host("trusted", "DE", "EU", 1, &[]);
        trusted.always_up2date = true;
        let mut rsync_only = host("rsync", "DE", "EU", 1, &["a", "o"]);
        rsync_only.urls = vec!["rsync://rsync/pub".into()];
        let (scan, mirrors) = sections(
            vec![
                repo("a", RepoKind::Yum, "a"),
                repo("o", RepoKind::Ostree, "o"),
            ],
            vec![
                host("good", "DE", "EU", 1, &["a", "o"]),
                stale,
                down,
                disabled,
                trusted,
                rsync_only,
            ],
        );
        let cat = Catalog::build(&scan, &mirrors);
        let names = |r: usize| -> Vec<&str> {
            cat.repos[r]
                .hosts
                .iter()
                .map(|&h| cat.hosts[h as usize].name.as_str())
                .collect()
        };
        assert_eq!(names(0), ["good", "trusted", "rsync"]);
        // ostree fetches over http(s) only.
        assert_eq!(names(1), ["good", "trusted"]);
    }

    /// The scan root named here does not exist: the answers can only come
    /// from the scan (a path lookup that touched the filesystem would fail).
    #[test]
    fn lookups_by_name_and_by_normalised_path_answer_from_the_scan_alone() {
        let (scan, mirrors) = sections(
            vec![
                repo("pub/fedora/linux/x86_64/os", RepoKind::Yum, "fedora"),
                repo("atomic/repo", RepoKind::Ostree, "atomic"),
            ],
            vec![],
        );
        let cat = Catalog::build(&scan, &mirrors);
        assert_eq!(cat.by_name("fedora", "x86_64"), Some(0));
        assert_eq!(cat.by_name("fedora", "aarch64"), None);
        assert_eq!(cat.by_path("/pub/fedora//linux/x86_64/os/"), Some(0));
        assert_eq!(
            cat.by_path("pub/fedora/linux/x86_64/os/repodata/repomd.xml"),
            Some(0)
        );
        assert_eq!(cat.by_path("atomic/repo/summary"), Some(1));
        assert_eq!(cat.by_path("atomic/repo/../../etc/passwd"), None);
        assert_eq!(cat.repos[1].file_suffix, "/atomic/repo/summary");
        assert_eq!(cat.repos[0].dir_suffix, "/pub/fedora/linux/x86_64/os/");
    }
}
