//! rpm-compose end to end on the fixture repository, checked with the real
//! clients: dnf picks the same packages, rpm lists the same files, ostree
//! finds a clean commit.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use testkit::{assert_valid_manifest, ostree, require, tempdir, tool};

const REF: &str = "fedora-atomic/rawhide/x86_64/docker-host";

/// A work directory with a treefile and a .repo pointing at `repo_dir`.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(treefile: &str, repo_url: &str) -> Setup {
        let dir = tempdir();
        fs::write(dir.path().join("host.json"), treefile).unwrap();
        fs::write(
            dir.path().join("fixture.repo"),
            format!("[fedora-rawhide]\nname=fixture\nbaseurl={repo_url}\nenabled=1\ngpgcheck=0\n"),
        )
        .unwrap();
        let s = Setup { dir };
        ostree(&["init", "--repo", s.repo(), "--mode=archive"]);
        s
    }

    fn fixture() -> Setup {
        let tf = fs::read_to_string(
            testkit::source_fixtures().join("treefiles/fedora-atomic-docker-host.json"),
        )
        .unwrap();
        Setup::new(
            &tf,
            &format!("file://{}", testkit::fixtures().join("repo").display()),
        )
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn repo(&self) -> &str {
        // Leaked for the test's lifetime: simpler than threading a String.
        Box::leak(
            self.path("repo")
                .to_str()
                .unwrap()
                .to_string()
                .into_boxed_str(),
        )
    }

    fn compose(&self, extra: &[&str]) -> testkit::Run {
        let tf = self.path("host.json");
        let cache = self.path("cache");
        let mut args = vec![
            "--treefile",
            tf.to_str().unwrap(),
            "--repo",
            self.repo(),
            "--cachedir",
            cache.to_str().unwrap(),
        ];
        args.extend(extra);
        tool("rpm-compose", &args, None)
    }

    fn rev(&self) -> Option<String> {
        let out = Command::new("ostree")
            .args(["rev-parse", "--repo", self.repo(), REF])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
    }
}

fn compose_entry(doc: &Value) -> &Value {
    &doc["payload"]["composes"][0]
}

#[test]
fn package_set_equals_what_dnf_installs() {
    require!("dnf");
    let s = Setup::fixture();
    let doc = s.compose(&["--dry-run"]).ok().json();
    assert_valid_manifest(&doc);
    let mut ours: Vec<String> = compose_entry(&doc)["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let epoch = p["epoch"].as_u64().unwrap();
            let e = if epoch == 0 {
                String::new()
            } else {
                format!("{epoch}:")
            };
            format!(
                "{}-{e}{}-{}.{}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap(),
                p["release"].as_str().unwrap(),
                p["arch"].as_str().unwrap()
            )
        })
        .collect();
    ours.sort();

    let tf: Value =
        serde_json::from_str(&fs::read_to_string(s.path("host.json")).unwrap()).unwrap();
    let pkgs: Vec<String> = tf["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e.as_str()
                .unwrap()
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let root = s.path("dnfroot");
    let repo = format!("fix,file://{}", testkit::fixtures().join("repo").display());
    let out = Command::new("dnf")
        .args([
            "--installroot",
            root.to_str().unwrap(),
            "--releasever=rawhide",
            "--setopt=reposdir=/dev/null",
        ])
        .args([
            "--repofrompath",
            &repo,
            "--repo=fix",
            "--nogpgcheck",
            "--setopt=install_weak_deps=True",
            "-q",
            "-y",
            "install",
        ])
        .args(&pkgs)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dnf failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let q = Command::new("rpm")
        .args([
            "--root",
            root.to_str().unwrap(),
            "-qa",
            "--qf",
            "%{NAME}-%|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE}.%{ARCH}\n",
        ])
        .output()
        .unwrap();
    let mut theirs: Vec<String> = String::from_utf8(q.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("gpg-pubkey"))
        .map(str::to_string)
        .collect();
    theirs.sort();
    assert_eq!(ours, theirs);
    assert!(
        ours.iter().any(|p| p.starts_with("libfoo-2:2.1-3")),
        "{ours:?}"
    );
}

/// Where rpm-ostree's layout puts a package path in the tree, or None when
/// it leaves the commit (/var) or becomes a compat link.
fn tree_path(p: &str) -> Option<String> {
    let mut p = p.to_string();
    for (from, to) in [
        ("/bin/", "/usr/bin/"),
        ("/sbin/", "/usr/sbin/"),
        ("/lib/", "/usr/lib/"),
        ("/lib64/", "/usr/lib64/"),
    ] {
        if let Some(rest) = p.strip_prefix(from) {
            p = format!("{to}{rest}");
        }
    }
    if p == "/etc" || p.starts_with("/etc/") {
        return Some(format!("/usr{p}"));
    }
    let top = p.trim_start_matches('/').split('/').next().unwrap_or("");
    match top {
        "var" | "home" | "root" | "opt" | "srv" | "mnt" | "media" | "tmp" => None,
        _ if p == "/usr/local" || p.starts_with("/usr/local/") => None,
        _ => Some(p),
    }
}

#[test]
fn commit_holds_every_payload_file_with_mode_and_size() {
    require!("ostree");
    require!("rpm");
    let s = Setup::fixture();
    let doc = s.compose(&[]).ok().json();
    assert_valid_manifest(&doc);
    let entry = compose_entry(&doc);
    let commit = entry["commit"].as_str().unwrap();
    assert_eq!(
        s.rev().as_deref(),
        Some(commit),
        "the ref points at the manifest's commit"
    );
    assert_eq!(entry["changed"], true);
    assert_eq!(entry["version"], "42");
    ostree(&["fsck", "--repo", s.repo()]);

    // What the commit holds: path -> (type+mode, size).
    let listing = ostree(&["ls", "--repo", s.repo(), "-R", commit]);
    let mut tree: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        tree.insert(f[4].to_string(), (f[0].to_string(), f[3].parse().unwrap()));
    }
    // What every RPM ships, as rpm itself reads it.
    let mut checked = 0;
    for p in entry["packages"].as_array().unwrap() {
        let name = format!(
            "{}-{}-{}.{}.rpm",
            p["name"].as_str().unwrap(),
            p["version"].as_str().unwrap(),
            p["release"].as_str().unwrap(),
            p["arch"].as_str().unwrap()
        );
        let rpm = find(&testkit::fixtures().join("repo/Packages"), &name)
            .unwrap_or_else(|| panic!("{name} not in the fixture repo"));
        let out = Command::new("rpm")
            .args([
                "-qp",
                "--nosignature",
                "--nodigest",
                "--qf",
                "[%{FILENAMES}\t%{FILEMODES:octal}\t%{FILESIZES}\t%{FILEFLAGS:fflags}\n]",
            ])
            .arg(&rpm)
            .output()
            .unwrap();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let (path, mode, size, flags) = (
                f[0],
                u32::from_str_radix(f[1], 8).unwrap(),
                f[2].parse::<u64>().unwrap(),
                f[3],
            );
            if flags.contains('g') {
                continue; // %ghost: rpm creates nothing either
            }
            let Some(tp) = tree_path(path) else { continue };
            let (kind, got_size) = tree
                .get(&tp)
                .unwrap_or_else(|| panic!("{path} of {name} is not in the commit at {tp}"));
            let want_kind = match mode & 0o170000 {
                0o040000 => 'd',
                0o120000 => 'l',
                _ => '-',
            };
            if want_kind == 'd' && kind.starts_with('l') {
                continue; // a directory the layout keeps as a symlink (/bin)
            }
            assert_eq!(kind.chars().next(), Some(want_kind), "{path}: {kind}");
            if want_kind == '-' {
                assert_eq!(&kind[1..], format!("{:05o}", mode & 0o7777), "{path}: mode");
                assert_eq!(*got_size, size, "{path}: size");
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} payload entries checked");
    // Ownership by name through the tree's own passwd/group.
    assert!(
        listing.contains("-00644 990 991"),
        "docker's owned file keeps dockerroot:docker"
    );
    // /var content became tmpfiles.d entries.
    let autovar = ostree(&[
        "cat",
        "--repo",
        s.repo(),
        commit,
        "/usr/lib/tmpfiles.d/rpm-compose-autovar.conf",
    ]);
    assert!(autovar.contains("d /var/lib/app "), "{autovar}");
    // units and default target.
    assert!(tree.contains_key("/usr/etc/systemd/system/multi-user.target.wants/docker.service"));
    assert!(tree.contains_key("/usr/etc/systemd/system/default.target"));
    // A forced second compose has the first as parent and the next version.
    let doc = s.compose(&["--force-nocache"]).ok().json();
    let e2 = compose_entry(&doc);
    assert_eq!(e2["parent"], commit);
    assert_eq!(e2["version"], "42.1");
    assert_eq!(
        e2["stats"]["packages_cached"],
        entry["packages"].as_array().unwrap().len()
    );
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in fs::read_dir(dir).ok()? {
        let p = e.ok()?.path();
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

#[test]
fn pipeline_from_repo_init_appends_a_compose() {
    require!("ostree");
    let s = Setup::fixture();
    let repo = s.path("piped");
    let doc = testkit::pipe(
        Command::new(testkit::bin("repo-init")).args(["--repo", repo.to_str().unwrap()]),
        Command::new(testkit::bin("rpm-compose")).args([
            "--treefile",
            s.path("host.json").to_str().unwrap(),
            "--cachedir",
            s.path("cache").to_str().unwrap(),
        ]),
    )
    .ok()
    .json();
    assert_valid_manifest(&doc);
    assert_eq!(doc["payload"]["repo"]["path"], compose_entry(&doc)["repo"]);
    assert_eq!(compose_entry(&doc)["repos"][0]["id"], "fedora-rawhide");
}

#[test]
fn progress_is_drawn_on_a_terminal_only_and_never_on_stdout() {
    require!("ostree");
    require!("script");
    let s = Setup::fixture();
    let repo = s.path("tty");
    let manifest = s.path("in.json");
    let init = tool("repo-init", &["--repo", repo.to_str().unwrap()], None).ok();
    fs::write(&manifest, &init.stdout).unwrap();
    let out = s.path("out.json");
    let typescript = s.path("typescript");
    // stderr on a pseudo-terminal (script(1)), stdout to a file.
    let cmd = format!(
        "{} --manifest {} --treefile {} --cachedir {} > {}",
        testkit::bin("rpm-compose").display(),
        manifest.display(),
        s.path("host.json").display(),
        s.path("cache").display(),
        out.display()
    );
    let r = testkit::run(
        Command::new("script").args(["-qec", &cmd]).arg(&typescript),
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let drawn = String::from_utf8_lossy(&fs::read(&typescript).unwrap()).into_owned();
    assert!(
        drawn.contains("installing ["),
        "no progress bar on the terminal:\n{drawn}"
    );
    let doc: Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    assert_valid_manifest(&doc);
    // Not a terminal (the other tests): no bar in the captured stderr.
    let again = tool(
        "rpm-compose",
        &[
            "--treefile",
            s.path("host.json").to_str().unwrap(),
            "--cachedir",
            s.path("cache").to_str().unwrap(),
            "--force-nocache",
        ],
        Some(&fs::read(&out).unwrap()),
    )
    .ok();
    assert!(!again.stderr.contains("installing ["), "{}", again.stderr);
}

fn assert_fails_unmoved(s: &Setup, extra: &[&str], code: i32, needle: &str) {
    let before = s.rev();
    let out = s.compose(extra).fails_with(code);
    assert!(
        out.stderr.contains(needle),
        "expected `{needle}` in:\n{}",
        out.stderr
    );
    assert_eq!(s.rev(), before, "the ref moved");
}

#[test]
fn unknown_and_unsolvable_packages_fail_with_libsolv_text() {
    require!("ostree");
    let url = format!("file://{}", testkit::fixtures().join("repo").display());
    let s = Setup::new(
        r#"{"ref": "fedora-atomic/rawhide/x86_64/docker-host", "repos": ["fedora-rawhide"], "packages": ["no-such-package"]}"#,
        &url,
    );
    assert_fails_unmoved(&s, &[], 1, "no package provides `no-such-package`");
    let s = Setup::new(
        r#"{"ref": "fedora-atomic/rawhide/x86_64/docker-host", "repos": ["fedora-rawhide"], "packages": ["broken"]}"#,
        &url,
    );
    assert_fails_unmoved(
        &s,
        &[],
        1,
        "nothing provides does-not-exist needed by broken-1.0-1.x86_64",
    );
    let s = Setup::new(
        r#"{"ref": "fedora-atomic/rawhide/x86_64/docker-host", "repos": ["fedora-rawhide"], "packages": ["app", "oldapp"]}"#,
        &url,
    );
    assert_fails_unmoved(&s, &[], 1, "conflicts");
}

#[test]
fn unreachable_repo_names_id_and_url() {
    require!("ostree");
    let s = Setup::new(
        r#"{"ref": "a/b", "repos": ["fedora-rawhide"], "packages": ["x"]}"#,
        "http://127.0.0.1:9/nothing/",
    );
    assert_fails_unmoved(
        &s,
        &[],
        1,
        "repo `fedora-rawhide` (http://127.0.0.1:9/nothing/)",
    );
}

#[test]
fn tampered_rpm_is_refused_before_unpack() {
    require!("ostree");
    let copy = tempdir();
    let st = Command::new("cp")
        .arg("-a")
        .arg(testkit::fixtures().join("repo"))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(st.success());
    let victim = find(
        &copy.path().join("repo/Packages"),
        "httpd-lite-2.4-1.x86_64.rpm",
    )
    .unwrap();
    let mut bytes = fs::read(&victim).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0xff;
    fs::write(&victim, bytes).unwrap();
    let tf = fs::read_to_string(
        testkit::source_fixtures().join("treefiles/fedora-atomic-docker-host.json"),
    )
    .unwrap();
    let s = Setup::new(
        &tf,
        &format!("file://{}", copy.path().join("repo").display()),
    );
    assert_fails_unmoved(
        &s,
        &[],
        1,
        "httpd-lite-2.4-1.x86_64 from repo `fedora-rawhide`",
    );
    let out = s.compose(&[]);
    assert!(out.stderr.contains("checksum"), "{}", out.stderr);
    assert!(
        !s.path("cache/packages/fedora-rawhide/httpd-lite-2.4-1.x86_64.rpm")
            .exists(),
        "a bad download must not enter the cache"
    );
}

#[test]
fn treefile_errors_exit_2_naming_key_and_file() {
    let url = format!("file://{}", testkit::fixtures().join("repo").display());
    let s = Setup::new(
        r#"{"ref": "a/b", "repos": ["fedora-rawhide"], "packages": "filesystem"}"#,
        &url,
    );
    let out = s.compose(&[]).fails_with(2);
    assert!(
        out.stderr.contains("host.json") && out.stderr.contains("`packages` must be a list"),
        "{}",
        out.stderr
    );
    let s = Setup::new(
        r#"{"ref": "a/b", "repos": ["nope"], "packages": ["filesystem"]}"#,
        &url,
    );
    let out = s.compose(&[]).fails_with(2);
    assert!(out.stderr.contains("repo `nope`"), "{}", out.stderr);
    let s = Setup::new(
        r#"{"ref": "a/b", "repos": ["fedora-rawhide"], "packages": ["filesystem"], "frobnicate": 1}"#,
        &url,
    );
    let out = s.compose(&["--dry-run"]).ok();
    assert!(
        out.stderr.contains("unknown key `frobnicate`"),
        "{}",
        out.stderr
    );
}

#[test]
fn file_capabilities_reach_the_commit() {
    require!("ostree");
    let s = Setup::fixture();
    let doc = s.compose(&[]).ok().json();
    let commit = compose_entry(&doc)["commit"].as_str().unwrap().to_string();
    let x = ostree(&[
        "ls",
        "--repo",
        s.repo(),
        "-X",
        &commit,
        "/usr/bin/docker",
        "/usr/bin/app",
    ]);
    // cap_net_bind_service=ep: revision 2 with the effective flag, bit 10.
    assert!(
        x.contains("security.capability', [byte 0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00"),
        "{x}"
    );
    let app_line = x.lines().find(|l| l.ends_with("/usr/bin/app")).unwrap();
    assert!(
        app_line.contains("@a(ayay) []"),
        "no xattrs leak from the host: {app_line}"
    );
}

#[test]
fn treefile_edits_scripts_and_includes_shape_the_tree() {
    require!("ostree");
    require!("bwrap");
    let url = format!("file://{}", testkit::fixtures().join("repo").display());
    let s = Setup::new(
        r#"{"include": "base.yaml",
            "ref": "edits/${basearch}",
            "packages": ["httpd-lite"],
            "documentation": false,
            "add-files": [["extra.conf", "/etc/extra.conf"]],
            "remove-files": ["etc/hosts"],
            "remove-from-packages": [["httpd-lite", "/usr/bin/httpd$"]],
            "postprocess-script": "post.sh",
            "postprocess": ["echo inline > /usr/share/inline-ran"],
            "add-commit-metadata": {"fedora.compose": "test", "n": 3}}"#,
        &url,
    );
    fs::write(
        s.path("base.yaml"),
        "repos: [fedora-rawhide]\npackages: [filesystem, setup, libfoo]\nrecommends: false\n",
    )
    .unwrap();
    fs::write(s.path("extra.conf"), "added\n").unwrap();
    // The script sees the new tree as / and no network but loopback.
    fs::write(
        s.path("post.sh"),
        "#!/usr/bin/busybox sh\nset -e\ntest -e /usr/lib64/libfoo.so.2\n\
         ifaces=$(busybox cat /proc/net/dev | busybox tail -n +3 | busybox cut -d: -f1 | busybox tr -d ' ')\n\
         echo \"$ifaces\" > /usr/share/postprocess-ifaces\n",
    )
    .unwrap();
    let doc = s.compose(&[]).ok().json();
    let e = compose_entry(&doc);
    assert_eq!(e["ref"], "edits/x86_64");
    let commit = e["commit"].as_str().unwrap();
    let cat = |p: &str| ostree(&["cat", "--repo", s.repo(), commit, p]);
    assert_eq!(cat("/usr/etc/extra.conf"), "added\n");
    assert_eq!(cat("/usr/share/postprocess-ifaces").trim(), "lo");
    assert_eq!(cat("/usr/share/inline-ran"), "inline\n");
    let listing = ostree(&["ls", "--repo", s.repo(), "-R", commit]);
    assert!(listing.contains("/usr/bin/httpd-lite"));
    assert!(
        !listing.contains("/usr/bin/httpd\n"),
        "remove-from-packages"
    );
    assert!(!listing.contains("/usr/etc/hosts"), "remove-files");
    assert!(
        listing.contains("/usr/etc/passwd"),
        "remove-files took only what it named"
    );
    // documentation: false leaves %doc files out (libfoo's README).
    assert!(
        !listing.contains("/usr/share/doc/libfoo/README"),
        "documentation: false"
    );
    assert!(
        listing.contains("/usr/lib64/libfoo.so.2"),
        "include's packages installed"
    );
    let meta = ostree(&[
        "show",
        "--repo",
        s.repo(),
        commit,
        "--print-metadata-key=fedora.compose",
    ]);
    assert_eq!(meta.trim(), "'test'");
    // A failing script fails the compose with its output; the ref stays.
    fs::write(
        s.path("post.sh"),
        "#!/usr/bin/busybox sh\necho about to fail\nexit 3\n",
    )
    .unwrap();
    let before = s.rev();
    let out = s.compose(&[]).fails_with(1);
    assert!(
        out.stderr.contains("post.sh failed") && out.stderr.contains("about to fail"),
        "{}",
        out.stderr
    );
    assert_eq!(s.rev(), before);
}

#[test]
fn payload_that_escapes_the_root_is_refused() {
    require!("ostree");
    require!("rpmbuild");
    require!("createrepo_c");
    let repo = tempdir();
    let marker = format!("releng-escape-{}", std::process::id());
    testkit::build_rpm(
        &format!(
            "Name: evil-link\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\nBuildArch: noarch\n\
             %description\nd\n%install\nmkdir -p %{{buildroot}}/usr/lib\n\
             ln -s ../../../../../../tmp/{marker} %{{buildroot}}/usr/lib/evil\n\
             %files\n/usr/lib/evil\n"
        ),
        repo.path(),
    );
    testkit::build_rpm(
        "Name: evil-file\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\nBuildArch: noarch\nRequires(pre): evil-link\n\
         %description\nd\n%install\nmkdir -p %{buildroot}/usr/lib/evil\necho pwned > %{buildroot}/usr/lib/evil/payload\n\
         %files\n/usr/lib/evil/payload\n",
        repo.path(),
    );
    testkit::build_rpm(
        "Name: evil-abs\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\nBuildArch: noarch\n\
         %description\nd\n%install\nmkdir -p %{buildroot}/usr/share\nln -s /etc %{buildroot}/usr/share/evil-abs\n\
         %files\n/usr/share/evil-abs\n",
        repo.path(),
    );
    testkit::build_rpm(
        "Name: evil-abs-file\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\nBuildArch: noarch\nRequires(pre): evil-abs\n\
         %description\nd\n%install\nmkdir -p %{buildroot}/usr/share/evil-abs\necho x > %{buildroot}/usr/share/evil-abs/passwd\n\
         %files\n/usr/share/evil-abs/passwd\n",
        repo.path(),
    );
    testkit::createrepo(repo.path());
    let url = format!("file://{}", repo.path().display());
    let s = Setup::new(
        r#"{"ref": "evil/x86_64", "repos": ["fedora-rawhide"], "packages": ["evil-file"]}"#,
        &url,
    );
    let out = s.compose(&[]).fails_with(1);
    assert!(
        out.stderr.contains("evil-file-1-1.noarch") && out.stderr.contains("/usr/lib/evil/payload"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("out of the root"), "{}", out.stderr);
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "the payload escaped"
    );
    let s = Setup::new(
        r#"{"ref": "evil/x86_64", "repos": ["fedora-rawhide"], "packages": ["evil-abs-file"]}"#,
        &url,
    );
    let out = s.compose(&[]).fails_with(1);
    assert!(
        out.stderr.contains("evil-abs-file-1-1.noarch") && out.stderr.contains("absolute symlink"),
        "{}",
        out.stderr
    );
    assert_eq!(s.rev(), None);
}

/// The tool's own writes after unpacking (the rpmdb, the tmpfiles.d file)
/// go through the tree's symlinks as the tree sees them: a package's
/// absolute `/usr/share/rpm` symlink must not make rpm write the host.
#[test]
fn absolute_symlinks_in_the_tree_never_lead_writes_to_the_host() {
    require!("ostree");
    require!("rpmbuild");
    require!("createrepo_c");
    let repo = tempdir();
    let host = tempdir();
    for (name, dir) in [
        ("evil-db", "usr/share/rpm"),
        ("evil-tmpfiles", "usr/lib/tmpfiles.d"),
    ] {
        let target = host.path().join(name);
        fs::create_dir(&target).unwrap();
        let parent = Path::new(dir).parent().unwrap().display().to_string();
        testkit::build_rpm(
            &format!(
                "Name: {name}\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\nBuildArch: noarch\n\
                 %description\nd\n%install\nmkdir -p %{{buildroot}}/{parent}\n\
                 ln -s {target} %{{buildroot}}/{dir}\n%files\n/{dir}\n",
                target = target.display()
            ),
            repo.path(),
        );
    }
    testkit::createrepo(repo.path());
    let url = format!("file://{}", repo.path().display());
    for name in ["evil-db", "evil-tmpfiles"] {
        let s = Setup::new(
            &format!(
                r#"{{"ref": "evil/x86_64", "repos": ["fedora-rawhide"], "packages": ["{name}"]}}"#
            ),
            &url,
        );
        let out = s.compose(&[]).fails_with(1);
        assert!(
            out.stderr.contains("absolute symlink"),
            "{name}: {}",
            out.stderr
        );
        let written: Vec<_> = fs::read_dir(host.path().join(name)).unwrap().collect();
        assert!(
            written.is_empty(),
            "{name}: wrote into the host: {written:?}"
        );
        assert_eq!(s.rev(), None);
    }
}

#[test]
fn tree_is_exactly_what_ostree_commit_makes_of_its_checkout() {
    require!("ostree");
    // A checkout that keeps owners and capabilities needs root.
    testkit::require_root!();
    let s = Setup::fixture();
    let doc = s.compose(&[]).ok().json();
    let ours = compose_entry(&doc)["content_checksum"]
        .as_str()
        .unwrap()
        .to_string();
    // Check the commit out with its owners and xattrs, commit that
    // directory with the ostree CLI: libostree's own writer must arrive at
    // the very same tree.
    let co = s.path("checkout");
    ostree(&["checkout", "--repo", s.repo(), REF, co.to_str().unwrap()]);
    let other = s.path("other");
    ostree(&["init", "--repo", other.to_str().unwrap(), "--mode=archive"]);
    let tree = format!("--tree=dir={}", co.display());
    ostree(&[
        "commit",
        "--repo",
        other.to_str().unwrap(),
        "-b",
        "x",
        &tree,
    ]);
    let show = ostree(&["show", "--repo", other.to_str().unwrap(), "x"]);
    assert!(
        show.contains(&format!("ContentChecksum:  {ours}")),
        "ours {ours}, ostree's:\n{show}"
    );
}

#[test]
fn man_page_and_completions_need_no_treefile() {
    let man = tool("rpm-compose", &["--generate", "man"], None).ok();
    let text = String::from_utf8(man.stdout).unwrap();
    assert!(
        text.contains(".TH rpm-compose") && text.contains("write\\-composejson\\-to"),
        "{text}"
    );
    let fish = tool("rpm-compose", &["--generate=complete-fish"], None).ok();
    assert!(String::from_utf8(fish.stdout)
        .unwrap()
        .contains("previous-inputhash"));
    let help = String::from_utf8(tool("rpm-compose", &["--help"], None).ok().stdout).unwrap();
    assert!(help.contains("Examples:"));
}
