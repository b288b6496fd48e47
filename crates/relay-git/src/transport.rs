//! The `git` command line: network transfers, and the mirror's housekeeping (repack,
//! commit-graph). Objects, refs and merges stay in git2.
//!
//! libgit2 speaks only protocol v0/v1, where the server advertises every ref and the client
//! offers every local ref in negotiation: measured in `benches/mirror.rs`, mirroring one
//! commit took 10x longer with 1,000 branches than with 10. `git` uses protocol v2, whose
//! `ls-refs` ref-prefix asks for the one ref being mirrored, so a fetch costs the same
//! whatever the number of untouched refs. The child process also gives a hard timeout (it is
//! killed at the deadline), which libgit2 cannot offer while it waits on a dead socket.
//!
//! Credentials travel as `http.extraHeader` through `GIT_CONFIG_*` environment variables
//! (readable only by this user), never in argv, a URL or a config file; prompts and
//! credential helpers are disabled so a refused token fails at once.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use wait_timeout::ChildExt;

use crate::{GitError, RemoteAccess};

/// Fetches `refspec` (`+src:dst`) from `remote` into the repository at `git_dir`.
pub(crate) fn fetch(
    git_dir: &Path,
    remote: &RemoteAccess,
    refspec: &str,
    deadline: Instant,
) -> Result<(), GitError> {
    let output = run(
        git_dir,
        remote,
        &[
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--",
            remote.url(),
            refspec,
        ],
        deadline,
    )?;
    if output.success {
        return Ok(());
    }
    let stderr = output.stderr;
    if stderr.contains("couldn't find remote ref") {
        return Err(GitError::NotFound(format!(
            "{} on {}",
            refspec
                .split(':')
                .next()
                .unwrap_or(refspec)
                .trim_start_matches('+'),
            remote.url()
        )));
    }
    Err(classify(remote.url(), &stderr))
}

/// Pushes `refspecs` to `remote`; a rejected ref fails the push with git's reason.
pub(crate) fn push(
    git_dir: &Path,
    remote: &RemoteAccess,
    refspecs: &[String],
    deadline: Instant,
) -> Result<(), GitError> {
    let mut args = vec!["push", "--porcelain", "--quiet", "--", remote.url()];
    args.extend(refspecs.iter().map(String::as_str));
    let output = run(git_dir, remote, &args, deadline)?;
    // Porcelain lines: "<flag>\t<from>:<to>\t<summary>"; "!" marks a rejected ref.
    let rejected = output
        .stdout
        .lines()
        .find(|line| line.starts_with('!'))
        .map(|line| {
            let mut fields = line.split('\t').skip(1);
            let reference = fields.next().unwrap_or_default().to_owned();
            let summary = fields.next().unwrap_or_default().to_owned();
            (reference, summary)
        });
    if let Some((reference, message)) = rejected {
        return Err(GitError::PushRejected {
            url: remote.url().to_owned(),
            reference,
            message,
        });
    }
    if output.success {
        return Ok(());
    }
    if output.stderr.contains("does not exist") {
        return Err(GitError::PushRejected {
            url: remote.url().to_owned(),
            reference: refspecs.join(" "),
            message: output.stderr.trim().to_owned(),
        });
    }
    Err(classify(remote.url(), &output.stderr))
}

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs a local git command (no network, no credentials) in `git_dir`; whether it succeeded.
pub(crate) fn local(git_dir: &Path, args: &[&str], deadline: Instant) -> Result<bool, GitError> {
    let mut command = command(git_dir, args, None);
    command.stdout(Stdio::null());
    let child = command
        .spawn()
        .map_err(|e| GitError::Git(format!("cannot run git: {e}")))?;
    let output = wait(child, deadline, &git_dir.display().to_string())?;
    if !output.success {
        let repository = git_dir.display().to_string();
        let command = args.first().copied().unwrap_or("");
        let error = output.stderr.trim();
        tracing::warn!(repository, command, error, "git housekeeping failed");
    }
    Ok(output.success)
}

fn run(
    git_dir: &Path,
    remote: &RemoteAccess,
    args: &[&str],
    deadline: Instant,
) -> Result<Output, GitError> {
    let child = command(git_dir, args, remote.authorization_header())
        .spawn()
        .map_err(|e| GitError::Git(format!("cannot run git: {e}")))?;
    wait(child, deadline, remote.url())
}

fn command(git_dir: &Path, args: &[&str], authorization: Option<String>) -> Command {
    let mut config: Vec<(&str, String)> = vec![
        ("protocol.version", "2".into()),
        ("credential.helper", String::new()),
        // A stalled transfer (under 1 KB/s for 30 s) is abandoned before the deadline.
        ("http.lowSpeedLimit", "1000".into()),
        ("http.lowSpeedTime", "30".into()),
        ("core.askPass", "true".into()),
        // Housekeeping belongs to maintenance, not to a job waiting on the network.
        ("gc.auto", "0".into()),
        ("maintenance.auto", "false".into()),
        // A fetch view (fetch_view.rs) borrows the mirror's objects; the mirror's refs stay
        // out of its negotiation and connectivity check.
        ("core.alternateRefsCommand", "true".into()),
    ];
    if let Some(header) = authorization {
        config.push(("http.extraHeader", header));
    }
    let mut command = Command::new("git");
    command
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_COUNT", config.len().to_string())
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (n, (key, value)) in config.iter().enumerate() {
        command
            .env(format!("GIT_CONFIG_KEY_{n}"), key)
            .env(format!("GIT_CONFIG_VALUE_{n}"), value);
    }
    command
}

fn wait(mut child: Child, deadline: Instant, url: &str) -> Result<Output, GitError> {
    // Drain both pipes on threads so a chatty git cannot block on a full pipe.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let remaining = deadline.saturating_duration_since(Instant::now());
    let status = match child.wait_timeout(remaining) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(GitError::Timeout {
                url: url.to_owned(),
            });
        }
        Err(e) => return Err(GitError::Git(format!("waiting for git: {e}"))),
    };
    let collect = |handle: Option<std::thread::JoinHandle<String>>| {
        handle.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(Output {
        success: status.success(),
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

fn classify(url: &str, stderr: &str) -> GitError {
    let url = url.to_owned();
    let lower = stderr.to_lowercase();
    if [
        "authentication failed",
        "could not read username",
        "could not read password",
        "returned error: 401",
        "returned error: 403",
        "invalid credentials",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
    {
        return GitError::Auth { url };
    }
    let message = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("git failed")
        .trim()
        .to_owned();
    if [
        "could not resolve host",
        "failed to connect",
        "connection refused",
        "unable to access",
        "timed out",
        "could not read from remote",
        "operation too slow",
        "does not appear to be a git repository",
        "returned error: 5",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
    {
        return GitError::Network { url, message };
    }
    GitError::Git(message)
}
