//! Running commands, with the command line echoed and failures named.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// Runs `cargo ARGS` in `dir`, inheriting stdio.
pub fn cargo(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(Command::new(cargo).args(args).current_dir(dir))
}

/// Runs `cmd` with inherited stdio; fails unless it exits 0.
pub fn status(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("+ {}", describe(cmd));
    let st = cmd
        .status()
        .with_context(|| format!("cannot run {}", describe(cmd)))?;
    if !st.success() {
        bail!("{} failed: {st}", describe(cmd));
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; stderr passes through.
pub fn output(cmd: &mut Command) -> anyhow::Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", describe(cmd)))?;
    if !out.status.success() {
        bail!("{} failed: {}", describe(cmd), out.status);
    }
    Ok(out.stdout)
}

/// True when `cargo nextest` is installed.
pub fn has_nextest() -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Path of a debug-built binary of the workspace.
pub fn debug_bin(root: &Path, name: &str) -> PathBuf {
    target_dir(root).join("debug").join(name)
}

/// Path of a release-built binary of the workspace.
pub fn release_bin(root: &Path, name: &str) -> PathBuf {
    target_dir(root).join("release").join(name)
}

/// Path of a release-built example of the workspace.
pub fn release_example(root: &Path, name: &str) -> PathBuf {
    target_dir(root).join("release/examples").join(name)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
