//! `/api/v1/environments` and `/api/v1/integrations/{id}/environments/{name}[/...]`: list,
//! show, activate, deactivate and the deploy side's deployment reports.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use relay_core::event::Transition;
use relay_core::{EnvironmentKind, EnvironmentStatus};
use relay_store::environments::EnvironmentFilter;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiError;
use crate::admin::environments::{self as admin, ReportInput, TransitionOutcome};
use crate::admin::views;
use crate::http::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    integration: Option<String>,
    status: Option<EnvironmentStatus>,
    #[serde(rename = "type")]
    kind: Option<EnvironmentKind>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let filter = EnvironmentFilter {
        integration_id: query.integration.as_deref(),
        status: query.status,
        kind: query.kind,
    };
    let rows = relay_store::environments::list(&state.pool, filter).await?;
    Ok(Json(rows.iter().map(views::environment).collect()))
}

pub(super) async fn get(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let record = relay_store::integrations::get(&state.pool, &id).await?;
    let env = admin::get(&state.pool, &id, &name).await?;
    let mut value = views::environment_detail(&env, admin::url(&record, &env));
    let deployments = relay_store::deployments::list(&state.pool, &id, &name, 20).await?;
    value["deployments"] = json!(deployments
        .iter()
        .map(views::deployment)
        .collect::<Vec<_>>());
    Ok(Json(value))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActivateBody {
    #[serde(default)]
    sync_data: bool,
}

pub(super) async fn activate(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    body: Option<Json<ActivateBody>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let sync_data = body.map(|Json(b)| b.sync_data).unwrap_or(false);
    let transition = Transition::Activate { sync_data };
    run(&state, &id, &name, transition).await
}

pub(super) async fn deactivate(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    run(&state, &id, &name, Transition::Deactivate).await
}

async fn run(
    state: &AppState,
    id: &str,
    name: &str,
    transition: Transition,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let outcome = admin::transition(&state.pool, id, name, transition).await?;
    let status = match outcome {
        TransitionOutcome::Queued { .. } => StatusCode::ACCEPTED,
        TransitionOutcome::Unchanged => StatusCode::OK,
    };
    Ok((status, Json(views::transition(outcome))))
}

/// `POST .../deployments`: authenticated by `reports::require_report_token`, not the admin
/// layer, so the deploy side needs only its integration's report token.
pub(super) async fn report(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    body: Result<Json<ReportInput>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(input) = body.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let recorded = admin::report(&state.pool, &id, &name, input).await?;
    let value = json!({
        "deployment": views::deployment(&recorded.deployment),
        "current_head": recorded.decision.current_head,
        "note": recorded.decision.note,
    });
    Ok((StatusCode::CREATED, Json(value)))
}

pub(super) async fn deployments(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Vec<Value>>, ApiError> {
    admin::get(&state.pool, &id, &name).await?;
    let rows = relay_store::deployments::list(&state.pool, &id, &name, 100).await?;
    Ok(Json(rows.iter().map(views::deployment).collect()))
}
