//! `metalink-emit serve`: MirrorManager's mirrorlist server, from one
//! manifest.
//!
//! Everything that does not depend on the client is computed when the
//! manifest is loaded ([`Catalog`]); a request parses its query, orders
//! the repository's hosts and appends precomputed fragments into a buffer
//! that becomes the body. One single-threaded runtime per core, fed
//! connections round-robin, so a request never changes threads. The catalog sits behind an [`ArcSwap`]: a reload
//! (file change or SIGHUP) builds the new one off the request path and
//! swaps it in atomically, and a request keeps the catalog it started with.

use std::cell::RefCell;
use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::catalog::Catalog;
use crate::geoip::{self, GeoIp};
use crate::metalink;
use crate::query;
use crate::select::{self, Client, Scratch};
use crate::{Format, ServeArgs};

const METALINK3: &str = "application/metalink+xml";
const METALINK4: &str = "application/metalink4+xml";
const TEXT: &str = "text/plain; charset=utf-8";
/// Access log bytes buffered before a write to stderr.
const LOG_BUFFER: usize = 64 * 1024;

struct Shared {
    catalog: ArcSwap<Catalog>,
    geoip: Option<GeoIp>,
    min_mirrors: usize,
    log: AccessLog,
}

/// Loads `path` and builds its catalog.
fn load(path: &Path) -> anyhow::Result<Catalog> {
    let manifest = releng_manifest::read_input(&releng_manifest::Input::File(path.into()))?;
    crate::catalog_of(&manifest).with_context(|| format!("manifest {}", path.display()))
}

/// Serves until SIGTERM or SIGINT; `quiet` (`-q`) also silences the access
/// log.
pub fn run(args: &ServeArgs, quiet: bool) -> anyhow::Result<()> {
    let catalog = load(&args.manifest)?;
    log::info!(
        "{}: {} repositories, {} usable hosts",
        args.manifest.display(),
        catalog.repos.len(),
        catalog.hosts.len()
    );
    let geoip = args.geoip.as_deref().map(GeoIp::open).transpose()?;
    let shared = Arc::new(Shared {
        catalog: ArcSwap::from_pointee(catalog),
        geoip,
        min_mirrors: args.min_mirrors,
        log: AccessLog {
            off: quiet,
            ..AccessLog::default()
        },
    });
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    let result = serve(args, threads, &shared);
    shared.log.flush();
    result
}

type Conn = (std::net::TcpStream, SocketAddr);

/// The main thread accepts and deals connections round-robin to one
/// single-threaded runtime per worker thread: every worker gets the same
/// share (SO_REUSEPORT's hashing can leave one with far more, and its
/// queue sets the tail latency) and a request never changes threads. The
/// main thread also handles signals, reloads and the log.
fn serve(args: &ServeArgs, threads: usize, shared: &Arc<Shared>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let listener = rt
        .block_on(TcpListener::bind(args.listen))
        .with_context(|| format!("--listen {}", args.listen))?;
    let addr = listener.local_addr()?;
    let mut queues = Vec::with_capacity(threads);
    let mut workers = Vec::with_capacity(threads);
    for i in 0..threads {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Conn>();
        let shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name(format!("serve-{i}"))
            .spawn(move || -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting a worker runtime")?;
                rt.block_on(worker_loop(rx, shared));
                Ok(())
            })
            .context("starting a worker thread")?;
        queues.push(tx);
        workers.push(worker);
    }
    let manifest = args.manifest.clone();
    let served = rt.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        tokio::spawn(watch(manifest, shared.clone(), hup));
        tokio::spawn(flush_log(shared.clone()));
        log::debug!("{threads} worker threads");
        log::info!("listening on http://{addr}");
        let mut next = 0;
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: pause, don't spin.
                        log::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = term.recv() => break,
                _ = int.recv() => break,
            };
            let _ = stream.set_nodelay(true);
            let stream = stream.into_std().context("detaching a connection")?;
            if queues[next].send((stream, peer)).is_err() {
                anyhow::bail!("worker thread {next} is gone");
            }
            next = (next + 1) % queues.len();
        }
        log::info!("shutting down: finishing open requests");
        anyhow::Ok(())
    });
    // Closing the queues tells the workers to finish.
    drop(queues);
    for w in workers {
        match w.join() {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("a worker thread panicked"),
        }
    }
    served
}

/// Serves the connections the main thread hands over, until it closes the
/// queue; then lets open requests finish (10 s at most).
async fn worker_loop(mut queue: tokio::sync::mpsc::UnboundedReceiver<Conn>, shared: Arc<Shared>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // A client that trickles its headers must not hold a connection forever.
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    while let Some((stream, peer)) = queue.recv().await {
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("{peer}: {e}");
                continue;
            }
        };
        let shared = shared.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let resp = handle(&shared, peer, &req);
            async move { Ok::<_, Infallible>(resp) }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        log::warn!("connections still open after 10 s: closed");
    }
}

/// Reloads the manifest when its file changes (checked every second) or
/// on SIGHUP. A manifest that fails to load is logged and the old catalog
/// kept.
async fn watch(path: PathBuf, shared: Arc<Shared>, mut hup: tokio::signal::unix::Signal) {
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            _ = hup.recv() => true,
        };
        let now = stamp(&path);
        if !forced && now == last {
            continue;
        }
        last = now;
        let p = path.clone();
        match tokio::task::spawn_blocking(move || load(&p)).await {
            Ok(Ok(cat)) => {
                log::info!(
                    "reloaded {}: {} repositories, {} usable hosts",
                    path.display(),
                    cat.repos.len(),
                    cat.hosts.len()
                );
                shared.catalog.store(Arc::new(cat));
            }
            Ok(Err(e)) => log::error!("{e:#}; still serving the previous manifest"),
            Err(e) => log::error!("reloading {}: {e}", path.display()),
        }
    }
}

/// What identifies a version of the file: a rename gives a new inode, an
/// in-place write a new mtime or size.
fn stamp(path: &Path) -> Option<(u64, i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
}

async fn flush_log(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        shared.log.flush();
    }
}

/// Access log lines gathered in memory and written to stderr in blocks:
/// a write per request would cost more than the request.
#[derive(Default)]
struct AccessLog {
    /// Off under `-q`: only errors then.
    off: bool,
    buf: Mutex<Vec<u8>>,
}

impl AccessLog {
    fn line(&self, args: std::fmt::Arguments) {
        if self.off {
            return;
        }
        let full = {
            let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
            let _ = buf.write_fmt(args);
            buf.push(b'\n');
            if buf.len() >= LOG_BUFFER {
                Some(std::mem::take(&mut *buf))
            } else {
                None
            }
        };
        if let Some(block) = full {
            let _ = std::io::stderr().write_all(&block);
        }
    }

    fn flush(&self) {
        let block = std::mem::take(&mut *self.buf.lock().unwrap_or_else(|e| e.into_inner()));
        if !block.is_empty() {
            let _ = std::io::stderr().write_all(&block);
        }
    }
}

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

fn handle(shared: &Shared, peer: SocketAddr, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let resp = respond(shared, peer, req);
    let client = client_ip(None, req, peer);
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

fn respond(shared: &Shared, peer: SocketAddr, req: &Request<Incoming>) -> Response<Full<Bytes>> {
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
                    METALINK3,
                    metalink::failure3(&msg, &w.pubdate).into(),
                ),
                Endpoint::Mirrorlist => simple(StatusCode::NOT_FOUND, &format!("# {msg}\n")),
            };
        };
        let repo = &cat.repos[idx];
        let ip = client_ip(q.ip, req, peer);
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
            protocols &= crate::catalog::Protocol::WEB;
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
        // A fresh buffer sized by the last answer becomes the body without
        // a copy.
        let mut buf = Vec::with_capacity(w.last_len + w.last_len / 8 + 256);
        let content_type = match format {
            Format::Metalink3 => {
                metalink::write3(
                    &cat,
                    repo,
                    &w.scratch.order,
                    protocols,
                    &w.pubdate,
                    &mut buf,
                );
                METALINK3
            }
            Format::Meta4 => {
                metalink::write4(
                    &cat,
                    repo,
                    &w.scratch.order,
                    protocols,
                    &w.published,
                    &mut buf,
                );
                METALINK4
            }
            Format::Mirrorlist => {
                crate::mirrorlist::write(
                    &cat,
                    repo,
                    &w.scratch.order,
                    protocols,
                    client.country,
                    &mut buf,
                );
                TEXT
            }
        };
        w.last_len = buf.len();
        respond_bytes(StatusCode::OK, content_type, Bytes::from(buf))
    })
}

/// 302 to the metadata file on the first http(s) mirror in order.
fn redirect(
    cat: &Catalog,
    repo: &crate::catalog::Repo,
    order: &[u32],
    protocols: u8,
) -> Response<Full<Bytes>> {
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

/// `ip=` when given, else the last X-Forwarded-For entry (the one our own
/// proxy added), else the peer.
fn client_ip(given: Option<IpAddr>, req: &Request<Incoming>, peer: SocketAddr) -> IpAddr {
    given
        .or_else(|| {
            req.headers()
                .get_all("x-forwarded-for")
                .iter()
                .next_back()?
                .to_str()
                .ok()?
                .rsplit(',')
                .next()?
                .trim()
                .parse()
                .ok()
        })
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
