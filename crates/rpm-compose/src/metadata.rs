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

/// `2023-11-14T22:13:20Z` for seconds since the epoch (UTC).
pub fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }
}
