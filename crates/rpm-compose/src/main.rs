use std::process::ExitCode;

fn main() -> ExitCode {
    releng_manifest::cli::main::<rpm_compose::Args>(rpm_compose::run)
}
