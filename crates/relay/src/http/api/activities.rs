//! `/api/v1/integrations/{id}/activities[/{activity_id}]`: the activity log, as the CLI
//! shows it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::ApiError;
use crate::admin::activity::{self, ActivityView};
use crate::http::AppState;

pub(super) async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<activity::Query>, QueryRejection>,
) -> Result<Json<Vec<ActivityView>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let activities = activity::list(&state.pool, &id, state.activity_retention, query).await?;
    Ok(Json(activities))
}

pub(super) async fn log(
    State(state): State<AppState>,
    Path((id, activity_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (activity, lines) = activity::log(&state.pool, &id, &activity_id).await?;
    Ok(Json(json!({ "activity": activity, "lines": lines })))
}
