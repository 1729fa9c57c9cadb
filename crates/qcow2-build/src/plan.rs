//! From the kickstart's partitions to filesystems in a disk image.

use std::fs;
use std::path::Path;

use releng_manifest::{BadInput, ImagePartition};

use crate::deploy::{self, Deployed};
use crate::disk::{self, Planned, MIB};
use crate::kickstart::Kickstart;
use crate::Built;

/// Sizes of the three partitions an ostree image needs.
pub struct Plan {
    esp: u64,
    boot: u64,
    root: u64,
    disk: u64,
}

fn mib(n: u64) -> u64 {
    n * MIB
}

impl Plan {
    /// Reads sizes from `part`/`logvol`; LVM becomes a plain partition.
    pub fn from_kickstart(ks: &Kickstart, disk_size: u64) -> anyhow::Result<Plan> {
        let find = |mp: &str| ks.parts.iter().find(|p| p.mountpoint == mp);
        let esp = find("/boot/efi")
            .and_then(|p| p.size_mib)
            .map(mib)
            .unwrap_or(mib(127));
        let boot = find("/boot")
            .and_then(|p| p.size_mib)
            .map(mib)
            .unwrap_or(mib(384));
        let root_part = find("/");
        if let Some(r) = root_part {
            if r.logical {
                log::warn!(
                    "logvol /: LVM is not built; the root filesystem goes on a plain partition"
                );
            }
            if r.fstype.as_deref().is_some_and(|f| f != "ext4") {
                log::warn!(
                    "/ asks for {}; the image uses ext4 (filled from a directory without mounting)",
                    r.fstype.as_deref().unwrap_or("")
                );
            }
        }
        // A pv with --grow means the volume group, and the root in it, grow.
        let grow = root_part.map(|r| r.grow).unwrap_or(true)
            || ks
                .parts
                .iter()
                .any(|p| p.mountpoint.starts_with("pv.") && p.grow);
        let fixed = mib(1) + esp + boot + mib(1);
        let root = if grow {
            disk_size
                .checked_sub(fixed)
                .filter(|r| *r >= mib(64))
                .ok_or_else(|| {
                    BadInput::err(format!(
                        "--disk-size {} MiB leaves no room for the root partition",
                        disk_size / MIB
                    ))
                })?
        } else {
            mib(root_part.and_then(|r| r.size_mib).unwrap_or(3000))
        };
        let root = root / MIB * MIB;
        Ok(Plan {
            esp,
            boot,
            root,
            disk: disk_size.max(fixed + root),
        })
    }

    /// Builds the filesystems from the deployed sysroot and the raw disk.
    pub fn build(&self, work: &Path, d: &Deployed) -> anyhow::Result<Built> {
        let sysroot = &d.sysroot;
        // /boot is its own filesystem: move its content aside and leave
        // the mount point.
        let bootfs = work.join("bootfs");
        fs::rename(sysroot.join("boot"), &bootfs)?;
        fs::create_dir(sysroot.join("boot"))?;
        let espdir = work.join("esp");
        crate::boot::esp(&espdir)?;

        let needed_root = disk::usage(sysroot)? * 11 / 10 + mib(32);
        if needed_root > self.root {
            return Err(BadInput::err(format!(
                "the tree needs about {} MiB but the root partition has {} MiB: raise --disk-size or the kickstart's / size",
                needed_root / MIB + 1,
                self.root / MIB
            )));
        }
        let needed_boot = disk::usage(&bootfs)? * 11 / 10 + mib(8);
        if needed_boot > self.boot {
            return Err(BadInput::err(format!(
                "/boot needs about {} MiB but has {} MiB: raise `part /boot --size`",
                needed_boot / MIB + 1,
                self.boot / MIB
            )));
        }
        let esp_img = work.join("esp.vfat");
        let boot_img = work.join("boot.ext4");
        let root_img = work.join("root.ext4");
        let esp_uuid = disk::mkfs_vfat(&esp_img, "EFI-SYSTEM", &espdir, self.esp)?;
        log::debug!("ESP made");
        let boot_uuid = disk::mkfs_ext4(&boot_img, "boot", &bootfs, self.boot)?;
        log::debug!("/boot made");
        let root_uuid = disk::mkfs_ext4(&root_img, "root", sysroot, self.root)?;
        log::debug!("root made");
        disk::set_immutable_in_image(&root_img, &deploy::relative(d)?)?;

        let parts = vec![
            Planned {
                label: "EFI-SYSTEM".into(),
                fstype: "vfat".into(),
                mountpoint: "/boot/efi".into(),
                type_guid: disk::ESP_TYPE.into(),
                size: self.esp,
                uuid: esp_uuid,
            },
            Planned {
                label: "boot".into(),
                fstype: "ext4".into(),
                mountpoint: "/boot".into(),
                type_guid: disk::BOOT_TYPE.into(),
                size: self.boot,
                uuid: boot_uuid,
            },
            Planned {
                label: "root".into(),
                fstype: "ext4".into(),
                mountpoint: "/".into(),
                type_guid: disk::ROOT_TYPE.into(),
                size: self.root,
                uuid: root_uuid,
            },
        ];
        let raw = work.join("disk.raw");
        let with_images: Vec<(Planned, &Path)> = parts
            .iter()
            .cloned()
            .zip([esp_img.as_path(), boot_img.as_path(), root_img.as_path()])
            .collect();
        disk::assemble(&raw, self.disk, &with_images)?;
        Ok(Built {
            raw,
            partitions: parts
                .into_iter()
                .map(|p| ImagePartition {
                    label: p.label,
                    fstype: p.fstype,
                    mountpoint: p.mountpoint,
                    size: p.size,
                    uuid: p.uuid,
                })
                .collect(),
        })
    }
}
