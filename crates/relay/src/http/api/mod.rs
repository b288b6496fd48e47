//! Admin HTTP API under `/api/v1`, behind `Authorization: Bearer $RELAY_ADMIN_TOKEN`.
//! Without the right token every path answers 401 and nothing else: not even whether the
//! path exists.

mod activities;
mod environments;
mod error;
mod integrations;
mod operations;
mod reports;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use error::ApiError;

use super::AppState;

pub const OPENAPI: &str = include_str!("openapi.json");

pub fn router(state: AppState) -> Router<AppState> {
    let api = Router::new()
        .route(
            "/integrations",
            get(integrations::list).post(integrations::create),
        )
        .route(
            "/integrations/{id}",
            get(integrations::get)
                .patch(integrations::update)
                .delete(integrations::delete),
        )
        .route("/integrations/{id}/activities", get(activities::list))
        .route(
            "/integrations/{id}/activities/{activity_id}",
            get(activities::log),
        )
        .route("/environments", get(environments::list))
        .route(
            "/integrations/{id}/environments/{name}",
            get(environments::get),
        )
        .route(
            "/integrations/{id}/environments/{name}/activate",
            post(environments::activate),
        )
        .route(
            "/integrations/{id}/environments/{name}/deactivate",
            post(environments::deactivate),
        )
        .route("/deliveries", get(operations::deliveries))
        .route("/deliveries/{id}", get(operations::delivery))
        .route("/deliveries/{id}/redeliver", post(operations::redeliver))
        .route("/jobs", get(operations::jobs))
        .route("/jobs/{id}/retry", post(operations::retry_job))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        // A layer (not a route layer) so unknown paths also need the token first.
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    // Reports carry their own authentication (the integration's report token, or the
    // admin token), so they live outside the admin layer.
    let reports = Router::new()
        .route(
            "/api/v1/integrations/{id}/environments/{name}/deployments",
            post(environments::report).get(environments::deployments),
        )
        .route_layer(middleware::from_fn_with_state(
            state,
            reports::require_report_token,
        ));
    Router::new().nest("/api/v1", api).merge(reports)
}

/// The bearer token of a request, if it sent one (the scheme in any case, RFC 7235).
fn bearer(request: &Request) -> Option<&str> {
    super::bearer_token(request.headers())
}

/// Whether `given` is the admin token, compared in constant time.
fn is_admin(state: &AppState, given: Option<&str>) -> bool {
    state
        .admin_token
        .as_ref()
        .is_some_and(|expected| super::token_matches(expected, given))
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !is_admin(&state, bearer(&request)) {
        return ApiError::Unauthorized.into_response();
    }
    // Without the schema every query would fail: say so as an outage, not a 500.
    if !state.schema_ready() {
        return ApiError::Unavailable.into_response();
    }
    next.run(request).await
}

async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route".into())
}
