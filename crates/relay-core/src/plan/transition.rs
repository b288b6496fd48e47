//! Operator transitions: activate and deactivate one environment.
//!
//! The checks are public so the admin layer can answer 404 or 409 at once; the planner runs
//! them again when the transition's turn comes in the delivery order, because the state may
//! have moved in between (a branch deleted, an environment already activated). Planning the
//! same transition twice gives an empty plan the second time: replays are safe.

use std::fmt;

use crate::environment::{Environment, EnvironmentKind};
use crate::event::Transition;
use crate::policy::WaitingReason;

use super::branch_ref;
use super::builder::Builder;

/// Why a transition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("environment {0:?} does not exist")]
    Unknown(String),
    #[error("{0:?} is the production environment (the default branch) and cannot be deactivated")]
    Production(String),
    #[error("environment {0:?} is deleted and cannot be activated")]
    Deleted(String),
}

/// A transition that is allowed: it changes something, or it was already done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionCheck {
    Applies,
    AlreadyDone,
}

impl fmt::Display for TransitionCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Applies => "applies",
            Self::AlreadyDone => "already done",
        })
    }
}

/// Whether `transition` may be applied to environment `name` in `environments`.
pub fn check_transition(
    environments: &[Environment],
    name: &str,
    transition: Transition,
) -> Result<TransitionCheck, TransitionError> {
    let env = environments
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| TransitionError::Unknown(name.to_owned()))?;
    match transition {
        Transition::Activate { .. } if env.status.is_gone() => {
            Err(TransitionError::Deleted(name.to_owned()))
        }
        Transition::Activate { .. } if env.status.deploys() => Ok(TransitionCheck::AlreadyDone),
        Transition::Activate { .. } => Ok(TransitionCheck::Applies),
        Transition::Deactivate if env.kind == EnvironmentKind::Production => {
            Err(TransitionError::Production(name.to_owned()))
        }
        Transition::Deactivate if env.status.deploys() => Ok(TransitionCheck::Applies),
        // Held inactive by the relay (waiting for a slot, a push, a ready draft): stopping
        // means it no longer waits.
        Transition::Deactivate if env.is_alive() && env.waiting.is_some() => {
            Ok(TransitionCheck::Applies)
        }
        // Inactive, or deleted: either way nothing is deployed any more.
        Transition::Deactivate => Ok(TransitionCheck::AlreadyDone),
    }
}

/// The ref an environment has on the deploy remote: branches keep their name, pull-request
/// environments are pushed as `refs/heads/<environment name>`.
pub fn deployed_ref(env: &Environment) -> String {
    match (&env.kind, &env.branch) {
        (EnvironmentKind::PullRequest, _) | (_, None) => branch_ref(&env.name),
        (_, Some(branch)) => branch_ref(branch),
    }
}

pub(super) fn plan_transition(b: &mut Builder<'_>, name: &str, transition: Transition) {
    match check_transition(&b.state, name, transition) {
        Err(refused) => b.note(format!("refused: {refused}")),
        Ok(TransitionCheck::AlreadyDone) => b.note(match transition {
            Transition::Activate { .. } => format!("{name}: already active"),
            Transition::Deactivate => format!("{name}: already inactive"),
        }),
        Ok(TransitionCheck::Applies) => {
            let Some(env) = b.env(name).cloned() else {
                return;
            };
            match transition {
                Transition::Activate { sync_data } => activate(b, &env, sync_data),
                Transition::Deactivate => deactivate(b, &env),
            }
        }
    }
}

/// Active from now on (see [`Builder::start`]); with the cap reached it waits for a slot. A
/// draft held inactive stays so while `build_draft_pull_requests` is off.
fn activate(b: &mut Builder<'_>, env: &Environment, sync_data: bool) {
    if env.waiting_for(WaitingReason::Draft) && !b.settings.build_draft_pull_requests {
        b.note(format!(
            "{}: {}; not activated",
            env.name,
            WaitingReason::Draft.describe()
        ));
        return;
    }
    b.start(env, sync_data);
}

/// Inactive from now on, until an operator activates it again: nothing the relay waits for
/// brings it back. A waiting environment only leaves its queue.
fn deactivate(b: &mut Builder<'_>, env: &Environment) {
    if !env.status.deploys() {
        b.note(format!("{}: no longer waiting", env.name));
    }
    b.stop(env, None);
}
