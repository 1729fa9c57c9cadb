//! What an inode carries beyond content, mode and owner: its extended
//! attributes and inode flags, both things a script can set through a
//! hard link or leave on a directory.

use std::ffi::CString;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `path` for a libc call.
pub(crate) fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// The extended attributes of `path` (not followed), sorted, as (name,
/// value) pairs; `None` when they cannot be read.
pub fn xattrs(path: &Path) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = c_path(path).ok()?;
    let mut names = vec![0u8; 1024];
    let n = loop {
        // SAFETY: a valid C string and a buffer of the size given.
        let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            // No xattrs on this filesystem: none to carry over.
            Some(libc::ENOTSUP) => return Some(Vec::new()),
            _ => return None,
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let cname = CString::new(name).ok()?;
        let mut value = vec![0u8; 256];
        let len = loop {
            // SAFETY: valid C strings and a buffer of the size given.
            let len = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    cname.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            if len >= 0 {
                break len as usize;
            }
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE) {
                value.resize(value.len() * 4, 0);
            } else {
                return None;
            }
        };
        value.truncate(len);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Some(out)
}

/// What one `statx` of `path` (not followed) says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// (device, inode).
    pub id: (u64, u64),
    /// Permission bits.
    pub mode: u32,
    /// (uid, gid).
    pub owner: (u32, u32),
    /// Size in bytes.
    pub size: u64,
    /// Modification time, (seconds, nanoseconds).
    pub mtime: (i64, u32),
    /// The inode attributes the filesystem reports (immutable,
    /// append-only, nodump…), masked to those it supports.
    pub attributes: u64,
}

/// `statx` of `path`, not following a symlink: one call for what an
/// `lstat` and a `FS_IOC_GETFLAGS` would say.
pub fn stat(path: &Path) -> std::io::Result<Stat> {
    let c = c_path(path)?;
    // SAFETY: statx fills the struct we pass; zeroed is a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and struct.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS,
            &mut st,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Stat {
        id: (
            libc::makedev(st.stx_dev_major, st.stx_dev_minor),
            st.stx_ino,
        ),
        mode: u32::from(st.stx_mode) & 0o7777,
        owner: (st.stx_uid, st.stx_gid),
        size: st.stx_size,
        mtime: (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
        attributes: st.stx_attributes & st.stx_attributes_mask,
    })
}

/// The inode flags (`chattr`'s) of `path`, followed; 0 where the
/// filesystem has none; `None` when they cannot be read.
pub fn flags(path: &Path) -> Option<libc::c_long> {
    let f = fs::File::open(path).ok()?;
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one long into `flags`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    if r == 0 {
        return Some(flags);
    }
    // Filesystems without flags (tmpfs) have none to carry over.
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOTTY) | Some(libc::ENOTSUP) => Some(0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_set() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, "x").unwrap();
        assert_eq!(xattrs(&p), Some(Vec::new()));
        let c = CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid C strings and a buffer of the size given.
        let r =
            unsafe { libc::lsetxattr(c.as_ptr(), c"user.k".as_ptr(), b"v".as_ptr().cast(), 1, 0) };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        assert_eq!(xattrs(&p), Some(vec![(b"user.k".to_vec(), b"v".to_vec())]));
        assert!(flags(&p).is_some());
        assert_eq!(xattrs(&d.path().join("missing")), None);
    }
}
