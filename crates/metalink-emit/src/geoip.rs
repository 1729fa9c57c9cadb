//! Client country and continent from a MaxMind DB (`--geoip`), for clients
//! that do not say `country=`.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::geoip2;
use releng_manifest::BadInput;

/// An opened GeoIP2/GeoLite2 Country (or City) database.
pub struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
}

/// Where a client is, as two-letter upper-case codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// ISO 3166 country.
    pub country: [u8; 2],
    /// Continent (`EU`, `NA`…), when the database has it.
    pub continent: Option<[u8; 2]>,
}

impl GeoIp {
    /// Opens `path`, which must be a MaxMind DB.
    pub fn open(path: &Path) -> anyhow::Result<GeoIp> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| {
            BadInput::err(format!(
                "--geoip {}: not a readable MaxMind DB: {e}",
                path.display()
            ))
        })?;
        Ok(GeoIp { reader })
    }

    /// Where `ip` is; `None` when the database does not know (or cannot
    /// answer, e.g. an IPv6 address in an IPv4 database).
    pub fn locate(&self, ip: IpAddr) -> Option<Place> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let found: geoip2::Country = self.reader.lookup(ip).ok()??;
        let country = code(found.country?.iso_code?)?;
        let continent = found.continent.and_then(|c| c.code).and_then(code);
        Some(Place { country, continent })
    }
}

fn code(s: &str) -> Option<[u8; 2]> {
    match s.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// A code as text.
pub fn as_str(code: &[u8; 2]) -> &str {
    std::str::from_utf8(code).unwrap_or("")
}
