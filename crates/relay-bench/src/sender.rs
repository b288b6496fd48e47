//! One sender: a plain HTTP/1.1 connection kept alive, sending its next request as soon as
//! the last is answered, as wrk does. The load generator shares the two cores with what it
//! measures, so it goes without a client's pool, URL handling and redirects (reqwest's cost
//! `perf` showed in every request), and everything but the request id is prepared once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// A fixture ready to send: event key, body, signature.
pub(crate) type Prepared = (HeaderValue, Bytes, HeaderValue);

/// Where and what a sender sends.
pub(crate) struct Target {
    pub addr: std::net::SocketAddr,
    pub host: HeaderValue,
    pub path: String,
    pub requests: std::sync::Arc<Vec<Prepared>>,
    pub prefix: String,
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);
static JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Sends until `deadline`, reconnecting when the server closes the connection; returns the
/// latency of every 202 and how many requests sent got anything else (or no answer). A
/// connection found closed before a request goes out (idle, or closed after an answer) is
/// replaced without counting: nothing was sent on it.
pub(crate) async fn send_until(target: &Target, deadline: Instant) -> (Vec<Duration>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    while Instant::now() < deadline {
        let Some(mut connection) = connect(target.addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while Instant::now() < deadline {
            if connection.ready().await.is_err() {
                break;
            }
            let sent = Instant::now();
            match send_one(target, &mut connection).await {
                Ok(StatusCode::ACCEPTED) => latencies.push(sent.elapsed()),
                // Not stored now (a 200 duplicate, a refusal): an error, not a latency.
                Ok(_) => errors += 1,
                Err(()) => {
                    errors += 1;
                    break;
                }
            }
        }
    }
    (latencies, errors)
}

async fn connect(addr: std::net::SocketAddr) -> Option<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// One request on a ready connection; `Err` when the connection failed under it.
async fn send_one(
    target: &Target,
    connection: &mut SendRequest<Full<Bytes>>,
) -> Result<StatusCode, ()> {
    let id = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    let (event_key, body, signature) =
        &target.requests[usize::try_from(id).unwrap_or(0) % target.requests.len()];
    let request_id = HeaderValue::from_str(&format!("{}{id}", target.prefix))
        .expect("the prefix was checked when the target was built");
    let request = Request::post(target.path.as_str())
        .header(HOST, target.host.clone())
        .header(CONTENT_TYPE, JSON.clone())
        .header("x-event-key", event_key.clone())
        .header("x-request-uuid", request_id)
        .header("x-hub-signature", signature.clone())
        .body(Full::new(body.clone()))
        .map_err(|_| ())?;
    let response = connection.send_request(request).await.map_err(|_| ())?;
    let status = response.status();
    response.into_body().collect().await.map_err(|_| ())?;
    Ok(status)
}
