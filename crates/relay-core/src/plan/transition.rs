//! Operator transitions: activate and deactivate one environment.
//!
//! The checks are public so the admin layer can answer 404 or 409 at once; the planner runs
//! them again when the transition's turn comes in the delivery order, because the state may
//! have moved in between (a branch deleted, an environment already activated). Planning the
//! same transition twice gives an empty plan the second time: replays are safe.

use std::fmt;

use crate::environment::{Environment, EnvironmentKind, EnvironmentStatus};
use crate::event::Transition;

use super::builder::Builder;
use super::{branch_ref, DeployEvent, EnvironmentChange, JobSpec};

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

/// Active from now on: the deploy side hears `activated` (then `synced` when asked), and the
/// current head is mirrored, pushed and deployed as a push would have been.
fn activate(b: &mut Builder<'_>, env: &Environment, sync_data: bool) {
    let name = env.name.as_str();
    b.change(EnvironmentChange::SetStatus {
        name: name.to_owned(),
        status: EnvironmentStatus::Active,
    });
    b.notify(name, DeployEvent::Activated, env.parent.clone(), false);
    if sync_data {
        b.job(JobSpec::SyncFromParent {
            environment: name.to_owned(),
            parent: env.parent.clone(),
        });
    }
    let Some(head) = env.head_commit.clone() else {
        b.note(format!(
            "{name}: head unknown; deployed once the reconciliation sets it"
        ));
        b.reconcile(format!("{name} activated with an unknown head"));
        return;
    };
    match (&env.pr, &env.branch) {
        (Some(pr), _) => b.build_pull_request(name, pr, &head),
        (None, Some(branch)) => {
            b.job(JobSpec::MirrorBranch {
                branch: branch.clone(),
                commit: head.clone(),
                deploy: true,
            });
            b.job(JobSpec::Deploy {
                environment: name.to_owned(),
                commit: head,
            });
        }
        (None, None) => b.note(format!("{name}: no branch to deploy")),
    }
}

/// Inactive from now on: the environment's ref leaves the deploy remote and the deploy side
/// hears `deactivated`; the row, its head and the mirror stay, so later pushes are mirrored.
fn deactivate(b: &mut Builder<'_>, env: &Environment) {
    let name = env.name.as_str();
    b.change(EnvironmentChange::SetStatus {
        name: name.to_owned(),
        status: EnvironmentStatus::Inactive,
    });
    b.job(JobSpec::Undeploy {
        environment: name.to_owned(),
        reference: deployed_ref(env),
    });
    b.notify(name, DeployEvent::Deactivated, env.parent.clone(), false);
}
