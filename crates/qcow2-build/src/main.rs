use std::process::ExitCode;

fn main() -> ExitCode {
    releng_manifest::cli::main::<qcow2_build::Args>(qcow2_build::run)
}
