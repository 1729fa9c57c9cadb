//! Checking an rsync mirror: one `rsync --list-only` restricted by filter
//! rules to the metadata files (the mirror walks a few directories, not
//! its tree), then one `rsync` fetching those that changed since the last
//! crawl into a temporary directory, hashed there.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::http::{hash_capped, Fetched, SUMMARY_CAP};
use crate::state::Validators;

/// One listed file: size and mtime as rsync printed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Bytes.
    pub size: u64,
    /// `YYYY/MM/DD HH:MM:SS`.
    pub mtime: String,
}

/// What an rsync crawl found: per metadata file, and the whole listing.
pub type Checked = (BTreeMap<String, Fetched>, BTreeMap<String, Listed>);

/// Checks `files` (paths relative to `base`) on an rsync mirror; `extra`
/// are only listed (`--deep`). `previous` maps a path to the validators of
/// the last crawl (`last_modified` holds `size mtime`): a file listed
/// unchanged is not fetched again.
pub fn check(
    base: &str,
    files: &[String],
    extra: &[String],
    previous: &BTreeMap<String, Validators>,
    deadline: Instant,
) -> anyhow::Result<Checked> {
    let tmp = tempfile::tempdir().context("temporary directory for rsync")?;
    let filter = tmp.path().join("filter");
    let mut rules = std::collections::BTreeSet::new();
    for f in files.iter().chain(extra) {
        let parts: Vec<&str> = f.split('/').collect();
        for i in 1..parts.len() {
            rules.insert(format!("+ /{}/", parts[..i].join("/")));
        }
        rules.insert(format!("+ /{f}"));
    }
    let mut text = rules.into_iter().collect::<Vec<_>>().join("\n");
    text.push_str("\n- *\n");
    std::fs::write(&filter, text)?;
    let base = format!("{}/", base.trim_end_matches('/'));
    let out = run(
        Command::new("rsync")
            .args(["--list-only", "-r", "--no-motd"])
            .arg(format!("--filter=. {}", filter.display()))
            .args(timeouts(deadline))
            .arg(&base),
        deadline,
        &tmp.path().join("listing"),
    )?;
    let listed = parse_listing(&out);
    let mut result = BTreeMap::new();
    let mut wanted = Vec::new();
    for f in files {
        match listed.get(f) {
            None => {
                result.insert(
                    f.clone(),
                    Fetched::Missing("not in the rsync listing".into()),
                );
            }
            Some(l) => {
                let stamp = format!("{} {}", l.size, l.mtime);
                match previous.get(f) {
                    Some(v) if v.last_modified.as_deref() == Some(&stamp) => {
                        result.insert(f.clone(), Fetched::NotModified);
                    }
                    _ if l.size > SUMMARY_CAP => {
                        result.insert(f.clone(), Fetched::TooLarge(SUMMARY_CAP));
                    }
                    _ => wanted.push((f.clone(), stamp)),
                }
            }
        }
    }
    if !wanted.is_empty() {
        let list = tmp.path().join("files");
        let mut w = std::fs::File::create(&list)?;
        for (f, _) in &wanted {
            writeln!(w, "{f}")?;
        }
        drop(w);
        let dest = tmp.path().join("fetched");
        std::fs::create_dir(&dest)?;
        run(
            Command::new("rsync")
                .args(["-t", "--no-motd", "--ignore-missing-args"])
                .arg(format!("--max-size={SUMMARY_CAP}"))
                .arg(format!("--files-from={}", list.display()))
                .args(timeouts(deadline))
                .arg(&base)
                .arg(&dest),
            deadline,
            &tmp.path().join("fetch-log"),
        )?;
        for (f, stamp) in wanted {
            let fetched = match std::fs::File::open(dest.join(&f)) {
                Ok(file) => match hash_capped(file, SUMMARY_CAP)? {
                    Some(sha256) => Fetched::Body(Validators {
                        etag: None,
                        last_modified: Some(stamp),
                        sha256,
                    }),
                    None => Fetched::TooLarge(SUMMARY_CAP),
                },
                Err(_) => Fetched::Missing("listed but not fetched".into()),
            };
            result.insert(f, fetched);
        }
    }
    Ok((result, listed))
}

fn timeouts(deadline: Instant) -> [String; 2] {
    let s = deadline
        .saturating_duration_since(Instant::now())
        .as_secs()
        .clamp(1, 10);
    [format!("--timeout={s}"), format!("--contimeout={s}")]
}

/// Runs `cmd` with stdout into `out_file`, killing it at `deadline`.
fn run(cmd: &mut Command, deadline: Instant, out_file: &Path) -> anyhow::Result<String> {
    let out = std::fs::File::create(out_file)?;
    let err_file = out_file.with_extension("err");
    let err = std::fs::File::create(&err_file)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("running rsync")?;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("rsync: per-host timeout");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
    // 23/24: some files were missing or vanished, which the caller sees.
    if !status.success() && !matches!(status.code(), Some(23 | 24)) {
        let msg = stderr.lines().next().unwrap_or("").to_string();
        bail!("rsync: {status}: {msg}");
    }
    Ok(std::fs::read_to_string(out_file)?)
}

/// `-rw-r--r--      1,234 2026/11/27 19:00:00 path/to/file` lines, files
/// only.
fn parse_listing(text: &str) -> BTreeMap<String, Listed> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let rest: Vec<&str> = line.split_whitespace().collect();
        if rest.len() < 5 || !rest[0].starts_with('-') {
            continue;
        }
        let Ok(size) = rest[1].replace([',', '.'], "").parse::<u64>() else {
            continue;
        };
        // The name is everything after the time column, spaces included.
        let Some(pos) = line.find(rest[3]).map(|p| p + rest[3].len() + 1) else {
            continue;
        };
        let name = line[pos..].to_string();
        out.insert(
            name,
            Listed {
                size,
                mtime: format!("{} {}", rest[2], rest[3]),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_lines() {
        let l = parse_listing(
            "drwxr-xr-x          4,096 2026/11/27 19:00:00 a\n\
             -rw-r--r--          1,234 2026/11/27 19:00:01 a/repodata/repomd.xml\n\
             -rw-r--r--             12 2026/11/27 19:00:02 b c/summary\n",
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l["a/repodata/repomd.xml"].size, 1234);
        assert_eq!(l["b c/summary"].mtime, "2026/11/27 19:00:02");
    }
}
