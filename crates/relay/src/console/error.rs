//! What a console request can fail with, shown as a page. Internal details stay in the logs.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use relay_store::StoreError;

use crate::admin::AdminError;

#[derive(Debug, thiserror::Error)]
pub(super) enum ConsoleError {
    #[error("{0} not found")]
    NotFound(String),
    /// A request no console page sends (a hand-made URL or form).
    #[error("{0}")]
    BadRequest(String),
    /// Not possible in the current state; the message says why.
    #[error("{0}")]
    Conflict(String),
    /// The form did not carry this session's CSRF token.
    #[error("this form did not come from your console session")]
    Forbidden,
    #[error("the database is unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: String,
    hint: &'a str,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, hint) = match &self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "Not found", ""),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request", ""),
            Self::Conflict(_) => (StatusCode::CONFLICT, "Not possible now", ""),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "Refused",
                "Go back, reload the page and submit the form again. If this keeps happening, log in again.",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                "The relay cannot reach PostgreSQL right now; try again in a moment.",
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "The relay's log has the details.",
            ),
        };
        let page = ErrorPage {
            title,
            message: capitalize(&self.to_string()),
            hint,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(err) => {
                tracing::error!(error = %err, "console: the error page did not render");
                (status, self.to_string()).into_response()
            }
        }
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl From<StoreError> for ConsoleError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::NotFound(what.to_owned()),
            err if err.is_unavailable() => {
                tracing::error!(error = %err, "console: database unavailable");
                Self::Unavailable
            }
            err => {
                tracing::error!(error = %err, "console: database error");
                Self::Internal
            }
        }
    }
}

impl From<askama::Error> for ConsoleError {
    fn from(err: askama::Error) -> Self {
        tracing::error!(error = %err, "console: a page did not render");
        Self::Internal
    }
}

impl From<AdminError> for ConsoleError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::NotFound(what) => Self::NotFound(what),
            AdminError::Invalid(message) | AdminError::Bitbucket(message) => {
                Self::BadRequest(message)
            }
            AdminError::Refused(message) => Self::Conflict(message),
            AdminError::Store(err) => Self::from(err),
            AdminError::Secret(err) => {
                tracing::error!(error = %err, "console: secret error");
                Self::Internal
            }
        }
    }
}
