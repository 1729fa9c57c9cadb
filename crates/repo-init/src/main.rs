use std::process::ExitCode;

fn main() -> ExitCode {
    releng_manifest::cli::main::<repo_init::Args>(repo_init::run)
}
