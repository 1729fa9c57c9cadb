//! The side files pungi-style wrappers read: the commit id, the changed
//! stamp and rpm-ostree's compose JSON.

use std::fs::OpenOptions;

use anyhow::Context;
use releng_manifest::{write_atomic, ComposeEntry};
use serde_json::json;

use crate::Args;

/// Writes whatever of `--write-commitid-to`, `--touch-if-changed` and
/// `--write-composejson-to` was asked for; each file atomically.
pub fn write(entry: &ComposeEntry, args: &Args) -> anyhow::Result<()> {
    let commit = entry.commit.as_deref();
    if let (Some(path), Some(c), true) = (&args.write_commitid_to, commit, entry.changed) {
        write_atomic(path, |f| std::io::Write::write_all(f, c.as_bytes()))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let (Some(path), true) = (&args.touch_if_changed, entry.changed) {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("touching {}", path.display()))?;
        f.set_modified(std::time::SystemTime::now())?;
    }
    if let Some(path) = &args.write_composejson_to {
        let s = &entry.stats;
        let doc = json!({
            "ref": entry.ref_,
            "ostree-commit": commit,
            "ostree-content-checksum": entry.content_checksum,
            "ostree-version": entry.version,
            "ostree-timestamp": entry.timestamp.map(|t| releng_manifest::iso8601(t as i64)),
            "rpm-ostree-inputhash": entry.inputhash,
            "ostree-n-metadata-total": s.metadata_objects_total,
            "ostree-n-metadata-written": s.metadata_objects_written,
            "ostree-n-content-total": s.content_objects_total,
            "ostree-n-content-written": s.content_objects_written,
            "ostree-n-cache-hits": s.packages_cached,
            "ostree-content-bytes-written": s.content_bytes_written,
            "pkgdiff": entry.pkgdiff,
        });
        let mut text = serde_json::to_vec_pretty(&doc)?;
        text.push(b'\n');
        write_atomic(path, |f| std::io::Write::write_all(f, &text))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
