//! A plan under construction, with the state it would produce so far.
//!
//! Each change is applied to a working copy as it is emitted, so later decisions in the
//! same plan (a push touching several branches, a snapshot) see earlier ones: two new
//! branches cannot be given one name, and a PR environment created by a snapshot is not
//! then deleted by the same snapshot.

use crate::environment::{Environment, EnvironmentKind, EnvironmentStatus, PullRequestInfo};
use crate::event::CommitHash;
use crate::naming;
use crate::policy::BranchFilters;
use crate::settings::Settings;

use super::{apply_change, DeployEvent, EnvironmentChange, JobSpec, Plan};

pub(super) struct Builder<'a> {
    pub settings: &'a Settings,
    pub state: Vec<Environment>,
    /// When the event was received (epoch ms), if known.
    pub now: Option<i64>,
    pub filters: BranchFilters,
    plan: Plan,
}

impl<'a> Builder<'a> {
    pub(super) fn new(
        settings: &'a Settings,
        environments: &[Environment],
        now: Option<i64>,
    ) -> Self {
        let filters = BranchFilters::new(settings);
        let mut b = Self {
            settings,
            state: environments.to_vec(),
            now,
            plan: Plan::default(),
            filters,
        };
        for field in b.filters.broken.clone() {
            b.note(format!(
                "{field} is not a valid regular expression; ignored"
            ));
        }
        b
    }

    pub(super) fn finish(self) -> Plan {
        self.plan
    }

    pub(super) fn change(&mut self, change: EnvironmentChange) {
        apply_change(&mut self.state, &change);
        self.plan.changes.push(change);
    }

    /// Adds a job. A later build or deploy of the same environment replaces an earlier one
    /// in the same plan (only the last state matters); exact duplicates are dropped.
    pub(super) fn job(&mut self, job: JobSpec) {
        if matches!(
            job,
            JobSpec::BuildPullRequest { .. } | JobSpec::Deploy { .. }
        ) {
            let kind = job.kind();
            let env = job.environment().map(str::to_owned);
            self.plan
                .jobs
                .retain(|j| !(j.kind() == kind && j.environment().map(str::to_owned) == env));
        }
        if !self.plan.jobs.contains(&job) {
            self.plan.jobs.push(job);
        }
    }

    pub(super) fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.plan.notes.contains(&note) {
            self.plan.notes.push(note);
        }
    }

    /// One reconciliation per plan is enough, whatever asked for it.
    pub(super) fn reconcile(&mut self, reason: String) {
        if !self
            .plan
            .jobs
            .iter()
            .any(|j| matches!(j, JobSpec::Reconcile { .. }))
        {
            self.plan.jobs.push(JobSpec::Reconcile { reason });
        }
    }

    pub(super) fn env(&self, name: &str) -> Option<&Environment> {
        self.state.iter().find(|e| e.name == name)
    }

    pub(super) fn branch_env(&self, branch: &str) -> Option<&Environment> {
        self.state.iter().find(|e| e.follows_branch(branch))
    }

    pub(super) fn is_default(&self, branch: &str) -> bool {
        self.settings.default_branch.as_deref() == Some(branch)
    }

    /// The environment name a branch has, or would get.
    pub(super) fn name_for_branch(&self, branch: &str) -> String {
        naming::environment_name(branch, &self.state)
    }

    /// Parent of branch environments: the default branch's environment.
    pub(super) fn production_name(&self) -> Option<String> {
        let default = self.settings.default_branch.as_deref()?;
        Some(self.name_for_branch(default))
    }

    /// Creates (or re-creates over a deleted row) the environment following `branch` at
    /// `head`, mirrors it, and for production activates and deploys it.
    pub(super) fn create_branch_env(&mut self, branch: &str, head: &CommitHash) {
        let production = self.is_default(branch);
        let name = self.name_for_branch(branch);
        let (kind, status, parent) = if production {
            (EnvironmentKind::Production, EnvironmentStatus::Active, None)
        } else {
            let parent = self.production_name();
            if parent.is_none() {
                self.note("default branch unknown: branch environments get no parent");
            }
            (EnvironmentKind::Branch, EnvironmentStatus::Inactive, parent)
        };
        self.change(EnvironmentChange::Create {
            environment: Environment {
                name: name.clone(),
                kind,
                parent: parent.clone(),
                status,
                branch: Some(branch.to_owned()),
                head_commit: Some(head.clone()),
                pr: None,
                last_activity_ms: self.now,
                waiting: None,
            },
        });
        self.job(JobSpec::MirrorBranch {
            branch: branch.to_owned(),
            commit: head.clone(),
            deploy: production,
        });
        self.notify(&name, DeployEvent::Created, parent.clone(), false);
        if production {
            self.notify(&name, DeployEvent::Activated, parent, false);
            self.job(JobSpec::Deploy {
                environment: name,
                commit: head.clone(),
            });
        }
    }

    /// Marks `name` deleting and asks for its refs and deploy-side environment to go.
    pub(super) fn delete_env(&mut self, name: &str, refs: Vec<String>) {
        let parent = self.env(name).and_then(|e| e.parent.clone());
        self.change(EnvironmentChange::Delete {
            name: name.to_owned(),
        });
        for r in refs {
            self.job(JobSpec::DeleteRef { name: r });
        }
        self.notify(name, DeployEvent::Deleted, parent, false);
    }

    pub(super) fn notify(
        &mut self,
        environment: &str,
        event: DeployEvent,
        parent: Option<String>,
        clone_parent_data: bool,
    ) {
        self.job(JobSpec::NotifyDeploySide {
            environment: environment.to_owned(),
            event,
            parent,
            clone_parent_data,
        });
    }

    /// Builds (and so deploys) a pull-request environment; an inactive one is only noted:
    /// it is built when activated.
    pub(super) fn build_pull_request(
        &mut self,
        environment: &str,
        info: &PullRequestInfo,
        source: &CommitHash,
    ) {
        if self.env(environment).is_some_and(|e| !e.status.deploys()) {
            self.note(format!("{environment}: inactive; not built"));
            return;
        }
        self.job(JobSpec::BuildPullRequest {
            environment: environment.to_owned(),
            pr_id: info.id,
            source_branch: info.source_branch.clone(),
            source_commit: source.clone(),
            source_repository: info.source_repository.clone(),
            target_branch: info.target_branch.clone(),
            post_merge: self.settings.build_pull_requests_post_merge,
        });
    }
}
