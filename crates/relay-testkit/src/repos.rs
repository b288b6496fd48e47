//! Bare repositories and commits made without the network, through git plumbing.
//!
//! Commits are written with `hash-object`/`update-index`/`write-tree`/`commit-tree` against a
//! throw-away index, so there is no work tree to keep in sync and the bare repository is the
//! only truth: whatever REST reports is read back from its refs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};

/// Branch a new repository's `HEAD` points at.
pub const DEFAULT_BRANCH: &str = "main";

/// Fixed identity and a clock that ticks one second per commit: runs are reproducible, yet
/// two commits with the same content still differ.
static CLOCK: AtomicI64 = AtomicI64::new(1_700_000_000);

fn git_command(git_dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.env("GIT_DIR", git_dir)
        .env("GIT_AUTHOR_NAME", "Fake Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Fake Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        // Keep the user's and the system's configuration (hooks, signing) out of the fake.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    cmd
}

/// Runs git in `git_dir` and returns trimmed stdout; panics with git's stderr on failure
/// (this is test scaffolding: a failing seed step should stop the test loudly).
pub(crate) fn git(git_dir: &Path, args: &[&str]) -> String {
    git_with(git_dir, args, &[], None)
}

fn git_with(git_dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> String {
    let mut cmd = git_command(git_dir);
    cmd.args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        git_dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Like [`git`] but `None` instead of a panic when git fails (probing refs that may not exist).
pub(crate) fn try_git(git_dir: &Path, args: &[&str]) -> Option<String> {
    let out = git_command(git_dir).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub(crate) fn repo_path(root: &Path, owner: &str, name: &str) -> PathBuf {
    root.join(owner).join(format!("{name}.git"))
}

pub(crate) fn create(root: &Path, owner: &str, name: &str) -> PathBuf {
    let path = repo_path(root, owner, name);
    std::fs::create_dir_all(&path).unwrap();
    let mut init = Command::new("git");
    init.args(["init", "-q", "--bare", "-b", DEFAULT_BRANCH])
        .arg(&path)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    assert!(init.status().unwrap().success(), "git init failed");
    // http-backend refuses pushes unless the repository opts in (or REMOTE_USER is set; be
    // explicit so it does not depend on the CGI environment).
    git(&path, &["config", "http.receivepack", "true"]);
    git(&path, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
    path
}

pub(crate) fn branch_head(git_dir: &Path, branch: &str) -> Option<String> {
    try_git(
        git_dir,
        &[
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}^{{commit}}"),
        ],
    )
    .filter(|s| !s.is_empty())
}

pub(crate) fn default_branch(git_dir: &Path) -> Option<String> {
    try_git(git_dir, &["symbolic-ref", "--short", "HEAD"])
}

/// `(name, full sha)` of every branch, sorted by name as Bitbucket sorts by default.
pub(crate) fn branches(git_dir: &Path) -> Vec<(String, String)> {
    let out = try_git(
        git_dir,
        &[
            "for-each-ref",
            "--sort=refname",
            "--format=%(refname:strip=2) %(objectname)",
            "refs/heads/",
        ],
    )
    .unwrap_or_default();
    out.lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, sha)| (name.to_owned(), sha.to_owned()))
        .collect()
}

/// Full id of the commit `rev` names (an abbreviation, a branch), if it exists.
pub(crate) fn resolve(git_dir: &Path, rev: &str) -> Option<String> {
    if rev.is_empty() || rev.starts_with('-') {
        return None;
    }
    try_git(
        git_dir,
        &["rev-parse", "--verify", "-q", &format!("{rev}^{{commit}}")],
    )
    .filter(|s| s.len() == 40)
}

/// Commits `path` = `content` on `branch`. A new branch starts from the default branch's
/// head (or as a root commit in an empty repository).
pub(crate) fn commit_file(
    git_dir: &Path,
    branch: &str,
    path: &str,
    content: &str,
    message: &str,
) -> String {
    let parent = branch_head(git_dir, branch)
        .or_else(|| default_branch(git_dir).and_then(|b| branch_head(git_dir, &b)));
    let index = tempfile::NamedTempFile::new().unwrap();
    let index_path = index.path().to_str().unwrap().to_owned();
    // An empty file is not a valid index; let git create it.
    std::fs::remove_file(&index_path).unwrap();
    let env = [("GIT_INDEX_FILE", index_path.as_str())];
    match &parent {
        Some(p) => git_with(git_dir, &["read-tree", p], &env, None),
        None => git_with(git_dir, &["read-tree", "--empty"], &env, None),
    };
    let blob = git_with(
        git_dir,
        &["hash-object", "-w", "--stdin"],
        &[],
        Some(content.as_bytes()),
    );
    git_with(
        git_dir,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("100644,{blob},{path}"),
        ],
        &env,
        None,
    );
    let tree = git_with(git_dir, &["write-tree"], &env, None);
    let date = format!("{} +0000", CLOCK.fetch_add(1, Ordering::Relaxed));
    let dates = [
        ("GIT_AUTHOR_DATE", date.as_str()),
        ("GIT_COMMITTER_DATE", date.as_str()),
    ];
    let mut args = vec!["commit-tree", tree.as_str(), "-m", message];
    if let Some(p) = &parent {
        args.extend(["-p", p.as_str()]);
    }
    let commit = git_with(git_dir, &args, &dates, None);
    force_branch(git_dir, branch, &commit);
    commit
}

pub(crate) fn force_branch(git_dir: &Path, branch: &str, sha: &str) {
    git(
        git_dir,
        &["update-ref", &format!("refs/heads/{branch}"), sha],
    );
}

pub(crate) fn delete_branch(git_dir: &Path, branch: &str) {
    git(
        git_dir,
        &["update-ref", "-d", &format!("refs/heads/{branch}")],
    );
}

pub(crate) fn set_default_branch(git_dir: &Path, branch: &str) {
    git(
        git_dir,
        &["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")],
    );
}
