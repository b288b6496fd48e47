//! `/api/v1/integrations`: the same validation as the CLI, through `crate::admin`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::ApiError;
use crate::admin::integrations::{self as admin, IntegrationInput, IntegrationView};
use crate::http::AppState;

fn body(input: Result<Json<Value>, JsonRejection>) -> Result<IntegrationInput, ApiError> {
    let Json(value) = input.map_err(|e| ApiError::Invalid(e.body_text()))?;
    IntegrationInput::from_json(value).map_err(ApiError::from)
}

pub(super) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<IntegrationView>>, ApiError> {
    let records = relay_store::integrations::list(&state.pool).await?;
    let mut views = records
        .iter()
        .map(|r| admin::view(r, &state.public_base_url, None))
        .collect::<Result<Vec<_>, _>>()?;
    admin::with_circuits(&state.pool, &mut views).await?;
    Ok(Json(views))
}

pub(super) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<IntegrationView>, ApiError> {
    let record = relay_store::integrations::get(&state.pool, &id).await?;
    let mut view = admin::view(&record, &state.public_base_url, None)?;
    admin::with_circuits(&state.pool, std::slice::from_mut(&mut view)).await?;
    Ok(Json(view))
}

/// 201 with the view plus the webhook secret, shown this once.
pub(super) async fn create(
    State(state): State<AppState>,
    input: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = crate::admin::managed::add_with_bitbucket(
        &state.pool,
        &state.key,
        &state.clients,
        &state.public_base_url,
        body(input)?,
    )
    .await?;
    let view = admin::view(&created.record, &state.public_base_url, None)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "integration": view, "webhook_secret": created.webhook_secret })),
    ))
}

pub(super) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    input: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let input = body(input)?;
    if input.kind.is_some() {
        return Err(ApiError::Invalid(
            "type cannot change: delete the integration and add a new one".into(),
        ));
    }
    let target = crate::admin::managed::Target {
        pool: &state.pool,
        key: &state.key,
        clients: &state.clients,
        public_base_url: &state.public_base_url,
    };
    let updated = crate::admin::rotation::update_rotating(&target, &id, input).await?;
    let mut view = admin::view(&updated.record, &state.public_base_url, None)?;
    admin::with_circuits(&state.pool, std::slice::from_mut(&mut view)).await?;
    let mut value = serde_json::to_value(&view).map_err(|_| ApiError::Internal)?;
    // A rotated secret is in this answer once, in clear.
    updated.reveal_rotated(&mut value);
    Ok(Json(value))
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct DeleteQuery {
    register_webhook: Option<bool>,
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let register = query.register_webhook.unwrap_or(true);
    if let Some(warning) = crate::admin::managed::delete_with_bitbucket(
        &state.pool,
        &state.key,
        &state.clients,
        &state.public_base_url,
        &id,
        register,
    )
    .await?
    {
        tracing::warn!(integration.id = %id, "{warning}");
    }
    Ok(StatusCode::NO_CONTENT)
}
