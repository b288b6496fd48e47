//! `/console/environments`: every environment's status, head and URL; "Activate" and
//! "Deactivate", through the seam in [`crate::console::actions`].

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use relay_core::event::Transition;
use relay_core::{EnvironmentKind, EnvironmentStatus};
use relay_store::environments::{EnvironmentFilter, EnvironmentRow};
use relay_store::integrations::IntegrationRecord;
use serde::Deserialize;

use super::{choices, enum_choices, one_of, Choice};
use crate::console::actions::{self, LastDeployment};
use crate::console::csrf::CsrfForm;
use crate::console::error::ConsoleError;
use crate::console::render::{given, page, see_other, short_commit, Layout, Stamp};
use crate::console::session::{safe_next, Session};
use crate::http::AppState;

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
    status: &'static str,
    failure_reason: Option<String>,
    /// Its kind and what it follows: production's branch, a branch, or a pull request.
    source: String,
    head: Option<String>,
    head_short: Option<String>,
    url: Option<String>,
    last_deployment: Option<LastDeployment>,
    updated: Stamp,
    activate_action: String,
    deactivate_action: String,
    can_activate: bool,
    can_deactivate: bool,
}

fn row(env: &EnvironmentRow, records: &HashMap<&str, &IntegrationRecord>) -> Row {
    let source = match (env.kind, env.pr_id, &env.branch) {
        (EnvironmentKind::PullRequest, Some(pr), _) => format!(
            "pull request #{pr}: {} into {}",
            env.pr_source_branch.as_deref().unwrap_or("?"),
            env.pr_target_branch.as_deref().unwrap_or("?")
        ),
        (EnvironmentKind::Production, _, Some(branch)) => format!("production, branch {branch}"),
        (EnvironmentKind::Branch, _, Some(branch)) => format!("branch {branch}"),
        (kind, _, _) => kind.as_str().replace('_', " "),
    };
    let base = format!("/console/environments/{}/{}", env.integration_id, env.name);
    let (can_activate, can_deactivate) = actions::offered(env);
    Row {
        integration_href: format!("/console/integrations/{}", env.integration_id),
        integration_id: env.integration_id.clone(),
        name: env.name.clone(),
        status: env.status.as_str(),
        failure_reason: env.failure_reason.clone(),
        source,
        head_short: env.head_commit.as_deref().map(short_commit),
        head: env.head_commit.clone(),
        url: records
            .get(env.integration_id.as_str())
            .and_then(|record| crate::admin::environments::url(record, env)),
        last_deployment: actions::last_deployment(env),
        updated: Stamp::new(env.updated_at),
        activate_action: format!("{base}/activate"),
        deactivate_action: format!("{base}/deactivate"),
        can_activate,
        can_deactivate,
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    integration: Option<String>,
    status: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let integration = given(&query.integration);
    let status = one_of::<EnvironmentStatus>("status", given(&query.status))?;
    let integrations = relay_store::integrations::list(&state.pool).await?;
    let records: HashMap<&str, &IntegrationRecord> =
        integrations.iter().map(|r| (r.id.as_str(), r)).collect();
    let filter = EnvironmentFilter {
        integration_id: integration,
        status,
        kind: None,
    };
    let environments = relay_store::environments::list(&state.pool, filter).await?;
    page(&EnvironmentsPage {
        layout: Layout::new("Environments", "environments", &session),
        integrations: choices(integrations.iter().map(|r| r.id.as_str()), integration),
        statuses: enum_choices(status),
        rows: environments.iter().map(|env| row(env, &records)).collect(),
        back: uri
            .path_and_query()
            .map_or("/console/environments", |p| p.as_str())
            .to_owned(),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActionForm {
    /// Activate only: the "sync data" checkbox.
    sync_data: Option<String>,
    back: Option<String>,
}

pub(crate) async fn activate(
    state: State<AppState>,
    path: Path<(String, String)>,
    posted: CsrfForm<ActionForm>,
) -> Result<Response, ConsoleError> {
    transition(state, path, posted, true).await
}

pub(crate) async fn deactivate(
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
    let transition = if activating {
        Transition::Activate {
            sync_data: posted.form.sync_data.is_some(),
        }
    } else {
        Transition::Deactivate
    };
    let flash = actions::apply(&state, &integration_id, &name, transition).await?;
    tracing::info!(
        integration.id = %integration_id,
        environment = %name,
        activating,
        refused = flash.is_error(),
        "console: environment transition"
    );
    posted.session.flash(&state, flash).await;
    let back = match posted.form.back.as_deref() {
        Some(back) => safe_next(Some(back)).to_owned(),
        None => "/console/environments".to_owned(),
    };
    Ok(see_other(&back))
}
