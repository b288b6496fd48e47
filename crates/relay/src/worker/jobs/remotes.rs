//! Where an integration's git lives on Bitbucket, and how to authenticate to it.

use relay_core::IntegrationType;
use relay_git::RemoteAccess;
use relay_store::integrations::IntegrationRecord;

use super::{Context, JobError};
use crate::bitbucket::AccessError;

impl From<AccessError> for JobError {
    fn from(err: AccessError) -> Self {
        let transient = match &err {
            // Credentials can be fixed by an admin, rate limits and outages pass.
            AccessError::Bitbucket(e) => e.is_transient() || e.status() == Some(401),
            _ => false,
        };
        Self {
            message: err.to_string(),
            transient,
            local: false,
        }
    }
}

/// The git URL of `repository` (the integration's own when empty, or a fork's) with the
/// integration's credentials: Cloud as `x-token-auth` with an OAuth access token, Server as
/// a Bearer HTTP access token.
pub async fn bitbucket_remote(
    context: &Context,
    record: &IntegrationRecord,
    repository: &str,
) -> Result<RemoteAccess, JobError> {
    let own = repository.is_empty() || repository == record.repository;
    // A fork's name comes from a payload: only Bitbucket's own characters may go into the
    // URL that carries the integration's token (no `../`, `?`, `#`, leading `-`).
    if !own {
        relay_core::settings::validate_repository(repository)
            .map_err(|e| JobError::permanent(format!("the fork cannot be fetched: {e}")))?;
    }
    let client = context.clients.get(record, &context.key).await?;
    let header = client.git_auth_header().await.map_err(AccessError::from)?;
    let url = if own {
        client.git_url().map_err(AccessError::from)?.to_string()
    } else {
        match record.kind {
            IntegrationType::Server => {
                let base = record
                    .base_url
                    .as_deref()
                    .unwrap_or_default()
                    .trim_end_matches('/');
                format!("{base}/scm/{repository}.git")
            }
            IntegrationType::Cloud => {
                let web = context
                    .clients
                    .cloud_urls()
                    .web
                    .as_str()
                    .trim_end_matches('/')
                    .to_owned();
                format!("{web}/{repository}.git")
            }
        }
    };
    Ok(RemoteAccess::with_authorization(url, header))
}

/// The deploy remote, checked again (a value stored by an older version may predate the
/// checks in `relay_core::targets`).
pub fn deploy_remote(record: &IntegrationRecord) -> Result<Option<RemoteAccess>, JobError> {
    let Some(remote) = record.deploy_remote.as_deref() else {
        return Ok(None);
    };
    relay_core::targets::git_remote(remote).map_err(|e| {
        JobError::permanent(format!(
            "deploy_remote {}: {e}; fix it with integration:update --deploy-remote",
            crate::redact::url(remote)
        ))
    })?;
    Ok(Some(RemoteAccess::from_url_with_userinfo(remote)))
}
