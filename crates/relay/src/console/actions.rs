//! The console's seam to the environment lifecycle: "Activate" and "Deactivate" on the
//! environments page call [`crate::admin::environments::transition`], as `relay
//! environment:activate` and the admin API do, and the page shows the answer as a flash
//! message. The same functions' rules decide which buttons the page offers.

use relay_core::event::Transition;
use relay_core::plan::{check_transition, TransitionCheck};
use relay_store::environments::EnvironmentRow;

use crate::admin::environments::{self, TransitionOutcome};
use crate::admin::AdminError;
use crate::console::error::ConsoleError;
use crate::console::render::{short_commit, Stamp};
use crate::console::session::Flash;
use crate::http::AppState;

/// Asks for the transition; `Ok` is the message for the operator: what was queued (with a
/// link to its delivery), that nothing needed doing, or why it was refused.
pub(crate) async fn apply(
    state: &AppState,
    integration_id: &str,
    name: &str,
    transition: Transition,
) -> Result<Flash, ConsoleError> {
    let outcome = environments::transition(&state.pool, integration_id, name, transition).await;
    let (verb, already) = match transition {
        Transition::Activate { .. } => ("Activation", "active"),
        Transition::Deactivate => ("Deactivation", "inactive"),
    };
    match outcome {
        Ok(TransitionOutcome::Queued { delivery_id }) => {
            let message = format!("{verb} of {name} queued (delivery {delivery_id}).");
            Ok(Flash::info(message).with_link(format!("/console/deliveries/{delivery_id}")))
        }
        Ok(TransitionOutcome::Unchanged) => {
            Ok(Flash::info(format!("{name} is already {already}.")))
        }
        // Deactivating production, activating a deleted environment: said on the page.
        Err(AdminError::Refused(message)) => Ok(Flash::error(message)),
        // An unknown environment or integration is the console's 404.
        Err(err) => Err(err.into()),
    }
}

/// Which buttons the row gets: exactly the transitions that would change something, by the
/// planner's own rule (activate an inactive environment; deactivate an active or failed one
/// that is not production). A row the planner cannot read gets none.
pub(crate) fn offered(row: &EnvironmentRow) -> (bool, bool) {
    let Ok(env) = row.to_environment() else {
        return (false, false);
    };
    let applies = |transition| {
        matches!(
            check_transition(std::slice::from_ref(&env), &env.name, transition),
            Ok(TransitionCheck::Applies)
        )
    };
    (
        applies(Transition::Activate { sync_data: false }),
        applies(Transition::Deactivate),
    )
}

/// The environment's last deployment report, as the environments page shows it.
pub(crate) struct LastDeployment {
    pub(crate) state: String,
    pub(crate) commit: Option<String>,
    pub(crate) commit_short: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) log_url: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) reported: Option<Stamp>,
}

/// `None` until the deploy side has reported a deployment of this environment.
pub(crate) fn last_deployment(row: &EnvironmentRow) -> Option<LastDeployment> {
    let state = row.last_deployment_state.clone()?;
    Some(LastDeployment {
        state,
        commit_short: row.last_deployment_commit.as_deref().map(short_commit),
        commit: row.last_deployment_commit.clone(),
        url: row.last_deployment_url.clone(),
        log_url: row.last_deployment_log_url.clone(),
        description: row.last_deployment_description.clone(),
        reported: row.last_deployment_reported_at.map(Stamp::new),
    })
}
