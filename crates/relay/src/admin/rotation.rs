//! Secret rotation with a grace period.
//!
//! `--rotate-webhook-secret`: a new webhook secret is generated and stored, the webhook is
//! re-registered on Bitbucket with it (when the relay manages the webhook), and the previous
//! secret stays valid for the grace (default 24 h): Bitbucket may still hold deliveries signed
//! with it (retries, or a webhook updated by hand later). After the grace it gets 401.
//! `--rotate-deploy-hook-secret`: the same for the secret the relay signs deploy-hook events
//! with; during the grace each event carries both signatures. The new secrets are returned
//! once, to be shown once.

use std::time::Duration;

use chrono::Utc;
use relay_store::integrations::IntegrationRecord;

use super::integrations::IntegrationInput;
use super::managed::{update_plain, Target};
use super::AdminError;
use crate::secrets::{generate_deploy_hook_secret, generate_webhook_secret};

const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// An update and the secrets it generated (each shown once).
#[derive(Debug)]
pub struct Updated {
    pub record: IntegrationRecord,
    pub webhook_secret: Option<Rotated>,
    pub deploy_hook_secret: Option<Rotated>,
}

impl Updated {
    /// Puts each new secret, in clear, and until when its predecessor stays valid into a
    /// view's JSON (`webhook_secret`, `previous_webhook_secret_valid_until`, ...).
    pub fn reveal_rotated(&self, view: &mut serde_json::Value) {
        let Some(object) = view.as_object_mut() else {
            return;
        };
        for (field, rotated) in [
            ("webhook_secret", &self.webhook_secret),
            ("deploy_hook_secret", &self.deploy_hook_secret),
        ] {
            if let Some(rotated) = rotated {
                object.insert(field.into(), rotated.secret.clone().into());
                object.insert(
                    format!("previous_{field}_valid_until"),
                    rotated.previous_valid_until.to_rfc3339().into(),
                );
            }
        }
    }
}

#[derive(Debug)]
pub struct Rotated {
    pub secret: String,
    /// Until when the previous secret stays valid.
    pub previous_valid_until: chrono::DateTime<Utc>,
}

/// Applies `input`, rotating the secrets it asks to rotate.
pub async fn update_rotating(
    target: &Target<'_>,
    id: &str,
    mut input: IntegrationInput,
) -> Result<Updated, AdminError> {
    let webhook = grace(
        "webhook_secret",
        input.rotate_webhook_secret,
        input.webhook_secret_grace.take(),
        input.webhook_secret.is_some(),
    )?;
    let deploy_hook = grace(
        "deploy_hook_secret",
        input.rotate_deploy_hook_secret,
        input.deploy_hook_secret_grace.take(),
        input.deploy_hook_secret.is_some(),
    )?;
    let (mut new_webhook, mut new_hook) = (None, None);
    if webhook.is_some() || deploy_hook.is_some() {
        let current = relay_store::integrations::get(target.pool, id).await?;
        let now = Utc::now();
        if let Some(grace) = webhook {
            let until = now + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
            relay_store::previous_secrets::keep(
                target.pool,
                id,
                "webhook_secret",
                &current.webhook_secret_ciphertext,
                until,
            )
            .await?;
            let secret = generate_webhook_secret();
            input.webhook_secret = Some(secret.clone());
            new_webhook = Some(Rotated {
                secret,
                previous_valid_until: until,
            });
        }
        if let Some(grace) = deploy_hook {
            let until = now + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
            relay_store::previous_secrets::keep(
                target.pool,
                id,
                "deploy_hook_secret",
                &current.deploy_hook_secret_ciphertext,
                until,
            )
            .await?;
            let secret = generate_deploy_hook_secret();
            input.deploy_hook_secret = Some(secret.clone());
            new_hook = Some(Rotated {
                secret,
                previous_valid_until: until,
            });
        }
    }
    let record = update_plain(
        target.pool,
        target.key,
        target.clients,
        target.public_base_url,
        id,
        input,
    )
    .await?;
    Ok(Updated {
        record,
        webhook_secret: new_webhook,
        deploy_hook_secret: new_hook,
    })
}

/// The grace of a rotation asked for, if one is.
fn grace(
    field: &str,
    rotate: Option<bool>,
    grace: Option<String>,
    given: bool,
) -> Result<Option<Duration>, AdminError> {
    if rotate != Some(true) {
        return match grace {
            Some(_) => Err(AdminError::Invalid(format!(
                "{field}_grace only applies together with rotate_{field}"
            ))),
            None => Ok(None),
        };
    }
    if given {
        return Err(AdminError::Invalid(format!(
            "rotate_{field} generates the new secret: do not also give {field}"
        )));
    }
    match grace {
        None => Ok(Some(DEFAULT_GRACE)),
        Some(raw) => crate::config::parse_duration(&raw)
            .map(Some)
            .map_err(|e| AdminError::Invalid(format!("{field}_grace: {e}"))),
    }
}
