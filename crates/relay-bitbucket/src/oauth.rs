//! Cloud access tokens from the OAuth client-credentials grant, cached until shortly before
//! they expire and shared by every request of one client.

use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use crate::error::{Error, Result};
use crate::transport::{Auth, Call, Payload, Transport};

struct Cached {
    token: SecretString,
    refresh_at: Instant,
    /// What the consumer may do (`pullrequest:write`, ...), space-separated in the response.
    scopes: Option<Vec<String>>,
}

pub(crate) struct TokenCache {
    url: Url,
    key: String,
    secret: SecretString,
    /// Held across the token request on purpose: concurrent callers wait for one refresh
    /// instead of each asking Bitbucket for a token.
    cached: Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
    scopes: Option<String>,
}

/// Refresh this long before expiry, at most: a token must not run out mid-request or while
/// git is still fetching with it.
const MAX_MARGIN: Duration = Duration::from_secs(300);

impl TokenCache {
    pub(crate) fn new(url: Url, key: String, secret: SecretString) -> Self {
        Self {
            url,
            key,
            secret,
            cached: Mutex::new(None),
        }
    }

    /// A valid access token, from the cache when it is fresh enough.
    pub(crate) async fn get(&self, transport: &Transport) -> Result<SecretString> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.request(transport).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// The scopes of the cached token, if any is cached and its response named them.
    pub(crate) async fn scopes(&self) -> Option<Vec<String>> {
        self.cached.lock().await.as_ref()?.scopes.clone()
    }

    /// Forgets `rejected` after Bitbucket answered 401 with it; a newer token fetched by a
    /// concurrent caller stays.
    pub(crate) async fn invalidate(&self, rejected: &SecretString) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == rejected.expose_secret())
        {
            *cached = None;
        }
    }

    async fn request(&self, transport: &Transport) -> Result<Cached> {
        let form = [("grant_type", "client_credentials")];
        let call = Call {
            method: Method::POST,
            url: self.url.clone(),
            payload: Payload::Form(&form),
            // Asking again for a token has no side effect worth avoiding.
            idempotent: true,
        };
        let auth = Auth::Basic {
            user: &self.key,
            password: &self.secret,
        };
        let started = Instant::now();
        let reply = transport.execute(&call, &auth).await.map_err(|e| match e {
            // The token endpoint answers a wrong consumer with 400 `unauthorized_client`
            // (RFC 6749), not 401: it is still a credentials problem.
            Error::Rejected {
                status: 400,
                message,
            } => Error::Unauthorized { message },
            other => other,
        })?;
        let parsed: TokenResponse = serde_json::from_slice(&reply.body).map_err(|e| {
            Error::InvalidResponse(format!("OAuth token response without a token: {e}"))
        })?;
        if parsed.access_token.is_empty() {
            return Err(Error::InvalidResponse("empty OAuth access token".into()));
        }
        // Bitbucket issues 2-hour tokens; assume an hour if it does not say.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        let margin = (lifetime / 10).min(MAX_MARGIN);
        let scopes = parsed
            .scopes
            .map(|text| text.split_whitespace().map(str::to_owned).collect());
        Ok(Cached {
            token: SecretString::from(parsed.access_token),
            refresh_at: started + lifetime.saturating_sub(margin),
            scopes,
        })
    }
}
