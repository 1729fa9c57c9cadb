use std::process::ExitCode;

fn main() -> ExitCode {
    releng_manifest::cli::main::<summary_gen::Args>(summary_gen::run)
}
