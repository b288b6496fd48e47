//! Webhook ingest over real HTTP into real PostgreSQL.

use relay_core::IntegrationType;
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test(migrations = "../../migrations")]
async fn every_fixture_is_stored_with_a_right_signature_and_rejected_without(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let bbs = add_integration(&pool, IntegrationType::Server).await;
    let fixtures = fixtures();
    for (n, fixture) in fixtures.iter().enumerate() {
        let integration = match fixture.kind {
            IntegrationType::Cloud => &cloud,
            IntegrationType::Server => &bbs,
        };
        let url = server.hook_url(&integration.id);
        let request_id = format!("req-{n}");

        let missing = post_delivery(
            &url,
            fixture.kind,
            &fixture.event_key,
            &request_id,
            &fixture.body,
            None,
        )
        .await;
        assert_eq!(missing.status(), 401, "{} unsigned", fixture.name);

        let wrong = sign("not-the-secret", &fixture.body);
        let wrong = post_delivery(
            &url,
            fixture.kind,
            &fixture.event_key,
            &request_id,
            &fixture.body,
            Some(wrong),
        )
        .await;
        assert_eq!(wrong.status(), 401, "{} wrong signature", fixture.name);

        let signature = sign(&integration.webhook_secret, &fixture.body);
        let ok = post_delivery(
            &url,
            fixture.kind,
            &fixture.event_key,
            &request_id,
            &fixture.body,
            Some(signature),
        )
        .await;
        assert_eq!(ok.status(), 202, "{}", fixture.name);
        let answer: serde_json::Value = ok.json().await.unwrap();
        assert_eq!(answer["status"], "stored");
        let id = answer["delivery_id"].as_i64().unwrap();

        let (event_key, body, request): (String, Vec<u8>, Option<String>) =
            sqlx::query_as("SELECT event_key, body, request_id FROM deliveries WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(event_key, fixture.event_key);
        assert_eq!(
            body, fixture.body,
            "{}: body must be stored byte for byte",
            fixture.name
        );
        assert_eq!(request.as_deref(), Some(request_id.as_str()));
    }
    assert_eq!(delivery_count(&pool).await, fixtures.len() as i64);

    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("relay_webhook_deliveries_total{"),
        "{metrics}"
    );
    assert!(metrics.contains("outcome=\"stored\""), "{metrics}");
    assert!(
        metrics.contains("outcome=\"missing_signature\""),
        "{metrics}"
    );
    assert!(metrics.contains("outcome=\"bad_signature\""), "{metrics}");
    assert!(
        metrics.contains("relay_webhook_ingest_duration_seconds_bucket"),
        "{metrics}"
    );
    // Sent one after the other, each delivery was a group-commit statement of its own.
    let value = |name: &str| metric_value(&metrics, name);
    let stored = fixtures.len() as f64;
    assert_eq!(value("relay_ingest_batch_rows_count"), stored, "{metrics}");
    assert_eq!(value("relay_ingest_batch_rows_sum"), stored, "{metrics}");
    assert_eq!(
        value("relay_ingest_batch_duration_seconds_count"),
        stored,
        "{metrics}"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_repeated_request_id_is_a_duplicate(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();
    let url = server.hook_url(&cloud.id);
    let signature = sign(&cloud.webhook_secret, &body);

    let first = post_delivery(
        &url,
        IntegrationType::Cloud,
        "repo:push",
        "same-id",
        &body,
        Some(signature.clone()),
    )
    .await;
    assert_eq!(first.status(), 202);
    let first: serde_json::Value = first.json().await.unwrap();
    let second = post_delivery(
        &url,
        IntegrationType::Cloud,
        "repo:push",
        "same-id",
        &body,
        Some(signature.clone()),
    )
    .await;
    assert_eq!(second.status(), 200);
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(second["status"], "duplicate");
    assert_eq!(second["delivery_id"], first["delivery_id"]);
    assert_eq!(delivery_count(&pool).await, 1);

    // The same request id on another integration is a different delivery.
    let other = add_integration(&pool, IntegrationType::Cloud).await;
    let signature = sign(&other.webhook_secret, &body);
    let third = post_delivery(
        &server.hook_url(&other.id),
        IntegrationType::Cloud,
        "repo:push",
        "same-id",
        &body,
        Some(signature),
    )
    .await;
    assert_eq!(third.status(), 202);
    assert_eq!(delivery_count(&pool).await, 2);
}

#[sqlx::test(migrations = "../../migrations")]
async fn concurrent_duplicates_store_one_row(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();
    let url = server.hook_url(&cloud.id);
    let signature = sign(&cloud.webhook_secret, &body);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (url, body, signature) = (url.clone(), body.clone(), signature.clone());
        tasks.push(tokio::spawn(async move {
            post_delivery(
                &url,
                IntegrationType::Cloud,
                "repo:push",
                "race",
                &body,
                Some(signature),
            )
            .await
            .status()
            .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        15,
        "{statuses:?}"
    );
    assert_eq!(delivery_count(&pool).await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn server_test_connection_ping_answers_200_and_stores_nothing(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let bbs = add_integration(&pool, IntegrationType::Server).await;
    let response = reqwest::Client::new()
        .post(server.hook_url(&bbs.id))
        .header("X-Event-Key", "diagnostics:ping")
        .header("X-Request-Id", "ping-1")
        .header("X-Hub-Signature", "sha256=0000")
        .body(r#"{"test": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let unsigned = reqwest::Client::new()
        .post(server.hook_url(&bbs.id))
        .header("X-Event-Key", "diagnostics:ping")
        .body(r#"{"test": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 200);
    assert_eq!(delivery_count(&pool).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn health_readiness_and_metrics(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().ends_with("# EOF\n"));

    // A database without the schema is not ready.
    sqlx::query("DELETE FROM _sqlx_migrations")
        .execute(&pool)
        .await
        .unwrap();
    let ready = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
}

/// A batch is one autocommitted statement: when one of its rows cannot be stored, the others
/// are stored exactly once each (none twice, none lost) and each gets its own answer.
#[sqlx::test(migrations = "../../migrations")]
async fn a_batch_with_one_bad_row_stores_the_others_once(pool: PgPool) {
    use relay_store::deliveries::{insert_batch, InsertError, InsertOutcome, NewDelivery};
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let delivery = |integration_id: &str, request_id: Option<&str>| NewDelivery {
        integration_id: integration_id.to_owned(),
        request_id: request_id.map(str::to_owned),
        event_key: "repo:push".into(),
        headers: serde_json::json!({}),
        body: bytes::Bytes::from_static(b"{}"),
    };
    let batch = [
        delivery(&integration.id, None),
        delivery("no-such-integration", None),
        delivery(&integration.id, Some("r-1")),
        delivery(&integration.id, Some("r-1")),
        delivery(&integration.id, None),
    ];
    let mut conn = pool.acquire().await.unwrap();
    let results = insert_batch(&mut conn, &batch).await;
    assert!(
        matches!(results[0], Ok(InsertOutcome::Stored(_))),
        "{results:?}"
    );
    assert_eq!(results[1], Err(InsertError::UnknownIntegration));
    let Ok(InsertOutcome::Stored(first)) = results[2] else {
        panic!("{results:?}");
    };
    assert_eq!(results[3], Ok(InsertOutcome::Duplicate(first)));
    assert!(
        matches!(results[4], Ok(InsertOutcome::Stored(_))),
        "{results:?}"
    );
    assert_eq!(delivery_count(&pool).await, 3);

    // The same batch again: every row with a request id is a duplicate, and only the anonymous
    // ones (which Bitbucket never sends) are new.
    let again = insert_batch(&mut conn, &batch).await;
    assert_eq!(again[2], Ok(InsertOutcome::Duplicate(first)));
    assert_eq!(again[3], Ok(InsertOutcome::Duplicate(first)));
    assert_eq!(delivery_count(&pool).await, 5);
}

/// The batch INSERT goes without ON CONFLICT first; a request id stored before fails that
/// statement, and the batch is stored again skipping it: the new deliveries are stored once,
/// in order, and the repeated one is answered as the duplicate it is.
#[sqlx::test(migrations = "../../migrations")]
async fn a_batch_mixing_new_and_seen_request_ids_stores_the_new_ones_once(pool: PgPool) {
    use relay_store::deliveries::{insert_batch, InsertOutcome, NewDelivery};
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let delivery = |request_id: &str| NewDelivery {
        integration_id: integration.id.clone(),
        request_id: Some(request_id.to_owned()),
        event_key: "repo:push".into(),
        headers: serde_json::json!({}),
        body: bytes::Bytes::from_static(b"{}"),
    };
    let mut conn = pool.acquire().await.unwrap();
    let first = insert_batch(&mut conn, &[delivery("seen")]).await;
    let Ok(InsertOutcome::Stored(seen)) = first[0] else {
        panic!("{first:?}");
    };
    let results = insert_batch(&mut conn, &[delivery("a"), delivery("seen"), delivery("b")]).await;
    let (Ok(InsertOutcome::Stored(a)), Ok(InsertOutcome::Stored(b))) = (&results[0], &results[2])
    else {
        panic!("{results:?}");
    };
    assert!(a < b, "stored in order: {results:?}");
    assert_eq!(results[1], Ok(InsertOutcome::Duplicate(seen)));
    assert_eq!(delivery_count(&pool).await, 3);
}

/// With every row new, the batch INSERT returns only ids, matched to the deliveries by
/// position: each answer must name the row holding that delivery's own values, across
/// integrations and with or without a request id.
#[sqlx::test(migrations = "../../migrations")]
async fn each_delivery_of_a_batch_is_answered_with_its_own_row(pool: PgPool) {
    use relay_store::deliveries::{insert_batch, InsertOutcome, NewDelivery};
    let first = add_integration(&pool, IntegrationType::Cloud).await;
    let second = add_integration(&pool, IntegrationType::Server).await;
    let batch: Vec<NewDelivery> = (0..40)
        .map(|n| NewDelivery {
            integration_id: if n % 3 == 0 { &second } else { &first }.id.clone(),
            request_id: (n % 5 != 0).then(|| format!("r-{n}")),
            event_key: "repo:push".into(),
            headers: serde_json::json!({ "x-attempt-number": n.to_string() }),
            body: bytes::Bytes::from(format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(n * 300))),
        })
        .collect();
    let mut conn = pool.acquire().await.unwrap();
    let results = insert_batch(&mut conn, &batch).await;
    for (delivery, result) in batch.iter().zip(&results) {
        let Ok(InsertOutcome::Stored(id)) = result else {
            panic!("{results:?}");
        };
        let stored = relay_store::deliveries::get(&pool, *id).await.unwrap();
        assert_eq!(stored.integration_id, delivery.integration_id);
        assert_eq!(stored.request_id, delivery.request_id);
        assert_eq!(stored.headers, delivery.headers);
        assert_eq!(stored.body, delivery.body.as_ref());
    }
    assert_eq!(delivery_count(&pool).await, 40);
}
