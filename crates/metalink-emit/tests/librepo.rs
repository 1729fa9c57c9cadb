//! librepo (dnf's downloader) fetches repomd.xml through our metalinks and
//! verifies it: a current mirror passes, a mirror one sync behind passes
//! through `mm0:alternates` (and fails without them), a tampered
//! repomd.xml is refused.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use releng_manifest::{MetadataFile, RepoKind, RepoStatus};
use testkit::{require, tempdir};

const SCRIPT: &str = r#"
import sys, librepo
h = librepo.Handle()
h.metalinkurl = sys.argv[1]
h.repotype = librepo.YUMREPO
h.yumdlist = []
h.checksum = True
h.destdir = sys.argv[2]
try:
    h.perform()
except librepo.LibrepoException as e:
    print("librepo refused:", e, file=sys.stderr)
    sys.exit(3)
"#;

/// A python3 that has Debian's librepo module (pyenv's may shadow the
/// system one on PATH).
fn python_with_librepo() -> Option<String> {
    ["python3", "/usr/bin/python3"]
        .iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import librepo"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
        .map(|p| p.to_string())
}

/// An empty rpm-md repository at `dir` with repomd revision `rev`.
fn yum_repo(dir: &Path, rev: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let r = testkit::run(
        Command::new("createrepo_c")
            .args(["--quiet", "--revision", rev])
            .arg(dir),
        None,
    );
    assert_eq!(r.code, 0, "createrepo_c: {}", r.stderr);
    dir.join("repodata/repomd.xml")
}

struct World {
    dir: tempfile::TempDir,
    _servers: Vec<testkit::http::Server>,
    current: String,
    behind: String,
    tampered: String,
    file: MetadataFile,
    old: MetadataFile,
}

impl World {
    fn new() -> World {
        let dir = tempdir();
        let d = dir.path();
        let old = yum_repo(&d.join("behind/fedora/x86_64/os"), "1");
        let new = yum_repo(&d.join("current/fedora/x86_64/os"), "2");
        assert_ne!(fs::read(&old).unwrap(), fs::read(&new).unwrap());
        copy_dir(&d.join("current"), &d.join("tampered"));
        tamper(&d.join("tampered/fedora/x86_64/os/repodata/repomd.xml"));
        let mut servers = Vec::new();
        let mut urls = Vec::new();
        for n in ["current", "behind", "tampered"] {
            let (p, u) = http_server(&d.join(n));
            servers.push(p);
            urls.push(u);
        }
        World {
            file: metadata(&new, 2),
            old: metadata(&old, 1),
            dir,
            _servers: servers,
            current: urls[0].clone(),
            behind: urls[1].clone(),
            tampered: urls[2].clone(),
        }
    }

    /// Writes the metalink for one mirror at `url` and returns its path.
    fn metalink(&self, name: &str, url: &str, alternates: bool) -> PathBuf {
        let mut repo = scan_repo(
            "fedora/x86_64/os",
            RepoKind::Yum,
            "fedora",
            self.file.clone(),
        );
        if alternates {
            repo.alternates = vec![self.old.clone()];
        }
        let host = mirror("m", url, &[("fedora/x86_64/os", RepoStatus::Up2date)]);
        let m = self.dir.path().join(format!("{name}.json"));
        fs::write(&m, manifest(vec![repo], vec![host])).unwrap();
        let out = self.dir.path().join(name);
        testkit::tool(
            "metalink-emit",
            &[
                "--manifest",
                m.to_str().unwrap(),
                "--output-dir",
                out.to_str().unwrap(),
            ],
            None,
        )
        .ok();
        out.join("fedora.x86_64.metalink")
    }

    fn librepo(&self, python: &str, metalink_url: &str) -> testkit::Run {
        let dest = tempdir();
        testkit::run(
            Command::new(python)
                .args(["-c", SCRIPT, metalink_url])
                .arg(dest.path()),
            None,
        )
    }
}

#[test]
fn librepo_verifies_repomd_through_metalinks() {
    require!("createrepo_c");
    require!("python3");
    let Some(python) = python_with_librepo() else {
        eprintln!(
            "SKIPPED librepo: python3-librepo is not installed (cargo xtask deps installs it)"
        );
        return;
    };
    let w = World::new();
    let url = |p: &Path| format!("file://{}", p.display());

    let current = w.metalink("current", &w.current, true);
    let r = w.librepo(&python, &url(&current));
    assert_eq!(r.code, 0, "current mirror refused: {}", r.stderr);

    let behind = w.metalink("behind", &w.behind, true);
    let r = w.librepo(&python, &url(&behind));
    assert_eq!(
        r.code, 0,
        "one-sync-behind mirror refused despite alternates: {}",
        r.stderr
    );
    let no_alt = w.metalink("no-alt", &w.behind, false);
    assert!(!fs::read_to_string(&no_alt)
        .unwrap()
        .contains("mm0:alternates"));
    let r = w.librepo(&python, &url(&no_alt));
    assert_eq!(
        r.code, 3,
        "stale repomd accepted without alternates: {}",
        r.stderr
    );

    let tampered = w.metalink("tampered", &w.tampered, true);
    let r = w.librepo(&python, &url(&tampered));
    assert_eq!(r.code, 3, "tampered repomd.xml accepted: {}", r.stderr);
}

#[test]
fn librepo_through_the_server() {
    require!("createrepo_c");
    require!("python3");
    let Some(python) = python_with_librepo() else {
        eprintln!(
            "SKIPPED librepo: python3-librepo is not installed (cargo xtask deps installs it)"
        );
        return;
    };
    let w = World::new();
    let mut repo = scan_repo("fedora/x86_64/os", RepoKind::Yum, "fedora", w.file.clone());
    repo.alternates = vec![w.old.clone()];
    // The tampered mirror first (the client's netblock), then the others.
    let mut bad = mirror(
        "bad",
        &w.tampered,
        &[("fedora/x86_64/os", RepoStatus::Up2date)],
    );
    bad.netblocks = vec!["127.0.0.0/8".into()];
    let hosts = vec![
        bad,
        mirror(
            "cur",
            &w.current,
            &[("fedora/x86_64/os", RepoStatus::Up2date)],
        ),
    ];
    let m = w.dir.path().join("serve.json");
    fs::write(&m, manifest(vec![repo], hosts)).unwrap();
    let serve = Serve::start(&m);
    let r = w.librepo(
        &python,
        &format!("{}/metalink?repo=fedora&arch=x86_64", serve.base),
    );
    assert_eq!(
        r.code, 0,
        "librepo did not move past the tampered mirror: {}",
        r.stderr
    );
    let r = w.librepo(
        &python,
        &format!(
            "{}/metalink?path=fedora/x86_64/os/repodata/repomd.xml",
            serve.base
        ),
    );
    assert_eq!(r.code, 0, "path= metalink refused: {}", r.stderr);
}
