//! Everything the fake remembers between requests. One `std::sync::Mutex` guards it: handlers
//! never hold the lock across an `.await`, so contention is a non-issue at test scale.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Which Bitbucket product the fake imitates: the relay's own product enum, under the name
/// the fake's callers know it by.
pub use relay_core::IntegrationType as Flavor;

/// Which of the fake's addresses a request reached. Cloud splits `bitbucket.org` (OAuth,
/// git) from `api.bitbucket.org` (REST) onto two ports, so a client that mixes them up fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Cloud's `bitbucket.org`, or the whole Server instance.
    Site,
    /// Cloud's `api.bitbucket.org`.
    Api,
}

/// One request as the fake saw it, for assertions about what a client called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub role: Role,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The `Authorization` header verbatim (tests own the credentials, so nothing leaks).
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    /// The status the fake answered with.
    pub status: u16,
}

/// A pull request as test data; branches and commits are read from the bare repos when the
/// pull request is listed, so REST and git always agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestSpec {
    pub owner: String,
    pub repo: String,
    pub source_branch: String,
    pub target_branch: String,
    pub title: String,
    pub draft: bool,
    /// `(owner, repo)` of a fork the source branch lives in; `None` for the same repository.
    pub source_repo: Option<(String, String)>,
}

impl PullRequestSpec {
    pub fn new(owner: &str, repo: &str, source: &str, target: &str) -> Self {
        Self {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            source_branch: source.to_owned(),
            target_branch: target.to_owned(),
            title: format!("{source} into {target}"),
            draft: false,
            source_repo: None,
        }
    }

    pub fn draft(mut self) -> Self {
        self.draft = true;
        self
    }

    pub fn from_fork(mut self, owner: &str, repo: &str) -> Self {
        self.source_repo = Some((owner.to_owned(), repo.to_owned()));
        self
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PullRecord {
    pub id: u64,
    pub spec: PullRequestSpec,
    /// Upper case as Bitbucket spells it: OPEN, MERGED, DECLINED, SUPERSEDED.
    pub state: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub updated: chrono::DateTime<chrono::Utc>,
}

/// A repository webhook as stored by the fake (both flavours share it).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHook {
    /// Cloud: `{uuid}` with braces; Server: the numeric id as text.
    pub id: String,
    pub url: String,
    /// Cloud `description`, Server `name`.
    pub description: String,
    pub events: Vec<String>,
    pub active: bool,
    pub secret: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A build status a client posted, latest write per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedStatus {
    pub owner: String,
    pub repo: String,
    pub commit: String,
    pub key: String,
    pub state: String,
    pub url: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// How many times this key was written for this commit.
    pub writes: u32,
}

/// A pull-request comment a client posted, with its edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedComment {
    pub owner: String,
    pub repo: String,
    pub pr_id: u64,
    pub id: u64,
    /// The latest text.
    pub text: String,
    /// Server's version: 0 when posted, one more per edit.
    pub version: u64,
    pub edits: u32,
    /// Deleted through [`crate::FakeBitbucket::delete_comment`] (as a person would).
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Fault {
    pub status: u16,
    pub retry_after: Option<u64>,
}

pub(crate) struct State {
    pub flavor: Flavor,
    pub root: PathBuf,
    pub page_size: usize,
    pub consumer: (String, String),
    pub token_lifetime: Duration,
    pub tokens: HashMap<String, Instant>,
    pub token_requests: u64,
    pub server_token: String,
    pub faults: VecDeque<Fault>,
    pub unavailable: bool,
    /// Added before every REST answer (timeouts).
    pub latency: Duration,
    pub webhook_admin: bool,
    pub status_write: bool,
    pub log: Vec<LoggedRequest>,
    pub pulls: Vec<PullRecord>,
    pub hooks: BTreeMap<(String, String), Vec<StoredHook>>,
    pub statuses: Vec<RecordedStatus>,
    pub comments: Vec<RecordedComment>,
    /// The next comment post is stored but answered 502.
    pub lose_next_comment_answer: bool,
    /// Cloud: the OAuth consumer's scopes, as the token response names them.
    pub scopes: String,
    /// JSON bodies clients sent to REST endpoints, `(path, body)`, oldest first.
    pub bodies: Vec<(String, Value)>,
    pub next_id: u64,
    pub repo_ids: HashMap<(String, String), u64>,
}

impl State {
    pub(crate) fn new(flavor: Flavor, root: PathBuf) -> Self {
        Self {
            flavor,
            root,
            page_size: 2,
            consumer: ("fake-key".into(), "fake-secret".into()),
            token_lifetime: Duration::from_secs(7200),
            tokens: HashMap::new(),
            token_requests: 0,
            server_token: "fake-server-token".into(),
            faults: VecDeque::new(),
            unavailable: false,
            latency: Duration::ZERO,
            webhook_admin: true,
            status_write: true,
            log: Vec::new(),
            pulls: Vec::new(),
            hooks: BTreeMap::new(),
            statuses: Vec::new(),
            comments: Vec::new(),
            lose_next_comment_answer: false,
            scopes: "pullrequest:write pullrequest webhook repository:write repository".into(),
            bodies: Vec::new(),
            next_id: 1,
            repo_ids: HashMap::new(),
        }
    }

    /// Ids for pull requests and Server webhooks. Global rather than per repository:
    /// unique ids are still valid per-repository ids and tests need no repository to close one.
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Stable numeric identity of a repository (Server `id`, the tail of Cloud's `uuid`).
    pub(crate) fn repo_id(&mut self, owner: &str, name: &str) -> u64 {
        let next = self.repo_ids.len() as u64 + 1;
        *self
            .repo_ids
            .entry((owner.to_owned(), name.to_owned()))
            .or_insert(next)
    }

    /// A Cloud access token that was issued and has not expired.
    pub(crate) fn cloud_token_valid(&self, token: &str) -> bool {
        self.tokens
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }
}
