//! buildrawhide and buildbranched end to end on the fixtures, every
//! artifact checked with a real client.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{checksum_verifies, is_root, manifest, steps, Root, DATE};
use serde_json::Value;
use testkit::http::{free_port, static_server, Server};
use testkit::{assert_valid_manifest, ostree, qemu, require, run, tempdir};

const REF: &str = "fedora-atomic/rawhide/x86_64/docker-host";
const STEPS: [&str; 10] = [
    "repo-init",
    "rpm-compose",
    "summary-gen",
    "publish-atomic",
    "images",
    "checksum",
    "publish-tree",
    "mm-crawl-scan",
    "mm-crawl-mirrors",
    "metalink-emit",
];

/// An rsync that, after each pass, checks that every commit the
/// destination's summary and refs name can be pulled from it whole into a
/// fresh repository, and writes a line to `violations` when one cannot.
/// Publishing a summary or ref before its objects makes that file
/// non-empty. Every call is also listed in `calls`, so a script that stops
/// using `$RSYNC` cannot pass by not being checked.
fn checking_rsync(dir: &Path, violations: &Path, calls: &Path) -> std::path::PathBuf {
    let path = dir.join("rsync-checked");
    let script = format!(
        r#"#!/bin/bash
set -u
echo "$*" >> {calls}
rsync "$@" || exit $?
dest="${{@: -1}}"
dest="${{dest%/}}"
commits=()
if [[ -f $dest/summary ]]; then
    mapfile -t commits < <(ostree --repo="$dest" summary --view | grep -A1 'Latest Commit' | grep -Eo '[0-9a-f]{{64}}')
fi
if [[ -d $dest/refs/heads ]]; then
    while read -r f; do commits+=("$(cat "$f")"); done < <(find "$dest/refs/heads" -type f)
fi
[[ ${{#commits[@]}} -gt 0 ]] || exit 0
client=$(mktemp -d)
ostree init --repo="$client" --mode=archive
for c in "${{commits[@]}}"; do
    ostree --repo="$client" pull-local --untrusted "$dest" "$c" >/dev/null 2>&1 ||
        echo "after rsync $*: $c is named but not complete" >> {violations}
done
rm -rf "$client"
exit 0
"#,
        violations = violations.display(),
        calls = calls.display()
    );
    fs::write(&path, script).unwrap();
    run(Command::new("chmod").arg("+x").arg(&path), None);
    path
}

fn scan_repo<'a>(doc: &'a Value, kind: &str) -> &'a Value {
    doc["payload"]["scan"]["repos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind)
        .unwrap_or_else(|| panic!("scan found no {kind} repo: {}", doc["payload"]["scan"]))
}

/// `ostree pull` of the published tree through a metalink served by
/// `metalink-emit serve`; returns the pulled commit.
fn pull_through_metalink(serve: &Server, repo: &Value) -> String {
    let client = tempdir();
    let c = client.path().to_str().unwrap();
    ostree(&["init", &format!("--repo={c}"), "--mode=archive"]);
    let url = format!(
        "metalink={}/metalink?repo={}&arch={}",
        serve.url(),
        repo["prefix"].as_str().unwrap(),
        repo["arch"].as_str().unwrap()
    );
    ostree(&[
        "remote",
        "add",
        &format!("--repo={c}"),
        "--no-gpg-verify",
        "nightly",
        &url,
    ]);
    ostree(&["pull", &format!("--repo={c}"), "nightly", REF]);
    ostree(&[
        "rev-parse",
        &format!("--repo={c}"),
        &format!("nightly:{REF}"),
    ])
    .trim()
    .to_string()
}

/// librepo (dnf's downloader) fetching and verifying repomd.xml through a
/// served metalink.
fn librepo_fetch(serve: &Server, repo: &Value) -> Result<(), String> {
    let dest = tempdir();
    let url = format!(
        "{}/metalink?repo={}&arch={}",
        serve.url(),
        repo["prefix"].as_str().unwrap(),
        repo["arch"].as_str().unwrap()
    );
    let script = "import librepo, sys\n\
        h = librepo.Handle()\n\
        h.repotype = librepo.YUMREPO\n\
        h.metalinkurl = sys.argv[1]\n\
        h.destdir = sys.argv[2]\n\
        h.yumdlist = []\n\
        h.perform(librepo.Result())\n";
    let r = run(
        Command::new("/usr/bin/python3")
            .args(["-c", script, &url])
            .arg(dest.path()),
        None,
    );
    if r.code != 0 {
        return Err(r.stderr);
    }
    if !dest.path().join("repodata/repomd.xml").is_file() {
        return Err("librepo fetched no repomd.xml".into());
    }
    Ok(())
}

#[test]
fn buildrawhide_runs_end_to_end_and_a_rerun_makes_no_commit() {
    require!("ostree");
    require!("rsync");
    require!("jq");
    require!("python3");
    let root = Root::new();
    root.mash_rawhide(DATE);
    let pubdir = root.join("pub/fedora/linux");
    fs::create_dir_all(&pubdir).unwrap();
    // The master tree on HTTP, and one mirror of it (the master itself).
    let http = static_server(&pubdir);
    let mirrors = root.join("mirrors.toml");
    fs::write(
        &mirrors,
        format!(
            "[[host]]\nname = \"mirror.example.org\"\ncountry = \"DE\"\ncontinent = \"EU\"\nurls = [\"{}/\"]\n",
            http.url()
        ),
    )
    .unwrap();
    let atomic_url = format!("{}/atomic/rawhide/", http.url());
    let violations = root.join("violations");
    let calls = root.join("rsync-calls");
    let rsync = checking_rsync(root.path(), &violations, &calls);
    let events = root.join("events.jsonl");
    let notify = format!("cat >> {}", events.display());
    let env = [
        ("MIRRORS", mirrors.to_str().unwrap()),
        ("ATOMICURL", atomic_url.as_str()),
        ("RSYNC", rsync.to_str().unwrap()),
    ];
    let first = root.script("buildrawhide", &["--notify", &notify, DATE], &env);
    assert_eq!(first.code, 0, "buildrawhide failed:\n{}", first.stderr);

    let logdir = root.join(&format!("mnt/koji/mash/rawhide-{DATE}/logs"));
    assert!(logdir.join("start").is_file() && logdir.join("finish").is_file());
    for step in STEPS {
        assert!(
            logdir.join(format!("{step}.log")).is_file(),
            "no log for {step}"
        );
    }
    let doc = manifest(&logdir.join("manifest.json"));
    assert_valid_manifest(&doc);
    let names: Vec<String> = steps(&doc).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, STEPS);

    // One event per step start and end, framed by start and complete.
    let events: Vec<Value> = fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let mut want = vec!["start".to_string()];
    for s in STEPS {
        want.push(format!("{s}.start"));
        want.push(format!("{s}.complete"));
    }
    want.push("complete".into());
    assert_eq!(kinds, want);
    assert_eq!(
        events[0]["topic"],
        "org.fedoraproject.production.compose.rawhide.start"
    );

    // The published ostree repo: fsck-clean, its summary naming the commit,
    // and never, during publication, a summary or ref ahead of its objects.
    let dest = root.join("pub/fedora/linux/atomic/rawhide");
    let d = format!("--repo={}", dest.display());
    ostree(&["fsck", &d]);
    let commit = doc["payload"]["composes"][0]["commit"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ostree(&["summary", "--view", &d]).contains(&commit));
    assert_eq!(
        fs::read_to_string(&violations).unwrap_or_default(),
        "",
        "the published repo named objects it lacked"
    );
    let atomic_passes = fs::read_to_string(&calls)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("atomic/rawhide"))
        .count();
    assert_eq!(atomic_passes, 4, "publish-atomic runs four checked passes");

    // The mash tree went out too, and the scan found both kinds of repo.
    assert!(pubdir
        .join("development/rawhide/x86_64/os/repodata/repomd.xml")
        .is_file());
    let ostree_repo = scan_repo(&doc, "ostree");
    assert_eq!(ostree_repo["path"], "atomic/rawhide");
    assert_eq!(ostree_repo["arch"], "x86_64");
    let yum_repo = scan_repo(&doc, "yum");
    assert_eq!(yum_repo["path"], "development/rawhide/x86_64/os");
    let hosts = doc["payload"]["mirrors"]["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let seen = hosts[0]["repos"].as_array().unwrap();
    assert_eq!(seen.len(), 2, "both repos crawled: {seen:?}");
    assert!(seen.iter().all(|r| r["status"] == "up2date"), "{seen:?}");
    let metalinks = doc["payload"]["metalinks"].as_array().unwrap();
    assert!(!metalinks.is_empty());
    for m in metalinks {
        assert!(Path::new(m["path"].as_str().unwrap()).is_file());
    }

    // Real clients through `metalink-emit serve` on the saved manifest.
    let port = free_port();
    let mut cmd = Command::new(testkit::bin("metalink-emit"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--manifest")
        .arg(root.join("srv/mirrorlist/manifest.json"));
    let serve = Server::start(cmd, port);
    assert_eq!(pull_through_metalink(&serve, ostree_repo), commit);
    if Path::new("/usr/bin/python3").is_file()
        && Command::new("/usr/bin/python3")
            .args(["-c", "import librepo"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    {
        librepo_fetch(&serve, yum_repo).unwrap();
    } else {
        eprintln!("SKIPPED librepo check: python3-librepo is not installed");
    }

    // The images, when this run may build them.
    let imagedir = root.join(&format!(
        "mnt/koji/mash/rawhide-{DATE}/rawhide/Cloud/x86_64/Images"
    ));
    if is_root() {
        assert!(checksum_verifies(&imagedir), "CHECKSUM does not verify");
        let image = &doc["payload"]["images"][0];
        let qcow2 = Path::new(image["path"].as_str().unwrap());
        assert!(qcow2.starts_with(&imagedir));
        let check = run(Command::new("qemu-img").arg("check").arg(qcow2), None);
        assert!(String::from_utf8_lossy(&check.stdout).contains("No errors"));
        // Published beside the tree, CHECKSUM and all.
        let published = pubdir.join("development/rawhide/Cloud/x86_64/Images");
        assert!(checksum_verifies(&published));
        if testkit::have("qemu-system-x86_64") {
            match qemu::boot_uefi(qcow2, root.path(), Duration::from_secs(120)) {
                Ok(serial) => {
                    let marker = qemu::marker_line(&serial).unwrap_or("");
                    assert!(
                        marker.contains("RELENG-BOOT-OK") && marker.contains(&commit),
                        "no boot marker naming {commit}:\n{}",
                        qemu::tail(&serial)
                    );
                }
                Err(why) => eprintln!("SKIPPED boot check: {why}"),
            }
        } else {
            eprintln!("SKIPPED boot check: qemu-system-x86_64 is not installed");
        }
    } else {
        eprintln!("SKIPPED image checks: qcow2-build needs root (ran with IMAGES=0)");
    }
    let first_s: f64 = steps_total(&doc);

    // Same inputs again: no new commit, the images stand, and it is quicker.
    fs::remove_file(&violations).ok();
    let second = root.script("buildrawhide", &[DATE], &env);
    assert_eq!(second.code, 0, "rerun failed:\n{}", second.stderr);
    let doc2 = manifest(&logdir.join("manifest.json"));
    let last = doc2["payload"]["composes"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    assert_eq!(last["changed"], false);
    assert_eq!(last["commit"], commit.as_str());
    let st: Vec<(String, String)> = steps(&doc2);
    let rerun: Vec<&(String, String)> = st.iter().skip(STEPS.len()).collect();
    let status = |steps: &[&(String, String)], name: &str| {
        steps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    };
    if is_root() {
        let first: Vec<&(String, String)> = st.iter().take(STEPS.len()).collect();
        assert_eq!(status(&first, "images"), "complete");
        assert_eq!(status(&rerun, "images"), "skipped");
        assert_eq!(status(&rerun, "checksum"), "skipped");
        let log = fs::read_to_string(logdir.join("images.log")).unwrap();
        assert!(log.contains("no new commit"), "{log}");
    }
    let second_s = steps_total(&doc2) - first_s;
    if is_root() {
        assert!(
            second_s < first_s,
            "rerun took {second_s:.1} s, first run {first_s:.1} s"
        );
    }
    assert_eq!(fs::read_to_string(&violations).unwrap_or_default(), "");
    drop(http);
}

fn steps_total(doc: &Value) -> f64 {
    doc["payload"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["duration_s"].as_f64().unwrap())
        .sum()
}

#[test]
fn a_broken_treefile_stops_the_script_at_rpm_compose() {
    require!("jq");
    let root = Root::new();
    let treefile = root.join("broken.json");
    fs::write(&treefile, r#"{"ref": "a/b", "packages": "not-a-list"}"#).unwrap();
    let r = root.script(
        "buildrawhide",
        &[DATE],
        &[("TREEFILE", treefile.to_str().unwrap()), ("IMAGES", "0")],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let log = root.join(&format!(
        "mnt/koji/mash/rawhide-{DATE}/logs/rpm-compose.log"
    ));
    let last = r.stderr.lines().last().unwrap_or("");
    assert!(
        last.contains("step rpm-compose failed") && last.contains(log.to_str().unwrap()),
        "{last}"
    );
    assert!(fs::read_to_string(&log).unwrap().contains("packages"));
    assert!(!root
        .join(&format!("mnt/koji/mash/rawhide-{DATE}/logs/finish"))
        .exists());
    // Nothing was published.
    assert!(!root
        .join("pub/fedora/linux/atomic/rawhide/summary")
        .exists());
}

#[test]
fn bad_arguments_are_usage_errors() {
    let root = Root::new();
    for (script, args, env) in [
        ("buildrawhide", vec!["yesterday"], vec![]),
        ("buildrawhide", vec![DATE, "x86 64"], vec![]),
        ("buildrawhide", vec![DATE, "x86_64", "prod"], vec![]),
        ("buildrawhide", vec!["--bogus", DATE], vec![]),
        ("buildbranched", vec![DATE], vec![]),
        ("buildbranched", vec![DATE], vec![("BRANCHED", "f45")]),
        ("run-pungi", vec!["45", "RC1"], vec![]),
        ("run-pungi", vec!["rawhide", "RC1", DATE], vec![]),
    ] {
        let r = root.script(script, &args, &env);
        assert_eq!(r.code, 2, "{script} {args:?}: {}", r.stderr);
        assert!(!r.stderr.is_empty());
    }
    let help = root.script("buildrawhide", &["--help"], &[]);
    assert_eq!(help.code, 0);
    assert!(String::from_utf8_lossy(&help.stdout).contains("DATE [ARCH] [ENVIRONMENT]"));
}

#[test]
fn buildbranched_composes_the_branched_release() {
    require!("jq");
    require!("rsync");
    let root = Root::new();
    let r = root.script(
        "buildbranched",
        &[DATE],
        &[("BRANCHED", "45"), ("IMAGES", "0")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let logdir = root.join(&format!("mnt/koji/mash/branched-{DATE}/logs"));
    assert!(logdir.join("finish").is_file());
    let dest = root.join("pub/fedora/linux/atomic/45");
    ostree(&["fsck", &format!("--repo={}", dest.display())]);
    let doc = manifest(&logdir.join("manifest.json"));
    assert_eq!(
        doc["payload"]["repo"]["path"],
        root.join("mnt/koji/mash/atomic/45").to_str().unwrap()
    );
    assert_eq!(scan_repo(&doc, "ostree")["path"], "atomic/45");
}
