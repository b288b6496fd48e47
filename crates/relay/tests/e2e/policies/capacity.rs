//! `environment_idle_ttl` (with a short duration, swept like `relay serve` does) and
//! `max_active_environments` (the waiting queue), on Cloud and Server.

use std::time::Duration;

use relay_core::policy::DurationInput;
use relay_core::settings::SettingsPatch;
use relay_testkit::Flavor;
use sqlx::PgPool;

use super::{cli, configure, open_pr, row};
use crate::lifecycle::stage::Stage;

async fn sweeps(stage: &Stage) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE event_key = 'relay:sweep'")
        .fetch_one(&stage.pool)
        .await
        .unwrap()
}

async fn idle_ttl(pool: PgPool, flavor: Flavor) {
    let stage = Stage::new(pool, flavor, "hook").await;
    configure(
        &stage,
        SettingsPatch {
            environment_idle_ttl: Some(DurationInput::Text("5s".into())),
            ..SettingsPatch::default()
        },
    )
    .await;
    let pr = open_pr(&stage, "feature", false);
    let name = format!("pr-{pr}");
    stage.resync().await;
    assert_eq!(stage.status_of(&name).await, "active");
    let active_since = row(&stage, &name).await.unwrap().last_activity_ms.unwrap();
    // Nothing is idle yet: no sweep is queued (checked only while that is sure).
    if chrono::Utc::now().timestamp_millis() - active_since < 4_000 {
        relay::worker::sweep::queue(&stage.pool).await.unwrap();
        assert_eq!(sweeps(&stage).await, 0);
    }

    let idle_at = active_since + 5_000 + 200;
    let wait = idle_at - chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    // Relays sweeping at once, or one after the other, queue one sweep.
    let mut at_once = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let pool = stage.pool.clone();
        at_once.spawn(async move { relay::worker::sweep::queue(&pool).await });
    }
    while let Some(queued) = at_once.join_next().await {
        queued.unwrap().unwrap();
    }
    relay::worker::sweep::queue(&stage.pool).await.unwrap();
    assert_eq!(sweeps(&stage).await, 1);
    stage.settle().await;
    assert_eq!(stage.status_of(&name).await, "inactive");
    assert_eq!(stage.deploy_ref(&name), None);
    assert_eq!(
        stage.events_of(&name).last().map(String::as_str),
        Some("environment.deactivated")
    );
    let head = stage
        .fake
        .branch_head(stage.owner, "app", "feature")
        .unwrap();
    let status = stage.build_status(&head, &name).unwrap();
    assert!(status.description.unwrap_or_default().contains("idle"));
    let comment = stage.fake.comments(pr).pop().unwrap();
    assert!(comment.text.contains("stopped: idle"), "{}", comment.text);
    // It expired once: the next sweep finds nothing to do.
    relay::worker::sweep::queue(&stage.pool).await.unwrap();
    assert_eq!(sweeps(&stage).await, 1);

    // Its next push activates it again.
    let next = stage.commit("feature", "b.txt");
    stage.resync().await;
    assert_eq!(stage.status_of(&name).await, "active");
    assert!(stage.deploy_ref(&name).is_some());
    let status = stage.build_status(&next, &name).unwrap();
    assert_eq!(status.state, "SUCCESSFUL");
}

#[sqlx::test(migrations = "../../migrations")]
async fn cloud_idle_environments_stop_and_come_back_on_push(pool: PgPool) {
    idle_ttl(pool, Flavor::Cloud).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn server_idle_environments_stop_and_come_back_on_push(pool: PgPool) {
    idle_ttl(pool, Flavor::Server).await;
}

async fn cap(pool: PgPool, flavor: Flavor) {
    let stage = Stage::new(pool, flavor, "hook").await;
    let updated = cli(
        &stage,
        &[
            "integration:update",
            &stage.id,
            "--max-active-environments",
            "1",
            "--environment-idle-ttl",
            "7d",
        ],
    )
    .await;
    assert!(
        updated.status.success(),
        "{}",
        String::from_utf8_lossy(&updated.stderr)
    );
    let shown = cli(&stage, &["integration:get", &stage.id, "--format", "json"]).await;
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["max_active_environments"], 1);
    assert_eq!(shown["environment_idle_ttl"], 7 * 86_400);

    let first = open_pr(&stage, "one", false);
    let second = open_pr(&stage, "two", false);
    let third = open_pr(&stage, "three", false);
    stage.resync().await;
    let [one, two, three] = [first, second, third].map(|id| format!("pr-{id}"));
    assert_eq!(stage.status_of(&one).await, "active");
    for waiting in [&two, &three] {
        assert_eq!(stage.status_of(waiting).await, "inactive");
        assert_eq!(stage.deploy_ref(waiting), None);
    }
    let waiting_text = "waiting: max active environments reached";
    let info = cli(
        &stage,
        &["environment:info", &stage.id, &two, "--property", "waiting"],
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&info.stdout).trim(), waiting_text);
    let head = stage.fake.branch_head(stage.owner, "app", "two").unwrap();
    let status = stage.build_status(&head, &two).unwrap();
    assert_eq!(
        (status.state.as_str(), status.description.as_deref()),
        ("INPROGRESS", Some(waiting_text))
    );
    let comment = stage.fake.comments(second).pop().unwrap();
    assert!(comment.text.contains(waiting_text), "{}", comment.text);

    // A slot frees up: the one that waited longest is activated, the other still waits.
    stage.fake.close_pull_request(first, "MERGED");
    stage.resync().await;
    assert_eq!(stage.status_of(&two).await, "active");
    assert!(stage.deploy_ref(&two).is_some());
    assert_eq!(stage.status_of(&three).await, "inactive");
    assert_eq!(
        row(&stage, &two).await.unwrap().waiting_reason,
        None,
        "no longer waiting"
    );
    let comment = stage.fake.comments(second).pop().unwrap();
    assert!(comment.text.contains("**deployed**"), "{}", comment.text);
    assert_eq!(stage.fake.comments(second).len(), 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn cloud_beyond_the_cap_environments_wait_their_turn(pool: PgPool) {
    cap(pool, Flavor::Cloud).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn server_beyond_the_cap_environments_wait_their_turn(pool: PgPool) {
    cap(pool, Flavor::Server).await;
}
