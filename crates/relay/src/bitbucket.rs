//! One Bitbucket REST client per integration, built from its row and kept while the row is
//! unchanged, so OAuth tokens are reused across jobs instead of fetched per call.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use relay_bitbucket::{BitbucketClient, BitbucketConfig, ClientOptions, CloudConfig, ServerConfig};
use relay_core::IntegrationType;
use relay_store::integrations::IntegrationRecord;
use secrecy::SecretString;
use tokio::sync::Mutex;
use url::Url;

use crate::secrets::{SecretError, SecretField, SecretKey};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("the integration's {0} is missing")]
    Missing(&'static str),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Bitbucket(#[from] relay_bitbucket::Error),
    #[error("invalid base_url: {0}")]
    BaseUrl(String),
}

/// Where Bitbucket Cloud lives (configuration, so tests and proxies can point elsewhere).
#[derive(Debug, Clone)]
pub struct CloudUrls {
    pub web: Url,
    pub api: Url,
}

pub fn config_for(
    record: &IntegrationRecord,
    key: &SecretKey,
    cloud: &CloudUrls,
) -> Result<BitbucketConfig, AccessError> {
    let (owner, repo) = relay_bitbucket::split_repository(&record.repository)?;
    let secret = |field: SecretField,
                  stored: Option<&Vec<u8>>,
                  what: &'static str|
     -> Result<SecretString, AccessError> {
        let stored = stored.ok_or(AccessError::Missing(what))?;
        Ok(key.decrypt(&record.id, field, stored)?)
    };
    Ok(match record.kind {
        IntegrationType::Server => {
            let base = record
                .base_url
                .as_deref()
                .ok_or(AccessError::Missing("base_url"))?;
            let base = Url::parse(base).map_err(|e| AccessError::BaseUrl(e.to_string()))?;
            let token = secret(
                SecretField::Token,
                record.token_ciphertext.as_ref(),
                "token",
            )?;
            BitbucketConfig::Server(ServerConfig::new(base, token, &owner, &repo))
        }
        IntegrationType::Cloud => {
            let oauth_key = record
                .oauth_key
                .as_deref()
                .ok_or(AccessError::Missing("key"))?;
            let oauth_secret = secret(
                SecretField::OauthSecret,
                record.oauth_secret_ciphertext.as_ref(),
                "secret",
            )?;
            BitbucketConfig::Cloud(
                CloudConfig::new(oauth_key, oauth_secret, &owner, &repo)
                    .with_urls(cloud.web.clone(), cloud.api.clone()),
            )
        }
    })
}

/// A client and the `updated_at` of the row it was built from.
type CachedClient = (DateTime<Utc>, Arc<BitbucketClient>);

pub struct Clients {
    cloud: CloudUrls,
    options: ClientOptions,
    cache: Mutex<HashMap<String, CachedClient>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clients")
    }
}

impl Clients {
    pub fn new(cloud: CloudUrls, options: ClientOptions) -> Self {
        Self {
            cloud,
            options,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn cloud_urls(&self) -> &CloudUrls {
        &self.cloud
    }

    /// The client for `record`, rebuilt when the row changed since it was made.
    pub async fn get(
        &self,
        record: &IntegrationRecord,
        key: &SecretKey,
    ) -> Result<Arc<BitbucketClient>, AccessError> {
        let mut cache = self.cache.lock().await;
        if let Some((updated_at, client)) = cache.get(&record.id) {
            if *updated_at == record.updated_at {
                return Ok(client.clone());
            }
        }
        let client = Arc::new(BitbucketClient::new(
            config_for(record, key, &self.cloud)?,
            &self.options,
        )?);
        cache.insert(record.id.clone(), (record.updated_at, client.clone()));
        Ok(client)
    }
}
