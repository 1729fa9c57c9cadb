//! `metalink-emit serve`: MirrorManager's mirrorlist server, from one
//! manifest.
//!
//! Everything that does not depend on the client is computed when the
//! manifest is loaded ([`Catalog`]); a request parses its query, orders
//! the repository's hosts and appends precomputed fragments into a buffer
//! that becomes the body ([`request`]). One single-threaded runtime per
//! core, fed connections round-robin, so a request never changes threads.
//! The catalog sits behind an [`ArcSwap`]: a reload (file change or
//! SIGHUP) builds the new one off the request path and swaps it in
//! atomically, and a request keeps the catalog it started with.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::catalog::Catalog;
use crate::geoip::GeoIp;
use crate::ServeArgs;

mod access_log;
mod request;

use access_log::AccessLog;

/// What every worker reads: the current catalog and the fixed settings.
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
        log: AccessLog::new(quiet),
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
            let resp = request::handle(&shared, peer, &req);
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

/// Writes the access log out every second, so a quiet server's lines
/// still show up.
async fn flush_log(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        shared.log.flush();
    }
}
