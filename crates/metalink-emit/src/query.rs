//! Parsing a MirrorManager-style query string, strictly: anything
//! malformed or oversized is refused (400) rather than guessed at.

use std::net::IpAddr;

use crate::catalog::Protocol;

/// Longest query string accepted.
pub const MAX_QUERY: usize = 2048;
/// Longest single value accepted.
pub const MAX_VALUE: usize = 512;

/// What a request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// `repo=`
    pub repo: Option<String>,
    /// `arch=`
    pub arch: Option<String>,
    /// `path=`
    pub path: Option<String>,
    /// `country=` / `cc=`, upper case; `global` is none.
    pub country: Option<String>,
    /// `ip=`
    pub ip: Option<IpAddr>,
    /// `netblock=0` turns netblock matching off.
    pub netblocks: bool,
    /// `protocol=http,https`: a mask of [`Protocol`] bits.
    pub protocols: u8,
    /// `redirect=1`: answer 302 to the first http(s) mirror.
    pub redirect: bool,
    /// `format=meta4`.
    pub meta4: bool,
}

/// Parses `raw` (the part after `?`, without the `?`).
pub fn parse(raw: &str) -> Result<Query, String> {
    if raw.len() > MAX_QUERY {
        return Err(format!("query longer than {MAX_QUERY} bytes"));
    }
    let mut q = Query {
        netblocks: true,
        protocols: Protocol::ALL,
        ..Query::default()
    };
    let mut protocols_given = false;
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k)?;
        let value = decode(v)?;
        if value.len() > MAX_VALUE {
            return Err(format!("{key}: value longer than {MAX_VALUE} bytes"));
        }
        match key.as_str() {
            "repo" => q.repo = Some(value),
            "arch" => q.arch = Some(value),
            "path" => q.path = Some(value),
            "country" | "cc" => {
                q.country = match value.to_ascii_uppercase().as_str() {
                    "" | "GLOBAL" => None,
                    c if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
                        Some(c.to_string())
                    }
                    _ => return Err(format!("country `{value}`: not a two-letter code")),
                }
            }
            "ip" => {
                q.ip = Some(
                    value
                        .parse()
                        .map_err(|_| format!("ip `{value}`: not an IP address"))?,
                )
            }
            "netblock" => q.netblocks = flag(&key, &value)?,
            "redirect" => q.redirect = flag(&key, &value)?,
            "protocol" => {
                if !protocols_given {
                    q.protocols = 0;
                    protocols_given = true;
                }
                for p in value.split(',').filter(|p| !p.is_empty()) {
                    q.protocols |= Protocol::from_name(p)
                        .ok_or_else(|| format!("protocol `{p}`: unknown"))?
                        .bit();
                }
            }
            "format" => {
                q.meta4 = match value.as_str() {
                    "meta4" => true,
                    "" | "metalink" | "metalink3" => false,
                    _ => return Err(format!("format `{value}`: unknown")),
                }
            }
            // MirrorManager's clients send more (time=, …): accepted, unused.
            _ => {}
        }
    }
    if q.path.is_none() && (q.repo.is_none() || q.arch.is_none()) {
        return Err("give repo= and arch=, or path=".to_string());
    }
    if protocols_given && q.protocols == 0 {
        return Err("protocol= names no protocol".to_string());
    }
    Ok(q)
}

fn flag(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "yes" | "true" | "" => Ok(true),
        "0" | "no" | "false" => Ok(false),
        _ => Err(format!("{key}=`{value}`: not 0 or 1")),
    }
}

/// Percent-decodes `s` (`+` is a space); bad escapes, invalid UTF-8 and
/// control characters are errors.
pub fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "malformed percent escape".to_string())?;
                out.push(hex);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    let text = String::from_utf8(out).map_err(|_| "query is not UTF-8".to_string())?;
    if text.chars().any(char::is_control) {
        return Err("control character in query".to_string());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrormanager_queries() {
        let q = parse("repo=fedora-rawhide&arch=x86_64&cc=de&ip=192.0.2.1").unwrap();
        assert_eq!(q.repo.as_deref(), Some("fedora-rawhide"));
        assert_eq!(q.arch.as_deref(), Some("x86_64"));
        assert_eq!(q.country.as_deref(), Some("DE"));
        assert_eq!(q.ip, Some("192.0.2.1".parse().unwrap()));
        assert!(q.netblocks && !q.redirect && !q.meta4);
        assert_eq!(q.protocols, Protocol::ALL);
        let q = parse("path=pub%2Ffedora/atomic+x/summary&country=global&protocol=https,http&redirect=1&time=3").unwrap();
        assert_eq!(q.path.as_deref(), Some("pub/fedora/atomic x/summary"));
        assert_eq!(q.country, None);
        assert_eq!(q.protocols, Protocol::Http.bit() | Protocol::Https.bit());
        assert!(q.redirect);
        assert!(!parse("path=x&netblock=0").unwrap().netblocks);
        assert!(parse("path=x&format=meta4").unwrap().meta4);
    }

    #[test]
    fn malformed_and_oversized_are_refused() {
        for bad in [
            "repo=a",
            "arch=b",
            "",
            "path=%zz",
            "path=%4",
            "path=%ff%fe",
            "path=a%0ab",
            "path=x&ip=999.1.1.1",
            "path=x&country=DEU",
            "path=x&protocol=gopher",
            "path=x&protocol=,",
            "path=x&redirect=maybe",
            "path=x&format=atom",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        assert!(parse(&format!("path={}", "a".repeat(MAX_QUERY))).is_err());
        assert!(parse(&format!("path={}", "a".repeat(MAX_VALUE + 1))).is_err());
        assert!(parse(&format!("path={}", "a".repeat(MAX_VALUE))).is_ok());
    }
}
