//! The git side of the relay, synchronous on purpose (git2 is blocking): one bare mirror per
//! integration, branch refs fetched from Bitbucket, pull-request refs (`refs/pull-requests/<id>/from`
//! for the source head and `/merge` for the post-merge result), and pushes of exactly those refs
//! to the deploy remote. Async callers reach it through `spawn_blocking`.
//!
//! Network transfers go through the `git` command line (protocol v2, hard timeouts; see
//! `transport.rs` for the measurements behind that choice); objects, refs and merges are
//! git2. Credentials never touch the repository's configuration or a command line: they
//! travel as an `Authorization` header on each request.

mod error;
mod fetch_view;
mod maintenance;
mod mirror;
mod remote;
mod transport;

pub use error::GitError;
pub use mirror::{Mirror, PrBuild, PrBuildOutcome, PushRef};
pub use remote::RemoteAccess;

/// `refs/heads/<branch>`.
pub fn branch_ref(branch: &str) -> String {
    format!("refs/heads/{branch}")
}

/// The mirror's refs for pull request `id`: source head and post-merge result.
pub fn pull_request_ref(id: u64, merge: bool) -> String {
    format!(
        "refs/pull-requests/{id}/{}",
        if merge { "merge" } else { "from" }
    )
}
