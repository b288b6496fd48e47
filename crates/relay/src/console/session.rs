//! Console sessions: a random cookie naming a row in `console_sessions` (stored hashed), with
//! the CSRF token of its forms and a one-shot flash message.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub(super) use relay_store::console_sessions::Flash;

use super::error::ConsoleError;
use crate::http::AppState;

pub(super) const COOKIE_NAME: &str = "relay_console";
/// How long a login lasts; a working day, then the token is asked for again.
pub(super) const LIFETIME: chrono::Duration = chrono::Duration::hours(12);
/// Sent by `console.js` when it refreshes a page in place: such a request must not use up the
/// flash message the person has not seen yet.
pub(super) const REFRESH_HEADER: &str = "x-console-refresh";

/// The signed-in operator's session. As an extractor it sends a browser without one to the
/// login page (GET) or refuses the request (anything else).
#[derive(Debug, Clone)]
pub(super) struct Session {
    id_hash: Vec<u8>,
    pub csrf: String,
    pub flash: Option<Flash>,
}

impl Session {
    /// Leaves `flash` for the next page this session shows.
    pub(super) async fn flash(&self, state: &AppState, flash: Flash) {
        if let Err(err) =
            relay_store::console_sessions::set_flash(&state.pool, &self.id_hash, &flash).await
        {
            // The action itself happened; only its confirmation is lost.
            tracing::warn!(error = %err, "console: cannot store the flash message");
        }
    }

    pub(super) async fn end(&self, state: &AppState) -> Result<(), ConsoleError> {
        relay_store::console_sessions::delete(&state.pool, &self.id_hash).await?;
        Ok(())
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(id_hash) = cookie_value(&parts.headers).map(hash) else {
            return Err(unauthenticated(parts));
        };
        let takes_flash =
            parts.method == Method::GET && !parts.headers.contains_key(REFRESH_HEADER);
        let found = if takes_flash {
            relay_store::console_sessions::take(&state.pool, &id_hash).await
        } else {
            relay_store::console_sessions::get(&state.pool, &id_hash).await
        };
        match found {
            Ok(Some(row)) => Ok(Self {
                id_hash,
                csrf: row.csrf_token,
                // Only a page view shows (and so uses up) the message.
                flash: row.flash.filter(|_| takes_flash),
            }),
            Ok(None) => Err(unauthenticated(parts)),
            Err(err) => Err(ConsoleError::from(err).into_response()),
        }
    }
}

/// GETs go to the login page (and come back afterwards); other methods cannot have come from
/// a console form without a session, so they are refused.
fn unauthenticated(parts: &Parts) -> Response {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return ConsoleError::Forbidden.into_response();
    }
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/console");
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", target)
        .finish();
    Redirect::to(&format!("/console/login?{query}")).into_response()
}

/// A path the login may send the browser back to: inside the console, nowhere else.
pub(super) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if (path == "/console"
                || path.starts_with("/console/")
                || path.starts_with("/console?"))
                && !path.contains("//")
                && !path.contains('\\')
                && path.chars().all(|c| c.is_ascii_graphic()) =>
        {
            path
        }
        _ => "/console",
    }
}

/// A new session: (cookie value, its hash for the table, CSRF token).
pub(super) fn new_session() -> (String, Vec<u8>, String) {
    let id = random_token();
    let id_hash = hash(&id);
    (id, id_hash, random_token())
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
        .filter(|value| {
            !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The `Set-Cookie` value for a new session; `Secure` when the relay's public URL is https.
pub(super) fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.num_seconds(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub(super) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

pub(super) fn secure_cookies(state: &AppState) -> bool {
    state.public_base_url.starts_with("https://")
}

/// The peer's address as an extractor, for the login limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(parts)))
    }
}

/// The peer's address, when the server was started with connection info (a proxy in front
/// makes this the proxy's address: the global login limit still applies).
pub(super) fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_inside_the_console() {
        for ok in [
            "/console",
            "/console/deliveries?status=failed",
            "/console/jobs",
        ] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "https://evil.example.com/console",
            "//evil.example.com/console",
            "/console//evil",
            "/consolex",
            "/console/\\evil",
            "/api/v1/integrations",
            "/console/a b",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_next(None), "/console");
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=1; relay_console=abc_-9; b=2".parse().unwrap());
        assert_eq!(cookie_value(&headers), Some("abc_-9"));
        headers.insert(COOKIE, "relay_console=bad\"value".parse().unwrap());
        assert_eq!(cookie_value(&headers), None);
    }

    #[test]
    fn cookies_are_http_only_strict_and_expiring() {
        let cookie = set_cookie("v", true);
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/console",
            "Max-Age=43200",
            "Secure",
        ] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(!set_cookie("v", false).contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
