//! Creating, changing and showing integrations.

use rand::distributions::{Alphanumeric, DistString};
use relay_core::settings::validate_repository;
use relay_core::settings::SettingsPatch;
use relay_core::{IntegrationId, IntegrationType, Settings};
use relay_store::integrations::{self, IntegrationRecord};
use relay_store::{CircuitState, PgPool};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::validate;
use super::AdminError;
use crate::secrets::{
    generate_deploy_hook_secret, generate_deploy_report_token, generate_webhook_secret,
    SecretField, SecretKey,
};

/// What an admin may set. Every field is optional so the same type serves add and update;
/// for optional text fields an empty string clears the value. The planner's rules come as
/// one [`SettingsPatch`].
#[derive(Debug, Clone, Default, Deserialize)]
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
    /// Replaces the token deployment reports authenticate with.
    pub deploy_report_token: Option<String>,
    #[serde(flatten)]
    pub settings: SettingsPatch,
    pub deploy_remote: Option<String>,
    pub deploy_hook_url: Option<String>,
    pub environment_url: Option<String>,
    /// Not stored: whether add/update/delete also manage the webhook on Bitbucket (default
    /// true).
    pub register_webhook: Option<bool>,
    /// Not stored: register the webhook on Bitbucket Cloud even though the public URL looks
    /// unreachable from the internet (see `managed::unreachable_public_url`).
    pub force: Option<bool>,
    /// Not stored: generate a new webhook secret, keeping the previous one valid for
    /// `webhook_secret_grace` (a duration such as `24h`, the default).
    pub rotate_webhook_secret: Option<bool>,
    pub webhook_secret_grace: Option<String>,
    /// Not stored: the same for the deploy hook's signing secret (both signatures are sent
    /// during the grace).
    pub rotate_deploy_hook_secret: Option<bool>,
    pub deploy_hook_secret_grace: Option<String>,
    /// Whatever else the JSON held: refused by [`IntegrationInput::check_known_fields`]
    /// (serde's own `deny_unknown_fields` does not work together with `flatten`).
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

impl IntegrationInput {
    /// Reads the admin API's JSON. A value of the wrong type is named by its field (serde
    /// loses the field's name inside a flattened struct, so the culprit is found alone).
    pub fn from_json(value: serde_json::Value) -> Result<Self, AdminError> {
        let whole = serde_json::from_value::<Self>(value.clone());
        let err = match whole {
            Ok(input) => return Ok(input),
            Err(err) => err,
        };
        let culprit = value.as_object().and_then(|fields| {
            fields.iter().find_map(|(name, field)| {
                let alone = serde_json::json!({ name.as_str(): field });
                serde_json::from_value::<Self>(alone)
                    .err()
                    .map(|e| format!("{name}: {e}"))
            })
        });
        Err(AdminError::Invalid(culprit.unwrap_or_else(|| {
            format!("the integration must be a JSON object: {err}")
        })))
    }

    /// Refuses a field nobody knows, the way a typo should be refused.
    pub fn check_known_fields(&self) -> Result<(), AdminError> {
        match self.unknown.keys().next() {
            Some(name) => Err(AdminError::Invalid(format!("unknown field `{name}`"))),
            None => Ok(()),
        }
    }

    /// Whether the change affects the webhook Bitbucket calls (its secret, the repository or
    /// the credentials used to manage it).
    pub(crate) fn touches_bitbucket(&self) -> bool {
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
    pub deploy_report_token: String,
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
        Some(given) => validate::webhook_secret(given).map_err(AdminError::Invalid)?,
        None => generate_webhook_secret(),
    };
    let deploy_report_token = match &input.deploy_report_token {
        Some(given) => {
            validate::non_empty("deploy_report_token", given).map_err(AdminError::Invalid)?
        }
        None => generate_deploy_report_token(),
    };
    let mut record = IntegrationRecord {
        id: id.to_string(),
        kind,
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
        deploy_report_token_ciphertext: Some(key.encrypt(
            id.as_str(),
            SecretField::DeployReportToken,
            &deploy_report_token,
        )?),
        settings: Settings::default(),
        deploy_remote: None,
        deploy_hook_url: None,
        environment_url: None,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    let input = IntegrationInput {
        webhook_secret: None,
        deploy_report_token: None,
        ..input
    };
    apply(&mut record, key, input, true)?;
    let record = integrations::insert(pool, &record).await?;
    Ok(Created {
        record,
        webhook_secret,
        deploy_report_token,
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
    input.check_known_fields()?;
    let kind = record.kind;
    if let Some(given) = input.kind {
        if !creating && given != kind {
            return Err(invalid(format!(
                "type cannot change from {kind} to {given}: delete the integration and add a new one"
            )));
        }
    }
    if let Some(repository) = &input.repository {
        validate_repository(repository.trim()).map_err(|e| invalid(e.to_string()))?;
        record.repository = repository.trim().to_owned();
    } else if creating {
        return Err(invalid("repository is required".into()));
    }
    apply_credentials(record, key, &input)?;
    record
        .settings
        .apply(input.settings)
        .map_err(|e| invalid(e.to_string()))?;
    if let Some(remote) = input.deploy_remote {
        record.deploy_remote = optional(&remote, |v| validate::git_remote("deploy_remote", v))?;
    }
    if let Some(url) = input.deploy_hook_url {
        record.deploy_hook_url = optional(&url, |v| validate::http_url("deploy_hook_url", v))?;
    }
    if let Some(template) = input.environment_url {
        record.environment_url = optional(&template, validate::environment_url)?;
    }
    check_credentials_complete(record)
}

/// Credentials and secrets: only the product's own, checked, and encrypted before they
/// reach the record.
fn apply_credentials(
    record: &mut IntegrationRecord,
    key: &SecretKey,
    input: &IntegrationInput,
) -> Result<(), AdminError> {
    let invalid = AdminError::Invalid;
    let kind = record.kind;
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
    let id = record.id.clone();
    let encrypt = |field: SecretField, name: &str, raw: &str| -> Result<Vec<u8>, AdminError> {
        let clear = if name == "webhook_secret" {
            validate::webhook_secret(raw)
        } else {
            validate::secret(name, raw)
        }
        .map_err(invalid)?;
        Ok(key.encrypt(&id, field, &clear)?)
    };
    if let Some(oauth_key) = &input.key {
        record.oauth_key = Some(validate::non_empty("key", oauth_key).map_err(invalid)?);
    }
    if let Some(secret) = &input.secret {
        record.oauth_secret_ciphertext = Some(encrypt(SecretField::OauthSecret, "secret", secret)?);
    }
    if let Some(base_url) = &input.base_url {
        record.base_url = Some(validate::base_url(base_url).map_err(invalid)?);
    }
    if let Some(username) = &input.username {
        record.username = optional(username, |v| validate::non_empty("username", v))?;
    }
    if let Some(token) = &input.token {
        record.token_ciphertext = Some(encrypt(SecretField::Token, "token", token)?);
    }
    if let Some(hook_secret) = &input.deploy_hook_secret {
        let hook_secret = validate::deploy_hook_secret(hook_secret).map_err(invalid)?;
        record.deploy_hook_secret_ciphertext =
            key.encrypt(&id, SecretField::DeployHookSecret, &hook_secret)?;
    }
    if let Some(token) = &input.deploy_report_token {
        record.deploy_report_token_ciphertext = Some(encrypt(
            SecretField::DeployReportToken,
            "deploy_report_token",
            token,
        )?);
    }
    if let Some(webhook_secret) = &input.webhook_secret {
        record.webhook_secret_ciphertext =
            encrypt(SecretField::WebhookSecret, "webhook_secret", webhook_secret)?;
    }
    Ok(())
}

fn check_credentials_complete(record: &IntegrationRecord) -> Result<(), AdminError> {
    let missing = match record.kind {
        IntegrationType::Cloud
            if record.oauth_key.is_none() || record.oauth_secret_ciphertext.is_none() =>
        {
            "bitbucket integrations need --key and --secret (an OAuth consumer)"
        }
        IntegrationType::Server
            if record.base_url.is_none() || record.token_ciphertext.is_none() =>
        {
            "bitbucket_server integrations need --base-url and --token"
        }
        _ => return Ok(()),
    };
    Err(AdminError::Invalid(missing.into()))
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
    pub deploy_report_token: SecretView,
    /// The planner's rules, `prune_branches` as the effective value (forced off when
    /// `fetch_branches` is off).
    #[serde(flatten)]
    pub settings: Settings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune_branches_note: Option<&'static str>,
    pub deploy_remote: Option<String>,
    pub deploy_hook_url: Option<String>,
    pub environment_url: Option<String>,
    /// Circuit breaker of the deploy hook and of the Bitbucket API: `closed`, `open` or
    /// `half_open` (see `worker::circuit`); filled in by [`with_circuits`].
    pub deploy_hook_circuit: CircuitState,
    pub bitbucket_circuit: CircuitState,
    pub created_at: String,
    pub updated_at: String,
}

/// Fills in the circuit states of `views` from the stored circuits (no row: closed).
pub async fn with_circuits(pool: &PgPool, views: &mut [IntegrationView]) -> Result<(), AdminError> {
    let only = match views {
        [one] => Some(one.id.clone()),
        _ => None,
    };
    let circuits = relay_store::circuits::list(pool, only.as_deref()).await?;
    for view in views.iter_mut() {
        for circuit in circuits.iter().filter(|c| c.integration_id == view.id) {
            match circuit.target.as_str() {
                "deploy_hook" => view.deploy_hook_circuit = circuit.state,
                "bitbucket" => view.bitbucket_circuit = circuit.state,
                _ => {}
            }
        }
    }
    Ok(())
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
    Ok(IntegrationView {
        id: record.id.clone(),
        kind: record.kind,
        repository: record.repository.clone(),
        hook_url: hook_url(public_base_url, &record.id),
        key: record.oauth_key.clone(),
        base_url: record.base_url.as_deref().map(crate::redact::url),
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
        deploy_report_token: secret(
            SecretField::DeployReportToken,
            record.deploy_report_token_ciphertext.as_ref(),
        )?,
        settings: Settings {
            prune_branches: record.settings.effective_prune_branches(),
            ..record.settings.clone()
        },
        prune_branches_note: record.settings.prune_override_notice(),
        deploy_remote: record.deploy_remote.as_deref().map(crate::redact::url),
        deploy_hook_url: record.deploy_hook_url.as_deref().map(crate::redact::url),
        environment_url: record.environment_url.clone(),
        deploy_hook_circuit: CircuitState::Closed,
        bitbucket_circuit: CircuitState::Closed,
        created_at: record.created_at.to_rfc3339(),
        updated_at: record.updated_at.to_rfc3339(),
    })
}
