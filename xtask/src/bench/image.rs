//! `cargo xtask bench image`: qcow2-build against a shell script doing the
//! same steps with the same tools (ostree deploy, grub2-generate,
//! grub-mkimage, mkfs.vfat + mtools, mkfs.ext4 -d, sfdisk, dd, qemu-img),
//! on the compose benchmark's corpus tree plus the fixture kernel, a
//! 6 GiB virtual disk each. Reports wall time, qcow2 size and bytes
//! written to storage (from /proc/PID/io, which counts reaped children).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::compose::corpus;
use super::{median, ms};
use crate::{root, run};

const REF: &str = "bench/x86_64/image";
const DISK: &str = "6G";

/// The baseline: every step by hand, as a release engineer would script it.
const BASELINE: &str = r#"set -euo pipefail
REPO=$1 REF=$2 OUT=$3
S=$OUT/sysroot; mkdir -p "$S"
ostree admin init-fs "$S" >/dev/null
ostree admin os-init --sysroot="$S" fedora-atomic >/dev/null
ostree --repo="$S/ostree/repo" remote add --no-gpg-verify fedora-atomic http://127.0.0.1:8000/atomic/rawhide/
ostree --repo="$S/ostree/repo" pull-local --remote=fedora-atomic "$REPO" "$REF" >/dev/null
ostree admin deploy --sysroot="$S" --os=fedora-atomic --karg-none --karg=root=LABEL=root --karg=rw \
  --karg-append=no_timer_check --karg-append=console=tty1 --karg-append=console=ttyS0,115200n8 "fedora-atomic:$REF" >/dev/null
ostree --repo="$S/ostree/repo" config set sysroot.readonly true
ostree --repo="$S/ostree/repo" config set sysroot.bootloader none
# The kickstart's settings and %post, as Anaconda applies them.
D=$(echo "$S"/ostree/deploy/fedora-atomic/deploy/*.0)
echo 'LANG="en_US.UTF-8"' > "$D/etc/locale.conf"
echo 'KEYMAP="us"' > "$D/etc/vconsole.conf"
ln -sf ../usr/share/zoneinfo/Etc/UTC "$D/etc/localtime"
mkdir -p "$D/etc/systemd/system/multi-user.target.wants"
ln -sf /usr/lib/systemd/system/docker.service "$D/etc/systemd/system/multi-user.target.wants/docker.service"
if [ -f "$D/etc/shadow" ]; then sed -i 's/^root:\([^!]\)/root:!\1/' "$D/etc/shadow"; fi
echo "Built by qcow2-build" > "$D/etc/motd"
{ printf 'set timeout=1\nserial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\nfunction load_video {\n  insmod all_video\n}\n'
  GRUB2_BOOT_DEVICE_ID=boot GRUB2_PREPARE_ROOT_CACHE='search --no-floppy --label --set=root boot' \
    ostree admin instutil grub2-generate --sysroot="$S" 1; } > "$S/boot/loader/grub.cfg"
mkdir -p "$S/boot/grub2" && ln -s ../loader/grub.cfg "$S/boot/grub2/grub.cfg"
mv "$S/boot" "$OUT/bootfs" && mkdir "$S/boot"
mkdir -p "$OUT/esp/EFI/BOOT"
printf 'search --no-floppy --label boot --set=root\nset prefix=($root)/grub2\nconfigfile ($root)/grub2/grub.cfg\n' > "$OUT/early.cfg"
grub-mkimage -O x86_64-efi -p /EFI/BOOT -c "$OUT/early.cfg" -o "$OUT/esp/EFI/BOOT/BOOTX64.EFI" part_gpt fat ext2 normal \
  configfile search search_label search_fs_uuid linux echo gzio test all_video efi_gop boot reboot halt loadenv serial terminal
mkfs.vfat -n EFI-SYSTEM -F 32 -C "$OUT/esp.vfat" 130048 >/dev/null
mcopy -s -Q -i "$OUT/esp.vfat" "$OUT/esp/EFI" ::/
truncate -s 300M "$OUT/boot.ext4"; mkfs.ext4 -q -F -L boot -d "$OUT/bootfs" "$OUT/boot.ext4"
truncate -s 5715M "$OUT/root.ext4"; mkfs.ext4 -q -F -L root -d "$S" "$OUT/root.ext4"
debugfs -w -R "set_inode_field ${D#$S} flags 0x80010" "$OUT/root.ext4" >/dev/null 2>&1
truncate -s 6G "$OUT/disk.raw"
printf 'label: gpt\nstart=2048, size=260096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=262144, size=614400, type=BC13C2FF-59E6-4262-A352-B275FD6F7172\nstart=876544, size=11704320, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709\n' \
  | sfdisk --quiet --no-reread --no-tell-kernel "$OUT/disk.raw"
dd if="$OUT/esp.vfat" of="$OUT/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$OUT/boot.ext4" of="$OUT/disk.raw" bs=1M seek=128 conv=notrunc,sparse status=none
dd if="$OUT/root.ext4" of="$OUT/disk.raw" bs=1M seek=428 conv=notrunc,sparse status=none
qemu-img convert -O qcow2 "$OUT/disk.raw" "$OUT/image.qcow2"
"#;

/// Runs the benchmark.
pub fn run(runs: usize) -> anyhow::Result<()> {
    let root = root();
    run::cargo(
        &root,
        &[
            "build",
            "--release",
            "-p",
            "rpm-compose",
            "-p",
            "qcow2-build",
            "--bins",
        ],
    )?;
    crate::fixtures::build()?;
    let corpus = corpus::ensure(&root.join("target/bench/compose"))?;
    let dir = root.join("target/bench/image");
    let repo = dir.join("repo");
    compose_once(&root, &dir, &repo, &corpus)?;
    let tool = run::release_bin(&root, "qcow2-build");
    let ks = root.join("fixtures/kickstarts/fedora-cloud-atomic.ks");

    let (mut t_ours, mut t_base) = (Vec::new(), Vec::new());
    let (mut size_ours, mut size_base, mut w_ours, mut w_base) = (0, 0, 0, 0);
    for round in 0..runs {
        eprintln!("bench image: round {}/{runs}", round + 1);
        let out = dir.join("out-ours");
        fresh(&out)?;
        let (t, w) = measured(
            Command::new(&tool)
                .arg("--kickstart")
                .arg(&ks)
                .arg("--repo")
                .arg(&repo)
                .args(["--ref", REF, "--disk-size", DISK, "-q", "--output-dir"])
                .arg(&out),
        )?;
        t_ours.push(t);
        w_ours = w;
        size_ours = fs::metadata(out.join("fedora-cloud-atomic.qcow2"))?.len();
        fresh(&out)?;

        let out = dir.join("out-baseline");
        fresh(&out)?;
        let (t, w) = measured(
            Command::new("bash")
                .arg("-c")
                .arg(BASELINE)
                .arg("baseline")
                .arg(&repo)
                .arg(REF)
                .arg(&out),
        )?;
        t_base.push(t);
        w_base = w;
        size_base = fs::metadata(out.join("image.qcow2"))?.len();
        fresh(&out)?;
    }
    let (m_ours, m_base) = (median(&mut t_ours), median(&mut t_base));
    let ratio = m_ours.as_secs_f64() / m_base.as_secs_f64();
    let mb = |b: u64| b as f64 / 1e6;
    println!("image: corpus tree + fixture kernel, {DISK} virtual disk, {runs} runs each, medians");
    println!(
        "  baseline (same steps by hand)  {:>7.2} s   qcow2 {:>7.1} MB   written {:>7.1} MB",
        m_base.as_secs_f64(),
        mb(size_base),
        mb(w_base)
    );
    println!(
        "  qcow2-build                    {:>7.2} s   qcow2 {:>7.1} MB   written {:>7.1} MB",
        m_ours.as_secs_f64(),
        mb(size_ours),
        mb(w_ours)
    );
    println!(
        "  time ratio {ratio:.3}x (target <= 1.0x) {}; size ratio {:.3} (target <= 1.0) {}",
        if ratio <= 1.0 { "ok" } else { "MISSED" },
        size_ours as f64 / size_base as f64,
        if size_ours <= size_base {
            "ok"
        } else {
            "MISSED"
        }
    );
    let report = serde_json::json!({
        "benchmark": "image", "runs": runs, "disk": DISK,
        "baseline_ms": t_base.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        "qcow2_build_ms": t_ours.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        "median_baseline_s": m_base.as_secs_f64(),
        "median_qcow2_build_s": m_ours.as_secs_f64(),
        "ratio": ratio,
        "qcow2_bytes": {"baseline": size_base, "qcow2_build": size_ours},
        "written_bytes": {"baseline": w_base, "qcow2_build": w_ours},
    });
    super::write_result(&root, &dir, &report)
}

/// Composes the corpus plus the fixture kernel once into `repo`.
fn compose_once(
    root: &Path,
    dir: &Path,
    repo: &Path,
    corpus: &corpus::Corpus,
) -> anyhow::Result<()> {
    let rev = Command::new("ostree")
        .args(["rev-parse", "--repo"])
        .arg(repo)
        .arg(REF)
        .stderr(Stdio::null())
        .output();
    if rev.map(|o| o.status.success()).unwrap_or(false) {
        return Ok(());
    }
    let _ = fs::remove_dir_all(repo);
    let tfdir = dir.join("treefile");
    fs::create_dir_all(&tfdir)?;
    let mut packages = corpus.names.clone();
    packages.push("kernel".into());
    let tf = serde_json::json!({"ref": REF, "repos": ["corpus", "fixtures"], "packages": packages, "recommends": false});
    fs::write(tfdir.join("image.json"), serde_json::to_vec_pretty(&tf)?)?;
    fs::write(
        tfdir.join("image.repo"),
        format!(
            "[corpus]\nbaseurl=file://{}\n[fixtures]\nbaseurl=file://{}\n",
            corpus.repo.display(),
            root.join("target/fixtures/repo").display()
        ),
    )?;
    run::status(
        Command::new("ostree")
            .args(["init", "--mode=archive", "--repo"])
            .arg(repo),
    )?;
    run::status(
        Command::new(run::release_bin(root, "rpm-compose"))
            .arg("--treefile")
            .arg(tfdir.join("image.json"))
            .arg("--repo")
            .arg(repo)
            .arg("--cachedir")
            .arg(dir.join("cache"))
            .arg("-q")
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    )
}

/// Runs `cmd` under `sh` so that its children's I/O is counted, and returns
/// its wall time and the bytes it (and its children) wrote to storage.
fn measured(cmd: &mut Command) -> anyhow::Result<(Duration, u64)> {
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg("\"$@\" >/dev/null && sync && grep '^write_bytes' /proc/$$/io")
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let start = Instant::now();
    let out = shell
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running the benchmark command")?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!("{:?} failed: {}", cmd.get_program(), out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let written = text
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok((took, written))
}

/// An empty `dir`, clearing the immutable flag ostree leaves on deployments.
fn fresh(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let _ = Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(dir)
            .stderr(Stdio::null())
            .status();
    }
    crate::fixtures::fresh_dir(dir)?;
    Ok(())
}
