//! `build_draft_pull_requests` and the branch filters, on Cloud and Server.

use relay_core::settings::SettingsPatch;
use relay_testkit::{Flavor, PullRequestSpec};
use sqlx::PgPool;

use super::{cli, configure, open_pr, row};
use crate::lifecycle::stage::Stage;

async fn drafts(pool: PgPool, flavor: Flavor) {
    let stage = Stage::new(pool, flavor, "hook").await;
    let no_drafts = || SettingsPatch {
        build_draft_pull_requests: Some(false),
        ..SettingsPatch::default()
    };
    configure(&stage, no_drafts()).await;
    let pr = open_pr(&stage, "wip", true);
    let name = format!("pr-{pr}");
    stage.resync().await;
    assert!(
        row(&stage, &name).await.is_none(),
        "a draft gets no environment"
    );
    assert!(stage.fake.comments(pr).is_empty());

    // Ready for review: it gets one.
    stage.fake.set_pull_request_draft(pr, false);
    stage.resync().await;
    assert_eq!(stage.status_of(&name).await, "active");
    let head = stage.fake.branch_head(stage.owner, "app", "wip").unwrap();
    assert!(stage.deploy_ref(&name).is_some(), "built and pushed");

    // A draft already built is deactivated when drafts are turned off.
    configure(
        &stage,
        SettingsPatch {
            build_draft_pull_requests: Some(true),
            ..SettingsPatch::default()
        },
    )
    .await;
    let second = open_pr(&stage, "spike", true);
    let second_name = format!("pr-{second}");
    stage.resync().await;
    assert_eq!(stage.status_of(&second_name).await, "active");
    configure(&stage, no_drafts()).await;
    stage.resync().await;
    assert_eq!(stage.status_of(&second_name).await, "inactive");
    assert_eq!(stage.deploy_ref(&second_name), None);
    let stored = row(&stage, &second_name).await.unwrap();
    assert_eq!(stored.waiting_reason.as_deref(), Some("draft"));
    let spike = stage.fake.branch_head(stage.owner, "app", "spike").unwrap();
    let status = stage.build_status(&spike, &second_name).unwrap();
    let stopped = if flavor == Flavor::Cloud {
        "STOPPED"
    } else {
        "CANCELLED"
    };
    assert_eq!(status.state, stopped);
    assert!(
        status.description.unwrap_or_default().contains("draft"),
        "the status says why"
    );
    let comment = stage.fake.comments(second).pop().unwrap();
    assert!(comment.text.contains("stopped: draft"), "{}", comment.text);
    assert_eq!(
        stage.status_of(&name).await,
        "active",
        "{head}: not a draft"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn cloud_drafts_wait_until_ready_for_review(pool: PgPool) {
    drafts(pool, Flavor::Cloud).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn server_drafts_wait_until_ready_for_review(pool: PgPool) {
    drafts(pool, Flavor::Server).await;
}

async fn environment_of_branch(stage: &Stage, branch: &str) -> Option<(String, String)> {
    sqlx::query_as(
        "SELECT name, status FROM environments WHERE integration_id = $1 AND branch = $2",
    )
    .bind(&stage.id)
    .bind(branch)
    .fetch_optional(&stage.pool)
    .await
    .unwrap()
}

/// Sets the filters as an admin would, through the CLI; a broken pattern is refused first.
async fn set_filters_through_the_cli(stage: &Stage) {
    let refused = cli(
        stage,
        &[
            "integration:update",
            &stage.id,
            "--branch-include",
            "feature/(",
            "--register-webhook=false",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("branch_include: invalid regular expression"),
        "{stderr}"
    );
    let updated = cli(
        stage,
        &[
            "integration:update",
            &stage.id,
            "--branch-include",
            "feature/.*|main",
            "--branch-exclude",
            ".*-wip",
            "--pull-request-target-include",
            "main",
            "--register-webhook=false",
            "--format",
            "json",
        ],
    )
    .await;
    assert!(
        updated.status.success(),
        "{}",
        String::from_utf8_lossy(&updated.stderr)
    );
    let view: serde_json::Value = serde_json::from_slice(&updated.stdout).unwrap();
    assert_eq!(view["branch_include"], "feature/.*|main");
}

async fn filters(pool: PgPool, flavor: Flavor) {
    let stage = Stage::new(pool, flavor, "hook").await;
    set_filters_through_the_cli(&stage).await;
    for branch in ["feature/a", "feature/b-wip", "hotfix", "develop"] {
        stage.commit(branch, "x.txt");
    }
    let into_main = open_pr(&stage, "feature/c", false);
    let into_develop = stage.fake.open_pull_request(PullRequestSpec::new(
        stage.owner,
        "app",
        "feature/a",
        "develop",
    ));
    let from_hotfix =
        stage
            .fake
            .open_pull_request(PullRequestSpec::new(stage.owner, "app", "hotfix", "main"));
    stage.resync().await;
    assert!(environment_of_branch(&stage, "feature/a").await.is_some());
    assert!(environment_of_branch(&stage, "feature/b-wip")
        .await
        .is_none());
    assert!(environment_of_branch(&stage, "hotfix").await.is_none());
    assert!(environment_of_branch(&stage, "develop").await.is_none());
    assert_eq!(stage.status_of(&format!("pr-{into_main}")).await, "active");
    assert!(row(&stage, &format!("pr-{into_develop}")).await.is_none());
    assert!(row(&stage, &format!("pr-{from_hotfix}")).await.is_none());

    // The default branch is production whatever the filters say.
    configure(
        &stage,
        SettingsPatch {
            branch_exclude: Some("main|feature/a".into()),
            ..SettingsPatch::default()
        },
    )
    .await;
    stage.commit("main", "m.txt");
    stage.resync().await;
    assert_eq!(stage.status_of("main").await, "active");
    // feature/a is newly excluded: deleted on this reconcile (prune is on by default).
    let (_, status) = environment_of_branch(&stage, "feature/a").await.unwrap();
    assert_eq!(status, "deleting");
}

#[sqlx::test(migrations = "../../migrations")]
async fn cloud_branch_filters_decide_which_branches_get_environments(pool: PgPool) {
    filters(pool, Flavor::Cloud).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn server_branch_filters_decide_which_branches_get_environments(pool: PgPool) {
    filters(pool, Flavor::Server).await;
}
