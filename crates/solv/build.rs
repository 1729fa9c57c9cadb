//! Links the system libsolv and libsolvext (Debian: libsolv-dev,
//! libsolvext-dev) and compiles the shim that reaches the struct fields and
//! inline functions libsolv has no exported symbol for.

fn main() {
    let solv = pkg_config::Config::new()
        .atleast_version("0.7")
        .probe("libsolv")
        .expect("libsolv not found by pkg-config: install libsolv-dev (cargo xtask deps)");
    pkg_config::Config::new()
        .probe("libsolvext")
        .expect("libsolvext not found by pkg-config: install libsolvext-dev (cargo xtask deps)");
    let mut build = cc::Build::new();
    build
        .file("csrc/shim.c")
        .warnings(true)
        .extra_warnings(true);
    for dir in &solv.include_paths {
        build.include(dir);
    }
    build.compile("solvshim");
    println!("cargo:rerun-if-changed=csrc/shim.c");
}
