//! The job runner shared by git work, deploy hooks and build statuses.
//!
//! Bounded concurrency (a fixed number of runner tasks), a timeout per job, a lease renewed
//! while a job runs (a relay that dies loses its lease and another relay takes the job over),
//! retries with backoff and jitter, then the dead letter (`state = dead`, `relay job:list
//! --state dead`, `relay job:retry ID`).

pub mod argocd;
mod comment;
mod deploy_hook;
mod git;
pub mod reconcile;
pub mod remotes;
mod signatures;
mod status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use relay_core::{JobKind, JobSpec};
use relay_store::jobs::{self, ClaimedJob};
use relay_store::{JobState, PgPool};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::retry::RetrySchedule;
use crate::metrics::Metrics;
use crate::secrets::SecretKey;
use comment::CommentUpdate;
use deploy_hook::Notice;
use status::StatusReport;

pub const CHANNEL: &str = "relay_jobs";

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub workers: usize,
    pub data_dir: PathBuf,
    pub lease: Duration,
    pub timeout: Duration,
    pub sweep_interval: Duration,
    pub retry: RetrySchedule,
    pub cloud: crate::bitbucket::CloudUrls,
    /// Link for build statuses when the integration has no `environment_url`.
    pub public_url: String,
    /// Refreshed by `refresh_application_sets` jobs (`RELAY_ARGOCD_APPLICATIONSETS`).
    pub application_sets: Vec<crate::config::ApplicationSetRef>,
    /// `KUBECONFIG`, for the refresh's Kubernetes client.
    pub kubeconfig: Option<String>,
    pub circuit: super::circuit::CircuitConfig,
}

impl RunnerConfig {
    pub fn new(data_dir: PathBuf, cloud: crate::bitbucket::CloudUrls) -> Self {
        Self {
            workers: 4,
            data_dir,
            lease: Duration::from_secs(30),
            timeout: Duration::from_secs(300),
            sweep_interval: Duration::from_secs(5),
            // Remotes come back within minutes, or an operator has to act: about an hour
            // in all before the dead letter.
            retry: RetrySchedule {
                delays: [5, 15, 60, 300, 900, 1800]
                    .map(Duration::from_secs)
                    .to_vec(),
                max_attempts: 8,
            },
            cloud,
            public_url: "http://localhost".into(),
            application_sets: Vec::new(),
            kubeconfig: None,
            circuit: super::circuit::CircuitConfig::default(),
        }
    }
}

/// Why a job did not succeed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    pub message: String,
    /// Worth retrying; otherwise the job goes straight to the dead letter.
    pub transient: bool,
    /// The relay's own trouble (its database): says nothing about the remote side, so it
    /// does not count towards a circuit breaker.
    pub local: bool,
}

impl JobError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: true,
            local: false,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
            local: false,
        }
    }
}

impl From<relay_store::StoreError> for JobError {
    fn from(err: relay_store::StoreError) -> Self {
        let transient = !matches!(
            err,
            relay_store::StoreError::Corrupt(_) | relay_store::StoreError::Rejected(_)
        );
        Self {
            message: err.to_string(),
            transient,
            local: true,
        }
    }
}

/// Everything handlers share.
pub struct Context {
    pub pool: PgPool,
    pub clients: crate::bitbucket::Clients,
    pub http: reqwest::Client,
    pub key: SecretKey,
    pub config: RunnerConfig,
    /// One git operation per mirror at a time in this process; lanes already serialise
    /// across processes, this covers a lease taken over while the old attempt still runs.
    mirrors: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Built on the first refresh (not at start-up, so a relay without Kubernetes access
    /// starts anyway), then shared.
    kube: tokio::sync::OnceCell<kube::Client>,
}

impl Context {
    async fn mirror_lock(&self, integration_id: &str) -> Arc<Mutex<()>> {
        self.mirrors
            .lock()
            .await
            .entry(integration_id.to_owned())
            .or_default()
            .clone()
    }
}

#[derive(Clone)]
pub struct Runner {
    context: Arc<Context>,
    metrics: Arc<Metrics>,
}

/// Job kinds this runner executes (all of them; `dispatch` has a handler for each). A kind
/// a newer relay adds waits in its lane for a runner that knows it.
pub const HANDLED_KINDS: &[JobKind] = JobKind::ALL;

impl Runner {
    pub fn new(pool: PgPool, key: SecretKey, metrics: Arc<Metrics>, config: RunnerConfig) -> Self {
        Self {
            context: Arc::new(Context {
                clients: crate::bitbucket::Clients::new(
                    config.cloud.clone(),
                    relay_bitbucket::ClientOptions::default(),
                ),
                pool,
                http: reqwest::Client::new(),
                key,
                config,
                mirrors: Mutex::new(HashMap::new()),
                kube: tokio::sync::OnceCell::new(),
            }),
            metrics,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let config = &self.context.config;
        let (pool, workers, sweep) = (
            self.context.pool.clone(),
            config.workers,
            config.sweep_interval,
        );
        let step = move || {
            let runner = self.clone();
            async move { runner.run_next().await }
        };
        // The jobs' notification names nothing: every one wakes the runners.
        let wake = super::wake::Wake::on_every_notification();
        super::wake::run(pool, CHANNEL, workers, sweep, shutdown, step, wake).await;
    }

    /// Claims and runs one job. `Ok(false)` when none is runnable.
    pub async fn run_next(&self) -> Result<bool, relay_store::StoreError> {
        let config = &self.context.config;
        let Some(job) = jobs::claim(&self.context.pool, HANDLED_KINDS, config.lease).await? else {
            return Ok(false);
        };
        let span = tracing::info_span!(
            "job",
            job.id = job.id,
            job.kind = %job.kind,
            integration.id = %job.integration_id,
            delivery.id = job.delivery_id,
            attempt = job.attempt,
        );
        self.execute(job).instrument(span).await;
        Ok(true)
    }

    async fn execute(&self, job: ClaimedJob) {
        let (pool, circuit) = (&self.context.pool, &self.context.config.circuit);
        let gate = super::circuit::admit(pool, circuit, &job).await;
        if gate == super::circuit::Gate::Waited {
            self.metrics
                .record_job(job.kind.as_str(), "waiting", 0.0, 0.0);
            return;
        }
        let started = Instant::now();
        let heartbeat = self.heartbeat(job.clone());
        let result = match serde_json::from_value::<JobSpec>(job.payload.clone()) {
            Ok(spec) => {
                match tokio::time::timeout(self.context.config.timeout, self.dispatch(&job, spec))
                    .await
                {
                    Ok(result) => result,
                    Err(_) => Err(JobError::transient(format!(
                        "timed out after {} s",
                        self.context.config.timeout.as_secs()
                    ))),
                }
            }
            Err(err) => Err(JobError::permanent(format!(
                "job payload cannot be read: {err}"
            ))),
        };
        heartbeat.abort();
        super::circuit::settle(pool, circuit, &self.metrics, &job, gate, &result).await;
        let seconds = started.elapsed().as_secs_f64();
        let outcome = self.finish(&job, result, seconds).await;
        let queued = (chrono::Utc::now() - job.created_at).num_milliseconds() as f64 / 1000.0;
        self.metrics
            .record_job(job.kind.as_str(), outcome, seconds, queued);
    }

    /// Records the attempt's outcome on the job (and in its activity log); returns the
    /// metric's outcome label.
    async fn finish(
        &self,
        job: &ClaimedJob,
        result: Result<(), JobError>,
        seconds: f64,
    ) -> &'static str {
        let attempt = job.attempt;
        let pool = &self.context.pool;
        let (outcome, line) = match result {
            Ok(()) => match jobs::succeed(pool, job).await {
                Ok(true) => (
                    "succeeded",
                    format!("attempt {attempt} succeeded in {seconds:.1} s"),
                ),
                Ok(false) => (
                    "lost_lease",
                    format!("attempt {attempt} finished after its lease was lost"),
                ),
                Err(err) => {
                    tracing::error!(error = %err, "job done but not recorded; it will run again");
                    (
                        "unrecorded",
                        format!("attempt {attempt} succeeded but could not be recorded"),
                    )
                }
            },
            Err(err) => {
                let retry = &self.context.config.retry;
                let dead = !err.transient || job.attempt >= retry.max_attempts;
                let delay = with_jitter(retry.delay_after(job.attempt));
                match jobs::fail(pool, job, &err.message, delay, dead).await {
                    Ok(Some(JobState::Dead)) => {
                        tracing::error!(error = %err, "job failed for good; dead-lettered");
                        (
                            "dead",
                            format!("attempt {attempt} failed: {err}; dead-lettered"),
                        )
                    }
                    Ok(_) => {
                        let retry_in_ms = delay.as_millis() as u64;
                        tracing::warn!(error = %err, retry_in_ms, "job failed; will retry");
                        (
                            "retry",
                            format!(
                                "attempt {attempt} failed: {err}; retry in {:.1} s",
                                delay.as_secs_f64()
                            ),
                        )
                    }
                    Err(record_err) => {
                        let record_error = record_err.to_string();
                        tracing::error!(error = %err, record_error, "job failure not recorded");
                        ("unrecorded", format!("attempt {attempt} failed: {err}"))
                    }
                }
            }
        };
        super::activity::job_line(pool, job, &line).await;
        outcome
    }

    fn heartbeat(&self, job: ClaimedJob) -> tokio::task::JoinHandle<()> {
        let pool = self.context.pool.clone();
        let lease = self.context.config.lease;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match jobs::renew(&pool, &job, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            job.id = job.id,
                            "lease lost; another runner owns the job now"
                        );
                        return;
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot renew the job lease"),
                }
            }
        })
    }

    /// The one place a job kind meets its handler.
    async fn dispatch(&self, job: &ClaimedJob, spec: JobSpec) -> Result<(), JobError> {
        let context = &self.context;
        match spec {
            JobSpec::MirrorBranch {
                branch,
                commit,
                deploy,
            } => git::mirror_branch(context, job, branch, commit, deploy).await,
            JobSpec::DeleteRef { name } => git::delete_ref(context, job, name).await,
            JobSpec::Undeploy { reference, .. } => git::undeploy(context, job, reference).await,
            JobSpec::BuildPullRequest {
                environment,
                pr_id,
                source_branch,
                source_commit,
                source_repository,
                target_branch,
                post_merge,
            } => {
                let build = relay_git::PrBuild {
                    id: pr_id,
                    source_branch,
                    source_commit: source_commit.as_str().to_owned(),
                    target_branch,
                    post_merge,
                };
                let source = (source_commit, source_repository);
                git::build_pull_request(context, job, environment, build, source).await
            }
            JobSpec::Deploy {
                environment,
                commit,
            } => deploy_hook::run(context, job, Notice::deployed(environment, &commit)).await,
            JobSpec::SyncFromParent {
                environment,
                parent,
            } => deploy_hook::run(context, job, Notice::synced(environment, parent)).await,
            JobSpec::NotifyDeploySide {
                environment,
                event,
                parent,
                clone_parent_data,
            } => {
                let notice = Notice::lifecycle(environment, event, parent, clone_parent_data);
                deploy_hook::run(context, job, notice).await
            }
            JobSpec::Reconcile { .. } => reconcile::run(context, job).await,
            JobSpec::BuildStatus {
                environment,
                commit,
                state,
                description,
                url,
            } => {
                let report = StatusReport {
                    environment,
                    commit,
                    state,
                    description,
                    url,
                };
                status::run(context, job, report).await
            }
            JobSpec::RefreshApplicationSets { retry } => argocd::refresh(context, job, retry).await,
            JobSpec::PullRequestComment {
                environment,
                commit,
                state,
                description,
                url,
            } => {
                let update = CommentUpdate {
                    environment,
                    commit,
                    state,
                    description,
                    url,
                };
                comment::run(context, job, update).await
            }
        }
    }
}

/// ±20 % so retries of many jobs failing together spread out.
fn with_jitter(delay: Duration) -> Duration {
    let factor = rand::thread_rng().gen_range(0.8..1.2);
    delay.mul_f64(factor)
}
