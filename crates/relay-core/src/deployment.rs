//! Deployment reports: what the deploy side says happened to a commit, and what that means
//! for the environment's status and for the build status Bitbucket shows.
//!
//! Every report is recorded. Only one about the environment's current head moves the
//! environment (a failure marks it failed, a success clears that) and reaches Bitbucket: a
//! late report about an older commit must not paint the head green or red.

use serde::{Deserialize, Serialize};

use crate::environment::{Environment, EnvironmentStatus};
use crate::event::CommitHash;
use crate::plan::BuildState;

/// The deploy side's word on one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    InProgress,
    Success,
    Failure,
}

crate::text_enum!(DeploymentState, "deployment state", {
    InProgress => "in_progress",
    Success => "success",
    Failure => "failure",
});

/// How the relay learns that a deployment finished (`--deploy-feedback`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployFeedback {
    /// A 2xx from the deploy hook means deployed.
    #[default]
    Hook,
    /// The hook accepting the event means deploying; the deploy side's report decides.
    Report,
}

crate::text_enum!(DeployFeedback, "deploy feedback", {
    Hook => "hook",
    Report => "report",
});

/// One report, as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentReport {
    pub commit: CommitHash,
    pub state: DeploymentState,
    pub url: Option<String>,
    pub log_url: Option<String>,
    pub description: Option<String>,
}

/// What a report changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportDecision {
    /// The report is about the environment's current head.
    pub current_head: bool,
    /// The environment's new status, and the failure reason that goes with it.
    pub status: Option<(EnvironmentStatus, Option<String>)>,
    /// The build status to report on the head, with its description.
    pub build_status: Option<(BuildState, String)>,
    /// Why nothing else happened, when nothing did.
    pub note: Option<String>,
}

/// Decides what `report` means for `env`.
pub fn on_report(env: &Environment, report: &DeploymentReport) -> ReportDecision {
    let current_head = env
        .head_commit
        .as_ref()
        .is_some_and(|head| head.same_commit(&report.commit));
    let recorded = |note: String| ReportDecision {
        current_head,
        status: None,
        build_status: None,
        note: Some(note),
    };
    if !env.is_alive() {
        return recorded(format!("{} is deleted; report recorded only", env.name));
    }
    if !current_head {
        return recorded(format!(
            "{} is not the head of {}; report recorded only",
            report.commit, env.name
        ));
    }
    if !env.status.deploys() {
        return recorded(format!("{} is inactive; report recorded only", env.name));
    }
    let described = |fallback: &str| {
        report
            .description
            .clone()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| fallback.to_owned())
    };
    let (status, build_status) = match report.state {
        DeploymentState::InProgress => (None, (BuildState::InProgress, described("deploying"))),
        DeploymentState::Success => {
            let recovered = (env.status == EnvironmentStatus::Failed)
                .then_some((EnvironmentStatus::Active, None));
            (recovered, (BuildState::Successful, described("deployed")))
        }
        DeploymentState::Failure => {
            let reason = described("deployment failed");
            (
                Some((EnvironmentStatus::Failed, Some(reason.clone()))),
                (BuildState::Failed, reason),
            )
        }
    };
    ReportDecision {
        current_head,
        status,
        build_status: Some(build_status),
        note: None,
    }
}

/// The build status the relay itself reports once the deploy hook accepted `deployed`, and
/// its description: with [`DeployFeedback::Report`] the deploy side has the last word; with
/// no deploy hook and no deploy remote nothing was deployed, so nothing claims success.
pub fn on_deploy_handed_over(
    feedback: DeployFeedback,
    has_deploy_hook: bool,
    has_deploy_remote: bool,
) -> (BuildState, &'static str) {
    match (feedback, has_deploy_hook, has_deploy_remote) {
        (_, false, false) => (
            BuildState::Stopped,
            "mirrored; no deploy hook or deploy remote configured",
        ),
        (DeployFeedback::Report, _, _) => (BuildState::InProgress, "deploying"),
        (DeployFeedback::Hook, true, _) => (BuildState::Successful, "deployed"),
        (DeployFeedback::Hook, false, true) => {
            (BuildState::Successful, "pushed to the deploy remote")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::EnvironmentKind;

    fn hash(c: char) -> CommitHash {
        CommitHash::parse(&c.to_string().repeat(40)).unwrap()
    }

    fn env(status: EnvironmentStatus) -> Environment {
        Environment {
            name: "dev".into(),
            kind: EnvironmentKind::Branch,
            parent: Some("main".into()),
            status,
            branch: Some("dev".into()),
            head_commit: Some(hash('a')),
            pr: None,
            last_activity_ms: None,
            waiting: None,
        }
    }

    fn report(commit: char, state: DeploymentState) -> DeploymentReport {
        DeploymentReport {
            commit: hash(commit),
            state,
            url: Some("https://dev.example.com".into()),
            log_url: None,
            description: None,
        }
    }

    #[test]
    fn reports_on_the_head_move_the_environment_and_bitbucket() {
        use DeploymentState::*;
        use EnvironmentStatus::*;
        let failed = Some((Failed, Some("deployment failed".to_owned())));
        let table = [
            (Active, InProgress, None, Some(BuildState::InProgress)),
            (Active, Success, None, Some(BuildState::Successful)),
            (Active, Failure, failed.clone(), Some(BuildState::Failed)),
            (
                Failed,
                Success,
                Some((Active, None)),
                Some(BuildState::Successful),
            ),
            (Failed, Failure, failed, Some(BuildState::Failed)),
            (Inactive, Success, None, None),
            (Deleting, Success, None, None),
        ];
        for (status, state, new_status, build) in table {
            let decision = on_report(&env(status), &report('a', state));
            assert_eq!(decision.status, new_status, "{status:?} {state:?}");
            assert_eq!(
                decision.build_status.map(|(s, _)| s),
                build,
                "{status:?} {state:?}"
            );
            assert!(decision.current_head);
        }
    }

    #[test]
    fn a_report_about_another_commit_is_recorded_only() {
        let decision = on_report(
            &env(EnvironmentStatus::Active),
            &report('b', DeploymentState::Failure),
        );
        assert!(!decision.current_head);
        assert_eq!((decision.status, decision.build_status), (None, None));
        assert!(decision.note.is_some());
    }

    #[test]
    fn nothing_claims_success_without_a_deploy_target() {
        use DeployFeedback::*;
        let table = [
            (Hook, true, false, BuildState::Successful),
            (Hook, false, true, BuildState::Successful),
            (Hook, false, false, BuildState::Stopped),
            (Report, true, false, BuildState::InProgress),
            (Report, true, true, BuildState::InProgress),
            (Report, false, false, BuildState::Stopped),
        ];
        for (feedback, hook, remote, expected) in table {
            assert_eq!(
                on_deploy_handed_over(feedback, hook, remote).0,
                expected,
                "{feedback:?} hook={hook} remote={remote}"
            );
        }
    }

    #[test]
    fn texts_round_trip_and_match_serde() {
        for state in DeploymentState::ALL {
            assert_eq!(state.as_str().parse::<DeploymentState>(), Ok(*state));
            let json = serde_json::to_string(state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        for feedback in DeployFeedback::ALL {
            assert_eq!(feedback.as_str().parse::<DeployFeedback>(), Ok(*feedback));
            let json = serde_json::to_string(feedback).unwrap();
            assert_eq!(json, format!("\"{}\"", feedback.as_str()));
        }
    }
}
