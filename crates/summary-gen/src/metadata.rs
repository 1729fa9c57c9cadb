//! `--add-metadata KEY=VALUE`, with VALUE in GVariant text format exactly as
//! `ostree summary -m` takes it.

use glib::prelude::*;
use glib::variant::DictEntry;

/// One parsed `--add-metadata` argument.
#[derive(Debug, Clone)]
pub struct MetadataArg {
    /// Metadata key.
    pub key: String,
    /// Parsed value.
    pub value: glib::Variant,
}

impl MetadataArg {
    /// Parses `KEY=VALUE`, VALUE as GVariant text (`'a string'`, `uint32 7`,
    /// `true`, `['a', 'b']`).
    pub fn parse(arg: &str) -> Result<MetadataArg, String> {
        let (key, text) = arg
            .split_once('=')
            .ok_or_else(|| format!("`{arg}` is not KEY=VALUE (no `=`)"))?;
        if key.is_empty() {
            return Err(format!("`{arg}` has an empty key"));
        }
        let value = glib::Variant::parse(None, text).map_err(|e| {
            format!(
                "the value of `{key}` is not GVariant text ({}); quote strings, \
                 e.g. {key}=\"'{text}'\"",
                e.message()
            )
        })?;
        Ok(MetadataArg {
            key: key.to_string(),
            value,
        })
    }
}

/// The `a{sv}` that libostree merges into the summary's metadata, built in
/// argument order as the ostree CLI builds it, so that both produce the
/// same summary for the same arguments.
pub fn to_variant(args: &[MetadataArg]) -> Option<glib::Variant> {
    if args.is_empty() {
        return None;
    }
    let entries = args
        .iter()
        .map(|a| DictEntry::new(a.key.as_str(), a.value.clone()).to_variant());
    let ty = glib::VariantTy::new("{sv}").expect("valid type string");
    Some(glib::Variant::array_from_iter_with_type(ty, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_gvariant_text() {
        let a = MetadataArg::parse("xa.title='Fedora Atomic'").unwrap();
        assert_eq!(a.value.str(), Some("Fedora Atomic"));
        let b = MetadataArg::parse("n=uint32 7").unwrap();
        assert_eq!(b.value.get::<u32>(), Some(7));
        let v = to_variant(&[a, b]).unwrap();
        assert_eq!(v.type_().as_str(), "a{sv}");
        assert_eq!(v.n_children(), 2);
    }

    #[test]
    fn bare_words_and_missing_equals_are_refused() {
        let e = MetadataArg::parse("title=Fedora Atomic").unwrap_err();
        assert!(e.contains("quote strings"), "{e}");
        assert!(MetadataArg::parse("novalue").is_err());
        assert!(MetadataArg::parse("='x'").is_err());
    }
}
