//! Test-side controls of the fake: credentials, pull requests, webhooks, statuses, faults
//! and the request log.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use crate::state::{
    Fault, Flavor, LoggedRequest, PullRecord, PullRequestSpec, RecordedComment, RecordedStatus,
    StoredHook,
};
use crate::FakeBitbucket;

impl FakeBitbucket {
    // ---- credentials ----------------------------------------------------------------------

    /// The OAuth consumer the Cloud token endpoint accepts (default `fake-key`/`fake-secret`).
    pub fn set_consumer(&self, key: &str, secret: &str) {
        self.lock().consumer = (key.to_owned(), secret.to_owned());
    }

    pub fn consumer(&self) -> (String, String) {
        self.lock().consumer.clone()
    }

    /// Lifetime (and `expires_in`) of tokens issued from now on; default 7200 s.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.lock().token_lifetime = Duration::from_secs(secs);
    }

    /// Every issued access token stops working (REST answers 401, git 401).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for expiry in self.lock().tokens.values_mut() {
            *expiry = now;
        }
    }

    /// How many times the token endpoint was called (to test caching).
    pub fn token_requests(&self) -> u64 {
        self.lock().token_requests
    }

    /// Issues a Cloud access token without an HTTP round trip.
    pub fn issue_token(&self) -> String {
        let mut st = self.lock();
        let token = format!("fake-at-direct-{}", st.next_id());
        let expiry = Instant::now() + st.token_lifetime;
        st.tokens.insert(token.clone(), expiry);
        token
    }

    /// Server's HTTP access token (default `fake-server-token`).
    pub fn set_server_token(&self, token: &str) {
        self.lock().server_token = token.to_owned();
    }

    pub fn server_token(&self) -> String {
        self.lock().server_token.clone()
    }

    /// A working `Authorization` value for git: Cloud `Basic x-token-auth:<fresh token>`,
    /// Server `Bearer <token>`.
    pub fn git_authorization(&self) -> String {
        match self.flavor() {
            Flavor::Cloud => {
                let token = self.issue_token();
                let raw = format!("x-token-auth:{token}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            Flavor::Server => format!("Bearer {}", self.server_token()),
        }
    }

    // ---- pull requests --------------------------------------------------------------------

    /// Opens a pull request and returns its id. Commits are read from the branches whenever
    /// it is listed.
    pub fn open_pull_request(&self, spec: PullRequestSpec) -> u64 {
        let mut st = self.lock();
        let id = st.next_id();
        let now = chrono::Utc::now();
        st.pulls.push(PullRecord {
            id,
            spec,
            state: "OPEN".into(),
            created: now,
            updated: now,
        });
        id
    }

    fn edit_pull(&self, id: u64, f: impl FnOnce(&mut PullRecord)) {
        let mut st = self.lock();
        let rec = st
            .pulls
            .iter_mut()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no pull request {id}"));
        f(rec);
        rec.updated = chrono::Utc::now();
    }

    /// `state`: MERGED, DECLINED or SUPERSEDED (or OPEN to reopen).
    pub fn close_pull_request(&self, id: u64, state: &str) {
        let state = state.to_ascii_uppercase();
        self.edit_pull(id, |r| r.state = state);
    }

    pub fn retarget_pull_request(&self, id: u64, target_branch: &str) {
        self.edit_pull(id, |r| r.spec.target_branch = target_branch.to_owned());
    }

    pub fn set_pull_request_draft(&self, id: u64, draft: bool) {
        self.edit_pull(id, |r| r.spec.draft = draft);
    }

    // ---- webhooks and build statuses ------------------------------------------------------

    pub fn webhooks(&self, owner: &str, name: &str) -> Vec<StoredHook> {
        self.lock()
            .hooks
            .get(&(owner.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Seeds a webhook as if someone had registered it; returns its id.
    pub fn add_webhook(
        &self,
        owner: &str,
        name: &str,
        url: &str,
        events: &[&str],
        secret: Option<&str>,
    ) -> String {
        let mut st = self.lock();
        let n = st.next_id();
        let id = match st.flavor {
            Flavor::Cloud => crate::cloud_json::uuid(1 << 40 | n),
            Flavor::Server => n.to_string(),
        };
        let now = chrono::Utc::now().timestamp_millis();
        st.hooks
            .entry((owner.to_owned(), name.to_owned()))
            .or_default()
            .push(StoredHook {
                id: id.clone(),
                url: url.to_owned(),
                description: "seeded".into(),
                events: events.iter().map(|e| (*e).to_owned()).collect(),
                active: true,
                secret: secret.map(str::to_owned),
                created_ms: now,
                updated_ms: now,
            });
        id
    }

    /// Latest status per key for `commit` (full sha).
    pub fn statuses(&self, owner: &str, name: &str, commit: &str) -> Vec<RecordedStatus> {
        self.lock()
            .statuses
            .iter()
            .filter(|s| s.owner == owner && s.repo == name && s.commit == commit)
            .cloned()
            .collect()
    }

    pub fn all_statuses(&self) -> Vec<RecordedStatus> {
        self.lock().statuses.clone()
    }

    // ---- pull-request comments -----------------------------------------------------------

    /// Every comment posted on pull request `pr_id` (deleted ones included), oldest first.
    pub fn comments(&self, pr_id: u64) -> Vec<RecordedComment> {
        self.lock()
            .comments
            .iter()
            .filter(|c| c.pr_id == pr_id)
            .cloned()
            .collect()
    }

    /// Deletes comment `id` as a person would: edits answer 404 from now on.
    pub fn delete_comment(&self, id: u64) {
        if let Some(c) = self.lock().comments.iter_mut().find(|c| c.id == id) {
            c.deleted = true;
        }
    }

    /// Someone else edits comment `id` (Server: its version moves, so a client holding the
    /// old one gets 409).
    pub fn edit_comment_elsewhere(&self, id: u64, text: &str) {
        if let Some(c) = self.lock().comments.iter_mut().find(|c| c.id == id) {
            c.text = text.to_owned();
            c.version += 1;
        }
    }

    /// The next comment post is stored, but answered 502, as when the answer is lost on the
    /// way back: a client that simply posts again leaves two comments.
    pub fn lose_next_comment_answer(&self) {
        self.lock().lose_next_comment_answer = true;
    }

    /// Cloud: the scopes the token endpoint grants (space-separated, as Bitbucket writes
    /// them). The default includes `pullrequest:write`.
    pub fn set_oauth_scopes(&self, scopes: &str) {
        self.lock().scopes = scopes.to_owned();
    }

    // ---- faults, permissions, paging ------------------------------------------------------

    /// Items per page (Cloud `pagelen` cap, Server `limit` cap); default 2.
    pub fn set_page_size(&self, n: usize) {
        self.lock().page_size = n.max(1);
    }

    /// The next `n` REST requests (not OAuth, not git) answer `status`, with `Retry-After`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let mut st = self.lock();
        for _ in 0..n {
            st.faults.push_back(Fault {
                status,
                retry_after,
            });
        }
    }

    /// Every request, git and OAuth included, answers 503 while set.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    /// Delays every REST answer by `latency` (to exercise client timeouts).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// `false`: credentials stay valid but webhook endpoints answer 403.
    pub fn set_webhook_admin(&self, allowed: bool) {
        self.lock().webhook_admin = allowed;
    }

    /// `false`: build-status posts answer 403.
    pub fn set_status_write(&self, allowed: bool) {
        self.lock().status_write = allowed;
    }

    // ---- request log ----------------------------------------------------------------------

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// Logged requests whose path contains `fragment`, e.g. `"/pullrequests"`.
    pub fn requests_to(&self, fragment: &str) -> Vec<LoggedRequest> {
        self.lock()
            .log
            .iter()
            .filter(|r| r.path.contains(fragment))
            .cloned()
            .collect()
    }

    pub fn clear_requests(&self) {
        let mut st = self.lock();
        st.log.clear();
        st.bodies.clear();
    }

    /// JSON bodies sent to REST endpoints, `(path, body)`, oldest first.
    pub fn request_bodies(&self) -> Vec<(String, Value)> {
        self.lock().bodies.clone()
    }
}
