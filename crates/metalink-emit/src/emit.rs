//! The default action: one file per scan repository and format.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

use anyhow::Context;
use releng_manifest::cli::Common;
use releng_manifest::{write_atomic, BadInput, MetalinkEntry};

use crate::metalink;
use crate::select::{self, Client, Scratch};
use crate::{catalog_of, EmitArgs, Format, Header};

pub fn run(args: &EmitArgs, common: &Common) -> anyhow::Result<()> {
    let country = match &args.country {
        None => None,
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(c.to_ascii_uppercase())
        }
        Some(c) => {
            return Err(BadInput::err(format!(
                "--country {c}: not a two-letter code"
            )))
        }
    };
    let mut manifest = common.read_manifest()?;
    let cat = catalog_of(&manifest)?;
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("creating {}", args.output_dir.display()))?;
    let dir = std::fs::canonicalize(&args.output_dir)
        .with_context(|| format!("resolving {}", args.output_dir.display()))?;

    let mut formats: Vec<Format> = Vec::new();
    for f in &args.format {
        if !formats.contains(f) {
            formats.push(*f);
        }
    }
    let mut rng = match args.seed {
        Some(s) => fastrand::Rng::with_seed(s),
        None => fastrand::Rng::new(),
    };
    let client = Client {
        ip: args.ip.map(crate::netblock::to_u128),
        country: country.as_deref(),
        continent: None,
        netblocks: true,
    };
    let now = SystemTime::now();
    let (pubdate, published) = (metalink::rfc1123(now), metalink::rfc3339(now));
    let header = Header {
        pubdate: &pubdate,
        published: &published,
        country: country.as_deref(),
    };
    // Every file name first: a clash must fail before anything is written.
    let mut names = HashSet::new();
    let mut stems = Vec::with_capacity(cat.repos.len());
    for repo in &cat.repos {
        let stem = format!(
            "{}.{}",
            file_part(&repo.scan.prefix),
            file_part(&repo.scan.arch)
        );
        if !names.insert(stem.clone()) {
            return Err(BadInput::err(format!(
                "two scan repositories are both repo={} arch={}",
                repo.scan.prefix, repo.scan.arch
            )));
        }
        stems.push(stem);
    }
    // A re-run rewrites the same files: their entries are replaced, all
    // dropped at once rather than one scan of the list per file.
    let mut written: HashSet<String> = HashSet::new();
    for stem in &stems {
        for f in &formats {
            let path = dir.join(format!("{stem}.{}", f.extension()));
            written.insert(path.to_string_lossy().into_owned());
        }
    }
    manifest.retain("metalinks", |e| {
        !e["path"].as_str().is_some_and(|p| written.contains(p))
    })?;
    let mut scratch = Scratch::default();
    let mut buf = Vec::new();
    for (repo, stem) in cat.repos.iter().zip(&stems) {
        if repo.hosts.is_empty() {
            log::warn!(
                "{} ({}): no mirror is up to date",
                repo.scan.path,
                repo.scan.arch
            );
        }
        for &format in &formats {
            // Per format: a yum mirrorlist cannot list rsync-only hosts.
            let allowed = metalink::allowed(repo.scan.kind, format);
            select::order(
                &cat,
                repo,
                &client,
                allowed,
                args.min_mirrors,
                &mut rng,
                &mut scratch,
            );
            buf.clear();
            let urls = format.write(&cat, repo, &scratch.order, allowed, &header, &mut buf);
            let path = dir.join(format!("{stem}.{}", format.extension()));
            // Published files: readable by the web server, whatever mode
            // the temporary file was created with.
            write_atomic(&path, |f| {
                f.get_ref()
                    .set_permissions(std::fs::Permissions::from_mode(0o644))?;
                f.write_all(&buf)
            })
            .with_context(|| format!("writing {}", path.display()))?;
            log::debug!("{}: {urls} URLs", path.display());
            let path = path.to_string_lossy().into_owned();
            manifest.push(
                "metalinks",
                &MetalinkEntry {
                    path,
                    format: format.manifest_format(),
                    repo_path: repo.scan.path.clone(),
                    repo: repo.scan.prefix.clone(),
                    arch: repo.scan.arch.clone(),
                    urls,
                    size: buf.len() as u64,
                    sha256: file_details::sha256_hex(&buf),
                },
            )?;
        }
    }
    log::info!(
        "{}: {} files for {} repositories",
        dir.display(),
        names.len() * formats.len(),
        cat.repos.len()
    );
    common.write_manifest(&manifest)
}

/// A repo= or arch= value as part of a file name: no separators, no
/// leading dot.
fn file_part(s: &str) -> String {
    let p: String = s
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    match p.strip_prefix('.') {
        Some(rest) => format!("_{rest}"),
        None => p,
    }
}
