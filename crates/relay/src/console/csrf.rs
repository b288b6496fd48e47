//! Every console POST carries the session's CSRF token in a hidden `csrf` field; a request
//! without it, or with another session's, is refused with 403 before anything happens.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ConsoleError;
use super::session::{client_ip, Session};
use crate::http::AppState;

pub(super) const FIELD: &str = "csrf";
/// Console forms are a few fields; a settings form with every field filled is under 8 KiB.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A form posted by this session's console, with the session it came from.
#[derive(Debug)]
pub(super) struct CsrfForm<T> {
    pub session: Session,
    pub form: T,
    pub client: Option<std::net::IpAddr>,
}

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let client = client_ip(&parts);
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                ConsoleError::BadRequest("the form is too large".into()).into_response()
            })?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).map_err(|_| {
            ConsoleError::BadRequest("the form cannot be read".into()).into_response()
        })?;
        let given = pairs.iter().find(|(name, _)| name == FIELD).map(|(_, v)| v);
        if !given.is_some_and(|given| same_token(given, &session.csrf)) {
            tracing::warn!("console: a form without this session's CSRF token was refused");
            return Err(ConsoleError::Forbidden.into_response());
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|err| {
            ConsoleError::BadRequest(format!("the form cannot be read: {err}")).into_response()
        })?;
        Ok(Self {
            session,
            form,
            client,
        })
    }
}

/// Constant time, and over hashes so not even the length of the expected token leaks.
pub(super) fn same_token(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    bool::from(given.ct_eq(&expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_value() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("", "abc"));
        assert!(!same_token("abcd", "abc"));
    }
}
