//! Bitbucket Cloud REST 2.0 with an OAuth consumer.

use std::fmt;

use base64::Engine as _;
use relay_core::{CommitHash, IntegrationType, PullRequest};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use url::Url;

use crate::config::{ClientOptions, CloudConfig};
use crate::error::{Error, Result};
use crate::oauth::TokenCache;
use crate::paging::{checked_next, cloud_page, endpoint, MAX_PAGES};
use crate::parse;
use crate::transport::{Auth, Call, Payload, Reply, Transport};
use crate::types::{clip, Branch, BuildStatus, Repository, Webhook, WebhookSpec};

/// Open pull requests, drafts included: Bitbucket leaves drafts out of listings unless the
/// query names them, so the draft clause is there on purpose even though it matches all.
pub(crate) const OPEN_PULL_REQUESTS_QUERY: &str = r#"state="OPEN" AND (draft=true OR draft=false)"#;

pub struct CloudClient {
    config: CloudConfig,
    transport: Transport,
    tokens: TokenCache,
}

impl fmt::Debug for CloudClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudClient")
            .field("api_base", &self.config.api_base.as_str())
            .field("workspace", &self.config.workspace)
            .field("repo", &self.config.repo)
            .finish_non_exhaustive()
    }
}

impl CloudClient {
    pub fn new(config: CloudConfig, options: &ClientOptions) -> Result<Self> {
        if config.workspace.is_empty() || config.repo.is_empty() {
            return Err(Error::Config(
                "workspace and repository are required".into(),
            ));
        }
        let token_url = endpoint(&config.oauth_base, &["site", "oauth2", "access_token"])?;
        endpoint(&config.api_base, &[])?;
        let tokens = TokenCache::new(token_url, config.key.clone(), config.secret.clone());
        Ok(Self {
            transport: Transport::new(options)?,
            tokens,
            config,
        })
    }

    pub fn config(&self) -> &CloudConfig {
        &self.config
    }

    pub(crate) fn repo_url(&self, tail: &[&str]) -> Result<Url> {
        let mut segments = vec![
            "2.0",
            "repositories",
            self.config.workspace.as_str(),
            self.config.repo.as_str(),
        ];
        segments.extend_from_slice(tail);
        endpoint(&self.config.api_base, &segments)
    }

    /// A cached OAuth access token (the client-credentials grant); also what git uses as the
    /// `x-token-auth` password.
    pub async fn access_token(&self) -> Result<SecretString> {
        self.tokens.get(&self.transport).await
    }

    /// The scopes Bitbucket granted the consumer (the token response's `scopes`), fetching a
    /// token if none is cached; `None` when the response did not say.
    pub async fn granted_scopes(&self) -> Result<Option<Vec<String>>> {
        self.access_token().await?;
        Ok(self.tokens.scopes().await)
    }

    /// Sends with the cached token; on 401 fetches a new token once and tries again, since a
    /// token can be revoked or expire early.
    pub(crate) async fn call(&self, call: &Call<'_>) -> Result<Reply> {
        let token = self.access_token().await?;
        match self.transport.execute(call, &Auth::Bearer(&token)).await {
            Err(Error::Unauthorized { .. }) => {
                self.tokens.invalidate(&token).await;
                let fresh = self.access_token().await?;
                self.transport.execute(call, &Auth::Bearer(&fresh)).await
            }
            other => other,
        }
    }

    async fn get_json(&self, url: Url) -> Result<Value> {
        self.call(&Call::get(url)).await?.json()
    }

    /// Every `values` entry, following the complete `next` URL of each page.
    pub(crate) async fn all_pages(&self, first: Url) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let (values, next) = cloud_page(self.get_json(url).await?)?;
            out.extend(values);
            match next {
                Some(next) => url = checked_next(&self.config.api_base, &next)?,
                None => return Ok(out),
            }
        }
        Err(Error::InvalidResponse(format!(
            "more than {MAX_PAGES} pages"
        )))
    }

    pub async fn repository(&self) -> Result<Repository> {
        let v = self.get_json(self.repo_url(&[])?).await?;
        let full_name = parse::string(&v, "/full_name")
            .unwrap_or_else(|| format!("{}/{}", self.config.workspace, self.config.repo));
        Ok(Repository {
            full_name,
            default_branch: parse::string(&v, "/mainbranch/name"),
            id: parse::string(&v, "/uuid"),
        })
    }

    pub async fn list_branches(&self) -> Result<Vec<Branch>> {
        let mut url = self.repo_url(&["refs", "branches"])?;
        url.query_pairs_mut().append_pair("pagelen", "100");
        self.all_pages(url)
            .await?
            .iter()
            .map(|v| {
                parse::branch(
                    parse::string(v, "/name"),
                    v.pointer("/target/hash").and_then(Value::as_str),
                )
            })
            .collect()
    }

    /// Open pull requests, drafts included. Source commits are 12-character abbreviations:
    /// resolve them ([`Self::resolve_commit`]) before treating them as object ids.
    pub async fn list_open_pull_requests(&self) -> Result<Vec<PullRequest>> {
        let mut url = self.repo_url(&["pullrequests"])?;
        url.query_pairs_mut()
            .append_pair("state", "OPEN")
            .append_pair("q", OPEN_PULL_REQUESTS_QUERY)
            .append_pair("pagelen", "50");
        parse::open_pull_requests(IntegrationType::Cloud, self.all_pages(url).await?)
    }

    /// The full id of `rev` (typically a 12-character abbreviation from a payload).
    pub async fn resolve_commit(&self, rev: &str) -> Result<CommitHash> {
        let v = self.get_json(self.repo_url(&["commit", rev])?).await?;
        parse::full_hash(parse::string(&v, "/hash").as_deref())
    }

    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        self.all_pages(self.repo_url(&["hooks"])?)
            .await?
            .iter()
            .map(webhook)
            .collect()
    }

    fn hook_body(spec: &WebhookSpec) -> Value {
        json!({
            "description": spec.description,
            "url": spec.url,
            "active": spec.active,
            "events": spec.events,
            "secret": spec.secret.expose_secret(),
        })
    }

    pub async fn create_webhook(&self, spec: &WebhookSpec) -> Result<Webhook> {
        let body = Self::hook_body(spec);
        let call = Call {
            method: Method::POST,
            url: self.repo_url(&["hooks"])?,
            payload: Payload::Json(&body),
            // A repeated create would register a second hook.
            idempotent: false,
        };
        webhook(&self.call(&call).await?.json()?)
    }

    /// Replaces the webhook's settings, the secret included.
    pub async fn update_webhook(&self, id: &str, spec: &WebhookSpec) -> Result<Webhook> {
        let body = Self::hook_body(spec);
        let call = Call {
            method: Method::PUT,
            url: self.repo_url(&["hooks", id])?,
            payload: Payload::Json(&body),
            idempotent: true,
        };
        webhook(&self.call(&call).await?.json()?)
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<()> {
        let call = Call {
            method: Method::DELETE,
            url: self.repo_url(&["hooks", id])?,
            payload: Payload::Empty,
            idempotent: true,
        };
        self.call(&call).await.map(|_| ())
    }

    pub async fn set_build_status(&self, commit: &CommitHash, status: &BuildStatus) -> Result<()> {
        let mut body = json!({
            "key": status.key,
            "state": status.state.cloud_str(),
            "url": status.url,
        });
        if let Some(name) = &status.name {
            body["name"] = json!(clip(name, 255));
        }
        if let Some(description) = &status.description {
            body["description"] = json!(clip(description, 255));
        }
        let call = Call {
            method: Method::POST,
            url: self.repo_url(&["commit", commit.as_str(), "statuses", "build"])?,
            payload: Payload::Json(&body),
            // The same key overwrites: repeating is harmless.
            idempotent: true,
        };
        self.call(&call).await.map(|_| ())
    }

    /// `{oauth_base}/{workspace}/{repo}.git`, without credentials.
    pub fn git_url(&self) -> Result<Url> {
        let name = format!("{}.git", self.config.repo);
        endpoint(&self.config.oauth_base, &[&self.config.workspace, &name])
    }

    /// `Basic base64(x-token-auth:<access token>)`, how Bitbucket Cloud takes OAuth tokens
    /// over git's HTTPS.
    pub async fn git_auth_header(&self) -> Result<SecretString> {
        let token = self.access_token().await?;
        let raw = format!("x-token-auth:{}", token.expose_secret());
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
        Ok(SecretString::from(format!("Basic {encoded}")))
    }
}

fn webhook(v: &Value) -> Result<Webhook> {
    let id = parse::string(v, "/uuid")
        .ok_or_else(|| Error::InvalidResponse("webhook without uuid".into()))?;
    Ok(Webhook {
        id,
        url: parse::string(v, "/url").unwrap_or_default(),
        description: parse::string(v, "/description").unwrap_or_default(),
        events: parse::strings(v, "/events"),
        active: v.get("active").and_then(Value::as_bool).unwrap_or(true),
        secret_set: v.get("secret_set").and_then(Value::as_bool),
    })
}
