//! The web console under `/console`: server-rendered pages for operators, behind a login with
//! the admin token.
//!
//! Every page works without JavaScript; `console.js` only adds the copy button, live refresh
//! of lists and "Older" paging in place. Every state change is a POST form carrying the
//! session's CSRF token ([`csrf::CsrfForm`]). The data and the actions are the same store and
//! admin functions the CLI and the admin API use, so the rules cannot differ.

mod actions;
mod assets;
mod csrf;
mod error;
mod limiter;
mod pages;
mod render;
mod session;

use std::sync::Arc;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::middleware;
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::{Extension, Router};

use crate::http::AppState;
use limiter::LoginLimiter;

/// No inline script or style anywhere: every asset comes from `/console/assets`.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// What the console keeps between requests besides the sessions in PostgreSQL.
#[derive(Debug)]
pub struct Console {
    pub limiter: LoginLimiter,
}

pub fn router() -> Router<AppState> {
    let console = Arc::new(Console {
        limiter: LoginLimiter::default(),
    });
    Router::new()
        .route("/console", get(pages::overview::show))
        .route(
            "/console/login",
            get(pages::login::form).post(pages::login::submit),
        )
        .route("/console/logout", post(pages::login::logout))
        .route(
            "/console/integrations/{id}",
            get(pages::integration::show).post(pages::integration::update),
        )
        .route(
            "/console/integrations/{id}/validate",
            post(pages::integration::validate),
        )
        .route(
            "/console/integrations/{id}/resync",
            post(pages::integration::resync),
        )
        .route("/console/deliveries", get(pages::deliveries::list))
        .route("/console/deliveries/{id}", get(pages::deliveries::show))
        .route(
            "/console/deliveries/{id}/redeliver",
            post(pages::deliveries::redeliver),
        )
        .route("/console/environments", get(pages::environments::list))
        .route(
            "/console/environments/{integration_id}/{name}/activate",
            post(pages::environments::activate),
        )
        .route(
            "/console/environments/{integration_id}/{name}/deactivate",
            post(pages::environments::deactivate),
        )
        .route("/console/jobs", get(pages::jobs::list))
        .route("/console/jobs/{id}/retry", post(pages::jobs::retry))
        .route("/console/assets/console.css", get(assets::css))
        .route("/console/assets/console.js", get(assets::js))
        .route("/console/{*rest}", any(pages::not_found))
        .layer(Extension(console))
        .layer(middleware::map_response(security_headers))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Pages show operational data and carry the CSRF token: never cached. Assets set their own.
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
