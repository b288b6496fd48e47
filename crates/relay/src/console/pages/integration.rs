//! `/console/integrations/{id}`: settings (editable, with the CLI's and API's validation),
//! the hook URL, "Validate" (`integration:validate` on demand) and "Resync".

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use relay_store::integrations::IntegrationRecord;

use super::login::NoFields;
use super::overview::kind_label;
use super::settings::{self, Field, Input, SettingsForm};
use crate::admin::bitbucket_side::Check;
use crate::admin::integrations::{self as admin, IntegrationView};
use crate::admin::managed;
use crate::admin::AdminError;
use crate::console::csrf::CsrfForm;
use crate::console::error::ConsoleError;
use crate::console::render::{href, page_with, see_other, Layout, Stamp};
use crate::console::session::{Flash, Session};
use crate::http::AppState;

#[derive(Template)]
#[template(path = "console/integration.html")]
struct IntegrationPage {
    layout: Layout,
    view: IntegrationView,
    kind: &'static str,
    created: Stamp,
    updated: Stamp,
    prune_note: Option<&'static str>,
    links: Links,
    fields: Vec<Field>,
    flags: Vec<Field>,
    /// Why the last save was refused, shown above the form.
    form_error: Option<String>,
    register_webhook: bool,
    checks: Option<Vec<Check>>,
    failed_checks: usize,
}

struct Links {
    action: String,
    validate: String,
    resync: String,
    deliveries: String,
    environments: String,
    jobs: String,
}

impl Links {
    fn new(id: &str) -> Self {
        let base = format!("/console/integrations/{id}");
        let filter = [("integration", Some(id))];
        Self {
            validate: format!("{base}/validate"),
            resync: format!("{base}/resync"),
            action: base,
            deliveries: href("/console/deliveries", &filter),
            environments: href("/console/environments", &filter),
            jobs: href("/console/jobs", &filter),
        }
    }
}

/// The page as stored, or after a refused save with what was posted and why.
struct Extra {
    posted: Option<SettingsForm>,
    form_error: Option<String>,
    checks: Option<Vec<Check>>,
}

fn render(
    state: &AppState,
    session: &Session,
    record: &IntegrationRecord,
    extra: Extra,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let view = admin::view(record, &state.public_base_url, None)?;
    let posted = extra.posted.as_ref();
    let failed_checks = extra
        .checks
        .as_ref()
        .map_or(0, |checks| checks.iter().filter(|c| !c.passed).count());
    page_with(
        status,
        &IntegrationPage {
            layout: Layout::new(format!("Integration {}", record.id), "overview", session),
            kind: kind_label(record.kind),
            created: Stamp::new(record.created_at),
            updated: Stamp::new(record.updated_at),
            prune_note: view.prune_branches_note,
            links: Links::new(&record.id),
            fields: settings::text_fields(&view, posted),
            flags: settings::flag_fields(record, posted),
            form_error: extra.form_error,
            register_webhook: posted.is_none_or(|form| form.register_webhook.is_some()),
            checks: extra.checks,
            failed_checks,
            view,
        },
    )
}

pub(crate) async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let record = relay_store::integrations::get(&state.pool, &id).await?;
    let extra = Extra {
        posted: None,
        form_error: None,
        checks: None,
    };
    render(&state, &session, &record, extra, StatusCode::OK)
}

/// Saves the settings through `managed::update_with_bitbucket`, exactly as `PATCH
/// /api/v1/integrations/{id}` does. A refused value is shown on the form (422) with what
/// was typed, secrets excepted.
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: CsrfForm<SettingsForm>,
) -> Result<Response, ConsoleError> {
    let record = relay_store::integrations::get(&state.pool, &id).await?;
    let view = admin::view(&record, &state.public_base_url, None)?;
    let session = &posted.session;
    let input = match settings::to_input(&view, &record, &posted.form) {
        Ok(input) => input,
        Err(message) => return refused(&state, &record, posted, message),
    };
    if settings::is_empty(&input) {
        session.flash(&state, Flash::info("Nothing changed.")).await;
        return Ok(see_other(&Links::new(&id).action));
    }
    let result = managed::update_with_bitbucket(
        &state.pool,
        &state.key,
        &state.clients,
        &state.public_base_url,
        &id,
        input,
    )
    .await;
    match result {
        Ok(_) => {
            tracing::info!(integration.id = %id, "console: settings saved");
            session.flash(&state, Flash::info("Settings saved.")).await;
        }
        Err(AdminError::Invalid(message)) => return refused(&state, &record, posted, message),
        // Saved, but Bitbucket's webhook could not follow: the message says so.
        Err(AdminError::Bitbucket(message)) => {
            tracing::warn!(integration.id = %id, "console: settings saved, webhook not updated");
            session.flash(&state, Flash::error(message)).await;
        }
        Err(err) => return Err(err.into()),
    }
    Ok(see_other(&Links::new(&id).action))
}

/// The form again, as posted (secrets excepted), with why it was not saved (422).
fn refused(
    state: &AppState,
    record: &IntegrationRecord,
    posted: CsrfForm<SettingsForm>,
    message: String,
) -> Result<Response, ConsoleError> {
    let extra = Extra {
        posted: Some(posted.form),
        form_error: Some(message),
        checks: None,
    };
    render(
        state,
        &posted.session,
        record,
        extra,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

/// Runs every check of `relay integration:validate` and shows them on the page.
pub(crate) async fn validate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    let record = relay_store::integrations::get(&state.pool, &id).await?;
    let checks = crate::admin::bitbucket_side::validate(
        &state.clients,
        &state.key,
        &state.public_base_url,
        &record,
    )
    .await;
    let extra = Extra {
        posted: None,
        form_error: None,
        checks: Some(checks),
    };
    render(&state, &posted.session, &record, extra, StatusCode::OK)
}

/// Queues a reconciliation, as `relay integration:resync` does.
pub(crate) async fn resync(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    relay_store::integrations::get(&state.pool, &id).await?;
    let job = relay_core::JobSpec::Reconcile {
        reason: "requested from the console".into(),
    };
    relay_store::jobs::enqueue(&state.pool, &id, None, &job).await?;
    tracing::info!(integration.id = %id, "console: resync queued");
    posted
        .session
        .flash(
            &state,
            Flash::info(
                "Resync queued: a reconcile job will list the branches and pull requests on Bitbucket.",
            ),
        )
        .await;
    Ok(see_other(&Links::new(&id).action))
}
