//! dnf `.repo` files: the repositories a treefile names by id.

use std::path::{Path, PathBuf};

use releng_manifest::BadInput;

/// One repository, as the compose uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoConfig {
    /// Section name, e.g. `fedora-rawhide`.
    pub id: String,
    /// The `.repo` file it came from.
    pub file: PathBuf,
    /// Base URL with a trailing slash: `file://`, `http://` or `https://`.
    pub baseurl: String,
    /// `enabled` (default true).
    pub enabled: bool,
    /// `exclude=` globs on package names.
    pub exclude: Vec<String>,
}

/// Finds the repositories `ids` in the `.repo` files of `dir`, with
/// `$basearch`/`$arch` and `$releasever` substituted. A scheme-less
/// `baseurl` is a path relative to its `.repo` file (so fixtures can point
/// into the build tree).
pub fn find(
    dir: &Path,
    ids: &[String],
    arch: &str,
    releasever: Option<&str>,
) -> anyhow::Result<Vec<RepoConfig>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| BadInput::err(format!("{}: cannot list .repo files: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "repo"))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| BadInput::err(format!("{}: cannot read: {e}", f.display())))?;
        all.extend(parse(&text, f, arch, releasever)?);
    }
    ids.iter()
        .map(|id| {
            all.iter().find(|r| &r.id == id).cloned().ok_or_else(|| {
                BadInput::err(format!(
                    "repo `{id}` (named in the treefile) is in no .repo file in {}",
                    dir.display()
                ))
            })
        })
        .collect()
}

/// Parses one `.repo` file.
pub fn parse(
    text: &str,
    file: &Path,
    arch: &str,
    releasever: Option<&str>,
) -> anyhow::Result<Vec<RepoConfig>> {
    let name = file.display();
    let mut out: Vec<RepoConfig> = Vec::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    let finish = |cur: Option<(String, Vec<(String, String)>)>,
                  out: &mut Vec<RepoConfig>|
     -> anyhow::Result<()> {
        if let Some((id, kv)) = cur {
            out.push(build(&id, &kv, file, arch, releasever)?);
        }
        Ok(())
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            let id = section.strip_suffix(']').ok_or_else(|| {
                BadInput::err(format!("{name}:{}: malformed section header", n + 1))
            })?;
            finish(current.take(), &mut out)?;
            current = Some((id.trim().to_string(), Vec::new()));
            continue;
        }
        let Some((_, kv)) = current.as_mut() else {
            return Err(BadInput::err(format!(
                "{name}:{}: key outside a [section]",
                n + 1
            )));
        };
        if raw.starts_with(char::is_whitespace) {
            // A continuation line extends the previous value (baseurl lists).
            if let Some(last) = kv.last_mut() {
                last.1.push(' ');
                last.1.push_str(line);
                continue;
            }
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| BadInput::err(format!("{name}:{}: expected KEY=VALUE", n + 1)))?;
        kv.push((k.trim().to_string(), v.trim().to_string()));
    }
    finish(current.take(), &mut out)?;
    Ok(out)
}

fn build(
    id: &str,
    kv: &[(String, String)],
    file: &Path,
    arch: &str,
    releasever: Option<&str>,
) -> anyhow::Result<RepoConfig> {
    let name = file.display();
    let get = |k: &str| {
        kv.iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let subst = |s: &str| {
        let mut s = s.replace("$basearch", arch).replace("$arch", arch);
        if let Some(r) = releasever {
            s = s.replace("$releasever", r);
        }
        s
    };
    if (get("metalink").is_some() || get("mirrorlist").is_some()) && get("baseurl").is_none() {
        return Err(BadInput::err(format!(
            "{name}: repo `{id}`: only baseurl is supported (metalink/mirrorlist are not)"
        )));
    }
    let baseurl = get("baseurl")
        .ok_or_else(|| BadInput::err(format!("{name}: repo `{id}` has no baseurl")))?;
    // dnf takes the first of several URLs; so do we.
    let first = baseurl
        .split(|c: char| c == ',' || c.is_whitespace())
        .find(|s| !s.is_empty())
        .ok_or_else(|| BadInput::err(format!("{name}: repo `{id}` has an empty baseurl")))?;
    let first = subst(first);
    let mut url = if first.starts_with("http://")
        || first.starts_with("https://")
        || first.starts_with("file://")
    {
        first
    } else if first.contains("://") {
        return Err(BadInput::err(format!(
            "{name}: repo `{id}`: baseurl `{first}` has an unsupported scheme (file, http, https)"
        )));
    } else {
        let dir = file.parent().unwrap_or(Path::new("."));
        let path = std::path::absolute(dir.join(&first))?;
        format!("file://{}", path.display())
    };
    if !url.ends_with('/') {
        url.push('/');
    }
    let enabled = match get("enabled").map(str::to_ascii_lowercase).as_deref() {
        None | Some("1" | "true" | "yes") => true,
        Some("0" | "false" | "no") => false,
        Some(other) => {
            return Err(BadInput::err(format!(
                "{name}: repo `{id}`: enabled={other} is not 0 or 1"
            )))
        }
    };
    let exclude = get("exclude")
        .or(get("excludepkgs"))
        .map(|v| {
            v.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(subst)
                .collect()
        })
        .unwrap_or_default();
    Ok(RepoConfig {
        id: id.to_string(),
        file: file.to_path_buf(),
        baseurl: url,
        enabled,
        exclude,
    })
}

/// Shell-style glob match (`*`, `?`) of a package name, as dnf's exclude.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dnf_repo_files() {
        let text = "# comment\n[fedora-rawhide]\nname=Fedora $releasever\nbaseurl=http://mirror/$releasever/$basearch/os\n  http://other/\nenabled=1\nexclude=kernel* foo\n\n[local]\nbaseurl=../repo\nenabled=0\n";
        let repos = parse(text, Path::new("/srv/t/f.repo"), "x86_64", Some("rawhide")).unwrap();
        assert_eq!(repos[0].baseurl, "http://mirror/rawhide/x86_64/os/");
        assert_eq!(repos[0].exclude, ["kernel*", "foo"]);
        assert!(repos[0].enabled);
        assert_eq!(repos[1].baseurl, "file:///srv/t/../repo/");
        assert!(!repos[1].enabled);
    }

    #[test]
    fn bad_repo_files_name_file_and_line() {
        let e = parse("[a]\nnot a pair\n", Path::new("x.repo"), "x86_64", None).unwrap_err();
        assert!(format!("{e}").contains("x.repo:2"), "{e}");
        let e = parse(
            "[a]\nbaseurl=ftp://h/\n",
            Path::new("x.repo"),
            "x86_64",
            None,
        )
        .unwrap_err();
        assert!(format!("{e}").contains("unsupported scheme"), "{e}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("kernel*", "kernel-core"));
        assert!(glob_match("?oo", "foo"));
        assert!(!glob_match("kernel", "kernel-core"));
    }
}
