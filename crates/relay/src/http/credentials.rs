//! A short-lived cache of webhook secrets (the current one and, during a rotation's grace,
//! the previous one), so ingest costs one write and no read per delivery. Entries live a few seconds: a rotated secret or a deleted integration takes
//! effect within that time (a delivery for a just-deleted integration is then refused by the
//! database's foreign key). Unknown ids are cached too, and the whole cache is dropped when it
//! grows past its bound, so random ids cannot grow memory or hammer the database.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_core::IntegrationType;
use relay_store::{PgPool, StoreError};
use secrecy::SecretString;
use tokio::sync::RwLock;

use crate::secrets::{SecretError, SecretField, SecretKey};

pub struct Credentials {
    pub kind: IntegrationType,
    pub webhook_secret: SecretString,
    /// The secret before the last rotation, accepted until the grace ends (checked against
    /// the clock at each delivery, so a cached entry cannot stretch the grace).
    pub previous_webhook_secret: Option<(SecretString, chrono::DateTime<chrono::Utc>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Youngest cached entry a failed signature may have re-read.
pub const REFRESH_AFTER: Duration = Duration::from_millis(100);

/// When an integration's secrets were read, and what was found (`None`: no such
/// integration). Shared, so a delivery's lookup counts a reference instead of copying secrets.
type Cached = (Instant, Option<Arc<Credentials>>);

pub struct CredentialCache {
    ttl: Duration,
    max_entries: usize,
    entries: RwLock<HashMap<String, Cached>>,
    /// When each integration's secrets were last re-read after a failed signature.
    refreshed: RwLock<HashMap<String, Instant>>,
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
            refreshed: RwLock::new(HashMap::new()),
        }
    }

    pub async fn get(
        &self,
        pool: &PgPool,
        key: &SecretKey,
        id: &str,
    ) -> Result<Option<Arc<Credentials>>, LookupError> {
        if let Some((at, found)) = self.entries.read().await.get(id) {
            if at.elapsed() < self.ttl {
                return Ok(found.clone());
            }
        }
        self.load(pool, key, id).await
    }

    /// Reads the integration's secrets again after a signature failed with the cached ones:
    /// it may have been made with a secret rotated a moment ago, and Bitbucket Cloud retries
    /// a refused delivery only twice. `None` when the last such re-read was less than
    /// [`REFRESH_AFTER`] ago (so bad signatures cost at most ten reads a second per
    /// integration).
    pub async fn refresh(
        &self,
        pool: &PgPool,
        key: &SecretKey,
        id: &str,
    ) -> Result<Option<Option<Arc<Credentials>>>, LookupError> {
        {
            let mut refreshed = self.refreshed.write().await;
            if refreshed
                .get(id)
                .is_some_and(|at| at.elapsed() < REFRESH_AFTER)
            {
                return Ok(None);
            }
            if refreshed.len() >= self.max_entries {
                refreshed.clear();
            }
            refreshed.insert(id.to_owned(), Instant::now());
        }
        self.load(pool, key, id).await.map(Some)
    }

    async fn load(
        &self,
        pool: &PgPool,
        key: &SecretKey,
        id: &str,
    ) -> Result<Option<Arc<Credentials>>, LookupError> {
        let found = match relay_store::integrations::webhook_credentials(pool, id).await? {
            Some(stored) => {
                let previous =
                    relay_store::previous_secrets::get(pool, id, "webhook_secret").await?;
                let previous_webhook_secret = match previous {
                    Some(p) => Some((
                        key.decrypt(id, SecretField::WebhookSecret, &p.ciphertext)?,
                        p.expires_at,
                    )),
                    None => None,
                };
                Some(Arc::new(Credentials {
                    kind: stored.r#type,
                    webhook_secret: key.decrypt(
                        id,
                        SecretField::WebhookSecret,
                        &stored.webhook_secret_ciphertext,
                    )?,
                    previous_webhook_secret,
                }))
            }
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
