//! `mm-crawl mirrors`: every host's copy of every repository's metadata
//! file, compared by sha256.
//!
//! Hosts are crawled `--concurrency` at a time; each host gets its own
//! connection pool and two workers, so a mirror never sees more than two
//! requests from us at once. A host's whole crawl runs against one
//! deadline (`--timeout`), so a mirror that accepts and never answers costs
//! that long and no more.
//!
//! Failures: a host that answers nothing (no HTTP status, no rsync listing)
//! fails the crawl; after `--max-failures` failed crawls in a row it is
//! `disabled`. A disabled host gets one cheap probe per later crawl (http:
//! a GET of the first repository's metadata file; rsync: a listing of that
//! file, nothing fetched; both capped at 5 s; file: whether the base
//! directory is there): if that answers, the host is crawled in full and
//! enabled again, otherwise it stays disabled and its repositories are
//! `unknown`. A `file://` host whose base directory is not there has not
//! answered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use releng_manifest::progress::Progress;
use releng_manifest::{
    BadInput, HostState, MirrorHost, MirrorRepo, MirrorsSection, RepoKind, RepoStatus, ScanSection,
};

use crate::deep::{self, Problem, SampleFile};
use crate::http::{self, Fetched, REPOMD_CAP, SUMMARY_CAP};
use crate::mirrorsfile::{HostConfig, MirrorsFile, Scheme};
use crate::state::{HostRecord, State};
use crate::MirrorsArgs;

pub(crate) const EXAMPLES: &str = "\
Examples:
  mm-crawl mirrors --mirrors mirrors.toml --state mm-state.json < scan.json
  mm-crawl scan --root /pub/fedora/linux < /dev/null \\
    | mm-crawl mirrors --mirrors mirrors.toml --timeout 30 --concurrency 64

Mirrors file (TOML):
  [[host]]
  name = \"mirror.example.org\"
  country = \"DE\"
  continent = \"EU\"                       # optional
  bandwidth = 1000                       # default 100
  asn = 3320                             # optional
  netblocks = [\"192.0.2.0/24\"]           # optional
  private = false
  always_up2date = false                 # not crawled, reported up to date
  urls = [\"https://mirror.example.org/fedora/linux\", \"rsync://mirror.example.org/fedora-linux\"]
";

/// One distinct repository to check: what the master has.
struct Target {
    path: String,
    /// The metadata file's path relative to the root.
    metadata: String,
    kind: RepoKind,
    current: String,
    alternates: Vec<String>,
    /// `--deep`: other files of the repo to look for.
    sample: Vec<SampleFile>,
}

/// Runs `mirrors`.
pub fn run(args: MirrorsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let crawled_at = crate::now();
    let mut manifest = args.common.read_manifest()?;
    let scan = manifest.get::<ScanSection>()?.ok_or_else(|| {
        BadInput::err(
            "the manifest has no `scan` section: run `mm-crawl scan --root DIR` first \
             and pipe its manifest in (or pass --manifest FILE)",
        )
    })?;
    let mirrors = MirrorsFile::load(&args.mirrors)?;
    if args.concurrency == 0 {
        return Err(BadInput::err("--concurrency must be at least 1"));
    }
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return Err(BadInput::err(
            "--timeout must be a positive number of seconds",
        ));
    }
    let source = std::fs::canonicalize(&args.mirrors)
        .unwrap_or_else(|_| args.mirrors.clone())
        .to_string_lossy()
        .into_owned();
    let mut state = State::load(args.state.as_deref())?;
    let targets = targets(&scan, args.deep);
    let timeout = Duration::from_secs_f64(args.timeout);

    let records: Vec<HostRecord> = mirrors
        .hosts
        .iter()
        .map(|h| state.hosts.get(&h.name).cloned().unwrap_or_default())
        .collect();
    let results: Vec<Mutex<Option<(MirrorHost, HostRecord)>>> =
        mirrors.hosts.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = args.concurrency.min(mirrors.hosts.len()).max(1);
    let progress = Progress::bar(mirrors.hosts.len() as u64, "hosts").with_prefix("crawling");
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(host) = mirrors.hosts.get(i) else {
                    break;
                };
                let crawler = HostCrawl {
                    host,
                    targets: &targets,
                    record: records[i].clone(),
                    timeout,
                    max_failures: args.max_failures,
                };
                *results[i].lock().unwrap() = Some(crawler.run());
                progress.inc(1);
            });
        }
    });
    progress.finish();
    let mut hosts = Vec::new();
    for (cfg, slot) in mirrors.hosts.iter().zip(results) {
        let (host, record) = slot.into_inner().unwrap().expect("every host crawled");
        state.hosts.insert(cfg.name.clone(), record);
        hosts.push(host);
    }
    // Hosts no longer in the mirrors file take their validators with them.
    state
        .hosts
        .retain(|name, _| mirrors.hosts.iter().any(|h| &h.name == name));
    let section = MirrorsSection {
        source,
        crawled_at,
        duration_s: started.elapsed().as_secs_f64(),
        hosts,
    };
    let count = |st: HostState| section.hosts.iter().filter(|h| h.state == st).count();
    log::info!(
        "{} hosts × {} repositories in {:.2}s: {} ok, {} unreachable, {} disabled",
        section.hosts.len(),
        targets.len(),
        section.duration_s,
        count(HostState::Ok),
        count(HostState::Unreachable),
        count(HostState::Disabled)
    );
    state.save(args.state.as_deref())?;
    manifest.set(&section)?;
    args.common.write_manifest(&manifest)
}

/// The scan's repositories, one per path (ostree repos have an entry per
/// arch, all sharing one summary).
fn targets(scan: &ScanSection, deep: bool) -> Vec<Target> {
    let mut by_path: BTreeMap<&str, Target> = BTreeMap::new();
    let root = std::path::Path::new(&scan.root);
    if deep && !root.is_dir() {
        log::warn!(
            "--deep: the scan root {} is not here: no samples",
            scan.root
        );
    }
    for r in &scan.repos {
        by_path.entry(&r.path).or_insert_with(|| Target {
            sample: if deep {
                let same: Vec<_> = scan.repos.iter().filter(|x| x.path == r.path).collect();
                deep::sample(root, &same)
            } else {
                Vec::new()
            },
            path: r.path.clone(),
            metadata: r.metadata_path(),
            kind: r.kind,
            current: r.file.details.sha256.clone(),
            alternates: r
                .alternates
                .iter()
                .map(|a| a.details.sha256.clone())
                .collect(),
        });
    }
    by_path.into_values().collect()
}

/// A repo's metadata file as the mirror served it, and what `--deep` found.
type HostAnswer = (Fetched, Vec<Problem>);

struct HostCrawl<'a> {
    host: &'a HostConfig,
    targets: &'a [Target],
    record: HostRecord,
    timeout: Duration,
    max_failures: u32,
}

impl HostCrawl<'_> {
    fn run(mut self) -> (MirrorHost, HostRecord) {
        let started = Instant::now();
        let crawled_at = crate::now();
        let (base, scheme) = self.host.crawl_url().cloned().expect("validated: urls");
        let url_of = |t: &Target| format!("{base}/{}", t.metadata);
        // A `file://` host answers when its base directory is there.
        let base_dir = file_path(&base);
        let dir_there = || std::path::Path::new(&base_dir).is_dir();
        let mut out = MirrorHost {
            name: self.host.name.clone(),
            country: self.host.country.clone(),
            continent: self.host.continent.clone(),
            bandwidth: self.host.bandwidth,
            asn: self.host.asn,
            netblocks: self.host.netblocks.clone(),
            private: self.host.private,
            always_up2date: self.host.always_up2date,
            urls: self.host.urls.iter().map(|(u, _)| u.clone()).collect(),
            state: HostState::Ok,
            duration_s: 0.0,
            crawled_at,
            repos: Vec::new(),
        };
        if self.host.always_up2date {
            out.repos = self
                .targets
                .iter()
                .map(|t| MirrorRepo {
                    path: t.path.clone(),
                    status: RepoStatus::Up2date,
                    sha256: Some(t.current.clone()),
                    url: url_of(t),
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
            let probe_deadline = Instant::now() + self.timeout.min(Duration::from_secs(5));
            let answered = match (self.targets.first(), scheme) {
                (None, _) => true,
                (Some(t), Scheme::Http | Scheme::Https) => {
                    http::get(&agent, &url_of(t), None, 1, probe_deadline).answered()
                }
                (Some(_), Scheme::File) => dir_there(),
                // Listed only (as an `extra`): nothing is downloaded.
                (Some(t), Scheme::Rsync) => crate::rsync::check(
                    &base,
                    &[],
                    std::slice::from_ref(&t.metadata),
                    &BTreeMap::new(),
                    probe_deadline,
                )
                .is_ok(),
            };
            if !answered {
                self.record.urls = previous;
                self.record.failures += 1;
                log::info!("{}: disabled; the probe got no answer", self.host.name);
                out.state = HostState::Disabled;
                out.repos = self.unknown(&url_of, "host disabled: probe got no answer");
                out.duration_s = started.elapsed().as_secs_f64();
                return (out, self.record);
            }
            log::info!("{}: answers again: enabled", self.host.name);
        }

        let fetched: Vec<HostAnswer> = match scheme {
            Scheme::Rsync => {
                let files: Vec<String> = self.targets.iter().map(|t| t.metadata.clone()).collect();
                let prev: BTreeMap<String, _> = self
                    .targets
                    .iter()
                    .filter_map(|t| {
                        previous
                            .get(&url_of(t))
                            .map(|v| (t.metadata.clone(), v.clone()))
                    })
                    .collect();
                let extra: Vec<String> = self
                    .targets
                    .iter()
                    .flat_map(|t| t.sample.iter().map(|f| f.rel.clone()))
                    .collect();
                match crate::rsync::check(&base, &files, &extra, &prev, deadline) {
                    Ok((mut m, listing)) => files
                        .iter()
                        .zip(self.targets)
                        .map(|(f, t)| {
                            let got = m
                                .remove(f)
                                .unwrap_or(Fetched::NoAnswer("not checked".into()));
                            let problems = if is_current(t, &got, previous.get(&url_of(t))) {
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
            Scheme::File if !dir_there() => self
                .targets
                .iter()
                .map(|_| {
                    (
                        Fetched::NoAnswer("base directory not there".into()),
                        Vec::new(),
                    )
                })
                .collect(),
            Scheme::File => self
                .targets
                .iter()
                .map(|t| {
                    let f = http::read_file(&file_path(&url_of(t)), cap(t.kind));
                    let problems = if is_current(t, &f, None) {
                        deep::local(&base_dir, &t.sample)
                    } else {
                        Vec::new()
                    };
                    (f, problems)
                })
                .collect(),
            Scheme::Http | Scheme::Https => {
                // Two workers share the host's agent: at most two requests
                // in flight to this host.
                let next = AtomicUsize::new(0);
                let slots: Vec<Mutex<Option<HostAnswer>>> =
                    self.targets.iter().map(|_| Mutex::new(None)).collect();
                std::thread::scope(|s| {
                    let work = || loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(t) = self.targets.get(i) else { break };
                        let url = url_of(t);
                        let f = http::get(&agent, &url, previous.get(&url), cap(t.kind), deadline);
                        let problems = if is_current(t, &f, previous.get(&url)) {
                            deep::http(&agent, &base, &t.sample, deadline)
                        } else {
                            Vec::new()
                        };
                        *slots[i].lock().unwrap() = Some((f, problems));
                    };
                    s.spawn(work);
                    work();
                });
                slots
                    .into_iter()
                    .map(|m| m.into_inner().unwrap().expect("every repo fetched"))
                    .collect()
            }
        };

        let answered = fetched.iter().any(|(f, _)| f.answered()) || self.targets.is_empty();
        for (t, (f, problems)) in self.targets.iter().zip(fetched) {
            let url = url_of(t);
            let mut repo = self.verdict(t, url, f, &previous);
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

    fn unknown(&self, url_of: &dyn Fn(&Target) -> String, why: &str) -> Vec<MirrorRepo> {
        self.targets
            .iter()
            .map(|t| MirrorRepo {
                path: t.path.clone(),
                status: RepoStatus::Unknown,
                sha256: None,
                url: url_of(t),
                detail: Some(why.to_string()),
            })
            .collect()
    }

    /// Turns an answer into a verdict, remembering validators for the next
    /// crawl in `self.record.urls` (emptied at the start of the crawl):
    /// new ones from a body, the previous ones when the answer said nothing
    /// new, none for a missing file.
    fn verdict(
        &mut self,
        t: &Target,
        url: String,
        f: Fetched,
        previous: &BTreeMap<String, crate::state::Validators>,
    ) -> MirrorRepo {
        if !matches!(f, Fetched::Body(_) | Fetched::Missing(_)) {
            if let Some(v) = previous.get(&url) {
                self.record.urls.insert(url.clone(), v.clone());
            }
        }
        let (sha256, detail) = match f {
            Fetched::Body(v) => {
                let sha = v.sha256.clone();
                if v.etag.is_some() || v.last_modified.is_some() {
                    self.record.urls.insert(url.clone(), v);
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
            Fetched::TooLarge(cap) => {
                (None, Some(format!("body larger than {cap} bytes: cut off")))
            }
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
}

/// `--deep`: whether the mirror's metadata file is the master's current
/// one (only such a copy is worth sampling), with a sample to check.
fn is_current(t: &Target, f: &Fetched, previous: Option<&crate::state::Validators>) -> bool {
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

/// The local path of a `file://` URL (percent-escapes are not decoded: base
/// URLs come from our own mirrors file).
fn file_path(url: &str) -> String {
    url.strip_prefix("file://").unwrap_or(url).to_string()
}
