//! Argo CD's ApplicationSet plugin generator: `POST /api/v1/getparams.execute`.
//!
//! The contract is Argo CD's (`applicationset/services/plugin`): the controller POSTs
//! `{"applicationSetName": ..., "input": {"parameters": {...}}}` with `Authorization: Bearer
//! <token>` and expects `{"output": {"parameters": [{...}, ...]}}`. Authenticated by
//! `RELAY_ARGOCD_PLUGIN_TOKEN` alone, never by the admin token (the admin API's middleware does
//! not cover this route). Answered from PostgreSQL only. Any error is an error status, never
//! an empty list: Argo CD keeps the Applications it has when a generator fails, but deletes
//! them when a generator answers with none.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use relay_core::{EnvironmentKind, EnvironmentStatus};
use relay_store::argocd::GeneratorFilter;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

use super::AppState;

pub const PATH: &str = "/api/v1/getparams.execute";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(getparams))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceRequest {
    #[serde(default)]
    application_set_name: String,
    #[serde(default)]
    input: Option<Input>,
}

#[derive(Debug, Default, Deserialize)]
struct Input {
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

#[derive(Debug, thiserror::Error)]
enum PluginError {
    #[error("the Argo CD plugin generator is off: set RELAY_ARGOCD_PLUGIN_TOKEN to enable it")]
    Disabled,
    #[error("unauthorized")]
    Unauthorized,
    #[error("forbidden")]
    Forbidden,
    #[error("{0}")]
    Invalid(String),
    #[error("integration {0:?} not found")]
    UnknownIntegration(String),
    #[error("the database is unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl PluginError {
    fn outcome(&self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::Invalid(_) => "invalid",
            Self::UnknownIntegration(_) => "unknown_integration",
            Self::Unavailable => "unavailable",
            Self::Internal => "error",
        }
    }
}

impl IntoResponse for PluginError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Disabled | Self::UnknownIntegration(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // Argo CD shows `error` in the ApplicationSet's status conditions.
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

async fn getparams(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ServiceRequest>, JsonRejection>,
) -> Response {
    let result = answer(&state, &headers, body).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(err) => err.outcome(),
    };
    state.metrics.record_plugin_request(outcome);
    match result {
        Ok(output) => Json(output).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Json<ServiceRequest>, JsonRejection>,
) -> Result<Value, PluginError> {
    authenticate(state, headers)?;
    let Json(request) = body.map_err(|e| PluginError::Invalid(e.body_text()))?;
    let parameters = request.input.and_then(|i| i.parameters).unwrap_or_default();
    let filter = filter(&parameters)?;
    let rows = relay_store::argocd::list_environments(&state.pool, &filter)
        .await
        .map_err(store_error)?;
    if rows.is_empty() {
        if let Some(id) = &filter.integration {
            let exists = relay_store::argocd::integration_exists(&state.pool, id)
                .await
                .map_err(store_error)?;
            if !exists {
                return Err(PluginError::UnknownIntegration(id.clone()));
            }
        }
    }
    tracing::debug!(
        application_set = %request.application_set_name,
        environments = rows.len(),
        "plugin generator parameters served"
    );
    let list: Vec<Value> = rows
        .iter()
        .map(|row| Value::Object(crate::argocd::parameters(row)))
        .collect();
    Ok(json!({ "output": { "parameters": list } }))
}

fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<(), PluginError> {
    let Some(expected) = &state.argocd_plugin_token else {
        return Err(PluginError::Disabled);
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(PluginError::Unauthorized)?;
    if bool::from(expected.expose_secret().as_bytes().ct_eq(given.as_bytes())) {
        Ok(())
    } else {
        Err(PluginError::Forbidden)
    }
}

/// `integration`, `kind` and `status` from the input parameters; other keys are the
/// ApplicationSet's own business (they reach its template as `generator.input.parameters`).
fn filter(parameters: &Map<String, Value>) -> Result<GeneratorFilter, PluginError> {
    let integration = match parameters.get("integration") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id.trim().is_empty() => None,
        Some(Value::String(id)) => Some(id.trim().to_owned()),
        Some(_) => return Err(PluginError::Invalid("integration must be a string".into())),
    };
    let kinds = list(parameters, "kind", EnvironmentKind::ALL, |k| k.as_str())?;
    let mut statuses = list(parameters, "status", EnvironmentStatus::ALL, |s| s.as_str())?;
    if statuses.is_empty() {
        statuses.push(EnvironmentStatus::Active);
    }
    Ok(GeneratorFilter {
        integration,
        kinds,
        statuses,
    })
}

/// A string (several values comma-separated) or a list of strings, each one of `allowed`.
fn list<T: Copy + PartialEq>(
    parameters: &Map<String, Value>,
    key: &str,
    allowed: &[T],
    text: fn(T) -> &'static str,
) -> Result<Vec<T>, PluginError> {
    let invalid = || {
        let names: Vec<&str> = allowed.iter().map(|a| text(*a)).collect();
        PluginError::Invalid(format!(
            "{key} must be one or more of {} (a string, comma-separated, or a list)",
            names.join(", ")
        ))
    };
    let values: Vec<String> = match parameters.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(|v| v.trim().to_owned()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(|v| v.trim().to_owned())
                    .ok_or_else(invalid)
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid()),
    };
    let mut out = Vec::new();
    for value in values.into_iter().filter(|v| !v.is_empty()) {
        let known = allowed.iter().copied().find(|a| text(*a) == value);
        let value = known.ok_or_else(invalid)?;
        if !out.contains(&value) {
            out.push(value);
        }
    }
    Ok(out)
}

fn store_error(err: relay_store::StoreError) -> PluginError {
    if err.is_unavailable() {
        tracing::warn!(error = %err, "plugin generator: database unavailable");
        PluginError::Unavailable
    } else {
        tracing::error!(error = %err, "plugin generator: database error");
        PluginError::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn filters_default_to_active_environments_of_every_kind() {
        let f = filter(&Map::new()).unwrap();
        assert_eq!(f.statuses, [EnvironmentStatus::Active]);
        assert!(f.kinds.is_empty() && f.integration.is_none());
        let f = filter(&params(json!({
            "integration": "acme", "kind": "pull_request, branch", "status": ["active", "failed"],
            "anything": {"else": true}
        })))
        .unwrap();
        assert_eq!(f.integration.as_deref(), Some("acme"));
        assert_eq!(
            f.kinds,
            [EnvironmentKind::PullRequest, EnvironmentKind::Branch]
        );
        assert_eq!(
            f.statuses,
            [EnvironmentStatus::Active, EnvironmentStatus::Failed]
        );
    }

    #[test]
    fn bad_filters_are_refused_with_the_allowed_values() {
        for bad in [
            json!({"kind": "preview"}),
            json!({"status": 3}),
            json!({"status": ["active", 1]}),
            json!({"integration": ["a"]}),
        ] {
            let err = filter(&params(bad.clone())).unwrap_err();
            assert!(matches!(err, PluginError::Invalid(_)), "{bad}: {err}");
        }
        let err = filter(&params(json!({"kind": "preview"}))).unwrap_err();
        assert!(err.to_string().contains("production, branch, pull_request"));
    }
}
