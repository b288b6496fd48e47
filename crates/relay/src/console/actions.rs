//! The console's seam to the environment lifecycle (issue 12): "Activate" and "Deactivate" on
//! the environments page call these, and the page shows what they answer as a flash message.
//!
//! Until the admin functions `activate` / `deactivate` exist they answer
//! [`ActionError::NotAvailable`]. Wiring them is meant to touch this file only: call the admin
//! function, map its refusal (production cannot be deactivated, deleted cannot be activated)
//! to [`ActionError::Refused`] and its success to a sentence for the operator.

use relay_store::environments::EnvironmentRow;

use crate::http::AppState;

/// What the operator asked for on the environments page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRequest<'a> {
    pub integration_id: &'a str,
    pub name: &'a str,
    /// Activate only: also ask the deploy side to copy the parent's data (`--sync-data`).
    pub sync_data: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// Shown as is: the relay cannot do this yet.
    #[error("{0} is not available yet in this relay.")]
    NotAvailable(&'static str),
    /// The transition was refused; the message says why (shown as is).
    #[error("{0}")]
    Refused(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Console(#[from] super::error::ConsoleError),
}

/// Activates an inactive environment. `Ok` is the sentence shown to the operator.
pub async fn activate(
    state: &AppState,
    request: &EnvironmentRequest<'_>,
) -> Result<String, ActionError> {
    let _ = (state, request);
    Err(ActionError::NotAvailable("Activate"))
}

/// Deactivates an environment. `Ok` is the sentence shown to the operator.
pub async fn deactivate(
    state: &AppState,
    request: &EnvironmentRequest<'_>,
) -> Result<String, ActionError> {
    let _ = (state, request);
    Err(ActionError::NotAvailable("Deactivate"))
}

/// The environment's last deployment report, as one line ("success of 1a2b3c… 3 min ago"),
/// for the environments page. Issue 12 adds it to the environment row; until then none.
pub fn last_deployment(row: &EnvironmentRow) -> Option<String> {
    let _ = row;
    None
}
