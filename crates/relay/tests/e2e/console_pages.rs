//! The console's pages and actions over real HTTP, against real PostgreSQL.

use relay_core::IntegrationType;
use sqlx::PgPool;

use crate::console::Operator;
use crate::support::*;

/// Posts the Cloud push fixture as Bitbucket would and returns the stored delivery's id.
pub(crate) async fn stored_delivery(
    server: &TestServer,
    integration: &TestIntegration,
    request: &str,
) -> i64 {
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();
    let signature = sign(&integration.webhook_secret, &body);
    let response = post_delivery(
        &server.hook_url(&integration.id),
        IntegrationType::Cloud,
        "repo:push",
        request,
        &body,
        Some(signature),
    )
    .await;
    assert_eq!(response.status(), 202);
    sqlx::query_scalar("SELECT id FROM deliveries WHERE request_id = $1")
        .bind(request)
        .fetch_one(&server.state.pool)
        .await
        .unwrap()
}

pub(crate) async fn add_environment(
    pool: &PgPool,
    integration: &str,
    name: &str,
    kind: &str,
    status: &str,
) {
    sqlx::query(
        "INSERT INTO environments (integration_id, name, kind, status, branch, head_commit)
         VALUES ($1, $2, $3, $4, $2, '1111111111111111111111111111111111111111')",
    )
    .bind(integration)
    .bind(name)
    .bind(kind)
    .bind(status)
    .execute(pool)
    .await
    .unwrap();
}

/// The deploy side's report of a successful deployment of the environment's head.
pub(crate) async fn report_deployment(pool: &PgPool, integration: &str, name: &str, url: &str) {
    let report = relay::admin::environments::ReportInput {
        commit: "1111111111111111111111111111111111111111".into(),
        state: relay_core::deployment::DeploymentState::Success,
        url: Some(url.into()),
        log_url: Some("https://ci.example.com/builds/7".into()),
        description: Some("deployed by the pipeline".into()),
    };
    relay::admin::environments::report(pool, integration, name, report)
        .await
        .unwrap();
}

/// A reconcile job that ran out of attempts.
pub(crate) async fn dead_job(pool: &PgPool, integration: &str, delivery: Option<i64>) -> i64 {
    let job = relay_core::JobSpec::Reconcile {
        reason: "test".into(),
    };
    relay_store::jobs::enqueue(pool, integration, delivery, &job)
        .await
        .unwrap();
    sqlx::query_scalar(
        "UPDATE jobs SET state = 'dead', attempts = 8, last_error = 'gave up: connection refused',
                completed_at = now()
         WHERE id = (SELECT max(id) FROM jobs) RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Everything an action could change, to compare before and after a refused one.
pub(crate) async fn snapshot(pool: &PgPool) -> String {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT 'd' || id || status || attempts FROM deliveries
         UNION ALL SELECT 'j' || id || state || attempts FROM jobs
         UNION ALL SELECT 'e' || name || status FROM environments
         UNION ALL SELECT 'i' || id || updated_at::text || coalesce(deploy_hook_url, '') FROM integrations
         UNION ALL SELECT 's' || count(*) FROM console_sessions
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.join("\n")
}

#[sqlx::test(migrations = "../../migrations")]
async fn overview_shows_each_integration_with_its_deliveries_failures_and_dead_jobs(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let operator = Operator::login(&server).await;
    let empty = operator.get("/console").await;
    assert!(empty.body.contains("No integrations yet"), "{}", empty.body);

    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let server_side = add_integration(&pool, IntegrationType::Server).await;
    let failed = stored_delivery(&server, &cloud, "ov-1").await;
    let pending = stored_delivery(&server, &cloud, "ov-2").await;
    let last = stored_delivery(&server, &cloud, "ov-3").await;
    sqlx::query("UPDATE deliveries SET status = 'failed', last_error = 'boom' WHERE id = $1")
        .bind(failed)
        .execute(&pool)
        .await
        .unwrap();
    dead_job(&pool, &cloud.id, None).await;

    let page = operator.get("/console").await;
    assert_eq!(page.status, 200);
    let html = &page.body;
    for expected in [
        format!(
            r#"<a href="/console/integrations/{}">{}</a>"#,
            cloud.id, cloud.id
        ),
        "brydzewski/foo".into(),
        "Bitbucket Cloud".into(),
        "PRJ/my-repo".into(),
        "Bitbucket Server / Data Center".into(),
        format!(r#"<a href="/console/deliveries/{last}">#{last}</a> repo:push"#),
        format!(
            r#"<a class="bad" href="/console/deliveries?integration={}&#38;status=failed">1 failed</a>"#,
            cloud.id
        ),
        format!(
            r#"<a class="bad" href="/console/jobs?integration={}&#38;state=dead">1 dead</a>"#,
            cloud.id
        ),
        format!(r#"<a href="/console/deliveries/{pending}">#{pending}</a>"#),
        "none yet".into(),
        r#"<span class="status status-pending">pending</span>"#.into(),
        "(just now)".into(),
    ] {
        assert!(html.contains(&expected), "missing {expected}\n{html}");
    }
    assert!(html.contains(r#"<a href="/console" aria-current="page">Overview</a>"#));
    assert!(html.contains(r#"<button type="submit">Log out</button>"#));
    assert!(html.contains(&format!(
        r#"<a href="/console/integrations/{}">"#,
        server_side.id
    )));
    // ISO 8601 in UTC, machine-readable too.
    assert!(regex_like_iso(html), "{html}");
}

fn regex_like_iso(html: &str) -> bool {
    html.split(r#"<time datetime=""#).skip(1).any(|rest| {
        let stamp: String = rest.chars().take(20).collect();
        stamp.len() == 20
            && stamp.as_bytes()[4] == b'-'
            && stamp.as_bytes()[10] == b'T'
            && stamp.ends_with('Z')
    })
}

#[sqlx::test(migrations = "../../migrations")]
async fn deliveries_are_filtered_and_paged(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let other = add_integration(&pool, IntegrationType::Cloud).await;
    let operator = Operator::login(&server).await;
    let first = stored_delivery(&server, &integration, "dl-0").await;
    for n in 1..55 {
        stored_delivery(&server, &integration, &format!("dl-{n}")).await;
    }
    let elsewhere = stored_delivery(&server, &other, "dl-other").await;
    sqlx::query(
        "UPDATE deliveries SET status = 'failed', last_error = 'parse error' WHERE id = $1",
    )
    .bind(first)
    .execute(&pool)
    .await
    .unwrap();

    let all = operator.get("/console/deliveries").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body.matches("<th scope=\"row\">").count(), 50);
    assert!(all
        .body
        .contains(&format!("/console/deliveries/{elsewhere}")));
    let older = all
        .body
        .split(r#"data-more href=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let older = older.replace("&#38;", "&");
    let rest = operator.get(&older).await;
    assert_eq!(
        rest.body.matches("<th scope=\"row\">").count(),
        6,
        "{}",
        rest.body
    );
    assert!(!rest.body.contains("data-more"));

    let path = format!(
        "/console/deliveries?integration={}&status=failed",
        integration.id
    );
    let failed = operator.get(&path).await;
    assert_eq!(failed.body.matches("<th scope=\"row\">").count(), 1);
    assert!(failed.body.contains("parse error"));
    assert!(failed.body.contains(r#"<option selected>failed</option>"#));
    let by_key = operator
        .get("/console/deliveries?event_key=pullrequest:created")
        .await;
    assert!(by_key.body.contains("No deliveries match."));
    let bad = operator.get("/console/deliveries?status=exploded").await;
    assert_eq!(bad.status, 400);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_delivery_shows_its_headers_body_decisions_and_jobs(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let operator = Operator::login(&server).await;
    let first = stored_delivery(&server, &integration, "dl-0").await;
    sqlx::query(
        "UPDATE deliveries SET status = 'failed', last_error = 'parse error' WHERE id = $1",
    )
    .bind(first)
    .execute(&pool)
    .await
    .unwrap();
    // A signature stored by an older relay (or by hand) is not shown either.
    sqlx::query("UPDATE deliveries SET headers = headers || '{\"x-hub-signature\": \"sha256=deadbeef\"}', decisions = '{\"notes\": [\"mirrored main\"]}' WHERE id = $1")
        .bind(first)
        .execute(&pool)
        .await
        .unwrap();
    let job = dead_job(&pool, &integration.id, Some(first)).await;
    let detail = operator.get(&format!("/console/deliveries/{first}")).await;
    assert_eq!(detail.status, 200);
    let html = &detail.body;
    for expected in [
        "<code>x-event-key</code></dt><dd><code>repo:push</code>",
        "<code>x-request-uuid</code></dt><dd><code>dl-0</code>",
        r#"<span class="status status-failed">failed</span>"#,
        "parse error",
        "&#34;mirrored main&#34;",
        "Jobs it caused",
        "gave up: connection refused",
        r#"<button type="submit">Redeliver</button>"#,
    ] {
        assert!(html.contains(expected), "missing {expected}\n{html}");
    }
    assert!(html.contains(&format!("#{job}")));
    // Pretty-printed: the fixture's JSON, indented, escaped.
    assert!(html.contains("{\n  &#34;"), "{html}");
    assert!(!html.contains("x-hub-signature") && !html.contains("deadbeef"));
    assert_eq!(operator.get("/console/deliveries/999999").await.status, 404);
    assert_eq!(operator.get("/console/deliveries/abc").await.status, 404);
}

#[sqlx::test(migrations = "../../migrations")]
async fn redeliver_puts_the_delivery_back_in_the_queue(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let operator = Operator::login(&server).await;
    let id = stored_delivery(&server, &integration, "re-1").await;
    sqlx::query(
        "UPDATE deliveries SET status = 'failed', attempts = 8, last_error = 'x' WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    let response = operator
        .post(&format!("/console/deliveries/{id}/redeliver"), &[])
        .await;
    assert_eq!(response.location(), format!("/console/deliveries/{id}"));
    let page = operator.follow(&response).await;
    assert!(page.body.contains("is queued again"), "{}", page.body);
    assert!(page.body.contains(r#"role="status""#));
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("pending", 0));
    // The message is shown once.
    assert!(!operator
        .get(&format!("/console/deliveries/{id}"))
        .await
        .body
        .contains("queued again"));
    assert_eq!(
        operator
            .post("/console/deliveries/999999/redeliver", &[])
            .await
            .status,
        404
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn jobs_filter_by_state_and_retry_dead_ones(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let operator = Operator::login(&server).await;
    let dead = dead_job(&pool, &integration.id, None).await;
    let running = dead_job(&pool, &integration.id, None).await;
    sqlx::query("UPDATE jobs SET state = 'running' WHERE id = $1")
        .bind(running)
        .execute(&pool)
        .await
        .unwrap();

    let page = operator.get("/console/jobs?state=dead").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.body.matches("<th scope=\"row\">").count(),
        1,
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains(&format!(r#"action="/console/jobs/{dead}/retry""#)));
    assert!(page.body.contains(">Retry</button>"));
    assert!(page.body.contains("reason: test"));
    let all = operator.get("/console/jobs").await;
    assert!(
        !all.body.contains(&format!("/console/jobs/{running}/retry")),
        "no Retry on a running job"
    );
    assert_eq!(operator.get("/console/jobs?state=bogus").await.status, 400);

    let back = "/console/jobs?state=dead";
    let response = operator
        .post(&format!("/console/jobs/{dead}/retry"), &[("back", back)])
        .await;
    assert_eq!(response.location(), back);
    let after = operator.follow(&response).await;
    assert!(after
        .body
        .contains(&format!("Job #{dead} is queued again.")));
    assert!(after.body.contains("No jobs match."));
    let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
        .bind(dead)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "pending");

    let refused = operator
        .post(
            &format!("/console/jobs/{running}/retry"),
            &[("back", "https://evil.example.com")],
        )
        .await;
    assert_eq!(refused.location(), "/console");
    let shown = operator.follow(&refused).await;
    assert!(
        shown.body.contains("is running right now"),
        "{}",
        shown.body
    );
    assert!(shown.body.contains(r#"role="alert""#));
}

#[sqlx::test(migrations = "../../migrations")]
async fn environments_show_status_head_url_and_last_deployment_and_offer_the_transitions_that_apply(
    pool: PgPool,
) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    sqlx::query("UPDATE integrations SET environment_url = 'https://{environment}.preview.example.com' WHERE id = $1")
        .bind(&integration.id)
        .execute(&pool)
        .await
        .unwrap();
    add_environment(&pool, &integration.id, "main", "production", "active").await;
    add_environment(&pool, &integration.id, "feature-x", "branch", "inactive").await;
    add_environment(&pool, &integration.id, "feature-y", "branch", "active").await;
    add_environment(&pool, &integration.id, "feature-f", "branch", "failed").await;
    add_environment(&pool, &integration.id, "feature-d", "branch", "deleted").await;
    report_deployment(
        &pool,
        &integration.id,
        "feature-y",
        "https://feature-y.deployed.example.com",
    )
    .await;
    let operator = Operator::login(&server).await;
    let page = operator.get("/console/environments").await;
    assert_eq!(page.status, 200);
    let html = &page.body;
    let action = |name: &str, verb: &str| {
        format!(
            r#"action="/console/environments/{}/{name}/{verb}""#,
            integration.id
        )
    };
    for expected in [
        "feature-x".to_owned(),
        "production, branch main".to_owned(),
        "branch feature-x".to_owned(),
        r#"<span class="status status-inactive">inactive</span>"#.to_owned(),
        r#"<span class="status status-active">active</span>"#.to_owned(),
        r#"<code title="1111111111111111111111111111111111111111">111111111111</code>"#.to_owned(),
        // The template's URL, or the URL the last deployment reported.
        r#"<a href="https://feature-x.preview.example.com" rel="noreferrer">"#.to_owned(),
        r#"<a href="https://feature-y.deployed.example.com" rel="noreferrer">"#.to_owned(),
        r#"<span class="status status-success">success</span> of <code title="1111111111111111111111111111111111111111">111111111111</code>"#.to_owned(),
        r#"<a href="https://feature-y.deployed.example.com" rel="noreferrer" title="https://feature-y.deployed.example.com">deployed site</a>"#.to_owned(),
        r#"<a href="https://ci.example.com/builds/7" rel="noreferrer" title="https://ci.example.com/builds/7">log</a>"#.to_owned(),
        "deployed by the pipeline".to_owned(),
        action("feature-x", "activate"),
        action("feature-y", "deactivate"),
        // A failed environment still deploys: it can be deactivated, not activated.
        action("feature-f", "deactivate"),
    ] {
        assert!(html.contains(&expected), "missing {expected}\n{html}");
    }
    assert!(
        !html.contains("https://feature-y.preview.example.com"),
        "a reported URL wins over the template"
    );
    assert_eq!(
        html.matches("(just now)").count(),
        6,
        "each row's update and the one report, with the relative hint"
    );
    // Production cannot be deactivated; what deploys needs no activation; a deleted
    // environment gets neither.
    for (name, verb) in [
        ("main", "deactivate"),
        ("main", "activate"),
        ("feature-y", "activate"),
        ("feature-f", "activate"),
        ("feature-x", "deactivate"),
        ("feature-d", "activate"),
        ("feature-d", "deactivate"),
    ] {
        assert!(!html.contains(&action(name, verb)), "{name} {verb}");
    }
    let inactive = operator.get("/console/environments?status=inactive").await;
    assert!(inactive.body.contains("feature-x"));
    assert!(!inactive.body.contains("feature-y"));
    assert!(inactive.body.contains("<option selected>inactive</option>"));
    let bad = operator.get("/console/environments?status=sleeping").await;
    assert_eq!(bad.status, 400);
}

async fn environment_status(pool: &PgPool, integration: &str, name: &str) -> String {
    sqlx::query_scalar("SELECT status FROM environments WHERE integration_id = $1 AND name = $2")
        .bind(integration)
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn activate_and_deactivate_queue_a_transition_the_processor_applies(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    add_environment(&pool, &integration.id, "feature-x", "branch", "inactive").await;
    add_environment(&pool, &integration.id, "feature-y", "branch", "active").await;
    let operator = Operator::login(&server).await;
    let path =
        |name: &str, verb: &str| format!("/console/environments/{}/{name}/{verb}", integration.id);
    let back = "/console/environments?status=inactive";

    let response = operator
        .post(
            &path("feature-x", "activate"),
            &[("back", back), ("sync_data", "1")],
        )
        .await;
    assert_eq!(response.location(), back);
    let shown = operator.follow(&response).await;
    let (delivery, key, body): (i64, String, Vec<u8>) = sqlx::query_as(
        "SELECT id, event_key, body FROM deliveries WHERE integration_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(&integration.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(key, "relay:transition");
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(event.to_string().contains("feature-x"), "{event}");
    assert!(event.to_string().contains(r#""sync_data":true"#), "{event}");
    assert!(
        shown.body.contains(&format!(
            r#"<a href="/console/deliveries/{delivery}">Activation of feature-x queued (delivery {delivery}).</a>"#
        )),
        "{}",
        shown.body
    );
    assert!(shown.body.contains(r#"role="status""#));

    // The processor applies it in the integration's delivery order, like any webhook.
    let processor = relay::worker::Processor::new(
        pool.clone(),
        server.state.metrics.clone(),
        Default::default(),
    );
    while processor.process_next().await.unwrap() > 0 {}
    assert_eq!(
        environment_status(&pool, &integration.id, "feature-x").await,
        "active"
    );
    let again = operator.post(&path("feature-x", "activate"), &[]).await;
    assert_eq!(again.location(), "/console/environments");
    let shown = operator.follow(&again).await;
    assert!(
        shown.body.contains("feature-x is already active."),
        "{}",
        shown.body
    );

    let off = operator.post(&path("feature-y", "deactivate"), &[]).await;
    let shown = operator.follow(&off).await;
    assert!(
        shown.body.contains("Deactivation of feature-y queued"),
        "{}",
        shown.body
    );
    while processor.process_next().await.unwrap() > 0 {}
    assert_eq!(
        environment_status(&pool, &integration.id, "feature-y").await,
        "inactive"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn refused_transitions_say_why_and_change_nothing(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    add_environment(&pool, &integration.id, "main", "production", "active").await;
    add_environment(&pool, &integration.id, "feature-d", "branch", "deleted").await;
    let operator = Operator::login(&server).await;
    let path =
        |name: &str, verb: &str| format!("/console/environments/{}/{name}/{verb}", integration.id);
    let before = snapshot(&pool).await;
    for (name, verb, reason) in [
        (
            "main",
            "deactivate",
            "is the production environment (the default branch) and cannot be deactivated",
        ),
        (
            "feature-d",
            "activate",
            "is deleted and cannot be activated",
        ),
    ] {
        let refused = operator.post(&path(name, verb), &[]).await;
        let shown = operator.follow(&refused).await;
        assert!(shown.body.contains(reason), "{name}: {}", shown.body);
        assert!(shown.body.contains(r#"role="alert""#));
    }
    assert_eq!(snapshot(&pool).await, before);
    assert_eq!(
        operator.post(&path("nope", "activate"), &[]).await.status,
        404
    );
    let elsewhere = "/console/environments/nope/main/deactivate";
    assert_eq!(operator.post(elsewhere, &[]).await.status, 404);
}
