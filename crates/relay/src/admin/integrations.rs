//! Creating, changing and showing integrations.

use rand::distributions::{Alphanumeric, DistString};
use relay_core::settings::validate_repository;
use relay_core::{IntegrationId, IntegrationType, Settings};
use relay_store::integrations::{self, IntegrationRecord};
use relay_store::PgPool;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::AdminError;
use super::{bitbucket_side, validate};
use crate::bitbucket::Clients;
use crate::secrets::{
    generate_deploy_hook_secret, generate_webhook_secret, SecretField, SecretKey,
};

/// What an admin may set. Every field is optional so the same type serves add and update;
/// for optional text fields an empty string clears the value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationInput {
    #[serde(rename = "type")]
    pub kind: Option<IntegrationType>,
    pub repository: Option<String>,
    pub key: Option<String>,
    pub secret: Option<String>,
    pub base_url: Option<String>,
    pub username: Option<String>,
    pub token: Option<String>,
    pub webhook_secret: Option<String>,
    pub deploy_hook_secret: Option<String>,
    pub fetch_branches: Option<bool>,
    pub prune_branches: Option<bool>,
    pub build_pull_requests: Option<bool>,
    pub build_pull_requests_post_merge: Option<bool>,
    pub resync_pull_requests: Option<bool>,
    pub pull_requests_clone_parent_data: Option<bool>,
    pub build_fork_pull_requests: Option<bool>,
    pub deploy_remote: Option<String>,
    pub deploy_hook_url: Option<String>,
    pub environment_url: Option<String>,
    pub default_branch: Option<String>,
    /// Not stored: whether add/update/delete also manage the webhook on Bitbucket (default
    /// true).
    pub register_webhook: Option<bool>,
}

impl IntegrationInput {
    /// Whether the change affects the webhook Bitbucket calls (its secret, the repository or
    /// the credentials used to manage it).
    fn touches_bitbucket(&self) -> bool {
        self.webhook_secret.is_some()
            || self.repository.is_some()
            || self.key.is_some()
            || self.secret.is_some()
            || self.base_url.is_some()
            || self.token.is_some()
    }
}

/// Result of `add`: the webhook secret is returned in clear exactly once, here.
#[derive(Debug)]
pub struct Created {
    pub record: IntegrationRecord,
    pub webhook_secret: String,
}

pub fn generate_id() -> IntegrationId {
    let raw = Alphanumeric
        .sample_string(&mut rand::thread_rng(), 13)
        .to_ascii_lowercase();
    // Lowercased alphanumerics always satisfy the id rule; fall back just in case.
    IntegrationId::parse(&raw).unwrap_or_else(|_| generate_id())
}

pub fn hook_url(public_base_url: &str, id: &str) -> String {
    format!("{public_base_url}/webhooks/bitbucket/{id}")
}

pub async fn add(
    pool: &PgPool,
    key: &SecretKey,
    input: IntegrationInput,
) -> Result<Created, AdminError> {
    let kind = input.kind.ok_or_else(|| {
        AdminError::Invalid("type is required: bitbucket or bitbucket_server".into())
    })?;
    let id = generate_id();
    let webhook_secret = match &input.webhook_secret {
        Some(given) => validate::non_empty("webhook_secret", given).map_err(AdminError::Invalid)?,
        None => generate_webhook_secret(),
    };
    let mut record = IntegrationRecord {
        id: id.to_string(),
        r#type: kind,
        repository: String::new(),
        oauth_key: None,
        oauth_secret_ciphertext: None,
        base_url: None,
        username: None,
        token_ciphertext: None,
        webhook_secret_ciphertext: key.encrypt(
            id.as_str(),
            SecretField::WebhookSecret,
            &webhook_secret,
        )?,
        deploy_hook_secret_ciphertext: key.encrypt(
            id.as_str(),
            SecretField::DeployHookSecret,
            &generate_deploy_hook_secret(),
        )?,
        fetch_branches: true,
        prune_branches: true,
        build_pull_requests: true,
        build_pull_requests_post_merge: false,
        resync_pull_requests: false,
        pull_requests_clone_parent_data: true,
        build_fork_pull_requests: false,
        deploy_remote: None,
        deploy_hook_url: None,
        environment_url: None,
        default_branch: None,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    let input = IntegrationInput {
        webhook_secret: None,
        ..input
    };
    apply(&mut record, key, input, true)?;
    let record = integrations::insert(pool, &record).await?;
    Ok(Created {
        record,
        webhook_secret,
    })
}

pub async fn update(
    pool: &PgPool,
    key: &SecretKey,
    id: &str,
    input: IntegrationInput,
) -> Result<IntegrationRecord, AdminError> {
    integrations::update(pool, id, |record| apply(record, key, input, false)).await
}

/// Applies `input` to `record`, then checks the whole record, so add and update share every rule.
fn apply(
    record: &mut IntegrationRecord,
    key: &SecretKey,
    input: IntegrationInput,
    creating: bool,
) -> Result<(), AdminError> {
    let invalid = AdminError::Invalid;
    if let Some(kind) = input.kind {
        if !creating && kind != record.r#type {
            return Err(invalid(format!(
                "type cannot change from {} to {kind}: delete the integration and add a new one",
                record.r#type
            )));
        }
    }
    let kind = record.r#type;
    let id = record.id.clone();

    if let Some(repository) = input.repository {
        validate_repository(repository.trim()).map_err(|e| invalid(e.to_string()))?;
        record.repository = repository.trim().to_owned();
    } else if creating {
        return Err(invalid("repository is required".into()));
    }

    let cloud_only = [("key", &input.key), ("secret", &input.secret)];
    let server_only = [
        ("base_url", &input.base_url),
        ("username", &input.username),
        ("token", &input.token),
    ];
    let foreign = match kind {
        IntegrationType::Cloud => &server_only[..],
        IntegrationType::Server => &cloud_only[..],
    };
    if let Some((name, _)) = foreign.iter().find(|(_, value)| value.is_some()) {
        return Err(invalid(format!(
            "{name} does not apply to {kind} integrations"
        )));
    }

    if let Some(oauth_key) = input.key {
        record.oauth_key = Some(validate::non_empty("key", &oauth_key).map_err(invalid)?);
    }
    if let Some(secret) = input.secret {
        let secret = validate::non_empty("secret", &secret).map_err(invalid)?;
        record.oauth_secret_ciphertext =
            Some(key.encrypt(&id, SecretField::OauthSecret, &secret)?);
    }
    if let Some(base_url) = input.base_url {
        record.base_url = Some(validate::http_url("base_url", &base_url).map_err(invalid)?);
    }
    if let Some(username) = input.username {
        record.username = optional(&username, |v| validate::non_empty("username", v))?;
    }
    if let Some(token) = input.token {
        let token = validate::non_empty("token", &token).map_err(invalid)?;
        record.token_ciphertext = Some(key.encrypt(&id, SecretField::Token, &token)?);
    }
    if let Some(hook_secret) = input.deploy_hook_secret {
        let hook_secret = validate::deploy_hook_secret(&hook_secret).map_err(invalid)?;
        record.deploy_hook_secret_ciphertext =
            key.encrypt(&id, SecretField::DeployHookSecret, &hook_secret)?;
    }
    if let Some(webhook_secret) = input.webhook_secret {
        let secret = validate::non_empty("webhook_secret", &webhook_secret).map_err(invalid)?;
        record.webhook_secret_ciphertext = key.encrypt(&id, SecretField::WebhookSecret, &secret)?;
    }

    let flags = [
        (input.fetch_branches, &mut record.fetch_branches),
        (input.prune_branches, &mut record.prune_branches),
        (input.build_pull_requests, &mut record.build_pull_requests),
        (
            input.build_pull_requests_post_merge,
            &mut record.build_pull_requests_post_merge,
        ),
        (input.resync_pull_requests, &mut record.resync_pull_requests),
        (
            input.pull_requests_clone_parent_data,
            &mut record.pull_requests_clone_parent_data,
        ),
        (
            input.build_fork_pull_requests,
            &mut record.build_fork_pull_requests,
        ),
    ];
    for (given, field) in flags {
        if let Some(value) = given {
            *field = value;
        }
    }

    if let Some(remote) = input.deploy_remote {
        record.deploy_remote = optional(&remote, |v| validate::git_remote("deploy_remote", v))?;
    }
    if let Some(url) = input.deploy_hook_url {
        record.deploy_hook_url = optional(&url, |v| validate::http_url("deploy_hook_url", v))?;
    }
    if let Some(template) = input.environment_url {
        record.environment_url = optional(&template, validate::environment_url)?;
    }
    if let Some(branch) = input.default_branch {
        record.default_branch = optional(&branch, |v| validate::branch_name("default_branch", v))?;
    }

    match kind {
        IntegrationType::Cloud
            if record.oauth_key.is_none() || record.oauth_secret_ciphertext.is_none() =>
        {
            Err(invalid(
                "bitbucket integrations need --key and --secret (an OAuth consumer)".into(),
            ))
        }
        IntegrationType::Server
            if record.base_url.is_none() || record.token_ciphertext.is_none() =>
        {
            Err(invalid(
                "bitbucket_server integrations need --base-url and --token".into(),
            ))
        }
        _ => Ok(()),
    }
}

/// Empty input clears an optional field; anything else must pass `check`.
fn optional(
    raw: &str,
    check: impl Fn(&str) -> Result<String, String>,
) -> Result<Option<String>, AdminError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    check(raw).map(Some).map_err(AdminError::Invalid)
}

pub fn settings(record: &IntegrationRecord) -> Settings {
    Settings {
        fetch_branches: record.fetch_branches,
        prune_branches: record.prune_branches,
        build_pull_requests: record.build_pull_requests,
        build_pull_requests_post_merge: record.build_pull_requests_post_merge,
        resync_pull_requests: record.resync_pull_requests,
        pull_requests_clone_parent_data: record.pull_requests_clone_parent_data,
        build_fork_pull_requests: record.build_fork_pull_requests,
        default_branch: record.default_branch.clone(),
    }
}

/// How an integration is shown to admins. Secrets appear only as "is it set", unless the
/// caller explicitly asked to reveal them.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: IntegrationType,
    pub repository: String,
    pub hook_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub secret: SecretView,
    pub token: SecretView,
    pub webhook_secret: SecretView,
    pub deploy_hook_secret: SecretView,
    pub fetch_branches: bool,
    /// The effective value: forced off when `fetch_branches` is off.
    pub prune_branches: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune_branches_note: Option<&'static str>,
    pub build_pull_requests: bool,
    pub build_pull_requests_post_merge: bool,
    pub resync_pull_requests: bool,
    pub pull_requests_clone_parent_data: bool,
    pub build_fork_pull_requests: bool,
    pub deploy_remote: Option<String>,
    pub deploy_hook_url: Option<String>,
    pub environment_url: Option<String>,
    pub default_branch: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// `"set"` / `null` normally; the clear value only with `--show-secret`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum SecretView {
    Hidden(Option<&'static str>),
    Shown(String),
}

impl SecretView {
    pub fn display(&self) -> String {
        match self {
            Self::Hidden(Some(label)) => (*label).to_owned(),
            Self::Hidden(None) => String::new(),
            Self::Shown(value) => value.clone(),
        }
    }
}

pub fn view(
    record: &IntegrationRecord,
    public_base_url: &str,
    reveal: Option<&SecretKey>,
) -> Result<IntegrationView, AdminError> {
    let secret = |field: SecretField, stored: Option<&Vec<u8>>| -> Result<SecretView, AdminError> {
        Ok(match (stored, reveal) {
            (None, _) => SecretView::Hidden(None),
            (Some(_), None) => SecretView::Hidden(Some("set")),
            (Some(bytes), Some(key)) => SecretView::Shown(
                key.decrypt(&record.id, field, bytes)?
                    .expose_secret()
                    .to_owned(),
            ),
        })
    };
    let settings = settings(record);
    Ok(IntegrationView {
        id: record.id.clone(),
        kind: record.r#type,
        repository: record.repository.clone(),
        hook_url: hook_url(public_base_url, &record.id),
        key: record.oauth_key.clone(),
        base_url: record.base_url.clone(),
        username: record.username.clone(),
        secret: secret(
            SecretField::OauthSecret,
            record.oauth_secret_ciphertext.as_ref(),
        )?,
        token: secret(SecretField::Token, record.token_ciphertext.as_ref())?,
        webhook_secret: secret(
            SecretField::WebhookSecret,
            Some(&record.webhook_secret_ciphertext),
        )?,
        deploy_hook_secret: secret(
            SecretField::DeployHookSecret,
            Some(&record.deploy_hook_secret_ciphertext),
        )?,
        fetch_branches: settings.fetch_branches,
        prune_branches: settings.effective_prune_branches(),
        prune_branches_note: settings.prune_override_notice(),
        build_pull_requests: settings.build_pull_requests,
        build_pull_requests_post_merge: settings.build_pull_requests_post_merge,
        resync_pull_requests: settings.resync_pull_requests,
        pull_requests_clone_parent_data: settings.pull_requests_clone_parent_data,
        build_fork_pull_requests: settings.build_fork_pull_requests,
        deploy_remote: record
            .deploy_remote
            .as_deref()
            .map(validate::redact_url_password),
        deploy_hook_url: record.deploy_hook_url.clone(),
        environment_url: record.environment_url.clone(),
        default_branch: record.default_branch.clone(),
        created_at: record.created_at.to_rfc3339(),
        updated_at: record.updated_at.to_rfc3339(),
    })
}

/// `add`, then the webhook on Bitbucket and the first sync. If Bitbucket refuses, the row is
/// removed again: an add either fully happens or leaves nothing behind.
pub async fn add_with_bitbucket(
    pool: &PgPool,
    key: &SecretKey,
    clients: &Clients,
    public_base_url: &str,
    input: IntegrationInput,
) -> Result<Created, AdminError> {
    let register = input.register_webhook.unwrap_or(true);
    let created = add(pool, key, input).await?;
    if register {
        if let Err(err) =
            bitbucket_side::register_webhook(clients, key, public_base_url, &created.record).await
        {
            relay_store::integrations::delete(pool, &created.record.id).await?;
            return Err(err);
        }
    }
    let first_sync = relay_core::JobSpec::Reconcile {
        reason: "integration added".into(),
    };
    relay_store::jobs::enqueue(pool, &created.record.id, None, &first_sync).await?;
    Ok(created)
}

/// `update`, then re-registers the webhook when the change affects it.
pub async fn update_with_bitbucket(
    pool: &PgPool,
    key: &SecretKey,
    clients: &Clients,
    public_base_url: &str,
    id: &str,
    input: IntegrationInput,
) -> Result<IntegrationRecord, AdminError> {
    let register = input.register_webhook.unwrap_or(true) && input.touches_bitbucket();
    let record = update(pool, key, id, input).await?;
    if register {
        bitbucket_side::register_webhook(clients, key, public_base_url, &record)
            .await
            .map_err(|err| {
                AdminError::Bitbucket(format!(
                    "the change was saved, but the webhook was not updated: {err}"
                ))
            })?;
    }
    Ok(record)
}

/// Deletes the integration, removing its webhook first when asked; a Bitbucket failure does
/// not stop the deletion and comes back as a warning.
pub async fn delete_with_bitbucket(
    pool: &PgPool,
    key: &SecretKey,
    clients: &Clients,
    public_base_url: &str,
    id: &str,
    register: bool,
) -> Result<Option<String>, AdminError> {
    let record = relay_store::integrations::get(pool, id).await?;
    let warning = if register {
        bitbucket_side::remove_webhook(clients, key, public_base_url, &record)
            .await
            .err()
            .map(|err| {
                format!(
                    "the webhook could not be removed from Bitbucket ({err}); remove it by hand"
                )
            })
    } else {
        None
    };
    relay_store::integrations::delete(pool, id).await?;
    Ok(warning)
}
