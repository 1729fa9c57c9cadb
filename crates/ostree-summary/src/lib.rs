//! Reading ostree summary files without libostree.
//!
//! A summary is the GVariant `(a(s(taya{sv}))a{sv})`: the refs, each with
//! the size, checksum and a little metadata of its commit, then the
//! repository-wide metadata. This crate reads it in one pass over borrowed
//! bytes, checking every offset, so it serves both the tool that has just
//! written a summary (tens of thousands of refs, read back in milliseconds)
//! and the crawler that fetched one from a mirror it does not trust.

mod gvariant;

use gvariant::{tuple, vardict, variable_array, Member};

/// Why a summary could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not a well-formed summary; the text says where.
    #[error("malformed summary: {0}")]
    Malformed(&'static str),
}

/// Metadata keys whose `t` values ostree stores big-endian.
pub const BIG_ENDIAN_KEYS: &[&str] = &[
    "ostree.summary.last-modified",
    "ostree.summary.expires",
    "ostree.commit.timestamp",
];

/// One ref of the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    /// Ref name.
    pub name: String,
    /// Commit checksum, lower-case hex.
    pub commit: String,
    /// Size of the commit object in bytes.
    pub commit_size: u64,
    /// `ostree.commit.timestamp`, seconds since the epoch.
    pub timestamp: Option<u64>,
    /// `ostree.commit.version`.
    pub version: Option<String>,
}

/// One repository-wide metadata entry, undecoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata<'a> {
    /// Key, e.g. `ostree.summary.mode`.
    pub key: &'a str,
    /// GVariant type string of the value, e.g. `s`.
    pub type_string: &'a str,
    /// Serialized value.
    pub data: &'a [u8],
}

impl Metadata<'_> {
    /// The value as a string, when its type is `s`.
    pub fn as_str(&self) -> Option<&str> {
        (self.type_string == "s")
            .then(|| gvariant::string(self.data).ok())
            .flatten()
    }

    /// The value as a `t`, decoded big-endian for the keys ostree stores
    /// that way ([`BIG_ENDIAN_KEYS`]) and little-endian otherwise.
    pub fn as_u64(&self) -> Option<u64> {
        if self.type_string != "t" {
            return None;
        }
        let raw: [u8; 8] = self.data.try_into().ok()?;
        Some(if BIG_ENDIAN_KEYS.contains(&self.key) {
            u64::from_be_bytes(raw)
        } else {
            u64::from_le_bytes(raw)
        })
    }

    /// The value as a `b`.
    pub fn as_bool(&self) -> Option<bool> {
        match (self.type_string, self.data) {
            ("b", [0]) => Some(false),
            ("b", [1]) => Some(true),
            _ => None,
        }
    }
}

/// A parsed summary, borrowing the file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<'a> {
    /// Refs in file order (ostree writes them sorted by name).
    pub refs: Vec<Ref>,
    /// Repository-wide metadata in file order.
    pub metadata: Vec<Metadata<'a>>,
}

impl<'a> Summary<'a> {
    /// Parses a summary file's bytes.
    pub fn parse(data: &'a [u8]) -> Result<Summary<'a>, Error> {
        let top = tuple(data, &[Member::Variable(8), Member::Variable(8)])?;
        let entries = variable_array(top[0], 8)?;
        let mut refs = Vec::with_capacity(entries.len());
        for entry in entries {
            refs.push(parse_ref(entry)?);
        }
        let metadata = vardict(top[1])?;
        Ok(Summary { refs, metadata })
    }

    /// The metadata entry `key`.
    pub fn metadata(&self, key: &str) -> Option<&Metadata<'a>> {
        self.metadata.iter().find(|m| m.key == key)
    }

    /// `ostree.summary.last-modified`, seconds since the epoch.
    pub fn last_modified(&self) -> Option<u64> {
        self.metadata("ostree.summary.last-modified")?.as_u64()
    }

    /// The refs as the manifest records them (a missing timestamp is 0).
    pub fn manifest_refs(&self) -> Vec<releng_manifest::SummaryRef> {
        self.refs
            .iter()
            .map(|r| releng_manifest::SummaryRef {
                name: r.name.clone(),
                commit: r.commit.clone(),
                timestamp: r.timestamp.unwrap_or(0),
                version: r.version.clone(),
            })
            .collect()
    }
}

/// `(s(taya{sv}))`: name, then (commit size, checksum, commit metadata).
fn parse_ref(entry: &[u8]) -> Result<Ref, Error> {
    let parts = tuple(entry, &[Member::Variable(1), Member::Variable(8)])?;
    let name = gvariant::string(parts[0])?.to_string();
    let info = tuple(
        parts[1],
        &[
            Member::Fixed(8, 8),
            Member::Variable(1),
            Member::Variable(8),
        ],
    )?;
    let commit_size = u64::from_le_bytes(info[0].try_into().expect("fixed 8 bytes"));
    if info[1].len() != 32 {
        return Err(Error::Malformed("ref checksum is not 32 bytes"));
    }
    let commit = hex(info[1]);
    let mut timestamp = None;
    let mut version = None;
    for m in vardict(info[2])? {
        match m.key {
            "ostree.commit.timestamp" => timestamp = m.as_u64(),
            "ostree.commit.version" => version = m.as_str().map(str::to_string),
            _ => {}
        }
    }
    Ok(Ref {
        name,
        commit,
        commit_size,
        timestamp,
        version,
    })
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_summaries() {
        assert!(Summary::parse(b"").is_err());
        // Two empty arrays and the one framing offset between them.
        let s = Summary::parse(b"\x00").unwrap();
        assert!(s.refs.is_empty() && s.metadata.is_empty());
    }

    #[test]
    fn truncations_of_a_real_layout_never_panic() {
        // Every prefix of a small valid-looking blob must parse or fail
        // cleanly; the fuzz-like loop guards the bounds checks.
        let blob: Vec<u8> = (0u8..=255).cycle().take(700).collect();
        for n in 0..blob.len() {
            let _ = Summary::parse(&blob[..n]);
        }
    }
}
