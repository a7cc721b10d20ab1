//! The HTTP/1.1 server in front of the router, with the limits a port reachable from the internet needs:
//! - a client must send a request's head within [`Limits::head_timeout`] (slow clients, and idle keep-alive
//!   connections, are dropped), and a body within [`Limits::body_timeout`] once the head is in (else 408);
//! - a request head may be at most [`MAX_HEAD_BYTES`] with at most [`MAX_HEADERS`] headers (else 431);
//! - at most [`Limits::max_connections`] connections are served at once: at the limit the server stops accepting,
//!   and new connections wait in the kernel's listen queue until one closes (each idle one closes within the head
//!   timeout), so a flood of connections costs neither memory nor file descriptors beyond the limit;
//! - on shutdown, in-flight requests finish (streams end on the app's shutdown token); dropping the
//!   [`serve`] future closes every connection at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// Time limits for clients (`--head-timeout`, `--body-timeout`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time allowed for a request's head, from the first moment the connection waits for one.
    pub head_timeout: Duration,
    /// Time allowed for a request's body, once its head has arrived.
    pub body_timeout: Duration,
    /// Connections served at once (at least 1).
    pub max_connections: usize,
}
/// The largest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// The most headers a request may carry.
pub const MAX_HEADERS: usize = 64;
/// How long to wait before accepting again after `accept` failed (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one "connection limit reached" warning this often.
const LIMIT_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `shutdown`, then waits for in-flight requests to finish.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, shutdown: CancellationToken) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(limits.body_timeout));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut warned: Option<Instant> = None;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if warned.is_none_or(|at| at.elapsed() >= LIMIT_WARNING_EVERY) {
                    warned = Some(Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_closed) => break,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connections so the set stays as small as the live ones.
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection; retrying shortly");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut router = router.clone();
            async move { router.call(request.map(Body::new)).await }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            let result = connection.await;
            drop(slot);
            result
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
