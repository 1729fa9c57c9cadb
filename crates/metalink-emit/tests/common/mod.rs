//! Shared by the integration tests: real ostree and yum repositories,
//! mirrors of them served by Python's http.server on 127.0.0.1, the
//! `scan`/`mirrors` sections mm-crawl would write for them, the server
//! under test and a minimal HTTP client.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use file_details::FileDetails;
use releng_manifest::*;

pub const REF: &str = "fedora-atomic/rawhide/x86_64/docker-host";

/// A child process killed (and reaped) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `python3 -m http.server` serving `dir`; returns it and its base URL.
pub fn http_server(dir: &Path) -> (testkit::http::Server, String) {
    let server = testkit::http::static_server(dir);
    let url = server.url();
    (server, url)
}

/// Copies `from` into `to` recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Flips one byte in the middle of `file`: same size, other content, what
/// a size-only crawl cannot see.
pub fn tamper(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(file, bytes).unwrap();
}

/// An archive ostree repository with one commit on [`REF`] and a summary,
/// at `dir/repo`.
pub fn ostree_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    let r = repo.to_str().unwrap();
    testkit::ostree(&["init", "--repo", r, "--mode=archive"]);
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("usr/bin")).unwrap();
    fs::write(tree.join("usr/bin/tool"), b"#!/bin/sh\necho hello\n").unwrap();
    let t = format!("--tree=dir={}", tree.display());
    testkit::ostree(&["commit", "--repo", r, "-b", REF, &t]);
    testkit::ostree(&["summary", "--repo", r, "-u"]);
    repo
}

/// The metadata file at `path` as the scan describes it.
pub fn metadata(path: &Path, timestamp: i64) -> MetadataFile {
    MetadataFile {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        details: FileDetails::of_path(path).unwrap(),
        timestamp,
    }
}

/// A scan repository.
pub fn scan_repo(path: &str, kind: RepoKind, prefix: &str, file: MetadataFile) -> ScanRepo {
    ScanRepo {
        path: path.to_string(),
        kind,
        prefix: prefix.to_string(),
        arch: "x86_64".to_string(),
        file,
        alternates: vec![],
        refs: vec![],
        mode: None,
    }
}

/// A reachable mirror host at `url`, with the given verdict for each repo
/// path.
pub fn mirror(name: &str, url: &str, repos: &[(&str, RepoStatus)]) -> MirrorHost {
    MirrorHost {
        name: name.to_string(),
        country: "US".to_string(),
        continent: Some("NA".to_string()),
        bandwidth: 100,
        asn: None,
        netblocks: vec![],
        private: false,
        always_up2date: false,
        urls: vec![url.to_string()],
        state: HostState::Ok,
        duration_s: 0.01,
        crawled_at: 1_795_000_000,
        repos: repos
            .iter()
            .map(|(p, s)| MirrorRepo {
                path: p.to_string(),
                status: *s,
                sha256: None,
                url: format!("{url}/{p}"),
                detail: None,
            })
            .collect(),
    }
}

/// A manifest holding the two sections.
pub fn manifest(repos: Vec<ScanRepo>, hosts: Vec<MirrorHost>) -> Vec<u8> {
    let mut m = Manifest::new();
    m.set(&ScanSection {
        root: "/pub".to_string(),
        category: "Test".to_string(),
        repos,
        directories: 3,
        files: 10,
        hashed: 1,
        duration_s: 0.0,
    })
    .unwrap();
    m.set(&MirrorsSection {
        source: "/etc/mirrors.toml".to_string(),
        crawled_at: 1_795_000_000,
        duration_s: 0.1,
        hosts,
    })
    .unwrap();
    m.to_bytes()
}

/// Replaces `path` with `bytes` atomically, as the pipeline's `--output`.
pub fn replace(path: &Path, bytes: &[u8]) {
    releng_manifest::write_atomic(path, |f| f.write_all(bytes)).unwrap();
}

/// `metalink-emit serve` on a free port, its stderr collected.
pub struct Serve {
    pub proc: Proc,
    pub base: String,
    pub stderr: Arc<Mutex<String>>,
}

impl Serve {
    pub fn start(manifest: &Path) -> Serve {
        Serve::start_with(manifest, &[])
    }

    /// Starts with `extra` arguments.
    pub fn start_with(manifest: &Path, extra: &[&str]) -> Serve {
        let mut child = Command::new(testkit::bin("metalink-emit"))
            .args(["serve", "--listen", "127.0.0.1:0", "--manifest"])
            .arg(manifest)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("metalink-emit serve");
        let err = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log = stderr.clone();
        // Drained for the server's whole life: a full pipe would block it.
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let proc = Proc(child);
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!(
                    "serve did not say where it listens:\n{}",
                    stderr.lock().unwrap()
                )
            });
        Serve {
            proc,
            base: format!("http://{addr}"),
            stderr,
        }
    }

    /// Sends `sig` (a `kill -s` name) to the server.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args(["-s", sig, &self.proc.0.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the log holds `what`.
    pub fn wait_log(&self, what: &str, limit: Duration) -> bool {
        wait_until(limit, || self.log().contains(what))
    }

    /// Waits until `what` appears in the log more than `seen` times.
    pub fn wait_log_more(&self, what: &str, seen: usize, limit: Duration) -> bool {
        wait_until(limit, || self.log().matches(what).count() > seen)
    }
}

/// Polls `ok` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A metadata file with fake digests.
pub fn fake_file(name: &str) -> MetadataFile {
    MetadataFile {
        name: name.to_string(),
        details: FileDetails::from_bytes(name.as_bytes(), 1_795_000_000),
        timestamp: 1_795_000_000,
    }
}

/// A yum and an ostree repository with fake digests, and the verdict
/// list of a mirror up to date for both.
pub fn two_repos() -> (Vec<ScanRepo>, [(&'static str, RepoStatus); 2]) {
    let repos = vec![
        scan_repo(
            "fedora/x86_64/os",
            RepoKind::Yum,
            "fedora",
            fake_file("repomd.xml"),
        ),
        scan_repo(
            "atomic/repo",
            RepoKind::Ostree,
            "fedora-atomic",
            fake_file("summary"),
        ),
    ];
    let both = [
        ("fedora/x86_64/os", RepoStatus::Up2date),
        ("atomic/repo", RepoStatus::Up2date),
    ];
    (repos, both)
}

/// A response as [`get`] returns it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// GET `base` + `target` over HTTP/1.1 with extra `headers`.
pub fn get(base: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let addr = base.strip_prefix("http://").unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A minimal MaxMind DB (IPv4, 24-bit records) placing `prefix`/`len` in
/// `country` on `continent` and knowing nothing else: the format written
/// by hand, since no writer is packaged.
pub fn mmdb(prefix: [u8; 4], len: usize, country: &str, continent: &str) -> Vec<u8> {
    fn str_(out: &mut Vec<u8>, s: &str) {
        assert!(s.len() < 29);
        out.push((2 << 5) | s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    fn map(out: &mut Vec<u8>, n: usize) {
        out.push((7 << 5) | n as u8);
    }
    fn u16_(out: &mut Vec<u8>, v: u16) {
        out.push((5 << 5) | 2);
        out.extend_from_slice(&v.to_be_bytes());
    }
    fn u32_(out: &mut Vec<u8>, v: u32) {
        out.push((6 << 5) | 4);
        out.extend_from_slice(&v.to_be_bytes());
    }
    let node_count = len as u32;
    let bits = u32::from_be_bytes(prefix);
    let mut out = Vec::new();
    for i in 0..len {
        let bit = (bits >> (31 - i)) & 1;
        // The data section starts 16 bytes after the tree; ours holds one
        // record at offset 0.
        let on = if i + 1 < len {
            i as u32 + 1
        } else {
            node_count + 16
        };
        let (left, right) = if bit == 0 {
            (on, node_count)
        } else {
            (node_count, on)
        };
        out.extend_from_slice(&left.to_be_bytes()[1..]);
        out.extend_from_slice(&right.to_be_bytes()[1..]);
    }
    out.extend_from_slice(&[0; 16]);
    map(&mut out, 2);
    str_(&mut out, "continent");
    map(&mut out, 1);
    str_(&mut out, "code");
    str_(&mut out, continent);
    str_(&mut out, "country");
    map(&mut out, 1);
    str_(&mut out, "iso_code");
    str_(&mut out, country);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    map(&mut out, 9);
    str_(&mut out, "binary_format_major_version");
    u16_(&mut out, 2);
    str_(&mut out, "binary_format_minor_version");
    u16_(&mut out, 0);
    str_(&mut out, "build_epoch");
    out.extend_from_slice(&[8, 2]); // extended type 9 (uint64), 8 bytes
    out.extend_from_slice(&1_795_000_000u64.to_be_bytes());
    str_(&mut out, "database_type");
    str_(&mut out, "Test-Country");
    str_(&mut out, "description");
    map(&mut out, 0);
    str_(&mut out, "ip_version");
    u16_(&mut out, 4);
    str_(&mut out, "languages");
    out.extend_from_slice(&[0, 4]); // extended type 11 (array), empty
    str_(&mut out, "node_count");
    u32_(&mut out, node_count);
    str_(&mut out, "record_size");
    u16_(&mut out, 24);
    out
}
