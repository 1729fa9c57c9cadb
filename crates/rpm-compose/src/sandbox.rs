//! Running a script inside the new tree with bubblewrap: the tree as `/`,
//! no network, private `/tmp` and `/run`, a clean environment.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail};

/// Where the script is bound inside the sandbox.
const SCRIPT: &str = "/tmp/.rpm-compose-script";

/// Runs `script` in `root` as `program… SCRIPT args…` (an empty `program`
/// executes the script itself, for a shebang). With `var_readonly`, /var
/// is bound read-only, as rpm-ostree runs scriptlets. A failure carries the
/// script's output and `name`.
pub fn run(
    root: &Path,
    name: &str,
    program: &[String],
    script: &str,
    args: &[&str],
    var_readonly: bool,
) -> anyhow::Result<()> {
    let mut file = tempfile::Builder::new()
        .prefix("rpm-compose-script-")
        .tempfile()?;
    std::io::Write::write_all(&mut file, script.as_bytes())?;
    // Closed before it runs: executing a file open for writing is ETXTBSY.
    let tmp = file.into_temp_path();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
    if let Some(interp) = program.first() {
        let inside = root.join(interp.trim_start_matches('/'));
        if fs::symlink_metadata(&inside).is_err() {
            bail!("{name}: its interpreter {interp} is not in the tree (yet)");
        }
    }
    let mut cmd = Command::new("bwrap");
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // As root bwrap keeps every capability. A script has no business
        // making files immutable (they are hard links into the package
        // cache), mounting, or making device nodes.
        for cap in ["CAP_LINUX_IMMUTABLE", "CAP_SYS_ADMIN", "CAP_MKNOD"] {
            cmd.args(["--cap-drop", cap]);
        }
    }
    cmd.arg("--bind").arg(root).arg("/");
    // bwrap would follow a symlinked /var on the host.
    if var_readonly && releng_manifest::treepath::is_real_dir(&root.join("var")) {
        cmd.arg("--ro-bind").arg(root.join("var")).arg("/var");
    }
    cmd.args([
        "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/run",
    ])
    .args([
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-pid",
        "--die-with-parent",
    ])
    .args([
        "--chdir",
        "/",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/sbin:/usr/bin:/sbin:/bin",
    ])
    .args(["--setenv", "LANG", "C.UTF-8"])
    .arg("--ro-bind")
    .arg(&tmp)
    .arg(SCRIPT)
    .args(program)
    .arg(SCRIPT)
    .args(args);
    let out = cmd
        .output()
        .map_err(|e| anyhow!("{name}: cannot run bwrap (install bubblewrap): {e}"))?;
    if !out.status.success() {
        bail!(
            "{name} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
