//! Environments, deliveries and jobs: what operators look at and act on.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use relay_store::{DeliveryStatus, JobState};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiError;
use crate::admin::views;
use crate::http::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Filter {
    integration: Option<String>,
    status: Option<DeliveryStatus>,
    state: Option<JobState>,
    limit: Option<i64>,
}

fn filter(query: Result<Query<Filter>, QueryRejection>) -> Result<Filter, ApiError> {
    let Query(filter) = query.map_err(|e| ApiError::Invalid(e.body_text()))?;
    if filter.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(ApiError::Invalid("limit must be between 1 and 1000".into()));
    }
    Ok(filter)
}

pub(super) async fn deliveries(
    State(state): State<AppState>,
    query: Result<Query<Filter>, QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let filter = filter(query)?;
    let rows = relay_store::deliveries::list(
        &state.pool,
        filter.integration.as_deref(),
        filter.status,
        filter.limit.unwrap_or(100),
    )
    .await?;
    Ok(Json(rows.iter().map(views::delivery_summary).collect()))
}

pub(super) async fn delivery(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let delivery = relay_store::deliveries::get(&state.pool, id).await?;
    let jobs = relay_store::jobs::list(&state.pool, None, Some(id), None, 1000).await?;
    Ok(Json(views::delivery_detail(&delivery, &jobs)))
}

pub(super) async fn redeliver(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    relay_store::queue::redeliver(&state.pool, id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "redelivered": id }))))
}

pub(super) async fn jobs(
    State(state): State<AppState>,
    query: Result<Query<Filter>, QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let filter = filter(query)?;
    let rows = relay_store::jobs::list(
        &state.pool,
        filter.integration.as_deref(),
        None,
        filter.state,
        filter.limit.unwrap_or(100),
    )
    .await?;
    Ok(Json(rows.iter().map(views::job).collect()))
}

pub(super) async fn retry_job(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    relay_store::jobs::retry(&state.pool, id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "retried": id }))))
}
