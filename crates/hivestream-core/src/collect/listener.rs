//! The HTTP listener, facing the open internet: it accepts connections
//! itself (instead of `axum::serve`) to bound what a client can hold.
//!
//! - **Header timeout** (`header_timeout`, 10 s): a request head must
//!   arrive whole within it, or the connection is closed (hyper's timer,
//!   which also runs while a kept-alive connection waits for its next
//!   request).
//! - **Idle timeout** (`idle_timeout`, 60 s): a connection with no request
//!   being handled and no bytes moved for this long is closed (a client
//!   that stops reading its response, say); between requests the header
//!   timeout already closes a kept-alive connection.
//! - **Connection cap** (`max_connections`, by default 80% of the process's
//!   file descriptors, at most 10,000): at the cap, a new connection evicts
//!   the connection that has been quiet longest among those with no request
//!   in progress (a slow-header client before any real one), counted in
//!   `hivestream_http_connections_evicted_total` with a warning at most
//!   every 10 s; when every connection is busy, the new one is closed.
//!
//! ```text
//!  accept ──▶ at cap? ──evict the quietest idle conn──▶ spawn conn task
//!               │                                        (hyper http1, header timer,
//!               └──all busy: close the new one            activity + busy tracked)
//!  sweeper (1 s): close conns idle past idle_timeout
//! ```
//!
//! Shutdown: stop accepting, ask every connection to finish its request
//! and close, and wait for them (at most `body_timeout` + a moment).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::metrics::METRICS;

/// The client's address, as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// What the listener bounds.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// The default cap: 80% of the file descriptors the process may open, at
/// most 10,000 (the rest is for the WAL, spool files and S3 sockets).
pub fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    let nofile = if ok { lim.rlim_cur as usize } else { 1024 };
    (nofile / 5 * 4).clamp(16, 10_000)
}

/// Milliseconds since the listener started (activity clock).
fn now_ms(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// One open connection, as the registry sees it.
struct Entry {
    last_activity: Arc<AtomicU64>,
    busy: Arc<AtomicUsize>,
    abort: tokio::task::AbortHandle,
}

/// Every open connection.
#[derive(Default)]
struct Registry {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    last_warning: Option<Instant>,
}

impl Registry {
    /// Evicts the connection quiet longest among those with no request in
    /// progress; false when every one is busy.
    fn evict_quietest(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .filter(|(_, e)| e.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, e)| e.last_activity.load(Ordering::Acquire))
            .map(|(id, _)| *id);
        match victim.and_then(|id| self.conns.remove(&id)) {
            Some(e) => {
                e.abort.abort();
                METRICS.http_connections_evicted.inc();
                true
            }
            None => false,
        }
    }

    fn warn_at_cap(&mut self, cap: usize) {
        if self
            .last_warning
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.last_warning = Some(Instant::now());
            tracing::warn!(
                max_connections = cap,
                "connection cap reached: closing the quietest idle connections for new ones \
                 (slow or idle clients, or too low a max_connections)"
            );
        }
    }
}

/// A stream that notes when bytes last moved.
struct Tracked {
    inner: TcpStream,
    last_activity: Arc<AtomicU64>,
    epoch: Instant,
}

impl Tracked {
    fn touch(&self) {
        self.last_activity
            .store(now_ms(self.epoch), Ordering::Release);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Counts a request in progress on its connection while alive.
struct BusyGuard(Arc<AtomicUsize>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Binds `addr`; returns the listener and the address it got (the port,
/// when `addr` asked for any).
pub async fn bind(
    addr: std::net::SocketAddr,
) -> std::io::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let epoch = Instant::now();
    let registry = Arc::new(Mutex::new(Registry::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let sweeper = tokio::spawn(sweep_idle(Arc::clone(&registry), limits, epoch));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: wait for connections to close.
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let mut reg = registry.lock().unwrap_or_else(|e| e.into_inner());
        if reg.conns.len() >= limits.max_connections {
            reg.warn_at_cap(limits.max_connections);
            if !reg.evict_quietest() {
                METRICS.http_connections_refused.inc();
                continue; // every connection is busy: close this one
            }
        }
        let id = reg.next_id;
        reg.next_id += 1;
        let conn = Conn {
            id,
            peer,
            last_activity: Arc::new(AtomicU64::new(now_ms(epoch))),
            busy: Arc::new(AtomicUsize::new(0)),
            epoch,
        };
        let entry = (Arc::clone(&conn.last_activity), Arc::clone(&conn.busy));
        let task = tokio::spawn(conn.serve(
            stream,
            app.clone(),
            limits,
            (Arc::clone(&registry), stop_rx.clone()),
        ));
        reg.conns.insert(
            id,
            Entry {
                last_activity: entry.0,
                busy: entry.1,
                abort: task.abort_handle(),
            },
        );
        METRICS.http_connections.set(reg.conns.len() as u64);
    }
    sweeper.abort();
    let _ = stop_tx.send(true);
    drain(&registry).await;
}

/// Waits for open connections to finish (at most 30 s).
async fn drain(registry: &Mutex<Registry>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let open = registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .conns
            .len();
        if open == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Closes connections quiet past the idle timeout with no request running.
async fn sweep_idle(registry: Arc<Mutex<Registry>>, limits: ConnLimits, epoch: Instant) {
    let idle_ms = limits.idle_timeout.as_millis() as u64;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = now_ms(epoch);
        let mut reg = registry.lock().unwrap_or_else(|e| e.into_inner());
        reg.conns.retain(|_, e| {
            let idle = e.busy.load(Ordering::Acquire) == 0
                && now.saturating_sub(e.last_activity.load(Ordering::Acquire)) >= idle_ms;
            if idle {
                e.abort.abort();
            }
            !idle
        });
        METRICS.http_connections.set(reg.conns.len() as u64);
    }
}

/// One accepted connection.
struct Conn {
    id: u64,
    peer: SocketAddr,
    last_activity: Arc<AtomicU64>,
    busy: Arc<AtomicUsize>,
    epoch: Instant,
}

impl Conn {
    async fn serve(
        self,
        stream: TcpStream,
        app: Router,
        limits: ConnLimits,
        (registry, mut stop): (Arc<Mutex<Registry>>, watch::Receiver<bool>),
    ) {
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Tracked {
            inner: stream,
            last_activity: Arc::clone(&self.last_activity),
            epoch: self.epoch,
        });
        let (peer, busy) = (self.peer, Arc::clone(&self.busy));
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                busy.fetch_add(1, Ordering::AcqRel);
                let guard = BusyGuard(Arc::clone(&busy));
                req.extensions_mut().insert(PeerAddr(peer));
                let app = app.clone();
                async move {
                    let resp = tower::ServiceExt::oneshot(app, req).await;
                    drop(guard);
                    resp
                }
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true)
            .serve_connection(io, service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = stop.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.as_mut().await;
            }
        }
        let mut reg = registry.lock().unwrap_or_else(|e| e.into_inner());
        reg.conns.remove(&self.id);
        METRICS.http_connections.set(reg.conns.len() as u64);
    }
}
