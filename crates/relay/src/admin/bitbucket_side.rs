//! What add, update, delete and validate do on Bitbucket's side: register the repository
//! webhook for the events the rules need, remove it, and check that everything is in place.

use relay_bitbucket::{WebhookChange, WebhookSpec};
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
    let creds_hint = match record.r#type {
        IntegrationType::Server => "check --token (an HTTP access token with repository admin) and --base-url",
        IntegrationType::Cloud => "check --key/--secret (an OAuth consumer with repository and webhook permissions, marked private)",
    };
    let client = match clients.get(record, key).await {
        Ok(client) => client,
        Err(err) => {
            checks.push(fail("credentials", err.to_string(), creds_hint));
            return checks;
        }
    };
    if let relay_bitbucket::BitbucketClient::Cloud(cloud) = client.as_ref() {
        match cloud.access_token().await {
            Ok(_) => checks.push(pass("credentials", "OAuth access token obtained")),
            Err(err) => {
                checks.push(fail("credentials", err.to_string(), creds_hint));
                return checks;
            }
        }
    }
    match client.repository().await {
        Ok(repository) => {
            if !checks.iter().any(|c| c.check == "credentials") {
                checks.push(pass("credentials", "the token is accepted"));
            }
            checks.push(pass(
                "repository",
                format!(
                    "{} is readable (default branch {})",
                    repository.full_name,
                    repository.default_branch.as_deref().unwrap_or("none yet")
                ),
            ));
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
            return checks;
        }
    }
    let url = hook_url(public_base_url, &record.id);
    let hooks = match client.list_webhooks().await {
        Ok(hooks) => {
            checks.push(pass(
                "webhook permission",
                "webhooks can be read and managed",
            ));
            hooks
        }
        Err(err) => {
            checks.push(fail(
                "webhook permission",
                err.to_string(),
                "the credentials need admin rights on the repository's webhooks",
            ));
            return checks;
        }
    };
    let Some(hook) = hooks.into_iter().find(|h| h.points_to(&url)) else {
        checks.push(fail(
            "webhook",
            format!("no webhook points at {url}"),
            format!(
                "run `relay integration:update {}` to register it, and check RELAY_PUBLIC_URL",
                record.id
            ),
        ));
        return checks;
    };
    checks.push(pass("webhook", format!("registered at {url}")));
    let missing = hook.missing_events(client.webhook_events());
    checks.push(if missing.is_empty() && hook.active {
        pass(
            "webhook events",
            format!("active, {} events", hook.events.len()),
        )
    } else if !hook.active {
        fail(
            "webhook events",
            "the webhook is disabled",
            format!(
                "enable it in Bitbucket or run `relay integration:update {}`",
                record.id
            ),
        )
    } else {
        fail(
            "webhook events",
            format!("missing {}", missing.join(", ")),
            format!(
                "run `relay integration:update {}` to re-register it",
                record.id
            ),
        )
    });
    checks.push(match hook.secret_set {
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
    });
    checks
}
