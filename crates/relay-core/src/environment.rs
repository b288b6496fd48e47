//! The stored state the planner reads: one row per environment.
//!
//! Rows are never removed by the planner. A deleted environment keeps its row with status
//! `deleting` (then `deleted`, once the deploy side confirmed), its last head and, for a pull
//! request, its last known state and update time: that memory is what lets a late or
//! replayed event be recognised as such instead of resurrecting the environment.

use serde::{Deserialize, Serialize};

use crate::event::{CommitHash, PrState};
use crate::policy::Waiting;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Unique per integration; see [`crate::naming`].
    pub name: String,
    pub kind: EnvironmentKind,
    /// Name of the environment this one branches from (its data source); `None` for
    /// production and for branch environments while the default branch is unknown.
    pub parent: Option<String>,
    pub status: EnvironmentStatus,
    /// The Bitbucket branch a production or branch environment follows; `None` for
    /// pull-request environments (their branches are in `pr`).
    pub branch: Option<String>,
    /// Last head the relay accepted: the branch head, or the pull request's source commit
    /// (possibly abbreviated on Cloud). `None` while the real head is unknown and a
    /// reconciliation has been asked for (see [`crate::plan`]).
    pub head_commit: Option<CommitHash>,
    pub pr: Option<PullRequestInfo>,
    /// The last push, build or activation the planner saw (epoch ms, the delivery's
    /// receipt time); `environment_idle_ttl` counts from it. `None` until one is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_ms: Option<i64>,
    /// Set while the relay itself holds the environment inactive (the cap, the idle TTL, a
    /// draft), saying what brings it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
}

/// What the relay remembers of a pull request behind a `pr-<id>` environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestInfo {
    pub id: u64,
    pub source_branch: String,
    /// `workspace/repo` or `PROJECT/slug` the source branch lives in (differs for forks).
    pub source_repository: String,
    pub target_branch: String,
    /// Target head the last post-merge build was asked for; only tracked with
    /// `build_pull_requests_post_merge`, `None` when unknown.
    pub target_commit: Option<CommitHash>,
    pub state: PrState,
    /// Bitbucket's last update time of the pull request, epoch milliseconds.
    pub updated_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentKind {
    Production,
    Branch,
    PullRequest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentStatus {
    /// Tracked and mirrored but not deployed (new branch environments start here).
    Inactive,
    /// Deployed on every new head.
    Active,
    /// Deletion decided; the deploy side has not confirmed yet.
    Deleting,
    Deleted,
    /// The last build or deploy failed (e.g. a post-merge conflict); still alive, so a new
    /// head is built again.
    Failed,
}

impl EnvironmentStatus {
    /// Deleting or deleted: the environment is gone as far as decisions go.
    pub fn is_gone(self) -> bool {
        matches!(self, Self::Deleting | Self::Deleted)
    }

    /// Whether a new head is deployed (active, or failed and so worth retrying).
    pub fn deploys(self) -> bool {
        matches!(self, Self::Active | Self::Failed)
    }
}

/// An environment's URL, decided in this one place: the URL its deploy side last reported,
/// else the integration's `environment_url` template with `{environment}` filled in.
pub fn environment_url(
    reported: Option<&str>,
    template: Option<&str>,
    name: &str,
) -> Option<String> {
    reported
        .map(str::to_owned)
        .or_else(|| template.map(|t| t.replace("{environment}", name)))
}

impl Environment {
    pub fn is_alive(&self) -> bool {
        !self.status.is_gone()
    }

    /// Production and branch environments follow a branch by name.
    pub fn follows_branch(&self, branch: &str) -> bool {
        self.kind != EnvironmentKind::PullRequest && self.branch.as_deref() == Some(branch)
    }

    /// What `max_active_environments` counts: a non-production environment that deploys.
    pub fn counts_as_active(&self) -> bool {
        self.kind != EnvironmentKind::Production && self.is_alive() && self.status.deploys()
    }

    /// Whether the relay holds it inactive for `reason`.
    pub fn waiting_for(&self, reason: crate::policy::WaitingReason) -> bool {
        self.waiting.is_some_and(|w| w.reason == reason)
    }
}

crate::text_enum!(EnvironmentKind, "environment kind", {
    Production => "production",
    Branch => "branch",
    PullRequest => "pull_request",
});

crate::text_enum!(EnvironmentStatus, "environment status", {
    Inactive => "inactive",
    Active => "active",
    Deleting => "deleting",
    Deleted => "deleted",
    Failed => "failed",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_matches_serde() {
        for kind in EnvironmentKind::ALL {
            assert_eq!(kind.as_str().parse::<EnvironmentKind>(), Ok(*kind));
            let json = serde_json::to_string(kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        for status in EnvironmentStatus::ALL {
            assert_eq!(status.as_str().parse::<EnvironmentStatus>(), Ok(*status));
            let json = serde_json::to_string(status).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("Active".parse::<EnvironmentStatus>().is_err());
        for kind in EnvironmentKind::ALL {
            assert_eq!(crate::TextEnum::parse_text(kind.as_str()), Some(*kind));
        }
        for status in EnvironmentStatus::ALL {
            assert_eq!(crate::TextEnum::parse_text(status.as_str()), Some(*status));
        }
    }
}
