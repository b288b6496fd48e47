//! REST clients for Bitbucket Cloud (2.0, OAuth client credentials) and Bitbucket Server /
//! Data Center (`api/latest`, HTTP access token as Bearer).
//!
//! [`BitbucketClient`] is the one entry point: branches, open pull requests (converted with
//! the same code as webhook payloads), the default branch, webhooks, build statuses, and the
//! credentials git needs. Every request has a timeout; 429 and 5xx are retried with backoff
//! honouring `Retry-After` ([`RetryPolicy`]); failures are typed ([`Error`]). Secrets live in
//! [`SecretString`]s and never appear in `Debug` output or error messages.

mod cloud;
mod comments;
mod config;
mod error;
mod oauth;
mod paging;
mod parse;
mod server;
mod transport;
mod types;

use relay_core::{CommitHash, IntegrationType, PullRequest};
pub use secrecy::SecretString;
use url::Url;

pub use cloud::CloudClient;
pub use comments::PostedComment;
pub use config::{
    split_repository, BitbucketConfig, ClientOptions, CloudConfig, RetryPolicy, ServerConfig,
    DEFAULT_CLOUD_API_URL, DEFAULT_CLOUD_URL,
};
pub use error::{Error, Result};
pub use server::ServerClient;
pub use types::{
    webhook_events, Branch, BuildState, BuildStatus, Repository, Webhook, WebhookChange,
    WebhookSpec, CLOUD_WEBHOOK_EVENTS, SERVER_WEBHOOK_EVENTS,
};

/// The Cloud OAuth scope commenting on pull requests needs ("Pull requests: Write").
pub const PULL_REQUEST_WRITE_SCOPE: &str = "pullrequest:write";

/// What the credentials say about commenting on pull requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentPermission {
    Granted,
    /// The token's scopes lack `pullrequest:write`; `granted` is what it has.
    Missing {
        granted: Vec<String>,
    },
    /// Nothing says (Server, or a token response without `scopes`): try and see.
    Unknown,
}

/// A client for one repository on either product.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one long-lived client per integration; unboxed variants keep matching simple"
)]
pub enum BitbucketClient {
    Cloud(CloudClient),
    Server(ServerClient),
}

impl BitbucketClient {
    pub fn new(config: BitbucketConfig, options: &ClientOptions) -> Result<Self> {
        Ok(match config {
            BitbucketConfig::Cloud(c) => Self::Cloud(CloudClient::new(c, options)?),
            BitbucketConfig::Server(c) => Self::Server(ServerClient::new(c, options)?),
        })
    }

    pub fn provider(&self) -> IntegrationType {
        match self {
            Self::Cloud(_) => IntegrationType::Cloud,
            Self::Server(_) => IntegrationType::Server,
        }
    }

    /// Events the relay's webhook subscribes to on this product.
    pub fn webhook_events(&self) -> &'static [&'static str] {
        webhook_events(self.provider())
    }

    /// Repository metadata, notably its default branch. Doubles as the access check.
    pub async fn repository(&self) -> Result<Repository> {
        match self {
            Self::Cloud(c) => c.repository().await,
            Self::Server(c) => c.repository().await,
        }
    }

    pub async fn list_branches(&self) -> Result<Vec<Branch>> {
        match self {
            Self::Cloud(c) => c.list_branches().await,
            Self::Server(c) => c.list_branches().await,
        }
    }

    /// Open pull requests, drafts included. Cloud commits are 12-character abbreviations
    /// (check [`CommitHash::is_full`]); Server's are complete.
    pub async fn list_open_pull_requests(&self) -> Result<Vec<PullRequest>> {
        match self {
            Self::Cloud(c) => c.list_open_pull_requests().await,
            Self::Server(c) => c.list_open_pull_requests().await,
        }
    }

    /// The complete id of `rev` (an abbreviation, a branch name).
    pub async fn resolve_commit(&self, rev: &str) -> Result<CommitHash> {
        match self {
            Self::Cloud(c) => c.resolve_commit(rev).await,
            Self::Server(c) => c.resolve_commit(rev).await,
        }
    }

    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        match self {
            Self::Cloud(c) => c.list_webhooks().await,
            Self::Server(c) => c.list_webhooks().await,
        }
    }

    /// The first webhook that points at `url` (ignoring a trailing slash).
    pub async fn find_webhook(&self, url: &str) -> Result<Option<Webhook>> {
        Ok(self
            .list_webhooks()
            .await?
            .into_iter()
            .find(|w| w.points_to(url)))
    }

    pub async fn create_webhook(&self, spec: &WebhookSpec) -> Result<Webhook> {
        match self {
            Self::Cloud(c) => c.create_webhook(spec).await,
            Self::Server(c) => c.create_webhook(spec).await,
        }
    }

    pub async fn update_webhook(&self, id: &str, spec: &WebhookSpec) -> Result<Webhook> {
        match self {
            Self::Cloud(c) => c.update_webhook(id, spec).await,
            Self::Server(c) => c.update_webhook(id, spec).await,
        }
    }

    /// Deletes the webhook; [`Error::NotFound`] when it is already gone.
    pub async fn delete_webhook(&self, id: &str) -> Result<()> {
        match self {
            Self::Cloud(c) => c.delete_webhook(id).await,
            Self::Server(c) => c.delete_webhook(id).await,
        }
    }

    /// Updates the webhook pointing at `spec.url`, or creates one. Always writes, because
    /// Bitbucket never returns the secret: rewriting is the only way to be sure it is right.
    pub async fn upsert_webhook(&self, spec: &WebhookSpec) -> Result<WebhookChange> {
        match self.find_webhook(&spec.url).await? {
            Some(existing) => Ok(WebhookChange::Updated(
                self.update_webhook(&existing.id, spec).await?,
            )),
            None => Ok(WebhookChange::Created(self.create_webhook(spec).await?)),
        }
    }

    /// Sets `commit`'s build status; the same key overwrites the previous state.
    pub async fn set_build_status(&self, commit: &CommitHash, status: &BuildStatus) -> Result<()> {
        match self {
            Self::Cloud(c) => c.set_build_status(commit, status).await,
            Self::Server(c) => c.set_build_status(commit, status).await,
        }
    }

    /// Whether these credentials may comment on pull requests, as far as can be told without
    /// trying: Cloud's OAuth token names its granted scopes, and commenting needs
    /// `pullrequest:write` (the consumer's "Pull requests: Write" permission). Server's
    /// tokens say nothing until used ([`CommentPermission::Unknown`]).
    pub async fn comment_permission(&self) -> Result<CommentPermission> {
        match self {
            Self::Cloud(c) => Ok(match c.granted_scopes().await? {
                Some(scopes) if scopes.iter().any(|s| s == PULL_REQUEST_WRITE_SCOPE) => {
                    CommentPermission::Granted
                }
                Some(scopes) => CommentPermission::Missing { granted: scopes },
                None => CommentPermission::Unknown,
            }),
            Self::Server(_) => Ok(CommentPermission::Unknown),
        }
    }

    /// Posts a comment on pull request `pr_id`. Not retried after an unknown outcome (a
    /// repeat would post twice).
    pub async fn post_comment(&self, pr_id: u64, text: &str) -> Result<PostedComment> {
        match self {
            Self::Cloud(c) => c.post_comment(pr_id, text).await,
            Self::Server(c) => c.post_comment(pr_id, text).await,
        }
    }

    /// The first live comment on pull request `pr_id` whose text `matches`: how a comment
    /// whose post answer was lost (a timeout after Bitbucket stored it) is found again.
    pub async fn find_comment(
        &self,
        pr_id: u64,
        matches: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<PostedComment>> {
        match self {
            Self::Cloud(c) => c.find_comment(pr_id, matches).await,
            Self::Server(c) => c.find_comment(pr_id, matches).await,
        }
    }

    /// Replaces the text of `comment`; [`Error::NotFound`] when it was deleted. On Server a
    /// stale version is read again and the edit repeated.
    pub async fn edit_comment(
        &self,
        pr_id: u64,
        comment: &PostedComment,
        text: &str,
    ) -> Result<PostedComment> {
        match self {
            Self::Cloud(c) => c.edit_comment(pr_id, &comment.id, text).await,
            Self::Server(c) => {
                c.edit_comment(pr_id, &comment.id, comment.version, text)
                    .await
            }
        }
    }

    /// Cloud: a cached OAuth access token (git's `x-token-auth` password). Server: the HTTP
    /// access token.
    pub async fn access_token(&self) -> Result<SecretString> {
        match self {
            Self::Cloud(c) => c.access_token().await,
            Self::Server(c) => Ok(c.access_token()),
        }
    }

    /// Where git fetches from: Cloud `{cloud_url}/{workspace}/{repo}.git`, Server
    /// `{base_url}/scm/{project}/{repo}.git`. Carries no credentials.
    pub fn git_url(&self) -> Result<Url> {
        match self {
            Self::Cloud(c) => c.git_url(),
            Self::Server(c) => c.git_url(),
        }
    }

    /// The complete `Authorization` header value for git over HTTPS: Cloud
    /// `Basic base64(x-token-auth:<token>)`, Server `Bearer <token>`.
    pub async fn git_auth_header(&self) -> Result<SecretString> {
        match self {
            Self::Cloud(c) => c.git_auth_header().await,
            Self::Server(c) => Ok(c.git_auth_header()),
        }
    }
}
