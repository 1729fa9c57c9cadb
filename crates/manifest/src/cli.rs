//! Command-line conventions every releng tool shares.
//!
//! A tool's `main.rs` is one line: `releng_manifest::cli::main::<Args>(run)`.
//! This module parses the arguments, sets up logging from `-v`/`-q`,
//! answers `--generate`, runs the tool, and turns its error into one line
//! on stderr and the exit status (1 failure, 2 bad usage or input).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, ValueEnum};

use crate::envelope::Manifest;
use crate::error::exit_code;
use crate::io::{read_input, write_output, Input, Output};

/// Options every tool takes, flattened into its own `Args`.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Read the manifest from FILE instead of stdin.
    #[arg(long, value_name = "FILE", help_heading = "Manifest")]
    pub manifest: Option<PathBuf>,

    /// Write the manifest to FILE (atomically) instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE", help_heading = "Manifest")]
    pub output: Option<PathBuf>,

    /// Say more on stderr (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Output")]
    pub verbose: u8,

    /// Say only errors on stderr.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Output"
    )]
    pub quiet: bool,

    /// Print a man page or shell completions on stdout and exit.
    #[arg(long, value_enum, value_name = "WHAT", hide = true)]
    pub generate: Option<Generate>,
}

impl Common {
    /// Reads the incoming manifest (`--manifest` or stdin).
    pub fn read_manifest(&self) -> anyhow::Result<Manifest> {
        let input = match &self.manifest {
            Some(path) => Input::File(path.clone()),
            None => Input::Stdin,
        };
        read_input(&input)
    }

    /// Writes the outgoing manifest (`--output` or stdout).
    pub fn write_manifest(&self, manifest: &Manifest) -> anyhow::Result<()> {
        let output = match &self.output {
            Some(path) => Output::File(path.clone()),
            None => Output::Stdout,
        };
        write_output(manifest, &output)
    }

    fn log_level(&self) -> log::LevelFilter {
        if self.quiet {
            return log::LevelFilter::Error;
        }
        match self.verbose {
            0 => log::LevelFilter::Info,
            1 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        }
    }
}

/// What `--generate` prints.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generate {
    /// A roff man page.
    Man,
    /// bash completions.
    CompleteBash,
    /// zsh completions.
    CompleteZsh,
    /// fish completions.
    CompleteFish,
}

/// Gives the shared runner access to a tool's [`Common`] options.
pub trait Tool: Parser {
    /// The flattened common options.
    fn common(&self) -> &Common;
}

/// Implements [`Tool`] for an `Args` struct whose [`Common`] options are
/// flattened into a field named `common`.
#[macro_export]
macro_rules! impl_tool {
    ($args:ty) => {
        impl $crate::cli::Tool for $args {
            fn common(&self) -> &$crate::cli::Common {
                &self.common
            }
        }
    };
}

/// Parses the arguments, runs `run`, reports its error and returns the exit
/// status. stdout is left to `run` (the manifest) and `--generate`.
pub fn main<A: Tool>(run: impl FnOnce(A) -> anyhow::Result<()>) -> ExitCode {
    let name = A::command().get_name().to_string();
    // Answered before parsing: packaging runs `--generate man` without the
    // arguments a real run requires (a treefile, a kickstart).
    if let Some(what) = generate_request() {
        return match generate(A::command(), what, &mut io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{name}: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = A::parse();
    let common = args.common();
    init_logging(&name, common.log_level());
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` puts the whole context chain on one line.
            eprintln!("{name}: error: {err:#}");
            ExitCode::from(exit_code(&err) as u8)
        }
    }
}

/// `--generate WHAT` (or `--generate=WHAT`) among the process arguments.
fn generate_request() -> Option<Generate> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--generate") {
            Some("") => args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => None,
        })?;
    Generate::from_str(&value, false).ok()
}

/// Writes a man page or completion script for `cmd` to `out`.
pub fn generate(mut cmd: clap::Command, what: Generate, out: &mut dyn Write) -> io::Result<()> {
    use clap_complete::Shell;
    let name = cmd.get_name().to_string();
    let shell = match what {
        Generate::Man => return clap_mangen::Man::new(cmd).render(out),
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, name, out);
    Ok(())
}

fn init_logging(name: &str, level: log::LevelFilter) {
    let name = name.to_string();
    env_logger::Builder::new()
        .filter_level(level)
        .format(move |buf, record| match record.level() {
            log::Level::Info => writeln!(buf, "{name}: {}", record.args()),
            l => writeln!(
                buf,
                "{name}: {}: {}",
                l.as_str().to_lowercase(),
                record.args()
            ),
        })
        .parse_env("RELENG_LOG")
        .init();
}
