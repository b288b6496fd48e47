//! Limits on what one request may be: its target, its headers, its time. Each refusal is
//! JSON (`error`, `outcome`) like every other answer of the relay.
//!
//! hyper refuses on its own, without a body, what is beyond its parser's bounds (a target
//! over 64 KB, more than 200 headers, a head over about 400 KB); these limits are lower, so
//! anything short of that gets a JSON answer.

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tower::ServiceExt;

/// Longest request target (path and query). Hook and API paths are far shorter.
pub(super) const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header bytes (names and values) in one request, and most headers.
pub(super) const MAX_HEADER_BYTES: usize = 32 * 1024;
pub(super) const MAX_HEADERS: usize = 100;

pub(super) fn refusal(status: StatusCode, outcome: &str, error: &str) -> Response {
    (status, Json(json!({ "error": error, "outcome": outcome }))).into_response()
}

/// What every request goes through before and around the router: 414 and 431 before any
/// handler runs, 408 once the request (reading its body included) has taken longer than
/// `timeout`, so a sender that trickles its body in is cut off here (the head has its own
/// timeout in `server`). Called by the server for each request rather than layered on the
/// router as middleware: two `from_fn` layers cost every webhook a boxed future and a clone
/// of its route each (about 1 µs a webhook in a `perf` profile; docs/PERFORMANCE.md,
/// seventeenth session).
pub(super) async fn limited(request: Request, router: Router, timeout: Duration) -> Response {
    if let Some(refused) = head_refusal(&request) {
        return refused;
    }
    match tokio::time::timeout(timeout, router.oneshot(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => refusal(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            &format!(
                "the request did not arrive within {} s",
                timeout.as_secs_f64()
            ),
        ),
    }
}

fn head_refusal(request: &Request) -> Option<Response> {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Some(refusal(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        ));
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return Some(refusal(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            &format!(
                "the request has more than {MAX_HEADERS} headers or {MAX_HEADER_BYTES} bytes of them"
            ),
        ));
    }
    None
}
