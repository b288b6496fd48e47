//! What add, update, delete and validate do on Bitbucket's side: register the repository
//! webhook for the events the rules need, remove it, and check that everything is in place.

use relay_bitbucket::{CommentPermission, WebhookChange, WebhookSpec};
use relay_core::IntegrationType;
use relay_store::integrations::IntegrationRecord;
use serde::Serialize;

use super::integrations::hook_url;
use super::AdminError;
use crate::bitbucket::{AccessError, Clients};
use crate::secrets::{SecretField, SecretKey};

impl From<AccessError> for AdminError {
    fn from(err: AccessError) -> Self {
        Self::Bitbucket(err.to_string())
    }
}

fn bitbucket(err: relay_bitbucket::Error) -> AdminError {
    AdminError::Bitbucket(err.to_string())
}

/// Creates or updates the webhook pointing at this integration's hook URL with its secret.
pub async fn register_webhook(
    clients: &Clients,
    key: &SecretKey,
    public_base_url: &str,
    record: &IntegrationRecord,
) -> Result<WebhookChange, AdminError> {
    let client = clients.get(record, key).await?;
    let secret = key.decrypt(
        &record.id,
        SecretField::WebhookSecret,
        &record.webhook_secret_ciphertext,
    )?;
    let spec = WebhookSpec::relay(
        client.provider(),
        &hook_url(public_base_url, &record.id),
        secret,
    );
    client.upsert_webhook(&spec).await.map_err(bitbucket)
}

/// Removes the webhook pointing at this integration, if Bitbucket still has one.
pub async fn remove_webhook(
    clients: &Clients,
    key: &SecretKey,
    public_base_url: &str,
    record: &IntegrationRecord,
) -> Result<bool, AdminError> {
    let client = clients.get(record, key).await?;
    let Some(hook) = client
        .find_webhook(&hook_url(public_base_url, &record.id))
        .await
        .map_err(bitbucket)?
    else {
        return Ok(false);
    };
    match client.delete_webhook(&hook.id).await {
        Ok(()) | Err(relay_bitbucket::Error::NotFound { .. }) => Ok(true),
        Err(err) => Err(bitbucket(err)),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub passed: bool,
    pub detail: String,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

fn pass(check: &'static str, detail: impl Into<String>) -> Check {
    Check {
        check,
        passed: true,
        detail: detail.into(),
        hint: None,
    }
}

fn fail(check: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Check {
    Check {
        check,
        passed: false,
        detail: detail.into(),
        hint: Some(hint.into()),
    }
}

/// Every check `integration:validate` runs, in order; later checks are skipped (and fail)
/// when what they need is missing.
pub async fn validate(
    clients: &Clients,
    key: &SecretKey,
    public_base_url: &str,
    record: &IntegrationRecord,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let Some(client) = check_access(clients, key, record, &mut checks).await else {
        return checks;
    };
    checks.push(check_comments(&client, record).await);
    let url = hook_url(public_base_url, &record.id);
    let Some(hook) = find_webhook(&client, record, &url, &mut checks).await else {
        return checks;
    };
    checks.push(pass("webhook", format!("registered at {url}")));
    checks.push(check_events(&hook, client.webhook_events(), record));
    checks.push(check_secret(&hook, record));
    checks
}

/// Credentials and read access to the repository; the client when both pass.
async fn check_access(
    clients: &Clients,
    key: &SecretKey,
    record: &IntegrationRecord,
    checks: &mut Vec<Check>,
) -> Option<std::sync::Arc<relay_bitbucket::BitbucketClient>> {
    let creds_hint = match record.kind {
        IntegrationType::Server => "check --token (an HTTP access token with repository admin) and --base-url",
        IntegrationType::Cloud => "check --key/--secret (an OAuth consumer with repository and webhook permissions, marked private)",
    };
    let client = match clients.get(record, key).await {
        Ok(client) => client,
        Err(err) => {
            checks.push(fail("credentials", err.to_string(), creds_hint));
            return None;
        }
    };
    if let relay_bitbucket::BitbucketClient::Cloud(cloud) = client.as_ref() {
        if let Err(err) = cloud.access_token().await {
            checks.push(fail("credentials", err.to_string(), creds_hint));
            return None;
        }
        checks.push(pass("credentials", "OAuth access token obtained"));
    }
    match client.repository().await {
        Ok(repository) => {
            if !checks.iter().any(|c| c.check == "credentials") {
                checks.push(pass("credentials", "the token is accepted"));
            }
            let default_branch = repository.default_branch.as_deref().unwrap_or("none yet");
            let detail = format!(
                "{} is readable (default branch {default_branch})",
                repository.full_name
            );
            checks.push(pass("repository", detail));
            Some(client)
        }
        Err(err) => {
            let (check, hint) = match err.status() {
                Some(401) => ("credentials", creds_hint.to_owned()),
                _ => (
                    "repository",
                    format!("check --repository ({})", record.repository),
                ),
            };
            checks.push(fail(check, err.to_string(), hint));
            None
        }
    }
}

/// Whether `pull_request_comments` can work: on Cloud the OAuth token's granted scopes must
/// include `pullrequest:write` ("Pull requests: Write"); without it comments are skipped
/// with a note, so this says so before the first pull request does.
async fn check_comments(
    client: &relay_bitbucket::BitbucketClient,
    record: &IntegrationRecord,
) -> Check {
    const CHECK: &str = "pull-request comments";
    if !record.settings.pull_request_comments {
        return pass(CHECK, "pull_request_comments is off");
    }
    match client.comment_permission().await {
        Ok(CommentPermission::Granted) => pass(
            CHECK,
            "the OAuth consumer has \"Pull requests: Write\" (scope pullrequest:write)",
        ),
        Ok(CommentPermission::Missing { granted }) => fail(
            CHECK,
            format!(
                "the OAuth consumer lacks \"Pull requests: Write\" (granted scopes: {}); \
                 comments are skipped",
                granted.join(" ")
            ),
            format!(
                "give the consumer \"Pull requests: Write\" on Bitbucket, or run `relay \
                 integration:update {} --pull-request-comments=false`",
                record.id
            ),
        ),
        Ok(CommentPermission::Unknown) => pass(
            CHECK,
            match record.kind {
                IntegrationType::Server => {
                    "Server tokens do not list their permissions; a refused comment is noted on \
                     its environment (environment:info)"
                }
                IntegrationType::Cloud => {
                    "the token response names no scopes; a refused comment is noted on its \
                     environment (environment:info)"
                }
            },
        ),
        Err(err) => fail(
            CHECK,
            err.to_string(),
            "check the credentials (see the credentials check)",
        ),
    }
}

/// The right to manage webhooks, and the webhook pointing at `url`.
async fn find_webhook(
    client: &relay_bitbucket::BitbucketClient,
    record: &IntegrationRecord,
    url: &str,
    checks: &mut Vec<Check>,
) -> Option<relay_bitbucket::Webhook> {
    let hooks = match client.list_webhooks().await {
        Ok(hooks) => hooks,
        Err(err) => {
            let hint = "the credentials need admin rights on the repository's webhooks";
            checks.push(fail("webhook permission", err.to_string(), hint));
            return None;
        }
    };
    checks.push(pass(
        "webhook permission",
        "webhooks can be read and managed",
    ));
    let found = hooks.into_iter().find(|h| h.points_to(url));
    if found.is_none() {
        checks.push(fail(
            "webhook",
            format!("no webhook points at {url}"),
            format!(
                "run `relay integration:update {}` to register it, and check RELAY_PUBLIC_URL",
                record.id
            ),
        ));
    }
    found
}

fn check_events(
    hook: &relay_bitbucket::Webhook,
    needed: &[&str],
    record: &IntegrationRecord,
) -> Check {
    let missing = hook.missing_events(needed);
    if !hook.active {
        let hint = format!(
            "enable it in Bitbucket or run `relay integration:update {}`",
            record.id
        );
        return fail("webhook events", "the webhook is disabled", hint);
    }
    if !missing.is_empty() {
        let hint = format!(
            "run `relay integration:update {}` to re-register it",
            record.id
        );
        return fail(
            "webhook events",
            format!("missing {}", missing.join(", ")),
            hint,
        );
    }
    let detail = format!("active, {} events", hook.events.len());
    pass("webhook events", detail)
}

fn check_secret(hook: &relay_bitbucket::Webhook, record: &IntegrationRecord) -> Check {
    match hook.secret_set {
        Some(true) => pass(
            "webhook secret",
            "a secret is set (Bitbucket never shows its value)",
        ),
        Some(false) => fail(
            "webhook secret",
            "the webhook has no secret, so every delivery would be refused",
            format!(
                "run `relay integration:update {}` to register it with the secret",
                record.id
            ),
        ),
        None => pass(
            "webhook secret",
            "Bitbucket Server does not show secrets; deliveries show whether it matches",
        ),
    }
}
