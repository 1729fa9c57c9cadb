//! `cargo xtask bench crawl`: `mm-crawl scan` against `find ROOT -path
//! '*/objects' -prune -o -type f -print | wc -l` (the same walk: ostree
//! `objects/` skipped) on a generated 400,000-file tree (40 yum, 4 ostree
//! repos), and `mm-crawl mirrors` against 300 simulated mirror hosts on
//! 127.0.0.1 with 50–200 ms of latency per response, 44 repos each; one
//! more untimed crawl must find every host `ok` and every repo `up2date`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use releng_manifest::ScanSection;

use super::{median, ms, time};
use crate::{root, run};

const YUM_REPOS: usize = 40;
const OSTREE_REPOS: usize = 4;
/// Files per yum repo's Packages/ and per ostree repo's objects/: 40 ×
/// 7,500 + 4 × 25,000 = 400,000, the size of the Atomic tree that
/// MirrorManager could not crawl.
const YUM_FILES: usize = 7_500;
const OBJECT_FILES: usize = 25_000;
const HOSTS: usize = 300;

/// Runs the scan and crawl benchmarks, `runs` timed runs each.
pub fn run(runs: usize) -> anyhow::Result<()> {
    let root = root();
    run::cargo(&root, &["build", "--release", "-p", "mm-crawl", "--bins"])?;
    let dir = root.join("target/bench/crawl");
    let tree = dir.join("tree");
    if !dir.join("tree.done").is_file() {
        generate(&tree)?;
        std::fs::write(dir.join("tree.done"), b"")?;
    }
    let tree_s = tree.to_str().context("tree path is not UTF-8")?;
    let ours = run::release_bin(&root, "mm-crawl");
    let state = dir.join("state.json");
    let scan_json = dir.join("scan.json");

    let mut find = Command::new("sh");
    // mm-crawl does not descend into ostree `objects/` (tests/scan.rs
    // compares the same way): neither does the baseline.
    find.args([
        "-c",
        &format!("find '{tree_s}' -path '*/objects' -prune -o -type f -print | wc -l"),
    ]);
    let mut cold = Command::new(&ours);
    cold.args(["scan", "-q", "--root", tree_s]);
    let mut rescan = Command::new(&ours);
    rescan
        .args(["scan", "-q", "--root", tree_s, "--state"])
        .arg(&state);

    // Untimed: warm the page cache, fill the state, keep a manifest.
    time(&mut find)?;
    let _ = std::fs::remove_file(&state);
    let out = run::output(
        Command::new(&ours)
            .args(["scan", "-q", "--root", tree_s, "--state"])
            .arg(&state),
    )?;
    std::fs::write(&scan_json, &out)?;
    let doc: serde_json::Value = serde_json::from_slice(&out)?;
    let scan: ScanSection = serde_json::from_value(doc["payload"]["scan"].clone())
        .context("the scan manifest's payload.scan")?;
    let repos = scan.repos.len();
    let files = scan.files;

    let (mut t_find, mut t_cold, mut t_rescan) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        t_find.push(time(&mut find)?);
        t_cold.push(time(&mut cold)?);
        t_rescan.push(time(&mut rescan)?);
    }
    let (m_find, m_cold, m_rescan) = (
        median(&mut t_find),
        median(&mut t_cold),
        median(&mut t_rescan),
    );
    let ratio = m_cold.as_secs_f64() / m_find.as_secs_f64();
    println!(
        "scan: {} files ({YUM_REPOS} yum + {OSTREE_REPOS} ostree repos, {repos} entries; \
         {files} files walked, objects/ skipped), {runs} runs each, medians",
        YUM_REPOS * (YUM_FILES + 1) + OSTREE_REPOS * OBJECT_FILES
    );
    println!("  find (objects/ pruned) {:>8.1} ms", ms(m_find));
    println!("  mm-crawl scan (cold)  {:>9.1} ms", ms(m_cold));
    println!(
        "  mm-crawl scan (state) {:>9.1} ms  (target <= 2000 ms)",
        ms(m_rescan)
    );
    println!("  cold / find           {ratio:>9.3}x  (target <= 1.5x)");

    // The crawl: one in-process server standing in for 300 hosts.
    let server = Server::start(&tree, &scan)?;
    let mirrors = dir.join("mirrors.toml");
    let mut text = String::new();
    for h in 0..HOSTS {
        text.push_str(&format!(
            "[[host]]\nname = \"h{h}\"\ncountry = \"DE\"\nurls = [\"http://127.0.0.1:{}/h{h}\"]\n\n",
            server.port
        ));
    }
    std::fs::write(&mirrors, text)?;
    let crawl_cmd = || {
        let mut c = Command::new(&ours);
        c.args(["mirrors", "-q", "--mirrors"])
            .arg(&mirrors)
            .arg("--manifest")
            .arg(&scan_json);
        c
    };
    let mut crawl = crawl_cmd();
    let mut t_crawl = Vec::new();
    for _ in 0..runs.min(3) {
        t_crawl.push(time(&mut crawl)?);
    }
    let m_crawl = median(&mut t_crawl);
    let requests = server.requests.load(Ordering::Relaxed);
    // Untimed: a crawl that failed fast must not pass as a fast one.
    check_crawl(&run::output(&mut crawl_cmd())?)?;
    let max_conc = server.max_per_host();
    println!(
        "crawl: {HOSTS} hosts x {} repos on 127.0.0.1, 50-200 ms per response, {} runs, median",
        YUM_REPOS + OSTREE_REPOS,
        t_crawl.len()
    );
    println!(
        "  mm-crawl mirrors      {:>9.1} ms  (target <= 10000 ms)",
        ms(m_crawl)
    );
    println!("  requests served       {requests:>9}");
    println!("  max concurrent/host   {max_conc:>9}  (target <= 2)");
    if max_conc > 2 {
        bail!("a host saw {max_conc} concurrent requests");
    }
    let report = serde_json::json!({
        "benchmark": "crawl",
        "runs": runs,
        "find_ms": t_find.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        "scan_cold_ms": t_cold.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        "scan_rescan_ms": t_rescan.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        "crawl_ms": t_crawl.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        "median_find_ms": ms(m_find),
        "median_scan_cold_ms": ms(m_cold),
        "median_scan_rescan_ms": ms(m_rescan),
        "median_crawl_ms": ms(m_crawl),
        "cold_over_find": ratio,
        "max_concurrent_per_host": max_conc,
    });
    super::write_result(&root, &dir, &report)
}

/// Checks an untimed crawl's manifest: all hosts `ok`, every repo of each
/// `up2date`.
fn check_crawl(out: &[u8]) -> anyhow::Result<()> {
    let m: serde_json::Value = serde_json::from_slice(out).context("the crawl's manifest")?;
    let hosts = m["payload"]["mirrors"]["hosts"]
        .as_array()
        .context("the crawl's manifest has no payload.mirrors.hosts")?;
    if hosts.len() != HOSTS {
        bail!("crawl: {} hosts, expected {HOSTS}", hosts.len());
    }
    let want = YUM_REPOS + OSTREE_REPOS;
    for h in hosts {
        if h["state"] != "ok" {
            bail!("crawl: host {} is {}, expected ok", h["name"], h["state"]);
        }
        let repos = h["repos"].as_array().map_or(&[][..], Vec::as_slice);
        let up = repos.iter().filter(|r| r["status"] == "up2date").count();
        if repos.len() != want || up != want {
            bail!(
                "crawl: host {}: {up} of {} repos up2date, expected {want} of {want}",
                h["name"],
                repos.len()
            );
        }
    }
    eprintln!("crawl check: {HOSTS} hosts ok, {want} repos up2date each");
    Ok(())
}

/// Writes the tree: yum repos with a repomd.xml and empty packages, ostree
/// repos made by the ostree CLI plus empty object files.
fn generate(tree: &Path) -> anyhow::Result<()> {
    eprintln!("generating {} (once)", tree.display());
    let _ = std::fs::remove_dir_all(tree);
    for r in 0..YUM_REPOS {
        let repo = tree.join(format!("releases/{}/Everything/x86_64/os", 1 + r));
        std::fs::create_dir_all(repo.join("repodata"))?;
        std::fs::write(
            repo.join("repodata/repomd.xml"),
            format!(
                "<?xml version=\"1.0\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\">\
                 <revision>{}</revision><data type=\"primary\"><timestamp>1700000000</timestamp>\
                 </data></repomd>\n",
                1_700_000_000 + r
            ),
        )?;
        for d in 0..100 {
            let pk = repo.join(format!("Packages/{d:02}"));
            std::fs::create_dir_all(&pk)?;
            for f in 0..YUM_FILES / 100 {
                std::fs::File::create(pk.join(format!("pkg-{f}.rpm")))?;
            }
        }
    }
    let content = tempfile_dir(tree)?;
    std::fs::write(content.join("hello"), b"hello")?;
    for r in 0..OSTREE_REPOS {
        let repo = tree.join(format!("atomic/{r}"));
        std::fs::create_dir_all(&repo)?;
        let rs = repo.to_str().context("UTF-8")?;
        run::status(Command::new("ostree").args(["init", "--mode=archive", "--repo", rs]))?;
        for arch in ["x86_64", "aarch64"] {
            run::status(
                Command::new("ostree")
                    .args(["commit", "--repo", rs])
                    .arg(format!("--branch=fedora-atomic/{r}/{arch}/docker-host"))
                    .arg(format!("--tree=dir={}", content.display()))
                    .stdout(Stdio::null()),
            )?;
        }
        run::status(Command::new("ostree").args(["summary", "-u", "--repo", rs]))?;
        for d in 0..256 {
            let od = repo.join(format!("objects/{d:02x}"));
            std::fs::create_dir_all(&od)?;
            for f in 0..OBJECT_FILES / 256 + usize::from(d < OBJECT_FILES % 256) {
                std::fs::File::create(od.join(format!("{f:062x}.filez")))?;
            }
        }
    }
    std::fs::remove_dir_all(&content)?;
    Ok(())
}

fn tempfile_dir(tree: &Path) -> anyhow::Result<PathBuf> {
    let d = tree.with_file_name("content");
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// The simulated mirrors: `/hN/<path>` serves the master's file `<path>`
/// after 50–200 ms, and counts concurrent requests per host.
struct Server {
    port: u16,
    requests: Arc<AtomicU64>,
    max: Arc<Mutex<HashMap<String, (u32, u32)>>>,
}

impl Server {
    fn start(tree: &Path, scan: &ScanSection) -> anyhow::Result<Server> {
        let mut files = HashMap::new();
        for r in &scan.repos {
            let rel = r.metadata_path();
            files.insert(rel.clone(), Arc::new(std::fs::read(tree.join(&rel))?));
        }
        let files = Arc::new(files);
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let requests = Arc::new(AtomicU64::new(0));
        let max = Arc::new(Mutex::new(HashMap::new()));
        let (rq, mx) = (requests.clone(), max.clone());
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let (files, rq, mx) = (files.clone(), rq.clone(), mx.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &files, &rq, &mx);
                });
            }
        });
        Ok(Server {
            port,
            requests,
            max,
        })
    }

    fn max_per_host(&self) -> u32 {
        self.max
            .lock()
            .unwrap()
            .values()
            .map(|v| v.1)
            .max()
            .unwrap_or(0)
    }
}

fn serve(
    conn: TcpStream,
    files: &HashMap<String, Arc<Vec<u8>>>,
    requests: &AtomicU64,
    max: &Mutex<HashMap<String, (u32, u32)>>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut w = conn;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 || h == "\r\n" {
                break;
            }
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (host, rel) = path
            .trim_start_matches('/')
            .split_once('/')
            .map(|(h, r)| (h.to_string(), r.to_string()))
            .unwrap_or_default();
        {
            let mut m = max.lock().unwrap();
            let e = m.entry(host.clone()).or_insert((0, 0));
            e.0 += 1;
            e.1 = e.1.max(e.0);
        }
        let n = requests.fetch_add(1, Ordering::Relaxed);
        // A cheap spread over 50..=200 ms, the same every run.
        let delay = 50 + (n.wrapping_mul(2_654_435_761) >> 7) % 151;
        std::thread::sleep(Duration::from_millis(delay));
        if let Some(e) = max.lock().unwrap().get_mut(&host) {
            e.0 -= 1;
        }
        match files.get(&rel) {
            Some(body) => {
                write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )?;
                w.write_all(body)?;
            }
            None => w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?,
        }
    }
}
