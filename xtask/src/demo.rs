//! `cargo xtask demo`: the whole job end to end on the fixtures.
//!
//! `scripts/buildrawhide` under a private RELENG_ROOT in `target/demo/`
//! (compose, summary, publication, cloud image, CHECKSUM, mirror scan and
//! crawl, metalinks), then the published tree is checked the way users
//! meet it: `metalink-emit serve` and a static HTTP server on 127.0.0.1,
//! `ostree pull` through the served metalink, and the image booted under
//! qemu when qemu is there. The manifest goes to stdout; a short human
//! summary to stderr.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use testkit::http::{free_port, static_server, Server};

use crate::{deps, root, run};

const DATE: &str = "20261127";
const REF: &str = "fedora-atomic/rawhide/x86_64/docker-host";

pub fn run() -> anyhow::Result<()> {
    deps::ensure()?;
    crate::fixtures::build()?;
    let root = root();
    run::cargo(&root, &["build", "--workspace", "--bins"])?;
    let demo = root.join("target/demo");
    if demo.exists() {
        // ostree marks deployments immutable; qcow2-build cleans up its
        // own, so a plain removal is enough here.
        fs::remove_dir_all(&demo).context("removing the previous demo")?;
    }
    let relroot = demo.join("root");
    let pubdir = relroot.join("pub/fedora/linux");
    fs::create_dir_all(&pubdir)?;

    // What mash would have left: the fixture RPM repository as rawhide.
    let os = relroot.join(format!("mnt/koji/mash/rawhide-{DATE}/rawhide/x86_64/os"));
    fs::create_dir_all(&os)?;
    run::status(
        Command::new("cp")
            .arg("-a")
            .arg(root.join("target/fixtures/repo/."))
            .arg(&os),
    )?;

    // The published tree on HTTP, and a mirrors file naming it.
    let http = static_server(&pubdir);
    let mirrors = demo.join("mirrors.toml");
    fs::write(
        &mirrors,
        format!(
            "# The demo's one mirror: the published tree itself.\n\
             [[host]]\nname = \"mirror.demo.test\"\ncountry = \"DE\"\ncontinent = \"EU\"\n\
             urls = [\"{}/\"]\n",
            http.url()
        ),
    )?;
    let is_root = testkit::is_root();
    let bin_dir = run::debug_bin(&root, "repo-init")
        .parent()
        .context("binary directory")?
        .to_path_buf();
    eprintln!("+ scripts/buildrawhide {DATE}");
    let mut cmd = Command::new(root.join("scripts/buildrawhide"));
    cmd.arg(DATE)
        .env("RELENG_ROOT", &relroot)
        .env("RELENG_BIN", &bin_dir)
        .env(
            "TREEFILE",
            root.join("fixtures/treefiles/fedora-atomic-docker-host.json"),
        )
        .env(
            "KICKSTART",
            root.join("fixtures/kickstarts/fedora-cloud-atomic.ks"),
        )
        .env("MIRRORS", &mirrors)
        .env("ATOMICURL", format!("{}/atomic/rawhide/", http.url()));
    if !is_root {
        eprintln!("xtask: not root: the cloud image is skipped (qcow2-build needs root)");
        cmd.env("IMAGES", "0");
    }
    run::status(&mut cmd).context("scripts/buildrawhide failed")?;
    let logdir = relroot.join(format!("mnt/koji/mash/rawhide-{DATE}/logs"));
    let manifest = fs::read(logdir.join("manifest.json"))?;
    let doc: Value = serde_json::from_slice(&manifest)?;

    // A client: ostree pull through the metalink `serve` hands out.
    let port = free_port();
    let mut serve_cmd = Command::new(run::debug_bin(&root, "metalink-emit"));
    serve_cmd
        .args(["serve", "-q", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--manifest")
        .arg(relroot.join("srv/mirrorlist/manifest.json"));
    let serve = Server::start(serve_cmd, port);
    let pulled = pull(&serve, &doc, &demo)?;
    let boot = boot(&doc, &demo, is_root);
    drop(serve);
    drop(http);

    report(&doc, &demo, &root, &pulled, &boot)?;
    std::io::stdout().write_all(&manifest)?;
    Ok(())
}

/// `ostree pull` of the ref through the served metalink into a fresh
/// client repo; returns the commit pulled.
fn pull(serve: &Server, doc: &Value, demo: &Path) -> anyhow::Result<String> {
    let repo = doc["payload"]["scan"]["repos"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["kind"] == "ostree"))
        .context("the scan found no ostree repository")?;
    let client = demo.join("client");
    let c = format!("--repo={}", client.display());
    let url = format!(
        "metalink={}/metalink?repo={}&arch={}",
        serve.url(),
        repo["prefix"].as_str().unwrap_or_default(),
        repo["arch"].as_str().unwrap_or_default()
    );
    eprintln!("+ ostree pull through {}", &url["metalink=".len()..]);
    run::status(Command::new("ostree").args(["init", &c, "--mode=archive"]))?;
    run::status(Command::new("ostree").args([
        "remote",
        "add",
        &c,
        "--no-gpg-verify",
        "demo",
        &url,
    ]))?;
    run::status(Command::new("ostree").args(["pull", &c, "demo", REF]))?;
    let out = run::output(Command::new("ostree").args(["rev-parse", &c, &format!("demo:{REF}")]))?;
    let commit = String::from_utf8_lossy(&out).trim().to_string();
    let want = doc["payload"]["composes"][0]["commit"]
        .as_str()
        .unwrap_or_default();
    if commit != want {
        bail!("pulled {commit} through the metalink, composed {want}");
    }
    Ok(commit)
}

/// Boots the image under qemu; a line for the report.
fn boot(doc: &Value, demo: &Path, is_root: bool) -> String {
    let Some(image) = doc["payload"]["images"][0]["path"].as_str() else {
        return if is_root {
            "no image in the manifest".into()
        } else {
            "skipped: no image (not root)".into()
        };
    };
    if !testkit::have("qemu-system-x86_64") {
        return "skipped: qemu-system-x86_64 is not installed".into();
    }
    eprintln!("+ qemu boot of {image} (OVMF, TCG)");
    match testkit::qemu::boot_uefi(Path::new(image), demo, Duration::from_secs(180)) {
        Ok(serial) => match testkit::qemu::marker_line(&serial) {
            Some(line) => line.trim().to_string(),
            None => "FAILED: no boot marker on the serial console".into(),
        },
        Err(why) => format!("skipped: {why}"),
    }
}

fn report(doc: &Value, demo: &Path, root: &Path, pulled: &str, boot: &str) -> anyhow::Result<()> {
    let p = &doc["payload"];
    let rel = |s: &str| {
        Path::new(s)
            .strip_prefix(root)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| s.to_string())
    };
    eprintln!();
    eprintln!("Releng demo: scripts/buildrawhide {DATE} under target/demo/root");
    eprintln!("  steps:");
    for s in p["steps"].as_array().into_iter().flatten() {
        eprintln!(
            "    {:<18} {:>7.2} s  {}",
            s["name"].as_str().unwrap_or("?"),
            s["duration_s"].as_f64().unwrap_or(0.0),
            if s["status"] == "skipped" {
                "(skipped)"
            } else {
                ""
            }
        );
    }
    for c in p["composes"].as_array().into_iter().flatten() {
        eprintln!(
            "  compose      {} = {:.12}, {} packages, {} bytes of new content",
            c["ref"].as_str().unwrap_or("?"),
            c["commit"].as_str().unwrap_or("?"),
            c["packages"].as_array().map_or(0, Vec::len),
            c["stats"]["content_bytes_written"],
        );
    }
    eprintln!(
        "  summary      {} bytes, sha256 {:.16}…",
        p["summary"]["size"],
        p["summary"]["sha256"].as_str().unwrap_or("?"),
    );
    for i in p["images"].as_array().into_iter().flatten() {
        eprintln!(
            "  image        {} ({} MB, {} GiB disk)",
            rel(i["path"].as_str().unwrap_or("?")),
            i["size"].as_u64().unwrap_or(0) / 1_000_000,
            i["virtual_size"].as_u64().unwrap_or(0) >> 30,
        );
    }
    for r in p["scan"]["repos"].as_array().into_iter().flatten() {
        eprintln!(
            "  scanned      {} repo {} (repo={} arch={})",
            r["kind"].as_str().unwrap_or("?"),
            r["path"].as_str().unwrap_or("?"),
            r["prefix"].as_str().unwrap_or("?"),
            r["arch"].as_str().unwrap_or("?"),
        );
    }
    for m in p["metalinks"].as_array().into_iter().flatten() {
        eprintln!(
            "  metalink     {} ({} URLs)",
            rel(m["path"].as_str().unwrap_or("?")),
            m["urls"]
        );
    }
    eprintln!("  ostree pull  through the served metalink: {pulled:.12} ✓");
    eprintln!("  boot         {boot}");
    eprintln!(
        "  published    {}",
        rel(demo.join("root/pub/fedora/linux").to_str().unwrap_or("?"))
    );
    eprintln!(
        "  manifest     {}",
        rel(demo
            .join(format!(
                "root/mnt/koji/mash/rawhide-{DATE}/logs/manifest.json"
            ))
            .to_str()
            .unwrap_or("?"))
    );
    if boot.starts_with("FAILED") {
        bail!("the image did not boot");
    }
    Ok(())
}
