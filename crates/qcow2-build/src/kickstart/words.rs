//! Kickstart lines as pykickstart reads them: shell-like words (shlex
//! rules for quotes and comments), then `--options` against a command's
//! own option list.

use std::collections::BTreeMap;

/// Splits a command line as pykickstart (shlex) does.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Options of one command: `--name` (flag) or `--name=value`/`--name value`,
/// and positional arguments.
pub struct Opts {
    flags: BTreeMap<String, Option<String>>,
    /// Positional arguments.
    pub args: Vec<String>,
}

/// Parses `words` (after the command) against `spec`: option names, each
/// with whether it takes a value.
pub fn opts(words: &[String], spec: &[(&str, bool)]) -> Result<Opts, String> {
    let mut flags = BTreeMap::new();
    let mut args = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if let Some(opt) = w.strip_prefix("--") {
            let (name, inline) = match opt.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (opt, None),
            };
            let takes = spec
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| *t)
                .ok_or_else(|| format!("unknown option --{name}"))?;
            let value = match (takes, inline) {
                (true, Some(v)) => Some(v),
                (true, None) => {
                    i += 1;
                    Some(
                        words
                            .get(i)
                            .cloned()
                            .ok_or_else(|| format!("--{name} needs a value"))?,
                    )
                }
                (false, Some(_)) => return Err(format!("--{name} takes no value")),
                (false, None) => None,
            };
            flags.insert(name.to_string(), value);
        } else {
            args.push(w.clone());
        }
        i += 1;
    }
    Ok(Opts { flags, args })
}

impl Opts {
    /// The value of `--name`, if given with one.
    pub fn value(&self, name: &str) -> Option<String> {
        self.flags.get(name).cloned().flatten()
    }

    /// Whether `--name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.flags.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_shlex() {
        assert_eq!(
            split(r#"bootloader --timeout=1 --append="console=ttyS0,115200n8 console=tty0" # c"#)
                .unwrap(),
            [
                "bootloader",
                "--timeout=1",
                "--append=console=ttyS0,115200n8 console=tty0"
            ]
        );
        assert_eq!(split("a 'b c' d\\ e").unwrap(), ["a", "b c", "d e"]);
        assert!(split("a \"b").is_err());
    }
}
