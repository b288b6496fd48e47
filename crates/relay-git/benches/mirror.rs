//! Mirror one new commit on one branch of a repository with a long history and thousands of
//! branches, through relay-git, and through the git command line (`git fetch` + `git push`)
//! in the same run; prints medians and the ratio. Run with `cargo bench -p relay-git`.
//! `RELAY_BENCH_COMMITS`, `RELAY_BENCH_BRANCHES`, `RELAY_BENCH_ROUNDS` change the sizes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use relay_git::{Mirror, PushRef, RemoteAccess};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A bare repository with `commits` commits on main and `branches` branches at spread-out
/// points of that history.
fn upstream(dir: &Path, commits: usize, branches: usize) -> std::path::PathBuf {
    let bare = dir.join("upstream.git");
    git(
        dir,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    let mut import = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&bare)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let stdin = import.stdin.as_mut().unwrap();
        for n in 1..=commits {
            let content = format!("line {n}\n");
            write!(
                stdin,
                "commit refs/heads/main\nmark :{n}\ncommitter Bench <b@example.com> {} +0000\ndata {}\ncommit {n}\n",
                1_700_000_000 + n,
                format!("commit {n}\n").len() - 1,
            )
            .unwrap();
            if n > 1 {
                writeln!(stdin, "from :{}", n - 1).unwrap();
            }
            write!(
                stdin,
                "M 644 inline file{}.txt\ndata {}\n{content}\n",
                n % 50,
                content.len()
            )
            .unwrap();
        }
        for b in 0..branches {
            let mark = 1 + (b * 7919) % commits;
            writeln!(stdin, "reset refs/heads/branch-{b}\nfrom :{mark}\n").unwrap();
        }
    }
    assert!(import.wait().unwrap().success());
    git(&bare, &["pack-refs", "--all"]);
    git(&bare, &["gc", "-q"]);
    bare
}

/// Adds one commit on top of `branch` in the bare repository, without a work tree.
fn commit_on(bare: &Path, branch: &str, round: usize) -> String {
    let parent = git(bare, &["rev-parse", &format!("refs/heads/{branch}")]);
    let blob = {
        let mut child = Command::new("git")
            .args(["hash-object", "-w", "--stdin"])
            .current_dir(bare)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(format!("round {round}\n").as_bytes())
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned()
    };
    let tree = {
        let base = git(bare, &["rev-parse", &format!("{parent}^{{tree}}")]);
        let listing = git(bare, &["ls-tree", &base]);
        let mut entries: Vec<String> = listing
            .lines()
            .filter(|l| !l.ends_with("\tround.txt"))
            .map(str::to_owned)
            .collect();
        entries.push(format!("100644 blob {blob}\tround.txt"));
        let mut child = Command::new("git")
            .args(["mktree"])
            .current_dir(bare)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all((entries.join("\n") + "\n").as_bytes())
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned()
    };
    let commit = Command::new("git")
        .args([
            "commit-tree",
            &tree,
            "-p",
            &parent,
            "-m",
            &format!("round {round}"),
        ])
        .current_dir(bare)
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@example.com")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@example.com")
        .output()
        .unwrap();
    let commit = String::from_utf8(commit.stdout).unwrap().trim().to_owned();
    git(
        bare,
        &["update-ref", &format!("refs/heads/{branch}"), &commit],
    );
    commit
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Medians of each half and of the whole, per side.
struct Figures {
    relay: Duration,
    relay_fetch: Duration,
    relay_push: Duration,
    cli: Duration,
    cli_fetch: Duration,
    cli_push: Duration,
}

/// One repository size: upstream, the relay's mirror and a CLI mirror, each with its own
/// deploy remote, all starting as complete copies of upstream.
struct Setup {
    _dir: tempfile::TempDir,
    bare: std::path::PathBuf,
    branches: usize,
    mirror: Mirror,
    upstream_remote: RemoteAccess,
    deploy_relay: RemoteAccess,
    cli_mirror: std::path::PathBuf,
    deploy_cli: std::path::PathBuf,
    samples: [Vec<Duration>; 4],
}

impl Setup {
    fn new(commits: usize, branches: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = upstream(dir.path(), commits, branches);
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("mirrors")).unwrap();
        let relay_mirror_path = data.join("mirrors").join("bench.git");
        let cli_mirror = dir.path().join("cli.git");
        for target in [
            &relay_mirror_path,
            &cli_mirror,
            &dir.path().join("deploy-relay.git"),
            &dir.path().join("deploy-cli.git"),
        ] {
            git(
                dir.path(),
                &[
                    "clone",
                    "-q",
                    "--mirror",
                    bare.to_str().unwrap(),
                    target.to_str().unwrap(),
                ],
            );
        }
        let mirror = Mirror::open(&data, "bench")
            .unwrap()
            .with_default_branch(Some("main"));
        let upstream_remote = RemoteAccess::anonymous(bare.to_str().unwrap());
        let deploy_relay =
            RemoteAccess::anonymous(dir.path().join("deploy-relay.git").to_str().unwrap());
        let deploy_cli = dir.path().join("deploy-cli.git");
        Self {
            bare,
            branches,
            mirror,
            upstream_remote,
            deploy_relay,
            cli_mirror,
            deploy_cli,
            samples: Default::default(),
            _dir: dir,
        }
    }

    /// One new commit on one branch, mirrored by the relay and by the CLI.
    fn round(&mut self, round: usize) {
        let branch = format!("branch-{}", (round * 31) % self.branches.max(1));
        let head = commit_on(&self.bare, &branch, round);
        let reference = format!("refs/heads/{branch}");

        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        let mirrored = self
            .mirror
            .mirror_branch(&self.upstream_remote, &branch, Some(&head), deadline)
            .unwrap();
        let fetched = started.elapsed();
        self.mirror
            .push(
                &self.deploy_relay,
                &[PushRef {
                    src: Some(reference.clone()),
                    dst: reference.clone(),
                }],
                deadline,
            )
            .unwrap();
        self.samples[0].push(fetched);
        self.samples[1].push(started.elapsed() - fetched);
        assert_eq!(mirrored, head);

        let started = Instant::now();
        git(
            &self.cli_mirror,
            &[
                "fetch",
                "-q",
                "--no-tags",
                self.bare.to_str().unwrap(),
                &format!("+{reference}:{reference}"),
            ],
        );
        let fetched = started.elapsed();
        git(
            &self.cli_mirror,
            &[
                "push",
                "-q",
                self.deploy_cli.to_str().unwrap(),
                &format!("+{reference}:{reference}"),
            ],
        );
        self.samples[2].push(fetched);
        self.samples[3].push(started.elapsed() - fetched);
    }

    fn figures(&self) -> Figures {
        let sum = |a: &[Duration], b: &[Duration]| -> Vec<Duration> {
            a.iter().zip(b).map(|(x, y)| *x + *y).collect()
        };
        Figures {
            relay: median(sum(&self.samples[0], &self.samples[1])),
            relay_fetch: median(self.samples[0].clone()),
            relay_push: median(self.samples[1].clone()),
            cli: median(sum(&self.samples[2], &self.samples[3])),
            cli_fetch: median(self.samples[2].clone()),
            cli_push: median(self.samples[3].clone()),
        }
    }
}

fn main() {
    let commits = env_usize("RELAY_BENCH_COMMITS", 20_000);
    let branches = env_usize("RELAY_BENCH_BRANCHES", 5_000);
    let rounds = env_usize("RELAY_BENCH_ROUNDS", 15);
    println!("mirror one new commit on one branch (fetch into the mirror + push to the deploy remote), median of {rounds} rounds");
    println!("history: {commits} commits; the two sizes are measured in alternating rounds");
    let mut few = Setup::new(commits, 10);
    let mut many = Setup::new(commits, branches);
    for round in 0..rounds {
        few.round(round);
        many.round(round);
    }
    let (few, many) = (few.figures(), many.figures());
    for (label, figures) in [
        (format!("{:>5} branches", 10), &few),
        (format!("{branches:>5} branches"), &many),
    ] {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{label}: relay-git {:>6.1} ms (fetch {:>5.1} + push {:>5.1}) | git CLI {:>6.1} ms (fetch {:>5.1} + push {:>5.1}) | relay/CLI ratio {:.2}",
            ms(figures.relay),
            ms(figures.relay_fetch),
            ms(figures.relay_push),
            ms(figures.cli),
            ms(figures.cli_fetch),
            ms(figures.cli_push),
            figures.relay.as_secs_f64() / figures.cli.as_secs_f64(),
        );
    }
    println!(
        "relay-git with {branches} branches vs 10 branches: {:.2}x (1.0 = independent of untouched refs)",
        many.relay.as_secs_f64() / few.relay.as_secs_f64()
    );
    println!(
        "  fetch alone: {:.2}x (relay) vs {:.2}x (git CLI); push alone: {:.2}x (relay) vs {:.2}x (git CLI)",
        many.relay_fetch.as_secs_f64() / few.relay_fetch.as_secs_f64(),
        many.cli_fetch.as_secs_f64() / few.cli_fetch.as_secs_f64(),
        many.relay_push.as_secs_f64() / few.relay_push.as_secs_f64(),
        many.cli_push.as_secs_f64() / few.cli_push.as_secs_f64(),
    );
}
