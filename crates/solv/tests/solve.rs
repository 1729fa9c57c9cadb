//! The binding against hand-written rpm-md metadata: each test states a
//! dependency situation and what rpm's rules say must come out.

use std::fmt::Write as _;
use std::path::PathBuf;

use solv::{DistType, Error, Pool, Request};

/// One `<package>` of a primary.xml.
struct Pkg<'a> {
    name: &'a str,
    evr: (u32, &'a str, &'a str),
    arch: &'a str,
    /// Extra `<format>` children: `<rpm:requires>…`, `<file>…`.
    format: &'a str,
}

fn pkg<'a>(name: &'a str, evr: (u32, &'a str, &'a str), arch: &'a str, format: &'a str) -> Pkg<'a> {
    Pkg {
        name,
        evr,
        arch,
        format,
    }
}

fn primary(pkgs: &[Pkg]) -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" \
         xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n",
    );
    for (i, p) in pkgs.iter().enumerate() {
        let (e, v, r) = p.evr;
        writeln!(
            x,
            "<package type=\"rpm\"><name>{n}</name><arch>{a}</arch>\
             <version epoch=\"{e}\" ver=\"{v}\" rel=\"{r}\"/>\
             <checksum type=\"sha256\" pkgid=\"YES\">{c:064x}</checksum>\
             <summary>{n}</summary><description>{n}</description>\
             <time file=\"1\" build=\"1\"/><size package=\"{size}\" installed=\"1\" archive=\"1\"/>\
             <location href=\"Packages/{n}-{v}-{r}.{a}.rpm\"/>\
             <format><rpm:provides><rpm:entry name=\"{n}\" flags=\"EQ\" epoch=\"{e}\" ver=\"{v}\" rel=\"{r}\"/></rpm:provides>\
             {f}</format></package>",
            n = p.name,
            a = p.arch,
            c = i + 1,
            size = 1000 + i,
            f = p.format,
        )
        .unwrap();
    }
    x.push_str("</metadata>\n");
    x
}

struct Repo {
    _dir: tempfile::TempDir,
    primary: PathBuf,
}

fn repo(pkgs: &[Pkg]) -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let primary_path = dir.path().join("primary.xml");
    std::fs::write(&primary_path, primary(pkgs)).unwrap();
    Repo {
        _dir: dir,
        primary: primary_path,
    }
}

fn pool_with(pkgs: &[Pkg]) -> (Pool, Repo) {
    let r = repo(pkgs);
    let mut pool = Pool::new("x86_64").unwrap();
    pool.add_rpmmd("fixture", &r.primary).unwrap();
    (pool, r)
}

fn names(pkgs: &[solv::Package]) -> Vec<String> {
    let mut v: Vec<String> = pkgs.iter().map(|p| p.name.clone()).collect();
    v.sort();
    v
}

fn install(pool: &mut Pool, what: &[&str], recommends: bool) -> Result<Vec<solv::Package>, Error> {
    pool.solve(&Request {
        install: what.iter().map(|s| s.to_string()).collect(),
        recommends,
    })
}

#[test]
fn pool_is_in_rpm_mode_and_it_matters() {
    let r = repo(&[pkg("docs", (0, "1", "1"), "noarch", "")]);
    let mut rpm = Pool::new("x86_64").unwrap();
    assert_eq!(rpm.disttype(), DistType::Rpm);
    rpm.add_rpmmd("r", &r.primary).unwrap();
    rpm.prepare();
    assert_eq!(rpm.installable_names(), ["docs"]);
    // Debian's default: `noarch` is no architecture there, so an RPM tree
    // solved in that mode silently loses every noarch package.
    let mut deb = Pool::new_debian_mode("x86_64").unwrap();
    assert_eq!(deb.disttype(), DistType::Deb);
    deb.add_rpmmd("r", &r.primary).unwrap();
    deb.prepare();
    assert!(deb.installable_names().is_empty());
    // rpm's version order: a tilde sorts before the release it precedes.
    assert_eq!(
        rpm.evr_cmp("1.0~rc1-1", "1.0-1").unwrap(),
        std::cmp::Ordering::Less
    );
    assert_eq!(
        rpm.evr_cmp("1:0.1-1", "2.0-1").unwrap(),
        std::cmp::Ordering::Greater
    );
}

#[test]
fn versioned_virtual_and_rich_dependencies() {
    let (mut pool, _r) = pool_with(&[
        pkg("libfoo", (0, "1.0", "1"), "x86_64", ""),
        pkg("libfoo", (2, "2.1", "3"), "x86_64", ""),
        pkg("httpd-lite", (0, "2.4", "1"), "x86_64", "<rpm:provides><rpm:entry name=\"webserver\"/></rpm:provides>"),
        pkg(
            "app",
            (0, "1.0", "1"),
            "x86_64",
            "<rpm:requires><rpm:entry name=\"libfoo\" flags=\"GE\" epoch=\"2\" ver=\"2.0\"/>\
             <rpm:entry name=\"webserver\"/><rpm:entry name=\"(httpd-lite or nginx-lite)\"/></rpm:requires>",
        ),
    ]);
    let got = install(&mut pool, &["app"], true).unwrap();
    assert_eq!(names(&got), ["app", "httpd-lite", "libfoo"]);
    let libfoo = got.iter().find(|p| p.name == "libfoo").unwrap();
    assert_eq!(
        (
            libfoo.epoch,
            libfoo.version.as_str(),
            libfoo.release.as_str()
        ),
        (2, "2.1", "3")
    );
    assert_eq!(libfoo.nevra(), "libfoo-2:2.1-3.x86_64");
    assert_eq!(libfoo.location, "Packages/libfoo-2.1-3.x86_64.rpm");
    assert_eq!(libfoo.checksum.as_ref().unwrap().kind, "sha256");
    assert_eq!(libfoo.checksum.as_ref().unwrap().hex, format!("{:064x}", 2));
    assert_eq!(libfoo.download_size, 1001);
    // A version relation in the request itself picks the older build.
    let got = install(&mut pool, &["libfoo < 1:0"], true).unwrap();
    assert_eq!(got[0].evr(), "1.0-1");
}

#[test]
fn file_dependencies_report_what_filelists_must_supply() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("primary.xml");
    std::fs::write(
        &p,
        primary(&[
            // primary lists only "interesting" paths (bin dirs, /etc).
            pkg(
                "busybox",
                (1, "1.35", "1"),
                "x86_64",
                "<file>/usr/bin/busybox</file>",
            ),
            pkg("data", (0, "1", "1"), "noarch", ""),
            pkg(
                "tool",
                (0, "1", "1"),
                "x86_64",
                "<rpm:requires><rpm:entry name=\"/usr/bin/busybox\"/>\
                 <rpm:entry name=\"/usr/share/data/table\"/></rpm:requires>",
            ),
        ]),
    )
    .unwrap();
    let filelists = dir.path().join("filelists.xml");
    std::fs::write(
        &filelists,
        "<?xml version=\"1.0\"?>\n<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\">\
         <package pkgid=\"0000000000000000000000000000000000000000000000000000000000000002\" name=\"data\" arch=\"noarch\">\
         <version epoch=\"0\" ver=\"1\" rel=\"1\"/><file>/usr/share/data/table</file></package></filelists>\n",
    )
    .unwrap();
    let mut pool = Pool::new("x86_64").unwrap();
    let idx = pool.add_rpmmd("r", &p).unwrap();
    assert_eq!(pool.prepare(), ["/usr/share/data/table"]);
    let err = install(&mut pool, &["tool"], true).unwrap_err();
    assert!(
        format!("{err}").contains("nothing provides /usr/share/data/table"),
        "{err}"
    );
    pool.add_filelists(idx, &filelists).unwrap();
    assert!(pool.prepare().is_empty());
    let got = install(&mut pool, &["tool"], true).unwrap();
    assert_eq!(names(&got), ["busybox", "data", "tool"]);
}

#[test]
fn recommends_follow_the_request() {
    let (mut pool, _r) = pool_with(&[
        pkg(
            "app",
            (0, "1", "1"),
            "x86_64",
            "<rpm:recommends><rpm:entry name=\"app-docs\"/></rpm:recommends>",
        ),
        pkg("app-docs", (0, "1", "1"), "noarch", ""),
    ]);
    assert_eq!(
        names(&install(&mut pool, &["app"], true).unwrap()),
        ["app", "app-docs"]
    );
    assert_eq!(
        names(&install(&mut pool, &["app"], false).unwrap()),
        ["app"]
    );
}

#[test]
fn problems_carry_libsolv_text() {
    let (mut pool, _r) = pool_with(&[
        pkg(
            "broken",
            (0, "1", "1"),
            "x86_64",
            "<rpm:requires><rpm:entry name=\"does-not-exist\"/></rpm:requires>",
        ),
        pkg(
            "app",
            (0, "1", "1"),
            "x86_64",
            "<rpm:conflicts><rpm:entry name=\"oldapp\"/></rpm:conflicts>",
        ),
        pkg("oldapp", (0, "1", "1"), "x86_64", ""),
    ]);
    match install(&mut pool, &["broken"], true) {
        Err(Error::Unsolvable(p)) => {
            assert!(
                p[0].contains("nothing provides does-not-exist needed by broken-1-1.x86_64"),
                "{p:?}"
            )
        }
        other => panic!("expected a problem, got {other:?}"),
    }
    match install(&mut pool, &["app", "oldapp"], true) {
        Err(Error::Unsolvable(p)) => assert!(p.iter().any(|l| l.contains("conflicts")), "{p:?}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(
        matches!(install(&mut pool, &["no-such-thing"], true), Err(Error::NoMatch(n)) if n == "no-such-thing")
    );
}

#[test]
fn obsoletes_replace_within_one_transaction() {
    let (mut pool, _r) = pool_with(&[
        pkg("oldtool", (0, "1.0", "1"), "x86_64", ""),
        pkg(
            "newtool",
            (0, "2.0", "1"),
            "x86_64",
            "<rpm:obsoletes><rpm:entry name=\"oldtool\" flags=\"LT\" epoch=\"0\" ver=\"2.0\"/></rpm:obsoletes>",
        ),
        pkg("user", (0, "1", "1"), "x86_64", "<rpm:requires><rpm:entry name=\"oldtool\"/></rpm:requires>"),
    ]);
    // Both asked for: the obsoleting package wins and the other cannot be
    // installed beside it.
    assert!(install(&mut pool, &["newtool", "oldtool"], true).is_err());
    assert_eq!(
        names(&install(&mut pool, &["newtool"], true).unwrap()),
        ["newtool"]
    );
}

#[test]
fn arch_policy_prefers_the_native_arch_and_refuses_foreign_ones() {
    let (mut pool, _r) = pool_with(&[
        pkg("lib", (0, "1", "1"), "i686", ""),
        pkg("lib", (0, "1", "1"), "x86_64", ""),
        pkg("foreign", (0, "1", "1"), "ppc64le", ""),
    ]);
    let got = install(&mut pool, &["lib"], true).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].arch, "x86_64");
    assert!(install(&mut pool, &["foreign"], true).is_err());
    assert_eq!(
        install(&mut pool, &["lib.i686"], true).unwrap()[0].arch,
        "i686"
    );
}

#[test]
fn install_order_puts_requirements_first() {
    let (mut pool, _r) = pool_with(&[
        pkg(
            "setup",
            (0, "2.14", "1"),
            "noarch",
            "<rpm:requires><rpm:entry name=\"filesystem\" pre=\"1\"/></rpm:requires>",
        ),
        pkg("filesystem", (0, "3.18", "1"), "x86_64", ""),
        pkg(
            "app",
            (0, "1", "1"),
            "x86_64",
            "<rpm:requires><rpm:entry name=\"setup\" pre=\"1\"/></rpm:requires>",
        ),
    ]);
    let got = install(&mut pool, &["app"], true).unwrap();
    let order: Vec<&str> = got.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(order, ["filesystem", "setup", "app"]);
}

#[test]
fn excluded_packages_are_never_chosen() {
    let (mut pool, _r) = pool_with(&[
        pkg("libfoo", (0, "1.0", "1"), "x86_64", ""),
        pkg("libfoo", (2, "2.1", "3"), "x86_64", ""),
    ]);
    assert_eq!(install(&mut pool, &["libfoo"], true).unwrap()[0].epoch, 2);
    let mut seen = 0;
    pool.exclude(|_, name| {
        seen += 1;
        name == "libfoo"
    });
    assert_eq!(seen, 2);
    assert!(install(&mut pool, &["libfoo"], true).is_err());
}

#[test]
fn unreadable_metadata_names_the_file() {
    let mut pool = Pool::new("x86_64").unwrap();
    let err = pool
        .add_rpmmd("r", std::path::Path::new("/nonexistent/primary.xml.gz"))
        .unwrap_err();
    assert!(
        format!("{err}").contains("/nonexistent/primary.xml.gz"),
        "{err}"
    );
}
