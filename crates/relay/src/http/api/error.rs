//! The admin API's errors and their one mapping to HTTP. Internal details stay in the logs.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use relay_store::StoreError;
use serde_json::json;

use crate::admin::AdminError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the database is unavailable")]
    Unavailable,
    #[error("{0}")]
    Bitbucket(String),
    #[error("internal error")]
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Bitbucket(_) => StatusCode::BAD_GATEWAY,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = Json(json!({ "error": self.to_string() }));
        if matches!(self, Self::Unavailable) {
            // Long enough for a database restart, short enough for a script's retry loop.
            return (status, [(header::RETRY_AFTER, "5")], body).into_response();
        }
        (status, body).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::NotFound(what.to_owned()),
            StoreError::Conflict(what) => {
                Self::Conflict(format!("{what} conflicts with the current state"))
            }
            StoreError::Rejected(reason) => Self::Invalid(format!("refused: {reason}")),
            err if err.is_unavailable() => {
                tracing::error!(error = %err, "admin API: database unavailable");
                Self::Unavailable
            }
            err => {
                tracing::error!(error = %err, "admin API: database error");
                Self::Internal
            }
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::Invalid(message) => Self::Invalid(message),
            AdminError::NotFound(what) => Self::NotFound(what),
            AdminError::Refused(message) => Self::Conflict(message),
            AdminError::Store(err) => Self::from(err),
            AdminError::Bitbucket(message) => Self::Bitbucket(format!("Bitbucket: {message}")),
            AdminError::Secret(err) => {
                tracing::error!(error = %err, "admin API: secret error");
                Self::Internal
            }
        }
    }
}
