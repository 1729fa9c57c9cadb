//! A mirror's answer for one target, as the `mirrors` section's verdict.

use std::collections::BTreeMap;

use releng_manifest::{MirrorRepo, RepoStatus};

use super::Target;
use crate::http::Fetched;
use crate::state::Validators;

/// Turns the answer `f` for `url` into a verdict, remembering validators
/// for the next crawl in `keep` (the host record's `urls`, emptied at the
/// start of the crawl): new ones from a body, the previous ones when the
/// answer said nothing new, none for a missing file.
pub(super) fn verdict(
    t: &Target,
    url: String,
    f: Fetched,
    previous: &BTreeMap<String, Validators>,
    keep: &mut BTreeMap<String, Validators>,
) -> MirrorRepo {
    if !matches!(f, Fetched::Body(_) | Fetched::Missing(_)) {
        if let Some(v) = previous.get(&url) {
            keep.insert(url.clone(), v.clone());
        }
    }
    let (sha256, detail) = match f {
        Fetched::Body(v) => {
            let sha = v.sha256.clone();
            if v.etag.is_some() || v.last_modified.is_some() {
                keep.insert(url.clone(), v);
            }
            (Some(sha), None)
        }
        Fetched::Missing(why) => {
            return MirrorRepo {
                path: t.path.clone(),
                status: RepoStatus::Missing,
                sha256: None,
                url,
                detail: Some(why),
            };
        }
        Fetched::NotModified => match previous.get(&url) {
            Some(v) => (Some(v.sha256.clone()), Some("not modified".to_string())),
            None => (None, Some("304 without a previous crawl".into())),
        },
        Fetched::TooLarge(cap) => (None, Some(format!("body larger than {cap} bytes: cut off"))),
        // A 5xx after retries says nothing about the file: not checked.
        Fetched::Error(why) | Fetched::NoAnswer(why) => {
            return MirrorRepo {
                path: t.path.clone(),
                status: RepoStatus::Unknown,
                sha256: None,
                url,
                detail: Some(why),
            }
        }
    };
    let status = match &sha256 {
        Some(s) if *s == t.current => RepoStatus::Up2date,
        Some(s) if t.alternates.contains(s) => RepoStatus::Stale,
        _ => RepoStatus::Mismatch,
    };
    let detail = match (status, detail) {
        (RepoStatus::Up2date, d) => d,
        (RepoStatus::Stale, _) => Some("matches an alternate: one sync behind".into()),
        (_, Some(d)) => Some(d),
        (_, None) => Some("matches no recent version of the master's file".into()),
    };
    MirrorRepo {
        path: t.path.clone(),
        status,
        sha256,
        url,
        detail,
    }
}
