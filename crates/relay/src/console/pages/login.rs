//! `/console/login` and "Log out".

use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use bytes::Bytes;
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::console::csrf::{same_token, CsrfForm};
use crate::console::error::ConsoleError;
use crate::console::render::page_with;
use crate::console::session::{self, safe_next, ClientIp};
use crate::console::Console;
use crate::http::AppState;

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    next: String,
    error: Option<String>,
    notice: Option<&'static str>,
    /// No admin token is configured: nobody can log in.
    disabled: bool,
}

impl LoginPage {
    fn new(next: &str) -> Self {
        Self {
            next: next.to_owned(),
            error: None,
            notice: None,
            disabled: false,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

pub(crate) async fn form(
    State(state): State<AppState>,
    Query(query): Query<LoginQuery>,
) -> Result<Response, ConsoleError> {
    let mut page = LoginPage::new(safe_next(query.next.as_deref()));
    page.disabled = state.admin_token.is_none();
    if query.signed_out.is_some() {
        page.notice = Some("You are logged out.");
    }
    page_with(StatusCode::OK, &page)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: Option<String>,
    next: Option<String>,
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    ClientIp(client): ClientIp,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let form: LoginForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ConsoleError::BadRequest("the login form cannot be read".into()))?;
    let next = safe_next(form.next.as_deref()).to_owned();
    let mut page = LoginPage::new(&next);
    let Some(expected) = &state.admin_token else {
        page.disabled = true;
        return page_with(StatusCode::SERVICE_UNAVAILABLE, &page);
    };
    let now = Instant::now();
    if let Err(wait) = console.limiter.check(client, now) {
        tracing::warn!(client = ?client, "console: login refused, too many failed attempts");
        let seconds = wait.as_secs().max(1);
        page.error = Some(format!(
            "Too many failed logins. Wait {seconds} s, then try again."
        ));
        let mut response = page_with(StatusCode::TOO_MANY_REQUESTS, &page)?;
        response.headers_mut().insert(RETRY_AFTER, seconds.into());
        return Ok(response);
    }
    let given = form.token.unwrap_or_default();
    if !same_token(given.trim(), expected.expose_secret()) {
        console.limiter.record_failure(client, now);
        tracing::warn!(client = ?client, "console: login with a wrong token");
        page.error = Some("That is not the admin token.".into());
        return page_with(StatusCode::UNAUTHORIZED, &page);
    }
    let (cookie, id_hash, csrf) = session::new_session();
    relay_store::console_sessions::create(
        &state.pool,
        &id_hash,
        &csrf,
        chrono::Utc::now() + session::LIFETIME,
    )
    .await?;
    tracing::info!(client = ?client, "console: logged in");
    let cookie = session::set_cookie(&cookie, session::secure_cookies(&state));
    Ok(([(SET_COOKIE, cookie)], Redirect::to(&next)).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct NoFields {}

/// Ends the session on the server: the old cookie no longer works, wherever it was copied.
pub(crate) async fn logout(
    State(state): State<AppState>,
    posted: CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    posted.session.end(&state).await?;
    tracing::info!(client = ?posted.client, "console: logged out");
    let cookie = session::clear_cookie(session::secure_cookies(&state));
    Ok((
        [(SET_COOKIE, cookie)],
        Redirect::to("/console/login?signed_out=1"),
    )
        .into_response())
}
