//! `POST /webhooks/bitbucket/{integration_id}`: verify, dedupe, store, acknowledge.
//!
//! Nothing is acknowledged before it is durable: the 202 is sent only after the INSERT has
//! committed. Parsing into events happens later, in the processor, so Bitbucket never waits on
//! anything but one write.

use std::time::Instant;

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use relay_core::{verify_signature, IntegrationId, IntegrationType};
use relay_store::deliveries::{InsertError, InsertOutcome, NewDelivery};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::Instrument;

use super::webhook_error::WebhookError;
use super::AppState;

const PING_EVENT: &str = "diagnostics:ping";
/// Headers kept with a delivery. Never the signature: it is a credential-derived value.
const KEPT_HEADERS: &[&str] = &[
    "x-event-key",
    "x-request-uuid",
    "x-request-id",
    "x-hook-uuid",
    "x-attempt-number",
    "user-agent",
    "content-type",
];

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/webhooks/bitbucket/{integration_id}", post(receive))
}

async fn receive(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    mut request: Request,
) -> Response {
    let started = Instant::now();
    // Taken rather than extracted as a `HeaderMap`, which would copy them; the body is then
    // read under the same limit (`DefaultBodyLimit`, an extension of the request).
    let headers = std::mem::take(request.headers_mut());
    let body = Bytes::from_request(request, &state).await;
    let mut labels = Labels::default();
    // The span is opened with every field it will carry, once they are known to be valid:
    // recording a field later costs the JSON log format a parse and a rewrite of the span's
    // fields each time (docs/PERFORMANCE.md, twenty-first session). What is learnt later
    // (request id, delivery id) goes on the events that report it.
    let (outcome, response) = match target(&raw_id, &headers) {
        Ok((id, event_key)) => {
            let span = tracing::info_span!(
                "webhook",
                integration.id = id.as_str(),
                event.key = event_key,
            );
            let handled = handle(&state, &id, event_key, &headers, body, &mut labels);
            async { respond(handled.await) }.instrument(span).await
        }
        Err(err) => respond(Err(err)),
    };
    state.metrics.record_delivery(
        &labels.integration,
        &labels.event_key,
        outcome,
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The integration named by the path and the event named by `X-Event-Key`, checked in that
/// order.
fn target<'h>(
    raw_id: &str,
    headers: &'h HeaderMap,
) -> Result<(IntegrationId, &'h str), WebhookError> {
    let id = IntegrationId::parse(raw_id).map_err(|_| WebhookError::UnknownIntegration)?;
    Ok((id, event_key(headers)?))
}

/// The answer, with a log line for a refusal.
fn respond(result: Result<Accepted, WebhookError>) -> (&'static str, Response) {
    match result {
        Ok(accepted) => (accepted.outcome, accepted.into_response()),
        Err(err) => {
            let outcome = err.outcome();
            match err {
                WebhookError::Unavailable => tracing::error!(outcome, "{err}"),
                _ => tracing::warn!(outcome, "webhook rejected: {err}"),
            }
            (outcome, err.into_response())
        }
    }
}

struct Labels {
    integration: String,
    event_key: String,
}

impl Default for Labels {
    fn default() -> Self {
        Self {
            integration: "unknown".into(),
            event_key: "unverified".into(),
        }
    }
}

struct Accepted {
    outcome: &'static str,
    status: StatusCode,
    delivery_id: Option<i64>,
}

/// The answer's body: `{"status": ..., "delivery_id": ...}`, serialized without building a
/// JSON value first.
#[derive(Serialize)]
struct Acknowledgement {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_id: Option<i64>,
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        let body = Acknowledgement {
            status: self.outcome,
            delivery_id: self.delivery_id,
        };
        (self.status, Json(body)).into_response()
    }
}

async fn handle(
    state: &AppState,
    id: &IntegrationId,
    event_key: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    labels: &mut Labels,
) -> Result<Accepted, WebhookError> {
    if !state.schema_ready() {
        return Err(WebhookError::Unavailable);
    }
    let credentials = state
        .credentials
        .get(&state.pool, &state.key, id.as_str())
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "cannot look up the integration's webhook secret");
            WebhookError::Unavailable
        })?
        .ok_or(WebhookError::UnknownIntegration)?;
    labels.integration = id.to_string();

    // Bitbucket Server's "Test connection" is unsigned and carries no event: acknowledge it so
    // the admin sees the URL works, and store nothing.
    if event_key == PING_EVENT {
        labels.event_key = PING_EVENT.into();
        tracing::info!("answered a diagnostics ping");
        return Ok(Accepted {
            outcome: "ping",
            status: StatusCode::OK,
            delivery_id: None,
        });
    }

    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            WebhookError::TooLarge {
                limit: state.max_body_bytes,
            }
        } else {
            WebhookError::UnreadableBody
        }
    })?;

    let matched = verify(state, id.as_str(), &credentials, &body, headers).await?;
    state.metrics.record_secret_verification(matched);
    labels.event_key = event_key.to_owned();

    serde_json::from_slice::<serde::de::IgnoredAny>(&body)
        .map_err(|e| WebhookError::MalformedBody(e.to_string()))?;

    let request_id = request_id(headers, credentials.kind)?;
    let delivery = NewDelivery {
        integration_id: id.to_string(),
        request_id: request_id.map(str::to_owned),
        event_key: event_key.to_owned(),
        headers: kept_headers(headers),
        body,
    };
    store(state, delivery, request_id).await
}

/// Hands a verified delivery to the group-commit writer and answers once it is durable.
async fn store(
    state: &AppState,
    delivery: NewDelivery,
    request_id: Option<&str>,
) -> Result<Accepted, WebhookError> {
    let bytes = delivery.body.len();
    let outcome = state
        .ingestor
        .store(delivery)
        .await
        .map_err(|err| match err {
            InsertError::UnknownIntegration => WebhookError::UnknownIntegration,
            err => {
                tracing::error!(request.id = request_id, error = %err, "storing the delivery failed");
                WebhookError::Unavailable
            }
        })?;
    let (outcome, status, delivery_id) = match outcome {
        InsertOutcome::Stored(id) => {
            tracing::info!(
                delivery.id = id,
                request.id = request_id,
                bytes,
                "delivery stored"
            );
            ("stored", StatusCode::ACCEPTED, id)
        }
        InsertOutcome::Duplicate(id) => {
            tracing::info!(
                delivery.id = id,
                request.id = request_id,
                "duplicate delivery ignored"
            );
            ("duplicate", StatusCode::OK, id)
        }
    };
    Ok(Accepted {
        outcome,
        status,
        delivery_id: Some(delivery_id),
    })
}

/// Event keys are short tokens like `repo:push` or `pr:reviewer:needs_work`.
fn event_key(headers: &HeaderMap) -> Result<&str, WebhookError> {
    let value = headers
        .get("x-event-key")
        .ok_or(WebhookError::MissingEventKey)?;
    let key = value
        .to_str()
        .map_err(|_| WebhookError::InvalidHeader("X-Event-Key"))?
        .trim();
    let valid = !key.is_empty()
        && key.len() <= 100
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'.'));
    // The relay's own keys (snapshots, transitions); nobody may post one.
    if !valid || relay_core::event::is_internal(key) {
        return Err(WebhookError::InvalidHeader("X-Event-Key"));
    }
    Ok(key)
}

/// Cloud names it `X-Request-UUID`, Server `X-Request-Id`; the integration's own kind is tried
/// first and the other accepted too, since proxies sometimes rename.
fn request_id(headers: &HeaderMap, kind: IntegrationType) -> Result<Option<&str>, WebhookError> {
    let order = match kind {
        IntegrationType::Server => [
            ("x-request-id", "X-Request-Id"),
            ("x-request-uuid", "X-Request-UUID"),
        ],
        IntegrationType::Cloud => [
            ("x-request-uuid", "X-Request-UUID"),
            ("x-request-id", "X-Request-Id"),
        ],
    };
    for (name, display) in order {
        if let Some(value) = headers.get(name) {
            let id = value
                .to_str()
                .map_err(|_| WebhookError::InvalidHeader(display))?
                .trim();
            if id.is_empty() || id.len() > 200 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(WebhookError::InvalidHeader(display));
            }
            return Ok(Some(id));
        }
    }
    tracing::warn!("delivery has no request id; it cannot be deduplicated");
    Ok(None)
}

fn kept_headers(headers: &HeaderMap) -> Value {
    let mut kept = Map::new();
    for name in KEPT_HEADERS {
        if let Some(value) = headers.get(*name).and_then(|v| v.to_str().ok()) {
            kept.insert((*name).to_owned(), Value::String(value.to_owned()));
        }
    }
    Value::Object(kept)
}

/// Verifies the signature; when the cached secrets refuse it, they are read again once (it
/// may be signed with a secret rotated since they were cached).
async fn verify(
    state: &AppState,
    id: &str,
    credentials: &super::credentials::Credentials,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<&'static str, WebhookError> {
    match verify_with_grace(credentials, body, headers) {
        Ok(matched) => Ok(matched),
        Err(err) => match state.credentials.refresh(&state.pool, &state.key, id).await {
            Ok(Some(Some(fresh))) => {
                verify_with_grace(&fresh, body, headers).map_err(WebhookError::Signature)
            }
            _ => Err(WebhookError::Signature(err)),
        },
    }
}

/// Checks the signature with the current secret and, while a rotation's grace lasts, the
/// previous one (Bitbucket may still hold deliveries signed with it). Returns which matched.
fn verify_with_grace(
    credentials: &super::credentials::Credentials,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<&'static str, relay_core::SignatureError> {
    let signature = headers.get("x-hub-signature").map(|v| v.as_bytes());
    let current = verify_signature(
        credentials.webhook_secret.expose_secret().as_bytes(),
        body,
        signature,
    );
    match (current, &credentials.previous_webhook_secret) {
        (Ok(()), _) => Ok("current"),
        (Err(err), Some((previous, until))) if *until > chrono::Utc::now() => {
            verify_signature(previous.expose_secret().as_bytes(), body, signature)
                .map(|()| "previous")
                .map_err(|_| err)
        }
        (Err(err), _) => Err(err),
    }
}
