//! The console's integration page: settings, Validate, Resync, and secrets never shown.

use relay::secrets::SecretField;
use relay_core::deployment::DeployFeedback;
use relay_core::IntegrationType;
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::console::{Operator, PAGES};
use crate::console_pages::{add_environment, dead_job, stored_delivery};
use crate::support::*;

fn decrypt(integration: &str, field: SecretField, ciphertext: &[u8]) -> String {
    key()
        .decrypt(integration, field, ciphertext)
        .unwrap()
        .expose_secret()
        .to_owned()
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_integration_page_validates_resyncs_and_shows_the_hook_url(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let operator = Operator::login(&server).await;
    let path = format!("/console/integrations/{}", integration.id);
    let page = operator.get(&path).await;
    assert_eq!(page.status, 200);
    let hook = format!(
        "https://relay.example.com/webhooks/bitbucket/{}",
        integration.id
    );
    assert!(page
        .body
        .contains(&format!(r#"<code id="hook-url">{hook}</code>"#)));
    assert!(page.body.contains(r#"data-copy="hook-url""#));
    for button in ["Validate", "Resync", "Save"] {
        assert!(
            page.body
                .contains(&format!(r#"<button type="submit">{button}</button>"#)),
            "{button}"
        );
    }
    assert!(page.body.contains(r#"<label for="s-secret">OAuth consumer secret <span class="secret-state">(set)</span></label>"#));
    assert!(page
        .body
        .contains(r#"<label for="s-deploy_hook_url">Deploy hook URL</label>"#));
    assert_eq!(operator.get("/console/integrations/nope").await.status, 404);

    // Bitbucket is unreachable here: the checks run and say so.
    let checks = operator.post(&format!("{path}/validate"), &[]).await;
    assert_eq!(checks.status, 200);
    assert!(
        checks.body.contains("Validation: 1 failed"),
        "{}",
        checks.body
    );
    assert!(checks.body.contains("<strong>credentials</strong>"));
    assert!(checks.body.contains("FAIL"));

    let queued = operator.post(&format!("{path}/resync"), &[]).await;
    let shown = operator.follow(&queued).await;
    assert!(shown.body.contains("Resync queued"));
    let reconciles: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'reconcile' AND payload->>'reason' = 'requested from the console'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(reconciles, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn settings_are_checked_with_the_cli_rules_and_refusals_shown_on_the_form(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let operator = Operator::login(&server).await;
    let path = format!("/console/integrations/{}", integration.id);
    let current = operator.get(&path).await;
    assert!(current
        .body
        .contains(r#"name="fetch_branches" type="checkbox" value="1" checked"#));

    let refused = operator
        .post(
            &path,
            &[
                ("flags", "1"),
                ("fetch_branches", "1"),
                ("deploy_hook_url", "ftp://deploy.example.com"),
                ("webhook_secret", "typed-but-refused"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("Not saved:"), "{}", refused.body);
    assert!(
        refused
            .body
            .contains("deploy_hook_url must be an http:// or https:// URL"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains(r#"value="ftp://deploy.example.com""#),
        "what was typed stays"
    );
    assert!(
        !refused.body.contains("typed-but-refused"),
        "a typed secret is never sent back"
    );
    let bad_secret = operator
        .post(&path, &[("deploy_hook_secret", "not-whsec")])
        .await;
    assert_eq!(bad_secret.status, 422);
    assert!(bad_secret
        .body
        .contains("deploy_hook_secret must look like whsec_"));
    let feedback = operator
        .post(&path, &[("deploy_feedback", "sometimes")])
        .await;
    assert_eq!(feedback.status, 422);
    assert!(
        feedback
            .body
            .contains("deploy_feedback must be one of hook, report"),
        "{}",
        feedback.body
    );
    let cross = operator
        .post(&path, &[("base_url", "https://bitbucket.example.com")])
        .await;
    assert!(
        cross
            .body
            .contains("base_url does not apply to bitbucket integrations"),
        "{}",
        cross.body
    );
    let stored = relay_store::integrations::get(&pool, &integration.id)
        .await
        .unwrap();
    assert_eq!(stored.deploy_hook_url, None);
}

#[sqlx::test(migrations = "../../migrations")]
async fn settings_are_saved_and_secrets_replaced_through_password_fields(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let operator = Operator::login(&server).await;
    let path = format!("/console/integrations/{}", integration.id);
    let nothing = operator
        .post(
            &path,
            &[
                ("flags", "1"),
                ("fetch_branches", "1"),
                ("prune_branches", "1"),
                ("build_pull_requests", "1"),
                ("pull_requests_clone_parent_data", "1"),
                ("repository", "brydzewski/foo"),
            ],
        )
        .await;
    assert!(operator
        .follow(&nothing)
        .await
        .body
        .contains("Nothing changed."));

    let new_secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let saved = operator
        .post(
            &path,
            &[
                ("flags", "1"),
                ("build_pull_requests", "1"),
                ("deploy_hook_url", "https://deploy.example.com/hook"),
                ("deploy_hook_secret", new_secret),
                ("webhook_secret", "a-new-webhook-secret"),
                ("deploy_feedback", "report"),
                ("deploy_report_token", "a-new-report-token"),
            ],
        )
        .await;
    let after = operator.follow(&saved).await;
    assert!(after.body.contains("Settings saved."), "{}", after.body);
    assert!(after
        .body
        .contains(r#"value="https://deploy.example.com/hook""#));
    for typed in [new_secret, "a-new-webhook-secret", "a-new-report-token"] {
        assert!(!after.body.contains(typed), "a secret is never shown");
    }
    let stored = relay_store::integrations::get(&pool, &integration.id)
        .await
        .unwrap();
    assert_eq!(
        stored.deploy_hook_url.as_deref(),
        Some("https://deploy.example.com/hook")
    );
    assert!(
        !stored.settings.fetch_branches,
        "an unticked box is saved as off"
    );
    assert!(stored.settings.build_pull_requests);
    assert_eq!(stored.settings.deploy_feedback, DeployFeedback::Report);
    assert!(after.body.contains("<option selected>report</option>"));
    assert_eq!(
        decrypt(
            &stored.id,
            SecretField::DeployReportToken,
            stored.deploy_report_token_ciphertext.as_deref().unwrap()
        ),
        "a-new-report-token"
    );
    assert_eq!(
        decrypt(
            &stored.id,
            SecretField::DeployHookSecret,
            &stored.deploy_hook_secret_ciphertext
        ),
        new_secret
    );
    assert_eq!(
        decrypt(
            &stored.id,
            SecretField::WebhookSecret,
            &stored.webhook_secret_ciphertext
        ),
        "a-new-webhook-secret"
    );
    assert_eq!(
        stored.oauth_key.as_deref(),
        Some("consumer-key"),
        "untouched fields stay"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn no_page_ever_contains_a_secret(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let server_side = add_integration(&pool, IntegrationType::Server).await;
    let remote = "https://deployer:remote-password-value@git.example.com/app.git";
    sqlx::query("UPDATE integrations SET deploy_remote = $1")
        .bind(remote)
        .execute(&pool)
        .await
        .unwrap();
    // Validate must not leave this machine.
    sqlx::query(
        "UPDATE integrations SET base_url = 'http://127.0.0.1:9' WHERE type = 'bitbucket_server'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let delivery = stored_delivery(&server, &cloud, "sec-1").await;
    dead_job(&pool, &cloud.id, Some(delivery)).await;
    add_environment(&pool, &cloud.id, "main", "production", "active").await;
    let operator = Operator::login(&server).await;

    let mut secrets = vec![
        ADMIN_TOKEN.to_owned(),
        TEST_KEY.to_owned(),
        cloud.webhook_secret.clone(),
        server_side.webhook_secret.clone(),
        "consumer-secret-value".to_owned(),
        "server-token-value".to_owned(),
        "remote-password-value".to_owned(),
    ];
    for id in [&cloud.id, &server_side.id] {
        let record = relay_store::integrations::get(&pool, id).await.unwrap();
        secrets.push(decrypt(
            id,
            SecretField::DeployHookSecret,
            &record.deploy_hook_secret_ciphertext,
        ));
        secrets.push(decrypt(
            id,
            SecretField::DeployReportToken,
            record.deploy_report_token_ciphertext.as_deref().unwrap(),
        ));
    }
    let mut pages = Vec::new();
    for path in PAGES.iter().map(|p| p.to_string()).chain([
        format!("/console/integrations/{}", cloud.id),
        format!("/console/integrations/{}", server_side.id),
        format!("/console/deliveries/{delivery}"),
        "/console/login".to_owned(),
    ]) {
        pages.push((path.clone(), operator.get(&path).await));
    }
    for id in [&cloud.id, &server_side.id] {
        let path = format!("/console/integrations/{id}/validate");
        pages.push((path.clone(), operator.post(&path, &[]).await));
        let path = format!("/console/integrations/{id}");
        pages.push((
            path.clone(),
            operator
                .post(
                    &path,
                    &[("deploy_hook_url", "nope"), ("token", "server-token-value")],
                )
                .await,
        ));
    }
    for (path, page) in &pages {
        assert!(page.status < 500, "{path}: {}", page.status);
        for secret in &secrets {
            assert!(
                !page.body.contains(secret.as_str()),
                "{path} shows a secret"
            );
        }
    }
    let remote_shown = &pages
        .iter()
        .find(|(p, _)| p.ends_with(&cloud.id))
        .unwrap()
        .1
        .body;
    assert!(remote_shown.contains("https://*****:*****@git.example.com/app.git"));
}

#[sqlx::test(migrations = "../../migrations")]
async fn saving_the_form_as_shown_keeps_a_redacted_deploy_remote(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let remote = "https://deployer:remote-password-value@git.example.com/app.git";
    sqlx::query("UPDATE integrations SET deploy_remote = $1")
        .bind(remote)
        .execute(&pool)
        .await
        .unwrap();
    let operator = Operator::login(&server).await;
    let path = format!("/console/integrations/{}", integration.id);
    let shown = "https://*****:*****@git.example.com/app.git";
    assert!(operator.get(&path).await.body.contains(shown));
    let saved = operator
        .post(
            &path,
            &[("deploy_remote", shown), ("default_branch", "trunk")],
        )
        .await;
    assert!(operator
        .follow(&saved)
        .await
        .body
        .contains("Settings saved."));
    let stored = relay_store::integrations::get(&pool, &integration.id)
        .await
        .unwrap();
    assert_eq!(stored.deploy_remote.as_deref(), Some(remote));
    assert_eq!(stored.settings.default_branch.as_deref(), Some("trunk"));
}
