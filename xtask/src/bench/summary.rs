//! `cargo xtask bench summary`: summary-gen against `ostree summary -u` on
//! a repository with 10,000 refs.

use std::process::Command;

use anyhow::Context;

use super::{median, ms, time};
use crate::{root, run};

const SUMMARY_REFS: u64 = 10_000;

/// summary-gen against `ostree summary -u`, alternated, `runs` times each.
pub fn run(runs: usize) -> anyhow::Result<()> {
    let root = root();
    run::cargo(
        &root,
        &[
            "build",
            "--release",
            "-p",
            "summary-gen",
            "--bins",
            "--examples",
        ],
    )?;
    let dir = root.join("target/bench/summary");
    let repo = dir.join(format!("repo-{SUMMARY_REFS}"));
    if !repo.join("objects").is_dir() {
        let _ = std::fs::remove_dir_all(&repo);
        std::fs::create_dir_all(&dir)?;
        let maker = run::release_example(&root, "bench-repo");
        run::status(Command::new(maker).arg(&repo).arg(SUMMARY_REFS.to_string()))?;
    }
    let repo_s = repo.to_str().context("repo path is not UTF-8")?;
    let ours = run::release_bin(&root, "summary-gen");
    let mut ostree = Command::new("ostree");
    ostree.args(["summary", "--repo", repo_s, "-u"]);
    let mut summary_gen = Command::new(&ours);
    summary_gen.args(["--repo", repo_s, "-q"]);

    // One untimed run each warms the page cache; then the two alternate so
    // that drift on the machine hits both alike.
    time(&mut ostree)?;
    time(&mut summary_gen)?;
    let (mut t_ostree, mut t_ours) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        t_ostree.push(time(&mut ostree)?);
        t_ours.push(time(&mut summary_gen)?);
    }
    let (m_ostree, m_ours) = (median(&mut t_ostree), median(&mut t_ours));
    let ratio = m_ours.as_secs_f64() / m_ostree.as_secs_f64();
    println!("summary: repo with {SUMMARY_REFS} refs, {runs} runs each, medians");
    println!("  ostree summary -u  {:>9.1} ms", ms(m_ostree));
    println!("  summary-gen        {:>9.1} ms", ms(m_ours));
    println!("  ratio              {ratio:>9.3}x  (target <= 1.05x)");
    let report = serde_json::json!({
        "benchmark": "summary",
        "refs": SUMMARY_REFS,
        "runs": runs,
        "ostree_summary_u_ms": t_ostree.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        "summary_gen_ms": t_ours.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        "median_ostree_ms": ms(m_ostree),
        "median_summary_gen_ms": ms(m_ours),
        "ratio": ratio,
    });
    super::write_result(&root, &dir, &report)
}
