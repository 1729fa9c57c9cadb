//! What makes composes trustworthy to rebuild: change detection as pungi's
//! wrapper uses it, scriptlets, the rpmdb, reproducible commits, and
//! safety under SIGKILL and concurrency.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use testkit::{ostree, require, tempdir};

const REF: &str = "fedora-atomic/rawhide/x86_64/docker-host";

struct Work {
    dir: tempfile::TempDir,
    repo_url: String,
}

impl Work {
    fn new() -> Work {
        Work::with_repo(&format!(
            "file://{}",
            testkit::fixtures().join("repo").display()
        ))
    }

    fn with_repo(url: &str) -> Work {
        let w = Work {
            dir: tempdir(),
            repo_url: url.to_string(),
        };
        let tf = fs::read_to_string(
            testkit::source_fixtures().join("treefiles/fedora-atomic-docker-host.json"),
        )
        .unwrap();
        w.treefile(&tf);
        w.init("repo");
        w
    }

    fn treefile(&self, text: &str) {
        fs::write(self.path("host.json"), text).unwrap();
        fs::write(
            self.path("fixture.repo"),
            format!(
                "[fedora-rawhide]\nname=fixture\nbaseurl={}\nenabled=1\ngpgcheck=0\n",
                self.repo_url
            ),
        )
        .unwrap();
    }

    fn init(&self, name: &str) -> String {
        let p = self.path(name).to_str().unwrap().to_string();
        ostree(&["init", "--repo", &p, "--mode=archive"]);
        p
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn s(&self, p: &str) -> String {
        self.path(p).to_str().unwrap().to_string()
    }

    fn cmd(&self, repo: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(testkit::bin("rpm-compose"));
        c.args([
            "--treefile",
            &self.s("host.json"),
            "--repo",
            &self.s(repo),
            "--cachedir",
            &self.s("cache"),
        ])
        .args(extra)
        .stdin(Stdio::null());
        c
    }

    fn compose(&self, extra: &[&str]) -> testkit::Run {
        self.compose_into("repo", extra)
    }

    fn compose_into(&self, repo: &str, extra: &[&str]) -> testkit::Run {
        testkit::run(&mut self.cmd(repo, extra), None)
    }

    fn rev(&self, repo: &str) -> Option<String> {
        let out = Command::new("ostree")
            .args(["rev-parse", "--repo", &self.s(repo), REF])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
    }
}

fn entry(doc: &Value) -> Value {
    doc["payload"]["composes"][0].clone()
}

#[test]
fn unchanged_inputs_make_no_commit_and_pungi_files_say_so() {
    require!("ostree");
    let w = Work::new();
    let json = w.s("compose.json");
    let stamp = w.s("changed.stamp");
    // The first and the forced run install at the same time, so their
    // trees (rpmdb included) are identical.
    let pinned = |extra: &[&str]| {
        testkit::run(
            w.cmd("repo", extra).env("SOURCE_DATE_EPOCH", "1700000000"),
            None,
        )
    };
    let first = entry(
        &pinned(&[
            "--write-composejson-to",
            &json,
            "--touch-if-changed",
            &stamp,
        ])
        .ok()
        .json(),
    );
    assert_eq!(first["changed"], true);
    let cj: Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "ref",
        "ostree-commit",
        "ostree-content-checksum",
        "ostree-version",
        "ostree-timestamp",
        "rpm-ostree-inputhash",
        "ostree-n-metadata-total",
        "ostree-n-metadata-written",
        "ostree-n-content-total",
        "ostree-n-content-written",
        "ostree-n-cache-hits",
        "ostree-content-bytes-written",
        "pkgdiff",
    ] {
        assert!(cj.get(key).is_some(), "compose JSON lacks {key}: {cj}");
    }
    let content_total = cj["ostree-n-content-total"].as_u64().unwrap();
    let content_written = cj["ostree-n-content-written"].as_u64().unwrap();
    assert!(content_total > 0, "no content objects counted: {cj}");
    assert!(
        content_written <= content_total,
        "more content objects written than the tree has: {cj}"
    );
    assert_eq!(cj["ostree-commit"], first["commit"]);
    assert_eq!(cj["rpm-ostree-inputhash"], first["inputhash"]);
    assert!(Path::new(&stamp).exists());
    let meta = ostree(&[
        "show",
        "--repo",
        &w.s("repo"),
        REF,
        "--print-metadata-key=rpmostree.inputhash",
    ]);
    assert_eq!(
        meta.trim().trim_matches('\''),
        first["inputhash"].as_str().unwrap()
    );

    // Nothing changed: the repository's package lists are not even read.
    fs::remove_file(&stamp).unwrap();
    fs::remove_dir_all(w.path("cache/repodata")).unwrap();
    let run = w.compose(&["--touch-if-changed", &stamp]).ok();
    assert!(
        run.stderr
            .contains("No apparent changes since previous commit"),
        "{}",
        run.stderr
    );
    let again = entry(&run.json());
    assert_eq!(again["changed"], false);
    assert_eq!(again["commit"], first["commit"]);
    assert!(
        !w.path("cache/repodata/fedora-rawhide")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "primary was fetched"
    );
    assert!(
        !Path::new(&stamp).exists(),
        "touched although nothing changed"
    );

    // --force-nocache commits anyway; the diff against the parent is empty.
    let forced_json = w.s("forced.json");
    let forced = entry(
        &pinned(&["--force-nocache", "--write-composejson-to", &forced_json])
            .ok()
            .json(),
    );
    assert_eq!(forced["changed"], true);
    // The first run unpacked every package; the forced one linked them
    // all from the package cache and still made the same tree.
    let n = first["packages"].as_array().unwrap().len() as u64;
    assert_eq!(first["stats"]["packages_unpacked"], n, "{first}");
    assert_eq!(first["stats"]["packages_linked"], 0, "{first}");
    assert_eq!(forced["stats"]["packages_unpacked"], 0, "{forced}");
    assert_eq!(forced["stats"]["packages_linked"], n, "{forced}");
    assert_eq!(forced["content_checksum"], first["content_checksum"]);
    let fj: Value = serde_json::from_str(&fs::read_to_string(&forced_json).unwrap()).unwrap();
    // Every content object is in the repository already: none written,
    // yet the total still counts the whole tree.
    assert_eq!(fj["ostree-n-content-written"], 0, "{fj}");
    assert_eq!(fj["ostree-n-content-total"], content_total, "{fj}");
    assert_eq!(forced["parent"], first["commit"]);
    assert_eq!(
        forced["pkgdiff"],
        serde_json::json!({"added": [], "removed": [], "upgraded": [], "downgraded": []})
    );
}

/// Packages are hard-linked from the package cache: a script that writes
/// into one of their files in place writes into the cache. The compose
/// must notice, drop that package from the cache, and so give the next
/// compose the package's pristine file.
#[test]
fn a_script_writing_through_a_cached_file_does_not_poison_the_next_compose() {
    require!("ostree");
    require!("bwrap");
    let w = Work::new();
    let mut tf: Value =
        serde_json::from_str(&fs::read_to_string(w.path("host.json")).unwrap()).unwrap();
    tf["postprocess"] = serde_json::json!(["echo tampered >> /usr/bin/app"]);
    w.treefile(&tf.to_string());
    let app = |commit: &Value| {
        ostree(&[
            "cat",
            "--repo",
            &w.s("repo"),
            commit.as_str().unwrap(),
            "/usr/bin/app",
        ])
    };
    // Pinned install times: the trees must be equal to the byte.
    let pinned = |extra: &[&str]| {
        testkit::run(
            w.cmd("repo", extra).env("SOURCE_DATE_EPOCH", "1700000000"),
            None,
        )
    };
    // A compose that fails after its script wrote through a link must
    // not leave the write in the cache either.
    let mut failing = tf.clone();
    failing["postprocess"] = serde_json::json!(["echo tampered >> /usr/bin/app; exit 1"]);
    w.treefile(&failing.to_string());
    pinned(&[]).fails_with(1);
    w.treefile(&tf.to_string());

    let first = entry(&pinned(&[]).ok().json());
    let text = app(&first["commit"]);
    assert_eq!(text.matches("tampered").count(), 1, "{text}");
    let second = entry(&pinned(&["--force-nocache"]).ok().json());
    let again = app(&second["commit"]);
    assert_eq!(again, text, "the second compose saw the first one's write");
    assert_eq!(second["content_checksum"], first["content_checksum"]);
    // Only app was extracted again.
    let n = first["packages"].as_array().unwrap().len() as u64;
    assert_eq!(first["stats"]["packages_unpacked"], 1, "{first}");
    assert_eq!(second["stats"]["packages_unpacked"], 1, "{second}");
    assert_eq!(second["stats"]["packages_linked"], n - 1, "{second}");
}

#[test]
fn a_changed_treefile_commits_with_a_package_diff() {
    require!("ostree");
    let w = Work::new();
    let first = entry(&w.compose(&[]).ok().json());
    let mut tf: Value =
        serde_json::from_str(&fs::read_to_string(w.path("host.json")).unwrap()).unwrap();
    tf["packages"]
        .as_array_mut()
        .unwrap()
        .push("newtool".into());
    tf["recommends"] = false.into();
    w.treefile(&tf.to_string());
    let second = entry(&w.compose(&[]).ok().json());
    assert_eq!(second["changed"], true);
    assert_eq!(second["parent"], first["commit"]);
    assert_ne!(second["inputhash"], first["inputhash"]);
    let diff = &second["pkgdiff"];
    assert_eq!(diff["added"], serde_json::json!(["newtool-2.0-1.x86_64"]));
    assert_eq!(
        diff["removed"],
        serde_json::json!(["app-docs-1.0-1.noarch"])
    );
}

#[test]
fn previous_inputhash_and_commitid_file_work_as_pungi_uses_them() {
    require!("ostree");
    let w = Work::new();
    let idfile = w.s("commitid.log");
    let first = entry(&w.compose(&["--write-commitid-to", &idfile]).ok().json());
    assert_eq!(
        fs::read_to_string(&idfile).unwrap(),
        first["commit"].as_str().unwrap()
    );
    assert_eq!(
        w.rev("repo"),
        None,
        "with --write-commitid-to the caller moves the ref"
    );
    // Another repository, told the previous input hash: nothing to do.
    w.init("other");
    let run = w
        .compose_into(
            "other",
            &["--previous-inputhash", first["inputhash"].as_str().unwrap()],
        )
        .ok();
    assert!(
        run.stderr
            .contains("No apparent changes since previous commit"),
        "{}",
        run.stderr
    );
    assert_eq!(entry(&run.json())["changed"], false);
    assert_eq!(w.rev("other"), None);
}

#[test]
fn scriptlets_run_inside_the_tree_and_the_rpmdb_reads_back() {
    require!("ostree");
    require!("bwrap");
    require!("rpm");
    let w = Work::new();
    let e = entry(&w.compose(&[]).ok().json());
    let commit = e["commit"].as_str().unwrap();
    let cat = |p: &str| ostree(&["cat", "--repo", &w.s("repo"), commit, p]);
    assert_eq!(cat("/usr/lib/app-post-ran"), "app %post ran, $1=1\n");
    assert_eq!(
        cat("/usr/lib/docker-posttrans-ran"),
        "docker %posttrans ran\n"
    );

    let co = w.path("checkout");
    ostree(&[
        "checkout",
        "--repo",
        &w.s("repo"),
        "-U",
        commit,
        co.to_str().unwrap(),
    ]);
    let db = co.join("usr/share/rpm");
    let rpm = |args: &[&str]| {
        let out = Command::new("rpm")
            .arg("--dbpath")
            .arg(&db)
            .args(args)
            .env("HOME", w.path("."))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rpm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mut installed: Vec<String> = rpm(&["-qa", "--qf", "%{NAME}\n"])
        .lines()
        .map(str::to_string)
        .collect();
    installed.sort();
    let mut expected: Vec<String> = e["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    assert_eq!(installed, expected);
    let files = rpm(&["-ql", "httpd-lite"]);
    assert!(
        files.lines().any(|l| l == "/usr/bin/httpd-lite")
            && files.lines().any(|l| l == "/usr/bin/httpd"),
        "{files}"
    );
    let link = fs::read_link(co.join("var/lib/rpm")).ok();
    let tmpfiles = cat("/usr/lib/tmpfiles.d/rpm-compose-autovar.conf");
    assert!(link.is_none(), "/var is empty in a commit");
    assert!(
        tmpfiles.contains("L /var/lib/rpm - - - - ../../usr/share/rpm"),
        "{tmpfiles}"
    );
}

fn scriptlet_repo(dir: &Path, post: &str) {
    testkit::build_rpm(
        &format!(
            "Name: scripted\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\nBuildArch: noarch\nRequires: busybox\n\
             %description\nd\n%install\nmkdir -p %{{buildroot}}/usr/share/scripted\ntouch %{{buildroot}}/usr/share/scripted/f\n\
             %post {post}\n%files\n/usr/share/scripted/f\n"
        ),
        dir,
    );
    for f in fs::read_dir(testkit::fixtures().join("repo/Packages"))
        .unwrap()
        .flatten()
    {
        for rpm in fs::read_dir(f.path()).unwrap().flatten() {
            fs::copy(rpm.path(), dir.join(rpm.file_name())).unwrap();
        }
    }
    testkit::createrepo(dir);
}

#[test]
fn failing_lua_and_var_writing_scriptlets_fail_the_compose() {
    require!("ostree");
    require!("bwrap");
    require!("rpmbuild");
    let tf = r#"{"ref": "fedora-atomic/rawhide/x86_64/docker-host", "repos": ["fedora-rawhide"], "packages": ["filesystem", "busybox", "scripted"]}"#;
    for (post, needle) in [
        ("\necho broken on purpose\nexit 7\n", "broken on purpose"),
        ("-p <lua>\nprint('hi')\n", "Lua"),
        ("\necho x > /var/lib/written\n", "Read-only file system"),
    ] {
        let repo = tempdir();
        scriptlet_repo(repo.path(), post);
        let w = Work::with_repo(&format!("file://{}", repo.path().display()));
        w.treefile(tf);
        let out = w.compose(&[]).fails_with(1);
        assert!(
            out.stderr.contains("scripted-1-1.noarch") && out.stderr.contains(needle),
            "{post:?}: {}",
            out.stderr
        );
        assert_eq!(w.rev("repo"), None);
    }
    // ignore-scripts skips the Lua one.
    let repo = tempdir();
    scriptlet_repo(repo.path(), "-p <lua>\nprint('hi')\n");
    let w = Work::with_repo(&format!("file://{}", repo.path().display()));
    w.treefile(&tf.replace("]}", "], \"ignore-scripts\": [\"scripted\"]}"));
    w.compose(&[]).ok();
}

#[test]
fn same_inputs_and_source_date_epoch_give_the_same_commit() {
    require!("ostree");
    let w = Work::new();
    w.init("second");
    let a = entry(
        &testkit::run(
            w.cmd("repo", &[]).env("SOURCE_DATE_EPOCH", "1700000000"),
            None,
        )
        .ok()
        .json(),
    );
    // A separate cache too: nothing may depend on what the first run left.
    let b = entry(
        &testkit::run(
            Command::new(testkit::bin("rpm-compose"))
                .args([
                    "--treefile",
                    &w.s("host.json"),
                    "--repo",
                    &w.s("second"),
                    "--cachedir",
                    &w.s("cache2"),
                ])
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .stdin(Stdio::null()),
            None,
        )
        .ok()
        .json(),
    );
    assert_eq!(a["timestamp"], 1_700_000_000);
    assert_eq!(
        a["content_checksum"], b["content_checksum"],
        "the trees differ"
    );
    assert_eq!(a["commit"], b["commit"]);

    // The tree linked from the package cache (with recycled directories)
    // and one unpacked afresh without it are the same tree.
    w.init("third");
    w.init("fourth");
    let pinned = |repo: &str, extra: &[&str]| {
        entry(
            &testkit::run(
                w.cmd(repo, extra).env("SOURCE_DATE_EPOCH", "1700000000"),
                None,
            )
            .ok()
            .json(),
        )
    };
    let linked = pinned("third", &[]);
    assert_eq!(linked["stats"]["packages_unpacked"], 0, "{linked}");
    let fresh = pinned("fourth", &["--no-pkgcache"]);
    assert_eq!(fresh["stats"]["packages_linked"], 0, "{fresh}");
    assert_eq!(linked["commit"], a["commit"]);
    assert_eq!(fresh["commit"], a["commit"]);
}

#[test]
fn sigkill_at_any_point_leaves_a_clean_repo_and_an_unmoved_ref() {
    require!("ostree");
    let w = Work::new();
    let first = entry(&w.compose(&[]).ok().json());
    let mut before = first["commit"].as_str().unwrap().to_string();
    let tmp = w.s("tmp");
    let mut killed = 0;
    // Kill forced recomposes at spread-out moments of their run.
    for delay_ms in [20u64, 80, 150, 250, 400, 600, 900] {
        let mut child = w
            .cmd("repo", &["--force-nocache", "-q", "--tmpdir", &tmp])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        ostree(&["fsck", "--repo", &w.s("repo")]);
        let now = w.rev("repo").unwrap();
        if !status.success() {
            killed += 1;
        }
        if now != before {
            // The ref may only have moved to a whole commit on top of the
            // previous one (a kill after the transaction committed).
            let parent = ostree(&["rev-parse", "--repo", &w.s("repo"), &format!("{now}^")]);
            assert_eq!(
                parent.trim(),
                before,
                "the ref moved to a commit not built on its previous one"
            );
            before = now;
        }
    }
    assert!(
        killed >= 3,
        "only {killed} runs were killed mid-way: the test proves nothing"
    );
    // And the next run succeeds, cleaning what the killed ones left.
    let last = entry(
        &w.compose(&["--force-nocache", "--tmpdir", &tmp])
            .ok()
            .json(),
    );
    assert_eq!(last["changed"], true);
    ostree(&["fsck", "--repo", &w.s("repo")]);
    let roots: Vec<_> = fs::read_dir(w.path("tmp/rpm-compose-roots"))
        .unwrap()
        .collect();
    assert!(roots.is_empty(), "staging roots left: {roots:?}");
    // The package cache holds whole entries only.
    for e in fs::read_dir(w.path("cache/pkgcache")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "left in the package cache: {name}");
        if name == "dirs" {
            // The directory pool: empty directories only.
            for d in fs::read_dir(e.path()).unwrap() {
                let d = d.unwrap().path();
                assert_eq!(fs::read_dir(&d).unwrap().count(), 0, "{d:?} not empty");
            }
            continue;
        }
        assert!(e.path().join("index").is_file(), "{name} has no index");
    }
    assert_eq!(last["stats"]["packages_unpacked"], 0, "{last}");
}

#[test]
fn concurrent_composes_of_one_ref_wait_for_each_other() {
    require!("ostree");
    let w = Work::new();
    w.compose(&[]).ok();
    let a = w
        .cmd("repo", &["--force-nocache"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b = w
        .cmd("repo", &["--force-nocache"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let ea = entry(&serde_json::from_slice(&a.stdout).unwrap());
    let eb = entry(&serde_json::from_slice(&b.stdout).unwrap());
    // Serialised: one is the other's parent, and the ref ends at the later.
    let (earlier, later) = if eb["parent"] == ea["commit"] {
        (&ea, &eb)
    } else {
        (&eb, &ea)
    };
    assert_eq!(later["parent"], earlier["commit"]);
    assert_eq!(w.rev("repo").as_deref(), later["commit"].as_str());
    ostree(&["fsck", "--repo", &w.s("repo")]);
}
