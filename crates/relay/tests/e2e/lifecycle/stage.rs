//! A whole relay around one repository on a fake Bitbucket (Cloud or Server): the real
//! server, processor and job runner, a bare deploy remote on disk and a deploy hook that
//! records the events it receives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use relay::admin::integrations::{self, IntegrationInput};
use relay::metrics::Metrics;
use relay::worker::jobs::{Runner, RunnerConfig};
use relay::worker::retry::RetrySchedule;
use relay::worker::{Processor, ProcessorConfig};
use relay_core::IntegrationType;
use relay_testkit::{FakeBitbucket, Flavor, RecordedStatus};
use serde_json::Value;
use sqlx::PgPool;

use crate::support::*;

pub(crate) struct Stage {
    pub fake: FakeBitbucket,
    pub server: TestServer,
    pub id: String,
    pub report_token: String,
    pub owner: &'static str,
    pub pool: PgPool,
    pub hook_events: Arc<Mutex<Vec<Value>>>,
    processor: Processor,
    runner: Runner,
    deploy: tempfile::TempDir,
    _data: tempfile::TempDir,
}

async fn record(
    State(events): State<Arc<Mutex<Vec<Value>>>>,
    Json(body): Json<Value>,
) -> StatusCode {
    events.lock().unwrap().push(body);
    StatusCode::NO_CONTENT
}

async fn start_hook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(record))
        .with_state(events.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, events)
}

fn input(fake: &FakeBitbucket, flavor: Flavor, repository: &str) -> IntegrationInput {
    match flavor {
        IntegrationType::Cloud => {
            let (key, secret) = fake.consumer();
            IntegrationInput {
                kind: Some(flavor),
                repository: Some(repository.into()),
                key: Some(key),
                secret: Some(secret),
                ..Default::default()
            }
        }
        IntegrationType::Server => IntegrationInput {
            kind: Some(flavor),
            repository: Some(repository.into()),
            base_url: Some(fake.base_url().to_string()),
            token: Some(fake.server_token()),
            ..Default::default()
        },
    }
}

impl Stage {
    /// `feedback` is the integration's `deploy_feedback`.
    pub(crate) async fn new(pool: PgPool, flavor: Flavor, feedback: &str) -> Self {
        let fake = FakeBitbucket::start(flavor).await;
        let owner = match flavor {
            IntegrationType::Cloud => "team",
            IntegrationType::Server => "PRJ",
        };
        fake.create_repo(owner, "app");
        fake.commit_file(owner, "app", "main", "README", "hello\n", "first");
        let created =
            integrations::add(&pool, &key(), input(&fake, flavor, &format!("{owner}/app")))
                .await
                .unwrap();
        let deploy = tempfile::tempdir().unwrap();
        std::process::Command::new("git")
            .args(["init", "-q", "--bare", "deploy.git"])
            .current_dir(deploy.path())
            .status()
            .unwrap();
        let (hook_url, hook_events) = start_hook().await;
        sqlx::query("UPDATE integrations SET deploy_remote = $1, deploy_hook_url = $2, deploy_feedback = $3, environment_url = 'https://{environment}.preview.example.com'")
            .bind(deploy.path().join("deploy.git").to_str().unwrap())
            .bind(hook_url)
            .bind(feedback)
            .execute(&pool)
            .await
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let cloud = relay::bitbucket::CloudUrls {
            web: fake.base_url(),
            api: fake.api_url(),
        };
        let mut config = RunnerConfig::new(data.path().to_path_buf(), cloud);
        config.retry = RetrySchedule {
            delays: vec![Duration::from_millis(20)],
            max_attempts: 3,
        };
        let metrics = Arc::new(Metrics::new());
        let processor = Processor::new(pool.clone(), metrics.clone(), ProcessorConfig::default());
        let runner = Runner::new(pool.clone(), key(), metrics, config);
        let server = TestServer::start(pool.clone()).await;
        let stage = Self {
            fake,
            server,
            id: created.record.id,
            report_token: created.deploy_report_token,
            owner,
            pool,
            hook_events,
            processor,
            runner,
            deploy,
            _data: data,
        };
        stage.resync().await;
        stage
    }

    /// Processes every delivery and runs every job, until nothing is left.
    pub(crate) async fn settle(&self) {
        loop {
            let mut busy = self.processor.process_next().await.unwrap() > 0;
            while self.runner.run_next().await.unwrap() {
                busy = true;
            }
            if !busy {
                return;
            }
        }
    }

    /// A reconciliation against the fake, then everything it leads to.
    pub(crate) async fn resync(&self) {
        let reconcile = relay_core::JobSpec::Reconcile {
            reason: "test".into(),
        };
        relay_store::jobs::enqueue(&self.pool, &self.id, None, &reconcile)
            .await
            .unwrap();
        self.settle().await;
    }

    pub(crate) fn commit(&self, branch: &str, file: &str) -> String {
        self.fake
            .commit_file(self.owner, "app", branch, file, file, "change")
    }

    pub(crate) fn deploy_ref(&self, branch: &str) -> Option<String> {
        let out = std::process::Command::new("git")
            .args([
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ])
            .current_dir(self.deploy.path().join("deploy.git"))
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap().trim().to_owned())
    }

    pub(crate) async fn status_of(&self, name: &str) -> String {
        sqlx::query_scalar(
            "SELECT status FROM environments WHERE integration_id = $1 AND name = $2",
        )
        .bind(&self.id)
        .bind(name)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// The deploy hook's events for `environment`, by type (`environment.activated`, ...).
    pub(crate) fn events_of(&self, environment: &str) -> Vec<String> {
        self.hook_events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["data"]["environment"] == environment)
            .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub(crate) fn build_status(&self, commit: &str, environment: &str) -> Option<RecordedStatus> {
        self.fake
            .statuses(self.owner, "app", commit)
            .into_iter()
            .find(|s| s.key == format!("relay-{environment}"))
    }

    pub(crate) async fn job_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM jobs")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// `POST` to the admin API (admin token) or with `token`.
    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(self.server.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) fn env_path(&self, name: &str, action: &str) -> String {
        format!(
            "/api/v1/integrations/{}/environments/{name}/{action}",
            self.id
        )
    }
}
