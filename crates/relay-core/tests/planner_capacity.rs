//! The idle-TTL and cap rows of the rule table (`docs/ARCHITECTURE.md`):
//! `environment_idle_ttl` (the sweep, reactivation by a push) and `max_active_environments`
//! (the waiting queue, in order), and how they meet drafts, filters and operators. Every
//! `step_at` also checks that replaying the event plans nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use relay_core::event::Transition;
use relay_core::{
    BuildState, DeployEvent, Environment, EnvironmentStatus as St, Event, JobSpec, PrAction,
    PrState, Settings, WaitingReason,
};

const HOUR_MS: i64 = 3_600_000;

fn settings() -> Settings {
    Settings {
        default_branch: Some("master".into()),
        ..Settings::default()
    }
}

fn ttl(hours: u64) -> Settings {
    Settings {
        environment_idle_ttl: Some(hours * 3600),
        ..settings()
    }
}

fn cap(max: u32) -> Settings {
    Settings {
        max_active_environments: Some(max),
        ..settings()
    }
}

fn open(id: u64, updated: i64) -> Event {
    let source = format!("feature-{id}");
    let pr = pull_request(
        id,
        &source,
        commit(id as u32),
        "master",
        PrState::Open,
        updated,
    );
    pr_event(PrAction::Opened, pr)
}

fn close(id: u64, updated: i64) -> Event {
    let source = format!("feature-{id}");
    let pr = pull_request(
        id,
        &source,
        commit(id as u32),
        "master",
        PrState::Merged,
        updated,
    );
    pr_event(PrAction::Merged, pr)
}

fn sweep(now_ms: i64) -> Event {
    Event::Sweep { now_ms }
}

fn transition(name: &str, transition: Transition) -> Event {
    Event::Transition {
        environment: name.into(),
        transition,
    }
}

fn waiting(state: &[Environment], name: &str) -> Option<WaitingReason> {
    env(state, name).waiting.map(|w| w.reason)
}

fn statuses(state: &[Environment]) -> Vec<(String, St)> {
    state.iter().map(|e| (e.name.clone(), e.status)).collect()
}

/// master (production) and an active branch environment `live`, pushed to at hour 0.
fn live_branch() -> Vec<Environment> {
    let s = settings();
    let (_, state) = step_at(&s, &[], &push_event("master", None, Some(commit(1))), 0);
    let (_, state) = step_at(&s, &state, &push_event("live", None, Some(commit(2))), 0);
    let activate = transition("live", Transition::Activate { sync_data: false });
    let (_, state) = step_at(&s, &state, &activate, 0);
    assert_eq!(env(&state, "live").status, St::Active);
    state
}

#[test]
fn pushes_and_activations_record_activity() {
    let s = settings();
    let (_, state) = step_at(&s, &[], &push_event("dev", None, Some(commit(1))), 5);
    assert_eq!(env(&state, "dev").last_activity_ms, Some(5));
    let (_, state) = step_at(
        &s,
        &state,
        &push_event("dev", Some(commit(1)), Some(commit(2))),
        9,
    );
    assert_eq!(env(&state, "dev").last_activity_ms, Some(9));
    // A replayed push is not activity.
    let (_, state) = step_at(
        &s,
        &state,
        &push_event("dev", Some(commit(1)), Some(commit(2))),
        20,
    );
    assert_eq!(env(&state, "dev").last_activity_ms, Some(9));
    let activate = transition("dev", Transition::Activate { sync_data: false });
    let (_, state) = step_at(&s, &state, &activate, 30);
    assert_eq!(env(&state, "dev").last_activity_ms, Some(30));
    // Planning without a clock records nothing.
    let plan = relay_core::plan(
        &s,
        &push_event("dev", Some(commit(2)), Some(commit(3))),
        &state,
    );
    let after = plan.apply(&state);
    assert_eq!(env(&after, "dev").last_activity_ms, Some(30));
}

#[test]
fn the_sweep_deactivates_idle_environments_only() {
    let state = live_branch();
    // (sweep at, ttl hours, live is deactivated)
    let table = [
        (HOUR_MS - 1, 1, false),
        (HOUR_MS, 1, true),
        (3 * HOUR_MS, 4, false),
    ];
    for (now, hours, expires) in table {
        let (plan, after) = step_at(&ttl(hours), &state, &sweep(now), now);
        assert_eq!(
            env(&after, "live").status == St::Inactive,
            expires,
            "{now} {hours}"
        );
        assert_eq!(
            env(&after, "master").status,
            St::Active,
            "production never expires"
        );
        if expires {
            assert_eq!(waiting(&after, "live"), Some(WaitingReason::Idle));
            assert!(job_kinds(&plan).contains(&"undeploy"));
            assert_eq!(
                deploy_events(&plan),
                [("live".into(), DeployEvent::Deactivated)]
            );
        } else {
            assert!(plan.is_empty(), "{plan:?}");
        }
    }
    let (plan, _) = step_at(&settings(), &state, &sweep(99 * HOUR_MS), 99 * HOUR_MS);
    assert!(plan.is_empty());
    assert_eq!(plan.notes, ["environment_idle_ttl is off: nothing expires"]);
}

#[test]
fn an_environment_without_recorded_activity_starts_its_clock_at_the_sweep() {
    let mut state = live_branch();
    for e in &mut state {
        e.last_activity_ms = None;
    }
    let (plan, after) = step_at(&ttl(1), &state, &sweep(50 * HOUR_MS), 50 * HOUR_MS);
    assert!(plan.jobs.is_empty());
    assert_eq!(env(&after, "live").status, St::Active);
    assert_eq!(env(&after, "live").last_activity_ms, Some(50 * HOUR_MS));
    let (_, after) = step_at(&ttl(1), &after, &sweep(51 * HOUR_MS), 51 * HOUR_MS);
    assert_eq!(env(&after, "live").status, St::Inactive);
}

#[test]
fn an_idle_environment_is_activated_again_by_its_next_push() {
    let s = ttl(1);
    let (_, state) = step_at(&s, &live_branch(), &sweep(2 * HOUR_MS), 2 * HOUR_MS);
    assert_eq!(env(&state, "live").status, St::Inactive);
    let push = push_event("live", Some(commit(2)), Some(commit(3)));
    let (plan, state) = step_at(&s, &state, &push, 3 * HOUR_MS);
    assert_eq!(env(&state, "live").status, St::Active);
    assert_eq!(waiting(&state, "live"), None);
    assert!(plan.jobs.contains(&JobSpec::Deploy {
        environment: "live".into(),
        commit: commit(3),
    }));
    assert!(plan.jobs.contains(&JobSpec::MirrorBranch {
        branch: "live".into(),
        commit: commit(3),
        deploy: true,
    }));
    // One an operator deactivated stays inactive on a push.
    let deactivate = transition("live", Transition::Deactivate);
    let (_, state) = step_at(&s, &state, &deactivate, 3 * HOUR_MS);
    let push = push_event("live", Some(commit(3)), Some(commit(4)));
    let (plan, state) = step_at(&s, &state, &push, 4 * HOUR_MS);
    assert_eq!(env(&state, "live").status, St::Inactive);
    assert!(!job_kinds(&plan).contains(&"deploy"));
}

#[test]
fn an_idle_pull_request_is_rebuilt_by_its_next_source_push() {
    let s = ttl(1);
    let (_, state) = step_at(&s, &[], &open(3, 1), 0);
    let (_, state) = step_at(&s, &state, &sweep(HOUR_MS), HOUR_MS);
    assert_eq!(env(&state, "pr-3").status, St::Inactive);
    let mut moved = pull_request(3, "feature-3", commit(30), "master", PrState::Open, 2);
    moved.title = "moved".into();
    let (plan, state) = step_at(&s, &state, &pr_event(PrAction::Updated, moved), 2 * HOUR_MS);
    assert_eq!(env(&state, "pr-3").status, St::Active);
    assert!(plan.jobs.iter().any(|j| matches!(j,
        JobSpec::BuildPullRequest { source_commit, .. } if *source_commit == commit(30))));
}

#[test]
fn beyond_the_cap_pull_requests_wait_and_say_so() {
    let s = cap(2);
    let (_, state) = step_at(&s, &[], &open(1, 1), 1);
    let (_, state) = step_at(&s, &state, &open(2, 1), 2);
    let (plan, state) = step_at(&s, &state, &open(3, 1), 3);
    assert_eq!(env(&state, "pr-3").status, St::Inactive);
    assert_eq!(
        waiting(&state, "pr-3"),
        Some(WaitingReason::MaxActiveEnvironments)
    );
    assert!(!job_kinds(&plan).contains(&"build_pull_request"));
    assert_eq!(
        deploy_events(&plan),
        [("pr-3".into(), DeployEvent::Created)]
    );
    let waiting_text = "waiting: max active environments reached";
    assert!(plan.jobs.contains(&JobSpec::BuildStatus {
        environment: "pr-3".into(),
        commit: commit(3),
        state: BuildState::InProgress,
        description: waiting_text.into(),
        url: None,
    }));
    assert!(plan.jobs.iter().any(|j| matches!(j,
        JobSpec::PullRequestComment { environment, description, .. }
            if environment == "pr-3" && description == waiting_text)));
    // Without comments, the build status alone.
    let quiet = Settings {
        pull_request_comments: false,
        ..s.clone()
    };
    let (plan, _) = step_at(&quiet, &state, &open(4, 1), 4);
    assert_eq!(job_kinds(&plan), ["notify_deploy_side", "build_status"]);
}

#[test]
fn a_freed_slot_goes_to_the_longest_waiting() {
    let s = cap(1);
    let mut state = Vec::new();
    for id in 1..=4 {
        state = step_at(&s, &state, &open(id, 1), id as i64).1;
    }
    let active = |state: &[Environment]| -> Vec<String> {
        state
            .iter()
            .filter(|e| e.status == St::Active)
            .map(|e| e.name.clone())
            .collect()
    };
    assert_eq!(active(&state), ["pr-1"]);
    // Closing pr-1 frees the slot in the same plan: pr-2 waited longest.
    let (plan, state) = step_at(&s, &state, &close(1, 2), 10);
    assert_eq!(active(&state), ["pr-2"]);
    assert!(deploy_events(&plan).contains(&("pr-2".into(), DeployEvent::Activated)));
    assert!(plan.jobs.iter().any(|j| matches!(j,
        JobSpec::BuildPullRequest { environment, .. } if environment == "pr-2")));
    // An operator's deactivation frees it too.
    let (_, state) = step_at(&s, &state, &transition("pr-2", Transition::Deactivate), 11);
    assert_eq!(active(&state), ["pr-3"]);
    assert_eq!(
        waiting(&state, "pr-2"),
        None,
        "deactivated by hand: not queued again"
    );
    // Deactivating a waiting one takes it out of the queue.
    let (plan, state) = step_at(&s, &state, &transition("pr-4", Transition::Deactivate), 12);
    assert!(plan.jobs.is_empty());
    assert_eq!(waiting(&state, "pr-4"), None);
    let (_, state) = step_at(&s, &state, &close(3, 2), 13);
    assert!(active(&state).is_empty(), "{:?}", statuses(&state));
}

#[test]
fn the_idle_ttl_frees_slots_for_waiting_environments() {
    let s = Settings {
        max_active_environments: Some(1),
        environment_idle_ttl: Some(3600),
        ..settings()
    };
    let (_, state) = step_at(&s, &[], &open(1, 1), 0);
    let (_, state) = step_at(&s, &state, &open(2, 1), 10);
    assert_eq!(env(&state, "pr-2").status, St::Inactive);
    let (plan, state) = step_at(&s, &state, &sweep(HOUR_MS), HOUR_MS);
    assert_eq!(env(&state, "pr-1").status, St::Inactive);
    assert_eq!(waiting(&state, "pr-1"), Some(WaitingReason::Idle));
    assert_eq!(env(&state, "pr-2").status, St::Active);
    assert_eq!(
        deploy_events(&plan),
        [
            ("pr-1".into(), DeployEvent::Deactivated),
            ("pr-2".into(), DeployEvent::Activated)
        ]
    );
    // pr-1's next push wants it back, but the slot is taken: it waits for one.
    let moved = pull_request(1, "feature-1", commit(11), "master", PrState::Open, 2);
    let (_, state) = step_at(&s, &state, &pr_event(PrAction::Updated, moved), HOUR_MS + 5);
    assert_eq!(env(&state, "pr-1").status, St::Inactive);
    assert_eq!(
        waiting(&state, "pr-1"),
        Some(WaitingReason::MaxActiveEnvironments)
    );
}

#[test]
fn operators_activations_wait_for_a_slot_and_production_does_not_count() {
    let s = cap(1);
    let (_, state) = step_at(&s, &[], &push_event("master", None, Some(commit(1))), 0);
    let (_, state) = step_at(&s, &state, &open(1, 1), 1);
    let (_, state) = step_at(&s, &state, &push_event("dev", None, Some(commit(2))), 2);
    let activate = transition("dev", Transition::Activate { sync_data: false });
    let (plan, state) = step_at(&s, &state, &activate, 3);
    assert_eq!(env(&state, "dev").status, St::Inactive);
    assert_eq!(
        waiting(&state, "dev"),
        Some(WaitingReason::MaxActiveEnvironments)
    );
    assert!(!job_kinds(&plan).contains(&"deploy"));
    // The default branch still moves and deploys.
    let push = push_event("master", Some(commit(1)), Some(commit(3)));
    let (plan, _) = step_at(&s, &state, &push, 4);
    assert!(job_kinds(&plan).contains(&"deploy"));
}

#[test]
fn lifting_the_cap_activates_every_waiting_environment_on_the_next_event() {
    let s = cap(1);
    let mut state = Vec::new();
    for id in 1..=3 {
        state = step_at(&s, &state, &open(id, 1), id as i64).1;
    }
    let (plan, state) = step_at(&settings(), &state, &sweep(100), 100);
    assert!(
        state.iter().all(|e| e.status == St::Active),
        "{:?}",
        statuses(&state)
    );
    assert_eq!(
        deploy_events(&plan),
        [
            ("pr-2".into(), DeployEvent::Activated),
            ("pr-3".into(), DeployEvent::Activated)
        ]
    );
}

#[test]
fn a_listing_beyond_the_cap_queues_the_rest_in_listing_order() {
    let s = cap(2);
    let listing = Event::Snapshot {
        branches: vec![("master".into(), commit(1))],
        pull_requests: (1..=4)
            .map(|id| pull_request(id, "dev", commit(5), "master", PrState::Open, 1))
            .collect(),
    };
    let (_, state) = step_at(&s, &[], &listing, 7);
    let waiting_ones: Vec<&str> = state
        .iter()
        .filter(|e| e.waiting.is_some())
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(waiting_ones, ["pr-3", "pr-4"]);
}

#[test]
fn a_waiting_draft_leaves_the_queue_and_an_excluded_one_is_deleted() {
    let s = Settings {
        build_draft_pull_requests: false,
        ..cap(1)
    };
    let (_, state) = step_at(&s, &[], &open(1, 1), 1);
    let (_, state) = step_at(&s, &state, &open(2, 1), 2);
    let (_, state) = step_at(&s, &state, &open(3, 1), 3);
    let mut draft = pull_request(2, "feature-2", commit(2), "master", PrState::Open, 2);
    draft.draft = true;
    let (plan, state) = step_at(&s, &state, &pr_event(PrAction::Updated, draft), 4);
    assert!(plan.jobs.is_empty(), "{plan:?}");
    assert_eq!(waiting(&state, "pr-2"), Some(WaitingReason::Draft));
    // pr-3 is now first in line; excluding it deletes it, and it never gets the slot.
    let narrowed = Settings {
        branch_exclude: Some("feature-3".into()),
        ..s.clone()
    };
    let reopened = pull_request(3, "feature-3", commit(3), "master", PrState::Open, 2);
    let (_, state) = step_at(&narrowed, &state, &pr_event(PrAction::Updated, reopened), 5);
    assert_eq!(env(&state, "pr-3").status, St::Deleting);
    assert_eq!(waiting(&state, "pr-3"), None);
    let (_, state) = step_at(&narrowed, &state, &close(1, 2), 6);
    assert!(
        state.iter().all(|e| e.status != St::Active),
        "the draft is not started: {:?}",
        statuses(&state)
    );
}
