//! Pull requests: `pr-<id>` environments.

use crate::environment::{Environment, EnvironmentKind, EnvironmentStatus, PullRequestInfo};
use crate::event::{CommitHash, PrAction, PrState, PullRequest};
use crate::naming::pull_request_environment_name;
use crate::policy::WaitingReason;

use super::builder::Builder;
use super::{pull_request_refs, DeployEvent, EnvironmentChange, JobSpec};

pub(super) fn plan_pull_request(b: &mut Builder<'_>, action: &PrAction, pr: &PullRequest) {
    let name = pull_request_environment_name(pr.id);
    if !b.settings.build_pull_requests {
        b.note(format!("build_pull_requests is off: {name} not built"));
        return;
    }
    let existing = b.env(&name).cloned();
    if let Some(env) = &existing {
        if env.kind != EnvironmentKind::PullRequest {
            // Naming never gives `pr-<digits>` to a branch; a row like this was made by hand.
            b.note(format!(
                "{name} exists but is not a pull-request environment; skipped"
            ));
            return;
        }
        let stored = env.pr.as_ref().and_then(|p| p.updated_at_ms);
        if let (Some(event), Some(stored)) = (pr.updated_at_ms, stored) {
            if event < stored {
                b.note(format!(
                    "{name}: event older than the stored state; ignored"
                ));
                return;
            }
        }
    }
    if action.is_closing() || !pr.state.is_open() {
        close(b, &name, existing.as_ref(), action, pr);
        return;
    }
    if pr.is_fork() && !b.settings.build_fork_pull_requests {
        b.note(format!(
            "{name}: source is a fork ({:?}); build_fork_pull_requests is off",
            pr.source.repository.full_name
        ));
        return;
    }
    if let Some(filter) = excluded_by(b, pr) {
        match &existing {
            Some(env) if env.is_alive() => b.excluded(env, pull_request_refs(pr.id).into(), filter),
            _ => b.note(format!("{name}: excluded by {filter}; no environment")),
        }
        return;
    }
    let held_as_draft = pr.draft && !b.settings.build_draft_pull_requests;
    let not_built = || format!("{name} is a draft; not built (build_draft_pull_requests is off)");
    match existing {
        None if held_as_draft => b.note(not_built()),
        None => open(b, &name, pr),
        Some(env) if env.is_alive() && held_as_draft => draft(b, &env, action, pr),
        Some(env) if env.is_alive() => {
            if env.waiting_for(WaitingReason::Draft) {
                b.note(format!("{name} is ready for review"));
                b.start(&env, false);
            }
            let env = b.env(&name).cloned().unwrap_or(env);
            update(b, &env, action, pr)
        }
        Some(env) => {
            let stored = env.pr.as_ref().and_then(|p| p.updated_at_ms);
            let newer = matches!((pr.updated_at_ms, stored), (Some(e), Some(s)) if e > s);
            if *action == PrAction::Reopened || (*action == PrAction::Opened && newer) {
                if held_as_draft {
                    b.note(not_built());
                    return;
                }
                open(b, &name, pr);
            } else {
                b.note(format!("{name} is closed; a late event does not reopen it"));
            }
        }
    }
}

/// The branch filter that leaves `pr` without an environment, if any: its source
/// (`branch_include`, `branch_exclude`) or its target (`pull_request_target_include`).
fn excluded_by(b: &Builder<'_>, pr: &PullRequest) -> Option<&'static str> {
    let source = &pr.source.branch;
    let source_excluded = if b.is_default(source) {
        None
    } else {
        b.filters.branch_excluded(source)
    };
    source_excluded.or_else(|| b.filters.target_excluded(&pr.target.branch))
}

/// A live environment whose pull request is a draft while `build_draft_pull_requests` is
/// off: deactivated until it is ready for review; what changed is still recorded.
fn draft(b: &mut Builder<'_>, env: &Environment, action: &PrAction, pr: &PullRequest) {
    let name = env.name.as_str();
    if env.status.deploys() {
        b.note(format!(
            "{name} is a draft; deactivated (build_draft_pull_requests is off)"
        ));
        b.stop(env, Some(WaitingReason::Draft));
    } else if env.waiting.is_some() {
        // Waiting for a slot or a push: now it waits to be ready for review.
        b.stop(env, Some(WaitingReason::Draft));
    }
    let env = b.env(name).cloned().unwrap_or_else(|| env.clone());
    update(b, &env, action, pr);
}

fn info(pr: &PullRequest, state: PrState, target_commit: Option<CommitHash>) -> PullRequestInfo {
    PullRequestInfo {
        id: pr.id,
        source_branch: pr.source.branch.clone(),
        source_repository: pr.source.repository.full_name.clone(),
        target_branch: pr.target.branch.clone(),
        target_commit,
        state,
        updated_at_ms: pr.updated_at_ms,
    }
}

/// Creates `pr-<id>` (or re-creates it over its deleted row), active, and builds it; with
/// `max_active_environments` reached it starts inactive, waiting for a slot.
fn open(b: &mut Builder<'_>, name: &str, pr: &PullRequest) {
    let parent = Some(b.name_for_branch(&pr.target.branch));
    let info = info(pr, PrState::Open, Some(pr.target.commit.clone()));
    let waits = b.cap_reached();
    b.change(EnvironmentChange::Create {
        environment: Environment {
            name: name.to_owned(),
            kind: EnvironmentKind::PullRequest,
            parent: parent.clone(),
            status: if waits {
                EnvironmentStatus::Inactive
            } else {
                EnvironmentStatus::Active
            },
            branch: None,
            head_commit: Some(pr.source.commit.clone()),
            pr: Some(info.clone()),
            last_activity_ms: b.now,
            waiting: None,
        },
    });
    let clone = b.settings.pull_requests_clone_parent_data;
    b.notify(name, DeployEvent::Created, parent.clone(), clone);
    if waits {
        b.queue(name);
        return;
    }
    b.notify(name, DeployEvent::Activated, parent, false);
    b.build_pull_request(name, &info, &pr.source.commit);
}

/// A live environment and a newer (or equally new) view of its pull request.
fn update(b: &mut Builder<'_>, env: &Environment, action: &PrAction, pr: &PullRequest) {
    let name = env.name.as_str();
    let Some(stored) = env.pr.clone() else {
        open(b, name, pr);
        return;
    };
    let source = &pr.source.commit;
    let source_moved = !env
        .head_commit
        .as_ref()
        .is_some_and(|h| h.same_commit(source));
    let target_changed = stored.target_branch != pr.target.branch;
    if source_moved {
        b.change(EnvironmentChange::SetHead {
            name: name.to_owned(),
            head_commit: Some(source.clone()),
        });
    } else if source.is_full() && !env.head_commit.as_ref().is_some_and(CommitHash::is_full) {
        // Same commit, now known in full (Server, or a listing): keep the better id.
        b.change(EnvironmentChange::SetHead {
            name: name.to_owned(),
            head_commit: Some(source.clone()),
        });
    }
    let mut parent = env.parent.clone();
    if target_changed {
        parent = Some(b.name_for_branch(&pr.target.branch));
        b.change(EnvironmentChange::SetParent {
            name: name.to_owned(),
            parent: parent.clone(),
        });
        if let PrAction::Modified {
            previous_target: Some(previous),
        } = action
        {
            b.note(format!("{name}: target changed from {previous:?}"));
        }
    }
    let target_commit = if target_changed {
        Some(pr.target.commit.clone())
    } else {
        stored.target_commit.clone()
    };
    let new_info = info(pr, PrState::Open, target_commit);
    if new_info != stored {
        b.change(EnvironmentChange::SetPullRequest {
            name: name.to_owned(),
            pr: new_info.clone(),
        });
    }
    if source_moved || target_changed {
        b.touch(name);
    }
    if source_moved && env.waiting_for(WaitingReason::Idle) {
        if let Some(current) = b.env(name).cloned() {
            b.note(format!("{name}: pushed to; activated again"));
            b.start(&current, false);
        }
    }
    if source_moved && b.settings.resync_pull_requests {
        b.job(JobSpec::SyncFromParent {
            environment: name.to_owned(),
            parent,
        });
    }
    if source_moved || target_changed {
        b.build_pull_request(name, &new_info, source);
    } else if new_info == stored {
        b.note(format!("{name}: already at this state"));
    } else {
        b.note(format!("{name}: metadata only; nothing to rebuild"));
    }
}

fn close(
    b: &mut Builder<'_>,
    name: &str,
    existing: Option<&Environment>,
    action: &PrAction,
    pr: &PullRequest,
) {
    let state = match (action, pr.state) {
        (PrAction::Merged, _) => PrState::Merged,
        (PrAction::Declined | PrAction::Deleted, _) => PrState::Declined,
        (_, PrState::Open) => PrState::Declined,
        (_, state) => state,
    };
    match existing {
        Some(env) => {
            let target_commit = env.pr.as_ref().and_then(|p| p.target_commit.clone());
            let closed = info(pr, state, target_commit);
            if env.pr.as_ref() != Some(&closed) {
                b.change(EnvironmentChange::SetPullRequest {
                    name: name.to_owned(),
                    pr: closed,
                });
            }
            if env.is_alive() {
                b.delete_env(name, pull_request_refs(pr.id).into());
            } else {
                b.note(format!("{name} already deleted"));
            }
        }
        None if pr.is_fork() && !b.settings.build_fork_pull_requests => {
            b.note(format!(
                "{name}: fork pull request closed; it had no environment"
            ));
        }
        None => {
            // Remember the close, so a late "opened" or "updated" cannot create it.
            b.note(format!(
                "{name} closed before the relay saw it open; recorded"
            ));
            let parent = Some(b.name_for_branch(&pr.target.branch));
            b.change(EnvironmentChange::Create {
                environment: Environment {
                    name: name.to_owned(),
                    kind: EnvironmentKind::PullRequest,
                    parent,
                    status: EnvironmentStatus::Deleted,
                    branch: None,
                    head_commit: Some(pr.source.commit.clone()),
                    pr: Some(info(pr, state, Some(pr.target.commit.clone()))),
                    last_activity_ms: b.now,
                    waiting: None,
                },
            });
        }
    }
}
