//! Deployment reports: who may send them, and the truthful build statuses that follow in both
//! `deploy_feedback` modes, on Cloud and on Server.

use relay_testkit::Flavor;
use serde_json::json;
use sqlx::PgPool;

use super::stage::Stage;
use crate::cli::Relay;
use crate::support::ADMIN_TOKEN;

async fn deployments(stage: &Stage) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deployments")
        .fetch_one(&stage.pool)
        .await
        .unwrap()
}

/// `main`'s head, activated with the integration's `deploy_feedback`.
async fn deployed_production(stage: &Stage) -> String {
    stage.fake.branch_head(stage.owner, "app", "main").unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn reports_need_the_integrations_own_token_or_the_admin_token(pool: PgPool) {
    let stage = Stage::new(pool.clone(), Flavor::Cloud, "report").await;
    let other = Stage::new(pool, Flavor::Cloud, "report").await;
    let head = deployed_production(&stage).await;
    let path = stage.env_path("main", "deployments");
    let body = json!({"commit": head, "state": "success", "url": "https://main.example.com"});
    for (token, expected) in [
        ("wrong", 401),
        ("", 401),
        (other.report_token.as_str(), 401),
        (stage.report_token.as_str(), 201),
        (ADMIN_TOKEN, 201),
    ] {
        let before = deployments(&stage).await;
        let (status, answer) = stage.post(&path, token, body.clone()).await;
        assert_eq!(status, expected, "{token}: {answer}");
        let added = deployments(&stage).await - before;
        assert_eq!(added, i64::from(expected == 201), "{token}");
    }
    // The report token is good for reports only.
    let (status, _) = stage
        .post(
            &stage.env_path("main", "activate"),
            &stage.report_token,
            json!({}),
        )
        .await;
    assert_eq!(status, 401);
    // Bad input is refused with a reason and stores nothing.
    let before = deployments(&stage).await;
    for bad in [
        json!({"commit": "abc", "state": "success"}),
        json!({"commit": head, "state": "deployed"}),
        json!({"commit": head, "state": "success", "url": "ftp://x"}),
        json!({"commit": head, "state": "success", "extra": 1}),
    ] {
        let (status, answer) = stage.post(&path, &stage.report_token, bad.clone()).await;
        assert!(status == 422 || status == 400, "{bad}: {status} {answer}");
    }
    assert_eq!(deployments(&stage).await, before);
    let (status, _) = stage
        .post(&stage.env_path("nope", "deployments"), ADMIN_TOKEN, body)
        .await;
    assert_eq!(status, 404);
}

/// In `report` mode the hook accepting `deployed` means in progress; the report decides.
async fn report_mode(flavor: Flavor, pool: PgPool) {
    let stage = Stage::new(pool.clone(), flavor, "report").await;
    let head = deployed_production(&stage).await;
    assert_eq!(
        stage.build_status(&head, "main").unwrap().state,
        "INPROGRESS"
    );

    let path = stage.env_path("main", "deployments");
    let url = "https://main.example.com/build/7";
    let body = json!({"commit": head, "state": "success", "url": url});
    let (status, answer) = stage.post(&path, &stage.report_token, body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["current_head"], true);
    stage.settle().await;
    let status = stage.build_status(&head, "main").unwrap();
    assert_eq!(
        (status.state.as_str(), status.url.as_deref()),
        ("SUCCESSFUL", Some(url))
    );

    // A failure of the head marks the environment failed and Bitbucket says so.
    let body = json!({"commit": head, "state": "failure", "description": "pods crash-looping"});
    stage.post(&path, &stage.report_token, body).await;
    stage.settle().await;
    assert_eq!(stage.status_of("main").await, "failed");
    let status = stage.build_status(&head, "main").unwrap();
    assert_eq!(status.state, "FAILED");
    assert_eq!(status.description.as_deref(), Some("pods crash-looping"));

    // A report about an older commit is recorded but changes nothing Bitbucket shows.
    let old = head.clone();
    let next = stage.commit("main", "b.txt");
    stage.resync().await;
    let body = json!({"commit": old, "state": "success"});
    let (status, answer) = stage.post(&path, ADMIN_TOKEN, body).await;
    assert_eq!(
        (status, answer["current_head"].as_bool()),
        (201, Some(false))
    );
    stage.settle().await;
    assert_eq!(stage.build_status(&old, "main").unwrap().state, "FAILED");
    assert_eq!(
        stage.build_status(&next, "main").unwrap().state,
        "INPROGRESS"
    );

    // From a shell: the same through the CLI, and environment:url follows the report.
    let relay = Relay::new(&pool);
    let out = relay
        .command(&[
            "deployment:report",
            &stage.id,
            "main",
            "--commit",
            &next,
            "--state",
            "success",
            "--url",
            "https://main.example.com/build/8",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stage.settle().await;
    assert_eq!(
        stage.build_status(&next, "main").unwrap().state,
        "SUCCESSFUL"
    );
    assert_eq!(stage.status_of("main").await, "active");
    let out = relay
        .command(&["environment:url", &stage.id, "main"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "https://main.example.com/build/8"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn report_mode_statuses_on_cloud(pool: PgPool) {
    report_mode(Flavor::Cloud, pool).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn report_mode_statuses_on_server(pool: PgPool) {
    report_mode(Flavor::Server, pool).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn hook_mode_statuses_on_cloud_and_server(pool: PgPool) {
    for flavor in [Flavor::Cloud, Flavor::Server] {
        let stage = Stage::new(pool.clone(), flavor, "hook").await;
        let head = deployed_production(&stage).await;
        let status = stage.build_status(&head, "main").unwrap();
        assert_eq!(
            (status.state.as_str(), status.description.as_deref()),
            ("SUCCESSFUL", Some("deployed")),
            "{flavor:?}"
        );
        sqlx::query("DELETE FROM integrations")
            .execute(&pool)
            .await
            .unwrap();
    }
}
