//! Treefiles: rpm-ostree's compose description, in JSON or YAML.
//!
//! Loading flattens `include`s the way rpm-ostree merges them (the included
//! file first; lists concatenate, maps merge, the including file's scalars
//! win), checks every key's type with an error naming the key and the
//! file, warns about keys it does not know, and substitutes `${basearch}`
//! and `${releasever}` in the ref.

use std::path::{Path, PathBuf};

use releng_manifest::BadInput;
use serde_json::{Map, Value};

/// Keys whose 2014 underscore spelling rpm-ostree still accepts.
const ALIASES: &[(&str, &str)] = &[
    ("default_target", "default-target"),
    ("automatic_version_prefix", "automatic-version-prefix"),
    ("bootstrap_packages", "bootstrap-packages"),
    ("etc_group_members", "etc-group-members"),
    ("install_langs", "install-langs"),
    ("postprocess_script", "postprocess-script"),
    ("add_files", "add-files"),
    ("remove_files", "remove-files"),
    ("exclude_packages", "exclude-packages"),
];

/// Keys rpm-ostree knows that we read but that change nothing here; they
/// are accepted without a warning about an unknown key.
const ACCEPTED_NOOP: &[&str] = &[
    "selinux",
    "boot-location",
    "boot_location",
    "etc-group-members",
    "check-passwd",
    "check-groups",
    "tmp-is-dir",
    "machineid-compat",
    "initramfs-args",
    "gpg_key",
    "gpg-key",
    "mutate-os-release",
    "readonly-executables",
    "container",
    "cliwrap",
    "rojig",
    "releasever-var",
    "basearch",
    "osname",
    "variables",
];

/// How deep `include` may nest: deeper is a cycle or a mistake.
const MAX_INCLUDE_DEPTH: usize = 16;

/// A loaded, flattened and checked treefile.
#[derive(Debug, Clone)]
pub struct Treefile {
    /// The file given on the command line.
    pub path: PathBuf,
    /// Every file it pulled in (itself, includes, scripts, add-files
    /// sources), in load order: the inputs of a compose.
    pub files: Vec<PathBuf>,
    /// The merged document, keys canonicalised (input of the input hash).
    pub flattened: Value,
    /// The ref, substituted.
    pub ref_: String,
    /// `releasever`, as a string.
    pub releasever: Option<String>,
    /// Repository ids to enable, from `.repo` files beside the treefile.
    pub repos: Vec<String>,
    /// Package specs: `packages`, `packages-<arch>` and
    /// `bootstrap-packages`, split on whitespace.
    pub packages: Vec<String>,
    /// `exclude-packages`: names never installed.
    pub exclude_packages: Vec<String>,
    /// Pull in Recommends (default true).
    pub recommends: bool,
    /// Install documentation (default true).
    pub documentation: bool,
    /// Languages to install files for; `None`: all.
    pub install_langs: Option<Vec<String>>,
    /// `add-files`: (absolute source, absolute destination in the tree).
    pub add_files: Vec<(PathBuf, String)>,
    /// `remove-files`: tree paths to delete after install.
    pub remove_files: Vec<String>,
    /// `remove-from-packages`: package name and path regexes.
    pub remove_from_packages: Vec<(String, Vec<String>)>,
    /// systemd units to enable.
    pub units: Vec<String>,
    /// systemd default target.
    pub default_target: Option<String>,
    /// `postprocess-script`, absolute.
    pub postprocess_script: Option<PathBuf>,
    /// `postprocess`: inline scripts.
    pub postprocess: Vec<String>,
    /// `automatic-version-prefix`.
    pub automatic_version_prefix: Option<String>,
    /// `add-commit-metadata`.
    pub add_commit_metadata: Map<String, Value>,
    /// `ignore-scripts`: packages whose scriptlets are not run.
    pub ignore_scripts: Vec<String>,
}

/// Loads `path` for `arch` (the `${basearch}`). Problems with the file's
/// content are [`BadInput`]; unknown keys are warnings.
pub fn load(path: &Path, arch: &str) -> anyhow::Result<Treefile> {
    let mut files = Vec::new();
    let doc = load_merged(path, &mut files, 0)?;
    let name = path.display().to_string();
    let t = Typed {
        doc: &doc,
        file: &name,
    };
    let dir = path.parent().unwrap_or(Path::new("."));

    for key in doc.keys() {
        if !KNOWN.contains(&key.as_str())
            && !ACCEPTED_NOOP.contains(&key.as_str())
            && !key.starts_with("packages-")
        {
            log::warn!("treefile {name}: unknown key `{key}` ignored");
        }
    }
    for key in ["selinux"] {
        if doc.get(key) == Some(&Value::Bool(true)) {
            log::info!("treefile {name}: `{key}: true` noted; SELinux labels are not applied");
        }
    }

    let releasever = match doc.get("releasever") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(t.wrong("releasever", "a string or a number")),
    };
    let raw_ref = t.string("ref")?.ok_or_else(|| t.missing("ref"))?;
    let ref_ = substitute(&raw_ref, arch, releasever.as_deref()).map_err(|v| {
        BadInput::err(format!(
            "treefile {name}: key `ref` uses ${{{v}}}, which has no value"
        ))
    })?;
    if ref_.is_empty()
        || ref_.starts_with('/')
        || ref_.ends_with('/')
        || ref_.contains("//")
        || ref_.contains("..")
    {
        return Err(BadInput::err(format!(
            "treefile {name}: key `ref`: `{ref_}` is not a valid ostree ref"
        )));
    }

    let mut packages = Vec::new();
    for key in [
        "bootstrap-packages",
        "packages",
        &format!("packages-{arch}"),
    ] {
        for entry in t.strings(key)? {
            packages.extend(entry.split_whitespace().map(str::to_string));
        }
    }
    if packages.is_empty() {
        return Err(BadInput::err(format!(
            "treefile {name}: no packages to install (key `packages`)"
        )));
    }

    let mut add_files = Vec::new();
    for pair in t.list("add-files")? {
        let pair = match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(src), Value::String(dest)]) => (src, dest),
            _ => {
                return Err(t.wrong(
                    "add-files",
                    "a list of [source, destination] pairs of strings",
                ))
            }
        };
        let dest = pair.1.clone();
        if !(dest.starts_with("/usr/") || dest.starts_with("/etc/")) || dest.contains("/../") {
            return Err(BadInput::err(format!(
                "treefile {name}: key `add-files`: destination `{dest}` must be under /usr or /etc"
            )));
        }
        let src = dir.join(pair.0);
        files.push(src.clone());
        add_files.push((src, dest));
    }

    let mut remove_from_packages = Vec::new();
    for entry in t.list("remove-from-packages")? {
        let items: Option<Vec<String>> = entry
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or(None);
        match items {
            Some(items) if items.len() >= 2 => {
                remove_from_packages.push((items[0].clone(), items[1..].to_vec()));
            }
            _ => {
                return Err(t.wrong(
                    "remove-from-packages",
                    "a list of [package, regex, …] lists of strings",
                ))
            }
        }
    }

    let postprocess_script = t.string("postprocess-script")?.map(|s| dir.join(s));
    if let Some(script) = &postprocess_script {
        files.push(script.clone());
    }
    let add_commit_metadata = match doc.get("add-commit-metadata") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(t.wrong("add-commit-metadata", "a map")),
    };
    let automatic_version_prefix = match doc.get("automatic-version-prefix") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(t.wrong("automatic-version-prefix", "a string")),
    };
    let install_langs = match doc.get("install-langs") {
        None => None,
        Some(_) => Some(t.strings("install-langs")?),
    };

    Ok(Treefile {
        path: path.to_path_buf(),
        ref_,
        releasever,
        repos: t.strings("repos")?,
        exclude_packages: t.strings("exclude-packages")?,
        recommends: t.bool("recommends")?.unwrap_or(true),
        documentation: t.bool("documentation")?.unwrap_or(true),
        install_langs,
        add_files,
        remove_files: t.strings("remove-files")?,
        remove_from_packages,
        units: t.strings("units")?,
        default_target: t.string("default-target")?,
        postprocess_script,
        postprocess: t.strings("postprocess")?,
        automatic_version_prefix,
        add_commit_metadata,
        ignore_scripts: t.strings("ignore-scripts")?,
        packages,
        files,
        flattened: Value::Object(doc),
    })
}

/// Keys we implement (canonical spellings).
const KNOWN: &[&str] = &[
    "ref",
    "include",
    "releasever",
    "repos",
    "packages",
    "bootstrap-packages",
    "exclude-packages",
    "recommends",
    "documentation",
    "install-langs",
    "add-files",
    "remove-files",
    "remove-from-packages",
    "units",
    "default-target",
    "postprocess-script",
    "postprocess",
    "automatic-version-prefix",
    "add-commit-metadata",
    "ignore-scripts",
];

/// Keys whose values are lists that includes concatenate.
fn is_list_key(key: &str) -> bool {
    matches!(
        key,
        "repos"
            | "packages"
            | "bootstrap-packages"
            | "exclude-packages"
            | "install-langs"
            | "add-files"
            | "remove-files"
            | "remove-from-packages"
            | "units"
            | "postprocess"
            | "ignore-scripts"
    ) || key.starts_with("packages-")
}

fn load_merged(
    path: &Path,
    files: &mut Vec<PathBuf>,
    depth: usize,
) -> anyhow::Result<Map<String, Value>> {
    let name = path.display().to_string();
    if depth > MAX_INCLUDE_DEPTH {
        return Err(BadInput::err(format!(
            "treefile {name}: `include` nests deeper than {MAX_INCLUDE_DEPTH} (a cycle?)"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput::err(format!("treefile {name}: cannot read: {e}")))?;
    files.push(path.to_path_buf());
    let is_yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let doc: Value = if is_yaml {
        serde_norway::from_str(&text)
            .map_err(|e| BadInput::err(format!("treefile {name}: not valid YAML: {e}")))?
    } else {
        serde_json::from_str(&text)
            .map_err(|e| BadInput::err(format!("treefile {name}: not valid JSON: {e}")))?
    };
    let Value::Object(raw) = doc else {
        return Err(BadInput::err(format!(
            "treefile {name}: the document must be a map"
        )));
    };
    let mut own = Map::new();
    for (key, value) in raw {
        let canonical = ALIASES
            .iter()
            .find(|(old, _)| *old == key)
            .map(|(_, new)| new.to_string())
            .unwrap_or(key);
        own.insert(canonical, value);
    }
    let includes: Vec<String> = match own.remove("include") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(BadInput::err(format!(
                    "treefile {name}: key `include` must be a string or a list of strings"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(BadInput::err(format!(
                "treefile {name}: key `include` must be a string or a list of strings"
            )))
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut merged = Map::new();
    for inc in includes {
        let base = load_merged(&dir.join(inc), files, depth + 1)?;
        merge(&mut merged, base);
    }
    merge(&mut merged, own);
    Ok(merged)
}

/// Merges `over` into `base`: lists of list keys concatenate, maps merge
/// key by key, anything else in `over` replaces.
fn merge(base: &mut Map<String, Value>, over: Map<String, Value>) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Array(a)), Value::Array(b)) if is_list_key(&key) => a.extend(b),
            (Some(Value::Object(a)), Value::Object(b)) => {
                for (k, v) in b {
                    a.insert(k, v);
                }
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `${basearch}` and `${releasever}` substitution; returns the name of a
/// variable without a value.
fn substitute(s: &str, arch: &str, releasever: Option<&str>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| after.to_string())?;
        let var = &after[..end];
        match (var, releasever) {
            ("basearch", _) => out.push_str(arch),
            ("releasever", Some(r)) => out.push_str(r),
            _ => return Err(var.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Typed access with errors naming the key and the file.
struct Typed<'a> {
    doc: &'a Map<String, Value>,
    file: &'a str,
}

impl Typed<'_> {
    fn wrong(&self, key: &str, what: &str) -> anyhow::Error {
        BadInput::err(format!(
            "treefile {}: key `{key}` must be {what}",
            self.file
        ))
    }

    fn missing(&self, key: &str) -> anyhow::Error {
        BadInput::err(format!("treefile {}: key `{key}` is required", self.file))
    }

    fn string(&self, key: &str) -> anyhow::Result<Option<String>> {
        match self.doc.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    fn bool(&self, key: &str) -> anyhow::Result<Option<bool>> {
        match self.doc.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong(key, "true or false")),
        }
    }

    fn list(&self, key: &str) -> anyhow::Result<Vec<Value>> {
        match self.doc.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(_) => Err(self.wrong(key, "a list")),
        }
    }

    fn strings(&self, key: &str) -> anyhow::Result<Vec<String>> {
        self.list(key)?
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(self.wrong(key, "a list of strings")),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn err(path: &Path) -> String {
        let e = load(path, "x86_64").unwrap_err();
        assert_eq!(releng_manifest::exit_code(&e), 2, "{e:#}");
        format!("{e:#}")
    }

    #[test]
    fn includes_merge_as_rpm_ostree_does() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "base.yaml", "ref: base/${basearch}\nreleasever: 40\npackages: [filesystem, 'setup systemd']\nrecommends: false\nadd-commit-metadata: {a: 1, b: 2}\n");
        let top = write(
            d.path(),
            "host.json",
            r#"{"include": "base.yaml", "ref": "fedora-atomic/${releasever}/${basearch}/docker-host",
                "packages": ["docker"], "packages-x86_64": ["grub2-efi"], "packages-aarch64": ["uboot"],
                "default_target": "multi-user.target", "automatic_version_prefix": "22",
                "add-commit-metadata": {"b": 3}}"#,
        );
        let t = load(&top, "x86_64").unwrap();
        assert_eq!(t.ref_, "fedora-atomic/40/x86_64/docker-host");
        assert_eq!(
            t.packages,
            ["filesystem", "setup", "systemd", "docker", "grub2-efi"]
        );
        assert!(
            !t.recommends,
            "scalars from the include survive when not overridden"
        );
        assert_eq!(t.default_target.as_deref(), Some("multi-user.target"));
        assert_eq!(t.automatic_version_prefix.as_deref(), Some("22"));
        assert_eq!(t.add_commit_metadata["a"], 1);
        assert_eq!(t.add_commit_metadata["b"], 3);
        assert_eq!(t.files.len(), 2);
        assert_eq!(t.flattened["default-target"], "multi-user.target");
    }

    #[test]
    fn wrong_types_name_key_and_file() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "t.json",
            r#"{"ref": "a/b", "packages": "not-a-list"}"#,
        );
        let e = err(&p);
        assert!(
            e.contains("t.json") && e.contains("`packages` must be a list"),
            "{e}"
        );
        let p = write(
            d.path(),
            "t2.json",
            r#"{"ref": "a/b", "packages": ["x"], "recommends": "yes"}"#,
        );
        assert!(err(&p).contains("`recommends` must be true or false"));
        let p = write(d.path(), "t3.json", r#"{"packages": ["x"]}"#);
        assert!(err(&p).contains("`ref` is required"));
        let p = write(
            d.path(),
            "t4.json",
            r#"{"ref": "a/${releasever}", "packages": ["x"]}"#,
        );
        assert!(err(&p).contains("${releasever}"));
        let p = write(
            d.path(),
            "t5.json",
            r#"{"ref": "a", "packages": ["x"], "add-files": [["f", "/opt/f"]]}"#,
        );
        assert!(err(&p).contains("under /usr or /etc"));
        let p = write(d.path(), "t6.json", "{not json");
        assert!(err(&p).contains("not valid JSON"));
    }

    #[test]
    fn include_cycles_are_refused() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "a.json",
            r#"{"include": "b.json", "ref": "a", "packages": ["x"]}"#,
        );
        let b = write(d.path(), "b.json", r#"{"include": "a.json"}"#);
        assert!(err(&b).contains("nests deeper"));
    }

    #[test]
    fn substitution() {
        assert_eq!(
            substitute("f/${releasever}/${basearch}", "x86_64", Some("rawhide")).unwrap(),
            "f/rawhide/x86_64"
        );
        assert_eq!(substitute("f/${nope}", "x86_64", None).unwrap_err(), "nope");
    }
}
