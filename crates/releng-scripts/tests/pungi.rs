//! run-pungi: a compose directory in pungi's layout that productmd, the
//! library pungi's consumers read composes with, loads.

mod common;

use std::fs;
use std::process::Command;

use common::{checksum_verifies, is_root, manifest, Root, DATE};
use testkit::{assert_valid_manifest, ostree, require, run};

#[test]
fn run_pungi_writes_a_compose_productmd_reads() {
    require!("jq");
    require!("python3");
    let root = Root::new();
    let r = root.script("run-pungi", &["45", "RC1", DATE], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let top = root.join("srv/pungi/45RC1");
    assert_eq!(
        fs::read_to_string(top.join("COMPOSE_ID")).unwrap(),
        format!("Fedora-45-{DATE}.0\n")
    );
    assert_eq!(
        fs::read_to_string(top.join("STATUS")).unwrap(),
        "FINISHED\n"
    );
    let doc = manifest(&top.join("logs/manifest.json"));
    assert_valid_manifest(&doc);
    ostree(&[
        "fsck",
        &format!("--repo={}", top.join("compose/atomic").display()),
    ]);

    let probe = run(
        Command::new("python3").args(["-c", "import productmd"]),
        None,
    );
    if probe.code != 0 {
        eprintln!("SKIPPED productmd check: python3 module productmd is not installed");
        return;
    }
    let script = "import sys, productmd.compose as c\n\
        x = c.Compose(sys.argv[1])\n\
        print(x.info.compose.id)\n\
        print(x.info.release.version)\n\
        for v, arches in x.images.images.items():\n\
        \x20   for arch, imgs in arches.items():\n\
        \x20       for i in imgs:\n\
        \x20           print(v, arch, i.path, i.size, i.mtime, i.checksums['sha256'])\n";
    let out = run(Command::new("python3").args(["-c", script]).arg(&top), None);
    assert_eq!(
        out.code, 0,
        "productmd refused the compose:\n{}",
        out.stderr
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(format!("Fedora-45-{DATE}.0").as_str()));
    assert_eq!(lines.next(), Some("45"));
    let images: Vec<&str> = lines.collect();
    if is_root() {
        let entry = &doc["payload"]["images"][0];
        let rel = format!("Cloud/x86_64/images/Fedora-Cloud-Atomic-45-{DATE}.0.x86_64.qcow2");
        assert_eq!(
            images,
            [format!(
                "Cloud x86_64 {rel} {} {} {}",
                entry["size"],
                entry["mtime"],
                entry["sha256"].as_str().unwrap()
            )]
        );
        // The mtime is the file's own, not the time the metadata was written.
        let on_disk = fs::metadata(top.join("compose").join(&rel)).unwrap();
        assert_eq!(
            entry["mtime"],
            std::os::unix::fs::MetadataExt::mtime(&on_disk)
        );
        assert!(checksum_verifies(&top.join("compose/Cloud/x86_64/images")));
    } else {
        eprintln!("SKIPPED image checks: qcow2-build needs root (ran with IMAGES=0)");
        assert!(images.is_empty());
    }
}

#[test]
fn a_failed_compose_is_doomed() {
    require!("jq");
    let root = Root::new();
    let treefile = root.join("broken.json");
    fs::write(&treefile, "{not json").unwrap();
    let r = root.script(
        "run-pungi",
        &["45", "RC2", DATE],
        &[("TREEFILE", treefile.to_str().unwrap())],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let top = root.join("srv/pungi/45RC2");
    assert_eq!(fs::read_to_string(top.join("STATUS")).unwrap(), "DOOMED\n");
    assert!(r.stderr.contains("step atomic-repo failed"));
}
