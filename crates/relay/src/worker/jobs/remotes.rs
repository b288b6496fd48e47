//! Where an integration's git lives on Bitbucket, and how to authenticate to it.

use relay_git::RemoteAccess;
use relay_store::integrations::IntegrationRecord;
use secrecy::{ExposeSecret, SecretString};

use super::{Context, JobError};
use crate::secrets::SecretField;

/// The git URL of `repository` (the integration's own, or a fork's) with credentials.
pub async fn bitbucket_remote(
    context: &Context,
    record: &IntegrationRecord,
    repository: &str,
) -> Result<RemoteAccess, JobError> {
    let repository = if repository.is_empty() {
        record.repository.as_str()
    } else {
        repository
    };
    match record.r#type.as_str() {
        "bitbucket_server" => {
            let base = record
                .base_url
                .as_deref()
                .ok_or_else(|| JobError::permanent("the integration has no base_url"))?;
            let token = decrypt(
                context,
                record,
                SecretField::Token,
                record.token_ciphertext.as_deref(),
            )?;
            Ok(RemoteAccess::with_authorization(
                format!("{}/scm/{repository}.git", base.trim_end_matches('/')),
                SecretString::from(format!("Bearer {}", token.expose_secret())),
            ))
        }
        _ => {
            let token = cloud_access_token(context, record).await?;
            let base = context
                .config
                .bitbucket_cloud_url
                .as_str()
                .trim_end_matches('/');
            Ok(RemoteAccess::basic(
                format!("{base}/{repository}.git"),
                "x-token-auth",
                &token,
            ))
        }
    }
}

pub fn deploy_remote(record: &IntegrationRecord) -> Option<RemoteAccess> {
    record
        .deploy_remote
        .as_deref()
        .map(RemoteAccess::from_url_with_userinfo)
}

fn decrypt(
    context: &Context,
    record: &IntegrationRecord,
    field: SecretField,
    stored: Option<&[u8]>,
) -> Result<SecretString, JobError> {
    let stored = stored.ok_or_else(|| JobError::permanent("the integration has no credentials"))?;
    context
        .key
        .decrypt(&record.id, field, stored)
        .map_err(|e| JobError::permanent(e.to_string()))
}

/// Bitbucket Cloud: an OAuth access token from the consumer key and secret.
async fn cloud_access_token(
    context: &Context,
    record: &IntegrationRecord,
) -> Result<SecretString, JobError> {
    let key = record
        .oauth_key
        .as_deref()
        .ok_or_else(|| JobError::permanent("the integration has no OAuth key"))?;
    let secret = decrypt(
        context,
        record,
        SecretField::OauthSecret,
        record.oauth_secret_ciphertext.as_deref(),
    )?;
    let _ = (key, secret);
    Err(JobError::transient(
        "Bitbucket Cloud access tokens are not wired yet",
    ))
}
