//! repo-init as a pipeline step: the real binary, checked with the ostree CLI.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};
use testkit::{assert_valid_manifest, listing, ostree, require, tempdir, tool};

fn init(args: &[&str]) -> testkit::Run {
    tool("repo-init", args, None)
}

fn repo_arg(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn creates_an_archive_repo_that_ostree_opens() {
    require!("ostree");
    let dir = tempdir();
    let repo = dir.path().join("atomic/repo");
    let out = init(&["--repo", &repo_arg(&repo), "--mode", "archive-z2"]).ok();
    let doc = out.json();
    assert_valid_manifest(&doc);
    let section = &doc["payload"]["repo"];
    assert_eq!(section["mode"], "archive");
    assert_eq!(section["created"], true);
    assert_eq!(section["collection_id"], Value::Null);
    let path = section["path"].as_str().unwrap();
    assert!(Path::new(path).is_absolute());
    assert_eq!(Path::new(path), fs::canonicalize(&repo).unwrap());
    // The real ostree reads it, in the mode we reported.
    let config = fs::read_to_string(repo.join("config")).unwrap();
    assert!(config.contains("mode=archive-z2"), "{config}");
    ostree(&["fsck", "--repo", path]);
    assert_eq!(ostree(&["refs", "--repo", path]), "");
    // The staging directory was renamed away, not left behind.
    assert_eq!(listing(repo.parent().unwrap()), ["repo"]);
    // A served repository must be readable by others, not tempdir's 0700.
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&repo).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o055, 0o055, "mode {mode:o}");
}

#[test]
fn rerun_in_same_mode_is_a_no_op() {
    let dir = tempdir();
    let repo = repo_arg(&dir.path().join("r"));
    init(&["--repo", &repo, "--mode", "bare-user"]).ok();
    let config_before = fs::read(dir.path().join("r/config")).unwrap();
    let mtime_before = fs::metadata(dir.path().join("r/config"))
        .unwrap()
        .modified()
        .unwrap();
    let doc = init(&["--repo", &repo, "--mode", "bare-user"]).ok().json();
    assert_eq!(doc["payload"]["repo"]["created"], false);
    assert_eq!(doc["payload"]["repo"]["mode"], "bare-user");
    // Without --mode the existing mode is accepted as it is.
    let doc = init(&["--repo", &repo]).ok().json();
    assert_eq!(doc["payload"]["repo"]["mode"], "bare-user");
    assert_eq!(
        fs::read(dir.path().join("r/config")).unwrap(),
        config_before
    );
    assert_eq!(
        fs::metadata(dir.path().join("r/config"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime_before
    );
}

#[test]
fn other_mode_is_refused_naming_both_and_changes_nothing() {
    let dir = tempdir();
    let repo = repo_arg(&dir.path().join("r"));
    init(&["--repo", &repo, "--mode", "archive"]).ok();
    let config_before = fs::read(dir.path().join("r/config")).unwrap();
    let out = init(&["--repo", &repo, "--mode", "bare"]).fails_with(2);
    assert!(out.stderr.contains("mode archive"), "{}", out.stderr);
    assert!(out.stderr.contains("--mode bare"), "{}", out.stderr);
    assert_eq!(
        fs::read(dir.path().join("r/config")).unwrap(),
        config_before
    );
}

#[test]
fn non_empty_non_repo_directory_is_left_alone() {
    let dir = tempdir();
    let target = dir.path().join("data");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("precious.txt"), "keep me").unwrap();
    let out = init(&["--repo", &repo_arg(&target)]).fails_with(2);
    assert!(
        out.stderr.contains("not an ostree repository"),
        "{}",
        out.stderr
    );
    assert_eq!(listing(&target), ["precious.txt"]);
    assert_eq!(
        listing(dir.path()),
        ["data"],
        "no staging directory left behind"
    );
    // A plain file in the way is refused too.
    let file = dir.path().join("data/precious.txt");
    init(&["--repo", &repo_arg(&file)]).fails_with(2);
}

#[test]
fn empty_directory_becomes_the_repo() {
    let dir = tempdir();
    let target = dir.path().join("empty");
    fs::create_dir(&target).unwrap();
    let doc = init(&["--repo", &repo_arg(&target)]).ok().json();
    assert_eq!(doc["payload"]["repo"]["created"], true);
    assert!(target.join("objects").is_dir());
}

#[test]
fn collection_id_and_config_settings_reach_the_config() {
    require!("ostree");
    let dir = tempdir();
    let repo = repo_arg(&dir.path().join("r"));
    let doc = init(&[
        "--repo",
        &repo,
        "--collection-id",
        "org.example.Atomic",
        "--set",
        "core.min-free-space-percent=2",
        "--set",
        r#"remote "mirror".url=http://127.0.0.1/repo"#,
        // Group names may hold dots: the key is what follows the last one.
        "--set",
        r#"remote "mirror.example".branches=a;b;"#,
    ])
    .ok()
    .json();
    assert_valid_manifest(&doc);
    assert_eq!(
        doc["payload"]["repo"]["collection_id"],
        "org.example.Atomic"
    );
    assert_eq!(
        doc["payload"]["repo"]["config"]["core.min-free-space-percent"],
        "2"
    );
    let get = |k: &str| {
        ostree(&["config", "--repo", &repo, "get", k])
            .trim()
            .to_string()
    };
    assert_eq!(get("core.collection-id"), "org.example.Atomic");
    assert_eq!(get("core.min-free-space-percent"), "2");
    assert_eq!(get(r#"remote "mirror".url"#), "http://127.0.0.1/repo");
    let config = fs::read_to_string(dir.path().join("r/config")).unwrap();
    assert!(
        config.contains("[remote \"mirror.example\"]\nbranches=a;b;\n"),
        "{config}"
    );
    // A changed --set on the existing repo updates it; created stays false.
    let doc = init(&["--repo", &repo, "--set", "core.min-free-space-percent=5"])
        .ok()
        .json();
    assert_eq!(doc["payload"]["repo"]["created"], false);
    assert_eq!(get("core.min-free-space-percent"), "5");
    // Another collection id on the existing repo is refused.
    let out = init(&["--repo", &repo, "--collection-id", "org.example.Other"]).fails_with(2);
    assert!(out.stderr.contains("org.example.Atomic") && out.stderr.contains("org.example.Other"));
}

#[test]
fn bad_arguments_exit_2_and_create_nothing() {
    let dir = tempdir();
    let repo = repo_arg(&dir.path().join("r"));
    for args in [
        vec!["--repo", &repo, "--mode", "zip"],
        vec!["--repo", &repo, "--set", "core.mode=bare"],
        vec!["--repo", &repo, "--set", "nodot=1"],
        vec!["--repo", &repo, "--collection-id", "not a valid id"],
        vec!["--repo", &repo, "--set", "core.a=1", "--set", "core.a=2"],
        vec![],
    ] {
        let out = init(&args).fails_with(2);
        assert!(!out.stderr.is_empty(), "{args:?} gave no message");
    }
    assert_eq!(listing(dir.path()), Vec::<String>::new());
}

#[test]
fn unknown_sections_pass_through_and_repo_comes_from_manifest() {
    let dir = tempdir();
    let repo = repo_arg(&dir.path().join("r"));
    let incoming = json!({
        "header": {"type": "releng-manifest", "version": "1.0"},
        "payload": {
            "x-future-tool": {"kept": [1, 2.5, "three"], "nested": {"a": null}},
            "metalinks": [{"path": "/srv/metalinks/fedora.x86_64.metalink", "format": "metalink3",
                           "repo_path": "fedora/x86_64/os", "repo": "fedora", "arch": "x86_64",
                           "urls": 3, "size": 1234, "sha256": "00"}],
            "repo": {"path": repo, "mode": "archive", "created": true, "collection_id": null}
        }
    });
    let bytes = serde_json::to_vec(&incoming).unwrap();
    // No --repo: the manifest's repo.path is used.
    let out = tool("repo-init", &[], Some(&bytes)).ok();
    let doc = out.json();
    assert_valid_manifest(&doc);
    assert_eq!(
        doc["payload"]["x-future-tool"],
        incoming["payload"]["x-future-tool"]
    );
    assert_eq!(
        doc["payload"]["metalinks"],
        incoming["payload"]["metalinks"]
    );
    assert_eq!(doc["payload"]["repo"]["created"], true);
    assert!(dir.path().join("r/objects").is_dir());
}

#[test]
fn bad_manifests_exit_2_with_the_reason_and_touch_nothing() {
    let dir = tempdir();
    let repo = repo_arg(&dir.path().join("r"));
    for (input, reason) in [
        (&b"{\"header\": oops"[..], "not valid JSON"),
        (
            br#"{"header":{"type":"productmd.images","version":"1.2"},"payload":{}}"#,
            "wrong header type",
        ),
        (
            br#"{"header":{"type":"releng-manifest","version":"2.0"},"payload":{}}"#,
            "newer",
        ),
    ] {
        let out = tool("repo-init", &["--repo", &repo], Some(input)).fails_with(2);
        assert!(
            out.stderr.contains(reason),
            "expected `{reason}` in: {}",
            out.stderr
        );
    }
    assert!(!dir.path().join("r").exists());
}

#[test]
fn output_file_is_written_whole_and_stdout_stays_empty() {
    let dir = tempdir();
    let repo = repo_arg(&dir.path().join("r"));
    let out_file = dir.path().join("manifest.json");
    let out = init(&["--repo", &repo, "--output", out_file.to_str().unwrap()]).ok();
    assert!(out.stdout.is_empty());
    let doc: Value = serde_json::from_slice(&fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(doc["payload"]["repo"]["created"], true);
    assert_eq!(listing(dir.path()), ["manifest.json", "r"]);
}

#[test]
fn concurrent_runs_agree_on_one_repository() {
    let dir = tempdir();
    let repo = repo_arg(&dir.path().join("r"));
    let bin = testkit::bin("repo-init");
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&bin)
                .args(["--repo", &repo, "-q"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut created = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        if doc["payload"]["repo"]["created"] == true {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one run creates the repository");
    assert_eq!(listing(dir.path()), ["r"], "no staging directories left");
}

#[test]
fn help_version_man_and_completions() {
    let help = init(&["--help"]).ok();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("Examples:") && help.contains("--collection-id"));
    let version = String::from_utf8(init(&["--version"]).ok().stdout).unwrap();
    assert!(version.starts_with("repo-init "), "{version}");
    let man = String::from_utf8(init(&["--generate", "man"]).ok().stdout).unwrap();
    assert!(
        man.contains(".TH repo-init") && man.contains("collection"),
        "{man}"
    );
    let bash = String::from_utf8(init(&["--generate", "complete-bash"]).ok().stdout).unwrap();
    assert!(bash.contains("--collection-id"));
}
