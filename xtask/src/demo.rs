//! `cargo xtask demo`: the pipeline on the fixtures, end to end.
//!
//! For now: repo-init, rpm-compose of the fixture treefile (RPMs built by
//! `cargo xtask fixtures`), summary-gen, qcow2-build of the fixture
//! kickstart. The manifest goes to stdout and `target/demo/manifest.json`;
//! a short human summary goes to stderr.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::{deps, root, run};

pub fn run() -> anyhow::Result<()> {
    deps::ensure()?;
    crate::fixtures::build()?;
    let root = root();
    run::cargo(&root, &["build", "--workspace", "--bins"])?;
    let demo = root.join("target/demo");
    if demo.exists() {
        std::fs::remove_dir_all(&demo).context("removing the previous demo")?;
    }
    std::fs::create_dir_all(&demo)?;
    let repo = demo.join("repo");
    let repo_s = repo.to_str().context("path is not UTF-8")?;
    let bin = |name: &str| run::debug_bin(&root, name);

    // The pipeline of buildrawhide's Atomic step, as a shell would run it:
    // repo-init | rpm-compose | summary-gen.
    let treefile = root.join("fixtures/treefiles/fedora-atomic-docker-host.json");
    let cache = demo.join("cache");
    let manifest = pipe(
        Command::new(bin("repo-init")).args(["--repo", repo_s, "--mode", "archive"]),
        None,
    )?;
    let manifest = pipe(
        Command::new(bin("rpm-compose"))
            .arg("--treefile")
            .arg(&treefile)
            .arg("--cachedir")
            .arg(&cache),
        Some(&manifest),
    )?;
    let manifest = pipe(
        Command::new(bin("summary-gen")).args(["--static-deltas", "-m", "xa.title='Releng demo'"]),
        Some(&manifest),
    )?;
    let manifest = pipe(
        Command::new(bin("qcow2-build"))
            .arg("--kickstart")
            .arg(root.join("fixtures/kickstarts/fedora-cloud-atomic.ks"))
            .arg("--output-dir")
            .arg(demo.join("images")),
        Some(&manifest),
    )?;
    std::fs::write(demo.join("manifest.json"), &manifest)?;
    report(&manifest, &demo, &root)?;
    std::io::stdout().write_all(&manifest)?;
    Ok(())
}

/// Runs one pipeline step with `input` on stdin; returns its stdout.
fn pipe(cmd: &mut Command, input: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
    let name = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    eprintln!(
        "+ {name} {}",
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    if let Some(bytes) = input {
        child.stdin.take().expect("piped").write_all(bytes)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{name} failed: {}", out.status);
    }
    Ok(out.stdout)
}

fn report(manifest: &[u8], demo: &Path, root: &Path) -> anyhow::Result<()> {
    let doc: Value = serde_json::from_slice(manifest)?;
    let p = &doc["payload"];
    let rel = |s: &str| {
        Path::new(s)
            .strip_prefix(root)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| s.to_string())
    };
    let repo = &p["repo"];
    let summary = &p["summary"];
    eprintln!();
    eprintln!("Releng demo done:");
    eprintln!(
        "  repository  {} ({}, {})",
        rel(repo["path"].as_str().unwrap_or("?")),
        repo["mode"].as_str().unwrap_or("?"),
        if repo["created"] == true {
            "created"
        } else {
            "existing"
        }
    );
    for c in p["composes"].as_array().into_iter().flatten() {
        eprintln!(
            "  compose     {} packages, {} bytes of new content, took {:.2} s",
            c["packages"].as_array().map_or(0, Vec::len),
            c["stats"]["content_bytes_written"],
            c["duration_s"].as_f64().unwrap_or(0.0)
        );
    }
    for r in summary["refs"].as_array().into_iter().flatten() {
        eprintln!(
            "  ref         {} = {:.12} (version {})",
            r["name"].as_str().unwrap_or("?"),
            r["commit"].as_str().unwrap_or("?"),
            r["version"].as_str().unwrap_or("none")
        );
    }
    eprintln!(
        "  summary     {} bytes, sha256 {:.16}…, {} static delta(s), took {:.3} s",
        summary["size"],
        summary["sha256"].as_str().unwrap_or("?"),
        summary["deltas"].as_array().map_or(0, Vec::len),
        summary["duration_s"].as_f64().unwrap_or(0.0)
    );
    for i in p["images"].as_array().into_iter().flatten() {
        eprintln!(
            "  image       {} ({} bytes, {} GiB virtual, commit {:.12}), took {:.1} s",
            rel(i["path"].as_str().unwrap_or("?")),
            i["size"],
            i["virtual_size"].as_u64().unwrap_or(0) >> 30,
            i["commit"].as_str().unwrap_or("?"),
            i["duration_s"].as_f64().unwrap_or(0.0)
        );
    }
    eprintln!(
        "  manifest    {}",
        rel(demo.join("manifest.json").to_str().unwrap_or("?"))
    );
    Ok(())
}
