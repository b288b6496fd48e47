//! The rule planner: `plan(settings, event, environments) -> Plan`, a pure function.
//!
//! A [`Plan`] is data: environment row changes, jobs for the git layer and the deploy side,
//! and human-readable notes for everything skipped. The caller writes all of it in the same
//! transaction that marks the delivery processed.
//!
//! # Rules
//!
//! The rule table of `docs/ARCHITECTURE.md`, row by row:
//!
//! * **Branch created** (`fetch_branches`): environment named by [`crate::naming`], kind
//!   `branch`, **inactive**, parent = the default branch's environment; mirror the branch.
//! * **Branch updated** (`fetch_branches`, tracked): new head, mirror; deploy if active (or
//!   failed, to retry). A push to a branch with no environment creates it, as a missed
//!   creation would have.
//! * **Push to the default branch** (always, even with `fetch_branches` off): environment of
//!   kind `production`, active, created on first sight; mirror and deploy.
//! * **Post-merge** (`build_pull_requests_post_merge`): when any branch moves, every open
//!   pull-request environment targeting it is rebuilt (re-merged).
//! * **Branch deleted** (effective `prune_branches`): delete the environment and
//!   `refs/heads/<branch>`. Never a pull-request environment, never the default branch.
//!   Without prune the environment is kept (noted).
//! * **PR #N opened** (`build_pull_requests`): `pr-N`, parent = the target's environment,
//!   **active**; `created` tells the deploy side `pull_requests_clone_parent_data`; build
//!   the source head, or merge(source into target) when post-merge.
//! * **PR updated / source moved**: rebuild (`resync_pull_requests` adds a sync from the
//!   parent first). **Target changed**: new parent, rebuild. Metadata only: the stored
//!   update time moves, no job.
//! * **PR merged, declined or deleted**: delete `pr-N` and its refs.
//! * **Forks** are skipped unless `build_fork_pull_requests`. **Drafts** are built unless
//!   `build_draft_pull_requests` is off: then a draft gets no environment, one already built
//!   is deactivated, and it comes back when ready for review. **Tags** are ignored (noted).
//!   A category whose setting is off gets nothing but a note.
//! * **Branch filters** (`branch_include`, `branch_exclude`: branches and pull-request
//!   sources; `pull_request_target_include`: pull-request targets; whole-name regular
//!   expressions): an excluded branch or pull request gets no environment, and one it
//!   already has is deleted under effective prune (kept, noted, otherwise). The default
//!   branch is production whatever the filters say.
//! * **Idle TTL** (`environment_idle_ttl`, [`Event::Sweep`]): an active non-production
//!   environment whose last activity (push, build, activation; [`PlanContext::now_ms`]) is
//!   older than the TTL is deactivated and waits for its next push, which activates it.
//! * **The cap** (`max_active_environments`): an environment that would become active while
//!   the cap is reached starts (or stays) inactive, waiting; after every plan, waiting
//!   environments are activated in the order they started waiting while slots are free.
//! * **Snapshot** (the reconciler's listing): creates missing branch and PR environments,
//!   moves heads that differ, deletes branch environments whose branch is gone only with
//!   effective prune, and deletes PR environments whose pull request is no longer open.
//!
//! # Idempotence and order
//!
//! Decisions compare the event with the stored rows, so replaying an event against the state
//! its plan produced gives an empty plan, and a late event never moves an environment back:
//!
//! * **Pushes.** For each branch change: `new` equal to the stored head is a replay (no-op);
//!   `old` equal to it is the next step (applied). Anything else is a missed or out-of-order
//!   push, and the payload cannot say which, so its head is not trusted: the stored head
//!   becomes unknown (`None`) and a [`JobSpec::Reconcile`] is queued. While a head is
//!   unknown, pushes to that branch only produce a note; the reconciler's snapshot, queued
//!   behind them, sets the real head. On an environment already deleted, anything but
//!   another delete is treated the same way, because a re-created branch and a late
//!   creation event look alike.
//! * **Pull requests.** An event whose `updated_at_ms` is older than the stored one is
//!   stale (noted, no-op). A closed pull request (its environment deleting or deleted) is
//!   terminal: only `pr:reopened`, or an opening (webhook or snapshot) strictly newer than
//!   the stored close, brings it back. A close for an unknown pull request stores a deleted
//!   row, so a late "updated" cannot create it afterwards.
//! * **Post-merge targets** use the same replay/next/unknown rule on the pull request's
//!   stored `target_commit`.
//!
//! Cloud's 12-character PR hashes are compared with [`CommitHash::same_commit`] (prefix
//! aware) and are never passed off as full ids: jobs carrying them say so through
//! [`CommitHash::is_full`], and the git layer resolves them after fetching the branch.
//!
//! A [`Event::Snapshot`] is the truth at the moment it was listed; the reconciler must queue
//! it in the integration's delivery order when it lists, so that webhooks sent later are
//! planned after it.

mod builder;
mod jobs;
mod policies;
mod pull_request;
mod push;
mod snapshot;
mod transition;

use serde::{Deserialize, Serialize};

use crate::environment::{Environment, EnvironmentStatus, PullRequestInfo};
use crate::event::{CommitHash, Event};
use crate::policy::Waiting;
use crate::settings::Settings;

use builder::Builder;
pub use jobs::{status_jobs, BuildState, DeployEvent, JobKind, JobSpec};
pub use transition::{check_transition, deployed_ref, TransitionCheck, TransitionError};

/// Everything decided for one event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Row changes, in order; later ones may touch rows earlier ones created.
    pub changes: Vec<EnvironmentChange>,
    /// Jobs, in the order they should run.
    pub jobs: Vec<JobSpec>,
    /// Why things were skipped or deferred, for `delivery:show`.
    pub notes: Vec<String>,
}

/// One change to the environment rows. Names are unique per integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum EnvironmentChange {
    /// Insert the row, or replace the row of that name (only ever a deleted one: a branch
    /// re-created, a pull request reopened).
    Create {
        environment: Environment,
    },
    SetHead {
        name: String,
        head_commit: Option<CommitHash>,
    },
    SetParent {
        name: String,
        parent: Option<String>,
    },
    SetStatus {
        name: String,
        status: EnvironmentStatus,
    },
    SetPullRequest {
        name: String,
        pr: PullRequestInfo,
    },
    /// The environment saw activity at `at_ms` (epoch ms): a push, a build, an activation.
    SetActivity {
        name: String,
        at_ms: i64,
    },
    /// The relay holds the environment inactive (`Some`), or no longer does.
    SetWaiting {
        name: String,
        waiting: Option<Waiting>,
    },
    /// Status becomes `deleting` (and nothing is waited for); the row stays as the memory of
    /// what was deleted.
    Delete {
        name: String,
    },
}

impl EnvironmentChange {
    pub fn environment_name(&self) -> &str {
        match self {
            Self::Create { environment } => &environment.name,
            Self::SetHead { name, .. }
            | Self::SetParent { name, .. }
            | Self::SetStatus { name, .. }
            | Self::SetPullRequest { name, .. }
            | Self::SetActivity { name, .. }
            | Self::SetWaiting { name, .. }
            | Self::Delete { name } => name,
        }
    }
}

/// `refs/heads/<branch>`.
pub fn branch_ref(branch: &str) -> String {
    format!("refs/heads/{branch}")
}

/// The refs the relay keeps for pull request `id`: the source head and the post-merge
/// result, named as Bitbucket Server used to.
pub fn pull_request_refs(id: u64) -> [String; 2] {
    [
        format!("refs/pull-requests/{id}/from"),
        format!("refs/pull-requests/{id}/merge"),
    ]
}

impl Plan {
    /// No change and no job (notes do not count).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.jobs.is_empty()
    }

    /// The environment rows after this plan, computed purely.
    pub fn apply(&self, environments: &[Environment]) -> Vec<Environment> {
        let mut state = environments.to_vec();
        for change in &self.changes {
            apply_change(&mut state, change);
        }
        state
    }
}

pub(crate) fn apply_change(state: &mut Vec<Environment>, change: &EnvironmentChange) {
    if let EnvironmentChange::Create { environment } = change {
        match state.iter_mut().find(|e| e.name == environment.name) {
            Some(row) => *row = environment.clone(),
            None => state.push(environment.clone()),
        }
        return;
    }
    let Some(row) = state
        .iter_mut()
        .find(|e| e.name == change.environment_name())
    else {
        return;
    };
    match change {
        EnvironmentChange::Create { .. } => {}
        EnvironmentChange::SetHead { head_commit, .. } => row.head_commit = head_commit.clone(),
        EnvironmentChange::SetParent { parent, .. } => row.parent = parent.clone(),
        EnvironmentChange::SetStatus { status, .. } => row.status = *status,
        EnvironmentChange::SetPullRequest { pr, .. } => row.pr = Some(pr.clone()),
        EnvironmentChange::SetActivity { at_ms, .. } => row.last_activity_ms = Some(*at_ms),
        EnvironmentChange::SetWaiting { waiting, .. } => row.waiting = *waiting,
        EnvironmentChange::Delete { .. } => {
            row.status = EnvironmentStatus::Deleting;
            row.waiting = None;
        }
    }
}

/// What the planner knows besides the settings, the event and the rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanContext {
    /// When the event reached the relay (epoch ms): the delivery's receipt time. Recorded as
    /// environments' last activity; `None` plans without a clock (no activity recorded).
    pub now_ms: Option<i64>,
}

/// Decides what `event` means for the integration, given its stored `environments`, without
/// a clock: [`plan_at`] with no time.
pub fn plan(settings: &Settings, event: &Event, environments: &[Environment]) -> Plan {
    plan_at(settings, event, environments, PlanContext::default())
}

/// Decides what `event`, received at `context.now_ms`, means for the integration.
pub fn plan_at(
    settings: &Settings,
    event: &Event,
    environments: &[Environment],
    context: PlanContext,
) -> Plan {
    let now_ms = match event {
        Event::Sweep { now_ms } => Some(*now_ms),
        _ => context.now_ms,
    };
    let mut b = Builder::new(settings, environments, now_ms);
    match event {
        Event::Push { changes, truncated } => push::plan_push(&mut b, changes, *truncated),
        Event::PullRequest { action, pr } => pull_request::plan_pull_request(&mut b, action, pr),
        Event::Ping => b.note("ping: nothing to do"),
        Event::Ignored { event_key, reason } => b.note(format!("{event_key} ignored: {reason}")),
        Event::Snapshot {
            branches,
            pull_requests,
        } => snapshot::plan_snapshot(&mut b, branches, pull_requests),
        Event::Transition {
            environment,
            transition,
        } => transition::plan_transition(&mut b, environment, *transition),
        Event::Sweep { now_ms } => policies::plan_sweep(&mut b, *now_ms),
    }
    b.fill_slots();
    b.finish()
}
