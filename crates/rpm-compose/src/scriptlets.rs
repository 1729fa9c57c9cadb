//! RPM scriptlets: %pre before a package is unpacked, %post after, and
//! %posttrans once everything is in, each in the sandbox.

use std::path::Path;

use anyhow::bail;

/// One scriptlet of a package.
#[derive(Debug, Clone)]
pub struct Script {
    /// `%pre`, `%post` or `%posttrans`.
    pub kind: &'static str,
    /// Interpreter and its arguments (`/bin/sh` when the header says none).
    pub program: Vec<String>,
    /// The script text.
    pub body: String,
}

/// The install-time scriptlets of one package.
#[derive(Debug, Clone, Default)]
pub struct Scripts {
    /// `%pre`.
    pub pre: Option<Script>,
    /// `%post`.
    pub post: Option<Script>,
    /// `%posttrans`.
    pub posttrans: Option<Script>,
}

/// The scriptlets in an RPM's header.
pub fn from_metadata(meta: &rpm::PackageMetadata) -> Scripts {
    let get = |kind: &'static str, s: Result<rpm::Scriptlet, rpm::Error>| {
        s.ok()
            .filter(|s| !s.script.trim().is_empty() || s.program.is_some())
            .map(|s| Script {
                kind,
                program: s
                    .program
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| vec!["/bin/sh".into()]),
                body: s.script,
            })
    };
    Scripts {
        pre: get("%pre", meta.get_pre_install_script()),
        post: get("%post", meta.get_post_install_script()),
        posttrans: get("%posttrans", meta.get_post_trans_script()),
    }
}

/// Runs `script` of package `name` (`nevra` for messages) in `root`,
/// unless the treefile's `ignore-scripts` lists the package.
pub fn run(
    root: &Path,
    name: &str,
    nevra: &str,
    script: &Script,
    ignore: &[String],
) -> anyhow::Result<()> {
    if ignore.iter().any(|i| i == name) {
        log::info!("{nevra}: {} not run (ignore-scripts)", script.kind);
        return Ok(());
    }
    if script.program.first().is_some_and(|p| p == "<lua>") {
        bail!(
            "{nevra}: its {} scriptlet is Lua, which rpm-compose cannot run; \
             list `{name}` under the treefile's `ignore-scripts` if skipping it is safe",
            script.kind
        );
    }
    log::debug!("{nevra}: running {}", script.kind);
    // $1 is the number of instances after the operation: 1 on install.
    crate::sandbox::run(
        root,
        &format!("{nevra}: {} scriptlet", script.kind),
        &script.program,
        &script.body,
        &["1"],
        true,
    )
}
