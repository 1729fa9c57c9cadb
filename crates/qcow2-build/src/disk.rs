//! Assembling a GPT disk image from filesystem images built out of
//! directories: `mkfs.ext4 -d`, `mkfs.vfat` + mtools, `sfdisk` on the image
//! file. No loop device, no mount; zero blocks are never written.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail, Context};
use releng_manifest::BadInput;

/// 1 MiB: partition alignment and the copy unit.
pub const MIB: u64 = 1 << 20;

/// GPT type GUIDs.
pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// Linux extended boot (XBOOTLDR), Fedora's type for /boot.
pub const BOOT_TYPE: &str = "BC13C2FF-59E6-4262-A352-B275FD6F7172";
/// Linux root (x86-64).
pub const ROOT_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";

/// A partition to lay out: its filesystem image and where it goes.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Label of the filesystem and the GPT partition.
    pub label: String,
    /// `vfat` or `ext4`.
    pub fstype: String,
    /// Where the deployment mounts it.
    pub mountpoint: String,
    /// GPT type GUID.
    pub type_guid: String,
    /// Size in bytes (a multiple of 1 MiB).
    pub size: u64,
    /// Filesystem UUID.
    pub uuid: String,
}

/// Runs a command, failing with its stderr.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .map_err(|e| anyhow!("cannot run {name}: {e}"))?;
    if !out.status.success() {
        bail!(
            "{name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Space the files under `dir` take, in bytes, counting hard links once.
pub fn usage(dir: &Path) -> anyhow::Result<u64> {
    let out = run(Command::new("du")
        .arg("-s")
        .arg("--block-size=1")
        .arg("-x")
        .arg(dir))?;
    out.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("du printed `{out}`"))
}

/// Makes an ext4 image of `size` bytes holding `dir`.
pub fn mkfs_ext4(image: &Path, label: &str, dir: &Path, size: u64) -> anyhow::Result<String> {
    File::create(image)?.set_len(size)?;
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label, "-E", "root_owner=0:0", "-d"])
        .arg(dir)
        .arg(image))
    .map_err(|e| {
        let needed = usage(dir).map(|u| u / MIB + 1).unwrap_or(0);
        anyhow!("{label}: {e} (the files take about {needed} MiB; give the partition more room)")
    })?;
    fs_uuid_ext4(image)
}

fn fs_uuid_ext4(image: &Path) -> anyhow::Result<String> {
    let out = run(Command::new("dumpe2fs").arg("-h").arg(image))?;
    out.lines()
        .find_map(|l| {
            l.strip_prefix("Filesystem UUID:")
                .map(|u| u.trim().to_string())
        })
        .ok_or_else(|| anyhow!("{}: no UUID", image.display()))
}

/// Makes a FAT32 image of `size` bytes holding `dir` (FAT has no
/// symlinks: mtools copies what they point to).
pub fn mkfs_vfat(image: &Path, label: &str, dir: &Path, size: u64) -> anyhow::Result<String> {
    let _ = fs::remove_file(image);
    let out = run(Command::new("mkfs.vfat")
        .args(["-n", label, "-F", "32", "-C"])
        .arg(image)
        .arg((size / 1024).to_string()))?;
    log::debug!("{out}");
    for e in fs::read_dir(dir)? {
        run(Command::new("mcopy")
            .args(["-s", "-Q", "-i"])
            .arg(image)
            .arg(e?.path())
            .arg("::/"))?;
    }
    let info = run(Command::new("minfo").arg("-i").arg(image).arg("::"))?;
    let serial = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("serial number:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    // mtools prints 1234ABCD; the kernel shows 1234-ABCD.
    Ok(if serial.len() == 8 {
        format!("{}-{}", &serial[..4], &serial[4..])
    } else {
        serial
    })
}

/// Writes the GPT for `parts` into `disk` (a file of `disk_size` bytes)
/// and copies each filesystem image to its offset, skipping zero blocks.
pub fn assemble(disk: &Path, disk_size: u64, parts: &[(Planned, &Path)]) -> anyhow::Result<()> {
    let f = File::create(disk)?;
    f.set_len(disk_size)?;
    drop(f);
    let mut script = String::from("label: gpt\nunit: sectors\nfirst-lba: 2048\n");
    let mut offset = MIB;
    let mut offsets = Vec::new();
    for (p, _) in parts {
        script.push_str(&format!(
            "start={}, size={}, type={}, name=\"{}\"\n",
            offset / 512,
            p.size / 512,
            p.type_guid,
            p.label
        ));
        offsets.push(offset);
        offset += p.size;
    }
    if offset + MIB > disk_size {
        return Err(BadInput::err(format!(
            "the partitions need {} MiB but --disk-size is {} MiB",
            (offset + MIB) / MIB,
            disk_size / MIB
        )));
    }
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(disk)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| anyhow!("cannot run sfdisk (install fdisk): {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "sfdisk failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut out = fs::OpenOptions::new().write(true).open(disk)?;
    for ((p, image), at) in parts.iter().zip(offsets) {
        copy_sparse(image, &mut out, at)
            .with_context(|| format!("copying the {} filesystem into the disk", p.label))?;
    }
    out.sync_all()?;
    Ok(())
}

/// Copies `src` into `dst` at `offset`, touching only the data extents of
/// `src` (found with SEEK_DATA/SEEK_HOLE) and, within them, only blocks
/// that are not all zero: a mostly empty filesystem costs almost no I/O.
fn copy_sparse(src: &Path, dst: &mut File, offset: u64) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let mut input = File::open(src)?;
    let len = input.metadata()?.len();
    let fd = input.as_raw_fd();
    let mut buf = vec![0u8; MIB as usize];
    let mut pos: u64 = 0;
    while pos < len {
        // SAFETY: lseek on a descriptor we own.
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: no data after pos
        }
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let (start, end) = (data as u64, if hole < 0 { len } else { hole as u64 });
        input.seek(SeekFrom::Start(start))?;
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            input.read_exact(&mut buf[..n])?;
            if buf[..n].iter().any(|&b| b != 0) {
                dst.seek(SeekFrom::Start(offset + at))?;
                dst.write_all(&buf[..n])?;
            }
            at += n as u64;
        }
        pos = end;
    }
    Ok(())
}

/// Restores ostree's immutable flag on the deployment directory inside an
/// ext4 image (`mkfs.ext4 -d` does not carry inode flags over).
pub fn set_immutable_in_image(image: &Path, dir_in_fs: &str) -> anyhow::Result<()> {
    // EXT4_EXTENTS_FL | EXT4_IMMUTABLE_FL
    run(Command::new("debugfs")
        .arg("-w")
        .arg("-R")
        .arg(format!("set_inode_field {dir_in_fs} flags 0x80010"))
        .arg(image))?;
    Ok(())
}

/// Converts the raw disk to `format` at `out`.
pub fn convert(raw: &Path, out: &Path, format: &str, compress: bool) -> anyhow::Result<()> {
    match format {
        "qcow2" => {
            let mut cmd = Command::new("qemu-img");
            cmd.args(["convert", "-O", "qcow2"]);
            if compress {
                cmd.arg("-c");
            }
            run(cmd.arg(raw).arg(out)).map(|_| ())
        }
        "raw" => {
            // cp keeps the holes; qemu and dd readers see the same bytes.
            run(Command::new("cp").arg("--sparse=always").arg(raw).arg(out)).map(|_| ())
        }
        "raw.xz" => {
            let f = File::create(out)?;
            let st = Command::new("xz")
                .args(["-T0", "-6", "-c"])
                .arg(raw)
                .stdout(f)
                .status()
                .map_err(|e| anyhow!("cannot run xz: {e}"))?;
            if !st.success() {
                bail!("xz failed: {st}");
            }
            Ok(())
        }
        other => Err(BadInput::err(format!(
            "--format {other}: expected qcow2, raw or raw.xz"
        ))),
    }
}

/// `qemu-img check` passes and returns the virtual size.
pub fn check_qcow2(image: &Path) -> anyhow::Result<u64> {
    run(Command::new("qemu-img").arg("check").arg(image))?;
    let info = run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(image))?;
    let v: serde_json::Value = serde_json::from_str(&info)?;
    v["virtual-size"]
        .as_u64()
        .ok_or_else(|| anyhow!("qemu-img info gave no virtual-size"))
}

/// Parses sizes like `6G`, `4096M`, `10GiB`, or bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 6G or 4096M"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        "t" | "tib" | "tb" => 1 << 40,
        _ => return Err(format!("`{s}`: unknown unit `{unit}`")),
    };
    Ok(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("6G").unwrap(), 6 << 30);
        assert_eq!(parse_size("300M").unwrap(), 300 << 20);
        assert!(parse_size("six").is_err());
    }
}
