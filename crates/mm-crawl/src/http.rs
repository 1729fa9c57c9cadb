//! Fetching one metadata file from a mirror over HTTP(S) or `file://`,
//! hashing it as it streams: memory stays flat whatever the mirror sends,
//! and a body past the cap is cut off, not buffered.

use std::io::Read;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::state::Validators;

/// Largest `repomd.xml` read from a mirror.
pub const REPOMD_CAP: u64 = 16 << 20;
/// Largest `summary` read from a mirror.
pub const SUMMARY_CAP: u64 = 128 << 20;
/// Tries per request (first + retries) for connection errors and 5xx.
const TRIES: u32 = 3;
/// The backoff starts here and doubles, up to `BACKOFF_CAP`.
const BACKOFF: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// What a mirror answered for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The body's sha256 and the validators to send next time.
    Body(Validators),
    /// 304: unchanged since the validators we sent.
    NotModified,
    /// 404/410, or another 4xx (the text says which).
    Missing(String),
    /// The body went past the cap.
    TooLarge(u64),
    /// An answer that is not the file (5xx after retries, bad redirect…).
    Error(String),
    /// No answer: connection failed or timed out.
    NoAnswer(String),
}

impl Fetched {
    /// True when the host answered at all.
    pub fn answered(&self) -> bool {
        !matches!(self, Fetched::NoAnswer(_))
    }
}

/// GETs `url` with the previous validators, within `deadline`.
pub fn get(
    agent: &ureq::Agent,
    url: &str,
    previous: Option<&Validators>,
    cap: u64,
    deadline: Instant,
) -> Fetched {
    let mut backoff = BACKOFF;
    let mut last = Fetched::NoAnswer("per-host timeout".into());
    for attempt in 0..TRIES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut req = agent.get(url).timeout(left);
        if let Some(v) = previous {
            if let Some(e) = &v.etag {
                req = req.set("If-None-Match", e);
            }
            if let Some(m) = &v.last_modified {
                req = req.set("If-Modified-Since", m);
            }
        }
        let retry = match req.call() {
            Ok(resp) if resp.status() == 304 => return Fetched::NotModified,
            Ok(resp) if resp.status() == 200 => {
                let etag = resp.header("ETag").map(str::to_string);
                let last_modified = resp.header("Last-Modified").map(str::to_string);
                return match hash_capped(resp.into_reader(), cap) {
                    Ok(Some(sha256)) => Fetched::Body(Validators {
                        etag,
                        last_modified,
                        sha256,
                    }),
                    Ok(None) => Fetched::TooLarge(cap),
                    Err(e) => Fetched::NoAnswer(format!("reading the body: {e}")),
                };
            }
            Ok(resp) => {
                return Fetched::Error(format!("HTTP {} {}", resp.status(), resp.status_text()))
            }
            Err(ureq::Error::Status(code @ (404 | 410), _)) => {
                return Fetched::Missing(format!("HTTP {code}"))
            }
            Err(ureq::Error::Status(code, resp)) if code < 500 => {
                return Fetched::Missing(format!("HTTP {code} {}", resp.status_text()))
            }
            Err(ureq::Error::Status(code, resp)) => {
                last = Fetched::Error(format!("HTTP {code} {}", resp.status_text()));
                true
            }
            Err(ureq::Error::Transport(t)) => {
                last = Fetched::NoAnswer(one_line(&t.to_string()));
                true
            }
        };
        if retry && attempt + 1 < TRIES {
            let left = deadline.saturating_duration_since(Instant::now());
            if left <= backoff {
                break;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }
    last
}

/// Reads a local file (a `file://` mirror).
pub fn read_file(path: &str, cap: u64) -> Fetched {
    match std::fs::File::open(path) {
        Ok(f) => match hash_capped(f, cap) {
            Ok(Some(sha256)) => Fetched::Body(Validators {
                etag: None,
                last_modified: None,
                sha256,
            }),
            Ok(None) => Fetched::TooLarge(cap),
            Err(e) => Fetched::Error(e.to_string()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Fetched::Missing("not found".into()),
        Err(e) => Fetched::Error(e.to_string()),
    }
}

/// sha256 of at most `cap` bytes of `r`; `None` when there were more.
pub fn hash_capped(r: impl Read, cap: u64) -> std::io::Result<Option<String>> {
    let mut r = r.take(cap + 1);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > cap {
            return Ok(None);
        }
        h.update(&buf[..n]);
    }
    Ok(Some(file_details::hex(&h.finalize())))
}

fn one_line(s: &str) -> String {
    s.lines().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_cuts_off() {
        let data = vec![7u8; 1000];
        assert!(hash_capped(&data[..], 1000).unwrap().is_some());
        assert_eq!(hash_capped(&data[..], 999).unwrap(), None);
        assert_eq!(
            hash_capped(&b"abc"[..], 10).unwrap().unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
