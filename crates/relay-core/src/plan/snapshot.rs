//! The reconciler's listing: the remote's whole truth at one moment.

use std::collections::HashSet;

use crate::environment::EnvironmentKind;
use crate::event::{CommitHash, PrAction, PullRequest};

use super::builder::Builder;
use super::push::{move_head, open_pull_requests_targeting, retarget};
use super::{branch_ref, pull_request::plan_pull_request, pull_request_refs, EnvironmentChange};

pub(super) fn plan_snapshot(
    b: &mut Builder<'_>,
    branches: &[(String, CommitHash)],
    pull_requests: &[PullRequest],
) {
    // A listing names each branch and pull request once; should a page repeat one, the
    // first entry counts, so planning the same listing twice decides the same thing.
    let mut seen = HashSet::new();
    let branches: Vec<&(String, CommitHash)> = branches
        .iter()
        .filter(|(name, _)| seen.insert(name.as_str()))
        .collect();
    let mut seen = HashSet::new();
    let mut pull_requests: Vec<&PullRequest> =
        pull_requests.iter().filter(|p| seen.insert(p.id)).collect();
    // In the order they were opened (Server lists newest first): new environments, and
    // the cap's queue, follow the pull requests' own order whatever the listing's.
    pull_requests.sort_by_key(|p| p.id);
    for (branch, head) in &branches {
        plan_branch(b, branch, head);
    }
    let listed: HashSet<&str> = branches.iter().map(|(name, _)| name.as_str()).collect();
    prune(b, &listed);
    if b.settings.build_pull_requests {
        plan_pull_requests(b, &pull_requests);
        if b.settings.build_pull_requests_post_merge {
            for (branch, head) in &branches {
                for env in open_pull_requests_targeting(b, branch) {
                    retarget(b, &env, head);
                }
            }
        }
    } else {
        b.note("build_pull_requests is off: pull requests not reconciled");
    }
}

fn plan_branch(b: &mut Builder<'_>, branch: &str, head: &CommitHash) {
    if !b.is_default(branch) && !b.settings.fetch_branches {
        return;
    }
    if !b.is_default(branch) {
        if let Some(filter) = b.filters.branch_excluded(branch) {
            if let Some(env) = b.branch_env(branch).filter(|e| e.is_alive()).cloned() {
                b.excluded(&env, vec![branch_ref(branch)], filter);
            }
            return;
        }
    }
    match b.branch_env(branch).cloned() {
        None => b.create_branch_env(branch, head),
        // Listed, so it exists again: whatever deleted the environment is over.
        Some(env) if !env.is_alive() => b.create_branch_env(branch, head),
        Some(env) => match &env.head_commit {
            Some(stored) if stored.same_commit(head) => {
                if !stored.is_full() && head.is_full() {
                    b.change(EnvironmentChange::SetHead {
                        name: env.name.clone(),
                        head_commit: Some(head.clone()),
                    });
                }
            }
            _ => move_head(b, &env, head),
        },
    }
}

/// Branch environments whose branch is gone, with effective prune only.
fn prune(b: &mut Builder<'_>, listed: &HashSet<&str>) {
    let orphans: Vec<(String, String)> = b
        .state
        .iter()
        .filter(|e| e.kind == EnvironmentKind::Branch && e.is_alive())
        .filter_map(|e| Some((e.name.clone(), e.branch.clone()?)))
        .filter(|(_, branch)| !listed.contains(branch.as_str()) && !b.is_default(branch))
        .collect();
    if orphans.is_empty() {
        return;
    }
    if !b.settings.effective_prune_branches() {
        b.note(format!(
            "{} environment(s) without a branch kept (prune_branches is off)",
            orphans.len()
        ));
        return;
    }
    for (name, branch) in orphans {
        b.delete_env(&name, vec![branch_ref(&branch)]);
    }
}

/// A listed pull request is planned like an opening, except one whose environment the relay
/// deleted while the pull request stayed open (a branch filter, an earlier listing): the
/// listing says it is open now, so it comes back like a reopened one.
fn listed_action(b: &Builder<'_>, pr: &PullRequest) -> PrAction {
    let name = crate::naming::pull_request_environment_name(pr.id);
    let deleted_while_open = b.env(&name).is_some_and(|e| {
        !e.is_alive()
            && e.kind == EnvironmentKind::PullRequest
            && e.pr.as_ref().is_some_and(|p| p.state.is_open())
    });
    if deleted_while_open && pr.state.is_open() {
        PrAction::Reopened
    } else {
        PrAction::Opened
    }
}

fn plan_pull_requests(b: &mut Builder<'_>, pull_requests: &[&PullRequest]) {
    // A listing is the current state: an open one is planned like an opening (created if
    // missing, updated if live, reopened only if newer than a stored close).
    for pr in pull_requests {
        plan_pull_request(b, &listed_action(b, pr), pr);
    }
    let open: HashSet<u64> = pull_requests
        .iter()
        .filter(|p| p.state.is_open())
        .map(|p| p.id)
        .collect();
    let closed: Vec<(String, u64)> = b
        .state
        .iter()
        .filter(|e| e.kind == EnvironmentKind::PullRequest && e.is_alive())
        .filter_map(|e| Some((e.name.clone(), e.pr.as_ref()?.id)))
        .filter(|(_, id)| !open.contains(id))
        .collect();
    for (name, id) in closed {
        b.note(format!("{name}: pull request no longer open"));
        b.delete_env(&name, pull_request_refs(id).into());
    }
}
