//! mm-crawl mirrors against real mirrors on 127.0.0.1: our own HTTP
//! servers (in sync, stale, 404, hanging, endless, flaky) and rsync.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use testkit::{assert_valid_manifest, require, tempdir, tool};

#[test]
fn mirrors_in_sync_stale_missing_hanging_endless_and_rsync() {
    require!("createrepo_c");
    require!("ostree");
    let t = tree();
    let st = tempdir();
    let state = st.path().join("state.json");
    scan(&t.root, &state);
    // The stale mirror keeps a copy of the tree from before the new summary.
    let stale = st.path().join("stale");
    copy_tree(&t.root, &stale);
    ostree_repo(
        &t.root.join("atomic/rawhide"),
        &["x86_64", "aarch64"],
        "two",
    );
    let old = std::fs::metadata(stale.join("atomic/rawhide/summary"))
        .unwrap()
        .len();
    let new = std::fs::metadata(t.root.join("atomic/rawhide/summary"))
        .unwrap()
        .len();
    assert_eq!(
        old, new,
        "same size, other bytes: the case MirrorManager misses"
    );
    let doc = scan(&t.root, &state);

    // An unrelated summary of the same kind matches nothing.
    let other = st.path().join("other");
    copy_tree(&t.root, &other);
    std::fs::write(other.join("atomic/rawhide/summary"), b"junk").unwrap();

    let mut hosts = vec![
        ("sync", serve(Mode::Files(t.root.clone()))),
        ("stale", serve(Mode::Files(stale.clone()))),
        ("other", serve(Mode::Files(other.clone()))),
        ("gone", serve(Mode::NotFound)),
        ("hang", serve(Mode::Hang)),
        ("endless", serve(Mode::Endless)),
        ("local", format!("file://{}", s(&t.root))),
    ];
    let mut rsyncd = None;
    if testkit::have("rsync") {
        let d = rsync_daemon(&stale, st.path());
        hosts.push(("rsync", rsync_url(&d)));
        rsyncd = Some(d);
    } else {
        eprintln!("SKIPPED rsync mirror: `rsync` is not installed");
    }
    let toml: Vec<(&str, &str)> = hosts.iter().map(|(n, u)| (*n, u.as_str())).collect();
    let mfile = st.path().join("mirrors.toml");
    std::fs::write(&mfile, mirrors_toml(&toml)).unwrap();
    let started = Instant::now();
    let out = tool(
        "mm-crawl",
        &[
            "mirrors",
            "--mirrors",
            &s(&mfile),
            "--state",
            &s(&state),
            "--timeout",
            "2",
        ],
        Some(&serde_json::to_vec(&doc).unwrap()),
    )
    .ok();
    let took = started.elapsed();
    let m = out.json();
    assert_valid_manifest(&m);
    assert!(took < Duration::from_secs(10), "crawl took {took:?}");
    let section = &m["payload"]["mirrors"];
    let host = |name: &str| -> &Value {
        section["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap()
    };
    let status = |name: &str, path: &str| -> String {
        host(name)["repos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == path)
            .map(|r| r["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    let ost = "atomic/rawhide";
    let yum = "development/rawhide/Everything/x86_64/os";
    assert_eq!(host("sync")["state"], "ok");
    assert_eq!(host("sync")["country"], "DE");
    assert_eq!(status("sync", ost), "up2date");
    assert_eq!(status("sync", yum), "up2date");
    assert_eq!(host("sync")["repos"].as_array().unwrap().len(), 3);
    // Same size, other bytes: one sync behind, never up2date.
    assert_eq!(status("stale", ost), "stale");
    assert_eq!(status("stale", yum), "up2date");
    assert_eq!(status("other", ost), "mismatch");
    assert_eq!(status("gone", ost), "missing");
    assert_eq!(host("gone")["state"], "ok");
    assert_eq!(host("hang")["state"], "unreachable");
    assert_eq!(status("hang", ost), "unknown");
    assert!(host("hang")["duration_s"].as_f64().unwrap() < 4.0);
    assert_eq!(status("endless", ost), "mismatch");
    assert_eq!(status("endless", yum), "mismatch");
    assert_eq!(status("local", ost), "up2date");
    if rsyncd.is_some() {
        assert_eq!(host("rsync")["state"], "ok", "{}", out.stderr);
        assert_eq!(status("rsync", ost), "stale", "{}", out.stderr);
        assert_eq!(status("rsync", yum), "up2date");
    }
    let sync_ost = host("sync")["repos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == ost)
        .unwrap()
        .clone();
    assert_eq!(
        sync_ost["sha256"],
        sha256sum(&t.root.join("atomic/rawhide/summary"))
    );

    // The hanging host fails crawl after crawl, and is then disabled.
    let mut last = m;
    for _ in 0..3 {
        last = tool(
            "mm-crawl",
            &[
                "mirrors",
                "--mirrors",
                &s(&mfile),
                "--state",
                &s(&state),
                "--timeout",
                "1",
            ],
            Some(&serde_json::to_vec(&doc).unwrap()),
        )
        .ok()
        .json();
    }
    let hang = last["payload"]["mirrors"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "hang")
        .unwrap()
        .clone();
    assert_eq!(hang["state"], "disabled");
    if rsyncd.is_some() {
        // The rsync listing was unchanged: nothing fetched, same verdict.
        let r = common::host(&last, "rsync");
        assert_eq!(r["state"], "ok");
        let ost_repo = r["repos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["path"] == ost)
            .unwrap();
        assert_eq!(ost_repo["status"], "stale");
        let yum_repo = r["repos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["path"] == yum)
            .unwrap();
        assert_eq!(yum_repo["detail"], "not modified");
    }
    let st_json: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(st_json["hosts"]["hang"]["disabled"], true);
    assert_eq!(st_json["hosts"]["sync"]["failures"], 0);
}

#[test]
fn bad_mirrors_file_names_line_and_key_and_exits_2() {
    let st = tempdir();
    let m = st.path().join("m.toml");
    let doc = br#"{"header":{"type":"releng-manifest","version":"1.0"},"payload":{"scan":{"root":"/x","category":"c","repos":[],"directories":0,"files":0,"hashed":0,"duration_s":0.0}}}"#;
    let run = |text: &str| {
        std::fs::write(&m, text).unwrap();
        tool("mm-crawl", &["mirrors", "--mirrors", &s(&m)], Some(doc)).fails_with(2)
    };
    let e = run("[[host]]\nname = \"a\"\ncountry = \"DE\"\nbandwith = 5\nurls = [\"http://a/\"]\n");
    assert!(
        e.stderr.contains("line 4") && e.stderr.contains("bandwith"),
        "{}",
        e.stderr
    );
    let e = run(
        "[[host]]\nname = \"a\"\ncountry = \"DE\"\nbandwidth = \"x\"\nurls = [\"http://a/\"]\n",
    );
    assert!(
        e.stderr.contains("line 4") && e.stderr.contains("bandwidth"),
        "{}",
        e.stderr
    );
    let e = run("[[host]]\nname = \"a\"\ncountry = \"DE\"\nurls = [\n  \"http://a/\",\n  \"ftp://a/pub\"]\n");
    assert!(
        e.stderr.contains("line 6")
            && e.stderr.contains("ftp://a/pub")
            && e.stderr.contains("\"a\""),
        "{}",
        e.stderr
    );
    assert_eq!(e.stderr.lines().count(), 1, "{}", e.stderr);
}

#[test]
fn mirrors_without_a_scan_exits_2() {
    let st = tempdir();
    let m = st.path().join("m.toml");
    std::fs::write(&m, "").unwrap();
    let e = tool("mm-crawl", &["mirrors", "--mirrors", &s(&m)], None).fails_with(2);
    assert!(e.stderr.contains("scan"), "{}", e.stderr);
}

#[test]
fn conditional_requests_retries_and_a_disabled_host_coming_back() {
    require!("createrepo_c");
    require!("ostree");
    let t = tree();
    let st = tempdir();
    let state = st.path().join("state.json");
    let doc = scan(&t.root, &state);
    let (etag_url, seen) = serve_counting(Mode::Files(t.root.clone()));
    let flaky = serve(Mode::Flaky(Arc::new(AtomicU32::new(2)), t.root.clone()));
    let on = Arc::new(AtomicBool::new(false));
    let switch = serve(Mode::Switch(on.clone(), t.root.clone()));
    let mfile = st.path().join("mirrors.toml");
    // A file:// mirror whose directory is not there answers nothing.
    let nodir = format!("file://{}", s(&st.path().join("not-there")));
    std::fs::write(
        &mfile,
        mirrors_toml(&[
            ("etag", &etag_url),
            ("flaky", &flaky),
            ("switch", &switch),
            ("nodir", &nodir),
        ]),
    )
    .unwrap();
    let opts = ["--timeout", "1", "--max-failures", "2"];
    let up = vec!["up2date".to_string(); 3];

    let first = crawl(&doc, &mfile, &state, &opts);
    assert_eq!(statuses(host(&first, "etag")), up);
    assert_eq!(seen.not_modified.load(Ordering::SeqCst), 0);
    // Two 503s, retried with backoff: the host still validates.
    assert_eq!(host(&first, "flaky")["state"], "ok");
    assert_eq!(statuses(host(&first, "flaky")), up);
    assert_eq!(host(&first, "switch")["state"], "unreachable");
    assert_eq!(host(&first, "nodir")["state"], "unreachable");
    assert_eq!(statuses(host(&first, "nodir")), vec!["unknown"; 3]);

    // The second crawl sends the ETags back: three 304s, same verdicts.
    let second = crawl(&doc, &mfile, &state, &opts);
    assert_eq!(seen.not_modified.load(Ordering::SeqCst), 3);
    let etag_host = host(&second, "etag");
    assert_eq!(statuses(etag_host), up);
    for r in etag_host["repos"].as_array().unwrap() {
        let p = t.root.join(r["path"].as_str().unwrap()).join(
            if r["path"].as_str().unwrap().starts_with("atomic") {
                "summary"
            } else {
                "repodata/repomd.xml"
            },
        );
        assert_eq!(r["sha256"], sha256sum(&p));
    }
    assert_eq!(host(&second, "switch")["state"], "disabled");
    assert_eq!(host(&second, "nodir")["state"], "disabled");

    // It answers again: the probe finds it, it is crawled and enabled.
    on.store(true, Ordering::SeqCst);
    let third = crawl(&doc, &mfile, &state, &opts);
    assert_eq!(host(&third, "switch")["state"], "ok");
    assert_eq!(statuses(host(&third, "switch")), up);
    // The directory is still not there: the probe keeps it disabled.
    assert_eq!(host(&third, "nodir")["state"], "disabled");
    assert_eq!(statuses(host(&third, "nodir")), vec!["unknown"; 3]);
    let st_json: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(st_json["hosts"]["switch"]["disabled"], false);
    assert_eq!(st_json["hosts"]["switch"]["failures"], 0);
    // The scan's part of the state survived the crawls.
    assert_eq!(st_json["files"].as_object().unwrap().len(), 3);
}

#[test]
fn deep_finds_a_current_repomd_with_broken_data_and_missing_commits() {
    require!("createrepo_c");
    require!("ostree");
    let t = tree();
    let st = tempdir();
    let state = st.path().join("state.json");
    let doc = scan(&t.root, &state);
    let broken = st.path().join("broken");
    copy_tree(&t.root, &broken);
    // Truncate every data file of one yum repo; drop the ostree commits.
    let yum = "development/rawhide/Everything/x86_64/os";
    for e in std::fs::read_dir(broken.join(yum).join("repodata")).unwrap() {
        let p = e.unwrap().path();
        if !p.ends_with("repomd.xml") {
            std::fs::write(&p, b"").unwrap();
        }
    }
    let objects = broken.join("atomic/rawhide/objects");
    let out = Command::new("find")
        .arg(&objects)
        .args(["-name", "*.commit", "-delete"])
        .status()
        .unwrap();
    assert!(out.success());
    let mut hosts = vec![
        ("good", serve(Mode::Files(t.root.clone()))),
        ("bad", serve(Mode::Files(broken.clone()))),
        ("bad-local", format!("file://{}", s(&broken))),
    ];
    let mut rsyncd = None;
    if testkit::have("rsync") {
        let d = rsync_daemon(&broken, st.path());
        hosts.push(("bad-rsync", rsync_url(&d)));
        rsyncd = Some(d);
    }
    let toml: Vec<(&str, &str)> = hosts.iter().map(|(n, u)| (*n, u.as_str())).collect();
    let mfile = st.path().join("mirrors.toml");
    std::fs::write(&mfile, mirrors_toml(&toml)).unwrap();

    // Without --deep the broken mirror looks current: only metadata is read.
    let shallow = crawl(&doc, &mfile, &state, &["--timeout", "5"]);
    assert_eq!(statuses(host(&shallow, "bad")), vec!["up2date"; 3]);

    let deep = crawl(&doc, &mfile, &state, &["--timeout", "5", "--deep"]);
    assert_eq!(statuses(host(&deep, "good")), vec!["up2date"; 3]);
    for name in ["bad", "bad-local", "bad-rsync"] {
        if name == "bad-rsync" && rsyncd.is_none() {
            continue;
        }
        let h = host(&deep, name);
        let by_path = |p: &str| {
            h["repos"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["path"] == p)
                .unwrap()
                .clone()
        };
        for p in ["atomic/rawhide", yum] {
            let r = by_path(p);
            assert_eq!(r["status"], "mismatch", "{name} {p}: {r}");
            assert!(r["detail"].as_str().unwrap().starts_with("deep:"), "{r}");
        }
        assert_eq!(
            by_path("updates/41/Everything/aarch64")["status"],
            "up2date"
        );
    }
}
