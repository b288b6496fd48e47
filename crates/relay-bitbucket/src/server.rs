//! Bitbucket Server / Data Center REST (`/rest/api/latest`) with an HTTP access token.

use std::fmt;

use relay_core::{CommitHash, IntegrationType, PullRequest};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use url::Url;

use crate::config::{ClientOptions, ServerConfig};
use crate::error::{Error, Result};
use crate::paging::{endpoint, server_page, MAX_PAGES};
use crate::parse;
use crate::transport::{Auth, Call, Payload, Reply, Transport};
use crate::types::{clip, Branch, BuildStatus, Repository, Webhook, WebhookSpec};

pub struct ServerClient {
    config: ServerConfig,
    transport: Transport,
}

impl fmt::Debug for ServerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerClient")
            .field("base_url", &self.config.base_url.as_str())
            .field("project", &self.config.project)
            .field("repo", &self.config.repo)
            .finish_non_exhaustive()
    }
}

impl ServerClient {
    pub fn new(config: ServerConfig, options: &ClientOptions) -> Result<Self> {
        if config.project.is_empty() || config.repo.is_empty() {
            return Err(Error::Config("project and repository are required".into()));
        }
        endpoint(&config.base_url, &[])?;
        Ok(Self {
            transport: Transport::new(options)?,
            config,
        })
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub(crate) fn repo_url(&self, tail: &[&str]) -> Result<Url> {
        let mut segments = vec![
            "rest",
            "api",
            "latest",
            "projects",
            self.config.project.as_str(),
            "repos",
            self.config.repo.as_str(),
        ];
        segments.extend_from_slice(tail);
        endpoint(&self.config.base_url, &segments)
    }

    /// Project and repository HTTP access tokens work only as Bearer, so always send that.
    pub(crate) async fn call(&self, call: &Call<'_>) -> Result<Reply> {
        self.transport
            .execute(call, &Auth::Bearer(&self.config.token))
            .await
    }

    async fn get_json(&self, url: Url) -> Result<Value> {
        self.call(&Call::get(url)).await?.json()
    }

    /// Every `values` entry, page by page until `isLastPage`.
    pub(crate) async fn all_pages(&self, base: Url) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut start: u64 = 0;
        for _ in 0..MAX_PAGES {
            let mut url = base.clone();
            url.query_pairs_mut()
                .append_pair("start", &start.to_string());
            let (values, next) = server_page(self.get_json(url).await?)?;
            out.extend(values);
            match next {
                // A page must move forward, or this would ask for the same page forever.
                Some(next) if next > start => start = next,
                Some(next) => {
                    return Err(Error::InvalidResponse(format!(
                        "nextPageStart {next} does not advance past {start}"
                    )))
                }
                None => return Ok(out),
            }
        }
        Err(Error::InvalidResponse(format!(
            "more than {MAX_PAGES} pages"
        )))
    }

    /// The configured HTTP access token (what git sends as Bearer, too).
    pub fn access_token(&self) -> SecretString {
        self.config.token.clone()
    }

    pub async fn repository(&self) -> Result<Repository> {
        let v = self.get_json(self.repo_url(&[])?).await?;
        let full_name = match (
            parse::string(&v, "/project/key"),
            parse::string(&v, "/slug"),
        ) {
            (Some(project), Some(slug)) => format!("{project}/{slug}"),
            _ => format!("{}/{}", self.config.project, self.config.repo),
        };
        let id = v.get("id").and_then(Value::as_u64).map(|n| n.to_string());
        Ok(Repository {
            full_name,
            default_branch: self.default_branch().await?,
            id,
        })
    }

    /// `default-branch` (Data Center 8+) with a fall back to the older `branches/default`;
    /// an empty repository answers 204 and has none.
    async fn default_branch(&self) -> Result<Option<String>> {
        let reply = match self
            .call(&Call::get(self.repo_url(&["default-branch"])?))
            .await
        {
            Err(Error::NotFound { .. }) => {
                self.call(&Call::get(self.repo_url(&["branches", "default"])?))
                    .await?
            }
            other => other?,
        };
        if reply.status == StatusCode::NO_CONTENT || reply.body.is_empty() {
            return Ok(None);
        }
        let v = reply.json()?;
        Ok(parse::string(&v, "/displayId").or_else(|| {
            parse::string(&v, "/id").map(|id| id.trim_start_matches("refs/heads/").to_owned())
        }))
    }

    pub async fn list_branches(&self) -> Result<Vec<Branch>> {
        let mut url = self.repo_url(&["branches"])?;
        url.query_pairs_mut().append_pair("limit", "100");
        self.all_pages(url)
            .await?
            .iter()
            .map(|v| {
                // `id` is the full ref; `displayId` can be shortened for display.
                let name = parse::string(v, "/id")
                    .and_then(|id| id.strip_prefix("refs/heads/").map(str::to_owned))
                    .or_else(|| parse::string(v, "/displayId"));
                parse::branch(name, v.get("latestCommit").and_then(Value::as_str))
            })
            .collect()
    }

    pub async fn list_open_pull_requests(&self) -> Result<Vec<PullRequest>> {
        let mut url = self.repo_url(&["pull-requests"])?;
        url.query_pairs_mut()
            .append_pair("state", "OPEN")
            .append_pair("limit", "50");
        parse::open_pull_requests(IntegrationType::Server, self.all_pages(url).await?)
    }

    pub async fn resolve_commit(&self, rev: &str) -> Result<CommitHash> {
        let v = self.get_json(self.repo_url(&["commits", rev])?).await?;
        parse::full_hash(parse::string(&v, "/id").as_deref())
    }

    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let mut url = self.repo_url(&["webhooks"])?;
        url.query_pairs_mut().append_pair("limit", "100");
        self.all_pages(url).await?.iter().map(webhook).collect()
    }

    fn hook_body(spec: &WebhookSpec) -> Value {
        json!({
            "name": spec.description,
            "url": spec.url,
            "active": spec.active,
            "events": spec.events,
            "configuration": {"secret": spec.secret.expose_secret()},
        })
    }

    pub async fn create_webhook(&self, spec: &WebhookSpec) -> Result<Webhook> {
        let body = Self::hook_body(spec);
        let call = Call {
            method: Method::POST,
            url: self.repo_url(&["webhooks"])?,
            payload: Payload::Json(&body),
            idempotent: false,
        };
        webhook(&self.call(&call).await?.json()?)
    }

    pub async fn update_webhook(&self, id: &str, spec: &WebhookSpec) -> Result<Webhook> {
        let body = Self::hook_body(spec);
        let call = Call {
            method: Method::PUT,
            url: self.repo_url(&["webhooks", id])?,
            payload: Payload::Json(&body),
            idempotent: true,
        };
        webhook(&self.call(&call).await?.json()?)
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<()> {
        let call = Call {
            method: Method::DELETE,
            url: self.repo_url(&["webhooks", id])?,
            payload: Payload::Empty,
            idempotent: true,
        };
        self.call(&call).await.map(|_| ())
    }

    pub async fn set_build_status(&self, commit: &CommitHash, status: &BuildStatus) -> Result<()> {
        let mut body = json!({
            "key": status.key,
            "state": status.state.server_str(),
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
            url: self.repo_url(&["commits", commit.as_str(), "builds"])?,
            payload: Payload::Json(&body),
            idempotent: true,
        };
        self.call(&call).await.map(|_| ())
    }

    /// `{base_url}/scm/{project}/{repo}.git`, without credentials.
    pub fn git_url(&self) -> Result<Url> {
        let name = format!("{}.git", self.config.repo);
        endpoint(&self.config.base_url, &["scm", &self.config.project, &name])
    }

    pub fn git_auth_header(&self) -> SecretString {
        SecretString::from(format!("Bearer {}", self.config.token.expose_secret()))
    }
}

fn webhook(v: &Value) -> Result<Webhook> {
    let id = match v.get("id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(Error::InvalidResponse("webhook without id".into())),
    };
    Ok(Webhook {
        id,
        url: parse::string(v, "/url").unwrap_or_default(),
        description: parse::string(v, "/name").unwrap_or_default(),
        events: parse::strings(v, "/events"),
        active: v.get("active").and_then(Value::as_bool).unwrap_or(true),
        // Server does not reveal whether (or which) secret is configured.
        secret_set: None,
    })
}
