//! Pushes: branch environments, production, and post-merge rebuilds.

use crate::environment::{Environment, EnvironmentKind, EnvironmentStatus};
use crate::event::{same_opt, CommitHash, RefChange, RefKind};
use crate::policy::WaitingReason;

use super::builder::Builder;
use super::{branch_ref, EnvironmentChange, JobSpec};

/// How a ref change relates to a stored head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Already reflected in the stored state.
    Replay,
    /// Follows directly from the stored state.
    Next,
    /// Neither: missed or out of order.
    Mismatch,
    /// The stored head is unknown and a reconciliation is pending.
    Pending,
}

/// Orders `old → new` against `head`, the last head accepted (`None`: unknown).
pub(super) fn step(
    head: Option<&CommitHash>,
    old: Option<&CommitHash>,
    new: Option<&CommitHash>,
) -> Step {
    let Some(head) = head else {
        return Step::Pending;
    };
    if new.is_some_and(|n| n.same_commit(head)) {
        Step::Replay
    } else if old.is_some_and(|o| o.same_commit(head)) {
        Step::Next
    } else {
        Step::Mismatch
    }
}

pub(super) fn plan_push(b: &mut Builder<'_>, changes: &[RefChange], truncated: bool) {
    if changes.is_empty() {
        b.note("push without ref changes");
    }
    if truncated {
        b.note("commit lists truncated by Bitbucket; ref changes are complete");
    }
    for change in &collapse(changes) {
        if change.kind == RefKind::Tag {
            b.note(format!("tag {:?} ignored", change.name));
            continue;
        }
        if change.forced {
            b.note(format!("branch {:?} was force-pushed", change.name));
        }
        plan_branch_change(b, change);
        plan_targets_moved(b, change);
    }
}

/// One change per ref: git moves each ref once per push, but should a payload list a ref
/// twice, its net move (first `old`, last `new`) is what happened. Planning the steps one by
/// one would make a replay of the same payload look out of order.
fn collapse(changes: &[RefChange]) -> Vec<RefChange> {
    let mut out: Vec<RefChange> = Vec::with_capacity(changes.len());
    for change in changes {
        match out
            .iter_mut()
            .find(|c| c.kind == change.kind && c.name == change.name)
        {
            Some(net) => {
                net.new = change.new.clone();
                net.forced |= change.forced;
            }
            None => out.push(change.clone()),
        }
    }
    // Created and deleted within one push: nothing is left to act on.
    out.retain(|c| c.old.is_some() || c.new.is_some());
    out
}

fn plan_branch_change(b: &mut Builder<'_>, change: &RefChange) {
    let branch = change.name.as_str();
    let production = b.is_default(branch);
    if !production && !b.settings.fetch_branches {
        b.note(format!(
            "fetch_branches is off: branch {branch:?} not tracked"
        ));
        return;
    }
    if !production {
        if let Some(filter) = b.filters.branch_excluded(branch) {
            match b.branch_env(branch).cloned() {
                Some(env) if env.is_alive() => b.excluded(&env, vec![branch_ref(branch)], filter),
                _ => b.note(format!(
                    "branch {branch:?} excluded by {filter}: not tracked"
                )),
            }
            return;
        }
    }
    let Some(env) = b.branch_env(branch).cloned() else {
        match &change.new {
            // A creation, or an update of a branch whose creation was never seen.
            Some(new) => b.create_branch_env(branch, new),
            None => b.note(format!("branch {branch:?} deleted; it had no environment")),
        }
        return;
    };
    let step = if env.is_alive() {
        step(
            env.head_commit.as_ref(),
            change.old.as_ref(),
            change.new.as_ref(),
        )
    } else if change.new.is_none() {
        Step::Replay
    } else if env.head_commit.is_none() {
        Step::Pending
    } else {
        // A re-created branch and a late creation event look the same.
        Step::Mismatch
    };
    match step {
        Step::Replay => b.note(format!("branch {branch:?}: already at this state")),
        Step::Pending => b.note(format!(
            "branch {branch:?}: head unknown until the pending reconciliation"
        )),
        Step::Mismatch => head_unknown(b, &env, branch),
        Step::Next => match &change.new {
            Some(new) => move_head(b, &env, new),
            None => branch_deleted(b, &env, branch),
        },
    }
}

/// Forgets a head that the event cannot be ordered against, and asks for the truth.
pub(super) fn head_unknown(b: &mut Builder<'_>, env: &Environment, branch: &str) {
    b.note(format!(
        "branch {branch:?}: push does not follow the stored head (missed or out of order); reconciling"
    ));
    if env.head_commit.is_some() {
        b.change(EnvironmentChange::SetHead {
            name: env.name.clone(),
            head_commit: None,
        });
    }
    b.reconcile(format!("head of branch {branch:?} unknown"));
}

/// Accepts `new` as the head of a live branch environment: mirror, and deploy if it deploys.
/// One deactivated for being idle is activated again by this push.
pub(super) fn move_head(b: &mut Builder<'_>, env: &Environment, new: &CommitHash) {
    let branch = env.branch.clone().unwrap_or_default();
    b.change(EnvironmentChange::SetHead {
        name: env.name.clone(),
        head_commit: Some(new.clone()),
    });
    b.touch(&env.name);
    if env.status == EnvironmentStatus::Inactive && env.waiting_for(WaitingReason::Idle) {
        if let Some(current) = b.env(&env.name).cloned() {
            b.note(format!("{}: pushed to; activated again", env.name));
            if b.start(&current, false) {
                return;
            }
        }
    }
    let env = b.env(&env.name).cloned().unwrap_or_else(|| env.clone());
    let deploys = b.is_default(&branch) || env.status.deploys();
    b.job(JobSpec::MirrorBranch {
        branch: branch.clone(),
        commit: new.clone(),
        deploy: deploys,
    });
    if deploys {
        b.job(JobSpec::Deploy {
            environment: env.name.clone(),
            commit: new.clone(),
        });
    }
}

pub(super) fn branch_deleted(b: &mut Builder<'_>, env: &Environment, branch: &str) {
    if b.is_default(branch) || env.kind == EnvironmentKind::Production {
        b.note(format!(
            "default branch {branch:?} deleted; production is kept"
        ));
    } else if !b.settings.effective_prune_branches() {
        b.note(format!(
            "branch {branch:?} deleted; environment {:?} kept (prune_branches is off)",
            env.name
        ));
    } else {
        b.delete_env(&env.name, vec![branch_ref(branch)]);
    }
}

/// Post-merge: a moved branch is the target some open pull requests were merged into.
fn plan_targets_moved(b: &mut Builder<'_>, change: &RefChange) {
    if !(b.settings.build_pull_requests && b.settings.build_pull_requests_post_merge) {
        return;
    }
    let Some(new) = &change.new else {
        return;
    };
    for env in open_pull_requests_targeting(b, &change.name) {
        let Some(info) = env.pr.clone() else {
            continue;
        };
        match step(info.target_commit.as_ref(), change.old.as_ref(), Some(new)) {
            Step::Replay | Step::Pending => {}
            Step::Next => retarget(b, &env, new),
            Step::Mismatch => {
                b.note(format!(
                    "{}: target push out of order; reconciling before re-merging",
                    env.name
                ));
                b.change(EnvironmentChange::SetPullRequest {
                    name: env.name.clone(),
                    pr: crate::environment::PullRequestInfo {
                        target_commit: None,
                        ..info
                    },
                });
                b.reconcile(format!("target head of {} unknown", env.name));
            }
        }
    }
}

/// Records the target head a post-merge build is made against, and rebuilds.
pub(super) fn retarget(b: &mut Builder<'_>, env: &Environment, target: &CommitHash) {
    let Some(info) = env.pr.clone() else {
        return;
    };
    if same_opt(info.target_commit.as_ref(), Some(target)) {
        return;
    }
    let info = crate::environment::PullRequestInfo {
        target_commit: Some(target.clone()),
        ..info
    };
    b.change(EnvironmentChange::SetPullRequest {
        name: env.name.clone(),
        pr: info.clone(),
    });
    if let Some(source) = env.head_commit.clone() {
        b.build_pull_request(&env.name, &info, &source);
    }
}

pub(super) fn open_pull_requests_targeting(b: &Builder<'_>, branch: &str) -> Vec<Environment> {
    b.state
        .iter()
        .filter(|e| {
            e.kind == EnvironmentKind::PullRequest
                && e.is_alive()
                && e.pr.as_ref().is_some_and(|p| p.target_branch == branch)
        })
        .cloned()
        .collect()
}
