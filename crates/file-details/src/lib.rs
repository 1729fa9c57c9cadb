//! The details a mirror network needs to vouch for one file: its size, its
//! modification time and its md5, sha1, sha256 and sha512 digests.
//!
//! Metalinks carry all four digests (ostree checks sha512 when present, dnf
//! takes the strongest), so every tool that describes a published file
//! computes them the same way, here, in one read of the file. Large files
//! (disk images) are hashed on two threads so both cores stay busy.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::UNIX_EPOCH;

use md5::Md5;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// Files at most this large are hashed on the calling thread; spawning
/// workers costs more than it saves below it.
const INLINE_LIMIT: u64 = 4 << 20;
const CHUNK: usize = 1 << 20;

/// Size, mtime and digests of one file, as written into the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileDetails {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// Lower-case hex MD5.
    pub md5: String,
    /// Lower-case hex SHA-1.
    pub sha1: String,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Lower-case hex SHA-512.
    pub sha512: String,
}

/// The four digests of a byte stream, in lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub sha512: String,
}

impl FileDetails {
    /// Reads `path` once and returns its details.
    ///
    /// Size and mtime come from the open file descriptor, so a file replaced
    /// by rename while we read it is still described consistently.
    pub fn of_path(path: &Path) -> io::Result<FileDetails> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let mtime = mtime_secs(&meta)?;
        let digests = if meta.len() <= INLINE_LIMIT {
            digest_inline(file)?
        } else {
            digest_parallel(file)?
        };
        Ok(FileDetails {
            size: meta.len(),
            mtime,
            md5: digests.md5,
            sha1: digests.sha1,
            sha256: digests.sha256,
            sha512: digests.sha512,
        })
    }
}

impl FileDetails {
    /// Details of a file already read into memory, with the mtime its
    /// descriptor reported: describes exactly the bytes the caller parsed.
    pub fn from_bytes(data: &[u8], mtime: i64) -> FileDetails {
        let d = if data.len() as u64 > PARALLEL_BYTES {
            digest_bytes_parallel(data)
        } else {
            digest_bytes(data)
        };
        FileDetails {
            size: data.len() as u64,
            mtime,
            md5: d.md5,
            sha1: d.sha1,
            sha256: d.sha256,
            sha512: d.sha512,
        }
    }
}

/// Seconds since the epoch of `meta`'s mtime (negative before 1970).
pub fn mtime_secs(meta: &std::fs::Metadata) -> io::Result<i64> {
    Ok(match meta.modified()?.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    })
}

/// Digests of an in-memory buffer.
pub fn digest_bytes(data: &[u8]) -> Digests {
    Digests {
        md5: hex(&Md5::digest(data)),
        sha1: hex(&Sha1::digest(data)),
        sha256: hex(&Sha256::digest(data)),
        sha512: hex(&Sha512::digest(data)),
    }
}

/// Lower-case hex SHA-256 of an in-memory buffer, when only that one is
/// wanted (a manifest entry for a file the tool wrote itself).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// In-memory buffers larger than this are hashed on two threads.
const PARALLEL_BYTES: u64 = 256 << 10;

/// Digests of an in-memory buffer, sha256+md5 on one thread and
/// sha512+sha1 on another (about equal cost).
fn digest_bytes_parallel(data: &[u8]) -> Digests {
    std::thread::scope(|s| {
        let other = s.spawn(|| (hex(&Sha512::digest(data)), hex(&Sha1::digest(data))));
        let (sha256, md5) = (hex(&Sha256::digest(data)), hex(&Md5::digest(data)));
        let (sha512, sha1) = other.join().expect("sha512 worker panicked");
        Digests {
            md5,
            sha1,
            sha256,
            sha512,
        }
    })
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

fn digest_inline(mut file: File) -> io::Result<Digests> {
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok(digest_bytes(&data))
}

/// Two workers, each owning a pair of hashers with about equal cost
/// (sha512+sha1 against sha256+md5), fed the same chunks by the reader.
fn digest_parallel(mut file: File) -> io::Result<Digests> {
    let (tx_a, rx_a) = mpsc::sync_channel::<Arc<Vec<u8>>>(4);
    let (tx_b, rx_b) = mpsc::sync_channel::<Arc<Vec<u8>>>(4);
    let worker_a = thread::spawn(move || {
        let (mut s256, mut md5) = (Sha256::new(), Md5::new());
        for chunk in rx_a {
            s256.update(&chunk[..]);
            md5.update(&chunk[..]);
        }
        (hex(&s256.finalize()), hex(&md5.finalize()))
    });
    let worker_b = thread::spawn(move || {
        let (mut s512, mut sha1) = (Sha512::new(), Sha1::new());
        for chunk in rx_b {
            s512.update(&chunk[..]);
            sha1.update(&chunk[..]);
        }
        (hex(&s512.finalize()), hex(&sha1.finalize()))
    });
    let read_result = (|| -> io::Result<()> {
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = read_full(&mut file, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            let chunk = Arc::new(buf);
            // A send fails only if a worker died, which join reports below.
            if tx_a.send(chunk.clone()).is_err() || tx_b.send(chunk).is_err() {
                return Ok(());
            }
        }
    })();
    drop(tx_a);
    drop(tx_b);
    let (sha256, md5) = worker_a.join().expect("sha256 worker panicked");
    let (sha512, sha1) = worker_b.join().expect("sha512 worker panicked");
    read_result?;
    Ok(Digests {
        md5,
        sha1,
        sha256,
        sha512,
    })
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn known_vectors_for_abc() {
        let d = digest_bytes(b"abc");
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(d.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(d.sha512.starts_with("ddaf35a193617aba"));
        assert_eq!(d.sha512.len(), 128);
    }

    #[test]
    fn parallel_path_agrees_with_inline_path() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        // Not a multiple of the chunk size, so the last short chunk counts.
        let data: Vec<u8> = (0..(INLINE_LIMIT as usize + 3 * CHUNK + 17))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        f.write_all(&data).unwrap();
        f.flush().unwrap();
        let details = FileDetails::of_path(f.path()).unwrap();
        let expect = digest_bytes(&data);
        assert_eq!(FileDetails::from_bytes(&data, details.mtime), details);
        assert_eq!(details.size, data.len() as u64);
        assert_eq!(details.md5, expect.md5);
        assert_eq!(details.sha1, expect.sha1);
        assert_eq!(details.sha256, expect.sha256);
        assert_eq!(details.sha512, expect.sha512);
    }

    #[test]
    fn directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = FileDetails::of_path(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
