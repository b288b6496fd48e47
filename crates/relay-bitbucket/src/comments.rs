//! Pull-request comments: post one, then edit it in place.
//!
//! Cloud: `POST /2.0/repositories/{w}/{r}/pullrequests/{id}/comments` with
//! `{"content": {"raw": ...}}`, `PUT .../comments/{comment_id}` with the same body. Server:
//! `POST /rest/api/latest/projects/{p}/repos/{r}/pull-requests/{id}/comments` with
//! `{"text": ...}`, `PUT .../comments/{comment_id}` with `{"text", "version"}`; a stale
//! version answers 409, and the comment is read again (`GET`) for its current version.

use reqwest::Method;
use serde_json::{json, Value};

use crate::cloud::CloudClient;
use crate::error::{Error, Result};
use crate::server::ServerClient;
use crate::transport::{Call, Payload};

/// A comment as Bitbucket answered it: its id (Cloud's and Server's are numbers, kept as
/// text) and, on Server, the version the next edit must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedComment {
    pub id: String,
    pub version: Option<i64>,
}

/// Bitbucket Cloud comment texts are limited; Server's too. Far beyond what the relay writes.
const MAX_COMMENT_CHARS: usize = 32_000;

fn posted(v: &Value) -> Result<PostedComment> {
    let id = match v.get("id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(Error::InvalidResponse("comment without an id".into())),
    };
    Ok(PostedComment {
        id,
        version: v.get("version").and_then(Value::as_i64),
    })
}

impl CloudClient {
    pub(crate) async fn post_comment(&self, pr_id: u64, text: &str) -> Result<PostedComment> {
        let body = json!({ "content": { "raw": crate::types::clip(text, MAX_COMMENT_CHARS) } });
        let id = pr_id.to_string();
        let call = Call {
            method: Method::POST,
            url: self.repo_url(&["pullrequests", &id, "comments"])?,
            payload: Payload::Json(&body),
            // A repeated post would leave a second comment.
            idempotent: false,
        };
        posted(&self.call(&call).await?.json()?)
    }

    pub(crate) async fn edit_comment(
        &self,
        pr_id: u64,
        comment_id: &str,
        text: &str,
    ) -> Result<PostedComment> {
        let body = json!({ "content": { "raw": crate::types::clip(text, MAX_COMMENT_CHARS) } });
        let id = pr_id.to_string();
        let call = Call {
            method: Method::PUT,
            url: self.repo_url(&["pullrequests", &id, "comments", comment_id])?,
            payload: Payload::Json(&body),
            idempotent: true,
        };
        posted(&self.call(&call).await?.json()?)
    }
}

impl CloudClient {
    /// The first live comment on pull request `pr_id` whose text `matches`.
    pub(crate) async fn find_comment(
        &self,
        pr_id: u64,
        matches: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<PostedComment>> {
        let id = pr_id.to_string();
        let mut url = self.repo_url(&["pullrequests", &id, "comments"])?;
        url.query_pairs_mut().append_pair("pagelen", "100");
        for v in self.all_pages(url).await? {
            let deleted = v.get("deleted").and_then(Value::as_bool).unwrap_or(false);
            let text = v.pointer("/content/raw").and_then(Value::as_str);
            if !deleted && text.is_some_and(matches) {
                return posted(&v).map(Some);
            }
        }
        Ok(None)
    }
}

impl ServerClient {
    /// The first comment on pull request `pr_id` whose text `matches`, from its activities
    /// (Server has no plain listing of a pull request's general comments).
    pub(crate) async fn find_comment(
        &self,
        pr_id: u64,
        matches: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<PostedComment>> {
        let id = pr_id.to_string();
        let url = self.repo_url(&["pull-requests", &id, "activities"])?;
        for v in self.all_pages(url).await? {
            if v.get("action").and_then(Value::as_str) != Some("COMMENTED") {
                continue;
            }
            let Some(comment) = v.get("comment") else {
                continue;
            };
            if comment
                .get("text")
                .and_then(Value::as_str)
                .is_some_and(matches)
            {
                return posted(comment).map(Some);
            }
        }
        Ok(None)
    }
}

impl ServerClient {
    pub(crate) async fn post_comment(&self, pr_id: u64, text: &str) -> Result<PostedComment> {
        let body = json!({ "text": crate::types::clip(text, MAX_COMMENT_CHARS) });
        let id = pr_id.to_string();
        let call = Call {
            method: Method::POST,
            url: self.repo_url(&["pull-requests", &id, "comments"])?,
            payload: Payload::Json(&body),
            idempotent: false,
        };
        posted(&self.call(&call).await?.json()?)
    }

    /// Edits with `version`; on 409 (someone, or an earlier attempt, edited it since) reads
    /// the comment's current version and tries again, a few times at most.
    pub(crate) async fn edit_comment(
        &self,
        pr_id: u64,
        comment_id: &str,
        version: Option<i64>,
        text: &str,
    ) -> Result<PostedComment> {
        let id = pr_id.to_string();
        let url = self.repo_url(&["pull-requests", &id, "comments", comment_id])?;
        let mut version = match version {
            Some(v) => v,
            None => self.comment_version(url.clone()).await?,
        };
        let mut attempts = 0;
        loop {
            let body = json!({
                "text": crate::types::clip(text, MAX_COMMENT_CHARS),
                "version": version,
            });
            let call = Call {
                method: Method::PUT,
                url: url.clone(),
                payload: Payload::Json(&body),
                idempotent: true,
            };
            match self.call(&call).await {
                Ok(reply) => return posted(&reply.json()?),
                Err(Error::Rejected { status: 409, .. }) if attempts < 3 => {
                    attempts += 1;
                    version = self.comment_version(url.clone()).await?;
                }
                Err(other) => return Err(other),
            }
        }
    }

    async fn comment_version(&self, url: url::Url) -> Result<i64> {
        let v = self.call(&Call::get(url)).await?.json()?;
        v.get("version")
            .and_then(Value::as_i64)
            .ok_or_else(|| Error::InvalidResponse("comment without a version".into()))
    }
}
