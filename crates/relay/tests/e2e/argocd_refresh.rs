//! Prompt refresh: environment changes set Argo CD's refresh annotation on the configured
//! ApplicationSets through the Kubernetes API (relay-testkit's stand-in, reached through a
//! generated kubeconfig), after the deploy remote has the refs, coalesced, and never holding
//! back mirroring while Kubernetes is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use relay::config::parse_application_sets;
use relay::metrics::Metrics;
use relay::worker::jobs::{Runner, RunnerConfig};
use relay::worker::retry::RetrySchedule;
use relay::worker::{Processor, ProcessorConfig};
use relay_core::IntegrationType;
use relay_testkit::FakeKubernetes;
use serde_json::json;
use sqlx::PgPool;

use crate::argocd::{getparams, PLUGIN_TOKEN};
use crate::support::git_http::{git, GitHttp, Upstream};
use crate::support::*;

const FIXTURE_DEVELOP: &str = "208b0a5c05eddadad01f2aed8802fe0c3b3eaf5e";
const SETS: &str = "argocd/previews,team-web/web-previews,argocd/not-there";
const ANNOTATION: &str = "argocd.argoproj.io/application-set-refresh";

struct World {
    server: TestServer,
    _git: GitHttp,
    upstream: Upstream,
    integration: TestIntegration,
    deploy: tempfile::TempDir,
    kube: FakeKubernetes,
    pool: PgPool,
    sent: usize,
}

impl World {
    /// A Server integration mirroring from a loopback git server into a bare deploy remote;
    /// `env` configures the relay under test.
    async fn new(pool: PgPool, env: &[(&str, &str)]) -> Self {
        let kube = FakeKubernetes::start().await;
        kube.add_application_set("argocd", "previews");
        kube.add_application_set("team-web", "web-previews");
        let fake = GitHttp::start("server-token-value").await;
        let upstream = fake.create_repo("PRJ", "my-repo");
        let integration = add_integration(&pool, IntegrationType::Server).await;
        let deploy = tempfile::tempdir().unwrap();
        git(deploy.path(), &["init", "-q", "--bare", "deploy.git"]);
        sqlx::query(
            "UPDATE integrations SET base_url = $1, default_branch = 'master', deploy_remote = $2",
        )
        .bind(fake.base_url())
        .bind(deploy.path().join("deploy.git").to_str().unwrap())
        .execute(&pool)
        .await
        .unwrap();
        let kubeconfig = kube.kubeconfig();
        let mut vars = vec![
            ("RELAY_ARGOCD_PLUGIN_TOKEN", PLUGIN_TOKEN),
            ("RELAY_ARGOCD_APPLICATIONSETS", SETS),
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ];
        vars.extend_from_slice(env);
        let server = TestServer::start_config(pool.clone(), test_config(&vars)).await;
        Self {
            server,
            _git: fake,
            upstream,
            integration,
            deploy,
            kube,
            pool,
            sent: 0,
        }
    }

    /// Posts `push_branch_create.json` for `branch` at `commit` (from `from`).
    async fn push(&mut self, branch: &str, from: &str, commit: &str) {
        let raw = std::fs::read_to_string(
            fixtures_dir().join("bitbucket-server/push_branch_create.json"),
        )
        .unwrap();
        let mut body = raw
            .replace(FIXTURE_DEVELOP, commit)
            .replace("develop", branch);
        if from != "0000000000000000000000000000000000000000" {
            body = body
                .replace("0000000000000000000000000000000000000000", from)
                .replace("\"ADD\"", "\"UPDATE\"");
        }
        self.post("repo:refs_changed", body).await;
    }

    async fn post(&mut self, event_key: &str, body: String) {
        self.sent += 1;
        let response = post_delivery(
            &self.server.hook_url(&self.integration.id),
            IntegrationType::Server,
            event_key,
            &format!("req-{}", self.sent),
            body.as_bytes(),
            Some(sign(&self.integration.webhook_secret, body.as_bytes())),
        )
        .await;
        assert_eq!(response.status(), 202);
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

    /// Git-lane kinds in order (deploy-side events left out).
    async fn git_kinds(&self) -> Vec<String> {
        let jobs = self.jobs().await.into_iter();
        jobs.filter(|j| j.1 != "notify_deploy_side")
            .map(|j| j.1)
            .collect()
    }

    /// (id, kind, queue_key, state)
    async fn jobs(&self) -> Vec<(i64, String, String, String)> {
        sqlx::query_as("SELECT id, kind, queue_key, state FROM jobs ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    fn patches(&self) -> usize {
        self.kube
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .count()
    }

    fn refreshed(&self, namespace: &str, name: &str) -> bool {
        self.kube.application_set(namespace, name).unwrap()["metadata"]["annotations"][ANNOTATION]
            == "true"
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_new_branch_refreshes_the_application_sets_once_its_ref_is_deployed(pool: PgPool) {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let mut world = World::new(
        pool,
        &[
            ("RELAY_WORKERS", "1"),
            ("RELAY_JOB_WORKERS", "1"),
            ("RELAY_DATA_DIR", &data_dir),
        ],
    )
    .await;
    let develop = world.upstream.commit("develop", "feature.txt", "one\n");
    world
        .push(
            "develop",
            "0000000000000000000000000000000000000000",
            &develop,
        )
        .await;

    // The running relay processes, mirrors, pushes, then patches both ApplicationSets (and
    // finds no third one).
    let deadline = Instant::now() + Duration::from_secs(60);
    while world.patches() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = world.kube.requests();
    assert_eq!(world.patches(), 3, "{requests:?}");
    for request in &requests {
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        assert_eq!(
            request.body,
            json!({"metadata": {"annotations": {ANNOTATION: "true"}}})
        );
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {}", relay_testkit::kubernetes::TOKEN).as_str())
        );
        assert!(
            request
                .query
                .as_deref()
                .unwrap_or_default()
                .contains("fieldManager=bitbucket-relay"),
            "{request:?}"
        );
    }
    assert_eq!(
        requests[0].path,
        "/apis/argoproj.io/v1alpha1/namespaces/argocd/applicationsets/previews"
    );
    assert!(world.refreshed("argocd", "previews"));
    assert!(world.refreshed("team-web", "web-previews"));
    // The merge patch left everything else alone.
    let set = world.kube.application_set("argocd", "previews").unwrap();
    assert_eq!(set["metadata"]["annotations"]["team"], "web");
    assert!(set["spec"]["generators"][0]["plugin"].is_object());

    // The refresh ran in the git lane, after the mirror job that pushed the ref. Its patches
    // are sent before its job row records the outcome, so wait for that too.
    let mut jobs = world.jobs().await;
    while jobs
        .iter()
        .any(|j| j.1 == "refresh_application_sets" && j.3 != "succeeded")
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        jobs = world.jobs().await;
    }
    let mirror = jobs.iter().find(|j| j.1 == "mirror_branch").unwrap();
    let refresh = jobs
        .iter()
        .find(|j| j.1 == "refresh_application_sets")
        .unwrap();
    assert_eq!(refresh.2, format!("git:{}", world.integration.id));
    assert!(refresh.0 > mirror.0 && mirror.3 == "succeeded", "{jobs:?}");
    assert_eq!(refresh.3, "succeeded");
    // A new branch environment is inactive: mirrored, not yet on the deploy remote.
    assert_eq!(world.deploy_ref("refs/heads/develop"), None, "{develop}");

    // What Argo CD then reads: the new (inactive) branch environment.
    let (status, body) = getparams(
        &world.server,
        Some(PLUGIN_TOKEN),
        json!({"status": "inactive"}),
    )
    .await;
    assert_eq!(status, 200);
    let params = &body["output"]["parameters"][0];
    assert_eq!(params["environment"], "develop");
    assert_eq!(params["head_sha"], develop.as_str());
    assert_eq!(params["ref"], "refs/heads/develop");
}

fn processor(pool: &PgPool) -> Processor {
    let config = ProcessorConfig {
        refresh_application_sets: true,
        ..ProcessorConfig::default()
    };
    Processor::new(pool.clone(), Arc::new(Metrics::new()), config)
}

fn runner(pool: &PgPool, data: &std::path::Path, kube: &FakeKubernetes) -> Runner {
    let mut config = RunnerConfig::new(data.to_path_buf(), nowhere());
    config.retry = RetrySchedule {
        delays: vec![Duration::from_millis(50)],
        max_attempts: 1000,
    };
    config.application_sets = parse_application_sets(SETS).unwrap();
    config.kubeconfig = Some(kube.kubeconfig().to_str().unwrap().to_owned());
    Runner::new(pool.clone(), key(), Arc::new(Metrics::new()), config)
}

type JobRows = [(i64, String, String, String)];

/// Runs jobs until `done` holds for the job rows (at most 30 s: a loaded machine is slow).
async fn run_until(world: &World, runner: &Runner, done: impl Fn(&JobRows) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&world.jobs().await) && Instant::now() < deadline {
        run_for(runner, 50).await;
    }
}

/// Runs whatever becomes runnable within `for_ms`.
async fn run_for(runner: &Runner, for_ms: u64) {
    let deadline = Instant::now() + Duration::from_millis(for_ms);
    while Instant::now() < deadline {
        if !runner.run_next().await.unwrap() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn bursts_coalesce_and_a_down_kubernetes_never_holds_back_mirroring(pool: PgPool) {
    let mut world = World::new(pool.clone(), &[]).await;
    let processor = processor(&pool);
    let data = tempfile::tempdir().unwrap();
    let runner = runner(&pool, data.path(), &world.kube);
    let zero = "0000000000000000000000000000000000000000";

    // Two new branches in one batch: two mirror jobs, one refresh behind them.
    let develop = world.upstream.commit("develop", "a.txt", "one\n");
    let feature = world.upstream.commit("feature-x", "b.txt", "two\n");
    world.push("develop", zero, &develop).await;
    world.push("feature-x", zero, &feature).await;
    while processor.process_next().await.unwrap() > 0 {}
    assert_eq!(
        world.git_kinds().await,
        ["mirror_branch", "mirror_branch", "refresh_application_sets"]
    );
    // A delivery that changes no environment queues nothing.
    let tag = std::fs::read_to_string(fixtures_dir().join("bitbucket-server/push_tag_create.json"))
        .unwrap();
    world.post("repo:refs_changed", tag).await;
    while processor.process_next().await.unwrap() > 0 {}
    assert_eq!(world.git_kinds().await.len(), 3);

    // Kubernetes is down: the branches are still mirrored and pushed, the refresh hands over
    // to its own lane.
    world.kube.stop().await;
    let retry_lane = format!("argocd:{}", world.integration.id);
    let handed_over = |jobs: &JobRows| {
        jobs.iter()
            .filter(|j| j.2 != retry_lane)
            .all(|j| j.3 == "succeeded")
            && jobs.iter().any(|j| j.2 == retry_lane)
    };
    run_until(&world, &runner, handed_over).await;
    // Inactive branch environments are mirrored, not pushed to the deploy remote.
    assert_eq!(world.deploy_ref("refs/heads/feature-x"), None, "{feature}");
    let jobs = world.jobs().await;
    let first = jobs
        .iter()
        .find(|j| j.1 == "refresh_application_sets")
        .unwrap();
    assert_eq!(first.3, "succeeded", "{jobs:?}");
    assert_eq!(
        jobs.iter().filter(|j| j.2 == retry_lane).count(),
        1,
        "{jobs:?}"
    );

    // More pushes while it is down: mirroring goes on; the pending retry covers them too.
    let moved = world.upstream.commit("develop", "a.txt", "three\n");
    world.push("develop", &develop, &moved).await;
    while processor.process_next().await.unwrap() > 0 {}
    run_until(&world, &runner, handed_over).await;
    // Mirrored (its mirror job succeeded below); inactive, so not on the deploy remote.
    assert_eq!(world.deploy_ref("refs/heads/develop"), None, "{moved}");
    let jobs = world.jobs().await;
    assert!(
        jobs.iter()
            .filter(|j| j.2 != retry_lane)
            .all(|j| j.3 == "succeeded"),
        "{jobs:?}"
    );
    assert_eq!(world.patches(), 0);

    // Back up, after one refusal (missing RBAC, say): the retry gets through.
    world.kube.resume().await;
    world.kube.fail_next(&[403]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(world.refreshed("argocd", "previews") && world.refreshed("team-web", "web-previews"))
        && Instant::now() < deadline
    {
        run_for(&runner, 100).await;
    }
    assert!(world.refreshed("argocd", "previews"));
    assert!(world.refreshed("team-web", "web-previews"));
    let jobs = world.jobs().await;
    assert!(jobs.iter().all(|j| j.3 == "succeeded"), "{jobs:?}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_relay_without_application_sets_queues_no_refresh(pool: PgPool) {
    let mut world = World::new(pool.clone(), &[]).await;
    let processor = Processor::new(
        pool.clone(),
        Arc::new(Metrics::new()),
        ProcessorConfig::default(),
    );
    let develop = world.upstream.commit("develop", "a.txt", "one\n");
    world
        .push(
            "develop",
            "0000000000000000000000000000000000000000",
            &develop,
        )
        .await;
    while processor.process_next().await.unwrap() > 0 {}
    assert_eq!(world.git_kinds().await, ["mirror_branch"]);
}
