//! One bare mirror per integration.

use std::path::{Path, PathBuf};
use std::time::Instant;

use git2::{Oid, Repository};

use crate::fetch_view::FetchView;
use crate::{GitError, RemoteAccess};

pub struct Mirror {
    repo: Repository,
    path: PathBuf,
    default_branch: Option<String>,
}

/// A ref to push: `src` is a local ref (force-pushed), or `None` to delete `dst` remotely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRef {
    pub src: Option<String>,
    pub dst: String,
}

/// What to build for a pull request.
#[derive(Debug, Clone)]
pub struct PrBuild {
    pub id: u64,
    pub source_branch: String,
    /// Full or abbreviated (Bitbucket Cloud gives 12 characters).
    pub source_commit: String,
    pub target_branch: String,
    pub post_merge: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrBuildOutcome {
    /// `head` is the source commit; `merge` the post-merge commit when asked for.
    Built { head: String, merge: Option<String> },
    /// The source does not merge cleanly into the target; nothing was written.
    Conflict { paths: Vec<String> },
}

impl Mirror {
    /// Opens the mirror of `integration_id` under `data_dir`, creating it on first use.
    pub fn open(data_dir: &Path, integration_id: &str) -> Result<Self, GitError> {
        let path = data_dir
            .join("mirrors")
            .join(format!("{integration_id}.git"));
        let storage = |e: &dyn std::fmt::Display| GitError::Storage {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let repo = if path.join("HEAD").exists() {
            Repository::open_bare(&path).map_err(|e| storage(&e.message()))?
        } else {
            std::fs::create_dir_all(&path).map_err(|e| storage(&e))?;
            Repository::init_bare(&path).map_err(|e| storage(&e.message()))?
        };
        Ok(Self {
            repo,
            path,
            default_branch: None,
        })
    }

    /// The repository's default branch, which fetches use as common ground with Bitbucket.
    pub fn with_default_branch(mut self, branch: Option<&str>) -> Self {
        self.default_branch = branch.map(str::to_owned);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The commit a local ref points at.
    pub fn resolve(&self, reference: &str) -> Option<String> {
        self.repo
            .refname_to_id(reference)
            .ok()
            .map(|oid| oid.to_string())
    }

    /// Fetches `refs/heads/<branch>` into the same local ref and, when `commit` is given and
    /// present, pins the ref there (the relay mirrors what it decided, and the next push
    /// event moves it on). Returns the commit the local ref points at.
    pub fn mirror_branch(
        &self,
        remote: &RemoteAccess,
        branch: &str,
        commit: Option<&str>,
        deadline: Instant,
    ) -> Result<String, GitError> {
        let local = crate::branch_ref(branch);
        self.fetch_one(remote, &local, &local, &self.anchors(None), deadline)?;
        let fetched = self
            .repo
            .refname_to_id(&local)
            .map_err(|_| GitError::NotFound(format!("branch {branch} on {}", remote.url())))?;
        let pinned = match commit.and_then(|c| self.find_commit(c)) {
            Some(oid) if oid != fetched => {
                self.repo
                    .reference(&local, oid, true, "relay: pin to the planned commit")?;
                oid
            }
            _ => fetched,
        };
        Ok(pinned.to_string())
    }

    /// Fetches the pull request's source into `refs/pull-requests/<id>/from` and, with
    /// post-merge, merges it into the current target head as `refs/pull-requests/<id>/merge`.
    pub fn build_pull_request(
        &self,
        source: &RemoteAccess,
        target: &RemoteAccess,
        build: &PrBuild,
        deadline: Instant,
    ) -> Result<PrBuildOutcome, GitError> {
        let from_ref = crate::pull_request_ref(build.id, false);
        self.fetch_one(
            source,
            &crate::branch_ref(&build.source_branch),
            &from_ref,
            &self.anchors(Some(&build.target_branch)),
            deadline,
        )?;
        let fetched = self.repo.refname_to_id(&from_ref).map_err(|_| {
            GitError::NotFound(format!(
                "branch {} on {}",
                build.source_branch,
                source.url()
            ))
        })?;
        // The payload's (possibly abbreviated) commit wins when it is there; otherwise the
        // branch moved on and a newer event will follow, so the fetched head is built.
        let head = match self.find_commit(&build.source_commit) {
            Some(oid) if oid != fetched => {
                self.repo
                    .reference(&from_ref, oid, true, "relay: pull request head")?;
                oid
            }
            _ => fetched,
        };
        if !build.post_merge {
            return Ok(PrBuildOutcome::Built {
                head: head.to_string(),
                merge: None,
            });
        }
        let target_ref = crate::branch_ref(&build.target_branch);
        self.fetch_one(
            target,
            &target_ref,
            &target_ref,
            &self.anchors(None),
            deadline,
        )?;
        let target_oid = self.repo.refname_to_id(&target_ref).map_err(|_| {
            GitError::NotFound(format!(
                "branch {} on {}",
                build.target_branch,
                target.url()
            ))
        })?;
        self.merge_into_target(build, target_oid, head)
    }

    /// Merges the pull request's `head` into the target's `target_oid` as a real merge commit
    /// under `refs/pull-requests/<id>/merge`, or reports the conflicting paths.
    fn merge_into_target(
        &self,
        build: &PrBuild,
        target_oid: git2::Oid,
        head: git2::Oid,
    ) -> Result<PrBuildOutcome, GitError> {
        let ours = self.repo.find_commit(target_oid)?;
        let theirs = self.repo.find_commit(head)?;
        let mut index = self.repo.merge_commits(&ours, &theirs, None)?;
        if index.has_conflicts() {
            let mut paths: Vec<String> = index
                .conflicts()?
                .filter_map(Result::ok)
                .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
                .collect();
            paths.sort();
            paths.dedup();
            return Ok(PrBuildOutcome::Conflict { paths });
        }
        let tree = self.repo.find_tree(index.write_tree_to(&self.repo)?)?;
        let signature = git2::Signature::now("Bitbucket Relay", "relay@localhost")?;
        let message = format!(
            "Merge {} into {} (pull request #{})",
            build.source_branch, build.target_branch, build.id
        );
        let parents = [&ours, &theirs];
        let merge = self
            .repo
            .commit(None, &signature, &signature, &message, &tree, &parents)?;
        self.repo.reference(
            &crate::pull_request_ref(build.id, true),
            merge,
            true,
            "relay: post-merge build",
        )?;
        Ok(PrBuildOutcome::Built {
            head: head.to_string(),
            merge: Some(merge.to_string()),
        })
    }

    /// Deletes a local ref; a missing ref counts as done. Returns whether it existed.
    pub fn delete_ref(&self, name: &str) -> Result<bool, GitError> {
        match self.repo.find_reference(name) {
            Ok(mut reference) => {
                reference.delete()?;
                Ok(true)
            }
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Pushes `refs` to `remote`: updates are forced (a mirror follows rewritten history),
    /// `src: None` deletes. Every rejected ref fails the push.
    pub fn push(
        &self,
        remote: &RemoteAccess,
        refs: &[PushRef],
        deadline: Instant,
    ) -> Result<(), GitError> {
        if refs.is_empty() {
            return Ok(());
        }
        let specs: Vec<String> = refs
            .iter()
            .map(|r| match &r.src {
                Some(src) => format!("+{src}:{}", r.dst),
                None => format!(":{}", r.dst),
            })
            .collect();
        crate::transport::push(&self.path, remote, &specs, deadline)
    }

    /// Fetches `remote_ref` into `local_ref` through a [`FetchView`] holding `local_ref` and
    /// `anchors` (refs the new commits most likely build on), so the fetch costs the same
    /// whatever the number of other refs in the mirror; then sets `local_ref` in the mirror.
    fn fetch_one(
        &self,
        remote: &RemoteAccess,
        remote_ref: &str,
        local_ref: &str,
        anchors: &[String],
        deadline: Instant,
    ) -> Result<(), GitError> {
        let mut refs: Vec<(String, Oid)> = Vec::new();
        for name in std::iter::once(local_ref).chain(anchors.iter().map(String::as_str)) {
            if let Ok(oid) = self.repo.refname_to_id(name) {
                refs.push((name.to_owned(), oid));
            }
        }
        let view = FetchView::prepare(&self.path, &refs)?;
        crate::transport::fetch(
            view.path(),
            remote,
            &format!("+{remote_ref}:{local_ref}"),
            deadline,
        )?;
        let fetched = view
            .adopt_into(&self.path, local_ref)?
            .ok_or_else(|| GitError::NotFound(format!("{remote_ref} on {}", remote.url())))?;
        self.repo
            .reference(local_ref, fetched, true, "relay: fetch")?;
        Ok(())
    }

    /// The refs a fetch offers as common ground besides the ref it updates: `extra` and the
    /// default branch (what new branches fork from; `main` and `master` when unknown).
    fn anchors(&self, extra: Option<&str>) -> Vec<String> {
        let mut anchors: Vec<String> = extra.map(crate::branch_ref).into_iter().collect();
        match &self.default_branch {
            Some(branch) => anchors.push(crate::branch_ref(branch)),
            None => anchors.extend(["refs/heads/main".into(), "refs/heads/master".into()]),
        }
        anchors
    }

    /// Repacks and refreshes the commit-graph once enough has piled up since the last time;
    /// meant for the end of a job, after its push, and given at most `budget`. Failures are
    /// logged and left for next time: they never fail the job.
    pub fn housekeep(&self, budget: std::time::Duration) {
        if crate::maintenance::needed(&self.path) {
            crate::maintenance::run(&self.path, Instant::now() + budget);
        }
    }

    /// A commit from a full or abbreviated hash, if the mirror has it.
    fn find_commit(&self, hash: &str) -> Option<Oid> {
        if hash.len() == 40 {
            let oid = Oid::from_str(hash).ok()?;
            return self.repo.find_commit(oid).ok().map(|c| c.id());
        }
        self.repo
            .revparse_single(hash)
            .ok()?
            .peel_to_commit()
            .ok()
            .map(|c| c.id())
    }
}
