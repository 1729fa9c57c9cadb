//! The bootloader: GRUB on the EFI system partition, reading the config
//! ostree generates into /boot, Fedora's layout.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail};

use crate::disk::run;

/// GRUB modules the EFI image needs to find /boot by label and boot Linux.
const MODULES: &[&str] = &[
    "part_gpt",
    "fat",
    "ext2",
    "normal",
    "configfile",
    "search",
    "search_label",
    "search_fs_uuid",
    "linux",
    "echo",
    "gzio",
    "test",
    "all_video",
    "efi_gop",
    "boot",
    "reboot",
    "halt",
    "loadenv",
    "serial",
    "terminal",
];

/// Writes `ostree admin instutil grub2-generate`'s config as
/// `/boot/loader/grub.cfg` with `/boot/grub2/grub.cfg` pointing at it.
pub fn grub_config(sysroot: &Path, timeout: Option<u32>) -> anyhow::Result<()> {
    let out = Command::new("ostree")
        .args(["admin", "instutil", "grub2-generate"])
        .arg(format!("--sysroot={}", sysroot.display()))
        .arg("1")
        .env("GRUB2_BOOT_DEVICE_ID", "boot")
        .env(
            "GRUB2_PREPARE_ROOT_CACHE",
            "search --no-floppy --label --set=root boot",
        )
        .output()
        .map_err(|e| anyhow!("cannot run ostree: {e}"))?;
    if !out.status.success() {
        bail!(
            "ostree admin instutil grub2-generate: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // Fedora's grub.cfg defines load_video, which ostree's entries call.
    let mut cfg = format!(
        "set timeout={}\nserial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n\
         function load_video {{\n  insmod all_video\n}}\n",
        timeout.unwrap_or(1)
    );
    cfg.push_str(&String::from_utf8_lossy(&out.stdout));
    let loader = sysroot.join("boot/loader");
    fs::write(loader.join("grub.cfg"), cfg)?;
    let grub2 = sysroot.join("boot/grub2");
    fs::create_dir_all(&grub2)?;
    let link = grub2.join("grub.cfg");
    let _ = fs::remove_file(&link);
    symlink("../loader/grub.cfg", link)?;
    Ok(())
}

/// Fills `esp` (a directory) with a GRUB EFI image that finds the /boot
/// filesystem by its label and reads its grub.cfg.
pub fn esp(esp: &Path) -> anyhow::Result<()> {
    let dir = esp.join("EFI/BOOT");
    fs::create_dir_all(&dir)?;
    let early = tempfile::NamedTempFile::new()?;
    fs::write(
        early.path(),
        "search --no-floppy --label boot --set=root\nset prefix=($root)/grub2\nconfigfile ($root)/grub2/grub.cfg\n",
    )?;
    let available: Vec<&str> = MODULES
        .iter()
        .copied()
        .filter(|m| {
            Path::new("/usr/lib/grub/x86_64-efi")
                .join(format!("{m}.mod"))
                .exists()
        })
        .collect();
    run(Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", "/EFI/BOOT", "-c"])
        .arg(early.path())
        .arg("-o")
        .arg(dir.join("BOOTX64.EFI"))
        .args(&available))
    .map_err(|e| anyhow!("{e} (install grub-efi-amd64-bin)"))?;
    Ok(())
}
