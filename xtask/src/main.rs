//! `cargo xtask`: the project's automation, in Rust so it runs wherever
//! cargo does.
//!
//! xtask itself links no C library: `cargo xtask deps` has to build and run
//! on a machine that lacks libostree-dev.

mod bench;
mod demo;
mod deps;
mod fixtures;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, test, demo and benchmark the releng toolkit"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the system packages the workspace needs (apt-get or dnf).
    Deps,
    /// Install deps, build, and run every test (nextest when present).
    Test {
        /// Extra arguments for the test runner, e.g. a filter.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the fixture RPMs and repositories into target/fixtures.
    Fixtures,
    /// Install deps, build, and run the pipeline on the fixtures.
    Demo,
    /// Run a benchmark: `summary`, `compose` or `image`.
    Bench {
        /// Which benchmark.
        name: bench::Name,
        /// Timed runs per contender (the median is reported) [default: 7
        /// for summary, 3 for compose].
        #[arg(long)]
        runs: Option<usize>,
    },
    /// Regenerate the committed JSON Schema of the manifest.
    Schema,
    /// Write man pages and shell completions of every tool to target/dist.
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Deps => deps::ensure(),
        Cmd::Test { args } => test(&args),
        Cmd::Fixtures => fixtures::build(),
        Cmd::Demo => demo::run(),
        Cmd::Bench { name, runs } => bench::run(name, runs),
        Cmd::Schema => schema(),
        Cmd::Man => man(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The tools this workspace ships, in pipeline order.
pub const TOOLS: &[&str] = &[
    "repo-init",
    "rpm-compose",
    "summary-gen",
    "qcow2-build",
    "mm-crawl",
    "metalink-emit",
];

fn test(extra: &[String]) -> anyhow::Result<()> {
    deps::ensure()?;
    fixtures::build()?;
    let root = root();
    // Integration tests run the real binaries of every tool, not just their
    // own crate's, so all of them are built first.
    run::cargo(&root, &["build", "--workspace", "--bins", "--examples"])?;
    if run::has_nextest() {
        let mut args = vec!["nextest", "run", "--workspace", "--no-fail-fast"];
        args.extend(extra.iter().map(String::as_str));
        run::cargo(&root, &args)
    } else {
        let mut args = vec!["test", "--workspace", "--no-fail-fast"];
        args.extend(extra.iter().map(String::as_str));
        run::cargo(&root, &args)
    }
}

fn schema() -> anyhow::Result<()> {
    let path = root()
        .join("crates/manifest")
        .join(releng_manifest::schema::FILE_NAME);
    std::fs::write(&path, releng_manifest::schema::generate())?;
    eprintln!(
        "wrote {}",
        path.strip_prefix(root()).unwrap_or(&path).display()
    );
    Ok(())
}

fn man() -> anyhow::Result<()> {
    let root = root();
    run::cargo(&root, &["build", "--workspace", "--bins"])?;
    let dist = root.join("target/dist");
    for sub in ["man/man1", "completions"] {
        std::fs::create_dir_all(dist.join(sub))?;
    }
    for tool in TOOLS {
        let bin = run::debug_bin(&root, tool);
        for (what, out) in [
            ("man", format!("man/man1/{tool}.1")),
            ("complete-bash", format!("completions/{tool}.bash")),
            ("complete-zsh", format!("completions/_{tool}")),
            ("complete-fish", format!("completions/{tool}.fish")),
        ] {
            let text = run::output(std::process::Command::new(&bin).arg("--generate").arg(what))?;
            std::fs::write(dist.join(&out), text)?;
        }
    }
    eprintln!("wrote man pages and completions under target/dist/");
    Ok(())
}
