//! Booting a built disk image under qemu with OVMF, the way a cloud would,
//! and reading its serial console. Used by qcow2-build's tests, the script
//! tests and `cargo xtask demo`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The text the fixture initramfs prints once it has found the deployment:
/// `RELENG-BOOT-OK ostree=… commit=…` (or `RELENG-BOOT-FAIL …`).
pub const MARKER: &str = "RELENG-BOOT-";

/// OVMF's code and variables files, when the `ovmf` package is installed.
pub fn ovmf() -> Option<(PathBuf, PathBuf)> {
    for (code, vars) in [
        ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"),
        ("OVMF_CODE.fd", "OVMF_VARS.fd"),
    ] {
        let d = Path::new("/usr/share/OVMF");
        if d.join(code).exists() && d.join(vars).exists() {
            return Some((d.join(code), d.join(vars)));
        }
    }
    None
}

/// Runs qemu (TCG: KVM guests hang on these machines) with `args` until it
/// exits, prints the boot marker, or `limit` passes; returns the serial
/// console.
pub fn run(args: &[String], limit: Duration) -> String {
    let log = tempfile::NamedTempFile::new().expect("temporary serial log");
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "q35,accel=tcg",
            "-m",
            "1024",
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
        ])
        .arg("-serial")
        .arg(format!("file:{}", log.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 starts");
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        if fs::read(log.path())
            .map(|b| String::from_utf8_lossy(&b).contains(MARKER))
            .unwrap_or(false)
        {
            // The rest of the marker line.
            std::thread::sleep(Duration::from_millis(500));
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = child.kill();
    let _ = child.wait();
    String::from_utf8_lossy(&fs::read(log.path()).unwrap_or_default()).into_owned()
}

/// Boots the qcow2 `image` through OVMF and its own GRUB, on a throw-away
/// snapshot, with a copy of the firmware variables in `scratch`. Returns
/// the serial console, or why it could not try.
pub fn boot_uefi(image: &Path, scratch: &Path, limit: Duration) -> Result<String, String> {
    let (code, vars) = ovmf().ok_or("OVMF firmware is not installed (package ovmf)")?;
    let vars_copy = scratch.join("OVMF_VARS.fd");
    fs::copy(vars, &vars_copy).map_err(|e| format!("copying OVMF vars: {e}"))?;
    Ok(run(
        &[
            "-drive".into(),
            format!("if=pflash,format=raw,readonly=on,file={}", code.display()),
            "-drive".into(),
            format!("if=pflash,format=raw,file={}", vars_copy.display()),
            "-drive".into(),
            format!(
                "file={},if=virtio,format=qcow2,snapshot=on",
                image.display()
            ),
        ],
        limit,
    ))
}

/// The boot marker line of a serial console, if any.
pub fn marker_line(serial: &str) -> Option<&str> {
    serial.lines().find(|l| l.contains(MARKER))
}

/// The last 3,000 characters of a console, for assertion messages.
pub fn tail(s: &str) -> String {
    let skip = s.chars().count().saturating_sub(3000);
    s.chars().skip(skip).collect()
}
