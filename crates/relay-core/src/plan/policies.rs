//! The preview-environment policies inside the planner: starting and stopping an
//! environment (shared by operators, drafts, the idle TTL and the cap), the waiting queue,
//! branch filters' deletions, and the sweep of idle environments.

use crate::environment::{Environment, EnvironmentKind, EnvironmentStatus};
use crate::policy::{format_duration, Waiting, WaitingReason};

use super::builder::Builder;
use super::transition::deployed_ref;
use super::{status_jobs, BuildState, DeployEvent, EnvironmentChange, JobSpec};

impl Builder<'_> {
    /// Records activity on `name` at the event's time (never moving it back).
    pub(super) fn touch(&mut self, name: &str) {
        let Some(now) = self.now else {
            return;
        };
        let Some(env) = self.env(name) else {
            return;
        };
        if env.last_activity_ms.is_some_and(|at| at >= now) {
            return;
        }
        self.change(EnvironmentChange::SetActivity {
            name: name.to_owned(),
            at_ms: now,
        });
    }

    /// Whether `max_active_environments` active non-production environments exist already.
    pub(super) fn cap_reached(&self) -> bool {
        let Some(max) = self.settings.max_active_environments else {
            return false;
        };
        let active = self.state.iter().filter(|e| e.counts_as_active()).count();
        active >= max as usize
    }

    /// Holds `name` inactive for `reason`; `true` when that is new.
    fn hold(&mut self, name: &str, reason: WaitingReason) -> bool {
        if self.env(name).is_some_and(|e| e.waiting_for(reason)) {
            return false;
        }
        self.change(EnvironmentChange::SetWaiting {
            name: name.to_owned(),
            waiting: Some(Waiting {
                reason,
                since_ms: self.now,
            }),
        });
        true
    }

    /// Stops holding `name`: whatever it waited for no longer applies.
    pub(super) fn release(&mut self, name: &str) {
        if self.env(name).is_some_and(|e| e.waiting.is_some()) {
            self.change(EnvironmentChange::SetWaiting {
                name: name.to_owned(),
                waiting: None,
            });
        }
    }

    /// Puts `name` in the queue for a slot (once), telling Bitbucket and the pull request.
    pub(super) fn queue(&mut self, name: &str) {
        let reason = WaitingReason::MaxActiveEnvironments;
        if !self.hold(name, reason) {
            self.note(format!("{name}: still {}", reason.describe()));
            return;
        }
        self.note(format!("{name}: {}", reason.describe()));
        let Some(head) = self.env(name).and_then(|e| e.head_commit.clone()) else {
            return;
        };
        let status = JobSpec::BuildStatus {
            environment: name.to_owned(),
            commit: head,
            state: BuildState::InProgress,
            description: reason.describe().to_owned(),
            url: None,
        };
        for job in status_jobs(status, self.settings.pull_request_comments) {
            self.job(job);
        }
    }

    /// Makes an inactive `env` active, as an operator's activation would: `activated` (then
    /// `synced` with `sync_data`), and its head mirrored and deployed (a pull request
    /// rebuilt). With the cap reached it waits instead; `false` then.
    pub(super) fn start(&mut self, env: &Environment, sync_data: bool) -> bool {
        let name = env.name.as_str();
        if env.kind != EnvironmentKind::Production && self.cap_reached() {
            self.queue(name);
            return false;
        }
        self.change(EnvironmentChange::SetStatus {
            name: name.to_owned(),
            status: EnvironmentStatus::Active,
        });
        self.release(name);
        self.touch(name);
        self.notify(name, DeployEvent::Activated, env.parent.clone(), false);
        if sync_data {
            self.job(JobSpec::SyncFromParent {
                environment: name.to_owned(),
                parent: env.parent.clone(),
            });
        }
        let Some(head) = env.head_commit.clone() else {
            self.note(format!(
                "{name}: head unknown; deployed once the reconciliation sets it"
            ));
            self.reconcile(format!("{name} activated with an unknown head"));
            return true;
        };
        match (&env.pr, &env.branch) {
            (Some(pr), _) => self.build_pull_request(name, pr, &head),
            (None, Some(branch)) => {
                self.job(JobSpec::MirrorBranch {
                    branch: branch.clone(),
                    commit: head.clone(),
                    deploy: true,
                });
                self.job(JobSpec::Deploy {
                    environment: name.to_owned(),
                    commit: head,
                });
            }
            (None, None) => self.note(format!("{name}: no branch to deploy")),
        }
        true
    }

    /// Makes `env` inactive: its ref leaves the deploy remote and the deploy side hears
    /// `deactivated`; the row, its head and the mirror stay. `reason` is what will bring it
    /// back (`None`: only an operator). An inactive `env` only has its reason changed.
    pub(super) fn stop(&mut self, env: &Environment, reason: Option<WaitingReason>) {
        let name = env.name.as_str();
        let deploys = env.status.deploys();
        if deploys {
            self.change(EnvironmentChange::SetStatus {
                name: name.to_owned(),
                status: EnvironmentStatus::Inactive,
            });
        }
        match reason {
            Some(reason) => {
                self.hold(name, reason);
            }
            None => self.release(name),
        }
        if deploys {
            self.job(JobSpec::Undeploy {
                environment: name.to_owned(),
                reference: deployed_ref(env),
            });
            self.notify(name, DeployEvent::Deactivated, env.parent.clone(), false);
        }
    }

    /// Activates waiting environments, oldest wait first, while the cap allows.
    pub(super) fn fill_slots(&mut self) {
        let mut queue: Vec<(i64, usize, String)> = self
            .state
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.is_alive()
                    && e.status == EnvironmentStatus::Inactive
                    && e.waiting_for(WaitingReason::MaxActiveEnvironments)
            })
            .map(|(i, e)| {
                let since = e.waiting.and_then(|w| w.since_ms).unwrap_or(i64::MAX);
                (since, i, e.name.clone())
            })
            .collect();
        queue.sort();
        for (_, _, name) in queue {
            if self.cap_reached() {
                return;
            }
            let Some(env) = self.env(&name).cloned() else {
                continue;
            };
            self.note(format!("{name}: a slot is free; activated"));
            self.start(&env, false);
        }
    }

    /// A live environment the branch filters now exclude: deleted under effective prune,
    /// kept otherwise.
    pub(super) fn excluded(&mut self, env: &Environment, refs: Vec<String>, filter: &str) {
        let name = env.name.as_str();
        if self.settings.effective_prune_branches() {
            self.note(format!("{name}: excluded by {filter}; deleted"));
            self.delete_env(name, refs);
        } else {
            self.note(format!(
                "{name}: excluded by {filter}; kept (prune_branches is off)"
            ));
        }
    }
}

/// `environment_idle_ttl`: active non-production environments idle for longer are
/// deactivated until their next push. One without a recorded activity starts its clock now.
pub(super) fn plan_sweep(b: &mut Builder<'_>, now_ms: i64) {
    let Some(ttl) = b.settings.environment_idle_ttl else {
        b.note("environment_idle_ttl is off: nothing expires");
        return;
    };
    let ttl_ms = i64::try_from(ttl.saturating_mul(1000)).unwrap_or(i64::MAX);
    let candidates: Vec<Environment> = b
        .state
        .iter()
        .filter(|e| e.counts_as_active())
        .cloned()
        .collect();
    for env in candidates {
        match env.last_activity_ms {
            None => b.touch(&env.name),
            Some(at) if now_ms.saturating_sub(at) >= ttl_ms => {
                b.note(format!(
                    "{}: no push or deployment for {}; deactivated until its next push",
                    env.name,
                    format_duration(ttl)
                ));
                b.stop(&env, Some(WaitingReason::Idle));
            }
            Some(_) => {}
        }
    }
}
