//! `cargo xtask bench serve`: `metalink-emit serve` against nginx serving
//! the same metalinks as static files (the practical ceiling), with wrk,
//! on a manifest of 300 mirror hosts × 200 repositories.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::{root, run};

const HOSTS: usize = 300;
const REPOS: usize = 200;
/// Seconds per wrk run.
const SECONDS: u32 = 15;

/// A child process stopped when dropped, so a failed run leaves no server:
/// SIGTERM first (nginx's master then stops its workers, which a SIGKILL
/// would orphan), SIGKILL after 5 s.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What wrk measured.
#[derive(Clone, Copy, Debug)]
struct Wrk {
    rps: f64,
    p99_ms: f64,
    errors: u64,
}

pub fn run(runs: usize) -> anyhow::Result<()> {
    let root = root();
    run::cargo(
        &root,
        &["build", "--release", "-p", "metalink-emit", "--bins"],
    )?;
    let bin = run::release_bin(&root, "metalink-emit");
    let dir = root.join("target/bench/serve");
    crate::fixtures::fresh_dir(&dir)?;
    let manifest = dir.join("manifest.json");
    std::fs::write(&manifest, serde_json::to_vec(&generate())?)?;

    // The static files nginx serves: what the server answers, written once.
    let www = dir.join("www");
    for (sub, country) in [("global", None), ("de", Some("DE"))] {
        let mut cmd = Command::new(&bin);
        cmd.arg("--manifest")
            .arg(&manifest)
            .arg("--output-dir")
            .arg(www.join(sub))
            .args(["--format", "metalink3", "--format", "mirrorlist", "-q"]);
        if let Some(c) = country {
            cmd.args(["--country", c]);
        }
        run::output(&mut cmd)?;
    }

    let (serve, port) = start_serve(&bin, &manifest)?;
    let nginx = start_nginx(&dir, &www)?;
    let ours = format!("http://127.0.0.1:{port}");
    let theirs = format!("http://127.0.0.1:{}", nginx.1);
    let q = "repo=bench-000&arch=x86_64";
    let cases = [
        (
            "metalink",
            format!("{ours}/metalink?{q}"),
            format!("{theirs}/global/bench-000.x86_64.metalink"),
        ),
        (
            "metalink country=DE",
            format!("{ours}/metalink?{q}&country=DE"),
            format!("{theirs}/de/bench-000.x86_64.metalink"),
        ),
        (
            "mirrorlist",
            format!("{ours}/mirrorlist?{q}"),
            format!("{theirs}/global/bench-000.x86_64.mirrorlist"),
        ),
        (
            "mirrorlist country=DE",
            format!("{ours}/mirrorlist?{q}&country=DE"),
            format!("{theirs}/de/bench-000.x86_64.mirrorlist"),
        ),
    ];
    // Warm both up (and check they answer) before measuring.
    for (name, a, b) in &cases {
        for (who, url) in [("metalink-emit", a), ("nginx", b)] {
            if wrk(url, 2)?.errors > 0 {
                bail!("{name}: {who} answers {url} with errors");
            }
        }
    }
    let mut report = Vec::new();
    let mut text = String::new();
    writeln!(
        text,
        "serve: {HOSTS} hosts x {REPOS} repos, wrk -t2 -c64 -d{SECONDS}s, {runs} run(s) each, medians"
    )?;
    writeln!(
        text,
        "  {:<24} {:>10} {:>9} {:>10} {:>9} {:>7}",
        "request", "ours r/s", "p99 ms", "nginx r/s", "p99 ms", "ratio"
    )?;
    let mut ok = true;
    for (name, a, b) in &cases {
        let (mut mine, mut them) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            mine.push(wrk(a, SECONDS)?);
            them.push(wrk(b, SECONDS)?);
        }
        let (m, t) = (median(&mut mine), median(&mut them));
        let ratio = m.rps / t.rps;
        ok &= ratio >= 0.5 && m.p99_ms <= 10.0 && m.errors == 0 && t.errors == 0;
        writeln!(
            text,
            "  {name:<24} {:>10.0} {:>9.2} {:>10.0} {:>9.2} {:>6.2}x",
            m.rps, m.p99_ms, t.rps, t.p99_ms, ratio
        )?;
        report.push(json!({
            "request": name, "url": a, "static_url": b,
            "ours_rps": m.rps, "ours_p99_ms": m.p99_ms, "ours_errors": m.errors,
            "nginx_rps": t.rps, "nginx_p99_ms": t.p99_ms, "ratio": ratio,
        }));
    }
    let rss_mb = peak_rss_kb(serve.0.id())? as f64 / 1024.0;
    ok &= rss_mb <= 200.0;
    writeln!(text, "  metalink-emit serve peak RSS {rss_mb:.1} MB")?;
    writeln!(
        text,
        "  targets: >= 0.5x nginx req/s, p99 <= 10 ms, RSS <= 200 MB: {}",
        if ok { "met" } else { "NOT met" }
    )?;
    print!("{text}");
    super::write_result(
        &root,
        &dir,
        &json!({
            "benchmark": "serve", "hosts": HOSTS, "repos": REPOS,
            "seconds": SECONDS, "runs": runs, "cases": report,
            "serve_peak_rss_mb": rss_mb, "targets_met": ok,
        }),
    )
}

/// The manifest: 300 hosts in 43 countries (20 in DE), each with https,
/// most with http, half with rsync; each up to date for about 90% of the
/// 200 yum repositories. Deterministic.
fn generate() -> Value {
    let countries = [
        "US", "CA", "MX", "BR", "AR", "CL", "GB", "FR", "NL", "BE", "CH", "AT", "IT", "ES", "PT",
        "PL", "CZ", "SE", "NO", "FI", "DK", "IE", "RU", "UA", "TR", "GR", "RO", "HU", "BG", "JP",
        "CN", "KR", "TW", "IN", "SG", "TH", "ID", "AU", "NZ", "ZA", "KE", "EG",
    ];
    let continent = |c: &str| match c {
        "US" | "CA" | "MX" => "NA",
        "BR" | "AR" | "CL" => "SA",
        "JP" | "CN" | "KR" | "TW" | "IN" | "SG" | "TH" | "ID" | "TR" => "AS",
        "AU" | "NZ" => "OC",
        "ZA" | "KE" | "EG" => "AF",
        _ => "EU",
    };
    let hex = |n: usize, len: usize| format!("{:0>len$x}", n * 2_654_435_761 % (1 << 31));
    let repos: Vec<Value> = (0..REPOS)
        .map(|i| {
            json!({
                "path": format!("linux/releases/{i}/Everything/x86_64/os"),
                "kind": "yum", "prefix": format!("bench-{i:03}"), "arch": "x86_64",
                "file": {
                    "name": "repomd.xml", "size": 4000 + i, "mtime": 1_795_000_000,
                    "md5": hex(i, 32), "sha1": hex(i, 40), "sha256": hex(i, 64),
                    "sha512": hex(i, 128), "timestamp": 1_795_000_000,
                },
                "alternates": [{
                    "name": "repomd.xml", "size": 3999, "mtime": 1_794_900_000,
                    "md5": hex(i + 1, 32), "sha1": hex(i + 1, 40), "sha256": hex(i + 1, 64),
                    "sha512": hex(i + 1, 128), "timestamp": 1_794_900_000,
                }],
            })
        })
        .collect();
    let hosts: Vec<Value> = (0..HOSTS)
        .map(|h| {
            let country = if h < 20 { "DE" } else { countries[h % countries.len()] };
            let name = format!("mirror{h}.example.org");
            let mut urls = vec![format!("https://{name}/pub/fedora")];
            if h % 3 != 0 {
                urls.push(format!("http://{name}/pub/fedora"));
            }
            if h % 2 == 0 {
                urls.push(format!("rsync://{name}/fedora"));
            }
            let host_repos: Vec<Value> = (0..REPOS)
                .map(|r| {
                    let status = if r == 0 || (h * 7 + r * 13) % 10 != 0 { "up2date" } else { "stale" };
                    json!({
                        "path": format!("linux/releases/{r}/Everything/x86_64/os"),
                        "status": status, "sha256": null,
                        "url": format!("https://{name}/pub/fedora/linux/releases/{r}/Everything/x86_64/os/repodata/repomd.xml"),
                    })
                })
                .collect();
            json!({
                "name": name, "country": country, "continent": continent(country),
                "bandwidth": 100 + (h * 37) % 10_000, "asn": 64_512 + h % 50,
                "netblocks": [format!("{}.{}.0.0/16", 11 + h / 200, h % 200)],
                "private": false, "always_up2date": false, "urls": urls, "state": "ok",
                "duration_s": 0.5, "crawled_at": 1_795_000_000, "repos": host_repos,
            })
        })
        .collect();
    json!({
        "header": {"type": "releng-manifest", "version": "1.0"},
        "payload": {
            "scan": {
                "root": "/pub/fedora", "category": "Fedora Linux", "repos": repos,
                "directories": 2000, "files": 400_000, "hashed": REPOS, "duration_s": 1.0,
            },
            "mirrors": {
                "source": "mirrors.toml", "crawled_at": 1_795_000_000, "duration_s": 60.0,
                "hosts": hosts,
            },
        },
    })
}

/// Starts `serve` on a free port; its stderr (the access log) is drained
/// and dropped.
fn start_serve(bin: &Path, manifest: &Path) -> anyhow::Result<(Proc, u16)> {
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting metalink-emit serve")?;
    let err = child.stderr.take().context("stderr")?;
    let proc = Proc(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.split("listening on http://").nth(1) {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .context("metalink-emit serve did not start")?;
    let port = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("no port in the listening line")?;
    Ok((proc, port))
}

/// nginx with a private configuration serving `www` on a free port.
fn start_nginx(dir: &Path, www: &Path) -> anyhow::Result<(Proc, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs"))?;
    let conf = prefix.join("nginx.conf");
    // Two workers for two cores; keep-alive without a request cap, as wrk
    // keeps its connections; a buffered access log, as serve's.
    let user = if testkit::is_root() {
        "user root;\n"
    } else {
        ""
    };
    std::fs::write(
        &conf,
        format!(
            "{user}worker_processes 2;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {p}/logs/access.log combined buffer=64k;\n\
               sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n\
               client_body_temp_path {p}/tmp;\n  proxy_temp_path {p}/tmp;\n\
               fastcgi_temp_path {p}/tmp;\n  uwsgi_temp_path {p}/tmp;\n  scgi_temp_path {p}/tmp;\n\
               types {{ application/metalink+xml metalink; text/plain mirrorlist; }}\n\
               server {{ listen 127.0.0.1:{port}; root {w}; }}\n}}\n",
            p = prefix.display(),
            w = www.display(),
        ),
    )?;
    std::fs::create_dir_all(prefix.join("tmp"))?;
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&prefix)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .spawn()
        .context("starting nginx")?;
    let proc = Proc(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((proc, port));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nginx did not listen on port {port}")
}

/// Runs wrk against `url` for `secs` seconds.
fn wrk(url: &str, secs: u32) -> anyhow::Result<Wrk> {
    let out = run::output(Command::new("wrk").args([
        "-t2",
        "-c64",
        &format!("-d{secs}s"),
        "--latency",
        url,
    ]))?;
    let text = String::from_utf8_lossy(&out);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec from wrk:\n{text}"))?;
    let p99_ms = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| duration_ms(v.trim()))
        .with_context(|| format!("no 99% latency from wrk:\n{text}"))?;
    let mut errors = 0;
    for l in text.lines() {
        if let Some(v) = l.trim().strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>().unwrap_or(1);
        }
        if l.contains("Socket errors") {
            errors += l
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    if errors > 0 {
        eprintln!("wrk saw errors against {url}:\n{text}");
    }
    Ok(Wrk {
        rps,
        p99_ms,
        errors,
    })
}

/// wrk's `1.23ms`, `456.00us`, `1.02s`.
fn duration_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

/// The median by requests/s.
fn median(v: &mut [Wrk]) -> Wrk {
    v.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    v[v.len() / 2]
}

fn peak_rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/PID/status")
}
