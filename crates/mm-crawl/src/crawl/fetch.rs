//! Each target's metadata file from one host, over the host's scheme,
//! with the `--deep` sample of every current copy.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use releng_manifest::RepoKind;

use super::Target;
use crate::deep::{self, Problem};
use crate::http::{self, Fetched, REPOMD_CAP, SUMMARY_CAP};
use crate::mirrorsfile::Scheme;
use crate::pool;
use crate::state::Validators;

/// A repo's metadata file as the mirror served it, and what `--deep` found.
pub(super) type HostAnswer = (Fetched, Vec<Problem>);

/// Every target under `base`, in the order of `targets`; `previous` makes
/// the requests conditional.
pub(super) fn all(
    agent: &ureq::Agent,
    base: &str,
    scheme: Scheme,
    targets: &[Target],
    previous: &BTreeMap<String, Validators>,
    deadline: Instant,
) -> Vec<HostAnswer> {
    match scheme {
        Scheme::Rsync => over_rsync(base, targets, previous, deadline),
        Scheme::File => from_dir(base, targets),
        Scheme::Http | Scheme::Https => over_http(agent, base, targets, previous, deadline),
    }
}

/// One rsync listing for the whole host, fetching only what changed.
fn over_rsync(
    base: &str,
    targets: &[Target],
    previous: &BTreeMap<String, Validators>,
    deadline: Instant,
) -> Vec<HostAnswer> {
    let files: Vec<String> = targets.iter().map(|t| t.metadata.clone()).collect();
    let prev: BTreeMap<String, _> = targets
        .iter()
        .filter_map(|t| {
            previous
                .get(&t.url(base))
                .map(|v| (t.metadata.clone(), v.clone()))
        })
        .collect();
    let extra: Vec<String> = targets
        .iter()
        .flat_map(|t| t.sample.iter().map(|f| f.rel.clone()))
        .collect();
    match crate::rsync::check(base, &files, &extra, &prev, deadline) {
        Ok((mut m, listing)) => files
            .iter()
            .zip(targets)
            .map(|(f, t)| {
                let got = m
                    .remove(f)
                    .unwrap_or(Fetched::NoAnswer("not checked".into()));
                let problems = if is_current(t, &got, previous.get(&t.url(base))) {
                    deep::listed(&listing, &t.sample)
                } else {
                    Vec::new()
                };
                (got, problems)
            })
            .collect(),
        Err(e) => {
            let msg = format!("{e:#}");
            files
                .iter()
                .map(|_| (Fetched::NoAnswer(msg.clone()), Vec::new()))
                .collect()
        }
    }
}

fn from_dir(base: &str, targets: &[Target]) -> Vec<HostAnswer> {
    if !dir_there(base) {
        return targets
            .iter()
            .map(|_| {
                (
                    Fetched::NoAnswer("base directory not there".into()),
                    Vec::new(),
                )
            })
            .collect();
    }
    let base_dir = file_path(base);
    targets
        .iter()
        .map(|t| {
            let f = http::read_file(&file_path(&t.url(base)), cap(t.kind));
            let problems = if is_current(t, &f, None) {
                deep::local(&base_dir, &t.sample)
            } else {
                Vec::new()
            };
            (f, problems)
        })
        .collect()
}

fn over_http(
    agent: &ureq::Agent,
    base: &str,
    targets: &[Target],
    previous: &BTreeMap<String, Validators>,
    deadline: Instant,
) -> Vec<HostAnswer> {
    // Two workers share the host's agent: at most two requests in flight
    // to this host.
    pool::map(targets, 2, |t| {
        let url = t.url(base);
        let f = http::get(agent, &url, previous.get(&url), cap(t.kind), deadline);
        let problems = if is_current(t, &f, previous.get(&url)) {
            deep::http(agent, base, &t.sample, deadline)
        } else {
            Vec::new()
        };
        (f, problems)
    })
}

/// `--deep`: whether the mirror's metadata file is the master's current
/// one (only such a copy is worth sampling), with a sample to check.
fn is_current(t: &Target, f: &Fetched, previous: Option<&Validators>) -> bool {
    !t.sample.is_empty()
        && match f {
            Fetched::Body(v) => v.sha256 == t.current,
            Fetched::NotModified => previous.is_some_and(|v| v.sha256 == t.current),
            _ => false,
        }
}

fn cap(kind: RepoKind) -> u64 {
    match kind {
        RepoKind::Yum => REPOMD_CAP,
        RepoKind::Ostree => SUMMARY_CAP,
    }
}

/// Whether a `file://` host's base directory is there: such a host has
/// answered when it is.
pub(super) fn dir_there(base: &str) -> bool {
    Path::new(&file_path(base)).is_dir()
}

/// The local path of a `file://` URL (percent-escapes are not decoded: base
/// URLs come from our own mirrors file).
fn file_path(url: &str) -> String {
    url.strip_prefix("file://").unwrap_or(url).to_string()
}
