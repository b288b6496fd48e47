//! The branch rows of the rule table (`docs/ARCHITECTURE.md`; and snapshots, naming), one
//! scenario each, plus their ordering rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use relay_core::plan::branch_ref;
use relay_core::{
    DeployEvent, EnvironmentKind, EnvironmentStatus as St, Event, JobKind, JobSpec, PrAction,
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
fn branch_created_gets_an_inactive_environment_parented_to_production() {
    let (plan, after) = step(
        &settings(),
        &[],
        &push_event("feature/Login", None, Some(commit(1))),
    );
    let e = &after[0];
    assert!(e.name.starts_with("feature-login-"), "{}", e.name);
    assert_eq!((e.kind, e.status), (EnvironmentKind::Branch, St::Inactive));
    assert_eq!(e.parent.as_deref(), Some("master"));
    assert_eq!(kinds(&plan), ["mirror_branch", "notify_deploy_side"]);
}

#[test]
fn branch_updated_mirrors_and_deploys_only_when_active() {
    for (status, deploys) in [
        (St::Inactive, false),
        (St::Active, true),
        (St::Failed, true),
    ] {
        let state = vec![branch_env("dev", "dev", status, Some(commit(1)))];
        let (plan, after) = step(
            &settings(),
            &state,
            &push_event("dev", Some(commit(1)), Some(commit(2))),
        );
        assert_eq!(after[0].head_commit, Some(commit(2)));
        assert_eq!(
            plan.jobs.iter().any(|j| j.kind() == JobKind::Deploy),
            deploys,
            "{status:?}"
        );
        assert!(
            matches!(&plan.jobs[0], JobSpec::MirrorBranch { branch, commit: c, deploy } if branch == "dev" && *c == commit(2) && *deploy == deploys),
            "only deploying environments reach the deploy remote: {status:?}"
        );
    }
}

#[test]
fn default_branch_is_production_even_without_fetch() {
    let s = Settings {
        fetch_branches: false,
        ..settings()
    };
    let (plan, after) = step(&s, &[], &push_event("master", None, Some(commit(1))));
    assert_eq!(
        (after[0].kind, after[0].status),
        (EnvironmentKind::Production, St::Active)
    );
    assert_eq!(
        kinds(&plan),
        [
            "mirror_branch",
            "notify_deploy_side",
            "notify_deploy_side",
            "deploy"
        ]
    );
    let (plan, _) = step(
        &s,
        &after,
        &push_event("master", Some(commit(1)), Some(commit(2))),
    );
    assert_eq!(kinds(&plan), ["mirror_branch", "deploy"]);
    // Other branches are not tracked at all.
    assert!(relay_core::plan(&s, &push_event("dev", None, Some(commit(1))), &after).is_empty());
}

#[test]
fn post_merge_rebuilds_open_pull_requests_on_a_target_push() {
    let s = Settings {
        build_pull_requests_post_merge: true,
        ..settings()
    };
    let (_, state) = step(&s, &[], &push_event("master", None, Some(commit(1))));
    let mut pr = pull_request(7, "dev", commit(50), "master", PrState::Open, 10);
    pr.target.commit = commit(1);
    let (plan, state) = step(&s, &state, &pr_event(PrAction::Opened, pr));
    assert!(plan.jobs.iter().any(|j| matches!(
        j,
        JobSpec::BuildPullRequest {
            post_merge: true,
            ..
        }
    )));
    let (plan, state) = step(
        &s,
        &state,
        &push_event("master", Some(commit(1)), Some(commit(2))),
    );
    assert_eq!(
        kinds(&plan),
        ["mirror_branch", "deploy", "build_pull_request"]
    );
    assert_eq!(
        env(&state, "pr-7").pr.as_ref().unwrap().target_commit,
        Some(commit(2))
    );
    // Without post-merge, the same push rebuilds nothing.
    let (plan, _) = step(
        &settings(),
        &state,
        &push_event("master", Some(commit(2)), Some(commit(3))),
    );
    assert_eq!(kinds(&plan), ["mirror_branch", "deploy"]);
}

#[test]
fn branch_deleted_only_with_effective_prune() {
    let state = vec![
        branch_env("master", "master", St::Active, Some(commit(9))),
        branch_env("dev", "dev", St::Active, Some(commit(1))),
    ];
    let delete = push_event("dev", Some(commit(1)), None);
    let (plan, after) = step(&settings(), &state, &delete);
    assert_eq!(env(&after, "dev").status, St::Deleting);
    assert!(plan.jobs.contains(&JobSpec::DeleteRef {
        name: branch_ref("dev")
    }));
    assert!(plan.jobs.iter().any(|j| matches!(
        j,
        JobSpec::NotifyDeploySide {
            event: DeployEvent::Deleted,
            ..
        }
    )));
    for s in [
        Settings {
            prune_branches: false,
            ..settings()
        },
        // Prune is forced off without fetch, even though it is asked for.
        Settings {
            fetch_branches: false,
            ..settings()
        },
    ] {
        assert!(relay_core::plan(&s, &delete, &state).is_empty());
    }
    // Never the default branch.
    let plan = relay_core::plan(
        &settings(),
        &push_event("master", Some(commit(9)), None),
        &state,
    );
    assert!(plan.is_empty(), "{plan:?}");
}

#[test]
fn tags_are_ignored() {
    let event = Event::Push {
        changes: vec![relay_core::RefChange {
            kind: relay_core::RefKind::Tag,
            name: "v1".into(),
            old: None,
            new: Some(commit(1)),
            forced: false,
        }],
        truncated: false,
    };
    let plan = relay_core::plan(&settings(), &event, &[]);
    assert!(plan.is_empty() && !plan.notes.is_empty());
}

#[test]
fn out_of_order_push_asks_for_the_truth_instead_of_moving_back() {
    let s = settings();
    let state = vec![branch_env("dev", "dev", St::Active, Some(commit(3)))];
    // An older push (1 -> 2) arriving after 3 was stored.
    let (plan, state) = step(
        &s,
        &state,
        &push_event("dev", Some(commit(1)), Some(commit(2))),
    );
    assert_eq!(state[0].head_commit, None);
    assert_eq!(kinds(&plan), ["reconcile"]);
    // Further pushes wait for the snapshot, which sets the real head.
    assert!(relay_core::plan(
        &s,
        &push_event("dev", Some(commit(3)), Some(commit(4))),
        &state
    )
    .is_empty());
    let snapshot = Event::Snapshot {
        branches: vec![("master".into(), commit(9)), ("dev".into(), commit(4))],
        pull_requests: vec![],
    };
    let (plan, state) = step(&s, &state, &snapshot);
    assert_eq!(env(&state, "dev").head_commit, Some(commit(4)));
    assert!(plan.jobs.contains(&JobSpec::Deploy {
        environment: "dev".into(),
        commit: commit(4)
    }));
}

#[test]
fn a_late_creation_after_deletion_does_not_resurrect() {
    let s = settings();
    let state = vec![branch_env("dev", "dev", St::Deleting, Some(commit(2)))];
    let (plan, state) = step(&s, &state, &push_event("dev", None, Some(commit(1))));
    assert_eq!(state[0].status, St::Deleting);
    assert_eq!(kinds(&plan), ["reconcile"]);
}

#[test]
fn missed_creation_is_healed_by_the_update() {
    let (plan, state) = step(
        &settings(),
        &[],
        &push_event("dev", Some(commit(1)), Some(commit(2))),
    );
    assert_eq!(state[0].head_commit, Some(commit(2)));
    assert_eq!(kinds(&plan), ["mirror_branch", "notify_deploy_side"]);
}

#[test]
fn branch_names_never_take_pull_request_names() {
    let s = settings();
    let (_, state) = step(
        &s,
        &[],
        &pr_event(
            PrAction::Opened,
            pull_request(5, "x", commit(1), "master", PrState::Open, 1),
        ),
    );
    let (_, state) = step(&s, &state, &push_event("pr-5", None, Some(commit(2))));
    let branch = state
        .iter()
        .find(|e| e.kind == EnvironmentKind::Branch)
        .unwrap();
    assert!(
        branch.name.starts_with("pr-5-") && branch.name.len() == 13,
        "{}",
        branch.name
    );
    assert!(relay_core::naming::find_conflicts(&state).is_empty());
}

#[test]
fn colliding_sanitized_names_stay_distinct() {
    let s = settings();
    let mut state = Vec::new();
    for (i, b) in ["feature/x", "Feature_X", "feature-x", "FEATURE/X"]
        .iter()
        .enumerate()
    {
        state = step(&s, &state, &push_event(b, None, Some(commit(i as u32)))).1;
    }
    assert_eq!(state.len(), 4);
    assert!(relay_core::naming::find_conflicts(&state).is_empty());
    assert!(state.iter().any(|e| e.name == "feature-x"));
}

#[test]
fn unknown_default_branch_gives_no_parent() {
    let s = Settings::default();
    let (_, state) = step(&s, &[], &push_event("dev", None, Some(commit(1))));
    assert_eq!(
        (state[0].kind, state[0].parent.clone()),
        (EnvironmentKind::Branch, None)
    );
}

#[test]
fn snapshot_creates_updates_and_prunes() {
    let s = settings();
    let state = vec![
        branch_env("master", "master", St::Active, Some(commit(1))),
        branch_env("old", "old", St::Inactive, Some(commit(2))),
        branch_env("dev", "dev", St::Active, Some(commit(3))),
        pr_env(
            1,
            "dev",
            "master",
            commit(3),
            St::Active,
            PrState::Open,
            Some(5),
        ),
        pr_env(
            2,
            "gone",
            "master",
            commit(4),
            St::Active,
            PrState::Open,
            Some(5),
        ),
    ];
    let snapshot = Event::Snapshot {
        branches: vec![
            ("master".into(), commit(1)),
            ("dev".into(), commit(6)),
            ("new".into(), commit(7)),
        ],
        pull_requests: vec![
            pull_request(1, "dev", commit(6), "master", PrState::Open, 6),
            pull_request(3, "new", commit(7), "master", PrState::Open, 6),
        ],
    };
    let (_, after) = step(&s, &state, &snapshot);
    assert_eq!(env(&after, "old").status, St::Deleting);
    assert_eq!(env(&after, "dev").head_commit, Some(commit(6)));
    assert_eq!(env(&after, "new").status, St::Inactive);
    assert_eq!(env(&after, "pr-1").head_commit, Some(commit(6)));
    assert_eq!(env(&after, "pr-2").status, St::Deleting);
    assert_eq!(env(&after, "pr-3").status, St::Active);
    assert_eq!(env(&after, "master").status, St::Active);
    // Without prune the branch environment stays; PR environments still follow the list.
    let keep = Settings {
        prune_branches: false,
        ..settings()
    };
    let (_, after) = step(&keep, &state, &snapshot);
    assert_eq!(env(&after, "old").status, St::Inactive);
    assert_eq!(env(&after, "pr-2").status, St::Deleting);
    // The default branch is never pruned, listed or not.
    let (_, after) = step(
        &s,
        &state,
        &Event::Snapshot {
            branches: vec![],
            pull_requests: vec![],
        },
    );
    assert_eq!(env(&after, "master").status, St::Active);
}

#[test]
fn plans_and_snapshots_survive_json() {
    let snapshot = Event::Snapshot {
        branches: vec![("master".into(), commit(1)), ("dev".into(), commit(2))],
        pull_requests: vec![pull_request(
            1,
            "dev",
            commit(2),
            "master",
            relay_core::PrState::Open,
            5,
        )],
    };
    let json = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), snapshot);
    let plan = relay_core::plan(&settings(), &snapshot, &[]);
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        serde_json::from_value::<relay_core::Plan>(json.clone()).unwrap(),
        plan
    );
    assert_eq!(json["jobs"][0]["kind"], "mirror_branch");
    assert_eq!(json["changes"][0]["op"], "create");
    assert_eq!(json["changes"][0]["environment"]["status"], "active");
    for job in &plan.jobs {
        assert_eq!(
            serde_json::to_value(job).unwrap()["kind"],
            job.kind().as_str()
        );
    }
}
