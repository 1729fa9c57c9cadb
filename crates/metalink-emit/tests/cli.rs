//! The default action: files per repository and format, the manifest's
//! `metalinks` list, repeatable seeds, and the shared CLI conventions.

mod common;

use std::fs;

use common::*;
use releng_manifest::RepoStatus;
use testkit::{assert_valid_manifest, tempdir, tool};

fn sample() -> Vec<u8> {
    let (repos, both) = two_repos();
    let mut hosts: Vec<_> = (0..8)
        .map(|i| {
            mirror(
                &format!("m{i}"),
                &format!("https://m{i}.example/pub"),
                &both,
            )
        })
        .collect();
    hosts[1].repos[1].status = RepoStatus::Stale;
    hosts[2].state = releng_manifest::HostState::Disabled;
    manifest(repos, hosts)
}

fn emit(input: &[u8], out: &std::path::Path, extra: &[&str]) -> testkit::Run {
    let mut args = vec!["--output-dir", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    tool("metalink-emit", &args, Some(input))
}

fn without_dates(s: &str) -> String {
    s.lines()
        .filter(|l| !l.contains("pubdate=") && !l.contains("<published>"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn writes_every_format_and_lists_the_files_in_the_manifest() {
    let dir = tempdir();
    let out = dir.path().join("metalinks");
    let r = emit(
        &sample(),
        &out,
        &[
            "--format",
            "metalink3",
            "--format",
            "meta4",
            "--format",
            "mirrorlist",
            "--seed",
            "1",
        ],
    )
    .ok();
    let doc = r.json();
    assert_valid_manifest(&doc);
    assert!(doc["payload"]["scan"].is_object() && doc["payload"]["mirrors"].is_object());
    let entries = doc["payload"]["metalinks"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    assert_eq!(
        testkit::listing(&out),
        [
            "fedora-atomic.x86_64.meta4",
            "fedora-atomic.x86_64.metalink",
            "fedora-atomic.x86_64.mirrorlist",
            "fedora.x86_64.meta4",
            "fedora.x86_64.metalink",
            "fedora.x86_64.mirrorlist",
        ]
    );
    for e in entries {
        let path = e["path"].as_str().unwrap();
        // Published files: readable by a web server running as anyone.
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let bytes = fs::read(path).unwrap();
        assert_eq!(e["size"], bytes.len() as u64);
        assert_eq!(e["sha256"], file_details::digest_bytes(&bytes).sha256);
    }
    let ostree = &entries[3];
    assert_eq!(ostree["repo"], "fedora-atomic");
    assert_eq!(ostree["repo_path"], "atomic/repo");
    assert_eq!(ostree["format"], "metalink3");
    // m1 is stale for the ostree repo and m2 disabled: 6 of 8.
    assert_eq!(ostree["urls"], 6);
    let text = fs::read_to_string(out.join("fedora-atomic.x86_64.metalink")).unwrap();
    assert!(!text.contains("m1.example") && !text.contains("m2.example"));
    let list = fs::read_to_string(out.join("fedora.x86_64.mirrorlist")).unwrap();
    assert!(list.starts_with("# repo = fedora arch = x86_64 country = global\n"));
    assert_eq!(list.lines().count(), 1 + 7);
}

#[test]
fn a_seed_makes_the_order_repeatable() {
    let dir = tempdir();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    emit(&sample(), &a, &["--seed", "7"]).ok();
    emit(&sample(), &b, &["--seed", "7"]).ok();
    let read = |d: &std::path::Path| {
        without_dates(&fs::read_to_string(d.join("fedora.x86_64.metalink")).unwrap())
    };
    assert_eq!(read(&a), read(&b));
    let differs = (0..10).any(|s| {
        emit(&sample(), &c, &["--seed", &s.to_string()]).ok();
        read(&c) != read(&a)
    });
    assert!(differs, "ten seeds, one order");
}

#[test]
fn missing_sections_and_bad_flags_are_bad_input() {
    let dir = tempdir();
    let empty = releng_manifest::Manifest::new().to_bytes();
    let r = emit(&empty, dir.path(), &[]).fails_with(2);
    assert!(r.stderr.contains("mm-crawl scan"), "{}", r.stderr);
    let r = emit(&sample(), dir.path(), &["--country", "Germany"]).fails_with(2);
    assert!(r.stderr.contains("--country"), "{}", r.stderr);
    emit(&sample(), dir.path(), &["--format", "atom"]).fails_with(2);
    emit(b"not json", dir.path(), &[]).fails_with(2);
    assert!(
        testkit::listing(dir.path()).is_empty(),
        "nothing written on failure"
    );
}

#[test]
fn help_and_version() {
    let r = tool("metalink-emit", &["--help"], None).ok();
    let help = String::from_utf8(r.stdout).unwrap();
    assert!(help.contains("Examples:") && help.contains("serve"));
    let r = tool("metalink-emit", &["serve", "--help"], None).ok();
    assert!(String::from_utf8(r.stdout).unwrap().contains("--listen"));
    let r = tool("metalink-emit", &["--version"], None).ok();
    assert!(String::from_utf8(r.stdout)
        .unwrap()
        .starts_with("metalink-emit "));
}

#[test]
fn a_rerun_replaces_its_entries_instead_of_adding_them() {
    let dir = tempdir();
    let out = dir.path().join("metalinks");
    let first = emit(&sample(), &out, &["--seed", "1"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let n = first.json()["payload"]["metalinks"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(n, 2);
    let second = emit(&first.stdout, &out, &["--seed", "1"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let doc = second.json();
    assert_eq!(doc["payload"]["metalinks"].as_array().unwrap().len(), n);
    assert_valid_manifest(&doc);
}
