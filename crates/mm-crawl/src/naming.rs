//! The `repo=` prefix and `arch=` of each repository.
//!
//! Built-in names follow MirrorManager's for Fedora's layouts (relative to
//! the root, e.g. `/pub/fedora/linux`):
//!
//! | path | prefix |
//! |---|---|
//! | `development/rawhide/Everything/ARCH/os` | `rawhide` |
//! | `development/rawhide/Everything/ARCH/debug/tree` | `rawhide-debug` |
//! | `development/rawhide/Everything/source/tree` | `rawhide-source` (arch `source`) |
//! | `development/N/Everything/ARCH/os`, `releases/N/Everything/ARCH/os` | `fedora-N` |
//! | … `/debug/tree`, `/source/tree` of those | `fedora-debug-N`, `fedora-source-N` |
//! | `releases/N/VARIANT/ARCH/os` (not Everything) | `fedora-VARIANT-N` (lower case) |
//! | `updates/N/Everything/ARCH` | `updates-released-fN` |
//! | `updates/testing/N/Everything/ARCH` | `updates-testing-fN` |
//! | … `/debug` and `SRPMS`/`source/tree` of those | `updates-released-debug-fN`, `updates-released-source-fN`, … |
//!
//! Anything else: the path's components joined with `-`, leaving out the
//! arch and the `os`/`tree` leaves; the arch is the first known
//! architecture among the components (`source` for source trees, else
//! `noarch`). ostree repositories get `fedora-` plus their path joined with
//! `-` (a trailing `repo` dropped: `atomic/rawhide` → `fedora-atomic-rawhide`,
//! `atomic/repo` → `fedora-atomic`), one entry per arch of their refs.
//!
//! `--repo-map FILE` beats all of this; it holds `[[map]]` tables tried in
//! order, the first whose `path` regex matches the whole repo path wins:
//!
//! ```toml
//! [[map]]
//! path = 'atomic/(\w+)'        # regex, anchored at both ends
//! prefix = 'fedora-atomic-$1'  # $N / ${name}: capture groups
//! arch = 'x86_64'              # optional; yum only (ostree arches come from refs)
//! kind = 'ostree'              # optional: yum or ostree
//! ```

use std::path::Path;

use anyhow::Context;
use regex::Regex;
use releng_manifest::{BadInput, RepoKind};
use serde::Deserialize;

/// Architectures recognised in paths and ref names.
pub const ARCHES: &[&str] = &[
    "x86_64",
    "aarch64",
    "ppc64le",
    "s390x",
    "armhfp",
    "armv7hl",
    "i386",
    "i686",
    "ppc64",
    "ppc",
    "riscv64",
    "loongarch64",
    "noarch",
];

/// The rules of a `--repo-map` file.
#[derive(Debug, Default)]
pub struct RepoMap {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    path: Regex,
    prefix: String,
    arch: Option<String>,
    kind: Option<RepoKind>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapFile {
    #[serde(default)]
    map: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    path: String,
    prefix: String,
    arch: Option<String>,
    kind: Option<RepoKind>,
}

impl RepoMap {
    /// Reads a `--repo-map` file.
    pub fn load(path: &Path) -> anyhow::Result<RepoMap> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BadInput::err(format!("--repo-map {}: {e}", path.display())))?;
        RepoMap::parse(&text).with_context(|| format!("--repo-map {}", path.display()))
    }

    /// Parses the text of a repo map.
    pub fn parse(text: &str) -> anyhow::Result<RepoMap> {
        let file: MapFile =
            toml::from_str(text).map_err(|e| BadInput::err(toml_error(text, &e)))?;
        let mut rules = Vec::new();
        for (i, r) in file.map.into_iter().enumerate() {
            let re = Regex::new(&format!("^(?:{})$", r.path))
                .map_err(|e| BadInput::err(format!("map #{}: path {:?}: {e}", i + 1, r.path)))?;
            rules.push(Rule {
                path: re,
                prefix: r.prefix,
                arch: r.arch,
                kind: r.kind,
            });
        }
        Ok(RepoMap { rules })
    }

    /// The prefix (and arch, when the rule gives one) for a repo path.
    pub fn lookup(&self, path: &str, kind: RepoKind) -> Option<(String, Option<String>)> {
        self.rules.iter().find_map(|r| {
            if r.kind.is_some_and(|k| k != kind) {
                return None;
            }
            let caps = r.path.captures(path)?;
            let mut prefix = String::new();
            caps.expand(&r.prefix, &mut prefix);
            let arch = r.arch.as_ref().map(|a| {
                let mut s = String::new();
                caps.expand(a, &mut s);
                s
            });
            Some((prefix, arch))
        })
    }
}

/// A toml error as one line naming the line and the key: toml's own text
/// spans several lines (a snippet of the input) and, for a value of the
/// wrong type, names the type but not the key, so the key is read from the
/// line the error points at.
pub(crate) fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let mut msg = one_line(&e.to_string());
    if let Some(span) = e.span() {
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |p| p + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |p| start + p);
        if let Some((key, _)) = text[line_start..line_end].split_once('=') {
            let key = key.trim();
            if !key.is_empty() && !msg.contains(key) {
                msg.push_str(&format!(" (key `{key}`)"));
            }
        }
    }
    msg
}

/// The first line of a multi-line message plus its last non-snippet line.
fn one_line(msg: &str) -> String {
    let lines: Vec<&str> = msg.lines().map(str::trim).collect();
    let mut parts = vec![lines.first().copied().unwrap_or("")];
    if let Some(last) = lines.iter().rev().find(|l| {
        !l.is_empty()
            && !l.starts_with('|')
            && !l.chars().next().is_some_and(|c| c.is_ascii_digit())
    }) {
        if Some(last) != lines.first() {
            parts.push(last);
        }
    }
    parts.join(": ")
}

/// Built-in prefix and arch of a yum repo at `path`.
pub fn yum_default(path: &str) -> (String, String) {
    let c: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let arch = c.iter().find(|s| ARCHES.contains(s)).map(|s| s.to_string());
    let source = c.iter().any(|s| *s == "source" || *s == "SRPMS");
    let debug = c.contains(&"debug");
    let arch_or = |a: Option<String>| {
        a.unwrap_or_else(|| {
            if source {
                "source".into()
            } else {
                "noarch".into()
            }
        })
    };
    let kind = if source {
        "source"
    } else if debug {
        "debug"
    } else {
        ""
    };
    let fedora = |n: &str| -> String {
        if kind.is_empty() {
            format!("fedora-{n}")
        } else {
            format!("fedora-{kind}-{n}")
        }
    };
    let updates = |what: &str, n: &str| -> String {
        if kind.is_empty() {
            format!("updates-{what}-f{n}")
        } else {
            format!("updates-{what}-{kind}-f{n}")
        }
    };
    // Find the Fedora anchor anywhere, so roots above or below
    // `/pub/fedora/linux` name alike.
    for i in 0..c.len() {
        let rest = &c[i..];
        match rest {
            ["development", "rawhide", _variant, ..] => {
                let p = if kind.is_empty() {
                    "rawhide".to_string()
                } else {
                    format!("rawhide-{kind}")
                };
                return (p, arch_or(arch));
            }
            ["development", n, "Everything", ..] | ["releases", n, "Everything", ..]
                if is_release(n) =>
            {
                return (fedora(n), arch_or(arch));
            }
            ["releases", n, variant, ..] if is_release(n) => {
                let v = variant.to_lowercase();
                return (fedora(&format!("{v}-{n}")), arch_or(arch));
            }
            ["updates", "testing", n, ..] if is_release(n) => {
                return (updates("testing", n), arch_or(arch));
            }
            ["updates", n, ..] if is_release(n) => {
                return (updates("released", n), arch_or(arch));
            }
            _ => {}
        }
    }
    let name: Vec<&str> = c
        .iter()
        .copied()
        .filter(|s| !ARCHES.contains(s) && *s != "os" && *s != "tree")
        .collect();
    let prefix = if name.is_empty() {
        "repo".to_string()
    } else {
        name.join("-")
    };
    (prefix, arch_or(arch))
}

fn is_release(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// Built-in prefix of an ostree repo at `path` (`root_name`: the root's
/// directory name, for a repo at the root itself).
pub fn ostree_default(path: &str, root_name: &str) -> String {
    let mut c: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if c.last() == Some(&"repo") && c.len() > 1 {
        c.pop();
    }
    if c.is_empty() {
        c.push(root_name);
    }
    let joined = c.join("-");
    if joined.starts_with("fedora") {
        joined
    } else {
        format!("fedora-{joined}")
    }
}

/// The arch of a ref: the first component that is a known architecture.
pub fn ref_arch(name: &str) -> Option<&str> {
    name.split('/')
        .find(|c| ARCHES.contains(c) && *c != "noarch")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(p: &str) -> (String, String) {
        yum_default(p)
    }

    #[test]
    fn fedora_layouts() {
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            y("development/rawhide/Everything/x86_64/os"),
            s("rawhide", "x86_64")
        );
        assert_eq!(
            y("development/rawhide/Everything/aarch64/debug/tree"),
            s("rawhide-debug", "aarch64")
        );
        assert_eq!(
            y("development/rawhide/Everything/source/tree"),
            s("rawhide-source", "source")
        );
        assert_eq!(
            y("releases/41/Everything/x86_64/os"),
            s("fedora-41", "x86_64")
        );
        assert_eq!(
            y("development/42/Everything/s390x/os"),
            s("fedora-42", "s390x")
        );
        assert_eq!(
            y("releases/41/Everything/x86_64/debug/tree"),
            s("fedora-debug-41", "x86_64")
        );
        assert_eq!(
            y("releases/41/Server/ppc64le/os"),
            s("fedora-server-41", "ppc64le")
        );
        assert_eq!(
            y("updates/41/Everything/x86_64"),
            s("updates-released-f41", "x86_64")
        );
        assert_eq!(
            y("updates/41/Everything/x86_64/debug"),
            s("updates-released-debug-f41", "x86_64")
        );
        assert_eq!(
            y("updates/testing/41/Everything/aarch64"),
            s("updates-testing-f41", "aarch64")
        );
        assert_eq!(
            y("updates/41/Everything/source/tree"),
            s("updates-released-source-f41", "source")
        );
        // Anchors are found below a higher root too.
        assert_eq!(
            y("linux/releases/40/Everything/x86_64/os"),
            s("fedora-40", "x86_64")
        );
        assert_eq!(
            y("epel/9/Everything/x86_64"),
            s("epel-9-Everything", "x86_64")
        );
        assert_eq!(y("."), s("repo", "noarch"));
    }

    #[test]
    fn ostree_names_and_ref_arches() {
        assert_eq!(
            ostree_default("atomic/rawhide", "x"),
            "fedora-atomic-rawhide"
        );
        assert_eq!(ostree_default("atomic/repo", "x"), "fedora-atomic");
        assert_eq!(ostree_default(".", "fedora-atomic"), "fedora-atomic");
        assert_eq!(
            ref_arch("fedora-atomic/rawhide/x86_64/docker-host"),
            Some("x86_64")
        );
        assert_eq!(ref_arch("fedora/41/aarch64/iot"), Some("aarch64"));
        assert_eq!(ref_arch("ppc64le/x"), Some("ppc64le"));
        assert_eq!(ref_arch("fedora/41/docker-host"), None);
    }

    #[test]
    fn repo_map_beats_defaults_with_captures() {
        let m = RepoMap::parse(
            r#"
[[map]]
path = 'atomic/(\w+)'
prefix = 'fa-$1'
kind = 'ostree'

[[map]]
path = 'pub/(?P<rel>\d+)/(?P<arch>\w+)'
prefix = 'mine-${rel}'
arch = '$arch'
"#,
        )
        .unwrap();
        assert_eq!(
            m.lookup("atomic/rawhide", RepoKind::Ostree),
            Some(("fa-rawhide".into(), None))
        );
        assert_eq!(m.lookup("atomic/rawhide", RepoKind::Yum), None);
        assert_eq!(
            m.lookup("pub/41/x86_64", RepoKind::Yum),
            Some(("mine-41".into(), Some("x86_64".into())))
        );
        assert_eq!(m.lookup("pub/41/x86_64/os", RepoKind::Yum), None);
    }

    #[test]
    fn repo_map_errors_name_the_key() {
        let e = RepoMap::parse("[[map]]\npath = 'a'\nprefx = 'b'\n").unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("prefx") && msg.contains("line 3"), "{msg}");
        let e = RepoMap::parse("[[map]]\npath = '('\nprefix = 'b'\n").unwrap_err();
        assert!(format!("{e:#}").contains("map #1"));
    }
}
