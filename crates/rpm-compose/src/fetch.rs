//! Fetching repository files over file://, http:// and https://, with
//! bounded sizes, checksums verified while streaming, and atomic writes.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use sha2::Digest;

/// An expected digest: algorithm name as rpm-md spells it, and hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// `sha256`, `sha512`, `sha1`, `sha224` or `sha384`.
    pub kind: String,
    /// Lower-case hex.
    pub hex: String,
}

/// The one HTTP client of a compose (connections are reused).
pub struct Fetcher {
    agent: ureq::Agent,
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Fetcher {
    /// A client with a connect timeout of 10 s and a read timeout of 60 s.
    pub fn new() -> Fetcher {
        Fetcher {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout_read(Duration::from_secs(60))
                .redirects(5)
                .build(),
        }
    }

    fn open(&self, url: &str) -> anyhow::Result<Box<dyn Read + Send>> {
        if let Some(path) = url.strip_prefix("file://") {
            let f = File::open(path).with_context(|| format!("cannot open {url}"))?;
            Ok(Box::new(f))
        } else if url.starts_with("http://") || url.starts_with("https://") {
            match self.agent.get(url).call() {
                Ok(resp) => Ok(resp.into_reader()),
                Err(ureq::Error::Status(code, _)) => bail!("{url}: HTTP {code}"),
                Err(e) => Err(anyhow!("{url}: {e}")),
            }
        } else {
            bail!("{url}: unsupported URL scheme")
        }
    }

    /// Reads a whole (small) file, at most `max` bytes.
    pub fn get_bytes(&self, url: &str, max: u64) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        let n = self.open(url)?.take(max + 1).read_to_end(&mut out)?;
        if n as u64 > max {
            bail!("{url}: larger than {max} bytes");
        }
        Ok(out)
    }

    /// Downloads `url` to `dest` through a temporary file beside it,
    /// refusing more than `max` bytes and any digest other than `expect`.
    /// Nothing is left at `dest` on failure.
    pub fn fetch_to(
        &self,
        url: &str,
        dest: &Path,
        expect: &Expected,
        max: u64,
    ) -> anyhow::Result<u64> {
        let dir = dest.parent().expect("destination has a directory");
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempfile_in(dir)?;
        let mut hasher = Hasher::new(&expect.kind)?;
        let mut reader = self.open(url)?.take(max + 1);
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {url}")),
            };
            total += n as u64;
            if total > max {
                bail!("{url}: larger than {max} bytes");
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])?;
        }
        let got = hasher.hex();
        if got != expect.hex {
            bail!(
                "{url}: {} checksum is {got}, the repository metadata says {}",
                expect.kind,
                expect.hex
            );
        }
        tmp.as_file().sync_all()?;
        tmp.persist(dest).map_err(|e| e.error)?;
        Ok(total)
    }
}

/// True when the file at `path` has the expected digest.
pub fn file_matches(path: &Path, expect: &Expected) -> anyhow::Result<bool> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let mut hasher = Hasher::new(&expect.kind)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(hasher.hex() == expect.hex)
}

enum Hasher {
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(kind: &str) -> anyhow::Result<Hasher> {
        Ok(match kind {
            "sha" | "sha1" => Hasher::Sha1(Default::default()),
            "sha224" => Hasher::Sha224(Default::default()),
            "sha256" => Hasher::Sha256(Default::default()),
            "sha384" => Hasher::Sha384(Default::default()),
            "sha512" => Hasher::Sha512(Default::default()),
            other => bail!("unsupported checksum type `{other}`"),
        })
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn hex(self) -> String {
        match self {
            Hasher::Sha1(h) => file_details::hex(&h.finalize()),
            Hasher::Sha224(h) => file_details::hex(&h.finalize()),
            Hasher::Sha256(h) => file_details::hex(&h.finalize()),
            Hasher::Sha384(h) => file_details::hex(&h.finalize()),
            Hasher::Sha512(h) => file_details::hex(&h.finalize()),
        }
    }
}

/// Checks that `href` (from untrusted metadata) is a plain relative path
/// that stays under its base.
pub fn safe_href(href: &str) -> anyhow::Result<&str> {
    if href.is_empty()
        || href.starts_with('/')
        || href.contains("://")
        || href.contains('\0')
        || href.contains('\\')
        || href
            .split('/')
            .any(|c| c == ".." || c == "." || c.is_empty())
    {
        bail!("unsafe location `{href}` in repository metadata");
    }
    Ok(href)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_from_metadata_stay_inside() {
        assert!(safe_href("Packages/a/app-1.rpm").is_ok());
        for bad in [
            "../x.rpm",
            "/etc/passwd",
            "a//b",
            "http://evil/x",
            "a/./b",
            "",
        ] {
            assert!(safe_href(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fetch_verifies_and_leaves_nothing_on_mismatch() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::write(&src, b"abc").unwrap();
        let url = format!("file://{}", src.display());
        let good = Expected {
            kind: "sha256".into(),
            hex: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
        };
        let f = Fetcher::new();
        let dest = d.path().join("out/dest");
        assert_eq!(f.fetch_to(&url, &dest, &good, 10).unwrap(), 3);
        assert!(file_matches(&dest, &good).unwrap());
        let bad = Expected {
            kind: "sha256".into(),
            hex: "00".repeat(32),
        };
        let dest2 = d.path().join("out/dest2");
        let e = f.fetch_to(&url, &dest2, &bad, 10).unwrap_err();
        assert!(format!("{e}").contains("checksum"), "{e}");
        assert!(!dest2.exists());
        assert!(f.fetch_to(&url, &dest2, &good, 2).is_err(), "size bound");
        let left: Vec<_> = std::fs::read_dir(d.path().join("out")).unwrap().collect();
        assert_eq!(left.len(), 1, "only the good download remains");
    }
}
