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
//! * **Forks** are skipped unless `build_fork_pull_requests`. **Drafts** are built like any
//!   other pull request. **Tags** are ignored (noted). A category whose setting is off gets
//!   nothing but a note.
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
mod pull_request;
mod push;
mod snapshot;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::environment::{Environment, EnvironmentStatus, PullRequestInfo};
use crate::event::{CommitHash, Event};
use crate::settings::Settings;

use builder::Builder;

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
    /// Status becomes `deleting`; the row stays as the memory of what was deleted.
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
            | Self::Delete { name } => name,
        }
    }
}

/// Work for the job runner, stored as JSON (`{"kind": "mirror_branch", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobSpec {
    /// Fetch `refs/heads/<branch>` from Bitbucket into the mirror (and the deploy remote)
    /// at `commit` (always a full id: it comes from a push or a listing).
    MirrorBranch { branch: String, commit: CommitHash },
    /// Delete a mirrored ref (full name, see [`branch_ref`], [`pull_request_refs`]); a
    /// missing ref counts as done.
    DeleteRef { name: String },
    /// Build `environment` from pull request `pr_id`: its source head, or with `post_merge`
    /// the merge of the source into the target's current head; then deploy it. A merge
    /// conflict marks the environment failed. `source_commit` may be abbreviated (Cloud):
    /// resolve it after fetching `source_branch` from `source_repository`.
    BuildPullRequest {
        environment: String,
        pr_id: u64,
        source_branch: String,
        source_commit: CommitHash,
        source_repository: String,
        target_branch: String,
        post_merge: bool,
    },
    /// Deploy `commit` (already mirrored) to `environment`.
    Deploy {
        environment: String,
        commit: CommitHash,
    },
    /// Copy the parent's data into `environment` (`resync_pull_requests`); tells the deploy
    /// side `synced`.
    SyncFromParent {
        environment: String,
        parent: Option<String>,
    },
    /// Send a signed environment event to `deploy_hook_url`.
    NotifyDeploySide {
        environment: String,
        event: DeployEvent,
        parent: Option<String>,
        /// Only meaningful on `created` of a pull-request environment.
        clone_parent_data: bool,
    },
    /// List branches and open pull requests through the API and queue an
    /// [`Event::Snapshot`]: some stored head is unknown.
    Reconcile { reason: String },
    /// Report `environment`'s state on `commit` to Bitbucket (the build status shown on the
    /// commit and its pull request). Queued by the job runner as builds and deploys finish.
    BuildStatus {
        environment: String,
        commit: CommitHash,
        state: BuildState,
        description: String,
    },
    /// Tell Argo CD to regenerate its ApplicationSets now (the refresh annotation) because
    /// the plugin generator's output changed. Queued by the processor, never by the planner.
    /// The first attempt (`retry: false`) runs in the integration's git lane, behind the
    /// pushes of the changes it announces; a failed one hands over to a `retry: true` job in
    /// a lane of its own, so a struggling Kubernetes API does not hold back mirroring.
    RefreshApplicationSets { retry: bool },
}

/// What a build status says; Bitbucket's INPROGRESS, SUCCESSFUL, FAILED and STOPPED
/// (CANCELLED on Server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildState {
    InProgress,
    Successful,
    Failed,
    Stopped,
}

impl JobSpec {
    /// The `kind` text, as stored in the jobs table.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MirrorBranch { .. } => "mirror_branch",
            Self::DeleteRef { .. } => "delete_ref",
            Self::BuildPullRequest { .. } => "build_pull_request",
            Self::Deploy { .. } => "deploy",
            Self::SyncFromParent { .. } => "sync_from_parent",
            Self::NotifyDeploySide { .. } => "notify_deploy_side",
            Self::Reconcile { .. } => "reconcile",
            Self::BuildStatus { .. } => "build_status",
            Self::RefreshApplicationSets { .. } => "refresh_application_sets",
        }
    }

    /// The environment the job is about, if any.
    pub fn environment(&self) -> Option<&str> {
        match self {
            Self::BuildPullRequest { environment, .. }
            | Self::Deploy { environment, .. }
            | Self::SyncFromParent { environment, .. }
            | Self::NotifyDeploySide { environment, .. }
            | Self::BuildStatus { environment, .. } => Some(environment),
            Self::MirrorBranch { .. }
            | Self::DeleteRef { .. }
            | Self::Reconcile { .. }
            | Self::RefreshApplicationSets { .. } => None,
        }
    }
}

/// Environment events sent to the deploy side. The planner emits `created`, `activated` and
/// `deleted`; the job runner emits `deployed`, `failed` and `synced` as jobs finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployEvent {
    Created,
    Deployed,
    Activated,
    Deactivated,
    Deleted,
    Failed,
    Synced,
}

impl DeployEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Deployed => "deployed",
            Self::Activated => "activated",
            Self::Deactivated => "deactivated",
            Self::Deleted => "deleted",
            Self::Failed => "failed",
            Self::Synced => "synced",
        }
    }
}

impl fmt::Display for DeployEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
        EnvironmentChange::Delete { .. } => row.status = EnvironmentStatus::Deleting,
    }
}

/// Decides what `event` means for the integration, given its stored `environments`.
pub fn plan(settings: &Settings, event: &Event, environments: &[Environment]) -> Plan {
    let mut b = Builder::new(settings, environments);
    match event {
        Event::Push { changes, truncated } => push::plan_push(&mut b, changes, *truncated),
        Event::PullRequest { action, pr } => pull_request::plan_pull_request(&mut b, action, pr),
        Event::Ping => b.note("ping: nothing to do"),
        Event::Ignored { event_key, reason } => b.note(format!("{event_key} ignored: {reason}")),
        Event::Snapshot {
            branches,
            pull_requests,
        } => snapshot::plan_snapshot(&mut b, branches, pull_requests),
    }
    b.finish()
}
