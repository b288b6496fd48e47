//! Changes that involve Bitbucket as well as the database: an integration's row and its
//! repository webhook move together.

use relay_core::IntegrationType;
use relay_store::integrations::IntegrationRecord;
use relay_store::PgPool;

use super::integrations::{add, update, Created, IntegrationInput};
use super::{bitbucket_side, AdminError};
use crate::bitbucket::Clients;
use crate::secrets::SecretKey;

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
    if register && input.kind == Some(IntegrationType::Cloud) {
        refuse_unreachable_hook(public_base_url, input.force.unwrap_or(false))?;
    }
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

/// `update`, then re-registers the webhook when the change affects it. A rotation asked for
/// in `input` happens too; [`update_rotating`] also returns the new secrets.
pub async fn update_with_bitbucket(
    pool: &PgPool,
    key: &SecretKey,
    clients: &Clients,
    public_base_url: &str,
    id: &str,
    input: IntegrationInput,
) -> Result<IntegrationRecord, AdminError> {
    let target = Target {
        pool,
        key,
        clients,
        public_base_url,
    };
    Ok(super::rotation::update_rotating(&target, id, input)
        .await?
        .record)
}

/// Where an update goes: the database, the secret key and Bitbucket.
pub struct Target<'a> {
    pub pool: &'a PgPool,
    pub key: &'a SecretKey,
    pub clients: &'a Clients,
    pub public_base_url: &'a str,
}

/// `update`, then re-registers the webhook when the change affects it (no rotation).
pub(super) async fn update_plain(
    pool: &PgPool,
    key: &SecretKey,
    clients: &Clients,
    public_base_url: &str,
    id: &str,
    input: IntegrationInput,
) -> Result<IntegrationRecord, AdminError> {
    let register = input.register_webhook.unwrap_or(true) && input.touches_bitbucket();
    let force = input.force.unwrap_or(false);
    if register {
        let kind = relay_store::integrations::get(pool, id).await?.kind;
        if kind == IntegrationType::Cloud {
            refuse_unreachable_hook(public_base_url, force)?;
        }
    }
    let before = relay_store::integrations::get(pool, id).await?.settings;
    let record = update(pool, key, id, input).await?;
    let changed = before.changes_about_existing_environments(&record.settings);
    if !changed.is_empty() {
        // Filters, drafts and the cap decide about environments that exist already: the
        // next listing plans that, so ask for it now rather than at the next resync.
        let reconcile = relay_core::JobSpec::Reconcile {
            reason: format!("settings changed: {}", changed.join(", ")),
        };
        relay_store::jobs::enqueue(pool, id, None, &reconcile).await?;
    }
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

/// Why Bitbucket Cloud could not call hook URLs built on `public_base_url`, if it could not:
/// a wildcard, loopback or private address (the default `http://$RELAY_LISTEN` often is),
/// or `localhost`. A name is taken at its word: only its owner knows where it resolves.
pub fn unreachable_public_url(public_base_url: &str) -> Option<String> {
    let url = url::Url::parse(public_base_url).ok()?;
    let host = url.host()?;
    relay_core::targets::is_unreachable_from_outside(&host).then(|| {
        format!(
            "the hook URL {public_base_url} is a wildcard, loopback or private address that Bitbucket Cloud cannot reach; set RELAY_PUBLIC_URL to the relay's external URL"
        )
    })
}

/// Registering a webhook Bitbucket Cloud can never call would fail every delivery silently:
/// refused unless forced.
fn refuse_unreachable_hook(public_base_url: &str, force: bool) -> Result<(), AdminError> {
    match unreachable_public_url(public_base_url) {
        Some(problem) if !force => Err(AdminError::Invalid(format!(
            "{problem} (or pass --register-webhook=false, or --force to register it anyway)"
        ))),
        Some(problem) => {
            tracing::warn!(%problem, "registering a webhook Bitbucket Cloud cannot reach (forced)");
            Ok(())
        }
        None => Ok(()),
    }
}
