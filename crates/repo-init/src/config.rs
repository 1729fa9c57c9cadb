//! `--set SECTION.KEY=VALUE` settings for the repository's `config` file.

use releng_manifest::BadInput;

/// Keys that other options own: setting them by hand would contradict
/// `--mode` or `--collection-id`, or break the repository.
const RESERVED: &[(&str, &str)] = &[
    ("core", "mode"),
    ("core", "repo_version"),
    ("core", "collection-id"),
];

/// One `--set` argument, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSetting {
    /// Keyfile group, e.g. `core` or `remote "origin"`.
    pub section: String,
    /// Key within the group.
    pub key: String,
    /// Value, stored as given.
    pub value: String,
}

impl ConfigSetting {
    /// Parses `SECTION.KEY=VALUE`. The section is everything before the
    /// last dot, so `remote "a.b".url=…` names the group `remote "a.b"`.
    pub fn parse(arg: &str) -> Result<ConfigSetting, String> {
        let (name, value) = arg
            .split_once('=')
            .ok_or_else(|| format!("`{arg}` is not SECTION.KEY=VALUE (no `=`)"))?;
        let (section, key) = name
            .rsplit_once('.')
            .ok_or_else(|| format!("`{name}` is not SECTION.KEY (no `.`)"))?;
        if section.is_empty() || key.is_empty() {
            return Err(format!("`{name}` has an empty section or key"));
        }
        if section.contains(['[', ']', '\n']) || key.contains(['=', '[', ']', '\n', ' ']) {
            return Err(format!("`{name}` is not a valid config key"));
        }
        if value.contains('\n') {
            return Err(format!("the value for `{name}` contains a newline"));
        }
        if RESERVED.contains(&(section, key)) {
            return Err(format!(
                "`{name}` cannot be set with --set (use --mode or --collection-id)"
            ));
        }
        Ok(ConfigSetting {
            section: section.to_string(),
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    /// `SECTION.KEY`, as the manifest records it.
    pub fn name(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }
}

/// Applies `settings` to `keyfile`; returns true when anything changed.
pub fn apply(keyfile: &glib::KeyFile, settings: &[ConfigSetting]) -> bool {
    let mut changed = false;
    for s in settings {
        let current = keyfile.string(&s.section, &s.key).ok();
        if current.as_deref() != Some(s.value.as_str()) {
            keyfile.set_string(&s.section, &s.key, &s.value);
            changed = true;
        }
    }
    changed
}

/// Fails with [`BadInput`] when the same key is given twice with different
/// values: which one should win is not ours to guess.
pub fn check_conflicts(settings: &[ConfigSetting]) -> anyhow::Result<()> {
    for (i, a) in settings.iter().enumerate() {
        if let Some(b) = settings[i + 1..]
            .iter()
            .find(|b| b.section == a.section && b.key == a.key && b.value != a.value)
        {
            return Err(BadInput::err(format!(
                "--set {} given twice with different values (`{}` and `{}`)",
                a.name(),
                a.value,
                b.value
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_with_dots_and_spaces() {
        let s = ConfigSetting::parse(r#"remote "a.b".url=http://x/?q=1"#).unwrap();
        assert_eq!(s.section, r#"remote "a.b""#);
        assert_eq!(s.key, "url");
        assert_eq!(s.value, "http://x/?q=1");
        let s = ConfigSetting::parse("core.min-free-space-percent=2").unwrap();
        assert_eq!(s.name(), "core.min-free-space-percent");
    }

    #[test]
    fn refuses_malformed_and_reserved_keys() {
        for bad in [
            "core",
            "core.mode=bare",
            "nodot=1",
            ".k=v",
            "s.=v",
            "core.collection-id=x",
            "a.b c=1",
        ] {
            assert!(
                ConfigSetting::parse(bad).is_err(),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn conflicting_duplicates_are_bad_input() {
        let a = ConfigSetting::parse("core.fsync=false").unwrap();
        let b = ConfigSetting::parse("core.fsync=true").unwrap();
        assert!(check_conflicts(&[a.clone(), a.clone()]).is_ok());
        let e = check_conflicts(&[a, b]).unwrap_err();
        assert_eq!(releng_manifest::exit_code(&e), 2);
    }
}
