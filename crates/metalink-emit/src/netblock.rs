//! CIDR netblocks, parsed once per manifest and matched per request
//! without allocating.

use std::net::IpAddr;

/// One network in CIDR notation. IPv4 networks are kept as IPv4-mapped
/// IPv6 so that one comparison serves both families (a client reaching us
/// over a mapped address still matches its IPv4 netblock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Netblock {
    network: u128,
    /// Prefix length in the 128-bit space.
    bits: u8,
}

impl Netblock {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a host
    /// route).
    pub fn parse(text: &str) -> Result<Netblock, String> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let ip: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("netblock `{text}`: not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = match len {
            Some(l) => l
                .trim()
                .parse()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("netblock `{text}`: bad prefix length"))?,
            None => max,
        };
        let bits = if ip.is_ipv4() { len + 96 } else { len };
        Ok(Netblock {
            network: to_u128(ip) & mask(bits),
            bits,
        })
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: u128) -> bool {
        ip & mask(self.bits) == self.network
    }

    /// Prefix length in the 128-bit space: bigger is more specific.
    pub fn specificity(&self) -> u8 {
        self.bits
    }
}

/// The address as a 128-bit number, IPv4 mapped into IPv6.
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6),
        },
    }
}

fn mask(bits: u8) -> u128 {
    if bits == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(bits))
    }
}

/// The most specific of `blocks` containing `ip`, as its specificity.
pub fn best_match(blocks: &[Netblock], ip: u128) -> Option<u8> {
    blocks
        .iter()
        .filter(|b| b.contains(ip))
        .map(Netblock::specificity)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> u128 {
        to_u128(s.parse().unwrap())
    }

    #[test]
    fn ipv4_and_ipv6_match() {
        let b = Netblock::parse("192.0.2.0/24").unwrap();
        assert!(b.contains(ip("192.0.2.77")));
        assert!(!b.contains(ip("192.0.3.1")));
        assert!(b.contains(ip("::ffff:192.0.2.9")), "IPv4-mapped client");
        let v6 = Netblock::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("192.0.2.1")));
    }

    #[test]
    fn host_route_zero_prefix_and_errors() {
        assert!(Netblock::parse("198.51.100.7")
            .unwrap()
            .contains(ip("198.51.100.7")));
        assert!(!Netblock::parse("198.51.100.7")
            .unwrap()
            .contains(ip("198.51.100.8")));
        assert!(Netblock::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("203.0.113.1")));
        assert!(Netblock::parse("10.0.0.0/33").is_err());
        assert!(Netblock::parse("nonsense/8").is_err());
        // Host bits set are masked away, as routers do.
        assert!(Netblock::parse("10.1.2.3/8")
            .unwrap()
            .contains(ip("10.200.0.1")));
    }

    #[test]
    fn most_specific_wins() {
        let blocks = [
            Netblock::parse("10.0.0.0/8").unwrap(),
            Netblock::parse("10.1.0.0/16").unwrap(),
        ];
        assert_eq!(best_match(&blocks, ip("10.1.2.3")), Some(96 + 16));
        assert_eq!(best_match(&blocks, ip("10.2.2.3")), Some(96 + 8));
        assert_eq!(best_match(&blocks, ip("11.0.0.1")), None);
    }
}
