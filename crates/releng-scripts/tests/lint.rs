//! The scripts pass shellcheck, following the files they source.

use std::process::Command;

use testkit::{require, run};

#[test]
fn scripts_are_shellcheck_clean() {
    require!("shellcheck");
    let dir = releng_scripts::scripts_dir();
    let r = run(
        Command::new("shellcheck")
            .args(["-x", "buildrawhide", "buildbranched", "run-pungi"])
            .args(["lib/releng.sh", "lib/nightly.sh"])
            .current_dir(&dir),
        None,
    );
    assert_eq!(
        r.code,
        0,
        "shellcheck:\n{}",
        String::from_utf8_lossy(&r.stdout)
    );
}
