//! `cargo xtask deps`: install the system packages the workspace needs.

use std::process::{Command, Stdio};

use anyhow::bail;

use crate::run;

/// Debian/Ubuntu packages: build (first group), test oracles (second) and
/// the fixture builders (third).
pub const DEBIAN: &[&str] = &[
    "gcc",
    "libc6-dev",
    "pkg-config",
    "libglib2.0-dev",
    "libostree-dev",
    "libsolv-dev",
    "libsolvext-dev",
    // Oracles and helpers the tests and the demo run.
    "ostree",
    "gnupg",
    "gpgv",
    // Fixture RPMs and repositories (`cargo xtask fixtures`).
    "rpm",
    "createrepo-c",
    "busybox-static",
    "cpio",
    // rpm-compose runs scriptlets and postprocess scripts in bubblewrap;
    // dnf is the test oracle for the package set.
    "bubblewrap",
    "dnf",
    // `cargo xtask bench compose` reads peak RSS from /usr/bin/time.
    "time",
    // qcow2-build: filesystems from directories, the GPT, GRUB for EFI,
    // and the boot tests' firmware and emulator.
    "e2fsprogs",
    "dosfstools",
    "mtools",
    "fdisk",
    "grub-efi-amd64-bin",
    "xz-utils",
    "ovmf",
    "qemu-system-x86",
    // scripts/: JSON between steps, publishing, and the lint the tests run.
    "jq",
    "rsync",
    "shellcheck",
    // metalink-emit: librepo (dnf's downloader) as the yum metalink client,
    // wrk for the load tests and `bench serve`, nginx as its static ceiling.
    "python3-librepo",
    "wrk",
    "nginx",
];

/// Python modules the tests use as oracles (installed with pip).
pub const PYTHON: &[(&str, &str)] = &[
    ("pykickstart", "pykickstart"),
    // run-pungi's composeinfo.json and images.json are checked with it.
    ("productmd", "productmd"),
];

/// Fedora packages, same roles.
pub const FEDORA: &[&str] = &[
    "gcc",
    "pkgconf-pkg-config",
    "glib2-devel",
    "ostree-devel",
    "libsolv-devel",
    "ostree",
    "gnupg2",
    "rpm-build",
    "createrepo_c",
    "busybox",
    "cpio",
    "bubblewrap",
    "dnf",
    "time",
    "e2fsprogs",
    "dosfstools",
    "mtools",
    "util-linux",
    "grub2-efi-x64-modules",
    "xz",
    "edk2-ovmf",
    "qemu-system-x86-core",
    "jq",
    "rsync",
    "ShellCheck",
    "python3-librepo",
    "wrk",
    "nginx",
];

enum Family {
    Debian,
    Fedora,
}

fn family() -> anyhow::Result<Family> {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let ids = format!("{} {}", field("ID="), field("ID_LIKE="));
    if ids
        .split_whitespace()
        .any(|i| i == "debian" || i == "ubuntu")
    {
        Ok(Family::Debian)
    } else if ids.split_whitespace().any(|i| i == "fedora" || i == "rhel") {
        Ok(Family::Fedora)
    } else {
        bail!(
            "unsupported distribution `{}`: install the equivalents of {} by hand",
            ids.trim(),
            DEBIAN.join(" ")
        )
    }
}

fn installed(family: &Family, pkg: &str) -> bool {
    let mut cmd = match family {
        Family::Debian => {
            let mut c = Command::new("dpkg-query");
            c.args(["-W", "-f=${db:Status-Status}", pkg]);
            c
        }
        Family::Fedora => {
            let mut c = Command::new("rpm");
            c.args(["-q", "--whatprovides", pkg]);
            c
        }
    };
    match cmd.stderr(Stdio::null()).output() {
        Ok(out) => match family {
            Family::Debian => out.status.success() && out.stdout == b"installed",
            Family::Fedora => out.status.success(),
        },
        Err(_) => false,
    }
}

/// Installs whatever is missing; not root and something missing: prints the
/// command to run and fails.
pub fn ensure() -> anyhow::Result<()> {
    // Commands reach it more than once (test → fixtures); the package
    // queries need to run once per process.
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    system_packages()?;
    python_modules()?;
    let _ = DONE.set(());
    Ok(())
}

fn system_packages() -> anyhow::Result<()> {
    let family = family()?;
    let wanted = match family {
        Family::Debian => DEBIAN,
        Family::Fedora => FEDORA,
    };
    let mut missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|p| !installed(&family, p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // Machines of this kind carry qemu-utils from bookworm-backports, which
    // Debian 12's qemu-system-x86 conflicts with: installed plainly, apt
    // would remove qemu-img. Taking bookworm's qemu-utils too (a
    // downgrade; its qemu-img does all we need) keeps both.
    let mut downgrade = false;
    if matches!(family, Family::Debian)
        && missing.contains(&"qemu-system-x86")
        && codename() == "bookworm"
    {
        missing.push("qemu-utils/bookworm");
        downgrade = true;
    }
    let install = match family {
        Family::Debian => format!(
            "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends{} {}",
            if downgrade { " --allow-downgrades" } else { "" },
            missing.join(" ")
        ),
        Family::Fedora => format!("dnf install -y {}", missing.join(" ")),
    };
    if !testkit::is_root() {
        eprintln!("xtask: missing system packages: {}", missing.join(" "));
        eprintln!("xtask: run as root:\n    {install}");
        bail!("system packages missing");
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    match family {
        Family::Debian => {
            run::status(Command::new("apt-get").arg("update"))?;
            let mut cmd = Command::new("apt-get");
            cmd.env("DEBIAN_FRONTEND", "noninteractive").args([
                "install",
                "-y",
                "--no-install-recommends",
            ]);
            if downgrade {
                cmd.arg("--allow-downgrades");
            }
            run::status(cmd.args(&missing))
        }
        Family::Fedora => run::status(Command::new("dnf").args(["install", "-y"]).args(&missing)),
    }
}

/// Installs the Python oracles with pip when `python3` lacks them.
fn python_modules() -> anyhow::Result<()> {
    let missing: Vec<&str> = PYTHON
        .iter()
        .filter(|(module, _)| {
            !Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !testkit::is_root() {
        eprintln!("xtask: run: python3 -m pip install {}", missing.join(" "));
        bail!("python modules missing");
    }
    run::status(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--root-user-action=ignore",
            ])
            .args(&missing),
    )
}

fn codename() -> String {
    std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default()
}
