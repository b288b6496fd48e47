//! `pull_request_comments`: one comment per pull-request environment, posted once and
//! edited in place as the environment changes, on Cloud and Server.

use relay_testkit::Flavor;
use sqlx::PgPool;

use super::{cli, dead_jobs, open_pr, row};
use crate::lifecycle::stage::Stage;

async fn comment_jobs(stage: &Stage) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT id, state FROM jobs WHERE kind = 'pull_request_comment' ORDER BY id")
        .fetch_all(&stage.pool)
        .await
        .unwrap()
}

async fn written_once_and_edited_in_place(pool: PgPool, flavor: Flavor) {
    let stage = Stage::new(pool.clone(), flavor, "hook").await;
    let pr = open_pr(&stage, "feature", false);
    let head = stage
        .fake
        .branch_head(stage.owner, "app", "feature")
        .unwrap();
    stage.resync().await;
    let name = format!("pr-{pr}");
    let comments = stage.fake.comments(pr);
    assert_eq!(comments.len(), 1, "{comments:?}");
    let first = comments[0].clone();
    for needle in [
        format!("`{name}`"),
        "**deployed**".to_owned(),
        format!("https://{name}.preview.example.com"),
        head[..12].to_owned(),
    ] {
        assert!(first.text.contains(&needle), "{needle} in {}", first.text);
    }
    assert!(first.edits >= 1, "posted while building, then edited");
    let stored = row(&stage, &name).await.unwrap();
    assert_eq!(stored.pr_comment_id, Some(first.id.to_string()));

    // A new commit: the same comment, edited.
    let next = stage.commit("feature", "b.txt");
    stage.resync().await;
    let comments = stage.fake.comments(pr);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].text.contains(&next[..12]),
        "{}",
        comments[0].text
    );
    assert!(comments[0].edits > first.edits);

    // The same comment job again (a retry, a restarted relay): still one comment.
    let (last_job, _) = comment_jobs(&stage).await.pop().unwrap();
    relay_store::jobs::retry(&stage.pool, last_job)
        .await
        .unwrap();
    stage.settle().await;
    assert_eq!(stage.fake.comments(pr).len(), 1);

    if flavor == Flavor::Server {
        // Someone edited it meanwhile: the relay's version is stale, Bitbucket answers 409,
        // the relay reads the current version and edits again.
        stage
            .fake
            .edit_comment_elsewhere(first.id, "edited by hand");
        let third = stage.commit("feature", "c.txt");
        stage.resync().await;
        let comments = stage.fake.comments(pr);
        assert_eq!(comments.len(), 1);
        assert!(
            comments[0].text.contains(&third[..12]),
            "{}",
            comments[0].text
        );
        let conflicts = stage
            .fake
            .requests_to("/comments/")
            .into_iter()
            .filter(|r| r.method == "PUT" && r.status == 409)
            .count();
        assert_eq!(conflicts, 1, "one stale edit, then the right version");
    }

    // Merged: the comment says the environment stopped.
    stage.fake.close_pull_request(pr, "MERGED");
    stage.resync().await;
    let comments = stage.fake.comments(pr);
    assert_eq!(comments.len(), 1);
    assert!(comments[0].text.contains("stopped"), "{}", comments[0].text);
    assert!(comment_jobs(&stage)
        .await
        .iter()
        .all(|(_, s)| s == "succeeded"));
    assert_eq!(dead_jobs(&stage).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn cloud_comment_is_written_once_and_edited_in_place(pool: PgPool) {
    written_once_and_edited_in_place(pool, Flavor::Cloud).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn server_comment_is_written_once_and_edited_in_place_through_a_stale_version(pool: PgPool) {
    written_once_and_edited_in_place(pool, Flavor::Server).await;
}

async fn deleted_by_a_person_is_not_recreated(pool: PgPool, flavor: Flavor) {
    let stage = Stage::new(pool, flavor, "hook").await;
    let pr = open_pr(&stage, "feature", false);
    stage.resync().await;
    let comment = stage.fake.comments(pr).pop().unwrap();
    stage.fake.delete_comment(comment.id);
    stage.commit("feature", "b.txt");
    stage.resync().await;
    let name = format!("pr-{pr}");
    let stored = row(&stage, &name).await.unwrap();
    assert!(stored.pr_comment_deleted);
    assert!(stored
        .pr_comment_note
        .unwrap()
        .contains("deleted on Bitbucket"));
    let writes = stage.fake.requests_to("/comments").len();
    stage.commit("feature", "c.txt");
    stage.resync().await;
    assert_eq!(stage.fake.comments(pr).len(), 1, "never a second comment");
    assert_eq!(
        stage.fake.requests_to("/comments").len(),
        writes,
        "nothing is posted or edited any more"
    );
    assert_eq!(dead_jobs(&stage).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn cloud_comment_deleted_by_a_person_is_not_recreated(pool: PgPool) {
    deleted_by_a_person_is_not_recreated(pool, Flavor::Cloud).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn server_comment_deleted_by_a_person_is_not_recreated(pool: PgPool) {
    deleted_by_a_person_is_not_recreated(pool, Flavor::Server).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn cloud_without_pull_requests_write_skips_comments_with_a_note(pool: PgPool) {
    let stage = Stage::new(pool, Flavor::Cloud, "hook").await;
    // What the hosted set-up asks for: Pull requests: Read only.
    stage
        .fake
        .set_oauth_scopes("pullrequest webhook repository:write repository");
    // Any change to the integration rebuilds its client, which fetches a new token.
    super::configure(&stage, Default::default()).await;

    let validate = cli(&stage, &["integration:validate", &stage.id]).await;
    let text = String::from_utf8_lossy(&validate.stdout);
    assert_eq!(validate.status.code(), Some(4), "{text}");
    assert!(
        text.contains("[FAIL] pull-request comments") && text.contains("Pull requests: Write"),
        "{text}"
    );

    let pr = open_pr(&stage, "feature", false);
    stage.resync().await;
    let name = format!("pr-{pr}");
    assert_eq!(stage.status_of(&name).await, "active");
    assert!(stage.fake.comments(pr).is_empty());
    assert_eq!(dead_jobs(&stage).await, 0, "skipped, not failed");
    let info = cli(
        &stage,
        &["environment:info", &stage.id, &name, "--format", "json"],
    )
    .await;
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let note = info["pull_request_comment"]["note"].as_str().unwrap();
    assert!(note.contains("Pull requests: Write"), "{note}");

    // With the permission granted (and comments still on), validate passes that check.
    stage
        .fake
        .set_oauth_scopes("pullrequest:write pullrequest webhook repository:write");
    super::configure(&stage, Default::default()).await;
    let validate = cli(&stage, &["integration:validate", &stage.id]).await;
    let text = String::from_utf8_lossy(&validate.stdout);
    assert!(text.contains("[pass] pull-request comments"), "{text}");
}

async fn a_lost_post_answer_is_found_again(pool: PgPool, flavor: Flavor) {
    let stage = Stage::new(pool, flavor, "hook").await;
    // Bitbucket stores the first comment but its answer never arrives: the job fails and its
    // retry finds the comment instead of posting a second one.
    stage.fake.lose_next_comment_answer();
    let pr = open_pr(&stage, "feature", false);
    stage.resync().await;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stage.settle().await;
    }
    let comments = stage.fake.comments(pr);
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(
        comments[0].text.contains("**deployed**"),
        "{}",
        comments[0].text
    );
    let posts: Vec<u16> = stage
        .fake
        .requests_to("/comments")
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect();
    assert_eq!(
        posts,
        [502],
        "posted once, its answer lost, never posted again"
    );
    let stored = row(&stage, &format!("pr-{pr}")).await.unwrap();
    assert_eq!(stored.pr_comment_id, Some(comments[0].id.to_string()));
    assert_eq!(dead_jobs(&stage).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn cloud_comment_whose_post_answer_was_lost_is_adopted(pool: PgPool) {
    a_lost_post_answer_is_found_again(pool, Flavor::Cloud).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn server_comment_whose_post_answer_was_lost_is_adopted(pool: PgPool) {
    a_lost_post_answer_is_found_again(pool, Flavor::Server).await;
}
