//! Reading a written summary file back: what clients will actually get.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, Context};
use file_details::FileDetails;
use releng_manifest::SummaryRef;

/// GVariant type of an ostree summary: refs, then summary metadata.
const SUMMARY_TYPE: &str = "(a(s(taya{sv}))a{sv})";

/// Summary metadata keys whose `t` values ostree stores big-endian.
const BIG_ENDIAN_KEYS: &[&str] = &["ostree.summary.last-modified", "ostree.summary.expires"];

/// What a summary file says, and its digests.
#[derive(Debug, Clone)]
pub struct SummaryFile {
    /// Size, mtime and digests of exactly the bytes parsed.
    pub file: FileDetails,
    /// `ostree.summary.last-modified`, when present.
    pub last_modified: Option<u64>,
    /// The refs, in file order (ostree sorts them by name).
    pub refs: Vec<SummaryRef>,
    /// Every summary-level metadata key, its value as GVariant text.
    pub metadata: BTreeMap<String, String>,
}

/// Reads and parses the summary at `path`. The digests and the parsed
/// content come from one read, so they describe the same bytes even if the
/// file is replaced meanwhile.
pub fn read_summary(path: &Path) -> anyhow::Result<SummaryFile> {
    let mut file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let meta = file.metadata()?;
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut data)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let details = FileDetails::from_bytes(&data, file_details::mtime_secs(&meta)?);
    parse(&data, details).with_context(|| format!("{}: not a valid ostree summary", path.display()))
}

fn parse(data: &[u8], file: FileDetails) -> anyhow::Result<SummaryFile> {
    let ty = glib::VariantTy::new(SUMMARY_TYPE).expect("valid type string");
    let bytes = glib::Bytes::from(data);
    let summary = glib::Variant::from_bytes_with_type(&bytes, ty);
    // Untrusted bytes may be in non-normal form; GVariant then serves
    // defaults rather than reading out of bounds, and this check catches it.
    if !summary.is_normal_form() {
        return Err(anyhow!("not in GVariant normal form"));
    }
    let refs_v = summary.child_value(0);
    let mut refs = Vec::with_capacity(refs_v.n_children());
    for entry in refs_v.iter() {
        let name = entry.child_value(0).str().unwrap_or_default().to_string();
        let info = entry.child_value(1);
        let csum = info.child_value(1);
        let commit = file_details::hex(csum.fixed_array::<u8>().unwrap_or_default());
        if commit.len() != 64 {
            return Err(anyhow!("ref {name}: checksum is not 32 bytes"));
        }
        let meta = glib::VariantDict::new(Some(&info.child_value(2)));
        let timestamp = meta
            .lookup::<u64>("ostree.commit.timestamp")
            .ok()
            .flatten()
            .map(u64::from_be)
            .unwrap_or(0);
        let version = meta
            .lookup::<String>("ostree.commit.version")
            .ok()
            .flatten();
        refs.push(SummaryRef {
            name,
            commit,
            timestamp,
            version,
        });
    }
    let meta_v = summary.child_value(1);
    let mut metadata = BTreeMap::new();
    let mut last_modified = None;
    for entry in meta_v.iter() {
        let key = entry.child_value(0).str().unwrap_or_default().to_string();
        let value = entry
            .child_value(1)
            .as_variant()
            .expect("a{sv} holds variants");
        // ostree stores these timestamps big-endian; show the real value.
        let text = match value
            .get::<u64>()
            .filter(|_| BIG_ENDIAN_KEYS.contains(&key.as_str()))
        {
            Some(raw) => {
                let secs = u64::from_be(raw);
                if key == "ostree.summary.last-modified" {
                    last_modified = Some(secs);
                }
                format!("uint64 {secs}")
            }
            None => value.print(true).to_string(),
        };
        metadata.insert(key, text);
    }
    Ok(SummaryFile {
        file,
        last_modified,
        refs,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused() {
        let d = file_details::FileDetails::from_bytes(b"junk", 0);
        assert!(parse(b"\x01\x02junk that is not a summary", d).is_err());
    }
}
