//! mm-crawl scan on trees made with createrepo_c and the ostree CLI.

mod common;

use std::process::Command;

use common::*;
use testkit::{ostree, require, tempdir, tool};

#[test]
fn scan_finds_yum_and_ostree_repos_per_arch() {
    require!("createrepo_c");
    require!("ostree");
    let t = tree();
    let st = tempdir();
    let doc = scan(&t.root, &st.path().join("state.json"));
    let sc = &doc["payload"]["scan"];
    assert_eq!(sc["root"], s(&std::fs::canonicalize(&t.root).unwrap()));
    assert_eq!(sc["category"], "Fedora Linux");
    let repos = sc["repos"].as_array().unwrap();
    let ids: Vec<(String, String, String, String)> = repos
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().into(),
                r["kind"].as_str().unwrap().into(),
                r["prefix"].as_str().unwrap().into(),
                r["arch"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = |p: &str, k: &str, x: &str, a: &str| (p.into(), k.into(), x.into(), a.into());
    assert_eq!(
        ids,
        vec![
            want(
                "atomic/rawhide",
                "ostree",
                "fedora-atomic-rawhide",
                "aarch64"
            ),
            want(
                "atomic/rawhide",
                "ostree",
                "fedora-atomic-rawhide",
                "x86_64"
            ),
            want(
                "development/rawhide/Everything/x86_64/os",
                "yum",
                "rawhide",
                "x86_64"
            ),
            want(
                "updates/41/Everything/aarch64",
                "yum",
                "updates-released-f41",
                "aarch64"
            ),
        ]
    );
    // Digests as sha256sum sees them.
    for r in repos {
        let p = t
            .root
            .join(r["path"].as_str().unwrap())
            .join(if r["kind"] == "yum" {
                "repodata/repomd.xml"
            } else {
                "summary"
            });
        assert_eq!(r["file"]["sha256"], sha256sum(&p), "{}", p.display());
        assert_eq!(r["file"]["size"], std::fs::metadata(&p).unwrap().len());
    }
    // Refs split by arch, as `ostree summary -v` lists them.
    let listing = ostree(&[
        "summary",
        "-v",
        "--repo",
        &s(&t.root.join("atomic/rawhide")),
    ]);
    for r in &repos[..2] {
        let refs = r["refs"].as_array().unwrap();
        assert_eq!(refs.len(), 1);
        let name = refs[0]["name"].as_str().unwrap();
        assert!(name.contains(r["arch"].as_str().unwrap()));
        assert!(listing.contains(name), "{listing}");
        assert!(listing.contains(refs[0]["commit"].as_str().unwrap()));
        assert_eq!(r["mode"], "archive-z2");
    }
    assert_eq!(sc["hashed"], 3);
    assert!(sc["files"].as_u64().unwrap() >= 7);
}

#[test]
fn rescan_hashes_nothing_and_changed_summary_leaves_an_alternate() {
    require!("createrepo_c");
    require!("ostree");
    let t = tree();
    let st = tempdir();
    let state = st.path().join("state.json");
    let first = scan(&t.root, &state);
    let again = scan(&t.root, &state);
    assert_eq!(again["payload"]["scan"]["hashed"], 0);
    assert_eq!(
        first["payload"]["scan"]["repos"],
        again["payload"]["scan"]["repos"]
    );
    // A new commit rewrites the summary: the old one becomes an alternate.
    let old = first["payload"]["scan"]["repos"][0]["file"].clone();
    ostree_repo(&t.root.join("atomic/rawhide"), &["x86_64"], "two");
    let third = scan(&t.root, &state);
    let sc = &third["payload"]["scan"];
    assert_eq!(sc["hashed"], 1);
    for r in &sc["repos"].as_array().unwrap()[..2] {
        assert_eq!(
            r["file"]["sha256"],
            sha256sum(&t.root.join("atomic/rawhide/summary"))
        );
        assert_ne!(r["file"]["sha256"], old["sha256"]);
        assert_eq!(r["alternates"].as_array().unwrap(), &vec![old.clone()]);
    }
    // --keep-days 0: no alternates survive.
    let out = tool(
        "mm-crawl",
        &[
            "scan",
            "--root",
            &s(&t.root),
            "--state",
            &s(&state),
            "--keep-days",
            "0",
        ],
        None,
    )
    .ok()
    .json();
    assert_eq!(
        out["payload"]["scan"]["repos"][0]["alternates"],
        serde_json::json!([])
    );
}

#[test]
fn summary_section_of_the_pipeline_is_not_rehashed() {
    require!("ostree");
    let dir = tempdir();
    let repo = dir.path().join("atomic");
    ostree_repo(&repo, &["ppc64le"], "one");
    let real = std::fs::canonicalize(&repo).unwrap();
    let path = real.join("summary");
    let meta = std::fs::metadata(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // A summary section as summary-gen writes it, with a marker digest:
    // seeing it in the scan proves the file was not hashed again.
    let mtime = {
        use std::os::unix::fs::MetadataExt;
        meta.mtime()
    };
    let doc = serde_json::json!({"header":{"type":"releng-manifest","version":"1.0"},"payload":{"summary":{
        "repo": s(&real), "path": s(&path), "size": bytes.len(), "mtime": mtime,
        "md5": "m", "sha1": "s1", "sha256": "marker", "sha512": "s5",
        "last_modified": 1700000000u64, "refs": [{"name":"fedora-atomic/rawhide/ppc64le/docker-host","commit":"c","timestamp":1,"version":null}],
        "signed": false, "signature": null, "deltas": [], "metadata": {}, "duration_s": 0.1}}});
    let out = tool(
        "mm-crawl",
        &["scan", "--root", &s(dir.path())],
        Some(&serde_json::to_vec(&doc).unwrap()),
    )
    .ok()
    .json();
    let sc = &out["payload"]["scan"];
    assert_eq!(sc["hashed"], 0);
    assert_eq!(sc["repos"][0]["file"]["sha256"], "marker");
    assert_eq!(sc["repos"][0]["file"]["timestamp"], 1700000000);
    assert_eq!(sc["repos"][0]["arch"], "ppc64le");
    assert_eq!(sc["repos"][0]["prefix"], "fedora-atomic");
    // The summary section passes through untouched.
    assert_eq!(out["payload"]["summary"], doc["payload"]["summary"]);
}

#[test]
fn repo_map_overrides_the_built_in_names() {
    require!("createrepo_c");
    require!("ostree");
    let t = tree();
    let st = tempdir();
    let map = st.path().join("map.toml");
    std::fs::write(
        &map,
        "[[map]]\npath = 'atomic/(\\w+)'\nprefix = 'fa-$1'\nkind = 'ostree'\n\n\
         [[map]]\npath = 'development/(?P<v>\\w+)/.*'\nprefix = 'dev-${v}'\narch = 'amd64'\n",
    )
    .unwrap();
    let doc = tool(
        "mm-crawl",
        &[
            "scan",
            "--root",
            &s(&t.root),
            "--repo-map",
            &s(&map),
            "--category",
            "Other",
        ],
        None,
    )
    .ok()
    .json();
    let sc = &doc["payload"]["scan"];
    assert_eq!(sc["category"], "Other");
    let repos = sc["repos"].as_array().unwrap();
    assert_eq!(repos[0]["prefix"], "fa-rawhide");
    assert_eq!(repos[0]["arch"], "aarch64");
    assert_eq!(repos[2]["prefix"], "dev-rawhide");
    assert_eq!(repos[2]["arch"], "amd64");
    assert_eq!(repos[3]["prefix"], "updates-released-f41");

    std::fs::write(&map, "[[map]]\npath = 'x'\nprefix = 'y'\narc = 'z'\n").unwrap();
    let e = tool(
        "mm-crawl",
        &["scan", "--root", &s(&t.root), "--repo-map", &s(&map)],
        None,
    )
    .fails_with(2);
    assert!(
        e.stderr.contains("arc") && e.stderr.contains("line 4"),
        "{}",
        e.stderr
    );
    let e = tool(
        "mm-crawl",
        &["scan", "--root", &s(&st.path().join("nope"))],
        None,
    )
    .fails_with(2);
    assert!(e.stderr.contains("nope"), "{}", e.stderr);
}

#[test]
fn walk_counts_what_find_counts_outside_ostree_objects() {
    require!("createrepo_c");
    require!("ostree");
    let t = tree();
    let st = tempdir();
    let doc = scan(&t.root, &st.path().join("state.json"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find '{}' -type f -not -path '*/atomic/rawhide/objects/*' | wc -l",
            s(&t.root)
        ))
        .output()
        .unwrap();
    let find: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(doc["payload"]["scan"]["files"], find);
}

#[test]
fn an_unreadable_directory_is_skipped_with_a_warning() {
    require!("createrepo_c");
    let dir = tempdir();
    let root = dir.path().join("linux");
    yum_repo(&root.join("releases/41/Everything/x86_64/os"));
    // Tests run as root, where permissions block nothing: a directory
    // whose path is longer than PATH_MAX cannot be opened by path either.
    let long = "d".repeat(250);
    let deep = vec![long.as_str(); 20].join("/");
    let st = Command::new("mkdir")
        .arg("-p")
        .arg(&deep)
        .current_dir(root.join("releases"))
        .status()
        .unwrap();
    assert!(st.success());
    let out = tool("mm-crawl", &["scan", "--root", &s(&root)], None).ok();
    assert!(out.stderr.contains("skipped"), "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["payload"]["scan"]["repos"][0]["prefix"], "fedora-41");
}
