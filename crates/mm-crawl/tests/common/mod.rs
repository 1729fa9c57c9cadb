//! Shared by the integration tests: trees made with createrepo_c and the
//! ostree CLI, small HTTP mirrors on 127.0.0.1 (some broken on purpose),
//! and an rsync daemon.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use testkit::http::{free_port, Server};
use testkit::{assert_valid_manifest, ostree, tempdir, tool};

pub fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

pub fn sha256sum(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// A yum repo with one file, made by createrepo_c.
pub fn yum_repo(dir: &Path) {
    std::fs::create_dir_all(dir.join("Packages")).unwrap();
    std::fs::write(dir.join("Packages/readme.txt"), b"not an rpm").unwrap();
    testkit::createrepo(dir);
}

/// An archive ostree repo with refs for `arches`, and its summary.
pub fn ostree_repo(repo: &Path, arches: &[&str], subject: &str) {
    let r = s(repo);
    if !repo.join("config").exists() {
        std::fs::create_dir_all(repo).unwrap();
        ostree(&["init", "--repo", &r, "--mode", "archive"]);
    }
    let tree = tempdir();
    std::fs::write(tree.path().join("hello"), subject).unwrap();
    for a in arches {
        ostree(&[
            "commit",
            "--repo",
            &r,
            &format!("--branch=fedora-atomic/rawhide/{a}/docker-host"),
            &format!("--subject={subject}"),
            &format!("--tree=dir={}", s(tree.path())),
        ]);
    }
    ostree(&["summary", "-u", "--repo", &r]);
}

pub struct Tree {
    pub _dir: tempfile::TempDir,
    pub root: PathBuf,
}

pub fn tree() -> Tree {
    let dir = tempdir();
    let root = dir.path().join("linux");
    yum_repo(&root.join("development/rawhide/Everything/x86_64/os"));
    yum_repo(&root.join("updates/41/Everything/aarch64"));
    ostree_repo(&root.join("atomic/rawhide"), &["x86_64", "aarch64"], "one");
    std::fs::write(root.join("README"), b"hi").unwrap();
    Tree { _dir: dir, root }
}

pub fn scan(root: &Path, state: &Path) -> Value {
    let out = tool(
        "mm-crawl",
        &["scan", "--root", &s(root), "--state", &s(state)],
        None,
    )
    .ok();
    let doc = out.json();
    assert_valid_manifest(&doc);
    doc
}

/// What a test HTTP server does with each request.
#[derive(Clone)]
pub enum Mode {
    /// Serves files under this directory (404 for others), with an ETag
    /// and 304 answers to a matching If-None-Match.
    Files(PathBuf),
    /// 404 for everything.
    NotFound,
    /// Accepts and never answers.
    Hang,
    /// 200 with a body that never ends.
    Endless,
    /// 503 for the first N requests, then as `Files`.
    Flaky(Arc<AtomicU32>, PathBuf),
    /// Hangs while the flag is false, then as `Files`.
    Switch(Arc<AtomicBool>, PathBuf),
}

/// Requests a server saw: total, and how many it answered 304.
#[derive(Default)]
pub struct Seen {
    pub requests: AtomicU32,
    pub not_modified: AtomicU32,
}

/// Starts a server on 127.0.0.1 and returns its base URL.
pub fn serve(mode: Mode) -> String {
    serve_counting(mode).0
}

pub fn serve_counting(mode: Mode) -> (String, Arc<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let (mode, seen) = (mode.clone(), seen2.clone());
            std::thread::spawn(move || answer(conn, mode, &seen));
        }
    });
    (format!("http://127.0.0.1:{port}/pub"), seen)
}

pub fn answer(conn: TcpStream, mode: Mode, seen: &Seen) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        seen.requests.fetch_add(1, Ordering::SeqCst);
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let head = line.starts_with("HEAD ");
        let mut if_none_match = None;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("if-none-match") {
                    if_none_match = Some(v.trim().to_string());
                }
            }
        }
        let dir = match &mode {
            Mode::Hang => {
                std::thread::sleep(Duration::from_secs(60));
                return;
            }
            Mode::NotFound => {
                let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                continue;
            }
            Mode::Endless => {
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                let chunk = vec![b'x'; 1 << 16];
                while w.write_all(&chunk).is_ok() {}
                return;
            }
            Mode::Flaky(left, dir) => {
                if left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let _ = w.write_all(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n");
                    continue;
                }
                dir
            }
            Mode::Switch(on, dir) => {
                if !on.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_secs(60));
                    return;
                }
                dir
            }
            Mode::Files(dir) => dir,
        };
        let rel = path.strip_prefix("/pub/").unwrap_or("");
        match std::fs::read(dir.join(rel)) {
            Ok(body) => {
                let etag = format!("\"{}\"", &file_details::sha256_hex(&body)[..16]);
                if if_none_match.as_deref() == Some(etag.as_str()) {
                    seen.not_modified.fetch_add(1, Ordering::SeqCst);
                    let _ = write!(w, "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n\r\n");
                    continue;
                }
                let _ = write!(
                    w,
                    "HTTP/1.1 200 OK\r\nETag: {etag}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if !head {
                    let _ = w.write_all(&body);
                }
            }
            Err(_) => {
                let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            }
        }
    }
}

pub fn mirrors_toml(hosts: &[(&str, &str)]) -> String {
    hosts
        .iter()
        .map(|(name, url)| {
            format!("[[host]]\nname = \"{name}\"\ncountry = \"de\"\nurls = [\"{url}\"]\n\n")
        })
        .collect()
}

pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// An rsync daemon serving `dir` as module `pub`; killed when dropped.
pub fn rsync_daemon(dir: &Path, tmp: &Path) -> Server {
    let port = free_port();
    let conf = tmp.join("rsyncd.conf");
    std::fs::write(
        &conf,
        format!(
            "use chroot = false\npid file = {}\n[pub]\npath = {}\nread only = true\n",
            s(&tmp.join("rsyncd.pid")),
            s(dir)
        ),
    )
    .unwrap();
    let mut cmd = Command::new("rsync");
    cmd.args(["--daemon", "--no-detach", "--address", "127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--config={}", s(&conf)));
    Server::start(cmd, port)
}

/// The `pub` module of an [`rsync_daemon`].
pub fn rsync_url(d: &Server) -> String {
    format!("rsync://127.0.0.1:{}/pub", d.port)
}

pub fn crawl(doc: &Value, mfile: &Path, state: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["mirrors", "--mirrors", mfile.to_str().unwrap(), "--state"];
    args.push(state.to_str().unwrap());
    args.extend_from_slice(extra);
    let out = tool("mm-crawl", &args, Some(&serde_json::to_vec(doc).unwrap())).ok();
    let m = out.json();
    assert_valid_manifest(&m);
    m
}

pub fn host<'a>(m: &'a Value, name: &str) -> &'a Value {
    m["payload"]["mirrors"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap()
}

pub fn statuses(h: &Value) -> Vec<String> {
    h["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}
