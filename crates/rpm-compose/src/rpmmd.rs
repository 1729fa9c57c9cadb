//! rpm-md repositories: `repodata/repomd.xml` and the metadata files it
//! lists, fetched into the cache and verified before libsolv sees them.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::fetch::{safe_href, Expected, Fetcher};
use crate::repofile::RepoConfig;

/// repomd.xml is small; anything larger is not one.
const MAX_REPOMD: u64 = 4 << 20;
/// Largest metadata file we accept (Fedora's filelists are ~60 MB).
const MAX_METADATA: u64 = 1 << 30;

/// One `<data>` entry of repomd.xml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// `type` attribute: primary, filelists, other, …
    pub kind: String,
    /// `location href`, relative to the base URL.
    pub href: String,
    /// Checksum of the (compressed) file.
    pub checksum: Expected,
}

/// What repomd.xml says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repomd {
    /// `<revision>`, when present.
    pub revision: Option<String>,
    /// The data files.
    pub data: Vec<DataFile>,
}

/// A repository whose metadata is in the cache and verified.
#[derive(Debug, Clone)]
pub struct LoadedRepo {
    /// Its configuration.
    pub config: RepoConfig,
    /// What repomd.xml said.
    pub repomd: Repomd,
    /// Cached primary file.
    pub primary: PathBuf,
    /// Cache directory of this repository's metadata.
    pub dir: PathBuf,
}

impl LoadedRepo {
    /// Fetches (or finds in the cache) the filelists, for file
    /// dependencies the primary cannot answer.
    pub fn filelists(&self, fetcher: &Fetcher) -> anyhow::Result<Option<PathBuf>> {
        match self.repomd.data.iter().find(|d| d.kind == "filelists") {
            None => Ok(None),
            Some(d) => fetch_data(fetcher, &self.config, &self.dir, d).map(Some),
        }
    }
}

/// repomd.xml as fetched: parsed, and the sha256 of its bytes.
#[derive(Debug, Clone)]
pub struct FetchedRepomd {
    /// What it says.
    pub repomd: Repomd,
    /// sha256 of the bytes.
    pub sha256: String,
}

/// Fetches and parses `repo`'s repomd.xml: cheap, and enough to tell
/// whether anything in the repository changed.
pub fn fetch_repomd(fetcher: &Fetcher, repo: &RepoConfig) -> anyhow::Result<FetchedRepomd> {
    let url = format!("{}repodata/repomd.xml", repo.baseurl);
    let what = || format!("repo `{}` ({})", repo.id, repo.baseurl);
    let bytes = fetcher
        .get_bytes(&url, MAX_REPOMD)
        .with_context(|| format!("{}: cannot fetch repodata/repomd.xml", what()))?;
    let repomd =
        parse_repomd(&bytes).with_context(|| format!("{}: repodata/repomd.xml", what()))?;
    Ok(FetchedRepomd {
        repomd,
        sha256: file_details::sha256_hex(&bytes),
    })
}

/// Fetches (or finds in `cache`) the primary that `fetched` names.
pub fn load(
    fetcher: &Fetcher,
    repo: &RepoConfig,
    fetched: FetchedRepomd,
    cache: &Path,
) -> anyhow::Result<LoadedRepo> {
    let what = || format!("repo `{}` ({})", repo.id, repo.baseurl);
    let repomd = fetched.repomd;
    let dir = cache.join("repodata").join(&repo.id);
    std::fs::create_dir_all(&dir)?;
    let primary = repomd
        .data
        .iter()
        .find(|d| d.kind == "primary")
        .ok_or_else(|| anyhow!("{}: repomd.xml lists no primary metadata", what()))?;
    let primary = fetch_data(fetcher, repo, &dir, primary).with_context(what)?;
    Ok(LoadedRepo {
        config: repo.clone(),
        repomd,
        primary,
        dir,
    })
}

fn fetch_data(
    fetcher: &Fetcher,
    repo: &RepoConfig,
    dir: &Path,
    d: &DataFile,
) -> anyhow::Result<PathBuf> {
    let href = safe_href(&d.href)?;
    // The basename keeps the compression suffix libsolv needs and, being
    // checksum-prefixed by createrepo, changes whenever the content does.
    let base = href.rsplit('/').next().unwrap_or(href);
    let dest = dir.join(base);
    if crate::fetch::file_matches(&dest, &d.checksum)? {
        return Ok(dest);
    }
    let url = format!("{}{}", repo.baseurl, href);
    fetcher.fetch_to(&url, &dest, &d.checksum, MAX_METADATA)?;
    Ok(dest)
}

/// Parses repomd.xml.
pub fn parse_repomd(xml: &[u8]) -> anyhow::Result<Repomd> {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut revision = None;
    let mut data = Vec::new();
    // The <data> being read: its type, location and checksum so far.
    let mut current: Option<(String, Option<String>, Option<Expected>)> = None;
    let mut text_for: Option<&'static str> = None;
    let mut checksum_type = String::new();
    let mut saw_repomd = false;
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.local_name();
                match name.as_ref() {
                    b"repomd" => saw_repomd = true,
                    b"revision" => text_for = Some("revision"),
                    b"data" => {
                        let kind =
                            attr(&e, b"type")?.ok_or_else(|| anyhow!("<data> without type"))?;
                        current = Some((kind, None, None));
                    }
                    b"location" if current.is_some() => {
                        let href =
                            attr(&e, b"href")?.ok_or_else(|| anyhow!("<location> without href"))?;
                        current.as_mut().unwrap().1 = Some(href);
                    }
                    b"checksum" if current.is_some() => {
                        checksum_type =
                            attr(&e, b"type")?.ok_or_else(|| anyhow!("<checksum> without type"))?;
                        text_for = Some("checksum");
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                let text = t.unescape()?.into_owned();
                match text_for.take() {
                    Some("revision") => revision = Some(text),
                    Some("checksum") => {
                        current.as_mut().unwrap().2 = Some(Expected {
                            kind: checksum_type.clone(),
                            hex: text.to_ascii_lowercase(),
                        })
                    }
                    _ => {}
                }
            }
            Event::End(e) => {
                text_for = None;
                if e.local_name().as_ref() == b"data" {
                    let (kind, href, checksum) = current.take().expect("inside <data>");
                    let href =
                        href.ok_or_else(|| anyhow!("<data type=\"{kind}\"> has no location"))?;
                    let checksum = checksum
                        .ok_or_else(|| anyhow!("<data type=\"{kind}\"> has no checksum"))?;
                    data.push(DataFile {
                        kind,
                        href,
                        checksum,
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_repomd {
        return Err(anyhow!("not a repomd document"));
    }
    Ok(Repomd { revision, data })
}

fn attr(e: &quick_xml::events::BytesStart, name: &[u8]) -> anyhow::Result<Option<String>> {
    for a in e.attributes() {
        let a = a?;
        if a.key.local_name().as_ref() == name {
            return Ok(Some(a.unescape_value()?.into_owned()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_createrepo_output() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1700000000</revision>
  <data type="primary">
    <checksum type="sha256">ABCDEF</checksum>
    <open-checksum type="sha256">ffff</open-checksum>
    <location href="repodata/abcdef-primary.xml.gz"/>
    <timestamp>1700000000</timestamp>
  </data>
  <data type="filelists">
    <checksum type="sha256">1234</checksum>
    <location href="repodata/1234-filelists.xml.zst"/>
  </data>
</repomd>"#;
        let r = parse_repomd(xml).unwrap();
        assert_eq!(r.revision.as_deref(), Some("1700000000"));
        assert_eq!(r.data.len(), 2);
        assert_eq!(r.data[0].kind, "primary");
        assert_eq!(
            r.data[0].checksum.hex, "abcdef",
            "open-checksum must not win"
        );
        assert_eq!(r.data[1].href, "repodata/1234-filelists.xml.zst");
    }

    #[test]
    fn refuses_what_is_not_repomd() {
        assert!(parse_repomd(b"<html><body>404</body></html>").is_err());
        assert!(parse_repomd(b"<repomd><data type='primary'></data></repomd>").is_err());
    }
}
