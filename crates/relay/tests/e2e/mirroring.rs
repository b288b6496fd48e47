//! Webhooks to git: a "Bitbucket Server" served over smart HTTP by `git http-backend` behind a
//! token check, the relay's processor and job runner, a bare deploy remote on disk. This
//! stand-in serves git only, so build-status jobs fail here; tests/e2e/reconcile.rs checks
//! them against the full fake Bitbucket.

use std::sync::Arc;
use std::time::Duration;

use relay::metrics::Metrics;
use relay::worker::jobs::{Runner, RunnerConfig};
use relay::worker::retry::RetrySchedule;
use relay::worker::{Processor, ProcessorConfig};
use relay_core::IntegrationType;
use sqlx::PgPool;

use crate::support::git_http::{git, GitHttp, Upstream};
use crate::support::*;

const FIXTURE_DEVELOP: &str = "208b0a5c05eddadad01f2aed8802fe0c3b3eaf5e";
const FIXTURE_MASTER: &str = "823b2230a56056231c9425d63758fa87078a66b4";

struct World {
    server: TestServer,
    git: GitHttp,
    upstream: Upstream,
    integration: TestIntegration,
    deploy: tempfile::TempDir,
    data: tempfile::TempDir,
    processor: Processor,
    runner: Runner,
    pool: PgPool,
    sent: usize,
}

impl World {
    async fn new(pool: PgPool, post_merge: bool) -> Self {
        let server = TestServer::start(pool.clone()).await;
        let fake = GitHttp::start("server-token-value").await;
        let upstream = fake.create_repo("PRJ", "my-repo");
        let integration = add_integration(&pool, IntegrationType::Server).await;
        let deploy = tempfile::tempdir().unwrap();
        git(deploy.path(), &["init", "-q", "--bare", "deploy.git"]);
        sqlx::query("UPDATE integrations SET base_url = $1, default_branch = 'master', deploy_remote = $2, build_pull_requests_post_merge = $3")
            .bind(fake.base_url())
            .bind(deploy.path().join("deploy.git").to_str().unwrap())
            .bind(post_merge)
            .execute(&pool)
            .await
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut config = RunnerConfig::new(data.path().to_path_buf(), nowhere());
        // Retries wait far longer than any test runs: a test makes time pass with
        // `retries_fall_due`, so a slow machine never runs a retry before the test looks.
        config.retry = RetrySchedule {
            delays: vec![Duration::from_secs(3600)],
            max_attempts: 3,
        };
        config.timeout = Duration::from_secs(30);
        let metrics = Arc::new(Metrics::new());
        let processor = Processor::new(pool.clone(), metrics.clone(), ProcessorConfig::default());
        let runner = Runner::new(pool.clone(), key(), metrics, config);
        Self {
            server,
            git: fake,
            upstream,
            integration,
            deploy,
            data,
            processor,
            runner,
            pool,
            sent: 0,
        }
    }

    /// Sends a Server fixture with its commit ids replaced, then processes and runs jobs.
    async fn deliver(&mut self, fixture: &str, replacements: &[(&str, &str)]) {
        let raw =
            std::fs::read_to_string(fixtures_dir().join("bitbucket-server").join(fixture)).unwrap();
        let mut body = raw;
        for (from, to) in replacements {
            body = body.replace(from, to);
        }
        let event_key = serde_json::from_str::<serde_json::Value>(&body).unwrap()["eventKey"]
            .as_str()
            .unwrap()
            .to_owned();
        self.sent += 1;
        let response = post_delivery(
            &self.server.hook_url(&self.integration.id),
            IntegrationType::Server,
            &event_key,
            &format!("req-{}", self.sent),
            body.as_bytes(),
            Some(sign(&self.integration.webhook_secret, body.as_bytes())),
        )
        .await;
        assert_eq!(response.status(), 202);
        while self.processor.process_next().await.unwrap() > 0 {}
        self.run_jobs().await;
    }

    /// `environment:activate` (or deactivate), then everything it queued.
    async fn transition(&self, name: &str, transition: relay_core::event::Transition) {
        relay::admin::environments::transition(&self.pool, &self.integration.id, name, transition)
            .await
            .unwrap();
        while self.processor.process_next().await.unwrap() > 0 {}
        self.run_jobs().await;
    }

    async fn run_jobs(&self) {
        while self.runner.run_next().await.unwrap() {}
    }

    /// The retry delay passes for every job waiting on one.
    async fn retries_fall_due(&self) {
        sqlx::query("UPDATE jobs SET run_after = now() WHERE state = 'pending'")
            .execute(&self.pool)
            .await
            .unwrap();
    }

    fn mirror(&self) -> std::path::PathBuf {
        self.data
            .path()
            .join("mirrors")
            .join(format!("{}.git", self.integration.id))
    }

    fn deploy_ref(&self, name: &str) -> Option<String> {
        let out = std::process::Command::new("git")
            .args(["rev-parse", "--verify", "-q", name])
            .current_dir(self.deploy.path().join("deploy.git"))
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap().trim().to_owned())
    }

    async fn jobs(&self) -> Vec<(String, String, i32, Option<String>)> {
        sqlx::query_as("SELECT kind, state, attempts, last_error FROM jobs ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    async fn environment(&self, name: &str) -> (String, Option<String>) {
        sqlx::query_as("SELECT status, failure_reason FROM environments WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn branches_are_mirrored_pushed_and_pruned_over_http(pool: PgPool) {
    let mut world = World::new(pool, false).await;
    let develop = world.upstream.commit("develop", "feature.txt", "one\n");
    world
        .deliver("push_branch_create.json", &[(FIXTURE_DEVELOP, &develop)])
        .await;
    let jobs = world.jobs().await;
    assert!(
        jobs.iter()
            .all(|j| j.1 == "succeeded" || j.0 == "build_status"),
        "{jobs:?}"
    );
    assert_eq!(
        git(&world.mirror(), &["rev-parse", "refs/heads/develop"]),
        develop
    );
    // A new branch environment is inactive: mirrored, not on the deploy remote.
    assert_eq!(world.deploy_ref("refs/heads/develop"), None);
    world
        .transition(
            "develop",
            relay_core::event::Transition::Activate { sync_data: false },
        )
        .await;
    assert_eq!(
        world.deploy_ref("refs/heads/develop").as_deref(),
        Some(develop.as_str())
    );
    // Only the branch the rules track reached the deploy remote.
    assert_eq!(world.deploy_ref("refs/heads/master"), None);

    // A force-push (rewritten history) is followed.
    git(&world.upstream.work, &["reset", "-q", "--hard", "master"]);
    let rewritten = world.upstream.commit("develop", "other.txt", "two\n");
    // push_branch_create.json turned into an UPDATE of develop from the old to the new head.
    world
        .deliver(
            "push_branch_create.json",
            &[
                ("0000000000000000000000000000000000000000", &develop),
                (FIXTURE_DEVELOP, &rewritten),
                ("\"ADD\"", "\"UPDATE\""),
            ],
        )
        .await;
    assert_eq!(
        world.deploy_ref("refs/heads/develop").as_deref(),
        Some(rewritten.as_str())
    );

    // The branch is deleted upstream: prune deletes the mirror ref and the deployed ref.
    world.upstream.delete_branch("develop");
    let delete =
        std::fs::read_to_string(fixtures_dir().join("bitbucket-server/push_branch_delete.json"))
            .unwrap();
    let delete: serde_json::Value = serde_json::from_str(&delete).unwrap();
    let deleted_from = delete["changes"][0]["fromHash"]
        .as_str()
        .unwrap()
        .to_owned();
    world
        .deliver("push_branch_delete.json", &[(&deleted_from, &rewritten)])
        .await;
    let jobs = world.jobs().await;
    assert!(
        jobs.iter()
            .any(|j| j.0 == "delete_ref" && j.1 == "succeeded"),
        "{jobs:?}"
    );
    assert!(std::process::Command::new("git")
        .args(["rev-parse", "--verify", "-q", "refs/heads/develop"])
        .current_dir(world.mirror())
        .output()
        .unwrap()
        .stdout
        .is_empty());
    assert_eq!(world.deploy_ref("refs/heads/develop"), None);
}

#[sqlx::test(migrations = "../../migrations")]
async fn pull_requests_build_post_merge_and_conflicts_fail_the_environment(pool: PgPool) {
    let mut world = World::new(pool, true).await;
    let develop = world.upstream.commit("develop", "feature.txt", "feature\n");
    let master = world.upstream.commit("master", "main.txt", "main\n");
    world
        .deliver(
            "pr_open.json",
            &[(FIXTURE_DEVELOP, &develop), (FIXTURE_MASTER, &master)],
        )
        .await;
    let jobs = world.jobs().await;
    assert!(
        jobs.iter()
            .any(|j| j.0 == "build_pull_request" && j.1 == "succeeded"),
        "{jobs:?}"
    );
    assert!(
        jobs.iter().any(|j| j.0 == "deploy" && j.1 == "succeeded"),
        "a built PR is deployed: {jobs:?}"
    );
    let merge = git(
        &world.mirror(),
        &["rev-parse", "refs/pull-requests/2/merge"],
    );
    let parents = git(
        &world.mirror(),
        &["rev-list", "--parents", "-n", "1", &merge],
    );
    assert_eq!(parents, format!("{merge} {master} {develop}"));
    assert_eq!(
        world.deploy_ref("refs/heads/pr-2").as_deref(),
        Some(merge.as_str())
    );
    assert_eq!(world.environment("pr-2").await.0, "active");

    // The source now conflicts with the target: the environment fails, nothing else stops.
    // (the fixture's new source branch is feature-2, branched before master's change)
    let conflicting = world
        .upstream
        .commit("feature-2", "feature.txt", "theirs\n");
    world.upstream.commit("master", "feature.txt", "ours\n");
    let updated =
        std::fs::read_to_string(fixtures_dir().join("bitbucket-server/pr_from_ref_updated.json"))
            .unwrap();
    let value: serde_json::Value = serde_json::from_str(&updated).unwrap();
    let from_latest = value["pullRequest"]["fromRef"]["latestCommit"]
        .as_str()
        .unwrap()
        .to_owned();
    let previous = value["previousFromHash"]
        .as_str()
        .unwrap_or(FIXTURE_DEVELOP)
        .to_owned();
    let to_latest = value["pullRequest"]["toRef"]["latestCommit"]
        .as_str()
        .unwrap()
        .to_owned();
    world
        .deliver(
            "pr_from_ref_updated.json",
            &[
                (&from_latest, &conflicting),
                (&previous, &develop),
                (&to_latest, &master),
            ],
        )
        .await;
    let (status, reason) = world.environment("pr-2").await;
    assert_eq!(status, "failed");
    assert!(reason.unwrap().contains("feature.txt"));
    let jobs = world.jobs().await;
    assert!(
        jobs.iter()
            .all(|j| j.1 == "succeeded" || j.0 == "build_status"),
        "a conflict is a result, not a job failure: {jobs:?}"
    );
    assert!(jobs.iter().any(|j| j.0 == "notify_deploy_side"), "{jobs:?}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn refused_credentials_and_a_dead_remote_retry_then_dead_letter(pool: PgPool) {
    let mut world = World::new(pool, false).await;
    let develop = world.upstream.commit("develop", "feature.txt", "one\n");
    world.git.set_token("rotated-token");
    world
        .deliver("push_branch_create.json", &[(FIXTURE_DEVELOP, &develop)])
        .await;
    let jobs = world.jobs().await;
    let mirror_job = jobs.iter().find(|j| j.0 == "mirror_branch").unwrap();
    assert_eq!(mirror_job.1, "pending", "{jobs:?}");
    assert!(
        mirror_job
            .3
            .as_deref()
            .unwrap()
            .contains("refused the credentials"),
        "{jobs:?}"
    );
    assert!(!mirror_job
        .3
        .as_deref()
        .unwrap()
        .contains("server-token-value"));

    // The remote goes away entirely: retries, then the dead letter, and it says why.
    sqlx::query("UPDATE integrations SET base_url = 'http://127.0.0.1:9', updated_at = now()")
        .execute(&world.pool)
        .await
        .unwrap();
    for _ in 0..5 {
        world.retries_fall_due().await;
        world.run_jobs().await;
    }
    let jobs = world.jobs().await;
    let mirror_job = jobs.iter().find(|j| j.0 == "mirror_branch").unwrap();
    assert_eq!(
        (mirror_job.1.as_str(), mirror_job.2),
        ("dead", 3),
        "{jobs:?}"
    );
    assert!(
        mirror_job.3.as_deref().unwrap().contains("cannot reach"),
        "{jobs:?}"
    );

    // Fixed and retried by hand: it goes through.
    sqlx::query("UPDATE integrations SET base_url = $1, updated_at = now()")
        .bind(world.git.base_url())
        .execute(&world.pool)
        .await
        .unwrap();
    world.git.set_token("server-token-value");
    let id: i64 = sqlx::query_scalar("SELECT id FROM jobs WHERE kind = 'mirror_branch'")
        .fetch_one(&world.pool)
        .await
        .unwrap();
    relay_store::jobs::retry(&world.pool, id).await.unwrap();
    world.run_jobs().await;
    assert_eq!(
        git(&world.mirror(), &["rev-parse", "refs/heads/develop"]),
        develop
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_unwritable_data_dir_fails_jobs_cleanly(pool: PgPool) {
    let mut world = World::new(pool, false).await;
    std::fs::write(world.data.path().join("mirrors"), "not a directory").unwrap();
    let develop = world.upstream.commit("develop", "feature.txt", "one\n");
    world
        .deliver("push_branch_create.json", &[(FIXTURE_DEVELOP, &develop)])
        .await;
    let jobs = world.jobs().await;
    let mirror_job = jobs.iter().find(|j| j.0 == "mirror_branch").unwrap();
    assert_eq!(mirror_job.1, "pending", "retried later: {jobs:?}");
    assert!(
        mirror_job
            .3
            .as_deref()
            .unwrap()
            .contains("mirror directory"),
        "{jobs:?}"
    );
}
