//! Changes that involve Bitbucket as well as the database: an integration's row and its
//! repository webhook move together.

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
