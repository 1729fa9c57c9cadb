use std::process::ExitCode;

fn main() -> ExitCode {
    releng_manifest::cli::main::<mm_crawl::Args>(mm_crawl::run)
}
