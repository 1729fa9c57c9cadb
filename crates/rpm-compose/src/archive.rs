//! Content objects of `archive` repositories, written directly.
//!
//! libostree checksums a file with glib's software SHA-256 and compresses
//! it with zlib on the way into its staging directory: on a cold compose
//! that is most of the CPU time. An archive content object is a simple,
//! stable format, so for regular files and symlinks we write it here:
//! one read of the file, SHA-256 with the CPU's SHA instructions, raw
//! deflate with libdeflate at ostree's level, then a rename into
//! `objects/`. `ostree fsck` decompresses and re-checksums every object,
//! which is what the tests hold us to.
//!
//! The object, `objects/XX/REST.filez`:
//!
//! ```text
//! u32 BE  length of the header variant
//! 4 bytes zero (alignment)
//! header  GVariant (tuuuusa(ayay)): size, uid, gid, mode, rdev, symlink
//!         target, xattrs; integers big-endian
//! data    raw deflate of the file's bytes (absent for symlinks)
//! ```
//!
//! The checksum is SHA-256 over the same framing of the uncompressed
//! header `(uuuusa(ayay))` followed by the file's bytes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use gio::prelude::*;
use sha2::{Digest, Sha256};

/// Files larger than this go through libostree's streaming writer: this
/// path holds a file in memory while it compresses it.
pub const MAX_DIRECT: u64 = 64 << 20;

/// ostree's compression level for archive repositories unless the repo's
/// `core.zlib-level` says otherwise.
const DEFAULT_LEVEL: i32 = 6;

/// Extended attributes as ostree stores them: `(name, value)` pairs with
/// NUL-terminated names.
pub type XattrPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Writes content objects straight into an archive repository.
pub struct ArchiveWriter {
    objects: PathBuf,
    tmp: PathBuf,
    level: libdeflater::CompressionLvl,
}

/// What became of one content object.
pub struct Written {
    /// Its checksum.
    pub checksum: String,
    /// True when this call wrote it; false when the repo had it.
    pub new: bool,
}

/// One file's owner, mode, xattrs and bytes.
pub struct Object<'a> {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// Symlink target, for a symlink.
    pub symlink: Option<&'a str>,
    /// `(name, value)` pairs, names NUL-terminated as ostree stores them.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
    /// The file's bytes (empty for a symlink).
    pub data: &'a [u8],
}

impl ArchiveWriter {
    /// A writer for `repo` when it is an archive repository.
    pub fn for_repo(repo: &ostree::Repo) -> Option<ArchiveWriter> {
        if repo.mode() != ostree::RepoMode::Archive {
            return None;
        }
        let root = repo.path().path()?;
        let level = repo
            .copy_config()
            .integer("core", "zlib-level")
            .ok()
            .filter(|l| (1..=9).contains(l))
            .and_then(|l| libdeflater::CompressionLvl::new(l).ok())
            .or_else(|| libdeflater::CompressionLvl::new(DEFAULT_LEVEL).ok())?;
        Some(ArchiveWriter {
            objects: root.join("objects"),
            tmp: root.join("tmp"),
            level,
        })
    }

    /// The object's checksum, computed the way ostree does. It does not
    /// depend on the repository's mode.
    pub fn checksum(obj: &Object) -> String {
        checksum_of(&fields(obj), obj.data)
    }

    /// A compressor at this repository's level: one per writer thread,
    /// passed to every [`ArchiveWriter::write`] of that thread.
    pub fn compressor(&self) -> libdeflater::Compressor {
        libdeflater::Compressor::new(self.level)
    }

    /// Writes `obj`, compressed with `compressor`, unless
    /// `exists(checksum)` says the repository has it.
    pub fn write(
        &self,
        obj: &Object,
        compressor: &mut libdeflater::Compressor,
        exists: impl FnOnce(&str) -> anyhow::Result<bool>,
    ) -> anyhow::Result<Written> {
        let fields = fields(obj);
        let checksum = checksum_of(&fields, obj.data);
        if exists(&checksum)? {
            return Ok(Written {
                checksum,
                new: false,
            });
        }
        // `(tuuuusa(ayay))`: the size, then the fields the checksum covers.
        let header = glib::Variant::tuple_from_iter(
            std::iter::once((obj.data.len() as u64).to_be().to_variant()).chain(fields),
        )
        .data_as_bytes();
        let mut out = Vec::with_capacity(8 + header.len() + obj.data.len() / 2 + 64);
        out.extend_from_slice(&framed_len(header.len()));
        out.extend_from_slice(&header);
        if obj.symlink.is_none() {
            deflate(compressor, obj.data, &mut out)?;
        }
        self.store(&checksum, &out)
            .with_context(|| format!("storing content object {checksum}"))?;
        Ok(Written {
            checksum,
            new: true,
        })
    }

    /// Writes `bytes` to a temporary file in the repo's `tmp/` and renames
    /// it into place: a reader or a crash never sees half an object.
    fn store(&self, checksum: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let dir = self.objects.join(&checksum[..2]);
        let dest = dir.join(format!("{}.filez", &checksum[2..]));
        let mut tmp = tempfile::Builder::new()
            .prefix(".rpm-compose-obj-")
            .tempfile_in(&self.tmp)?;
        tmp.write_all(bytes)?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
        if let Err(e) = fs::create_dir(&dir) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(e.into());
            }
        }
        tmp.persist(&dest).map_err(|e| e.error)?;
        Ok(())
    }
}

/// `u32` BE length and four bytes of padding: ostree's framing of a
/// variant written before a stream.
fn framed_len(len: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(len as u32).to_be_bytes());
    b
}

/// The `a(ayay)` variant ostree stores for `xattrs`.
pub(crate) fn xattrs_variant(xattrs: &[(Vec<u8>, Vec<u8>)]) -> glib::Variant {
    xattrs.to_vec().to_variant()
}

/// uid, gid, mode, rdev, symlink target, xattrs: the fields of the
/// `(uuuusa(ayay))` header the checksum covers, which the stored
/// `(tuuuusa(ayay))` header repeats after the size.
fn fields(obj: &Object) -> [glib::Variant; 6] {
    [
        obj.uid.to_be().to_variant(),
        obj.gid.to_be().to_variant(),
        obj.mode.to_be().to_variant(),
        0u32.to_variant(),
        obj.symlink.unwrap_or("").to_variant(),
        xattrs_variant(obj.xattrs),
    ]
}

/// SHA-256 over the framed `(uuuusa(ayay))` header made of `fields`,
/// then `data`.
fn checksum_of(fields: &[glib::Variant; 6], data: &[u8]) -> String {
    let header = glib::Variant::tuple_from_iter(fields.iter().cloned()).data_as_bytes();
    let mut h = Sha256::new();
    h.update(framed_len(header.len()));
    h.update(&header);
    h.update(data);
    file_details::hex(&h.finalize())
}

/// Appends the raw deflate stream of `data` to `out`.
fn deflate(c: &mut libdeflater::Compressor, data: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
    let start = out.len();
    out.resize(start + c.deflate_compress_bound(data.len()), 0);
    let n = c
        .deflate_compress(data, &mut out[start..])
        .map_err(|e| anyhow!("deflate: {e:?}"))?;
    out.truncate(start + n);
    Ok(())
}

/// Reads a regular file for [`ArchiveWriter::write`].
pub fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn repo(dir: &Path) -> ostree::Repo {
        let repo = ostree::Repo::new_for_path(dir);
        repo.create(ostree::RepoMode::Archive, gio::Cancellable::NONE)
            .unwrap();
        repo
    }

    fn ostree_checksum(obj: &Object) -> String {
        let info = gio::FileInfo::new();
        info.set_attribute_uint32("unix::uid", obj.uid);
        info.set_attribute_uint32("unix::gid", obj.gid);
        info.set_attribute_uint32("unix::mode", obj.mode);
        let input = gio::MemoryInputStream::from_bytes(&glib::Bytes::from(obj.data));
        match obj.symlink {
            Some(t) => {
                info.set_file_type(gio::FileType::SymbolicLink);
                info.set_symlink_target(t);
            }
            None => {
                info.set_file_type(gio::FileType::Regular);
                info.set_size(obj.data.len() as i64);
            }
        }
        ostree::checksum_file_from_input(
            &info,
            Some(&xattrs_variant(obj.xattrs)),
            obj.symlink
                .is_none()
                .then_some(input.upcast_ref::<gio::InputStream>()),
            ostree::ObjectType::File,
            gio::Cancellable::NONE,
        )
        .unwrap()
        .to_hex()
    }

    #[test]
    fn checksums_match_libostree() {
        let caps = vec![(b"security.capability\0".to_vec(), vec![1, 0, 0, 2, 4])];
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for obj in [
            Object {
                uid: 0,
                gid: 0,
                mode: 0o100644,
                symlink: None,
                xattrs: &[],
                data: b"",
            },
            Object {
                uid: 0,
                gid: 0,
                mode: 0o100755,
                symlink: None,
                xattrs: &[],
                data: &data,
            },
            Object {
                uid: 42,
                gid: 7,
                mode: 0o104750,
                symlink: None,
                xattrs: &caps,
                data: b"x\n",
            },
            Object {
                uid: 0,
                gid: 0,
                mode: 0o120777,
                symlink: Some("../lib/x.so.1"),
                xattrs: &[],
                data: b"",
            },
        ] {
            assert_eq!(ArchiveWriter::checksum(&obj), ostree_checksum(&obj));
        }
    }

    #[test]
    fn written_objects_read_back_through_libostree() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let w = ArchiveWriter::for_repo(&repo).expect("archive repo");
        let mut c = w.compressor();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 13) as u8).collect();
        let caps = vec![(b"security.capability\0".to_vec(), vec![9, 9])];
        let file = Object {
            uid: 0,
            gid: 0,
            mode: 0o100755,
            symlink: None,
            xattrs: &caps,
            data: &data,
        };
        let link = Object {
            uid: 0,
            gid: 0,
            mode: 0o120777,
            symlink: Some("target"),
            xattrs: &[],
            data: b"",
        };
        for obj in [&file, &link] {
            let w1 = w.write(obj, &mut c, |_| Ok(false)).unwrap();
            assert!(w1.new);
            let (stream, info, xattrs) = repo
                .load_file(&w1.checksum, gio::Cancellable::NONE)
                .unwrap();
            assert_eq!(info.attribute_uint32("unix::mode"), obj.mode);
            assert_eq!(xattrs, xattrs_variant(obj.xattrs));
            if let Some(t) = obj.symlink {
                assert_eq!(info.symlink_target().unwrap().to_str().unwrap(), t);
            } else {
                let mut back = Vec::new();
                stream.unwrap().into_read().read_to_end(&mut back).unwrap();
                assert_eq!(back, data);
            }
            // Present now: nothing is written twice.
            let w2 = w.write(obj, &mut c, |_| Ok(true)).unwrap();
            assert!(!w2.new);
            assert_eq!(w2.checksum, w1.checksum);
        }
        // Compressed, and no temporary file left in tmp/.
        let sum = ArchiveWriter::checksum(&file);
        let size = fs::metadata(dir.path().join(format!(
            "objects/{}/{}.filez",
            &sum[..2],
            &sum[2..]
        )))
        .unwrap()
        .len();
        assert!(size < 10_000, "{size} bytes");
        assert!(fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .filter_map(Result::ok)
            .all(|e| !e
                .file_name()
                .to_string_lossy()
                .starts_with(".rpm-compose-obj")));
    }
}
