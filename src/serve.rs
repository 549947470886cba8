//! Accepting HTTP connections (plain or TLS) under `--web.max-connections`.
//!
//! Prometheus blocks `accept` at the limit, so a few hundred slow or idle
//! clients lock out health checks and Grafana. Here a connection counts as
//! *busy* from the moment a request reaches the router until its response
//! body is finished; everything else (a TLS handshake, a keep-alive wait, a
//! request head still trickling in) is *idle*. At the limit, a new
//! connection closes the oldest idle one and takes its place; only when
//! every connection is busy with a request is the new one closed at once.
//! So 2,000 trickling clients cannot keep `/-/ready` out, and no request
//! already being answered is ever cut.

use crate::metrics::Metrics;
use crate::state::AppState;
use axum::body::Body;
use axum::http::Request;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
use tower::ServiceExt as _;

/// Prometheus' default `--web.max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How one connection is doing.
struct Slot {
    /// Requests being answered (router called, response body not finished).
    busy: AtomicUsize,
    /// Told to close (the connection is idle and its slot is wanted).
    close: Notify,
}

/// The open connections, oldest first.
struct Registry {
    max: usize,
    open: Mutex<BTreeMap<u64, Arc<Slot>>>,
}

impl Registry {
    /// Registers a new connection; `None` when every slot is busy. At the
    /// limit the oldest idle connection is told to close and replaced.
    fn admit(&self, id: u64, metrics: &Metrics) -> Option<Arc<Slot>> {
        let mut open = self.open.lock();
        if open.len() >= self.max {
            let idle = open
                .iter()
                .find(|(_, s)| s.busy.load(Ordering::Acquire) == 0)
                .map(|(&k, _)| k);
            match idle.and_then(|k| open.remove(&k)) {
                Some(victim) => {
                    victim.close.notify_one();
                    metrics.http_connections_evicted.add(1);
                }
                None => {
                    metrics.http_connections_refused.add(1);
                    return None;
                }
            }
        }
        let slot = Arc::new(Slot {
            busy: AtomicUsize::new(0),
            close: Notify::new(),
        });
        open.insert(id, slot.clone());
        metrics
            .http_connections_open
            .store(open.len() as u64, Ordering::Relaxed);
        Some(slot)
    }

    /// At shutdown: closes idle connections at once and waits up to `limit`
    /// for the requests being answered.
    async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let busy = {
                let open = self.open.lock();
                for s in open.values() {
                    s.close.notify_one();
                }
                open.values().any(|s| s.busy.load(Ordering::Acquire) > 0)
            };
            if !busy || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn leave(&self, id: u64, metrics: &Metrics) {
        let mut open = self.open.lock();
        open.remove(&id);
        metrics
            .http_connections_open
            .store(open.len() as u64, Ordering::Relaxed);
    }
}

/// Keeps its connection busy while alive (held by the response body).
struct BusyGuard(Arc<Slot>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection busy until it is finished.
struct GuardedBody {
    inner: Body,
    _guard: BusyGuard,
}

impl axum::body::HttpBody for GuardedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Connection settings.
pub struct ServeOptions {
    /// `--web.max-connections` (0: no limit).
    pub max_connections: usize,
    /// `--web.read-timeout`: longest a request head may take to arrive.
    pub read_timeout: Duration,
    /// TLS, when the web config file has it.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Serve HTTP/2 too (`http_server_config.http2`, default true).
    pub http2: bool,
}

/// Serves `app` on `listener` until `shutdown` resolves; running requests
/// are not waited for (the caller gives them time before closing storage).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    opts: ServeOptions,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let registry = Arc::new(Registry {
        max: if opts.max_connections == 0 {
            usize::MAX
        } else {
            opts.max_connections
        },
        open: Mutex::new(BTreeMap::new()),
    });
    let acceptor = opts.tls.map(tokio_rustls::TlsAcceptor::from);
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(opts.read_timeout);
    if !opts.http2 {
        builder = builder.http1_only();
    }
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    let mut next_id = 0u64;
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: do not spin on them.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => {
                registry.drain(Duration::from_secs(10)).await;
                return;
            }
        };
        next_id += 1;
        let id = next_id;
        let Some(slot) = registry.admit(id, &state.metrics) else {
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (app, registry, state, acceptor, builder) = (
            app.clone(),
            registry.clone(),
            state.clone(),
            acceptor.clone(),
            builder.clone(),
        );
        tokio::spawn(async move {
            let s = slot.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                s.busy.fetch_add(1, Ordering::AcqRel);
                let guard = BusyGuard(s.clone());
                let app = app.clone();
                async move {
                    let resp = match app.oneshot(req.map(Body::new)).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    };
                    Ok::<_, std::convert::Infallible>(resp.map(|b| {
                        Body::new(GuardedBody {
                            inner: b,
                            _guard: guard,
                        })
                    }))
                }
            });
            let conn = async {
                match acceptor {
                    Some(acceptor) => {
                        let tls = match tokio::time::timeout(
                            Duration::from_secs(10),
                            acceptor.accept(tcp),
                        )
                        .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                        let _ = builder
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                            .await;
                    }
                    None => {
                        let _ = builder
                            .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                            .await;
                    }
                }
            };
            tokio::pin!(conn);
            loop {
                tokio::select! {
                    _ = &mut conn => break,
                    // Evicted while idle. A request that arrived in the
                    // meantime is answered first (the slot is already given
                    // away, so the connection closes after it at the latest
                    // when the client goes).
                    _ = slot.close.notified() => {
                        if slot.busy.load(Ordering::Acquire) == 0 {
                            break;
                        }
                    }
                }
            }
            registry.leave(id, &state.metrics);
        });
    }
}
