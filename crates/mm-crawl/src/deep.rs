//! `--deep`: besides the metadata file, a sample of each repository's
//! other files is checked on the mirror by size (and by mtime where the
//! mirror reports one): a mirror with a current `repomd.xml` but missing or
//! truncated data files, or a current `summary` without the commits it
//! names, breaks clients as surely as a stale one.
//!
//! The sample comes from the master tree (the scan's root, on this
//! machine): for a yum repo the files `repomd.xml` lists (`<location
//! href>`), for an ostree repo the commit objects of its refs; at most
//! [`SAMPLE`] per repository.

use std::path::Path;
use std::time::{Instant, UNIX_EPOCH};

use quick_xml::events::Event;
use quick_xml::Reader;
use releng_manifest::{RepoKind, ScanRepo};

use crate::rsync::Listed;

/// Files sampled per repository.
pub const SAMPLE: usize = 8;

/// One master file to look for on the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFile {
    /// Path relative to the scan root.
    pub rel: String,
    /// Size on the master.
    pub size: u64,
    /// mtime on the master, seconds since the epoch.
    pub mtime: i64,
}

/// The sample of the repository at `repo.path` (all arch entries share
/// it); files the master itself lacks are left out.
pub fn sample(root: &Path, repos: &[&ScanRepo]) -> Vec<SampleFile> {
    let Some(first) = repos.first() else {
        return Vec::new();
    };
    let prefix = if first.path == "." {
        String::new()
    } else {
        format!("{}/", first.path)
    };
    let mut rels: Vec<String> = match first.kind {
        RepoKind::Yum => std::fs::read(root.join(first.metadata_path()))
            .ok()
            .map(|x| locations(&x))
            .unwrap_or_default(),
        RepoKind::Ostree => repos
            .iter()
            .flat_map(|r| &r.refs)
            .filter(|r| r.commit.len() > 2 && r.commit.is_ascii())
            .map(|r| format!("objects/{}/{}.commit", &r.commit[..2], &r.commit[2..]))
            .collect(),
    };
    rels.sort();
    rels.dedup();
    rels.into_iter()
        .filter(|r| !r.starts_with('/') && !r.split('/').any(|c| c == ".."))
        .filter_map(|r| {
            let rel = format!("{prefix}{r}");
            let meta = std::fs::metadata(root.join(&rel)).ok()?;
            Some(SampleFile {
                rel,
                size: meta.len(),
                mtime: file_details::mtime_secs(&meta).ok()?,
            })
        })
        .take(SAMPLE)
        .collect()
}

/// The `href`s of `<location>` elements in a repomd.xml.
pub fn locations(xml: &[u8]) -> Vec<String> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) if e.local_name().as_ref() == b"location" => {
                if let Some(Ok(v)) = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.local_name().as_ref() == b"href")
                    .map(|a| a.unescape_value().map(|v| v.into_owned()))
                {
                    out.push(v);
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    out
}

/// Checks `sample` under an http(s) base URL with HEAD requests; returns
/// what differs (empty: all present and alike).
pub fn http(
    agent: &ureq::Agent,
    base: &str,
    sample: &[SampleFile],
    deadline: Instant,
) -> Vec<Problem> {
    let mut out = Vec::new();
    for f in sample {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            out.push(Problem::Unchecked(f.rel.clone()));
            continue;
        }
        match agent
            .head(&format!("{base}/{}", f.rel))
            .timeout(left)
            .call()
        {
            Ok(resp) => {
                let size = resp
                    .header("Content-Length")
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let mtime = resp
                    .header("Last-Modified")
                    .and_then(|v| httpdate::parse_http_date(v).ok())
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64);
                out.extend(compare(f, size, mtime));
            }
            Err(ureq::Error::Status(404 | 410, _)) => out.push(Problem::Missing(f.rel.clone())),
            Err(_) => out.push(Problem::Unchecked(f.rel.clone())),
        }
    }
    out
}

/// Checks `sample` under a local directory (a `file://` mirror).
pub fn local(base: &str, sample: &[SampleFile]) -> Vec<Problem> {
    let mut out = Vec::new();
    for f in sample {
        match std::fs::metadata(format!("{base}/{}", f.rel)) {
            Ok(m) => out.extend(compare(f, Some(m.len()), file_details::mtime_secs(&m).ok())),
            Err(_) => out.push(Problem::Missing(f.rel.clone())),
        }
    }
    out
}

/// Checks `sample` against an rsync listing (sizes: the listing's times are
/// in the mirror's local time zone).
pub fn listed(
    listing: &std::collections::BTreeMap<String, Listed>,
    sample: &[SampleFile],
) -> Vec<Problem> {
    sample
        .iter()
        .filter_map(|f| match listing.get(&f.rel) {
            None => Some(Problem::Missing(f.rel.clone())),
            Some(l) => compare(f, Some(l.size), None),
        })
        .collect()
}

/// A difference `--deep` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not on the mirror.
    Missing(String),
    /// Another size.
    Size(String, u64),
    /// Another mtime (noted; does not change the verdict).
    Mtime(String),
    /// Not checked (timeout, error).
    Unchecked(String),
}

impl Problem {
    /// True when the mirror's copy is certainly not the master's.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Problem::Missing(_) | Problem::Size(..))
    }
}

/// One line for the manifest's `detail`.
pub fn describe(problems: &[Problem], checked: usize) -> String {
    let first = match &problems[0] {
        Problem::Missing(p) => format!("{p} missing"),
        Problem::Size(p, s) => format!("{p} has {s} bytes"),
        Problem::Mtime(p) => format!("{p} has another mtime"),
        Problem::Unchecked(p) => format!("{p} not checked"),
    };
    format!(
        "deep: {} of {checked} sampled files differ ({first}{})",
        problems.len(),
        if problems.len() > 1 { ", …" } else { "" }
    )
}

fn compare(f: &SampleFile, size: Option<u64>, mtime: Option<i64>) -> Option<Problem> {
    match (size, mtime) {
        (Some(s), _) if s != f.size => Some(Problem::Size(f.rel.clone(), s)),
        (_, Some(m)) if (m - f.mtime).abs() > 1 => Some(Problem::Mtime(f.rel.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repomd_locations() {
        let x = br#"<repomd xmlns="http://linux.duke.edu/metadata/repo"><data type="primary">
            <location href="repodata/abc-primary.xml.gz"/></data>
            <data type="other"><location xml:base="x" href="repodata/o&amp;.xml.gz"></location></data></repomd>"#;
        assert_eq!(
            locations(x),
            ["repodata/abc-primary.xml.gz", "repodata/o&.xml.gz"]
        );
    }

    #[test]
    fn size_is_fatal_mtime_is_a_note() {
        let f = SampleFile {
            rel: "a".into(),
            size: 3,
            mtime: 100,
        };
        assert_eq!(compare(&f, Some(3), Some(101)), None);
        assert!(compare(&f, Some(4), Some(100)).unwrap().is_fatal());
        assert!(!compare(&f, Some(3), Some(200)).unwrap().is_fatal());
    }
}
