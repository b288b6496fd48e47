//! Real repositories on disk: a "Bitbucket" bare repo, the mirror, a deploy remote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use relay_git::{GitError, Mirror, PrBuild, PrBuildOutcome, PushRef, RemoteAccess};

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A bare "Bitbucket" repository and a work tree that pushes to it.
struct Upstream {
    _dir: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
}

impl Upstream {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("upstream.git");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        let up = Self {
            _dir: dir,
            bare,
            work,
        };
        up.commit("main", "README", "hello\n");
        up
    }

    fn url(&self) -> RemoteAccess {
        RemoteAccess::anonymous(self.bare.to_str().unwrap())
    }

    fn commit(&self, branch: &str, file: &str, content: &str) -> String {
        let exists = git(&self.work, &["branch", "--list", branch]);
        if exists.is_empty() && !git(&self.work, &["branch", "--list"]).is_empty() {
            git(&self.work, &["checkout", "-q", "-b", branch, "main"]);
        } else {
            let _ = Command::new("git")
                .args(["checkout", "-q", branch])
                .current_dir(&self.work)
                .output();
        }
        std::fs::write(self.work.join(file), content).unwrap();
        git(&self.work, &["add", "."]);
        git(
            &self.work,
            &["commit", "-q", "-m", &format!("{file} on {branch}")],
        );
        git(&self.work, &["push", "-q", "-f", "origin", branch]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    fn delete_branch(&self, branch: &str) {
        git(&self.work, &["push", "-q", "origin", &format!(":{branch}")]);
    }

    fn force_to(&self, branch: &str, commit: &str) {
        git(
            &self.work,
            &[
                "push",
                "-q",
                "-f",
                "origin",
                &format!("{commit}:refs/heads/{branch}"),
            ],
        );
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn mirror() -> (tempfile::TempDir, Mirror) {
    let data = tempfile::tempdir().unwrap();
    let mirror = Mirror::open(data.path(), "int1").unwrap();
    (data, mirror)
}

#[test]
fn branches_are_created_updated_force_pushed_and_deleted() {
    let up = Upstream::new();
    let (_data, mirror) = mirror();
    let first = up.commit("feature", "a.txt", "1\n");
    assert_eq!(
        mirror
            .mirror_branch(&up.url(), "feature", Some(&first), deadline())
            .unwrap(),
        first
    );
    assert_eq!(
        mirror.resolve("refs/heads/feature").as_deref(),
        Some(first.as_str())
    );

    let second = up.commit("feature", "a.txt", "2\n");
    assert_eq!(
        mirror
            .mirror_branch(&up.url(), "feature", Some(&second), deadline())
            .unwrap(),
        second
    );

    // History rewritten upstream: the mirror follows.
    up.force_to("feature", &first);
    assert_eq!(
        mirror
            .mirror_branch(&up.url(), "feature", Some(&first), deadline())
            .unwrap(),
        first
    );

    // The planned commit is older than the remote head: the mirror is pinned to the plan.
    let third = up.commit("feature", "a.txt", "3\n");
    assert_eq!(
        mirror
            .mirror_branch(&up.url(), "feature", Some(&first), deadline())
            .unwrap(),
        first
    );
    assert_eq!(
        mirror
            .mirror_branch(&up.url(), "feature", None, deadline())
            .unwrap(),
        third
    );

    up.delete_branch("feature");
    let gone = mirror
        .mirror_branch(&up.url(), "feature", None, deadline())
        .unwrap_err();
    assert!(matches!(gone, GitError::NotFound(_)), "{gone}");
    assert!(mirror.delete_ref("refs/heads/feature").unwrap());
    assert!(
        !mirror.delete_ref("refs/heads/feature").unwrap(),
        "deleting twice is fine"
    );
    assert_eq!(mirror.resolve("refs/heads/feature"), None);
}

#[test]
fn only_the_asked_branch_is_fetched() {
    let up = Upstream::new();
    up.commit("one", "1.txt", "1\n");
    up.commit("two", "2.txt", "2\n");
    let (_data, mirror) = mirror();
    mirror
        .mirror_branch(&up.url(), "one", None, deadline())
        .unwrap();
    assert!(mirror.resolve("refs/heads/one").is_some());
    assert_eq!(mirror.resolve("refs/heads/two"), None);
    assert_eq!(mirror.resolve("refs/tags/anything"), None);
}

#[test]
fn pull_requests_build_the_head_or_the_merge() {
    let up = Upstream::new();
    let source = up.commit("feature", "feature.txt", "new\n");
    let target = up.commit("main", "main.txt", "moved\n");
    let (_data, mirror) = mirror();
    let short = &source[..12];
    let head_only = PrBuild {
        id: 7,
        source_branch: "feature".into(),
        source_commit: short.to_owned(),
        target_branch: "main".into(),
        post_merge: false,
    };
    let outcome = mirror
        .build_pull_request(&up.url(), &up.url(), &head_only, deadline())
        .unwrap();
    assert_eq!(
        outcome,
        PrBuildOutcome::Built {
            head: source.clone(),
            merge: None
        }
    );
    assert_eq!(
        mirror.resolve("refs/pull-requests/7/from").as_deref(),
        Some(source.as_str())
    );

    let merged = PrBuild {
        post_merge: true,
        ..head_only
    };
    let PrBuildOutcome::Built {
        head,
        merge: Some(merge),
    } = mirror
        .build_pull_request(&up.url(), &up.url(), &merged, deadline())
        .unwrap()
    else {
        panic!("expected a merge");
    };
    assert_eq!(head, source);
    assert_eq!(
        mirror.resolve("refs/pull-requests/7/merge").as_deref(),
        Some(merge.as_str())
    );
    let parents = git(mirror.path(), &["rev-list", "--parents", "-n", "1", &merge]);
    assert_eq!(parents, format!("{merge} {target} {source}"));
    let files = git(mirror.path(), &["ls-tree", "--name-only", &merge]);
    assert_eq!(
        files.lines().collect::<Vec<_>>(),
        ["README", "feature.txt", "main.txt"]
    );
}

#[test]
fn a_merge_conflict_names_the_paths_and_writes_nothing() {
    let up = Upstream::new();
    let source = up.commit("feature", "README", "theirs\n");
    up.commit("main", "README", "ours\n");
    let (_data, mirror) = mirror();
    let build = PrBuild {
        id: 3,
        source_branch: "feature".into(),
        source_commit: source,
        target_branch: "main".into(),
        post_merge: true,
    };
    let outcome = mirror
        .build_pull_request(&up.url(), &up.url(), &build, deadline())
        .unwrap();
    assert_eq!(
        outcome,
        PrBuildOutcome::Conflict {
            paths: vec!["README".into()]
        }
    );
    assert_eq!(mirror.resolve("refs/pull-requests/3/merge"), None);
}

#[test]
fn pushes_update_force_and_delete_on_the_deploy_remote() {
    let up = Upstream::new();
    let deploy_dir = tempfile::tempdir().unwrap();
    git(deploy_dir.path(), &["init", "-q", "--bare", "deploy.git"]);
    let deploy = RemoteAccess::anonymous(deploy_dir.path().join("deploy.git").to_str().unwrap());
    let deploy_path = deploy_dir.path().join("deploy.git");
    let (_data, mirror) = mirror();

    let first = up.commit("feature", "a.txt", "1\n");
    mirror
        .mirror_branch(&up.url(), "feature", None, deadline())
        .unwrap();
    let push = |src: Option<&str>, dst: &str| PushRef {
        src: src.map(str::to_owned),
        dst: dst.to_owned(),
    };
    mirror
        .push(
            &deploy,
            &[push(Some("refs/heads/feature"), "refs/heads/feature")],
            deadline(),
        )
        .unwrap();
    assert_eq!(
        git(&deploy_path, &["rev-parse", "refs/heads/feature"]),
        first
    );

    // Rewritten history is force-pushed.
    up.force_to("feature", &git(&up.work, &["rev-parse", "main"]));
    let rewritten = up.commit("feature", "b.txt", "other\n");
    mirror
        .mirror_branch(&up.url(), "feature", None, deadline())
        .unwrap();
    mirror
        .push(
            &deploy,
            &[push(Some("refs/heads/feature"), "refs/heads/feature")],
            deadline(),
        )
        .unwrap();
    assert_eq!(
        git(&deploy_path, &["rev-parse", "refs/heads/feature"]),
        rewritten
    );

    mirror
        .push(&deploy, &[push(None, "refs/heads/feature")], deadline())
        .unwrap();
    assert_eq!(
        git(&deploy_path, &["for-each-ref", "--format=%(refname)"]),
        ""
    );
    // Only what was asked for ever reached the deploy remote.
}

#[test]
fn an_unreachable_remote_is_a_transient_network_error() {
    let (_data, mirror) = mirror();
    let remote = RemoteAccess::anonymous("http://127.0.0.1:9/nothing.git");
    let err = mirror
        .mirror_branch(&remote, "main", None, deadline())
        .unwrap_err();
    assert!(matches!(err, GitError::Network { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[test]
fn an_unwritable_data_dir_fails_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let blocker = data.path().join("mirrors");
    std::fs::write(&blocker, "not a directory").unwrap();
    let err = Mirror::open(data.path(), "int1").err().unwrap();
    assert!(matches!(err, GitError::Storage { .. }), "{err:?}");
}

#[test]
fn credentials_leave_the_url() {
    let remote =
        RemoteAccess::from_url_with_userinfo("https://deploy:s3cret@git.example.com/app.git");
    assert_eq!(remote.url(), "https://git.example.com/app.git");
    assert!(!format!("{remote:?}").contains("s3cret"));
}

/// Mirrors `branch` pinned at `commit` and checks the mirror ends up there.
fn assert_mirrored(mirror: &Mirror, up: &Upstream, branch: &str, commit: &str) {
    assert_eq!(
        mirror
            .mirror_branch(&up.url(), branch, Some(commit), deadline())
            .unwrap(),
        commit
    );
}

/// Fetches go through a view of the mirror that holds only the ref being fetched and its
/// anchors; what arrives ends up in the mirror itself, and a ref left in the view by an
/// interrupted fetch neither shadows the mirror's value nor survives the next fetch.
#[test]
fn fetches_land_in_the_mirror_and_leave_the_view_clean() {
    let up = Upstream::new();
    let (_data, mirror) = mirror();
    let mirror = mirror.with_default_branch(Some("main"));
    let main = up.commit("main", "m.txt", "1\n");
    assert_eq!(
        mirror
            .mirror_branch(&up.url(), "main", None, deadline())
            .unwrap(),
        main
    );
    let first = up.commit("feature", "a.txt", "1\n");
    assert_mirrored(&mirror, &up, "feature", &first);
    let view = mirror.path().join("relay-fetch");
    assert!(std::fs::read_dir(view.join("objects/pack"))
        .unwrap()
        .next()
        .is_none());

    // An interrupted fetch left a stale loose ref behind.
    std::fs::create_dir_all(view.join("refs/heads")).unwrap();
    std::fs::write(view.join("refs/heads/feature"), format!("{main}\n")).unwrap();
    let second = up.commit("feature", "a.txt", "2\n");
    assert_mirrored(&mirror, &up, "feature", &second);
    // A leftover ref whose name is a prefix of the next one's does not block it.
    up.delete_branch("feature");
    git(&up.work, &["checkout", "-q", "main"]);
    git(&up.work, &["branch", "-q", "-D", "feature"]);
    mirror.delete_ref("refs/heads/feature").unwrap();
    std::fs::write(view.join("refs/heads/feature"), format!("{main}\n")).unwrap();
    let nested = up.commit("feature/sub", "b.txt", "1\n");
    assert_mirrored(&mirror, &up, "feature/sub", &nested);

    // The objects are the mirror's own: a fresh clone of it has the new commit.
    let check = tempfile::tempdir().unwrap();
    git(
        check.path(),
        &[
            "clone",
            "-q",
            "--bare",
            mirror.path().to_str().unwrap(),
            "copy.git",
        ],
    );
    assert_eq!(
        git(
            &check.path().join("copy.git"),
            &["rev-parse", "refs/heads/feature/sub"]
        ),
        nested
    );
    git(mirror.path(), &["cat-file", "-e", &second]);
    git(
        mirror.path(),
        &["fsck", "--no-progress", "--connectivity-only"],
    );
}

/// Housekeeping rolls many small packs up and writes a commit-graph, so lookups and
/// ancestry walks stay cheap as fetches pile up.
#[test]
fn many_fetches_are_rolled_up_by_housekeeping() {
    let up = Upstream::new();
    let (_data, mirror) = mirror();
    let mut head = String::new();
    for n in 0..24 {
        // Enough objects per round that each fetch keeps a pack of its own.
        for f in 0..110 {
            std::fs::write(up.work.join(format!("f{f}.txt")), format!("{n} {f}\n")).unwrap();
        }
        head = up.commit("main", "round.txt", &format!("{n}\n"));
        mirror
            .mirror_branch(&up.url(), "main", Some(&head), deadline())
            .unwrap();
        mirror.housekeep(Duration::from_secs(30));
    }
    let packs = std::fs::read_dir(mirror.path().join("objects/pack"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .count();
    assert!(packs <= 16, "{packs} packs left");
    assert!(
        mirror.path().join("objects/info/commit-graphs").exists()
            || mirror.path().join("objects/info/commit-graph").exists()
    );
    assert_eq!(mirror.resolve("refs/heads/main"), Some(head));
    git(
        mirror.path(),
        &["fsck", "--no-progress", "--connectivity-only"],
    );
}
