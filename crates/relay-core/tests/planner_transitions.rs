//! The operator transitions of the rule table (`docs/ARCHITECTURE.md`): activate and
//! deactivate, each allowed and refused case, and their interplay with later pushes. Every
//! `step` also checks that planning the same transition again changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use relay_core::event::Transition;
use relay_core::plan::{branch_ref, check_transition, TransitionCheck, TransitionError};
use relay_core::{DeployEvent, EnvironmentStatus as St, Event, JobSpec, PrState, Settings};

fn settings() -> Settings {
    Settings {
        default_branch: Some("master".into()),
        ..Settings::default()
    }
}

fn transition(name: &str, transition: Transition) -> Event {
    Event::Transition {
        environment: name.into(),
        transition,
    }
}

const ACTIVATE: Transition = Transition::Activate { sync_data: false };

fn kinds(plan: &relay_core::Plan) -> Vec<&'static str> {
    plan.jobs.iter().map(|j| j.kind().as_str()).collect()
}

fn events(plan: &relay_core::Plan) -> Vec<DeployEvent> {
    plan.jobs
        .iter()
        .filter_map(|j| match j {
            JobSpec::NotifyDeploySide { event, .. } => Some(*event),
            _ => None,
        })
        .collect()
}

fn state() -> Vec<relay_core::Environment> {
    vec![
        branch_env("master", "master", St::Active, Some(commit(1))),
        branch_env("dev", "dev", St::Inactive, Some(commit(2))),
        branch_env("live", "live", St::Active, Some(commit(3))),
        branch_env("broken", "broken", St::Failed, Some(commit(4))),
        branch_env("gone", "gone", St::Deleted, Some(commit(5))),
        branch_env("lost", "lost", St::Inactive, None),
        pr_env(
            7,
            "feature",
            "master",
            commit(6),
            St::Inactive,
            PrState::Open,
            Some(1),
        ),
        pr_env(
            8,
            "other",
            "master",
            commit(7),
            St::Active,
            PrState::Open,
            Some(1),
        ),
    ]
}

#[test]
fn the_transition_table() {
    use TransitionCheck::{AlreadyDone, Applies};
    let deactivate = Transition::Deactivate;
    let table: [(&str, Transition, Result<TransitionCheck, TransitionError>); 13] = [
        ("dev", ACTIVATE, Ok(Applies)),
        ("live", ACTIVATE, Ok(AlreadyDone)),
        ("broken", ACTIVATE, Ok(AlreadyDone)),
        (
            "gone",
            ACTIVATE,
            Err(TransitionError::Deleted("gone".into())),
        ),
        ("pr-7", ACTIVATE, Ok(Applies)),
        (
            "nope",
            ACTIVATE,
            Err(TransitionError::Unknown("nope".into())),
        ),
        ("live", deactivate, Ok(Applies)),
        ("broken", deactivate, Ok(Applies)),
        ("pr-8", deactivate, Ok(Applies)),
        ("dev", deactivate, Ok(AlreadyDone)),
        ("gone", deactivate, Ok(AlreadyDone)),
        (
            "master",
            deactivate,
            Err(TransitionError::Production("master".into())),
        ),
        (
            "nope",
            deactivate,
            Err(TransitionError::Unknown("nope".into())),
        ),
    ];
    for (name, t, expected) in table {
        assert_eq!(
            check_transition(&state(), name, t),
            expected,
            "{name} {t:?}"
        );
        // The planner agrees: a refusal or a no-op plans nothing but a note.
        let plan = relay_core::plan(&settings(), &transition(name, t), &state());
        assert_eq!(
            plan.is_empty(),
            expected != Ok(Applies),
            "{name} {t:?}: {plan:?}"
        );
        if expected.is_err() {
            assert!(plan.notes[0].starts_with("refused: "), "{plan:?}");
        }
    }
}

#[test]
fn activating_a_branch_mirrors_pushes_and_deploys_its_head() {
    let (plan, after) = step(&settings(), &state(), &transition("dev", ACTIVATE));
    assert_eq!(env(&after, "dev").status, St::Active);
    assert_eq!(
        kinds(&plan),
        ["notify_deploy_side", "mirror_branch", "deploy"]
    );
    assert_eq!(events(&plan), [DeployEvent::Activated]);
    assert!(plan.jobs.contains(&JobSpec::MirrorBranch {
        branch: "dev".into(),
        commit: commit(2),
        deploy: true,
    }));
    assert!(plan.jobs.contains(&JobSpec::Deploy {
        environment: "dev".into(),
        commit: commit(2),
    }));
}

#[test]
fn activating_with_sync_data_asks_for_the_parents_data_first() {
    let sync = Transition::Activate { sync_data: true };
    let (plan, _) = step(&settings(), &state(), &transition("dev", sync));
    assert_eq!(
        kinds(&plan),
        [
            "notify_deploy_side",
            "sync_from_parent",
            "mirror_branch",
            "deploy"
        ]
    );
    assert!(plan.jobs.contains(&JobSpec::SyncFromParent {
        environment: "dev".into(),
        parent: Some("master".into()),
    }));
}

#[test]
fn activating_a_pull_request_builds_it() {
    let (plan, after) = step(&settings(), &state(), &transition("pr-7", ACTIVATE));
    assert_eq!(env(&after, "pr-7").status, St::Active);
    assert_eq!(kinds(&plan), ["notify_deploy_side", "build_pull_request"]);
}

#[test]
fn activating_with_an_unknown_head_reconciles_first() {
    let (plan, after) = step(&settings(), &state(), &transition("lost", ACTIVATE));
    assert_eq!(env(&after, "lost").status, St::Active);
    assert_eq!(kinds(&plan), ["notify_deploy_side", "reconcile"]);
}

#[test]
fn deactivating_removes_the_deployed_ref_and_keeps_the_row() {
    for (name, reference) in [("live", branch_ref("live")), ("pr-8", branch_ref("pr-8"))] {
        let (plan, after) = step(
            &settings(),
            &state(),
            &transition(name, Transition::Deactivate),
        );
        let row = env(&after, name);
        assert_eq!(row.status, St::Inactive);
        assert!(row.head_commit.is_some(), "the head is kept");
        assert_eq!(kinds(&plan), ["undeploy", "notify_deploy_side"]);
        assert_eq!(events(&plan), [DeployEvent::Deactivated]);
        assert!(plan.jobs.contains(&JobSpec::Undeploy {
            environment: name.into(),
            reference,
        }));
    }
}

#[test]
fn a_deactivated_environment_is_mirrored_but_not_deployed_until_activated() {
    let s = settings();
    let (_, inactive) = step(&s, &state(), &transition("live", Transition::Deactivate));
    let (plan, after) = step(
        &s,
        &inactive,
        &push_event("live", Some(commit(3)), Some(commit(9))),
    );
    assert_eq!(kinds(&plan), ["mirror_branch"]);
    assert!(matches!(
        plan.jobs[0],
        JobSpec::MirrorBranch { deploy: false, .. }
    ));
    let (plan, _) = step(&s, &after, &transition("live", ACTIVATE));
    assert!(plan.jobs.contains(&JobSpec::Deploy {
        environment: "live".into(),
        commit: commit(9),
    }));
}

#[test]
fn a_deactivated_pull_request_is_not_rebuilt_by_updates() {
    let s = settings();
    let (_, inactive) = step(&s, &state(), &transition("pr-8", Transition::Deactivate));
    let mut pr = pull_request(8, "other", commit(8), "master", PrState::Open, 2);
    pr.source.repository = repo("brydzewski/foo");
    pr.target.repository = repo("brydzewski/foo");
    let event = pr_event(relay_core::PrAction::Updated, pr);
    let (plan, after) = step(&s, &inactive, &event);
    assert!(plan.jobs.is_empty(), "{plan:?}");
    assert_eq!(env(&after, "pr-8").head_commit, Some(commit(8)));
    assert!(
        plan.notes.iter().any(|n| n.contains("inactive")),
        "{plan:?}"
    );
}
