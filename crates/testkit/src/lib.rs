//! Test support shared by the tools' integration tests.
//!
//! Tests run the real binaries (built by `cargo build --workspace --bins`,
//! which `cargo xtask test` does first) and check their work with real
//! clients. A test whose oracle is missing says so on stderr and returns
//! through [`require!`]; it never passes silently.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub mod http;
pub mod qemu;

/// Returns from the calling test with a printed reason when `prog` is not
/// on PATH.
#[macro_export]
macro_rules! require {
    ($prog:expr) => {
        if !$crate::have($prog) {
            eprintln!(
                "SKIPPED {}: `{}` is not installed (cargo xtask deps installs it)",
                module_path!(),
                $prog
            );
            return;
        }
    };
}

/// Returns from the calling test with a printed reason unless it runs as
/// root (ostree admin deploy, file owners, bubblewrap as root).
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            eprintln!("SKIPPED {}: needs root (CI runs as root)", module_path!());
            return;
        }
    };
}

/// True when the process runs as root.
pub fn is_root() -> bool {
    extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

/// True when `prog` is on PATH.
pub fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}

/// Path of the workspace binary `name`, next to the running test's
/// directory (`target/<profile>/`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` (cargo xtask test does)",
        path.display()
    );
    path
}

/// What a finished process left.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`-1` when killed by a signal).
    pub code: i32,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr, lossily decoded.
    pub stderr: String,
}

impl Run {
    /// Stdout parsed as JSON; panics with stderr when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}); stderr:\n{}\nstdout:\n{}",
                self.stderr,
                String::from_utf8_lossy(&self.stdout)
            )
        })
    }

    /// Asserts exit 0 and returns self.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success; stderr:\n{}", self.stderr);
        self
    }

    /// Asserts exit `code` with nothing on stdout, and returns self.
    pub fn fails_with(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit status; stderr:\n{}",
            self.stderr
        );
        assert!(
            self.stdout.is_empty(),
            "a failing tool must print nothing on stdout, got:\n{}",
            String::from_utf8_lossy(&self.stdout)
        );
        self
    }
}

/// Runs `cmd` with `stdin` bytes (`None`: /dev/null) and captures output.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Run {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // A tool may refuse early and close its stdin: that is not our error.
        let _ = pipe.write_all(bytes);
    }
    let out: Output = child.wait_with_output().expect("wait for child");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the workspace tool `name` with `args` and `stdin`.
pub fn tool(name: &str, args: &[&str], stdin: Option<&[u8]>) -> Run {
    run(Command::new(bin(name)).args(args), stdin)
}

/// Runs the `ostree` CLI; panics unless it succeeds, returns stdout.
pub fn ostree(args: &[&str]) -> String {
    let r = run(Command::new("ostree").args(args), None);
    assert_eq!(r.code, 0, "ostree {args:?} failed:\n{}", r.stderr);
    String::from_utf8(r.stdout).expect("ostree prints UTF-8")
}

/// Asserts that `doc` validates against the committed manifest schema.
pub fn assert_valid_manifest(doc: &Value) {
    if let Err(errors) = releng_manifest::schema::validate(doc) {
        panic!(
            "manifest does not match the schema:\n{}\n{}",
            errors.join("\n"),
            serde_json::to_string_pretty(doc).unwrap()
        );
    }
}

/// Sorted names in `dir`, for "nothing else was touched" checks.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// `target/fixtures`, built by `cargo xtask fixtures` (which `cargo xtask
/// test` runs first).
pub fn fixtures() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let dir = target.join("fixtures");
    assert!(
        dir.join("repo/repodata/repomd.xml").is_file(),
        "{} has no fixture repository: run `cargo xtask fixtures` (cargo xtask test does)",
        dir.display()
    );
    dir
}

/// The workspace's committed `fixtures/` directory.
pub fn source_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Builds the RPM described by `spec` with Debian's rpmbuild into `out`
/// (flat, no arch subdirectories) and returns its path. For tests that
/// need a package the fixtures must not contain (hostile ones).
pub fn build_rpm(spec: &str, out: &Path) -> PathBuf {
    let top = tempdir();
    let spec_path = top.path().join("test.spec");
    std::fs::write(&spec_path, spec).unwrap();
    std::fs::create_dir_all(out).unwrap();
    let r = run(
        Command::new("rpmbuild")
            .arg("-bb")
            .arg("--nodeps")
            .arg("--define")
            .arg(format!("_topdir {}", top.path().display()))
            .arg("--define")
            .arg(format!("_rpmdir {}", out.display()))
            .arg("--define")
            .arg("_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm")
            .arg("--define")
            .arg(format!("_dbpath {}", top.path().join("rpmdb").display()))
            .arg("--define")
            .arg("_build_id_links none")
            .arg(&spec_path)
            .env("HOME", top.path()),
        None,
    );
    assert_eq!(r.code, 0, "rpmbuild failed:\n{}", r.stderr);
    let name = r
        .stderr
        .lines()
        .chain(String::from_utf8_lossy(&r.stdout).lines())
        .find_map(|l| l.strip_prefix("Wrote: "))
        .map(|p| PathBuf::from(p.trim()))
        .expect("rpmbuild names what it wrote");
    name
}

/// Makes `dir` an rpm-md repository with createrepo_c.
pub fn createrepo(dir: &Path) {
    let r = run(Command::new("createrepo_c").arg("--quiet").arg(dir), None);
    assert_eq!(r.code, 0, "createrepo_c failed:\n{}", r.stderr);
}

/// Runs `first | second` (first's stderr discarded) as a shell pipeline
/// would, and returns what `second` left; asserts `first` succeeded.
pub fn pipe(first: &mut Command, second: &mut Command) -> Run {
    let mut head = first
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {first:?}: {e}"));
    let out = second
        .stdin(head.stdout.take().expect("piped"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {second:?}: {e}"));
    assert!(head.wait().unwrap().success(), "{first:?} failed");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
