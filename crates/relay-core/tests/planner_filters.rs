//! The draft and branch-filter rows of the rule table (`docs/ARCHITECTURE.md`):
//! `build_draft_pull_requests`, `branch_include`, `branch_exclude` and
//! `pull_request_target_include`. Every `step` also checks that replaying the event against
//! the state it produced plans nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use relay_core::event::Transition;
use relay_core::{
    DeployEvent, Environment, EnvironmentStatus as St, Event, JobSpec, PrAction, PrState, Settings,
    WaitingReason,
};

fn settings() -> Settings {
    Settings {
        default_branch: Some("master".into()),
        ..Settings::default()
    }
}

fn no_drafts() -> Settings {
    Settings {
        build_draft_pull_requests: false,
        ..settings()
    }
}

fn draft_pr(id: u64, draft: bool, updated: i64) -> relay_core::PullRequest {
    let mut pr = pull_request(id, "dev", commit(1), "master", PrState::Open, updated);
    pr.draft = draft;
    pr
}

fn snapshot(branches: &[(&str, u32)], pull_requests: Vec<relay_core::PullRequest>) -> Event {
    Event::Snapshot {
        branches: branches
            .iter()
            .map(|(b, n)| ((*b).to_owned(), commit(*n)))
            .collect(),
        pull_requests,
    }
}

fn waiting(state: &[Environment], name: &str) -> Option<WaitingReason> {
    env(state, name).waiting.map(|w| w.reason)
}

#[test]
fn drafts_by_setting() {
    // (build_draft_pull_requests, draft) -> an environment, built?
    let table = [
        (true, false, true),
        (true, true, true),
        (false, false, true),
        (false, true, false),
    ];
    for (build_drafts, draft, built) in table {
        let s = Settings {
            build_draft_pull_requests: build_drafts,
            ..settings()
        };
        let event = pr_event(PrAction::Opened, draft_pr(4, draft, 1));
        let (plan, state) = step(&s, &[], &event);
        assert_eq!(
            job_kinds(&plan).contains(&"build_pull_request"),
            built,
            "{build_drafts} {draft}"
        );
        assert_eq!(state.is_empty(), !built, "{build_drafts} {draft}");
        if !built {
            assert!(
                plan.notes
                    .iter()
                    .any(|n| n.contains("build_draft_pull_requests is off")),
                "{:?}",
                plan.notes
            );
        }
    }
}

#[test]
fn a_draft_turned_ready_gets_its_environment() {
    let s = no_drafts();
    let (_, state) = step(&s, &[], &pr_event(PrAction::Opened, draft_pr(4, true, 1)));
    assert!(state.is_empty());
    let (plan, state) = step(
        &s,
        &state,
        &pr_event(PrAction::Updated, draft_pr(4, false, 2)),
    );
    assert_eq!(env(&state, "pr-4").status, St::Active);
    assert!(job_kinds(&plan).contains(&"build_pull_request"));
}

#[test]
fn a_built_draft_is_deactivated_when_drafts_are_turned_off_and_comes_back_when_ready() {
    let (_, state) = step(
        &settings(),
        &[],
        &pr_event(PrAction::Opened, draft_pr(4, true, 1)),
    );
    assert_eq!(env(&state, "pr-4").status, St::Active);
    // The flag is turned off; the next reconcile lists the draft.
    let s = no_drafts();
    let (plan, state) = step(
        &s,
        &state,
        &snapshot(&[("master", 9)], vec![draft_pr(4, true, 1)]),
    );
    assert_eq!(env(&state, "pr-4").status, St::Inactive);
    assert_eq!(waiting(&state, "pr-4"), Some(WaitingReason::Draft));
    assert!(job_kinds(&plan).contains(&"undeploy"));
    assert!(deploy_events(&plan).contains(&("pr-4".into(), DeployEvent::Deactivated)));
    // An operator cannot activate it while drafts are off.
    let activate = Event::Transition {
        environment: "pr-4".into(),
        transition: Transition::Activate { sync_data: false },
    };
    let (plan, _) = step(&s, &state, &activate);
    assert!(plan.is_empty(), "{plan:?}");
    // New commits on the draft are recorded, not built.
    let mut moved = draft_pr(4, true, 2);
    moved.source.commit = commit(2);
    let (plan, state) = step(&s, &state, &pr_event(PrAction::Updated, moved));
    assert_eq!(env(&state, "pr-4").head_commit, Some(commit(2)));
    assert!(!job_kinds(&plan).contains(&"build_pull_request"));
    // Ready for review: active again and built at the new head.
    let mut ready = draft_pr(4, false, 3);
    ready.source.commit = commit(2);
    let (plan, state) = step(&s, &state, &pr_event(PrAction::Updated, ready));
    assert_eq!(env(&state, "pr-4").status, St::Active);
    assert_eq!(waiting(&state, "pr-4"), None);
    assert!(deploy_events(&plan).contains(&("pr-4".into(), DeployEvent::Activated)));
    assert!(plan.jobs.iter().any(|j| matches!(j,
        JobSpec::BuildPullRequest { source_commit, .. } if *source_commit == commit(2))));
}

#[test]
fn branch_filters_decide_which_branches_get_environments() {
    let s = Settings {
        branch_include: Some("feature/.*|release-.*".into()),
        branch_exclude: Some(".*-wip".into()),
        ..settings()
    };
    // (branch, gets an environment)
    let table = [
        ("feature/login", true),
        ("release-2", true),
        ("feature/login-wip", false),
        ("hotfix", false),
        ("old-feature/x", false),
        // The default branch is production whatever the filters say.
        ("master", true),
    ];
    for (branch, tracked) in table {
        let (plan, state) = step(&s, &[], &push_event(branch, None, Some(commit(1))));
        assert_eq!(!state.is_empty(), tracked, "{branch}: {:?}", plan.notes);
        if !tracked {
            assert!(plan.is_empty());
            assert!(
                plan.notes.iter().any(|n| n.contains("excluded by")),
                "{branch}"
            );
        }
    }
    let exclude_master = Settings {
        branch_exclude: Some("master|dev".into()),
        branch_include: Some("nothing".into()),
        ..settings()
    };
    let (_, state) = step(
        &exclude_master,
        &[],
        &push_event("master", None, Some(commit(1))),
    );
    assert_eq!(env(&state, "master").status, St::Active);
}

#[test]
fn pull_requests_are_filtered_by_source_and_target() {
    let s = Settings {
        branch_exclude: Some("dependabot/.*".into()),
        pull_request_target_include: Some("master|release/.+".into()),
        ..settings()
    };
    // (source, target, gets an environment)
    let table = [
        ("dev", "master", true),
        ("dev", "release/1", true),
        ("dev", "develop", false),
        ("dependabot/npm", "master", false),
        // A pull request from the default branch is not excluded by the branch filters.
        ("master", "release/1", true),
    ];
    for (source, target, built) in table {
        let pr = pull_request(5, source, commit(1), target, PrState::Open, 1);
        let (plan, state) = step(&s, &[], &pr_event(PrAction::Opened, pr));
        assert_eq!(
            !state.is_empty(),
            built,
            "{source} -> {target}: {:?}",
            plan.notes
        );
    }
}

#[test]
fn a_filter_change_is_planned_on_the_next_reconcile() {
    let s = settings();
    let listing = || {
        snapshot(
            &[("master", 1), ("feature/a", 2), ("spike", 3)],
            vec![
                pull_request(6, "spike", commit(3), "master", PrState::Open, 1),
                pull_request(7, "feature/a", commit(2), "master", PrState::Open, 1),
            ],
        )
    };
    let (_, state) = step(&s, &[], &listing());
    assert_eq!(state.iter().filter(|e| e.is_alive()).count(), 5);
    let narrowed = Settings {
        branch_include: Some("feature/.*".into()),
        ..s.clone()
    };
    // Without prune the newly excluded environments are kept, and said so.
    let kept = Settings {
        prune_branches: false,
        ..narrowed.clone()
    };
    let (plan, after) = step(&kept, &state, &listing());
    assert!(plan.is_empty(), "{plan:?}");
    assert!(after.iter().all(|e| e.is_alive()));
    assert!(plan
        .notes
        .iter()
        .any(|n| n.contains("kept (prune_branches is off)")));
    // Under prune they go; what the filter still includes stays.
    let (plan, after) = step(&narrowed, &state, &listing());
    let gone: Vec<&str> = after
        .iter()
        .filter(|e| !e.is_alive())
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(gone, ["spike", "pr-6"]);
    assert!(deploy_events(&plan).contains(&("pr-6".into(), DeployEvent::Deleted)));
    assert!(env(&after, "pr-7").is_alive() && env(&after, "master").is_alive());
    // Widened again: the next listing brings them back.
    let (_, after) = step(&s, &after, &listing());
    assert!(after.iter().all(|e| e.is_alive()));
}

#[test]
fn a_newly_excluded_branch_is_deleted_on_its_next_push_under_prune() {
    let (_, state) = step(
        &settings(),
        &[],
        &push_event("spike", None, Some(commit(1))),
    );
    let s = Settings {
        branch_exclude: Some("spike".into()),
        ..settings()
    };
    let (plan, state) = step(
        &s,
        &state,
        &push_event("spike", Some(commit(1)), Some(commit(2))),
    );
    assert_eq!(env(&state, "spike").status, St::Deleting);
    assert!(plan.jobs.contains(&JobSpec::DeleteRef {
        name: "refs/heads/spike".into()
    }));
}

#[test]
fn a_pattern_edited_into_nonsense_is_ignored_and_said_so() {
    let s = Settings {
        branch_include: Some("(".into()),
        ..settings()
    };
    let (plan, state) = step(&s, &[], &push_event("dev", None, Some(commit(1))));
    assert_eq!(state.len(), 1, "the broken filter filters nothing");
    assert!(plan
        .notes
        .iter()
        .any(|n| n == "branch_include is not a valid regular expression; ignored"));
}
