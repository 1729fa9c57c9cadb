//! The ostree CLI pulls through our metalinks (served and written), skips
//! a mirror whose summary was tampered with, and fails when all were.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use releng_manifest::{RepoKind, RepoStatus};
use testkit::{require, tempdir};

/// Three mirrors of one ostree repository (at `atomic/repo` under each
/// root): one faithful, two with a tampered summary of the same size that
/// a size-only crawl counts as up to date.
struct Mirrors {
    dir: tempfile::TempDir,
    _servers: Vec<testkit::http::Server>,
    good: String,
    bad1: String,
    bad2: String,
    summary: releng_manifest::MetadataFile,
}

impl Mirrors {
    fn new() -> Mirrors {
        let dir = tempdir();
        let master = ostree_repo(dir.path());
        let summary = metadata(&master.join("summary"), 1_795_000_000);
        let mut servers = Vec::new();
        let mut urls = Vec::new();
        for (name, bad) in [("good", false), ("bad1", true), ("bad2", true)] {
            let root = dir.path().join(name);
            copy_dir(&master, &root.join("atomic/repo"));
            if bad {
                tamper(&root.join("atomic/repo/summary"));
            }
            let (p, url) = http_server(&root);
            servers.push(p);
            urls.push(url);
        }
        Mirrors {
            dir,
            _servers: servers,
            good: urls[0].clone(),
            bad1: urls[1].clone(),
            bad2: urls[2].clone(),
            summary,
        }
    }

    /// A manifest listing `hosts` (name, URL, inside 127.0.0.0/8 so first
    /// for a local client); every host is "up to date".
    fn manifest(&self, name: &str, hosts: &[(&str, &str, bool)]) -> std::path::PathBuf {
        let repo = scan_repo(
            "atomic/repo",
            RepoKind::Ostree,
            "fedora-atomic",
            self.summary.clone(),
        );
        let hosts = hosts
            .iter()
            .map(|(n, url, local)| {
                let mut h = mirror(n, url, &[("atomic/repo", RepoStatus::Up2date)]);
                if *local {
                    h.netblocks = vec!["127.0.0.0/8".into()];
                }
                h
            })
            .collect();
        let path = self.dir.path().join(name);
        fs::write(&path, manifest(vec![repo], hosts)).unwrap();
        path
    }

    /// `ostree pull` into a fresh repository through `metalink_url`.
    fn pull(&self, metalink_url: &str) -> testkit::Run {
        let local = tempdir();
        let repo = local.path().join("local");
        let r = repo.to_str().unwrap();
        testkit::ostree(&["init", "--repo", r, "--mode=archive"]);
        testkit::ostree(&[
            "remote",
            "add",
            "--repo",
            r,
            "--no-gpg-verify",
            "mirrors",
            &format!("metalink={metalink_url}"),
        ]);
        let run = testkit::run(
            Command::new("ostree").args(["pull", "--repo", r, "mirrors", REF]),
            None,
        );
        if run.code == 0 {
            // The pulled commit is really there and intact.
            testkit::ostree(&["fsck", "--repo", r]);
            assert!(testkit::ostree(&["refs", "--repo", r]).contains(REF));
        }
        run
    }
}

const QUERY: &str = "/metalink?repo=fedora-atomic&arch=x86_64";

#[test]
fn ostree_pulls_through_served_metalinks() {
    require!("ostree");
    require!("python3");
    let m = Mirrors::new();

    let only_good = m.manifest("good.json", &[("good", &m.good, false)]);
    let serve = Serve::start(&only_good);
    let r = m.pull(&format!("{}{QUERY}", serve.base));
    assert_eq!(r.code, 0, "pull from the good mirror failed:\n{}", r.stderr);
    // The directory and file forms of path= answer the same repository.
    let r = m.pull(&format!("{}/metalink?path=atomic/repo/summary", serve.base));
    assert_eq!(r.code, 0, "path= pull failed:\n{}", r.stderr);
    drop(serve);

    // The tampered mirror is first (the client's netblock), the good one
    // second: ostree verifies the summary and moves on.
    let mixed = m.manifest(
        "mixed.json",
        &[("good", &m.good, false), ("bad1", &m.bad1, true)],
    );
    let serve = Serve::start(&mixed);
    let doc = get(&serve.base, QUERY, &[]);
    let first = doc.body.find(&m.bad1).expect("tampered mirror listed");
    let second = doc.body.find(&m.good).expect("good mirror listed");
    assert!(first < second, "tampered mirror not first:\n{}", doc.body);
    let r = m.pull(&format!("{}{QUERY}", serve.base));
    assert_eq!(
        r.code, 0,
        "pull with a tampered first mirror failed:\n{}",
        r.stderr
    );
    drop(serve);

    let all_bad = m.manifest(
        "bad.json",
        &[("bad1", &m.bad1, true), ("bad2", &m.bad2, false)],
    );
    let serve = Serve::start(&all_bad);
    let r = m.pull(&format!("{}{QUERY}", serve.base));
    assert_ne!(r.code, 0, "pull succeeded with every summary tampered");
    assert!(
        r.stderr.contains("Exhausted") || r.stderr.contains("checksum"),
        "unexpected failure: {}",
        r.stderr
    );
    eprintln!("all tampered: {}", r.stderr.trim());
}

#[test]
fn ostree_pulls_through_a_written_metalink_file() {
    require!("ostree");
    require!("python3");
    let m = Mirrors::new();
    let out = m.dir.path().join("out");
    let mixed = m.manifest(
        "mixed.json",
        &[("good", &m.good, false), ("bad1", &m.bad1, true)],
    );
    let run = testkit::tool(
        "metalink-emit",
        &[
            "--manifest",
            mixed.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
            "--ip",
            "127.0.0.1",
            "--seed",
            "3",
        ],
        None,
    )
    .ok();
    let file = out.join("fedora-atomic.x86_64.metalink");
    let listed = run.json()["payload"]["metalinks"][0]["path"].clone();
    assert_eq!(listed, file.to_str().unwrap());
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.find(&m.bad1).unwrap() < text.find(&m.good).unwrap());
    assert!(!text.contains("mm0:private"));

    // Through file://, as ostree reads a local metalink, and through a
    // plain static web server, as a mirror network publishes them.
    let r = m.pull(&format!("file://{}", file.display()));
    assert_eq!(r.code, 0, "pull through file:// failed:\n{}", r.stderr);
    let (_p, url) = http_server(&out);
    let r = m.pull(&format!("{url}/fedora-atomic.x86_64.metalink"));
    assert_eq!(
        r.code, 0,
        "pull through the served file failed:\n{}",
        r.stderr
    );
}
