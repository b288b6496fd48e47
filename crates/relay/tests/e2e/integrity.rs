//! Deliveries belong to an integration that exists, checked once per statement by triggers
//! instead of a per-row foreign key (migration 20261202130000): the promises of the foreign
//! key still hold, including under a concurrent delete.

use std::time::Duration;

use relay_core::IntegrationType;
use relay_store::deliveries::{insert_batch, InsertError, InsertOutcome};
use sqlx::{Connection, PgPool};

use crate::support::*;

async fn deliveries_of(pool: &PgPool, integration_id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE integration_id = $1")
        .bind(integration_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn deleting_an_integration_deletes_its_deliveries_only(pool: PgPool) {
    let gone = add_integration(&pool, IntegrationType::Cloud).await;
    let kept = add_integration(&pool, IntegrationType::Server).await;
    let mut conn = pool.acquire().await.unwrap();
    let batch = [
        push_delivery(&gone.id, "a"),
        push_delivery(&kept.id, "b"),
        push_delivery(&gone.id, "c"),
    ];
    let stored = insert_batch(&mut conn, &batch).await;
    assert!(stored
        .iter()
        .all(|r| matches!(r, Ok(InsertOutcome::Stored(_)))));

    relay_store::integrations::delete(&pool, &gone.id)
        .await
        .unwrap();
    assert_eq!(deliveries_of(&pool, &gone.id).await, 0);
    assert_eq!(deliveries_of(&pool, &kept.id).await, 1);
}

/// A batch stored while its integration's delete is in flight waits for the delete and is
/// then refused as an unknown integration: nothing is left behind without an integration.
#[sqlx::test(migrations = "../../migrations")]
async fn storing_during_a_delete_waits_for_it_and_is_refused(pool: PgPool) {
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let mut deleting = pool.begin().await.unwrap();
    sqlx::query("DELETE FROM integrations WHERE id = $1")
        .bind(&integration.id)
        .execute(&mut *deleting)
        .await
        .unwrap();

    let storing = {
        let pool = pool.clone();
        let id = integration.id.clone();
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            insert_batch(
                &mut conn,
                &[push_delivery(&id, "a"), push_delivery(&id, "b")],
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !storing.is_finished(),
        "the insert must wait for the delete"
    );
    deleting.commit().await.unwrap();

    let results = storing.await.unwrap();
    assert_eq!(
        results,
        vec![
            Err(InsertError::UnknownIntegration),
            Err(InsertError::UnknownIntegration)
        ]
    );
    assert_eq!(delivery_count(&pool).await, 0);
}

/// An integration deleted while a delivery for it is being stored waits for that
/// transaction, then deletes the delivery with the integration.
#[sqlx::test(migrations = "../../migrations")]
async fn a_delete_during_storing_waits_and_takes_the_new_deliveries(pool: PgPool) {
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let mut conn = pool.acquire().await.unwrap();
    let mut storing = conn.begin().await.unwrap();
    let stored = insert_batch(&mut storing, &[push_delivery(&integration.id, "a")]).await;
    assert!(matches!(stored[0], Ok(InsertOutcome::Stored(_))));

    let deleting = {
        let pool = pool.clone();
        let id = integration.id.clone();
        tokio::spawn(async move { relay_store::integrations::delete(&pool, &id).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !deleting.is_finished(),
        "the delete must wait for the insert"
    );
    storing.commit().await.unwrap();

    deleting.await.unwrap().unwrap();
    assert_eq!(delivery_count(&pool).await, 0);
}

/// The id of an integration with deliveries cannot change, nor can a delivery move to an
/// integration that does not exist: both are refused with the foreign key's error code.
#[sqlx::test(migrations = "../../migrations")]
async fn references_cannot_be_broken_by_updates(pool: PgPool) {
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let mut conn = pool.acquire().await.unwrap();
    let stored = insert_batch(&mut conn, &[push_delivery(&integration.id, "a")]).await;
    assert!(matches!(stored[0], Ok(InsertOutcome::Stored(_))));

    let renamed = sqlx::query("UPDATE integrations SET id = 'renamed' WHERE id = $1")
        .bind(&integration.id)
        .execute(&pool)
        .await
        .unwrap_err();
    let moved = sqlx::query("UPDATE deliveries SET integration_id = 'nowhere'")
        .execute(&pool)
        .await
        .unwrap_err();
    for err in [renamed, moved] {
        let code = err.as_database_error().and_then(|db| db.code());
        assert_eq!(code.as_deref(), Some("23503"), "{err}");
    }
    assert_eq!(deliveries_of(&pool, &integration.id).await, 1);
}
