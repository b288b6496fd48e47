//! Environment operations shared by the CLI, the admin API and the console: activate,
//! deactivate, show, its URL, and the deploy side's deployment reports.
//!
//! Transitions are checked at once (404, 409) and then queued as a `relay:transition`
//! delivery, so the planner applies them in the integration's delivery order like any
//! webhook, and a replayed one changes nothing.

use relay_core::deployment::{DeploymentReport, DeploymentState};
use relay_core::event::{Transition, TRANSITION_EVENT};
use relay_core::plan::{check_transition, TransitionCheck, TransitionError};
use relay_core::{CommitHash, Event};
use relay_store::deliveries::{InsertOutcome, NewDelivery};
use relay_store::deployments::Recorded;
use relay_store::environments::EnvironmentRow;
use relay_store::integrations::IntegrationRecord;
use relay_store::PgPool;
use serde::Deserialize;

use super::{validate, AdminError};

/// What asking for a transition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// Queued as this delivery; the processor applies it in order.
    Queued { delivery_id: i64 },
    /// The environment is already in the state asked for.
    Unchanged,
}

/// Checks and queues `transition` of environment `name`.
pub async fn transition(
    pool: &PgPool,
    integration_id: &str,
    name: &str,
    transition: Transition,
) -> Result<TransitionOutcome, AdminError> {
    relay_store::integrations::get(pool, integration_id).await?;
    let mut conn = pool
        .acquire()
        .await
        .map_err(relay_store::StoreError::from)?;
    let environments =
        relay_store::environments::load_for_planning(&mut conn, integration_id).await?;
    drop(conn);
    match check_transition(&environments, name, transition) {
        Err(TransitionError::Unknown(_)) => {
            Err(AdminError::NotFound(format!("environment {name:?}")))
        }
        Err(refused) => Err(AdminError::Refused(refused.to_string())),
        Ok(TransitionCheck::AlreadyDone) => Ok(TransitionOutcome::Unchanged),
        Ok(TransitionCheck::Applies) => queue(pool, integration_id, name, transition).await,
    }
}

async fn queue(
    pool: &PgPool,
    integration_id: &str,
    name: &str,
    transition: Transition,
) -> Result<TransitionOutcome, AdminError> {
    let event = Event::Transition {
        environment: name.to_owned(),
        transition,
    };
    let body = serde_json::to_vec(&event)
        .map_err(|e| AdminError::Invalid(format!("transition cannot be encoded: {e}")))?;
    let delivery = NewDelivery {
        integration_id: integration_id.to_owned(),
        request_id: None,
        event_key: TRANSITION_EVENT.to_owned(),
        headers: serde_json::json!({ "x-relay-source": "admin" }),
        body: body.into(),
    };
    let outcome = relay_store::deliveries::insert(pool, &delivery)
        .await
        .map_err(|err| match err {
            relay_store::deliveries::InsertError::UnknownIntegration => {
                AdminError::NotFound("integration".into())
            }
            other => AdminError::Invalid(other.to_string()),
        })?;
    let (InsertOutcome::Stored(delivery_id) | InsertOutcome::Duplicate(delivery_id)) = outcome;
    tracing::info!(
        integration.id = integration_id,
        environment = name,
        delivery.id = delivery_id,
        "transition queued"
    );
    Ok(TransitionOutcome::Queued { delivery_id })
}

/// One environment, or `NotFound`.
pub async fn get(
    pool: &PgPool,
    integration_id: &str,
    name: &str,
) -> Result<EnvironmentRow, AdminError> {
    relay_store::integrations::get(pool, integration_id).await?;
    relay_store::environments::get(pool, integration_id, name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("environment {name:?}")))
}

/// The environment's URL: the last deployment's reported URL, else the integration's
/// `environment_url` template; `None` when neither exists.
pub fn url(record: &IntegrationRecord, env: &EnvironmentRow) -> Option<String> {
    relay_core::environment::environment_url(
        env.last_deployment_url.as_deref(),
        record.environment_url.as_deref(),
        &env.name,
    )
}

/// A deployment report as the deploy side sends it (API body, CLI flags).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    pub commit: String,
    pub state: DeploymentState,
    pub url: Option<String>,
    pub log_url: Option<String>,
    pub description: Option<String>,
}

impl ReportInput {
    fn parse(self) -> Result<DeploymentReport, AdminError> {
        let invalid = AdminError::Invalid;
        let commit = CommitHash::parse(self.commit.trim())
            .ok()
            .filter(CommitHash::is_full)
            .ok_or_else(|| {
                invalid(format!(
                    "commit {:?} is not a 40-hex commit id",
                    self.commit
                ))
            })?;
        let link = |field: &str, value: Option<String>| -> Result<Option<String>, AdminError> {
            value
                .filter(|v| !v.trim().is_empty())
                .map(|v| validate::http_url(field, &v).map_err(invalid))
                .transpose()
        };
        let description = self.description.filter(|d| !d.trim().is_empty());
        if description.as_ref().is_some_and(|d| d.len() > 1000) {
            return Err(invalid(
                "description must be at most 1000 characters".into(),
            ));
        }
        Ok(DeploymentReport {
            commit,
            state: self.state,
            url: link("url", self.url)?,
            log_url: link("log_url", self.log_url)?,
            description,
        })
    }
}

/// Records a report for environment `name`.
pub async fn report(
    pool: &PgPool,
    integration_id: &str,
    name: &str,
    input: ReportInput,
) -> Result<Recorded, AdminError> {
    let report = input.parse()?;
    relay_store::integrations::get(pool, integration_id).await?;
    let recorded = relay_store::deployments::record(pool, integration_id, name, &report)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("environment {name:?}")))?;
    tracing::info!(
        integration.id = integration_id,
        environment = name,
        commit = report.commit.as_str(),
        state = report.state.as_str(),
        current_head = recorded.decision.current_head,
        "deployment reported"
    );
    Ok(recorded)
}
