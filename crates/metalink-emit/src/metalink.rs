//! The XML documents: MirrorManager's Metalink 3.0 and RFC 5854 meta4.
//!
//! Each repository's header (file name, size, digests, alternates) is
//! written once per manifest through quick-xml; a request only appends the
//! date, its ordered `<url>` elements (from fragments escaped in advance)
//! and a fixed footer, so escaping can never be skipped on the hot path.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use releng_manifest::{MetadataFile, RepoKind, ScanRepo};

use crate::catalog::{Catalog, Protocol, Repo};

/// The `generator` attribute.
pub const GENERATOR: &str = concat!("metalink-emit/", env!("CARGO_PKG_VERSION"));
const MM0: &str = "http://fedorahosted.org/mirrormanager";
/// Stands for the date while the header is written; nothing else in a
/// header can contain it (the digests are hex, the name is fixed).
const DATE_MARK: &str = "\u{1}DATE\u{1}";

const FOOTER3: &[u8] = b"\n   </resources>\n  </file>\n </files>\n</metalink>\n";
const FOOTER4: &[u8] = b"\n </file>\n</metalink>\n";

type W = Writer<Vec<u8>>;

fn start(w: &mut W, name: &str, attrs: &[(&str, &str)]) {
    let el = BytesStart::new(name).with_attributes(attrs.iter().copied());
    w.write_event(Event::Start(el)).expect("writing to memory");
}

fn end(w: &mut W, name: &str) {
    w.write_event(Event::End(BytesEnd::new(name)))
        .expect("writing to memory");
}

fn text_element(w: &mut W, name: &str, attrs: &[(&str, &str)], text: &str) {
    start(w, name, attrs);
    w.write_event(Event::Text(BytesText::new(text)))
        .expect("writing to memory");
    end(w, name);
}

fn split_at_mark(doc: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let mark = DATE_MARK.as_bytes();
    let at = doc
        .windows(mark.len())
        .position(|w| w == mark)
        .expect("the header holds the date mark");
    (doc[..at].to_vec(), doc[at + mark.len()..].to_vec())
}

fn mm_details(w: &mut W, f: &MetadataFile) {
    text_element(w, "mm0:timestamp", &[], &f.timestamp.to_string());
    text_element(w, "size", &[], &f.details.size.to_string());
    start(w, "verification", &[]);
    for (t, v) in [
        ("md5", &f.details.md5),
        ("sha1", &f.details.sha1),
        ("sha256", &f.details.sha256),
        ("sha512", &f.details.sha512),
    ] {
        text_element(w, "hash", &[("type", t)], v);
    }
    end(w, "verification");
}

/// The Metalink 3.0 header of `repo` up to `<resources …>`, split where
/// the pubdate goes.
pub fn header3(repo: &ScanRepo) -> (Vec<u8>, Vec<u8>) {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 1);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))
        .expect("writing to memory");
    start(
        &mut w,
        "metalink",
        &[
            ("version", "3.0"),
            ("xmlns", "http://www.metalinker.org/"),
            ("type", "dynamic"),
            ("pubdate", DATE_MARK),
            ("generator", GENERATOR),
            ("xmlns:mm0", MM0),
        ],
    );
    start(&mut w, "files", &[]);
    start(&mut w, "file", &[("name", repo.kind.metadata_name())]);
    // ostree has no alternates: it would only trip over the element.
    if repo.kind == RepoKind::Yum && !repo.alternates.is_empty() {
        start(&mut w, "mm0:alternates", &[]);
        for alt in &repo.alternates {
            start(&mut w, "mm0:alternate", &[]);
            mm_details(&mut w, alt);
            end(&mut w, "mm0:alternate");
        }
        end(&mut w, "mm0:alternates");
    }
    mm_details(&mut w, &repo.file);
    start(&mut w, "resources", &[("maxconnections", "1")]);
    split_at_mark(w.into_inner())
}

/// The meta4 header of `repo` up to the first `<url>`, split where the
/// `published` date goes.
pub fn header4(repo: &ScanRepo) -> (Vec<u8>, Vec<u8>) {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 1);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .expect("writing to memory");
    start(
        &mut w,
        "metalink",
        &[("xmlns", "urn:ietf:params:xml:ns:metalink")],
    );
    text_element(&mut w, "generator", &[], GENERATOR);
    text_element(&mut w, "published", &[], DATE_MARK);
    start(&mut w, "file", &[("name", repo.kind.metadata_name())]);
    let d = &repo.file.details;
    text_element(&mut w, "size", &[], &d.size.to_string());
    for (t, v) in [
        ("md5", &d.md5),
        ("sha-1", &d.sha1),
        ("sha-256", &d.sha256),
        ("sha-512", &d.sha512),
    ] {
        text_element(&mut w, "hash", &[("type", t)], v);
    }
    split_at_mark(w.into_inner())
}

/// Protocols a document of `kind` and `format` may list, before the
/// client's own `protocol=` filter.
pub fn allowed(kind: RepoKind, format: crate::Format) -> u8 {
    match (kind, format) {
        (RepoKind::Ostree, _) => Protocol::WEB,
        (RepoKind::Yum, crate::Format::Mirrorlist) => Protocol::LISTABLE,
        (RepoKind::Yum, _) => Protocol::ALL,
    }
}

/// Appends the Metalink 3.0 document for `repo` with hosts in `order`;
/// returns the number of URLs listed.
pub fn write3(
    cat: &Catalog,
    repo: &Repo,
    order: &[u32],
    protocols: u8,
    pubdate: &str,
    out: &mut Vec<u8>,
) -> u32 {
    out.extend_from_slice(&repo.header3.0);
    out.extend_from_slice(pubdate.as_bytes());
    out.extend_from_slice(&repo.header3.1);
    // Preference counts down from 100, one step per listed host.
    let rank = |i: u32| 100u32.saturating_sub(i).max(1);
    let n = write_urls(cat, repo, order, protocols, Version::V3, rank, out);
    out.extend_from_slice(FOOTER3);
    n
}

/// Appends the RFC 5854 document for `repo`; `priority` 1 is the best.
pub fn write4(
    cat: &Catalog,
    repo: &Repo,
    order: &[u32],
    protocols: u8,
    published: &str,
    out: &mut Vec<u8>,
) -> u32 {
    out.extend_from_slice(&repo.header4.0);
    out.extend_from_slice(published.as_bytes());
    out.extend_from_slice(&repo.header4.1);
    let n = write_urls(cat, repo, order, protocols, Version::V4, |i| i + 1, out);
    out.extend_from_slice(FOOTER4);
    n
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    V3,
    V4,
}

/// The `<url>` elements of the hosts in `order`, from each URL's
/// pre-rendered start tag: every URL of the `i`th listed host gets rank
/// `rank(i)`. Returns the number of URLs listed.
fn write_urls(
    cat: &Catalog,
    repo: &Repo,
    order: &[u32],
    protocols: u8,
    version: Version,
    rank: impl Fn(u32) -> u32,
    out: &mut Vec<u8>,
) -> u32 {
    // ostree rejects a whole document over `mm0:private`: yum only.
    let mark_private = version == Version::V3 && repo.scan.kind == RepoKind::Yum;
    let mut hosts_listed = 0;
    let mut n = 0;
    for &h in order {
        let host = &cat.hosts[h as usize];
        let mut listed = false;
        for u in host
            .urls
            .iter()
            .filter(|u| u.protocol.bit() & protocols != 0)
        {
            out.extend_from_slice(match version {
                Version::V3 => &u.elem3,
                Version::V4 => &u.elem4,
            });
            push_u32(out, rank(hosts_listed));
            if mark_private && host.private {
                out.extend_from_slice(b"\" mm0:private=\"True\">");
            } else {
                out.extend_from_slice(b"\">");
            }
            out.extend_from_slice(u.xml.as_bytes());
            out.extend_from_slice(repo.file_suffix_xml.as_bytes());
            out.extend_from_slice(b"</url>");
            listed = true;
            n += 1;
        }
        if listed {
            hosts_listed += 1;
        }
    }
    n
}

/// Decimal digits of `n`, without going through `fmt` (a profile showed
/// it among the top costs of a large metalink).
fn push_u32(out: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `s` with control characters (newlines) made spaces.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A Metalink 3.0 document holding only a comment (MirrorManager's answer
/// for an unknown repository).
pub fn failure3(message: &str, pubdate: &str) -> Vec<u8> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 1);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))
        .expect("writing to memory");
    start(
        &mut w,
        "metalink",
        &[
            ("version", "3.0"),
            ("xmlns", "http://www.metalinker.org/"),
            ("type", "dynamic"),
            ("pubdate", pubdate),
            ("generator", GENERATOR),
            ("xmlns:mm0", MM0),
        ],
    );
    // A comment cannot be escaped: "--" and controls are made harmless.
    let safe: String = one_line(message).replace("--", "- -");
    let safe = safe.trim_end_matches('-');
    w.write_event(Event::Comment(BytesText::from_escaped(format!(" {safe} "))))
        .expect("writing to memory");
    end(&mut w, "metalink");
    let mut doc = w.into_inner();
    doc.push(b'\n');
    doc
}

/// RFC 1123 date, as MirrorManager's `pubdate`.
pub fn rfc1123(t: std::time::SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// RFC 3339 UTC date, as meta4's `published`.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    releng_manifest::iso8601(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::testdata::*;
    use crate::select::{order, Client, Scratch};

    fn doc(kind: RepoKind, urls: Vec<String>, private: bool, format: crate::Format) -> String {
        let mut h = host("m", "DE", "EU", 1, &["r"]);
        h.urls = urls;
        h.private = private;
        if private {
            h.netblocks = vec!["10.0.0.0/8".into()];
        }
        let mut r = repo("r", kind, "r");
        r.alternates = vec![repo("old", kind, "r").file];
        let (scan, mirrors) = sections(vec![r], vec![h]);
        let cat = Catalog::build(&scan, &mirrors);
        let mut s = Scratch::default();
        let client = Client {
            ip: Some(crate::netblock::to_u128("10.1.1.1".parse().unwrap())),
            netblocks: true,
            ..Client::default()
        };
        order(
            &cat,
            &cat.repos[0],
            &client,
            crate::catalog::Protocol::ALL,
            5,
            &mut fastrand::Rng::with_seed(1),
            &mut s,
        );
        let mut out = Vec::new();
        let allowed = allowed(kind, format);
        match format {
            crate::Format::Metalink3 => {
                write3(&cat, &cat.repos[0], &s.order, allowed, "D", &mut out)
            }
            crate::Format::Meta4 => write4(&cat, &cat.repos[0], &s.order, allowed, "D", &mut out),
            crate::Format::Mirrorlist => {
                crate::mirrorlist::write(&cat, &cat.repos[0], &s.order, allowed, None, &mut out)
            }
        };
        String::from_utf8(out).unwrap()
    }

    /// Parses `xml` with quick-xml and returns the text of every `<url>`.
    fn urls(xml: &str) -> Vec<String> {
        let mut r = quick_xml::Reader::from_str(xml);
        let (mut out, mut inside) = (Vec::new(), false);
        loop {
            match r.read_event().expect("well-formed XML") {
                Event::Start(e) if e.name().as_ref() == b"url" => inside = true,
                Event::Text(t) if inside => out.push(t.unescape().unwrap().into_owned()),
                Event::End(e) if e.name().as_ref() == b"url" => inside = false,
                Event::Eof => return out,
                _ => {}
            }
        }
    }

    #[test]
    fn hostile_urls_stay_well_formed() {
        let bad = "http://m/a&b<c>\"d'/pub".to_string();
        let xml = doc(
            RepoKind::Yum,
            vec![bad.clone()],
            false,
            crate::Format::Metalink3,
        );
        assert_eq!(urls(&xml), [format!("{bad}/r/repodata/repomd.xml")]);
        let xml = doc(
            RepoKind::Yum,
            vec![bad.clone()],
            false,
            crate::Format::Meta4,
        );
        assert_eq!(urls(&xml), [format!("{bad}/r/repodata/repomd.xml")]);
    }

    #[test]
    fn metalink3_layout() {
        let xml = doc(
            RepoKind::Yum,
            vec!["https://m/pub/".into(), "rsync://m/pub".into()],
            true,
            crate::Format::Metalink3,
        );
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<metalink version=\"3.0\" xmlns=\"http://www.metalinker.org/\" type=\"dynamic\" pubdate=\"D\" generator=\"metalink-emit/"), "{xml}");
        for part in [
            "<file name=\"repomd.xml\">",
            "<mm0:alternates>",
            "<mm0:timestamp>1700000000</mm0:timestamp>",
            "<hash type=\"sha512\">",
            "<resources maxconnections=\"1\">",
            "<url protocol=\"https\" type=\"https\" location=\"DE\" preference=\"100\" mm0:private=\"True\">https://m/pub/r/repodata/repomd.xml</url>",
            "<url protocol=\"rsync\" type=\"rsync\" location=\"DE\" preference=\"100\" mm0:private=\"True\">rsync://m/pub/r/repodata/repomd.xml</url>",
        ] {
            assert!(xml.contains(part), "{part} missing from\n{xml}");
        }
        assert_eq!(urls(&xml).len(), 2);
    }

    #[test]
    fn preference_and_priority_fall_from_host_to_host() {
        let hosts = vec![
            host("a", "DE", "EU", 10, &["r"]),
            host("b", "DE", "EU", 10, &["r"]),
        ];
        let (scan, mirrors) = sections(vec![repo("r", RepoKind::Ostree, "r")], hosts);
        let cat = Catalog::build(&scan, &mirrors);
        let order = [0u32, 1];
        let web = crate::catalog::Protocol::WEB;
        let mut out = Vec::new();
        write3(&cat, &cat.repos[0], &order, web, "D", &mut out);
        let xml = String::from_utf8(std::mem::take(&mut out)).unwrap();
        let a = xml
            .find("preference=\"100\">http://a/")
            .expect("a first at 100");
        let b = xml
            .find("preference=\"99\">http://b/")
            .expect("b next at 99");
        assert!(a < b, "{xml}");
        write4(&cat, &cat.repos[0], &order, web, "D", &mut out);
        let xml = String::from_utf8(out).unwrap();
        let a = xml.find("priority=\"1\">http://a/").expect("a first at 1");
        let b = xml.find("priority=\"2\">http://b/").expect("b next at 2");
        assert!(a < b, "{xml}");
    }

    #[test]
    fn ostree_metalinks_carry_only_what_ostree_accepts() {
        let xml = doc(
            RepoKind::Ostree,
            vec![
                "https://m/pub".into(),
                "ftp://m/pub".into(),
                "rsync://m/pub".into(),
            ],
            true,
            crate::Format::Metalink3,
        );
        assert!(!xml.contains("mm0:private"), "{xml}");
        assert!(!xml.contains("alternate"), "{xml}");
        assert!(xml.contains("<file name=\"summary\">"));
        assert_eq!(urls(&xml), ["https://m/pub/r/summary"]);
    }

    #[test]
    fn meta4_and_mirrorlist() {
        let xml = doc(
            RepoKind::Yum,
            vec!["http://m/pub".into()],
            false,
            crate::Format::Meta4,
        );
        assert!(xml.contains("<metalink xmlns=\"urn:ietf:params:xml:ns:metalink\">"));
        assert!(xml.contains("<hash type=\"sha-256\">"));
        assert!(
            xml.contains(
                "<url location=\"de\" priority=\"1\">http://m/pub/r/repodata/repomd.xml</url>"
            ),
            "{xml}"
        );
        let list = doc(
            RepoKind::Yum,
            vec!["http://m/pub".into(), "rsync://m/pub".into()],
            false,
            crate::Format::Mirrorlist,
        );
        assert_eq!(
            list,
            "# repo = r arch = x86_64 country = global\nhttp://m/pub/r/\n"
        );
    }

    #[test]
    fn failure_document_is_a_comment_only_metalink() {
        let xml = String::from_utf8(failure3("No repository for repo=a--b-", "D")).unwrap();
        assert!(
            xml.contains("<!-- No repository for repo=a- -b -->"),
            "{xml}"
        );
        assert!(urls(&xml).is_empty());
    }

    #[test]
    fn dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_806_777);
        assert_eq!(rfc3339(t), "2026-11-27T19:12:57Z");
        assert_eq!(rfc1123(t), "Fri, 27 Nov 2026 19:12:57 GMT");
    }
}
