//! Shared request plumbing: the front middleware (logging, outages, injected faults,
//! authentication) and Bitbucket-shaped error bodies.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};
use url::Url;

use crate::state::{Flavor, LoggedRequest, Role, State};

#[derive(Clone)]
pub(crate) struct Shared {
    pub state: Arc<Mutex<State>>,
    pub role: Role,
    /// Public base of the API role (where `next` links point).
    pub api_url: Url,
    /// Public base of the site role (git clone links).
    pub site_url: Url,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge every later request.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn flavor(&self) -> Flavor {
        self.lock().flavor
    }

    /// An error response in the flavour's documented shape.
    pub(crate) fn error(&self, status: StatusCode, message: &str) -> Response {
        error_response(self.flavor(), status, message)
    }
}

pub(crate) fn error_response(flavor: Flavor, status: StatusCode, message: &str) -> Response {
    let body = match flavor {
        // Cloud 2.0: {"type": "error", "error": {"message": ...}}
        Flavor::Cloud => json!({"type": "error", "error": {"message": message}}),
        // Server: {"errors": [{"context", "message", "exceptionName"}]}
        Flavor::Server => json!({"errors": [{
            "context": null,
            "message": message,
            "exceptionName": exception_name(status),
        }]}),
    };
    (status, axum::Json(body)).into_response()
}

fn exception_name(status: StatusCode) -> Value {
    let name = match status.as_u16() {
        401 => "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
        403 => "com.atlassian.bitbucket.AuthorisationException",
        404 => "com.atlassian.bitbucket.repository.NoSuchRepositoryException",
        400 => "com.atlassian.bitbucket.validation.ArgumentValidationException",
        _ => return Value::Null,
    };
    json!(name)
}

pub(crate) fn json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// What kind of endpoint a request is for; decides which checks apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OAuth,
    Git,
    Rest,
}

fn classify(flavor: Flavor, role: Role, path: &str) -> Kind {
    match (flavor, role) {
        (Flavor::Cloud, Role::Site) if path == "/site/oauth2/access_token" => Kind::OAuth,
        (Flavor::Cloud, Role::Site) => Kind::Git,
        (Flavor::Server, _) if path.starts_with("/scm/") => Kind::Git,
        _ => Kind::Rest,
    }
}

pub(crate) async fn front(AxState(shared): AxState<Shared>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let headers = req.headers().clone();
    let (flavor, kind) = {
        let st = shared.lock();
        (st.flavor, classify(st.flavor, shared.role, &path))
    };
    let response = match gate(&shared, flavor, kind, &headers) {
        Some(refusal) => refusal,
        None => {
            let latency = shared.lock().latency;
            if kind == Kind::Rest && !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            next.run(req).await
        }
    };
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    shared.lock().log.push(LoggedRequest {
        role: shared.role,
        method,
        path,
        query,
        authorization: text("authorization"),
        content_type: text("content-type"),
        user_agent: text("user-agent"),
        status: response.status().as_u16(),
    });
    response
}

/// Outage, injected faults and authentication, in that order. `None` lets the request through.
fn gate(shared: &Shared, flavor: Flavor, kind: Kind, headers: &HeaderMap) -> Option<Response> {
    let mut st = shared.lock();
    if st.unavailable {
        drop(st);
        return Some(error_response(
            flavor,
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
        ));
    }
    if kind == Kind::Rest {
        if let Some(fault) = st.faults.pop_front() {
            drop(st);
            let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut resp = error_response(flavor, status, "Injected failure");
            if let Some(secs) = fault.retry_after {
                resp.headers_mut()
                    .insert("retry-after", secs.to_string().parse().ok()?);
            }
            return Some(resp);
        }
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match kind {
        Kind::OAuth => None,
        Kind::Git => {
            let ok = match flavor {
                Flavor::Cloud => basic(auth)
                    .is_some_and(|(u, t)| u == "x-token-auth" && st.cloud_token_valid(&t)),
                Flavor::Server => server_token_ok(&st, auth),
            };
            drop(st);
            (!ok).then(|| {
                (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", "Basic realm=\"fake\"")],
                    "Authentication required",
                )
                    .into_response()
            })
        }
        Kind::Rest => {
            let ok = match flavor {
                Flavor::Cloud => auth
                    .strip_prefix("Bearer ")
                    .is_some_and(|t| st.cloud_token_valid(t)),
                Flavor::Server => server_token_ok(&st, auth),
            };
            let known = auth
                .strip_prefix("Bearer ")
                .is_some_and(|t| st.tokens.contains_key(t));
            drop(st);
            if ok {
                return None;
            }
            let message = match flavor {
                Flavor::Cloud if known => "Access token expired.",
                Flavor::Cloud => "Token is invalid or not supported for this endpoint.",
                Flavor::Server => {
                    "Authentication failed. Please check your credentials and try again."
                }
            };
            let mut resp = error_response(flavor, StatusCode::UNAUTHORIZED, message);
            resp.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer realm=\"fake\""),
            );
            Some(resp)
        }
    }
}

/// Server takes its HTTP access token as Bearer, or as the password of Basic auth.
fn server_token_ok(st: &State, auth: &str) -> bool {
    if let Some(token) = auth.strip_prefix("Bearer ") {
        return token == st.server_token;
    }
    basic(auth).is_some_and(|(_, t)| t == st.server_token)
}

/// `(user, password)` of a Basic `Authorization` header.
pub(crate) fn basic(auth: &str) -> Option<(String, String)> {
    let encoded = auth.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// Fallback for every path no route knows.
pub(crate) async fn not_found(AxState(shared): AxState<Shared>) -> Response {
    shared.error(StatusCode::NOT_FOUND, "Resource not found")
}

pub(crate) fn empty(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap_or_default()
}
