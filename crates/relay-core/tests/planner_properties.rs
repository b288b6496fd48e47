//! Property tests: replaying is a no-op, and late events never move an environment back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use proptest::prelude::*;
use relay_core::naming::find_conflicts;
use relay_core::{
    CommitHash, Environment, EnvironmentKind, Event, PrAction, PrState, RefChange, RefKind,
    Settings,
};

const BRANCHES: &[&str] = &["main", "dev", "feature/x", "Feature_X", "pr-1", "PR-2"];

fn arb_settings() -> impl Strategy<Value = Settings> {
    (any::<[bool; 7]>(), any::<bool>()).prop_map(|(b, has_default)| Settings {
        fetch_branches: b[0],
        prune_branches: b[1],
        build_pull_requests: b[2],
        build_pull_requests_post_merge: b[3],
        resync_pull_requests: b[4],
        pull_requests_clone_parent_data: b[5],
        build_fork_pull_requests: b[6],
        default_branch: has_default.then(|| "main".into()),
        ..Settings::default()
    })
}

fn arb_commit() -> impl Strategy<Value = CommitHash> {
    // Sometimes Cloud's 12-character abbreviation of the same commits.
    (0u32..6, any::<bool>()).prop_map(|(n, short)| {
        let full = commit(n);
        if short {
            CommitHash::parse(&full.as_str()[..12]).unwrap()
        } else {
            full
        }
    })
}

fn arb_full_commit() -> impl Strategy<Value = CommitHash> {
    (0u32..6).prop_map(commit)
}

fn arb_branch() -> impl Strategy<Value = String> {
    prop::sample::select(BRANCHES).prop_map(str::to_owned)
}

fn arb_change() -> impl Strategy<Value = RefChange> {
    (
        prop::bool::weighted(0.9),
        arb_branch(),
        prop::option::of(arb_full_commit()),
        prop::option::of(arb_full_commit()),
        any::<bool>(),
    )
        .prop_filter("a change moves something", |(_, _, o, n, _)| {
            o.is_some() || n.is_some()
        })
        .prop_map(|(branch, name, old, new, forced)| RefChange {
            kind: if branch {
                RefKind::Branch
            } else {
                RefKind::Tag
            },
            name,
            old,
            new,
            forced,
        })
}

fn arb_action() -> impl Strategy<Value = PrAction> {
    prop_oneof![
        Just(PrAction::Opened),
        Just(PrAction::Updated),
        Just(PrAction::SourceUpdated),
        Just(PrAction::Modified {
            previous_target: Some("dev".into())
        }),
        Just(PrAction::Merged),
        Just(PrAction::Declined),
        Just(PrAction::Deleted),
        Just(PrAction::Reopened),
    ]
}

fn arb_pr() -> impl Strategy<Value = relay_core::PullRequest> {
    (
        1u64..4,
        arb_branch(),
        arb_commit(),
        arb_branch(),
        arb_commit(),
        prop::sample::select(
            &[
                PrState::Open,
                PrState::Open,
                PrState::Merged,
                PrState::Declined,
            ][..],
        ),
        prop::option::of(0i64..10),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(id, source, sc, target, tc, state, updated, fork, draft)| {
                let mut pr = pull_request(id, &source, sc, &target, state, 0);
                pr.target.commit = tc;
                pr.updated_at_ms = updated;
                pr.draft = draft;
                if fork {
                    pr.source.repository = repo("someone/fork");
                }
                pr
            },
        )
}

fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (prop::collection::vec(arb_change(), 0..4), any::<bool>())
            .prop_map(|(changes, truncated)| Event::Push { changes, truncated }),
        4 => (arb_action(), arb_pr()).prop_map(|(action, pr)| Event::PullRequest { action, pr }),
        1 => (
            prop::collection::vec((arb_branch(), arb_full_commit()), 0..5),
            prop::collection::vec(arb_pr().prop_map(|mut p| { p.state = PrState::Open; p }), 0..3),
        )
            .prop_map(|(branches, pull_requests)| Event::Snapshot { branches, pull_requests }),
        1 => Just(Event::Ping),
        1 => Just(Event::Ignored { event_key: "pr:comment:added".into(), reason: "comment".into() }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// Replaying any event after applying its plan gives an empty plan, from any state the
    /// relay can reach; and names never collide.
    #[test]
    fn replay_is_a_no_op(settings in arb_settings(), history in prop::collection::vec(arb_event(), 0..10), last in arb_event()) {
        let mut state: Vec<Environment> = Vec::new();
        for event in history.iter().chain(std::iter::once(&last)) {
            // `step` asserts that the replay plan is empty.
            state = step(&settings, &state, event).1;
            prop_assert!(find_conflicts(&state).is_empty(), "{:?}", find_conflicts(&state));
        }
    }

    /// A branch's pushes delivered in any order (with repeats): the stored head only ever
    /// moves forward along the history, or becomes unknown pending a reconciliation.
    #[test]
    fn pushes_in_any_order_never_move_a_head_back(
        settings in arb_settings(),
        len in 1usize..6,
        order in prop::collection::vec(any::<prop::sample::Index>(), 1..14),
        branch in arb_branch(),
    ) {
        let history: Vec<CommitHash> = (0..=len as u32).map(commit).collect();
        let mut events = vec![push_event(&branch, None, Some(history[0].clone()))];
        for w in history.windows(2) {
            events.push(push_event(&branch, Some(w[0].clone()), Some(w[1].clone())));
        }
        let position = |h: &Option<CommitHash>| h.as_ref().and_then(|h| history.iter().position(|c| c == h));
        let mut state: Vec<Environment> = Vec::new();
        let mut best: Option<usize> = None;
        for pick in order {
            state = step(&settings, &state, pick.get(&events)).1;
            let head = state.iter().find(|e| e.follows_branch(&branch)).map(|e| e.head_commit.clone());
            if let Some(head) = head {
                if let Some(now) = position(&head) {
                    prop_assert!(best.is_none_or(|b| now >= b), "head moved back from {best:?} to {now}");
                    best = Some(now);
                } else {
                    prop_assert!(head.is_none(), "head {head:?} is not in the history");
                }
            }
        }
    }

    /// One pull request's events (strictly increasing update times, ending in a close)
    /// delivered in any order with repeats: the stored update time never decreases, and once
    /// the close is applied the environment never comes back.
    #[test]
    fn pull_request_events_in_any_order_never_resurrect(
        settings in arb_settings(),
        actions in prop::collection::vec(prop_oneof![
            Just(PrAction::Opened), Just(PrAction::Updated), Just(PrAction::SourceUpdated),
            Just(PrAction::Modified { previous_target: None }),
        ], 1..5),
        close in prop_oneof![Just(PrAction::Merged), Just(PrAction::Declined), Just(PrAction::Deleted)],
        order in prop::collection::vec(any::<prop::sample::Index>(), 1..14),
        targets in prop::collection::vec(prop::sample::select(&["main", "dev"][..]), 5),
    ) {
        let settings = Settings { build_pull_requests: true, ..settings };
        let mut events: Vec<Event> = actions.iter().enumerate().map(|(i, a)| {
            let pr = pull_request(1, "feature", commit(i as u32), targets[i], PrState::Open, i as i64 * 10);
            pr_event(a.clone(), pr)
        }).collect();
        let n = events.len();
        let state_of = match close { PrAction::Merged => PrState::Merged, _ => PrState::Declined };
        events.push(pr_event(close, pull_request(1, "feature", commit(n as u32), "main", state_of, n as i64 * 10)));
        let mut state: Vec<Environment> = Vec::new();
        let mut last_seen: Option<i64> = None;
        let mut closed = false;
        for pick in order.iter() {
            state = step(&settings, &state, pick.get(&events)).1;
            let Some(env) = state.iter().find(|e| e.name == "pr-1") else { continue };
            prop_assert_eq!(env.kind, EnvironmentKind::PullRequest);
            let at = env.pr.as_ref().and_then(|p| p.updated_at_ms);
            prop_assert!(at >= last_seen, "update time went back from {:?} to {:?}", last_seen, at);
            last_seen = at;
            if closed {
                prop_assert!(!env.is_alive(), "closed pull request came back: {:?}", env);
            }
            closed |= !env.is_alive();
        }
    }
}
