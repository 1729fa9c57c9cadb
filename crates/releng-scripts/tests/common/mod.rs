//! What the script tests share: a temporary RELENG_ROOT holding the
//! fixture inputs, and a way to run a script in it.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use testkit::{fixtures, run, source_fixtures, tempdir, Run};

pub const DATE: &str = "20261127";

pub use testkit::is_root;

/// A temporary RELENG_ROOT.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Root {
        Root { dir: tempdir() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `path` under the root (`rel` without a leading slash).
    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Places the fixture yum repository where mash leaves rawhide.
    pub fn mash_rawhide(&self, date: &str) -> PathBuf {
        let os = self.join(&format!("mnt/koji/mash/rawhide-{date}/rawhide/x86_64/os"));
        fs::create_dir_all(&os).unwrap();
        let r = run(
            Command::new("cp")
                .arg("-a")
                .arg(fixtures().join("repo/."))
                .arg(&os),
            None,
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        os
    }

    /// A script run with the fixture inputs; `env` adds or overrides.
    pub fn script(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let bin_dir = testkit::bin("repo-init").parent().unwrap().to_path_buf();
        let mut cmd = Command::new(releng_scripts::scripts_dir().join(name));
        cmd.args(args)
            .env("RELENG_ROOT", self.path())
            .env("RELENG_BIN", &bin_dir)
            .env(
                "TREEFILE",
                source_fixtures().join("treefiles/fedora-atomic-docker-host.json"),
            )
            .env(
                "KICKSTART",
                source_fixtures().join("kickstarts/fedora-cloud-atomic.ks"),
            )
            .env_remove("NOTIFY_CMD")
            .env_remove("MIRRORS")
            .env_remove("IMAGES")
            .env_remove("BRANCHED");
        if !is_root() {
            cmd.env("IMAGES", "0");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd, None)
    }
}

/// The manifest a script saved.
pub fn manifest(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// The names of the steps a manifest recorded.
pub fn steps(doc: &Value) -> Vec<(String, String)> {
    doc["payload"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// sha256sum's verdict on a CHECKSUM file in `sha256sum --tag` format.
pub fn checksum_verifies(dir: &Path) -> bool {
    Command::new("sha256sum")
        .args(["--check", "--strict", "CHECKSUM"])
        .current_dir(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
