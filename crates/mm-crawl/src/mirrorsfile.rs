//! The mirrors file: TOML, one `[[host]]` table per mirror host.
//!
//! ```toml
//! [[host]]
//! name = "mirror.example.org"
//! country = "DE"
//! continent = "EU"          # optional
//! bandwidth = 1000          # default 100
//! asn = 3320                # optional
//! netblocks = ["192.0.2.0/24"]
//! private = false
//! always_up2date = false    # trusted: not crawled, reported up to date
//! urls = ["https://mirror.example.org/fedora/linux", "rsync://mirror.example.org/fedora"]
//! ```
//!
//! Every error names the line and, for a key, the key; URLs are checked
//! here, before any crawl starts.

use std::collections::BTreeSet;
use std::path::Path;

use releng_manifest::{BadInput, HostState, MirrorHost};
use serde::Deserialize;
use toml::Spanned;

use crate::naming::toml_error;

/// A parsed, validated mirrors file.
#[derive(Debug)]
pub struct MirrorsFile {
    /// Hosts in file order.
    pub hosts: Vec<HostConfig>,
}

/// URL schemes a crawl understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http://`.
    Http,
    /// `https://`.
    Https,
    /// `rsync://` (daemon).
    Rsync,
    /// `file://` (a local path).
    File,
}

/// One host as configured.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Host name.
    pub name: String,
    /// ISO 3166 code, upper case.
    pub country: String,
    /// Continent code.
    pub continent: Option<String>,
    /// Relative bandwidth.
    pub bandwidth: u32,
    /// ASN.
    pub asn: Option<u32>,
    /// CIDR networks.
    pub netblocks: Vec<String>,
    /// Only for its netblocks.
    pub private: bool,
    /// Not crawled.
    pub always_up2date: bool,
    /// Base URLs, without a trailing slash, with their scheme.
    pub urls: Vec<(String, Scheme)>,
}

impl HostConfig {
    /// The URL crawled: the first http(s) one, else rsync, else file.
    /// One URL per host: every URL of a host serves the same tree.
    pub fn crawl_url(&self) -> Option<&(String, Scheme)> {
        let rank = |s: Scheme| match s {
            Scheme::Https | Scheme::Http => 0,
            Scheme::Rsync => 1,
            Scheme::File => 2,
        };
        self.urls.iter().min_by_key(|(_, s)| rank(*s))
    }

    /// The host's entry of the `mirrors` section before its crawl: `ok`,
    /// no repositories yet.
    pub fn mirror_host(&self, crawled_at: i64) -> MirrorHost {
        MirrorHost {
            name: self.name.clone(),
            country: self.country.clone(),
            continent: self.continent.clone(),
            bandwidth: self.bandwidth,
            asn: self.asn,
            netblocks: self.netblocks.clone(),
            private: self.private,
            always_up2date: self.always_up2date,
            urls: self.urls.iter().map(|(u, _)| u.clone()).collect(),
            state: HostState::Ok,
            duration_s: 0.0,
            crawled_at,
            repos: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    host: Vec<Spanned<RawHost>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    country: String,
    continent: Option<String>,
    #[serde(default = "hundred")]
    bandwidth: u32,
    asn: Option<u32>,
    #[serde(default)]
    netblocks: Vec<String>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    always_up2date: bool,
    urls: Vec<Spanned<String>>,
}

fn hundred() -> u32 {
    100
}

impl MirrorsFile {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> anyhow::Result<MirrorsFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BadInput::err(format!("--mirrors {}: {e}", path.display())))?;
        MirrorsFile::parse(&text)
            .map_err(|e| BadInput::err(format!("--mirrors {}: {e}", path.display())))
    }

    /// Parses and validates the text of a mirrors file; the error is one
    /// line naming the line and key (or host and URL).
    pub fn parse(text: &str) -> Result<MirrorsFile, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let mut names = BTreeSet::new();
        let mut hosts = Vec::new();
        for h in raw.host {
            let at = line_of(h.span().start);
            let h = h.into_inner();
            if h.name.trim().is_empty() {
                return Err(format!("line {at}: host: key `name` is empty"));
            }
            if !names.insert(h.name.clone()) {
                return Err(format!("line {at}: host {:?}: key `name` repeats", h.name));
            }
            if h.country.len() != 2 || !h.country.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(format!(
                    "line {at}: host {:?}: key `country`: {:?} is not a two-letter code",
                    h.name, h.country
                ));
            }
            if h.urls.is_empty() {
                return Err(format!("line {at}: host {:?}: key `urls` is empty", h.name));
            }
            let mut urls = Vec::new();
            for u in &h.urls {
                let line = line_of(u.span().start);
                let scheme = check_url(u.get_ref()).map_err(|why| {
                    format!(
                        "line {line}: host {:?}: key `urls`: {:?}: {why}",
                        h.name,
                        u.get_ref()
                    )
                })?;
                urls.push((u.get_ref().trim_end_matches('/').to_string(), scheme));
            }
            hosts.push(HostConfig {
                name: h.name,
                country: h.country.to_ascii_uppercase(),
                continent: h.continent.map(|c| c.to_ascii_uppercase()),
                bandwidth: h.bandwidth,
                asn: h.asn,
                netblocks: h.netblocks,
                private: h.private,
                always_up2date: h.always_up2date,
                urls,
            });
        }
        Ok(MirrorsFile { hosts })
    }
}

fn check_url(url: &str) -> Result<Scheme, &'static str> {
    let (scheme, rest) = url.split_once("://").ok_or("not a URL (no scheme://)")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        "rsync" => Scheme::Rsync,
        "file" => Scheme::File,
        _ => return Err("scheme must be http, https, rsync or file"),
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains white space");
    }
    if url.contains(['?', '#']) {
        return Err("a base URL takes no query or fragment");
    }
    if scheme == Scheme::File {
        if !rest.starts_with('/') {
            return Err("file URLs need an absolute path (file:///…)");
        }
    } else {
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() {
            return Err("no host");
        }
    }
    Ok(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[host]]
name = "a.example"
country = "de"
urls = ["http://a.example/pub/", "rsync://a.example/pub"]

[[host]]
name = "b.example"
country = "US"
continent = "na"
bandwidth = 7
asn = 64500
netblocks = ["192.0.2.0/24"]
private = true
always_up2date = true
urls = ["file:///srv/mirror"]
"#;

    #[test]
    fn parses_with_defaults() {
        let m = MirrorsFile::parse(GOOD).unwrap();
        assert_eq!(m.hosts.len(), 2);
        let a = &m.hosts[0];
        assert_eq!(
            (a.country.as_str(), a.bandwidth, a.private),
            ("DE", 100, false)
        );
        assert_eq!(a.urls[0].0, "http://a.example/pub");
        assert_eq!(a.crawl_url().unwrap().1, Scheme::Http);
        let b = &m.hosts[1];
        assert_eq!(b.continent.as_deref(), Some("NA"));
        assert_eq!((b.bandwidth, b.asn, b.private), (7, Some(64500), true));
    }

    #[test]
    fn bad_scheme_names_line_host_and_url() {
        let t = GOOD.replace("rsync://a.example/pub", "ftp://a.example/pub");
        let e = MirrorsFile::parse(&t).unwrap_err();
        assert!(
            e.contains("line 5") && e.contains("a.example") && e.contains("ftp://"),
            "{e}"
        );
    }

    #[test]
    fn unknown_and_mistyped_keys_name_line_and_key() {
        let t = GOOD.replace("asn = 64500", "asm = 64500");
        let e = MirrorsFile::parse(&t).unwrap_err();
        assert!(e.contains("asm") && e.contains("line 12"), "{e}");
        let t = GOOD.replace("bandwidth = 7", "bandwidth = \"lots\"");
        let e = MirrorsFile::parse(&t).unwrap_err();
        assert!(e.contains("bandwidth") && e.contains("line 11"), "{e}");
        let t = GOOD.replace("country = \"US\"", "");
        let e = MirrorsFile::parse(&t).unwrap_err();
        assert!(e.contains("country"), "{e}");
    }
}
