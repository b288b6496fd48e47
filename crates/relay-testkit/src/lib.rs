//! Test doubles: a fake Bitbucket (Cloud or Server) on loopback, and a stand-in for the
//! Kubernetes API ([`FakeKubernetes`], for the Argo CD refresh).
//!
//! REST answers in the documented shapes with pagination, OAuth client credentials (Cloud),
//! HTTP access tokens (Server), and git smart HTTP through the real `git http-backend`, all
//! backed by bare repositories on disk so git and REST always agree.
//!
//! ```no_run
//! # async fn demo() {
//! use relay_testkit::{FakeBitbucket, Flavor, PullRequestSpec};
//! let bb = FakeBitbucket::start(Flavor::Cloud).await;
//! bb.create_repo("acme", "widgets");
//! let head = bb.commit_file("acme", "widgets", "main", "README", "hi\n", "init");
//! bb.commit_file("acme", "widgets", "feature", "f.txt", "x\n", "feature work");
//! let pr = bb.open_pull_request(PullRequestSpec::new("acme", "widgets", "feature", "main"));
//! # let _ = (head, pr);
//! # }
//! ```
//!
//! Test-only code: it panics on setup failures instead of returning errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Handlers bail out early with a ready `Response` as the error; boxing it buys nothing here.
#![allow(clippy::result_large_err)]

mod app;
mod cloud;
mod cloud_json;
mod comments;
mod control;
mod git_http;
mod hooks;
pub mod kubernetes;
mod listener;
mod oauth;
mod page;
mod repos;
mod rest;
mod server;
mod state;
mod statuses;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use url::Url;

pub use kubernetes::FakeKubernetes;
pub use repos::DEFAULT_BRANCH;
pub use state::{
    Flavor, LoggedRequest, PullRequestSpec, RecordedComment, RecordedStatus, Role, StoredHook,
};

use app::Shared;
use listener::Listener;
use state::State;

/// A fake Bitbucket on `127.0.0.1`, port chosen by the OS. Dropping it stops the servers and
/// deletes its repositories.
///
/// Handlers run on the test's runtime: drive the `git` CLI through `tokio::process` (or a
/// multi-threaded runtime) so a blocking child does not starve the fake.
pub struct FakeBitbucket {
    flavor: Flavor,
    state: Arc<Mutex<State>>,
    site: Listener,
    /// Cloud's `api.bitbucket.org` role on its own port; `None` for Server.
    api: Option<Listener>,
    site_url: Url,
    api_url: Url,
    _root: tempfile::TempDir,
}

impl FakeBitbucket {
    pub async fn start(flavor: Flavor) -> Self {
        let root = tempfile::tempdir().unwrap();
        let state = Arc::new(Mutex::new(State::new(flavor, root.path().to_path_buf())));
        // Bind before building the routers: responses embed the public addresses.
        let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
        let site_listener = bind().await.unwrap();
        let api_listener = match flavor {
            Flavor::Cloud => Some(bind().await.unwrap()),
            Flavor::Server => None,
        };
        let url_of = |l: &tokio::net::TcpListener| {
            Url::parse(&format!("http://{}", l.local_addr().unwrap())).unwrap()
        };
        let site_url = url_of(&site_listener);
        let api_url = api_listener.as_ref().map_or(site_url.clone(), url_of);
        let shared = |role| Shared {
            state: state.clone(),
            role,
            api_url: api_url.clone(),
            site_url: site_url.clone(),
        };
        let (site, api) = match api_listener {
            Some(api_listener) => (
                Listener::serve(site_listener, cloud::site_router(shared(Role::Site))),
                Some(Listener::serve(
                    api_listener,
                    cloud::api_router(shared(Role::Api)),
                )),
            ),
            None => (
                Listener::serve(site_listener, server::router(shared(Role::Site))),
                None,
            ),
        };
        Self {
            flavor,
            state,
            site,
            api,
            site_url,
            api_url,
            _root: root,
        }
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Cloud: the `bitbucket.org` role (OAuth at `/site/oauth2/access_token`, git at
    /// `/{workspace}/{repo}.git`). Server: the instance's base URL.
    pub fn base_url(&self) -> Url {
        self.site_url.clone()
    }

    /// Cloud: the `api.bitbucket.org` role (REST at `/2.0/...`), a different port from
    /// [`Self::base_url`]. Server: equal to [`Self::base_url`].
    pub fn api_url(&self) -> Url {
        self.api_url.clone()
    }

    /// Clone URL of a repository, without credentials.
    pub fn git_url(&self, owner: &str, name: &str) -> String {
        let base = self.site_url.as_str().trim_end_matches('/');
        match self.flavor {
            Flavor::Cloud => format!("{base}/{owner}/{name}.git"),
            Flavor::Server => format!("{base}/scm/{owner}/{name}.git"),
        }
    }

    /// Directory holding the bare repositories (`{owner}/{name}.git`).
    pub fn root(&self) -> PathBuf {
        self.lock().root.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn repo(&self, owner: &str, name: &str) -> PathBuf {
        repos::repo_path(&self.root(), owner, name)
    }

    /// Refuses connections (`true`) on every port, or listens again (`false`).
    pub async fn set_down(&self, down: bool) {
        for l in std::iter::once(&self.site).chain(self.api.as_ref()) {
            if down {
                l.stop().await;
            } else {
                l.start().await;
            }
        }
    }

    // ---- repositories -------------------------------------------------------------------

    /// Creates the bare repository `{owner}/{name}.git` (HEAD → [`DEFAULT_BRANCH`]), with
    /// pushes over HTTP enabled.
    pub fn create_repo(&self, owner: &str, name: &str) -> PathBuf {
        let path = repos::create(&self.root(), owner, name);
        self.lock().repo_id(owner, name);
        path
    }

    pub fn repo_path(&self, owner: &str, name: &str) -> PathBuf {
        self.repo(owner, name)
    }

    /// Commits `path` = `content` on `branch` and returns the full sha. A new branch starts
    /// from the default branch's head.
    pub fn commit_file(
        &self,
        owner: &str,
        name: &str,
        branch: &str,
        path: &str,
        content: &str,
        message: &str,
    ) -> String {
        repos::commit_file(&self.repo(owner, name), branch, path, content, message)
    }

    /// Points `branch` at `sha` (creating it, or rewriting history as a force-push would).
    pub fn force_branch(&self, owner: &str, name: &str, branch: &str, sha: &str) {
        repos::force_branch(&self.repo(owner, name), branch, sha);
    }

    pub fn delete_branch(&self, owner: &str, name: &str, branch: &str) {
        repos::delete_branch(&self.repo(owner, name), branch);
    }

    pub fn branch_head(&self, owner: &str, name: &str, branch: &str) -> Option<String> {
        repos::branch_head(&self.repo(owner, name), branch)
    }

    /// `(name, full sha)` of every branch, sorted by name.
    pub fn branches(&self, owner: &str, name: &str) -> Vec<(String, String)> {
        repos::branches(&self.repo(owner, name))
    }

    pub fn set_default_branch(&self, owner: &str, name: &str, branch: &str) {
        repos::set_default_branch(&self.repo(owner, name), branch);
    }

    pub fn default_branch(&self, owner: &str, name: &str) -> Option<String> {
        repos::default_branch(&self.repo(owner, name))
    }

    /// Runs `git` with `GIT_DIR` set to the bare repository; returns trimmed stdout.
    pub fn git(&self, owner: &str, name: &str, args: &[&str]) -> String {
        repos::git(&self.repo(owner, name), args)
    }
}

/// Path of a repository below a root, for callers that build their own layouts.
pub fn bare_repo_path(root: &Path, owner: &str, name: &str) -> PathBuf {
    repos::repo_path(root, owner, name)
}
