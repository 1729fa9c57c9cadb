//! The commit's metadata, version and time.

use glib::prelude::*;
use releng_manifest::{BadInput, ComposeEntry};

use crate::changes;
use crate::treefile::Treefile;

/// rpm-ostree's automatic versions: the prefix alone first, then
/// `prefix.1`, `prefix.2`… while the previous version shares the prefix.
pub fn next_version(prefix: &str, previous: Option<&str>) -> String {
    match previous {
        Some(prev) if prev == prefix => format!("{prefix}.1"),
        Some(prev) => match prev
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) => format!("{prefix}.{}", n + 1),
            None => prefix.to_string(),
        },
        None => prefix.to_string(),
    }
}

/// The commit time: `SOURCE_DATE_EPOCH` when set (reproducible builds),
/// else now.
pub fn timestamp() -> anyhow::Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.trim().parse().map_err(|_| {
            BadInput::err(format!(
                "SOURCE_DATE_EPOCH=`{v}` is not a number of seconds"
            ))
        }),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)),
    }
}

/// `a{sv}` commit metadata: `add-commit-metadata`, `version`, the input
/// hash and fingerprint, the package list and the repositories read.
pub fn commit_metadata(
    tf: &Treefile,
    entry: &ComposeEntry,
    version: Option<&str>,
    inputs: &str,
) -> anyhow::Result<glib::Variant> {
    let dict = glib::VariantDict::new(None);
    for (k, v) in &tf.add_commit_metadata {
        dict.insert_value(
            k,
            &json_to_variant(v)
                .map_err(|e| BadInput::err(format!("add-commit-metadata `{k}`: {e}")))?,
        );
    }
    if let Some(v) = version {
        dict.insert("version", v);
    }
    if let Some(h) = &entry.inputhash {
        dict.insert(changes::INPUTHASH_KEY, h.as_str());
    }
    dict.insert(changes::INPUTS_KEY, inputs);
    let pkgs: Vec<changes::PkgTuple> = entry.packages.iter().map(changes::tuple).collect();
    dict.insert_value(changes::PKGLIST_KEY, &changes::pkglist_variant(&pkgs));
    let repos: Vec<glib::Variant> = entry
        .repos
        .iter()
        .map(|r| {
            let d = glib::VariantDict::new(None);
            d.insert("id", r.id.as_str());
            d.insert("revision", r.revision.clone().unwrap_or_default());
            d.insert("repomd-sha256", r.repomd_sha256.as_str());
            d.end()
        })
        .collect();
    dict.insert_value(
        "rpmostree.rpmmd-repos",
        &glib::Variant::array_from_iter_with_type(glib::VariantTy::VARDICT, repos),
    );
    Ok(dict.end())
}

fn json_to_variant(v: &serde_json::Value) -> Result<glib::Variant, String> {
    use serde_json::Value;
    Ok(match v {
        Value::String(s) => s.to_variant(),
        Value::Bool(b) => b.to_variant(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_variant(),
            (None, Some(u), _) => u.to_variant(),
            (_, _, Some(f)) => f.to_variant(),
            _ => return Err("unrepresentable number".into()),
        },
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .to_variant(),
        Value::Array(items) => {
            let vs: Vec<glib::Variant> = items
                .iter()
                .map(json_to_variant)
                .collect::<Result<_, _>>()?;
            glib::Variant::array_from_iter_with_type(
                glib::VariantTy::VARIANT,
                vs.iter().map(glib::Variant::from_variant),
            )
        }
        Value::Object(m) => {
            let d = glib::VariantDict::new(None);
            for (k, v) in m {
                d.insert_value(k, &json_to_variant(v)?);
            }
            d.end()
        }
        Value::Null => return Err("null has no GVariant form".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_versions() {
        assert_eq!(next_version("22", None), "22");
        assert_eq!(next_version("22", Some("22")), "22.1");
        assert_eq!(next_version("22", Some("22.1")), "22.2");
        assert_eq!(next_version("23", Some("22.7")), "23");
    }
}
