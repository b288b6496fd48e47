//! Both signatures during a deploy-hook secret rotation's grace: the Standard Webhooks
//! `webhook-signature` header may list several space-separated signatures, and a receiver
//! accepts the message when any of them verifies, so a receiver still configured with the
//! previous secret keeps accepting events until it is updated.

use secrecy::ExposeSecret;

use super::deploy_hook::sign;
use super::{Context, JobError};
use crate::secrets::SecretField;

/// `current` (the signature with the current secret), followed by one with the previous
/// secret while its grace lasts.
pub(super) async fn with_previous(
    context: &Context,
    integration_id: &str,
    current: String,
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, JobError> {
    let previous =
        relay_store::previous_secrets::get(&context.pool, integration_id, "deploy_hook_secret")
            .await?;
    let Some(previous) = previous else {
        return Ok(current);
    };
    let secret = context
        .key
        .decrypt(
            integration_id,
            SecretField::DeployHookSecret,
            &previous.ciphertext,
        )
        .map_err(|e| JobError::permanent(e.to_string()))?;
    Ok(
        match sign(secret.expose_secret(), message_id, timestamp, body) {
            Some(old) => format!("{current} {old}"),
            None => current,
        },
    )
}
