//! The plain mirrorlist: what dnf's `mirrorlist=` and ostree's
//! `contenturl=mirrorlist=` read.

use std::io::Write;

use crate::catalog::{Catalog, Repo};
use crate::metalink::one_line;

/// Appends the plain mirrorlist: a `#` header line, then one base URL of
/// the repository per line (what dnf's `mirrorlist=` and ostree's
/// `contenturl=mirrorlist=` take).
pub fn write(
    cat: &Catalog,
    repo: &Repo,
    order: &[u32],
    protocols: u8,
    country: Option<&str>,
    out: &mut Vec<u8>,
) -> u32 {
    let _ = writeln!(
        out,
        "# repo = {} arch = {} country = {}",
        one_line(&repo.scan.prefix),
        one_line(&repo.scan.arch),
        country.unwrap_or("global")
    );
    let mut n = 0;
    for &h in order {
        for u in cat.hosts[h as usize]
            .urls
            .iter()
            .filter(|u| u.protocol.bit() & protocols != 0)
        {
            out.extend_from_slice(u.plain.as_bytes());
            out.extend_from_slice(repo.dir_suffix.as_bytes());
            out.push(b'\n');
            n += 1;
        }
    }
    n
}
