//! Work the planner hands to the job runner, and what those jobs tell the deploy side and
//! Bitbucket.

use serde::{Deserialize, Serialize};

use crate::event::CommitHash;

/// Work for the job runner, stored as JSON (`{"kind": "mirror_branch", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobSpec {
    /// Fetch `refs/heads/<branch>` from Bitbucket into the mirror (and the deploy remote)
    /// at `commit` (always a full id: it comes from a push or a listing).
    /// `deploy` is whether the branch goes on to the deploy remote: only environments that
    /// deploy (active ones) are there; jobs stored before the flag existed pushed always.
    MirrorBranch {
        branch: String,
        commit: CommitHash,
        #[serde(default = "pushed_before_the_flag")]
        deploy: bool,
    },
    /// Delete a mirrored ref (full name, see [`branch_ref`], [`pull_request_refs`]); a
    /// missing ref counts as done.
    DeleteRef { name: String },
    /// Remove `environment`'s ref (`reference`, its name on the deploy remote) from the deploy
    /// remote only, keeping the mirror: the environment was deactivated.
    Undeploy {
        environment: String,
        reference: String,
    },
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
        /// Where the status links to: the deployment's reported URL; `None` uses the
        /// integration's `environment_url`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    /// Tell Argo CD to regenerate its ApplicationSets now (the refresh annotation) because
    /// the plugin generator's output changed. Queued by the processor, never by the planner.
    /// The first attempt (`retry: false`) runs in the integration's git lane, behind the
    /// pushes of the changes it announces; a failed one hands over to a `retry: true` job in
    /// a lane of its own, so a struggling Kubernetes API does not hold back mirroring.
    RefreshApplicationSets { retry: bool },
    /// Post, or edit in place, the one comment on pull-request environment `environment`'s
    /// pull request: its state on `commit` (the same facts as the build status queued with
    /// it, see [`status_jobs`]).
    PullRequestComment {
        environment: String,
        commit: CommitHash,
        state: BuildState,
        description: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
}

/// A build status, and with `comments` (`pull_request_comments`) the same news for the
/// pull request's comment when `status` is about a pull-request environment.
pub fn status_jobs(status: JobSpec, comments: bool) -> Vec<JobSpec> {
    let comment = match &status {
        JobSpec::BuildStatus {
            environment,
            commit,
            state,
            description,
            url,
        } if comments && crate::naming::is_reserved(environment) => {
            Some(JobSpec::PullRequestComment {
                environment: environment.clone(),
                commit: commit.clone(),
                state: *state,
                description: description.clone(),
                url: url.clone(),
            })
        }
        _ => None,
    };
    std::iter::once(status).chain(comment).collect()
}

fn pushed_before_the_flag() -> bool {
    true
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

/// A [`JobSpec`]'s variant without its fields: the jobs table's `kind` column, and the
/// payload's `kind` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    MirrorBranch,
    DeleteRef,
    Undeploy,
    BuildPullRequest,
    Deploy,
    SyncFromParent,
    NotifyDeploySide,
    Reconcile,
    BuildStatus,
    RefreshApplicationSets,
    PullRequestComment,
}

crate::text_enum!(JobKind, "job kind", {
    MirrorBranch => "mirror_branch",
    DeleteRef => "delete_ref",
    Undeploy => "undeploy",
    BuildPullRequest => "build_pull_request",
    Deploy => "deploy",
    SyncFromParent => "sync_from_parent",
    NotifyDeploySide => "notify_deploy_side",
    Reconcile => "reconcile",
    BuildStatus => "build_status",
    RefreshApplicationSets => "refresh_application_sets",
    PullRequestComment => "pull_request_comment",
});

impl JobSpec {
    pub fn kind(&self) -> JobKind {
        match self {
            Self::MirrorBranch { .. } => JobKind::MirrorBranch,
            Self::DeleteRef { .. } => JobKind::DeleteRef,
            Self::Undeploy { .. } => JobKind::Undeploy,
            Self::BuildPullRequest { .. } => JobKind::BuildPullRequest,
            Self::Deploy { .. } => JobKind::Deploy,
            Self::SyncFromParent { .. } => JobKind::SyncFromParent,
            Self::NotifyDeploySide { .. } => JobKind::NotifyDeploySide,
            Self::Reconcile { .. } => JobKind::Reconcile,
            Self::BuildStatus { .. } => JobKind::BuildStatus,
            Self::RefreshApplicationSets { .. } => JobKind::RefreshApplicationSets,
            Self::PullRequestComment { .. } => JobKind::PullRequestComment,
        }
    }

    /// The environment the job is about, if any.
    pub fn environment(&self) -> Option<&str> {
        match self {
            Self::BuildPullRequest { environment, .. }
            | Self::Deploy { environment, .. }
            | Self::SyncFromParent { environment, .. }
            | Self::NotifyDeploySide { environment, .. }
            | Self::BuildStatus { environment, .. }
            | Self::PullRequestComment { environment, .. }
            | Self::Undeploy { environment, .. } => Some(environment),
            Self::MirrorBranch { .. }
            | Self::DeleteRef { .. }
            | Self::Reconcile { .. }
            | Self::RefreshApplicationSets { .. } => None,
        }
    }
}

/// Environment events sent to the deploy side. The planner emits `created`, `activated`,
/// `deactivated` and `deleted`; the job runner emits `deployed`, `failed` and `synced` as jobs
/// finish.
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

crate::text_enum!(DeployEvent, "deploy event", {
    Created => "created",
    Deployed => "deployed",
    Activated => "activated",
    Deactivated => "deactivated",
    Deleted => "deleted",
    Failed => "failed",
    Synced => "synced",
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::branch_ref;

    /// One job of every kind; the match makes a new variant fail to compile here.
    fn one_of_each() -> Vec<JobSpec> {
        let commit = CommitHash::parse(&"a".repeat(40)).unwrap();
        let environment = || "main".to_owned();
        let jobs = vec![
            JobSpec::MirrorBranch {
                branch: "main".into(),
                commit: commit.clone(),
                deploy: true,
            },
            JobSpec::DeleteRef {
                name: branch_ref("gone"),
            },
            JobSpec::Undeploy {
                environment: environment(),
                reference: branch_ref("main"),
            },
            JobSpec::BuildPullRequest {
                environment: "pr-1".into(),
                pr_id: 1,
                source_branch: "feature".into(),
                source_commit: commit.clone(),
                source_repository: "ws/repo".into(),
                target_branch: "main".into(),
                post_merge: false,
            },
            JobSpec::Deploy {
                environment: environment(),
                commit: commit.clone(),
            },
            JobSpec::SyncFromParent {
                environment: environment(),
                parent: None,
            },
            JobSpec::NotifyDeploySide {
                environment: environment(),
                event: DeployEvent::Created,
                parent: None,
                clone_parent_data: false,
            },
            JobSpec::Reconcile {
                reason: "test".into(),
            },
            JobSpec::BuildStatus {
                environment: environment(),
                commit: commit.clone(),
                state: BuildState::Successful,
                description: String::new(),
                url: None,
            },
            JobSpec::RefreshApplicationSets { retry: false },
            JobSpec::PullRequestComment {
                environment: "pr-1".into(),
                commit,
                state: BuildState::Successful,
                description: String::new(),
                url: None,
            },
        ];
        for job in &jobs {
            match job {
                JobSpec::MirrorBranch { .. }
                | JobSpec::DeleteRef { .. }
                | JobSpec::Undeploy { .. }
                | JobSpec::BuildPullRequest { .. }
                | JobSpec::Deploy { .. }
                | JobSpec::SyncFromParent { .. }
                | JobSpec::NotifyDeploySide { .. }
                | JobSpec::Reconcile { .. }
                | JobSpec::BuildStatus { .. }
                | JobSpec::RefreshApplicationSets { .. }
                | JobSpec::PullRequestComment { .. } => {}
            }
        }
        jobs
    }

    #[test]
    fn statuses_of_pull_requests_bring_their_comment() {
        let status = |environment: &str| JobSpec::BuildStatus {
            environment: environment.into(),
            commit: CommitHash::parse(&"b".repeat(40)).unwrap(),
            state: BuildState::Failed,
            description: "merge conflict in a".into(),
            url: None,
        };
        let kinds = |jobs: Vec<JobSpec>| jobs.iter().map(JobSpec::kind).collect::<Vec<_>>();
        assert_eq!(
            kinds(status_jobs(status("pr-3"), true)),
            [JobKind::BuildStatus, JobKind::PullRequestComment]
        );
        assert_eq!(
            kinds(status_jobs(status("pr-3"), false)),
            [JobKind::BuildStatus]
        );
        assert_eq!(
            kinds(status_jobs(status("main"), true)),
            [JobKind::BuildStatus]
        );
    }

    #[test]
    fn jobs_stored_before_the_deploy_flag_still_push() {
        let stored = serde_json::json!({
            "kind": "mirror_branch", "branch": "main", "commit": "a".repeat(40)
        });
        let job: JobSpec = serde_json::from_value(stored).unwrap();
        assert!(matches!(job, JobSpec::MirrorBranch { deploy: true, .. }));
    }

    #[test]
    fn job_kinds_are_the_payload_tags() {
        let jobs = one_of_each();
        let kinds: Vec<JobKind> = jobs.iter().map(JobSpec::kind).collect();
        assert_eq!(
            kinds,
            JobKind::ALL,
            "every kind, once, in declaration order"
        );
        for job in &jobs {
            let payload = serde_json::to_value(job).unwrap();
            assert_eq!(payload["kind"], job.kind().as_str(), "{job:?}");
        }
    }

    #[test]
    fn job_kind_text_round_trips_and_matches_serde() {
        for kind in JobKind::ALL {
            assert_eq!(kind.as_str().parse::<JobKind>(), Ok(*kind));
            assert_eq!(
                <JobKind as crate::TextEnum>::parse_text(kind.as_str()),
                Some(*kind)
            );
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
        assert!("Deploy".parse::<JobKind>().is_err());
    }
}
