//! The pull-request rows of the rule table (`docs/ARCHITECTURE.md`), one scenario each, plus
//! their ordering rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use relay_core::{
    DeployEvent, EnvironmentChange, EnvironmentKind, EnvironmentStatus as St, JobSpec, PrAction,
    PrState, Settings,
};

fn settings() -> Settings {
    Settings {
        default_branch: Some("master".into()),
        ..Settings::default()
    }
}

fn kinds(plan: &relay_core::Plan) -> Vec<&'static str> {
    plan.jobs.iter().map(|j| j.kind().as_str()).collect()
}

#[test]
fn pull_request_lifecycle() {
    let s = settings();
    let open = pull_request(3, "dev", commit(1), "master", PrState::Open, 100);
    let (plan, state) = step(&s, &[], &pr_event(PrAction::Opened, open.clone()));
    let e = env(&state, "pr-3");
    assert_eq!(
        (e.kind, e.status, e.parent.as_deref()),
        (EnvironmentKind::PullRequest, St::Active, Some("master"))
    );
    assert!(plan.jobs.contains(&JobSpec::NotifyDeploySide {
        environment: "pr-3".into(),
        event: DeployEvent::Created,
        parent: Some("master".into()),
        clone_parent_data: true,
    }));
    assert!(matches!(
        plan.jobs.last(),
        Some(JobSpec::BuildPullRequest {
            pr_id: 3,
            post_merge: false,
            ..
        })
    ));

    // Source moved: rebuild; with resync, sync from the parent first.
    let mut moved = open.clone();
    moved.source.commit = commit(2);
    moved.updated_at_ms = Some(200);
    let rs = Settings {
        resync_pull_requests: true,
        ..s.clone()
    };
    let (plan, state) = step(
        &rs,
        &state,
        &pr_event(PrAction::SourceUpdated, moved.clone()),
    );
    assert_eq!(kinds(&plan), ["sync_from_parent", "build_pull_request"]);

    // Target changed: new parent, rebuild.
    let mut retargeted = moved.clone();
    retargeted.target.branch = "release".into();
    retargeted.updated_at_ms = Some(300);
    let action = PrAction::Modified {
        previous_target: Some("master".into()),
    };
    let (plan, state) = step(&s, &state, &pr_event(action, retargeted.clone()));
    assert!(plan.changes.contains(&EnvironmentChange::SetParent {
        name: "pr-3".into(),
        parent: Some("release".into())
    }));
    assert_eq!(kinds(&plan), ["build_pull_request"]);

    // Metadata only: remembered, nothing rebuilt.
    let mut retitled = retargeted.clone();
    retitled.updated_at_ms = Some(400);
    let (plan, state) = step(&s, &state, &pr_event(PrAction::Updated, retitled.clone()));
    assert!(plan.jobs.is_empty() && plan.changes.len() == 1);

    // Merged: deleted with its refs.
    let mut merged = retitled.clone();
    merged.state = PrState::Merged;
    merged.updated_at_ms = Some(500);
    let (plan, state) = step(&s, &state, &pr_event(PrAction::Merged, merged));
    assert_eq!(env(&state, "pr-3").status, St::Deleting);
    assert_eq!(
        env(&state, "pr-3").pr.as_ref().unwrap().state,
        PrState::Merged
    );
    assert_eq!(
        kinds(&plan),
        ["delete_ref", "delete_ref", "notify_deploy_side"]
    );

    // A late update (older) or a replayed opening does not bring it back.
    for late in [
        pr_event(PrAction::Updated, retitled),
        pr_event(PrAction::Opened, open),
    ] {
        assert!(relay_core::plan(&s, &late, &state).is_empty());
    }
}

#[test]
fn declined_and_deleted_close_like_merged() {
    for action in [PrAction::Declined, PrAction::Deleted] {
        let state = vec![pr_env(
            4,
            "dev",
            "master",
            commit(1),
            St::Active,
            PrState::Open,
            Some(1),
        )];
        let closed = pull_request(4, "dev", commit(1), "master", PrState::Declined, 2);
        let (_, after) = step(&settings(), &state, &pr_event(action, closed));
        assert_eq!(after[0].status, St::Deleting);
    }
}

#[test]
fn closed_before_seen_is_recorded_so_a_late_opening_cannot_create_it() {
    let s = settings();
    let merged = pull_request(5, "dev", commit(1), "master", PrState::Merged, 50);
    let (plan, state) = step(&s, &[], &pr_event(PrAction::Merged, merged));
    assert!(plan.jobs.is_empty());
    assert_eq!(state[0].status, St::Deleted);
    let opened = pull_request(5, "dev", commit(1), "master", PrState::Open, 10);
    assert!(relay_core::plan(&s, &pr_event(PrAction::Opened, opened), &state).is_empty());
}

#[test]
fn reopening_brings_a_closed_pull_request_back() {
    let s = settings();
    let state = vec![pr_env(
        6,
        "dev",
        "master",
        commit(1),
        St::Deleted,
        PrState::Declined,
        Some(10),
    )];
    let reopened = pull_request(6, "dev", commit(1), "master", PrState::Open, 20);
    let (_, after) = step(&s, &state, &pr_event(PrAction::Reopened, reopened.clone()));
    assert_eq!(
        (after[0].status, after[0].pr.as_ref().unwrap().state),
        (St::Active, PrState::Open)
    );
    // An update, even newer, is not a reopening.
    assert!(relay_core::plan(&s, &pr_event(PrAction::Updated, reopened), &state).is_empty());
}

#[test]
fn forks_are_skipped_unless_allowed() {
    let mut fork = pull_request(8, "dev", commit(1), "master", PrState::Open, 1);
    fork.source.repository = repo("someone/repo");
    let event = pr_event(PrAction::Opened, fork);
    assert!(relay_core::plan(&settings(), &event, &[]).is_empty());
    let s = Settings {
        build_fork_pull_requests: true,
        ..settings()
    };
    let (plan, _) = step(&s, &[], &event);
    assert!(plan.jobs.iter().any(|j| matches!(j, JobSpec::BuildPullRequest { source_repository, .. } if source_repository == "someone/repo")));
}

#[test]
fn drafts_are_built_and_pull_requests_off_means_nothing() {
    let mut draft = pull_request(9, "dev", commit(1), "master", PrState::Open, 1);
    draft.draft = true;
    let event = pr_event(PrAction::Opened, draft);
    let (plan, _) = step(&settings(), &[], &event);
    assert!(kinds(&plan).contains(&"build_pull_request"));
    let off = Settings {
        build_pull_requests: false,
        ..settings()
    };
    assert!(relay_core::plan(&off, &event, &[]).is_empty());
}

#[test]
fn abbreviated_source_then_full_is_the_same_commit() {
    let s = settings();
    let short = relay_core::CommitHash::parse(&commit(1).as_str()[..12]).unwrap();
    let (_, state) = step(
        &s,
        &[],
        &pr_event(
            PrAction::Opened,
            pull_request(2, "dev", short, "master", PrState::Open, 1),
        ),
    );
    let (plan, state) = step(
        &s,
        &state,
        &pr_event(
            PrAction::Updated,
            pull_request(2, "dev", commit(1), "master", PrState::Open, 1),
        ),
    );
    assert!(plan.jobs.is_empty());
    assert_eq!(state[0].head_commit, Some(commit(1)));
}
