//! One host's crawl: the probe of a disabled host, the fetch of every
//! target, the verdicts, and the failure count that disables a host.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use releng_manifest::{HostState, MirrorHost, MirrorRepo, RepoStatus};

use super::fetch::{self, dir_there};
use super::verdict::verdict;
use super::Target;
use crate::deep::{self, Problem};
use crate::http;
use crate::mirrorsfile::{HostConfig, Scheme};
use crate::state::HostRecord;

/// One host to crawl, with what earlier crawls left of it.
pub(super) struct HostCrawl<'a> {
    /// The host as configured.
    pub(super) host: &'a HostConfig,
    /// What to check on it.
    pub(super) targets: &'a [Target],
    /// Its state from earlier crawls.
    pub(super) record: HostRecord,
    /// The whole crawl's deadline, from its start.
    pub(super) timeout: Duration,
    /// `--max-failures`.
    pub(super) max_failures: u32,
}

impl HostCrawl<'_> {
    /// Crawls the host: its entry of the `mirrors` section, and its record
    /// for the next crawl.
    pub(super) fn run(mut self) -> (MirrorHost, HostRecord) {
        let started = Instant::now();
        let crawled_at = crate::now();
        let (base, scheme) = self.host.crawl_url().cloned().expect("validated: urls");
        let mut out = self.host.mirror_host(crawled_at);
        if self.host.always_up2date {
            out.repos = self
                .targets
                .iter()
                .map(|t| MirrorRepo {
                    path: t.path.clone(),
                    status: RepoStatus::Up2date,
                    sha256: Some(t.current.clone()),
                    url: t.url(&base),
                    detail: Some("always_up2date: not crawled".into()),
                })
                .collect();
            return (out, self.record);
        }
        let deadline = started + self.timeout;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(self.timeout.min(Duration::from_secs(10)))
            .max_idle_connections_per_host(2)
            .user_agent(concat!("mm-crawl/", env!("CARGO_PKG_VERSION")))
            .build();
        // Rebuilt below with the URLs of this crawl only: validators of
        // repositories the master no longer has do not pile up.
        let previous = std::mem::take(&mut self.record.urls);

        if self.record.disabled {
            if !self.probe(&agent, &base, scheme) {
                self.record.urls = previous;
                self.record.failures += 1;
                log::info!("{}: disabled; the probe got no answer", self.host.name);
                out.state = HostState::Disabled;
                out.repos = self.unknown(&base, "host disabled: probe got no answer");
                out.duration_s = started.elapsed().as_secs_f64();
                return (out, self.record);
            }
            log::info!("{}: answers again: enabled", self.host.name);
        }

        let fetched = fetch::all(&agent, &base, scheme, self.targets, &previous, deadline);
        let answered = fetched.iter().any(|(f, _)| f.answered()) || self.targets.is_empty();
        for (t, (f, problems)) in self.targets.iter().zip(fetched) {
            let mut repo = verdict(t, t.url(&base), f, &previous, &mut self.record.urls);
            // Only a current copy is sampled, and only `up2date` can fall
            // to `mismatch` (a `stale` copy stays `stale`).
            if !problems.is_empty() && repo.status == RepoStatus::Up2date {
                if problems.iter().any(Problem::is_fatal) {
                    repo.status = RepoStatus::Mismatch;
                }
                repo.detail = Some(deep::describe(&problems, t.sample.len()));
            }
            out.repos.push(repo);
        }
        if answered {
            self.record.failures = 0;
            self.record.disabled = false;
            self.record.last_ok = Some(crawled_at);
        } else {
            self.record.failures += 1;
            if self.record.failures >= self.max_failures {
                self.record.disabled = true;
            }
            out.state = if self.record.disabled {
                HostState::Disabled
            } else {
                HostState::Unreachable
            };
            log::warn!(
                "{}: no answer ({} failed crawls in a row{})",
                self.host.name,
                self.record.failures,
                if self.record.disabled {
                    ": disabled"
                } else {
                    ""
                }
            );
        }
        out.duration_s = started.elapsed().as_secs_f64();
        (out, self.record)
    }

    /// A disabled host's one cheap probe, capped at 5 s: whether it answers
    /// at all.
    fn probe(&self, agent: &ureq::Agent, base: &str, scheme: Scheme) -> bool {
        let probe_deadline = Instant::now() + self.timeout.min(Duration::from_secs(5));
        match (self.targets.first(), scheme) {
            (None, _) => true,
            (Some(t), Scheme::Http | Scheme::Https) => {
                http::get(agent, &t.url(base), None, 1, probe_deadline).answered()
            }
            (Some(_), Scheme::File) => dir_there(base),
            // Listed only (as an `extra`): nothing is downloaded.
            (Some(t), Scheme::Rsync) => crate::rsync::check(
                base,
                &[],
                std::slice::from_ref(&t.metadata),
                &BTreeMap::new(),
                probe_deadline,
            )
            .is_ok(),
        }
    }

    fn unknown(&self, base: &str, why: &str) -> Vec<MirrorRepo> {
        self.targets
            .iter()
            .map(|t| MirrorRepo {
                path: t.path.clone(),
                status: RepoStatus::Unknown,
                sha256: None,
                url: t.url(base),
                detail: Some(why.to_string()),
            })
            .collect()
    }
}
