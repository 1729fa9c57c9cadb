//! `metalink-emit serve`: MirrorManager's queries, errors, reloads,
//! signals, and load with wrk (with the manifest rewritten under it).

mod common;

use std::fs;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use testkit::{require, tempdir};

/// Two repositories (yum and ostree) on `n` public mirrors in DE and US,
/// one private mirror for 10.0.0.0/8, and one whose URL needs escaping.
fn world(n: usize) -> Vec<u8> {
    let (repos, both) = two_repos();
    let mut hosts: Vec<_> = (0..n)
        .map(|i| {
            let mut h = mirror(&format!("m{i}"), &format!("http://m{i}.example/pub"), &both);
            h.country = if i % 2 == 0 { "DE" } else { "US" }.into();
            h.continent = Some(if i % 2 == 0 { "EU" } else { "NA" }.into());
            h
        })
        .collect();
    let mut private = mirror("campus", "https://campus.example/pub", &both);
    private.private = true;
    private.netblocks = vec!["10.0.0.0/8".into()];
    hosts.push(private);
    let mut amp = mirror("amp", "http://amp.example/a&b<c>", &both);
    amp.country = "FR".into();
    amp.continent = Some("EU".into());
    hosts.push(amp);
    manifest(repos, hosts)
}

#[test]
fn serve_answers_mirrormanager_queries() {
    let dir = tempdir();
    let m = dir.path().join("m.json");
    fs::write(&m, world(10)).unwrap();
    let s = Serve::start(&m);
    let b = &s.base;

    let r = get(b, "/metalink?repo=fedora&arch=x86_64", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/metalink+xml"));
    assert!(r.body.contains("<file name=\"repomd.xml\">"));
    assert!(r
        .body
        .contains("http://amp.example/a&amp;b&lt;c&gt;/fedora/x86_64/os/repodata/repomd.xml"));
    assert_eq!(
        r.body.matches("<url ").count(),
        11,
        "every public host: {}",
        r.body
    );
    assert!(
        !r.body.contains("campus"),
        "private host for an outside client"
    );

    // repo=&arch= of an ostree repository is its summary metalink.
    let r = get(b, "/metalink?repo=fedora-atomic&arch=x86_64", &[]);
    assert!(r.body.contains("<file name=\"summary\">"), "{}", r.body);
    assert!(r.body.contains("http://m0.example/pub/atomic/repo/summary"));
    for p in ["atomic/repo", "/atomic/repo/", "atomic/repo/summary"] {
        let r = get(b, &format!("/metalink?path={p}"), &[]);
        assert_eq!(r.status, 200, "path={p}");
        assert!(r.body.contains("<file name=\"summary\">"));
    }

    // Country first, at least 5 (continent, then global, fill).
    let r = get(b, "/metalink?repo=fedora&arch=x86_64&cc=de", &[]);
    assert_eq!(r.body.matches("<url ").count(), 5);
    assert_eq!(r.body.matches("location=\"DE\"").count(), 5, "{}", r.body);
    let r = get(b, "/mirrorlist?repo=fedora&arch=x86_64&country=US", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(lines[0], "# repo = fedora arch = x86_64 country = US");
    assert_eq!(lines.len(), 1 + 5, "the five US hosts");
    assert!(lines[1..].iter().all(|l| l.ends_with("/fedora/x86_64/os/")));

    // The private mirror: by ip=, or the last X-Forwarded-For entry.
    let r = get(b, "/metalink?repo=fedora&arch=x86_64&ip=10.1.2.3", &[]);
    let first = r.body.find("<url ").unwrap();
    assert!(r.body[first..].starts_with("<url protocol=\"https\" type=\"https\" location=\"US\" preference=\"100\" mm0:private=\"True\">https://campus.example"), "{}", r.body);
    let r = get(
        b,
        "/metalink?repo=fedora&arch=x86_64",
        &[("X-Forwarded-For", "192.0.2.1, 10.9.9.9")],
    );
    assert!(r.body.contains("campus"));
    let r = get(
        b,
        "/metalink?repo=fedora-atomic&arch=x86_64&ip=10.1.2.3",
        &[],
    );
    assert!(
        r.body.contains("campus") && !r.body.contains("mm0:private"),
        "{}",
        r.body
    );
    let r = get(
        b,
        "/metalink?repo=fedora&arch=x86_64&ip=10.1.2.3&netblock=0",
        &[],
    );
    assert!(!r.body.contains("campus"));

    // Protocol filter, meta4, redirect.
    let r = get(
        b,
        "/metalink?repo=fedora&arch=x86_64&protocol=https&ip=10.0.0.1",
        &[],
    );
    assert_eq!(r.body.matches("<url ").count(), 1);
    let r = get(b, "/metalink?repo=fedora&arch=x86_64&format=meta4", &[]);
    assert_eq!(r.header("content-type"), Some("application/metalink4+xml"));
    assert!(r.body.contains("urn:ietf:params:xml:ns:metalink"));
    let r = get(b, "/metalink?path=atomic/repo&redirect=1&country=US", &[]);
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap();
    // world(): odd-numbered hosts are the US ones.
    let n: usize = loc
        .strip_prefix("http://m")
        .and_then(|r| r.strip_suffix(".example/pub/atomic/repo/summary"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a mirror URL: {loc}"));
    assert_eq!(n % 2, 1, "redirected to a non-US host: {loc}");

    // Not found: 404 with a comment-only metalink.
    let r = get(b, "/metalink?repo=nope&arch=x86_64", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/metalink+xml"));
    assert!(
        r.body
            .contains("<!-- No repository found for repo=nope arch=x86_64 -->"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<url"));
    // path= is a lookup, never a file.
    let r = get(b, "/metalink?path=../../../../etc/passwd", &[]);
    assert_eq!(r.status, 404);
    assert!(!r.body.contains("root:"));
    let r = get(b, "/mirrorlist?repo=nope&arch=x", &[]);
    assert_eq!(r.status, 404);
    assert!(r.body.starts_with("# "));

    // Malformed and oversized: 400.
    for q in [
        "/metalink?path=%zz",
        "/metalink?repo=fedora",
        "/metalink?repo=fedora&arch=x86_64&ip=300.1.1.1",
        "/metalink?repo=fedora&arch=x86_64&country=Germany",
        "/metalink?repo=fedora&arch=x86_64&protocol=gopher",
    ] {
        assert_eq!(get(b, q, &[]).status, 400, "{q}");
    }
    let long = format!("/metalink?repo=fedora&arch=x86_64&pad={}", "a".repeat(3000));
    assert_eq!(get(b, &long, &[]).status, 400);
    assert_eq!(get(b, "/other", &[]).status, 404);

    // The access log reaches stderr (flushed within a second or so).
    assert!(
        s.wait_log(
            "\"GET /metalink?repo=nope&arch=x86_64\" 404",
            Duration::from_secs(5)
        ),
        "{}",
        s.log()
    );
}

#[test]
fn serve_reloads_on_change_and_sighup_and_keeps_a_good_manifest() {
    let dir = tempdir();
    let m = dir.path().join("m.json");
    fs::write(&m, world(2)).unwrap();
    let s = Serve::start(&m);
    let q = "/mirrorlist?repo=fedora&arch=x86_64";
    assert_eq!(get(&s.base, q, &[]).body.lines().count(), 1 + 3);

    replace(&m, &world(6));
    assert!(
        wait_until(Duration::from_secs(10), || {
            get(&s.base, q, &[]).body.lines().count() == 1 + 7
        }),
        "no reload:\n{}",
        s.log()
    );

    // A broken manifest is logged; the last good one stays.
    replace(&m, b"{\"header\": {\"type\": \"releng-manifest\"");
    assert!(
        s.wait_log(
            "still serving the previous manifest",
            Duration::from_secs(10)
        ),
        "{}",
        s.log()
    );
    assert_eq!(get(&s.base, q, &[]).body.lines().count(), 1 + 7);

    // SIGHUP reloads even when the file looks unchanged: same inode, same
    // size ("up2date" and "missing" are both 7 bytes), mtime restored.
    // This reload must be logged anew, not matched against the first one.
    let reloads = s.log().matches("reloaded").count();
    replace(&m, &world(6));
    assert!(s.wait_log_more("reloaded", reloads, Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(1500));
    let before = fs::metadata(&m).unwrap();
    let text = String::from_utf8(world(6)).unwrap();
    let changed = text.replacen("\"up2date\"", "\"missing\"", 1);
    assert_eq!(changed.len(), text.len());
    fs::write(&m, changed).unwrap();
    fs::File::options()
        .write(true)
        .open(&m)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        get(&s.base, q, &[]).body.lines().count(),
        1 + 7,
        "reloaded without a visible change?"
    );
    s.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || {
            get(&s.base, q, &[]).body.lines().count() == 1 + 6
        }),
        "no reload on SIGHUP:\n{}",
        s.log()
    );

    // SIGTERM: a clean exit.
    let mut s = s;
    s.signal("TERM");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = s.proc.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}\n{}", s.log());
}

#[test]
fn serve_places_clients_with_geoip() {
    let dir = tempdir();
    let m = dir.path().join("m.json");
    fs::write(&m, world(10)).unwrap();
    let db = dir.path().join("test.mmdb");
    fs::write(&db, mmdb([192, 0, 2, 0], 24, "DE", "EU")).unwrap();
    let s = Serve::start_with(&m, &["--geoip", db.to_str().unwrap()]);
    let q = "/mirrorlist?repo=fedora&arch=x86_64";
    // Inside the database's German block: the five German hosts.
    let r = get(&s.base, &format!("{q}&ip=192.0.2.7"), &[]);
    assert!(
        r.body
            .starts_with("# repo = fedora arch = x86_64 country = DE\n"),
        "{}",
        r.body
    );
    assert_eq!(r.body.lines().count(), 1 + 5);
    let r = get(&s.base, q, &[("X-Forwarded-For", "192.0.2.200")]);
    assert_eq!(r.body.lines().count(), 1 + 5, "{}", r.body);
    // country= beats GeoIP; an unknown address is global.
    let r = get(&s.base, &format!("{q}&ip=192.0.2.7&country=US"), &[]);
    assert!(r.body.contains("country = US"));
    let r = get(&s.base, &format!("{q}&ip=198.51.100.1"), &[]);
    assert_eq!(r.body.lines().count(), 1 + 11, "{}", r.body);
    let r = get(&s.base, &format!("{q}&ip=2001:db8::1"), &[]);
    assert_eq!(r.status, 200);

    let bad = dir.path().join("bad.mmdb");
    fs::write(&bad, b"not a database").unwrap();
    let r = testkit::tool(
        "metalink-emit",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--manifest",
            m.to_str().unwrap(),
            "--geoip",
            bad.to_str().unwrap(),
        ],
        None,
    );
    let r = r.fails_with(2);
    assert!(r.stderr.contains("bad.mmdb"), "{}", r.stderr);
}

#[test]
fn serve_refuses_a_manifest_without_mirror_sections() {
    let dir = tempdir();
    let m = dir.path().join("m.json");
    fs::write(&m, releng_manifest::Manifest::new().to_bytes()).unwrap();
    let r = testkit::tool(
        "metalink-emit",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--manifest",
            m.to_str().unwrap(),
        ],
        None,
    )
    .fails_with(2);
    assert!(r.stderr.contains("`scan`"), "{}", r.stderr);
}

/// wrk's totals: (requests, whether it saw any error or non-2xx).
fn wrk(url: &str, secs: u32) -> (u64, String) {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{secs}s"), "--latency", url])
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wrk failed: {text}");
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in:\n{text}"));
    (requests, text)
}

#[test]
fn serve_under_load_and_while_the_manifest_is_rewritten() {
    require!("wrk");
    let dir = tempdir();
    let m = dir.path().join("m.json");
    fs::write(&m, world(40)).unwrap();
    let s = Serve::start(&m);
    let url = format!("{}/metalink?repo=fedora&arch=x86_64&country=DE", s.base);

    let (n, text) = wrk(&url, 8);
    assert!(n > 1000, "{text}");
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "{text}"
    );

    // The same while a writer replaces the manifest several times a second
    // (alternating two host counts so that every write is a real change).
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, m) = (stop.clone(), m.clone());
        std::thread::spawn(move || {
            let (a, b) = (world(40), world(41));
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                replace(&m, if i % 2 == 0 { &b } else { &a });
                i += 1;
                std::thread::sleep(Duration::from_millis(300));
            }
            i
        })
    };
    let (n, text) = wrk(&url, 8);
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 10);
    assert!(n > 1000, "{text}");
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "{text}"
    );
    let reloads = s.log().matches("reloaded").count();
    assert!(
        reloads >= 5,
        "only {reloads} reloads during the run:\n{}",
        s.log()
    );
}
