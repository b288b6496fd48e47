//! How to reach a Bitbucket repository, and how patiently.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::error::{Error, Result};

/// `RELAY_BITBUCKET_CLOUD_URL`'s default: OAuth and git.
pub const DEFAULT_CLOUD_URL: &str = "https://bitbucket.org";
/// `RELAY_BITBUCKET_CLOUD_API_URL`'s default: REST 2.0.
pub const DEFAULT_CLOUD_API_URL: &str = "https://api.bitbucket.org";

/// A Bitbucket Cloud repository reached with an OAuth consumer (client-credentials grant).
#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// `RELAY_BITBUCKET_CLOUD_URL`: OAuth at `/site/oauth2/access_token`, git at `/{w}/{r}.git`.
    pub oauth_base: Url,
    /// `RELAY_BITBUCKET_CLOUD_API_URL`: REST at `/2.0/...`.
    pub api_base: Url,
    pub key: String,
    pub secret: SecretString,
    pub workspace: String,
    pub repo: String,
}

impl CloudConfig {
    /// With the public bitbucket.org addresses.
    pub fn new(key: &str, secret: SecretString, workspace: &str, repo: &str) -> Self {
        Self {
            oauth_base: parse_default(DEFAULT_CLOUD_URL),
            api_base: parse_default(DEFAULT_CLOUD_API_URL),
            key: key.to_owned(),
            secret,
            workspace: workspace.to_owned(),
            repo: repo.to_owned(),
        }
    }

    /// Points both roles elsewhere (a proxy, a test double).
    pub fn with_urls(mut self, oauth_base: Url, api_base: Url) -> Self {
        self.oauth_base = oauth_base;
        self.api_base = api_base;
        self
    }
}

#[expect(
    clippy::expect_used,
    reason = "only ever called with the constants above, which are valid URLs: not external data"
)]
fn parse_default(raw: &str) -> Url {
    Url::parse(raw).expect("default Bitbucket URL constants are valid")
}

/// A Bitbucket Server / Data Center repository reached with an HTTP access token (Bearer).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The instance's base URL (REST under `/rest/api/latest`, git under `/scm/`).
    pub base_url: Url,
    pub token: SecretString,
    pub project: String,
    pub repo: String,
}

impl ServerConfig {
    pub fn new(base_url: Url, token: SecretString, project: &str, repo: &str) -> Self {
        Self {
            base_url,
            token,
            project: project.to_owned(),
            repo: repo.to_owned(),
        }
    }
}

/// Either product.
#[derive(Debug, Clone)]
pub enum BitbucketConfig {
    Cloud(CloudConfig),
    Server(ServerConfig),
}

/// Splits `workspace/repo` (Cloud) or `PROJECT/repo` (Server, `~user/repo` for personal
/// projects) into its two parts.
pub fn split_repository(full_name: &str) -> Result<(String, String)> {
    match full_name.split_once('/') {
        Some((owner, repo)) if !owner.is_empty() && !repo.is_empty() && !repo.contains('/') => {
            Ok((owner.to_owned(), repo.to_owned()))
        }
        _ => Err(Error::Config(format!(
            "repository must look like owner/name, got {full_name:?}"
        ))),
    }
}

/// Retry schedule for 429, 5xx and network failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// First backoff when Bitbucket gives no `Retry-After`; doubles per attempt.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured by sleeping; a longer one fails fast with
    /// [`Error::RateLimited`] so a worker is not parked for minutes.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Millisecond backoffs for tests; `Retry-After` still honoured up to 5 s.
    pub fn fast() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(5),
        }
    }
}

/// Transport settings shared by both clients.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole-request timeout, every request.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            user_agent: concat!("bitbucket-relay/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}
