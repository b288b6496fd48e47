//! Webhooks that never arrived: the reconciler lists branches and pull requests through the
//! (fake) Bitbucket Cloud API and the relay converges to the same environments, mirrors
//! included (git over HTTP with an OAuth access token).

use std::sync::Arc;
use std::time::Duration;

use relay::admin::integrations::{self, IntegrationInput};
use relay::metrics::Metrics;
use relay::worker::jobs::{Runner, RunnerConfig};
use relay::worker::retry::RetrySchedule;
use relay::worker::{Processor, ProcessorConfig};
use relay_core::{IntegrationType, JobSpec};
use relay_testkit::{FakeBitbucket, Flavor, PullRequestSpec};
use sqlx::PgPool;

use crate::support::*;

struct Cloud {
    fake: FakeBitbucket,
    id: String,
    processor: Processor,
    runner: Runner,
    pool: PgPool,
    _data: tempfile::TempDir,
}

impl Cloud {
    async fn new(pool: PgPool) -> Self {
        let fake = FakeBitbucket::start(Flavor::Cloud).await;
        fake.create_repo("team", "app");
        fake.commit_file("team", "app", "main", "README", "hello\n", "first");
        let (key, secret) = fake.consumer();
        let created = integrations::add(
            &pool,
            &crate::support::key(),
            IntegrationInput {
                kind: Some(IntegrationType::Cloud),
                repository: Some("team/app".into()),
                key: Some(key),
                secret: Some(secret),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut config = RunnerConfig::new(
            data.path().to_path_buf(),
            relay::bitbucket::CloudUrls {
                web: fake.base_url(),
                api: fake.api_url(),
            },
        );
        config.retry = RetrySchedule {
            delays: vec![Duration::from_millis(20)],
            max_attempts: 3,
        };
        let metrics = Arc::new(Metrics::new());
        Self {
            processor: Processor::new(pool.clone(), metrics.clone(), ProcessorConfig::default()),
            runner: Runner::new(pool.clone(), crate::support::key(), metrics, config),
            id: created.record.id,
            fake,
            pool,
            _data: data,
        }
    }

    /// Queues a resync and runs everything it leads to until nothing is left.
    async fn resync(&self) {
        let job = JobSpec::Reconcile {
            reason: "test".into(),
        };
        relay_store::jobs::enqueue(&self.pool, &self.id, None, &job)
            .await
            .unwrap();
        for _ in 0..5 {
            while self.runner.run_next().await.unwrap() {}
            while self.processor.process_next().await.unwrap() > 0 {}
        }
    }

    async fn environments(&self) -> Vec<(String, String, Option<String>)> {
        sqlx::query_as("SELECT name, status, head_commit FROM environments WHERE status NOT IN ('deleted') ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn missed_webhooks_are_healed_by_the_reconciler(pool: PgPool) {
    let cloud = Cloud::new(pool).await;
    let feature = cloud
        .fake
        .commit_file("team", "app", "feature-a", "a.txt", "a\n", "a");
    let doomed = cloud
        .fake
        .commit_file("team", "app", "feature-b", "b.txt", "b\n", "b");
    let pr = cloud
        .fake
        .open_pull_request(PullRequestSpec::new("team", "app", "feature-a", "main"));

    cloud.resync().await;
    let record = relay_store::integrations::get(&cloud.pool, &cloud.id)
        .await
        .unwrap();
    assert_eq!(
        record.settings.default_branch.as_deref(),
        Some("main"),
        "learnt from Bitbucket"
    );
    let envs = cloud.environments().await;
    let names: Vec<&str> = envs.iter().map(|e| e.0.as_str()).collect();
    assert!(
        names.contains(&"feature-a") && names.contains(&"feature-b"),
        "{envs:?}"
    );
    assert!(names.contains(&format!("pr-{pr}").as_str()), "{envs:?}");
    let feature_env = envs.iter().find(|e| e.0 == "feature-a").unwrap();
    assert_eq!(feature_env.2.as_deref(), Some(feature.as_str()));
    let jobs: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT kind, state, last_error FROM jobs ORDER BY id")
            .fetch_all(&cloud.pool)
            .await
            .unwrap();
    assert!(jobs.iter().all(|j| j.1 == "succeeded"), "{jobs:?}");
    assert!(
        cloud.fake.token_requests() >= 1,
        "git and REST used OAuth access tokens"
    );

    // A second resync with nothing changed decides nothing.
    let jobs_before = jobs.len();
    cloud.resync().await;
    let jobs_after: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind <> 'reconcile'")
        .fetch_one(&cloud.pool)
        .await
        .unwrap();
    let reconciles: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'reconcile'")
        .fetch_one(&cloud.pool)
        .await
        .unwrap();
    assert_eq!(
        jobs_after + reconciles,
        jobs_before as i64 + 1,
        "only the reconcile job itself"
    );

    // Branch deleted and pull request merged while webhooks were lost: pruned on the next resync.
    cloud.fake.delete_branch("team", "app", "feature-b");
    cloud.fake.close_pull_request(pr, "MERGED");
    cloud.resync().await;
    let envs = cloud.environments().await;
    let status = |name: &str| envs.iter().find(|e| e.0 == name).map(|e| e.1.clone());
    assert_eq!(
        status("feature-b").as_deref(),
        Some("deleting"),
        "{envs:?} (was {doomed})"
    );
    assert_eq!(
        status(&format!("pr-{pr}")).as_deref(),
        Some("deleting"),
        "{envs:?}"
    );
    assert_eq!(status("feature-a").as_deref(), Some("inactive"), "{envs:?}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_failing_api_queues_no_snapshot_and_prunes_nothing(pool: PgPool) {
    let cloud = Cloud::new(pool).await;
    cloud
        .fake
        .commit_file("team", "app", "feature-a", "a.txt", "a\n", "a");
    cloud.resync().await;
    assert!(cloud
        .environments()
        .await
        .iter()
        .any(|e| e.0 == "feature-a"));

    cloud.fake.delete_branch("team", "app", "feature-a");
    cloud.fake.set_unavailable(true);
    cloud.resync().await;
    let envs = cloud.environments().await;
    assert_eq!(
        envs.iter()
            .find(|e| e.0 == "feature-a")
            .map(|e| e.1.as_str()),
        Some("inactive"),
        "{envs:?}"
    );
    let snapshots: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE event_key = 'relay:snapshot'")
            .fetch_one(&cloud.pool)
            .await
            .unwrap();
    assert_eq!(snapshots, 1, "only the first, complete listing was queued");
    let (state, error): (String, Option<String>) = sqlx::query_as(
        "SELECT state, last_error FROM jobs WHERE kind = 'reconcile' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&cloud.pool)
    .await
    .unwrap();
    assert_ne!(state, "succeeded");
    assert!(error.is_some());
}

#[sqlx::test(migrations = "../../migrations")]
async fn nobody_can_post_a_snapshot_through_the_webhook(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let body = br#"{"type": "snapshot", "branches": [], "pull_requests": []}"#;
    let response = post_delivery(
        &server.hook_url(&cloud.id),
        IntegrationType::Cloud,
        "relay:snapshot",
        "x",
        body,
        Some(sign(&cloud.webhook_secret, body)),
    )
    .await;
    assert_eq!(response.status(), 400);
}

#[sqlx::test(migrations = "../../migrations")]
async fn build_statuses_follow_the_environment(pool: PgPool) {
    let cloud = Cloud::new(pool).await;
    sqlx::query("UPDATE integrations SET environment_url = 'https://{environment}.preview.example.com', updated_at = now()")
        .execute(&cloud.pool)
        .await
        .unwrap();
    let head = cloud
        .fake
        .commit_file("team", "app", "feature-a", "a.txt", "a\n", "a");
    let pr = cloud
        .fake
        .open_pull_request(PullRequestSpec::new("team", "app", "feature-a", "main"));
    cloud.resync().await;
    let statuses = cloud.fake.statuses("team", "app", &head);
    let env = format!("pr-{pr}");
    let status = statuses
        .iter()
        .find(|s| s.key == format!("relay-{env}"))
        .unwrap_or_else(|| panic!("{statuses:?}"));
    // Neither a deploy hook nor a deploy remote: nothing was deployed, and the status says
    // what the relay did instead of claiming success.
    assert_eq!(status.state, "STOPPED", "{statuses:?}");
    assert!(
        status
            .description
            .as_deref()
            .unwrap_or_default()
            .starts_with("mirrored"),
        "{statuses:?}"
    );
    assert_eq!(
        status.url.as_deref(),
        Some(format!("https://{env}.preview.example.com").as_str())
    );
    assert!(
        status.writes >= 2,
        "in progress, then what was done: {statuses:?}"
    );

    // Closed: the environment is deleted and its status says stopped.
    cloud.fake.close_pull_request(pr, "DECLINED");
    cloud.resync().await;
    let statuses = cloud.fake.statuses("team", "app", &head);
    let status = statuses
        .iter()
        .find(|s| s.key == format!("relay-{env}"))
        .unwrap();
    assert_eq!(status.state, "STOPPED", "{statuses:?}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn fork_pull_requests_are_built_from_the_fork_only_when_enabled(pool: PgPool) {
    let cloud = Cloud::new(pool).await;
    cloud.fake.create_repo("outsider", "app");
    cloud
        .fake
        .commit_file("outsider", "app", "main", "README", "hello\n", "first");
    let forked = cloud.fake.commit_file(
        "outsider",
        "app",
        "patch",
        "evil.sh",
        "untrusted\n",
        "patch",
    );
    let pr = cloud.fake.open_pull_request(
        PullRequestSpec::new("team", "app", "patch", "main").from_fork("outsider", "app"),
    );
    let env = format!("pr-{pr}");

    cloud.resync().await;
    assert!(
        !cloud.environments().await.iter().any(|e| e.0 == env),
        "forks are untrusted by default"
    );

    sqlx::query("UPDATE integrations SET build_fork_pull_requests = true, updated_at = now()")
        .execute(&cloud.pool)
        .await
        .unwrap();
    cloud.resync().await;
    assert!(
        cloud.environments().await.iter().any(|e| e.0 == env),
        "built once enabled"
    );
    let mirror = cloud
        ._data
        .path()
        .join("mirrors")
        .join(format!("{}.git", cloud.id));
    let fetched = crate::support::git_http::git(
        &mirror,
        &["rev-parse", &format!("refs/pull-requests/{pr}/from")],
    );
    assert_eq!(fetched, forked, "fetched from the fork");
}

/// A fork's name from a payload never goes into the git URL that carries the token unless
/// it is a name Bitbucket could have given: the job fails for good instead.
#[sqlx::test(migrations = "../../migrations")]
async fn fork_names_outside_bitbucket_characters_are_refused(pool: PgPool) {
    let cloud = Cloud::new(pool).await;
    cloud.resync().await;
    let head: String = cloud.environments().await[0].2.clone().unwrap();
    for (n, fork) in ["../../../evil", "x/app.git?y=#", "-oProxy/app"]
        .iter()
        .enumerate()
    {
        let job = JobSpec::BuildPullRequest {
            environment: format!("pr-{}", 100 + n),
            pr_id: 100 + n as u64,
            source_branch: "patch".into(),
            source_commit: relay_core::CommitHash::parse(&head).unwrap(),
            source_repository: (*fork).to_owned(),
            target_branch: "main".into(),
            post_merge: false,
        };
        relay_store::jobs::enqueue(&cloud.pool, &cloud.id, None, &job)
            .await
            .unwrap();
        while cloud.runner.run_next().await.unwrap() {}
        let (state, attempts, error): (String, i32, Option<String>) = sqlx::query_as(
            "SELECT state, attempts, last_error FROM jobs WHERE kind = 'build_pull_request' ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(&cloud.pool)
        .await
        .unwrap();
        assert_eq!((state.as_str(), attempts), ("dead", 1), "{fork}");
        assert!(error.unwrap().contains("fork cannot be fetched"), "{fork}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_push_after_a_missed_one_is_healed_through_the_api(pool: PgPool) {
    let cloud = Cloud::new(pool).await;
    let server = TestServer::start(cloud.pool.clone()).await;
    let secret: String = {
        let record = relay_store::integrations::get(&cloud.pool, &cloud.id)
            .await
            .unwrap();
        secrecy::ExposeSecret::expose_secret(
            &key()
                .decrypt(
                    &record.id,
                    relay::secrets::SecretField::WebhookSecret,
                    &record.webhook_secret_ciphertext,
                )
                .unwrap(),
        )
        .to_owned()
    };
    let first = cloud
        .fake
        .commit_file("team", "app", "master", "a.txt", "1\n", "one");
    cloud.resync().await;
    let head = |envs: &Vec<(String, String, Option<String>)>| {
        envs.iter()
            .find(|e| e.0 == "master")
            .and_then(|e| e.2.clone())
    };
    assert_eq!(
        head(&cloud.environments().await).as_deref(),
        Some(first.as_str())
    );

    // Two pushes happen; the webhook of the first never arrives.
    let missed = cloud
        .fake
        .commit_file("team", "app", "master", "a.txt", "2\n", "two");
    let latest = cloud
        .fake
        .commit_file("team", "app", "master", "a.txt", "3\n", "three");
    let body = std::fs::read_to_string(fixtures_dir().join("bitbucket-cloud/push.json"))
        .unwrap()
        .replace("40e7580cf11311d84a6e5e97e2cbba6df1675750", &missed)
        .replace("141977fedf5cf35aa290ac87d4b5177ac4cd9de1", &latest);
    let response = post_delivery(
        &server.hook_url(&cloud.id),
        IntegrationType::Cloud,
        "repo:push",
        "late",
        body.as_bytes(),
        Some(sign(&secret, body.as_bytes())),
    )
    .await;
    assert_eq!(response.status(), 202);
    // The push does not follow the stored head: the planner does not trust it and asks for a
    // reconciliation, which sets the head Bitbucket reports.
    for _ in 0..5 {
        while cloud.processor.process_next().await.unwrap() > 0 {}
        while cloud.runner.run_next().await.unwrap() {}
    }
    assert_eq!(
        head(&cloud.environments().await).as_deref(),
        Some(latest.as_str())
    );
    let reconciles: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'reconcile' AND state = 'succeeded'",
    )
    .fetch_one(&cloud.pool)
    .await
    .unwrap();
    assert!(
        reconciles >= 2,
        "the initial sync and the one the late push asked for"
    );
}
