//! The next batch's first chunk planned ahead, while the current batch's last chunk is
//! written: used only when the claim finds the same deliveries, settings and environments it
//! was planned against, so it never changes what processing decides.

use std::sync::Arc;

use relay::metrics::Metrics;
use relay::worker::{Processor, ProcessorConfig};
use relay_core::IntegrationType;
use sqlx::PgPool;

use crate::support::*;

/// Stores the fixtures named, in order, `rounds` times over.
async fn store(pool: &PgPool, integration: &str, fixtures: &[(&str, &str)], rounds: usize) {
    for round in 0..rounds {
        for (n, (file, event_key)) in fixtures.iter().enumerate() {
            let body = std::fs::read(fixtures_dir().join(file)).unwrap();
            sqlx::query(
                "INSERT INTO deliveries (integration_id, request_id, event_key, body) VALUES ($1, $2, $3, $4)",
            )
            .bind(integration)
            .bind(format!("{integration}-{round}-{n}"))
            .bind(event_key)
            .bind(&body)
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

fn processor(pool: &PgPool, batch_size: i64) -> Processor {
    Processor::new(
        pool.clone(),
        Arc::new(Metrics::new()),
        ProcessorConfig {
            workers: 1,
            batch_size,
            ..ProcessorConfig::default()
        },
    )
}

/// Every delivery's status and planned changes and jobs, in order, without the receipt times
/// the planner stamps them with.
async fn decisions(pool: &PgPool, integration: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        r#"SELECT status,
                  regexp_replace((decisions -> 'changes')::text || (decisions -> 'jobs')::text,
                                 '"(last_activity_ms|at_ms)": [0-9]+', '', 'g')
           FROM deliveries WHERE integration_id = $1 ORDER BY id"#,
    )
    .bind(integration)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn environments(pool: &PgPool, integration: &str) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT name, status, head_commit FROM environments WHERE integration_id = $1 ORDER BY name",
    )
    .bind(integration)
    .fetch_all(pool)
    .await
    .unwrap()
}

const MIXED: &[(&str, &str)] = &[
    ("bitbucket-cloud/push_branch_create.json", "repo:push"),
    ("bitbucket-cloud/pr_created.json", "pullrequest:created"),
    ("bitbucket-cloud/push.json", "repo:push"),
    ("bitbucket-cloud/pr_updated.json", "pullrequest:updated"),
    ("bitbucket-cloud/pr_declined.json", "pullrequest:rejected"),
    ("bitbucket-cloud/push_branch_delete.json", "repo:push"),
];

/// Drained five at a time (each batch's first chunk planned ahead) or all in one batch, the
/// same backlog gives the same decisions and the same environments.
#[sqlx::test(migrations = "../../migrations")]
async fn planning_ahead_decides_what_planning_in_one_batch_decides(pool: PgPool) {
    let ahead = add_integration(&pool, IntegrationType::Cloud).await;
    let whole = add_integration(&pool, IntegrationType::Cloud).await;
    store(&pool, &ahead.id, MIXED, 4).await;
    assert_eq!(crate::processing::drain(&processor(&pool, 5)).await, 24);
    store(&pool, &whole.id, MIXED, 4).await;
    assert_eq!(crate::processing::drain(&processor(&pool, 1000)).await, 24);

    let (a, w) = (
        decisions(&pool, &ahead.id).await,
        decisions(&pool, &whole.id).await,
    );
    assert_eq!(a, w);
    assert!(a.iter().all(|(status, _)| status == "processed"), "{a:?}");
    assert_eq!(
        environments(&pool, &ahead.id).await,
        environments(&pool, &whole.id).await
    );
}

/// An environment changed between two batches (here removed behind the relay's back) makes
/// the plan made ahead stale: the next batch is planned again against what is stored.
#[sqlx::test(migrations = "../../migrations")]
async fn a_plan_made_ahead_is_dropped_when_the_environments_changed_meanwhile(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    store(
        &pool,
        &cloud.id,
        &[("bitbucket-cloud/push.json", "repo:push")],
        10,
    )
    .await;
    let processor = processor(&pool, 5);
    assert_eq!(processor.process_next().await.unwrap(), 5);
    let created = environments(&pool, &cloud.id).await;
    assert_eq!(
        created.len(),
        1,
        "the first push created the branch's environment"
    );
    // The second batch's first chunk was planned ahead against that environment.
    sqlx::query("DELETE FROM environments WHERE integration_id = $1")
        .bind(&cloud.id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(processor.process_next().await.unwrap(), 5);

    assert_eq!(
        environments(&pool, &cloud.id).await,
        created,
        "planned again against no environment, the sixth push created it anew"
    );
    let all = decisions(&pool, &cloud.id).await;
    assert_eq!(all[5], all[0], "the sixth push decided what the first did");
    assert_ne!(all[6], all[5]);
}
