//! A short-lived cache of webhook secrets, so ingest costs one write and no read per
//! delivery. Entries live a few seconds: a rotated secret or a deleted integration takes
//! effect within that time (a delivery for a just-deleted integration is then refused by the
//! database's foreign key). Unknown ids are cached too, and the whole cache is dropped when it
//! grows past its bound, so random ids cannot grow memory or hammer the database.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use relay_core::IntegrationType;
use relay_store::{PgPool, StoreError};
use secrecy::SecretString;
use tokio::sync::RwLock;

use crate::secrets::{SecretError, SecretField, SecretKey};

#[derive(Clone)]
pub struct Credentials {
    pub kind: IntegrationType,
    pub webhook_secret: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

pub struct CredentialCache {
    ttl: Duration,
    max_entries: usize,
    entries: RwLock<HashMap<String, (Instant, Option<Credentials>)>>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialCache")
    }
}

impl CredentialCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            max_entries: 10_000,
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub async fn get(
        &self,
        pool: &PgPool,
        key: &SecretKey,
        id: &str,
    ) -> Result<Option<Credentials>, LookupError> {
        if let Some((at, found)) = self.entries.read().await.get(id) {
            if at.elapsed() < self.ttl {
                return Ok(found.clone());
            }
        }
        let found = match relay_store::integrations::webhook_credentials(pool, id).await? {
            Some(stored) => Some(Credentials {
                kind: stored.r#type,
                webhook_secret: key.decrypt(
                    id,
                    SecretField::WebhookSecret,
                    &stored.webhook_secret_ciphertext,
                )?,
            }),
            None => None,
        };
        let mut entries = self.entries.write().await;
        if entries.len() >= self.max_entries {
            entries.clear();
        }
        entries.insert(id.to_owned(), (Instant::now(), found.clone()));
        Ok(found)
    }
}
