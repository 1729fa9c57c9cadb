//! Reading a written summary file back: what clients will actually get.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use file_details::FileDetails;
use ostree_summary::Summary;
use releng_manifest::SummaryRef;

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
/// file is replaced meanwhile; hashing runs beside the parse.
pub fn read_summary(path: &Path) -> anyhow::Result<SummaryFile> {
    let mut file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let meta = file.metadata()?;
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut data)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let mtime = file_details::mtime_secs(&meta)?;
    let (details, parsed) = std::thread::scope(|s| {
        let hashing = s.spawn(|| FileDetails::from_bytes(&data, mtime));
        let parsed = parse(&data);
        (hashing.join().expect("hashing thread panicked"), parsed)
    });
    let (last_modified, refs, metadata) =
        parsed.with_context(|| format!("{}: not a valid ostree summary", path.display()))?;
    Ok(SummaryFile {
        file: details,
        last_modified,
        refs,
        metadata,
    })
}

type Parsed = (Option<u64>, Vec<SummaryRef>, BTreeMap<String, String>);

fn parse(data: &[u8]) -> anyhow::Result<Parsed> {
    let summary = Summary::parse(data)?;
    let refs = summary.manifest_refs();
    let mut metadata = BTreeMap::new();
    for m in &summary.metadata {
        // Timestamps ostree stores big-endian are shown as their value;
        // everything else as GLib prints it, so it can be fed back to -m.
        let text = match m
            .as_u64()
            .filter(|_| ostree_summary::BIG_ENDIAN_KEYS.contains(&m.key))
        {
            Some(secs) => format!("uint64 {secs}"),
            None => {
                let ty = glib::VariantTy::new(m.type_string).map_err(|_| {
                    anyhow::anyhow!("metadata {}: bad type `{}`", m.key, m.type_string)
                })?;
                glib::Variant::from_data_with_type(m.data, ty)
                    .print(true)
                    .to_string()
            }
        };
        metadata.insert(m.key.to_string(), text);
    }
    Ok((summary.last_modified(), refs, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused() {
        assert!(parse(b"\x01\x02junk that is not a summary").is_err());
    }

    #[test]
    fn agrees_with_glib_on_a_summary_glib_built() {
        use glib::prelude::*;
        use glib::variant::DictEntry;
        let sv = |k: &str, v: glib::Variant| DictEntry::new(k, v).to_variant();
        let vardict = |entries: Vec<glib::Variant>| {
            glib::Variant::array_from_iter_with_type(glib::VariantTy::new("{sv}").unwrap(), entries)
        };
        let commit_meta = vardict(vec![
            sv(
                "ostree.commit.timestamp",
                1_700_000_000u64.to_be().to_variant(),
            ),
            sv("ostree.commit.version", "39.20231101".to_variant()),
        ]);
        let csum: Vec<u8> = (0..32).collect();
        let info = glib::Variant::tuple_from_iter([
            1234u64.to_variant(),
            glib::Variant::array_from_fixed_array(&csum),
            commit_meta,
        ]);
        let entry = glib::Variant::tuple_from_iter(["fedora/x86_64/coreos".to_variant(), info]);
        let ty = entry.type_().to_owned();
        let refs = glib::Variant::array_from_iter_with_type(&ty, [entry.clone(), entry]);
        let meta = vardict(vec![
            sv(
                "ostree.summary.last-modified",
                1_700_000_100u64.to_be().to_variant(),
            ),
            sv("ostree.summary.mode", "archive-z2".to_variant()),
            sv("xa.list", vec!["a", "b"].to_variant()),
        ]);
        let summary = glib::Variant::tuple_from_iter([refs, meta]);
        assert_eq!(summary.type_().as_str(), "(a(s(taya{sv}))a{sv})");
        let bytes = summary.data().to_vec();
        let (lm, refs, meta) = parse(&bytes).unwrap();
        assert_eq!(lm, Some(1_700_000_100));
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].name, "fedora/x86_64/coreos");
        assert_eq!(refs[0].commit, file_details::hex(&csum));
        assert_eq!(refs[0].timestamp, 1_700_000_000);
        assert_eq!(refs[0].version.as_deref(), Some("39.20231101"));
        assert_eq!(meta["ostree.summary.mode"], "'archive-z2'");
        assert_eq!(meta["xa.list"], "['a', 'b']");
        assert_eq!(meta["ostree.summary.last-modified"], "uint64 1700000100");
    }
}
