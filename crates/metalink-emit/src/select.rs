//! Which mirrors a client gets, in which order.
//!
//! Tiers, best first: hosts whose netblock holds the client (most specific
//! first; the only way to a private host), hosts of the client's ASN, of
//! its country, of its continent, then everyone. Country, continent and
//! global tiers are shuffled weighted by bandwidth (Efraimidis–Spirakis:
//! one key per host, one sort, so O(n log n)). As in MirrorManager, the
//! continent tier is added only when fewer than `min` hosts are listed so
//! far, and the global tier likewise after it.

use crate::catalog::{Catalog, Repo};

/// What is known about the client.
#[derive(Debug, Clone, Default)]
pub struct Client<'a> {
    /// Its address, as [`crate::netblock::to_u128`].
    pub ip: Option<u128>,
    /// Upper-case country code.
    pub country: Option<&'a str>,
    /// Upper-case continent code, when known from GeoIP; otherwise the
    /// continent of the country's hosts is used.
    pub continent: Option<&'a str>,
    /// Whether netblocks (and so private hosts and ASN) count.
    pub netblocks: bool,
}

const NETBLOCK: u8 = 0;
const ASN: u8 = 1;
const COUNTRY: u8 = 2;
const CONTINENT: u8 = 3;
const GLOBAL: u8 = 4;

/// Reusable per-thread scratch space, so a request allocates nothing here.
#[derive(Debug, Default)]
pub struct Scratch {
    keyed: Vec<(u8, f64, u32)>,
    /// The chosen hosts, best first.
    pub order: Vec<u32>,
}

/// Orders `repo`'s hosts for `client` into `scratch.order`, counting only
/// hosts with a URL of a protocol in `protocols` (a [`Protocol`] mask): a
/// host the document cannot list must not take a place in its tier.
///
/// [`Protocol`]: crate::catalog::Protocol
pub fn order(
    cat: &Catalog,
    repo: &Repo,
    client: &Client,
    protocols: u8,
    min: usize,
    rng: &mut fastrand::Rng,
    scratch: &mut Scratch,
) {
    let keyed = &mut scratch.keyed;
    keyed.clear();
    scratch.order.clear();
    let mut asn = None;
    let mut best_spec = 0u8;
    if let (Some(ip), true) = (client.ip, client.netblocks) {
        for &h in &repo.hosts {
            let host = &cat.hosts[h as usize];
            if host.protocols & protocols == 0 {
                continue;
            }
            if let Some(spec) = crate::netblock::best_match(&host.netblocks, ip) {
                // Most specific first: the key sorts descending.
                keyed.push((
                    NETBLOCK,
                    f64::from(spec) + weighted_key(rng, host.bandwidth) * 1e-9,
                    h,
                ));
                if spec >= best_spec && host.asn.is_some() {
                    best_spec = spec;
                    asn = host.asn;
                }
            }
        }
    }
    let continent = client
        .continent
        .or_else(|| client.country.and_then(|c| cat.continent_of(c)));
    let mut counts = [0usize; 5];
    counts[NETBLOCK as usize] = keyed.len();
    let matched = keyed.len();
    for &h in &repo.hosts {
        let host = &cat.hosts[h as usize];
        if host.private || host.protocols & protocols == 0 {
            continue;
        }
        if matched > 0 && keyed[..matched].iter().any(|k| k.2 == h) {
            continue;
        }
        let tier = if asn.is_some() && host.asn == asn {
            ASN
        } else if client.country == Some(host.country.as_str()) {
            COUNTRY
        } else if continent.is_some() && host.continent.as_deref() == continent {
            CONTINENT
        } else {
            GLOBAL
        };
        counts[tier as usize] += 1;
        keyed.push((tier, weighted_key(rng, host.bandwidth), h));
    }
    // Without a country nor a netblock match, everyone is global.
    let mut last = if client.country.is_some() || counts[0] + counts[1] > 0 {
        COUNTRY
    } else {
        GLOBAL
    };
    let mut listed: usize = counts[..=last as usize].iter().sum();
    if listed < min && last < CONTINENT {
        last = CONTINENT;
        listed += counts[CONTINENT as usize];
    }
    if listed < min {
        last = GLOBAL;
    }
    keyed.retain(|k| k.0 <= last);
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    scratch.order.extend(keyed.iter().map(|k| k.2));
}

/// Efraimidis–Spirakis key: sorting by it descending is a weighted random
/// permutation. `ln(u)/w` orders as `u^(1/w)` without the power.
fn weighted_key(rng: &mut fastrand::Rng, weight: u32) -> f64 {
    let u = 1.0 - rng.f64(); // (0, 1]
    u.ln() / f64::from(weight.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::testdata::*;
    use releng_manifest::RepoKind;

    fn names(cat: &Catalog, order: &[u32]) -> Vec<String> {
        order
            .iter()
            .map(|&h| cat.hosts[h as usize].name.clone())
            .collect()
    }

    fn run(cat: &Catalog, client: &Client, min: usize, seed: u64) -> Vec<String> {
        let mut scratch = Scratch::default();
        let mut rng = fastrand::Rng::with_seed(seed);
        order(
            cat,
            &cat.repos[0],
            client,
            crate::catalog::Protocol::ALL,
            min,
            &mut rng,
            &mut scratch,
        );
        names(cat, &scratch.order)
    }

    fn world() -> Catalog {
        let mut hosts = vec![
            host("de1", "DE", "EU", 10, &["r"]),
            host("de2", "DE", "EU", 10, &["r"]),
            host("fr1", "FR", "EU", 10, &["r"]),
            host("us1", "US", "NA", 10, &["r"]),
            host("us2", "US", "NA", 10, &["r"]),
            host("jp1", "JP", "AS", 10, &["r"]),
        ];
        let mut campus = host("campus", "US", "NA", 1, &["r"]);
        campus.netblocks = vec!["192.0.2.0/24".into()];
        campus.private = true;
        // No ASN: the client's ASN comes from the most specific block that has one.
        campus.asn = None;
        let mut isp = host("isp", "US", "NA", 1, &["r"]);
        isp.netblocks = vec!["192.0.0.0/16".into()];
        isp.asn = Some(64501);
        let mut same_as = host("same-as", "BR", "SA", 1, &["r"]);
        same_as.asn = Some(64501);
        hosts.extend([campus, isp, same_as]);
        let (scan, mirrors) = sections(vec![repo("r", RepoKind::Yum, "r")], hosts);
        Catalog::build(&scan, &mirrors)
    }

    #[test]
    fn hosts_the_document_cannot_list_take_no_place() {
        // de1 has only rsync: a mirrorlist (no rsync) must fill from the
        // continent instead of stopping at a country tier it cannot print.
        let mut de1 = host("de1", "DE", "EU", 10, &["r"]);
        de1.urls = vec!["rsync://de1/pub".into()];
        let hosts = vec![de1, host("fr1", "FR", "EU", 10, &["r"])];
        let (scan, mirrors) = sections(vec![repo("r", RepoKind::Yum, "r")], hosts);
        let cat = Catalog::build(&scan, &mirrors);
        let de = Client {
            country: Some("DE"),
            ..Client::default()
        };
        let mut scratch = Scratch::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let web = crate::catalog::Protocol::WEB;
        order(&cat, &cat.repos[0], &de, web, 1, &mut rng, &mut scratch);
        assert_eq!(names(&cat, &scratch.order), ["fr1"]);
        // A metalink may list rsync: de1 is the country tier again.
        let all = crate::catalog::Protocol::ALL;
        order(&cat, &cat.repos[0], &de, all, 1, &mut rng, &mut scratch);
        assert_eq!(names(&cat, &scratch.order), ["de1"]);
    }

    #[test]
    fn country_then_continent_then_global_up_to_min() {
        let cat = world();
        let de = Client {
            country: Some("DE"),
            ..Client::default()
        };
        let got = run(&cat, &de, 2, 1);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|n| n.starts_with("de")), "{got:?}");
        let got = run(&cat, &de, 3, 1);
        assert_eq!(got.len(), 3, "continent added: {got:?}");
        assert_eq!(got[2], "fr1");
        let got = run(&cat, &de, 5, 1);
        // Whole continent, then every other public host.
        assert_eq!(&got[2], "fr1");
        assert_eq!(got.len(), 8, "{got:?}");
        assert!(!got.contains(&"campus".to_string()), "private host leaked");
    }

    #[test]
    fn a_country_without_mirrors_gets_its_continent_from_geoip() {
        let cat = world();
        // Italy has no host, so the hosts cannot say it is in Europe.
        let it = Client {
            country: Some("IT"),
            ..Client::default()
        };
        assert_eq!(run(&cat, &it, 3, 1).len(), 8, "straight to global");
        let geo = Client {
            continent: Some("EU"),
            ..it
        };
        let got = run(&cat, &geo, 3, 1);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got
            .iter()
            .all(|n| ["de1", "de2", "fr1"].contains(&n.as_str())));
    }

    #[test]
    fn no_client_information_lists_every_public_host() {
        let cat = world();
        let got = run(&cat, &Client::default(), 5, 7);
        assert_eq!(got.len(), 8);
        assert!(!got.contains(&"campus".to_string()));
    }

    #[test]
    fn netblocks_most_specific_first_then_asn_and_private_only_inside() {
        let cat = world();
        let inside = Client {
            ip: Some(crate::netblock::to_u128("192.0.2.9".parse().unwrap())),
            country: Some("DE"),
            continent: None,
            netblocks: true,
        };
        let got = run(&cat, &inside, 5, 3);
        assert_eq!(&got[..3], ["campus", "isp", "same-as"], "{got:?}");
        assert!(got[3].starts_with("de"));
        let outside = Client {
            ip: Some(crate::netblock::to_u128("192.0.9.9".parse().unwrap())),
            ..inside.clone()
        };
        let got = run(&cat, &outside, 5, 3);
        assert_eq!(&got[..2], ["isp", "same-as"]);
        assert!(!got.contains(&"campus".to_string()));
        let off = Client {
            netblocks: false,
            ..inside
        };
        let got = run(&cat, &off, 5, 3);
        assert!(!got.contains(&"campus".to_string()));
        assert!(got[0].starts_with("de"));
    }

    #[test]
    fn seeded_shuffle_repeats_and_follows_bandwidth() {
        let mut hosts = vec![host("big", "DE", "EU", 100, &["r"])];
        hosts.extend((0..9).map(|i| host(&format!("small{i}"), "DE", "EU", 1, &["r"])));
        let (scan, mirrors) = sections(vec![repo("r", RepoKind::Yum, "r")], hosts);
        let cat = Catalog::build(&scan, &mirrors);
        let c = Client::default();
        assert_eq!(run(&cat, &c, 5, 42), run(&cat, &c, 5, 42));
        assert_ne!(
            (0..20)
                .map(|s| run(&cat, &c, 5, s))
                .collect::<std::collections::HashSet<_>>()
                .len(),
            1,
            "the shuffle never changes"
        );
        // Weight 100 against 9 × 1: first in ~92% of shuffles.
        let first = (0..1000)
            .filter(|&s| run(&cat, &c, 5, s)[0] == "big")
            .count();
        assert!((850..=980).contains(&first), "big first in {first}/1000");
    }
}
