use std::process::ExitCode;

fn main() -> ExitCode {
    releng_manifest::cli::main::<metalink_emit::Args>(metalink_emit::run)
}
