//! Who may report a deployment: the admin, or the integration's own report token (shown
//! once by `integration:add`), which is good for that integration's reports and nothing
//! else. A wrong token gets 401 and nothing changes.

use axum::extract::{Path, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{bearer, is_admin, ApiError};
use crate::http::AppState;
use crate::secrets::SecretField;

pub(super) async fn require_report_token(
    State(state): State<AppState>,
    Path((id, _name)): Path<(String, String)>,
    request: Request,
    next: Next,
) -> Response {
    let given = bearer(&request).map(str::to_owned);
    let allowed = is_admin(&state, given.as_deref())
        || (request.method() == Method::POST && is_report_token(&state, &id, given).await);
    if !allowed {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

async fn is_report_token(state: &AppState, id: &str, given: Option<String>) -> bool {
    let Some(given) = given else {
        return false;
    };
    let Ok(record) = relay_store::integrations::get(&state.pool, id).await else {
        return false;
    };
    let Some(stored) = record.deploy_report_token_ciphertext.as_ref() else {
        return false;
    };
    match state
        .key
        .decrypt(&record.id, SecretField::DeployReportToken, stored)
    {
        Ok(token) => crate::http::token_matches(&token, Some(&given)),
        Err(err) => {
            tracing::error!(integration.id = id, error = %err, "cannot read the report token");
            false
        }
    }
}
