//! File capabilities: rpm's text form (`cap_net_raw=ep`) to the
//! `security.capability` xattr the kernel reads (vfs_cap_data, revision 2).

use anyhow::bail;

const NAMES: &[&str] = &[
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x1;

/// Encodes `text` (clauses like `cap_a,cap_b=ep` or `cap_c+i`) as the
/// 20-byte `security.capability` value.
pub fn to_xattr(text: &str) -> anyhow::Result<Vec<u8>> {
    let (mut permitted, mut inheritable, mut effective) = (0u64, 0u64, 0u64);
    for clause in text.split_whitespace() {
        let Some(op_at) = clause.find(['=', '+', '-']) else {
            bail!("capability clause `{clause}` has no =, + or -");
        };
        let (names, rest) = clause.split_at(op_at);
        let (op, flags) = rest.split_at(1);
        let mut mask = 0u64;
        if names.is_empty() || names == "all" {
            mask = (1u64 << NAMES.len()) - 1;
        } else {
            for name in names.split(',') {
                let bare = name.trim().to_ascii_lowercase();
                let bare = bare.strip_prefix("cap_").unwrap_or(&bare);
                match NAMES.iter().position(|n| *n == bare) {
                    Some(bit) => mask |= 1 << bit,
                    None => bail!("unknown capability `{name}`"),
                }
            }
        }
        for set in [&mut permitted, &mut inheritable, &mut effective] {
            if op == "=" {
                *set &= !mask;
            }
        }
        for f in flags.chars() {
            let set = match f {
                'p' => &mut permitted,
                'i' => &mut inheritable,
                'e' => &mut effective,
                _ => bail!("capability clause `{clause}`: unknown flag `{f}`"),
            };
            if op == "-" {
                *set &= !mask;
            } else {
                *set |= mask;
            }
        }
    }
    let magic = VFS_CAP_REVISION_2
        | if effective != 0 {
            VFS_CAP_FLAGS_EFFECTIVE
        } else {
            0
        };
    let mut out = Vec::with_capacity(20);
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&(permitted as u32).to_le_bytes());
    out.extend_from_slice(&(inheritable as u32).to_le_bytes());
    out.extend_from_slice(&((permitted >> 32) as u32).to_le_bytes());
    out.extend_from_slice(&((inheritable >> 32) as u32).to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_setcap() {
        // `setcap cap_net_raw=ep f; getfattr -n security.capability -e hex f`
        // gives 0x0100000200200000000000000000000000000000.
        let x = to_xattr("cap_net_raw=ep").unwrap();
        assert_eq!(
            file_details::hex(&x),
            "0100000200200000000000000000000000000000"
        );
        let x = to_xattr("cap_net_bind_service,cap_bpf+p").unwrap();
        assert_eq!(&x[0..4], &0x0200_0000u32.to_le_bytes());
        assert_eq!(u32::from_le_bytes(x[4..8].try_into().unwrap()), 1 << 10);
        assert_eq!(
            u32::from_le_bytes(x[12..16].try_into().unwrap()),
            1 << (39 - 32)
        );
        assert!(to_xattr("cap_bogus=ep").is_err());
    }
}
