//! Shared helpers for relay-core's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use relay_core::{
    CommitHash, Environment, EnvironmentKind, EnvironmentStatus, Event, PrState, PullRequestInfo,
    Settings,
};

/// One fixture body with the `X-Event-Key` Bitbucket would send with it (see
/// `relay_fixtures::TABLE`).
#[derive(Clone)]
pub(crate) struct Fixture {
    /// `bitbucket-cloud/push.json`
    pub name: String,
    pub event_key: String,
    pub body: Vec<u8>,
}

/// Every fixture of the repository's `fixtures/` directory, Cloud then Server, sorted.
pub(crate) fn all_fixtures() -> Vec<Fixture> {
    static CACHE: std::sync::OnceLock<Vec<Fixture>> = std::sync::OnceLock::new();
    CACHE.get_or_init(load_fixtures).clone()
}

fn load_fixtures() -> Vec<Fixture> {
    relay_fixtures::load_all()
        .unwrap()
        .into_iter()
        .map(|f| Fixture {
            name: f.name,
            event_key: f.event_key.to_owned(),
            body: f.body,
        })
        .collect()
}

pub(crate) fn fixture_event(name: &str) -> Event {
    let f = all_fixtures().into_iter().find(|f| f.name == name).unwrap();
    relay_core::parse(&f.event_key, &f.body).unwrap()
}

pub(crate) fn hash(s: &str) -> CommitHash {
    CommitHash::parse(s).unwrap()
}

/// A distinct, well-spread 40-hex id per small number (abbreviations of two of them differ).
pub(crate) fn commit(n: u32) -> CommitHash {
    let mix = |mut z: u64| {
        // splitmix64
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let n = u64::from(n);
    let hex = format!(
        "{:016x}{:016x}{:016x}",
        mix(n * 3),
        mix(n * 3 + 1),
        mix(n * 3 + 2)
    );
    hash(&hex[..40])
}

/// fetch × prune × build PRs × post-merge, other settings at their defaults, default branch
/// `master` (the fixtures' default).
pub(crate) fn option_matrix() -> Vec<Settings> {
    let mut out = Vec::new();
    for bits in 0..16u8 {
        out.push(Settings {
            fetch_branches: bits & 1 != 0,
            prune_branches: bits & 2 != 0,
            build_pull_requests: bits & 4 != 0,
            build_pull_requests_post_merge: bits & 8 != 0,
            default_branch: Some("master".into()),
            ..Settings::default()
        });
    }
    out
}

pub(crate) fn branch_env(
    name: &str,
    branch: &str,
    status: EnvironmentStatus,
    head: Option<CommitHash>,
) -> Environment {
    Environment {
        name: name.into(),
        kind: if branch == "master" {
            EnvironmentKind::Production
        } else {
            EnvironmentKind::Branch
        },
        parent: (branch != "master").then(|| "master".into()),
        status,
        branch: Some(branch.into()),
        head_commit: head,
        pr: None,
        last_activity_ms: None,
        waiting: None,
    }
}

pub(crate) fn pr_env(
    id: u64,
    source: &str,
    target: &str,
    head: CommitHash,
    status: EnvironmentStatus,
    state: PrState,
    updated_at_ms: Option<i64>,
) -> Environment {
    Environment {
        name: format!("pr-{id}"),
        kind: EnvironmentKind::PullRequest,
        parent: Some(target.into()),
        status,
        branch: None,
        head_commit: Some(head),
        pr: Some(PullRequestInfo {
            id,
            source_branch: source.into(),
            source_repository: "brydzewski/foo".into(),
            target_branch: target.into(),
            target_commit: None,
            state,
            updated_at_ms,
        }),
        last_activity_ms: None,
        waiting: None,
    }
}

pub(crate) fn push_event(branch: &str, old: Option<CommitHash>, new: Option<CommitHash>) -> Event {
    Event::Push {
        changes: vec![relay_core::RefChange {
            kind: relay_core::RefKind::Branch,
            name: branch.into(),
            old,
            new,
            forced: false,
        }],
        truncated: false,
    }
}

pub(crate) fn repo(full_name: &str) -> relay_core::event::RepoRef {
    relay_core::event::RepoRef {
        full_name: full_name.into(),
        id: None,
    }
}

pub(crate) fn pull_request(
    id: u64,
    source: &str,
    source_commit: CommitHash,
    target: &str,
    state: PrState,
    updated: i64,
) -> relay_core::PullRequest {
    relay_core::PullRequest {
        id,
        title: format!("PR {id}"),
        state,
        source: relay_core::event::PrEndpoint {
            branch: source.into(),
            commit: source_commit,
            repository: repo("ws/repo"),
        },
        target: relay_core::event::PrEndpoint {
            branch: target.into(),
            commit: commit(999),
            repository: repo("ws/repo"),
        },
        draft: false,
        updated_at_ms: Some(updated),
    }
}

pub(crate) fn pr_event(action: relay_core::PrAction, pr: relay_core::PullRequest) -> Event {
    Event::PullRequest { action, pr }
}

/// Plans `event`, asserts that replaying it against the result changes nothing, and
/// returns the plan and the resulting state.
pub(crate) fn step(
    settings: &Settings,
    state: &[Environment],
    event: &Event,
) -> (relay_core::Plan, Vec<Environment>) {
    let plan = relay_core::plan(settings, event, state);
    let after = plan.apply(state);
    let replay = relay_core::plan(settings, event, &after);
    assert!(
        replay.is_empty(),
        "replay not empty for {event:?}\nstate {after:#?}\nreplay {replay:#?}"
    );
    (plan, after)
}

pub(crate) fn env<'a>(state: &'a [Environment], name: &str) -> &'a Environment {
    state
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name} in {state:#?}"))
}

/// [`step`] for an event received at `now_ms`.
pub(crate) fn step_at(
    settings: &Settings,
    state: &[Environment],
    event: &Event,
    now_ms: i64,
) -> (relay_core::Plan, Vec<Environment>) {
    let context = relay_core::PlanContext {
        now_ms: Some(now_ms),
    };
    let plan = relay_core::plan_at(settings, event, state, context);
    let after = plan.apply(state);
    let replay = relay_core::plan_at(settings, event, &after, context);
    assert!(
        replay.is_empty(),
        "replay not empty for {event:?}\nstate {after:#?}\nreplay {replay:#?}"
    );
    (plan, after)
}

/// The kinds of a plan's jobs, in order.
pub(crate) fn job_kinds(plan: &relay_core::Plan) -> Vec<&'static str> {
    plan.jobs.iter().map(|j| j.kind().as_str()).collect()
}

/// The deploy-side events a plan sends, as `(environment, event)`.
pub(crate) fn deploy_events(plan: &relay_core::Plan) -> Vec<(String, relay_core::DeployEvent)> {
    plan.jobs
        .iter()
        .filter_map(|j| match j {
            relay_core::JobSpec::NotifyDeploySide {
                environment, event, ..
            } => Some((environment.clone(), *event)),
            _ => None,
        })
        .collect()
}
