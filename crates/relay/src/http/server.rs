//! The accept loop: what axum's `serve` does, plus the limits a server facing the internet
//! needs.
//!
//! * **Header-read timeout.** A connection must deliver a complete request head within
//!   `RELAY_REQUEST_TIMEOUT_SECS` of being accepted, and again within that time of its previous
//!   answer (an idle keep-alive connection is closed the same way). The request timeout
//!   (`limits::limited`, around the router) starts only once the head is in, so without this
//!   a client that never finishes its headers would hold its socket forever.
//! * **Connection cap.** At most `RELAY_MAX_CONNECTIONS` connections are open; beyond that the
//!   loop stops accepting and new connections wait in the kernel's backlog until one closes,
//!   so the process never runs out of file descriptors (which would also stop the database
//!   pool and git from opening theirs).
//! * **Bounded drain.** On shutdown the listener closes, idle connections close at once,
//!   requests in flight get up to the request timeout to finish, and connections holding no
//!   request (a half-sent head) are dropped after a moment: a client cannot keep the process
//!   alive.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Room left under the open-files limit for everything that is not a client connection:
/// the database pool, git children's pipes, mirror pack files, logs.
const FD_HEADROOM: u64 = 256;
/// The default cap when the open-files limit allows it.
const DEFAULT_MAX_CONNECTIONS: u64 = 1024;
/// Time a connection with nothing in flight gets at shutdown to flush what it has written.
const FLUSH_GRACE: Duration = Duration::from_millis(250);
/// More headers than this is refused by hyper itself (431 without a body); the router's
/// own, lower limit answers first with a JSON body (see `limits`).
const HYPER_MAX_HEADERS: usize = 200;

#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Longest wait for a complete request head (after accepting, or after the previous
    /// answer on a keep-alive connection).
    pub header_timeout: Duration,
    /// Longest a request may take once its head is in, reading its body included (408 after
    /// it); Bitbucket itself gives up after 10 s.
    pub request_timeout: Duration,
    pub max_connections: usize,
    /// Longest a request in flight may take to finish once shutdown began.
    pub drain_timeout: Duration,
}

/// `RELAY_MAX_CONNECTIONS` when unset: 1024, or less when the process's open-files limit
/// (`ulimit -n`) leaves less than that after [`FD_HEADROOM`].
pub fn default_max_connections() -> usize {
    let limit = open_files_limit().unwrap_or(DEFAULT_MAX_CONNECTIONS + FD_HEADROOM);
    let cap = limit
        .saturating_sub(FD_HEADROOM)
        .clamp(16, DEFAULT_MAX_CONNECTIONS);
    usize::try_from(cap).unwrap_or(16)
}

/// The soft open-files limit, when there is one.
pub fn open_files_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains (see the module).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let stop = CancellationToken::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
        };
        let connection = serve_connection(stream, peer, router.clone(), limits, stop.clone());
        connections.spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    stop.cancel();
    let all_done = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.drain_timeout + FLUSH_GRACE * 2, all_done)
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the drain; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Accepting fails when the process is out of descriptors (EMFILE, ENFILE) or the peer gave
/// up before being accepted; the first passes, so wait a little rather than spin.
async fn accept_failed(err: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(error = %err, "cannot accept a connection; retrying shortly");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    limits: ServerLimits,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let counter = in_flight.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let guard = InFlight::enter(&counter);
        let router = router.clone();
        async move {
            // What `into_make_service_with_connect_info` gives axum: the client's address
            // (the console's login limit counts per address).
            let mut request = request.map(Body::new);
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let response = super::limits::limited(request, router, limits.request_timeout).await;
            // The request counts as in flight until its answer has been written out.
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(Guarded {
                    body,
                    _guard: guard,
                })
            }))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(HYPER_MAX_HEADERS)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "connection closed with an error");
            }
            return;
        }
        _ = stop.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    let finish = async {
        loop {
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            if in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
        }
        let _ = tokio::time::timeout(FLUSH_GRACE, connection.as_mut()).await;
    };
    let _ = tokio::time::timeout(limits.drain_timeout, finish).await;
}

/// Counts a request of one connection from its head until its answer's body is dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted while hyper writes it.
struct Guarded {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
