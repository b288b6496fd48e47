//! `/console/environments`: every environment's status, head and URL; "Activate" and
//! "Deactivate", through the seam in [`crate::console::actions`].

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use relay_store::environments::EnvironmentRow;
use serde::Deserialize;

use super::{integration_choices, one_of, Choice};
use crate::console::actions::{self, ActionError, EnvironmentRequest};
use crate::console::csrf::CsrfForm;
use crate::console::error::ConsoleError;
use crate::console::render::{
    environment_url, given, page, see_other, short_commit, Layout, Stamp,
};
use crate::console::session::{safe_next, Session};
use crate::http::AppState;

pub const STATUSES: &[&str] = &["inactive", "active", "deleting", "deleted", "failed"];

#[derive(Template)]
#[template(path = "console/environments.html")]
struct EnvironmentsPage {
    layout: Layout,
    integrations: Vec<Choice>,
    statuses: Vec<Choice>,
    rows: Vec<Row>,
    back: String,
}

struct Row {
    integration_id: String,
    integration_href: String,
    name: String,
    kind: String,
    status: String,
    failure_reason: Option<String>,
    /// What the environment follows: a branch, or a pull request.
    source: String,
    head: Option<String>,
    head_short: Option<String>,
    url: Option<String>,
    last_deployment: Option<String>,
    updated: Stamp,
    activate_action: String,
    deactivate_action: String,
    can_activate: bool,
    can_deactivate: bool,
}

fn row(env: &EnvironmentRow, url_templates: &HashMap<String, Option<String>>) -> Row {
    let source = match (env.pr_id, &env.branch) {
        (Some(pr), _) => format!(
            "pull request #{pr}: {} into {}",
            env.pr_source_branch.as_deref().unwrap_or("?"),
            env.pr_target_branch.as_deref().unwrap_or("?")
        ),
        (None, Some(branch)) => format!("branch {branch}"),
        (None, None) => String::new(),
    };
    let template = url_templates.get(&env.integration_id).cloned().flatten();
    let base = format!("/console/environments/{}/{}", env.integration_id, env.name);
    let live = !matches!(env.status.as_str(), "deleting" | "deleted");
    Row {
        integration_href: format!("/console/integrations/{}", env.integration_id),
        integration_id: env.integration_id.clone(),
        name: env.name.clone(),
        kind: env.kind.clone(),
        status: env.status.clone(),
        failure_reason: env.failure_reason.clone(),
        source,
        head_short: env.head_commit.as_deref().map(short_commit),
        head: env.head_commit.clone(),
        url: environment_url(template.as_deref(), &env.name),
        last_deployment: actions::last_deployment(env),
        updated: Stamp::new(env.updated_at),
        activate_action: format!("{base}/activate"),
        deactivate_action: format!("{base}/deactivate"),
        can_activate: live && env.status != "active",
        // The production environment stays (issue 12 refuses it with a reason as well).
        can_deactivate: live && env.status != "inactive" && env.kind != "production",
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    integration: Option<String>,
    status: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let integration = given(&query.integration);
    let status = one_of("status", given(&query.status), STATUSES)?;
    let integrations = relay_store::integrations::list(&state.pool).await?;
    let templates: HashMap<String, Option<String>> = integrations
        .iter()
        .map(|r| (r.id.clone(), r.environment_url.clone()))
        .collect();
    let environments = relay_store::environments::list(&state.pool, integration).await?;
    let rows = environments
        .iter()
        .filter(|env| status.is_none_or(|s| env.status == s))
        .map(|env| row(env, &templates))
        .collect();
    page(&EnvironmentsPage {
        layout: Layout::new("Environments", "environments", &session),
        integrations: integration_choices(&state, integration).await?,
        statuses: super::choices(STATUSES.iter().copied(), status),
        rows,
        back: uri
            .path_and_query()
            .map_or("/console/environments", |p| p.as_str())
            .to_owned(),
    })
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    /// Activate only: the "sync data" checkbox.
    sync_data: Option<String>,
    back: Option<String>,
}

pub async fn activate(
    state: State<AppState>,
    path: Path<(String, String)>,
    posted: CsrfForm<ActionForm>,
) -> Result<Response, ConsoleError> {
    transition(state, path, posted, true).await
}

pub async fn deactivate(
    state: State<AppState>,
    path: Path<(String, String)>,
    posted: CsrfForm<ActionForm>,
) -> Result<Response, ConsoleError> {
    transition(state, path, posted, false).await
}

async fn transition(
    State(state): State<AppState>,
    Path((integration_id, name)): Path<(String, String)>,
    posted: CsrfForm<ActionForm>,
    activating: bool,
) -> Result<Response, ConsoleError> {
    if relay_store::environments::get(&state.pool, &integration_id, &name)
        .await?
        .is_none()
    {
        return Err(ConsoleError::NotFound(format!("environment {name}")));
    }
    let request = EnvironmentRequest {
        integration_id: &integration_id,
        name: &name,
        sync_data: activating && posted.form.sync_data.is_some(),
    };
    let outcome = if activating {
        actions::activate(&state, &request).await
    } else {
        actions::deactivate(&state, &request).await
    };
    let session = &posted.session;
    match outcome {
        Ok(message) => {
            tracing::info!(integration.id = %integration_id, environment = %name, activating, "console: environment transition");
            session.flash(&state, "info", &message).await;
        }
        Err(ActionError::NotFound(what)) => return Err(ConsoleError::NotFound(what)),
        Err(ActionError::Console(err)) => return Err(err),
        Err(err @ (ActionError::NotAvailable(_) | ActionError::Refused(_))) => {
            session.flash(&state, "error", &err.to_string()).await;
        }
    }
    let back = match posted.form.back.as_deref() {
        Some(back) => safe_next(Some(back)).to_owned(),
        None => "/console/environments".to_owned(),
    };
    Ok(see_other(&back))
}
