//! Answering one request: the query, the client's place, the ordering
//! and the document. What a worker thread reuses between requests (the
//! ordering scratch, the generator, the dates) lives in a thread-local, so
//! the request path allocates little beyond the body.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};

use super::Shared;
use crate::catalog::{Catalog, Protocol, Repo};
use crate::format::TEXT;
use crate::geoip;
use crate::metalink;
use crate::query;
use crate::select::{self, Client, Scratch};
use crate::{Format, Header};

/// Per worker thread: the ordering scratch, the shuffle's generator, the
/// size of the last answer and the current second's dates.
struct Work {
    scratch: Scratch,
    rng: fastrand::Rng,
    last_len: usize,
    second: u64,
    pubdate: String,
    published: String,
}

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work {
        scratch: Scratch::default(),
        rng: fastrand::Rng::new(),
        last_len: 4096,
        second: 0,
        pubdate: String::new(),
        published: String::new(),
    });
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Metalink,
    Mirrorlist,
}

/// Answers `req` and logs it.
pub(super) fn handle(
    shared: &Shared,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    // The address that asked (X-Forwarded-For, else the peer): parsed
    // once, for the answer and the log.
    let client = client_ip(req, peer);
    let resp = respond(shared, client, req);
    shared.log.line(format_args!(
        "{} {} \"{} {}\" {} {}",
        peer.ip(),
        client,
        req.method(),
        req.uri(),
        resp.status().as_u16(),
        body_len(&resp)
    ));
    resp
}

fn body_len(resp: &Response<Full<Bytes>>) -> u64 {
    hyper::body::Body::size_hint(resp.body())
        .exact()
        .unwrap_or(0)
}

fn respond(shared: &Shared, asker: IpAddr, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let endpoint = match req.uri().path() {
        "/metalink" => Endpoint::Metalink,
        "/mirrorlist" => Endpoint::Mirrorlist,
        _ => {
            return simple(
                StatusCode::NOT_FOUND,
                "# not found: use /metalink or /mirrorlist\n",
            )
        }
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return simple(StatusCode::METHOD_NOT_ALLOWED, "# GET or HEAD only\n");
    }
    let q = match query::parse(req.uri().query().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return simple(StatusCode::BAD_REQUEST, &format!("# bad request: {e}\n")),
    };
    let cat = shared.catalog.load();
    WORK.with(|w| {
        let mut w = w.borrow_mut();
        let w = &mut *w;
        refresh_dates(w);
        let found = match &q.path {
            Some(p) => cat.by_path(p),
            None => cat.by_name(
                q.repo.as_deref().unwrap_or(""),
                q.arch.as_deref().unwrap_or(""),
            ),
        };
        let Some(idx) = found else {
            let what = match &q.path {
                Some(p) => format!("path={p}"),
                None => format!(
                    "repo={} arch={}",
                    q.repo.as_deref().unwrap_or(""),
                    q.arch.as_deref().unwrap_or("")
                ),
            };
            let msg = format!("No repository found for {what}");
            return match endpoint {
                Endpoint::Metalink => respond_bytes(
                    StatusCode::NOT_FOUND,
                    Format::Metalink3.content_type(),
                    metalink::failure3(&msg, &w.pubdate).into(),
                ),
                Endpoint::Mirrorlist => simple(StatusCode::NOT_FOUND, &format!("# {msg}\n")),
            };
        };
        let repo = &cat.repos[idx];
        let ip = q.ip.unwrap_or(asker);
        // country= beats GeoIP, as in MirrorManager.
        let place = match (&q.country, &shared.geoip) {
            (None, Some(db)) => db.locate(ip),
            _ => None,
        };
        let client = Client {
            ip: Some(crate::netblock::to_u128(ip)),
            country: q
                .country
                .as_deref()
                .or(place.as_ref().map(|p| geoip::as_str(&p.country))),
            continent: place
                .as_ref()
                .and_then(|p| p.continent.as_ref())
                .map(geoip::as_str),
            netblocks: q.netblocks,
        };
        let format = match (endpoint, q.meta4) {
            (Endpoint::Mirrorlist, _) => Format::Mirrorlist,
            (Endpoint::Metalink, true) => Format::Meta4,
            (Endpoint::Metalink, false) => Format::Metalink3,
        };
        let mut protocols = metalink::allowed(repo.scan.kind, format) & q.protocols;
        if q.redirect {
            protocols &= Protocol::WEB;
        }
        select::order(
            &cat,
            repo,
            &client,
            protocols,
            shared.min_mirrors,
            &mut w.rng,
            &mut w.scratch,
        );
        if q.redirect {
            return redirect(&cat, repo, &w.scratch.order, protocols);
        }
        let header = Header {
            pubdate: &w.pubdate,
            published: &w.published,
            country: client.country,
        };
        // A fresh buffer sized by the last answer becomes the body without
        // a copy.
        let mut buf = Vec::with_capacity(w.last_len + w.last_len / 8 + 256);
        format.write(&cat, repo, &w.scratch.order, protocols, &header, &mut buf);
        w.last_len = buf.len();
        respond_bytes(StatusCode::OK, format.content_type(), Bytes::from(buf))
    })
}

/// 302 to the metadata file on the first http(s) mirror in order.
fn redirect(cat: &Catalog, repo: &Repo, order: &[u32], protocols: u8) -> Response<Full<Bytes>> {
    // `order` was chosen among hosts with an http(s) URL in `protocols`.
    let target = order.iter().find_map(|&h| {
        cat.hosts[h as usize]
            .urls
            .iter()
            .find(|u| u.protocol.bit() & protocols != 0)
    });
    let Some(base) = target else {
        return simple(
            StatusCode::NOT_FOUND,
            "# no http(s) mirror for this repository\n",
        );
    };
    let location = format!("{}{}", base.plain, repo.file_suffix);
    let mut resp = simple(StatusCode::FOUND, &format!("# {location}\n"));
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            resp.headers_mut().insert(LOCATION, v);
            resp
        }
        Err(_) => simple(
            StatusCode::INTERNAL_SERVER_ERROR,
            "# mirror URL is not a valid header\n",
        ),
    }
}

/// The last X-Forwarded-For entry (the one our own proxy added), else the
/// peer. (`ip=` in the query overrides it for ordering.)
fn client_ip(req: &Request<Incoming>, peer: SocketAddr) -> IpAddr {
    req.headers()
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| peer.ip())
}

fn refresh_dates(w: &mut Work) {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if second != w.second {
        w.second = second;
        w.pubdate = metalink::rfc1123(now);
        w.published = metalink::rfc3339(now);
    }
}

fn simple(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    respond_bytes(status, TEXT, Bytes::copy_from_slice(text.as_bytes()))
}

fn respond_bytes(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
