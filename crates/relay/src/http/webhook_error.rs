//! The webhook endpoint's failures and the one place they become HTTP answers.
//!
//! Client mistakes get a 4xx with a message that says what to fix; trouble on our side gets a
//! 503 (Bitbucket retries 5xx) with no internal detail.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use relay_core::SignatureError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub(super) enum WebhookError {
    #[error("unknown integration")]
    UnknownIntegration,
    #[error("{0}")]
    Signature(SignatureError),
    #[error("the X-Event-Key header is missing")]
    MissingEventKey,
    #[error("the {0} header is not valid")]
    InvalidHeader(&'static str),
    #[error("the body is not valid JSON: {0}")]
    MalformedBody(String),
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the body could not be read")]
    UnreadableBody,
    #[error("the relay cannot store deliveries right now")]
    Unavailable,
}

impl WebhookError {
    /// Metric label and log field.
    pub(super) fn outcome(&self) -> &'static str {
        match self {
            Self::UnknownIntegration => "unknown_integration",
            Self::Signature(err) => err.label(),
            Self::MissingEventKey | Self::InvalidHeader(_) => "bad_header",
            Self::MalformedBody(_) => "malformed",
            Self::TooLarge { .. } => "too_large",
            Self::UnreadableBody => "unreadable_body",
            Self::Unavailable => "unavailable",
        }
    }

    pub(super) fn status(&self) -> StatusCode {
        match self {
            Self::UnknownIntegration => StatusCode::NOT_FOUND,
            Self::Signature(_) => StatusCode::UNAUTHORIZED,
            Self::MissingEventKey
            | Self::InvalidHeader(_)
            | Self::MalformedBody(_)
            | Self::UnreadableBody => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.to_string(), "outcome": self.outcome() }));
        if matches!(self, Self::Unavailable) {
            return (self.status(), [(header::RETRY_AFTER, "5")], body).into_response();
        }
        (self.status(), body).into_response()
    }
}
