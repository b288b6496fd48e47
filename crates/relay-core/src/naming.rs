//! Environment names.
//!
//! An environment name is used as a DNS label and a URL component (`environment_url`
//! templates such as `https://{environment}.preview.example.com`), so it is 1 to 63
//! characters of `a-z`, `0-9` and `-`, neither starting nor ending with `-`.
//!
//! **The rule.**
//!
//! 1. Pull request *N* is always `pr-N`. Names of the form `pr-<digits>` belong to pull
//!    requests and are never given to a branch.
//! 2. A branch whose name already is a valid environment name (lowercase letters, digits and
//!    single inner dashes, at most 63 characters) and is not of the form `pr-<digits>` keeps
//!    its name: `main` → `main`, `release-2` → `release-2`.
//! 3. Any other branch gets *sanitized prefix* `-` *hash*: the prefix is the branch name
//!    lowercased, every run of other characters replaced by one `-`, leading and trailing
//!    `-` removed, cut to 54 characters (and trailing `-` removed again); the hash is the
//!    first 8 hex digits of the SHA-256 of the exact branch name. If the prefix is empty or
//!    is `pr`, it is `branch` instead. So `feature/Login` → `feature-login-<8 hex>`,
//!    `PR-12` → `pr-12-<8 hex>`, `日本` → `branch-<8 hex>`. Because the hash is taken over
//!    the original name, two branches that sanitize alike (`feature/x`, `Feature_X`) still
//!    get different names, and the name never changes while the branch exists.
//! 4. Collisions are checked against the stored environments: an environment keeps the name
//!    it was given, and a new branch whose name from rules 2–3 is already owned by another
//!    branch's environment (possible only if a branch is literally named like another's
//!    hashed name, or on a hash collision) takes the next free of: the hashed form with the
//!    following 8-hex windows of the same SHA-256, then the hashed form with `-2`, `-3`, ….
//!    The outcome depends only on the branch and the stored rows, so it is deterministic.

use sha2::{Digest, Sha256};

use crate::environment::{Environment, EnvironmentKind};

/// Longest DNS label.
pub const MAX_LEN: usize = 63;
const HASH_LEN: usize = 8;
/// Room left for the prefix in the hashed form (`<prefix>-<8 hex>`).
const PREFIX_LEN: usize = MAX_LEN - HASH_LEN - 1;

/// `pr-<id>`: the name of pull request `id`'s environment.
pub fn pull_request_environment_name(id: u64) -> String {
    format!("pr-{id}")
}

/// Whether `name` has the reserved pull-request form `pr-<digits>`.
pub fn is_reserved(name: &str) -> bool {
    name.strip_prefix("pr-")
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `name` is a syntactically valid environment name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Lowercases, turns every run of characters outside `a-z0-9` into one `-`, and trims `-`
/// from both ends. Not length-limited.
pub fn sanitize(branch: &str) -> String {
    let mut out = String::with_capacity(branch.len());
    for c in branch.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The name rules 1–3 give `branch`, before looking at stored environments.
pub fn preferred_name(branch: &str) -> String {
    if is_valid_name(branch) && !is_reserved(branch) && !branch.contains("--") {
        branch.to_owned()
    } else {
        hashed_name(branch, 0)
    }
}

/// The environment name for `branch` given the stored environments (rule 4): the name of
/// the environment that already follows the branch, else the first candidate nobody owns.
pub fn environment_name(branch: &str, environments: &[Environment]) -> String {
    if let Some(existing) = environments.iter().find(|e| e.follows_branch(branch)) {
        return existing.name.clone();
    }
    let free = |name: &str| !environments.iter().any(|e| e.name == name);
    let preferred = preferred_name(branch);
    if free(&preferred) {
        return preferred;
    }
    let windows = Sha256::digest(branch.as_bytes()).len() * 2 / HASH_LEN;
    if let Some(name) = (0..windows)
        .map(|w| hashed_name(branch, w))
        .find(|name| free(name))
    {
        return name;
    }
    let base = hashed_name(branch, 0);
    let base = trim_to(&base, MAX_LEN - 8);
    (2u64..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| free(name))
        .unwrap_or(base)
}

/// `<prefix>-<8 hex>` using the `window`-th group of 8 hex digits of SHA-256(branch).
fn hashed_name(branch: &str, window: usize) -> String {
    let digest = hex::encode(Sha256::digest(branch.as_bytes()));
    let start = (window * HASH_LEN).min(digest.len() - HASH_LEN);
    let hash = &digest[start..start + HASH_LEN];
    let prefix = trim_to(&sanitize(branch), PREFIX_LEN);
    // "pr-<hex>" could be all digits and look reserved; "branch" keeps it apart.
    let prefix = if prefix.is_empty() || prefix == "pr" {
        "branch".to_owned()
    } else {
        prefix
    };
    format!("{prefix}-{hash}")
}

/// Cuts an ASCII name to `max` bytes and removes the dashes the cut may leave at the end.
fn trim_to(name: &str, max: usize) -> String {
    let mut cut: String = name.chars().take(max).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    cut
}

/// Whether stored `environments` give one name to two environments, or a branch a reserved
/// name: a consistency check for tests and for `integration:validate`.
pub fn find_conflicts(environments: &[Environment]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, env) in environments.iter().enumerate() {
        if environments[..i].iter().any(|e| e.name == env.name) {
            problems.push(format!("environment name {:?} is used twice", env.name));
        }
        if env.kind != EnvironmentKind::PullRequest && is_reserved(&env.name) {
            problems.push(format!(
                "branch environment uses reserved name {:?}",
                env.name
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::EnvironmentStatus;

    fn branch_env(name: &str, branch: &str) -> Environment {
        Environment {
            name: name.into(),
            kind: EnvironmentKind::Branch,
            parent: None,
            status: EnvironmentStatus::Inactive,
            branch: Some(branch.into()),
            head_commit: None,
            pr: None,
            last_activity_ms: None,
            waiting: None,
        }
    }

    #[test]
    fn valid_names_are_kept() {
        for b in ["main", "release-2", "a", "x1-y2", &"a".repeat(63)] {
            assert_eq!(preferred_name(b), b);
        }
    }

    #[test]
    fn altered_names_get_a_hash() {
        let cases = [
            ("feature/Login", "feature-login-"),
            ("PR-12", "pr-12-"),
            ("pr-12", "pr-12-"),
            ("PR", "branch-"),
            ("pr_", "branch-"),
            ("日本", "branch-"),
            ("a--b", "a-b-"),
            ("-lead", "lead-"),
        ];
        for (branch, prefix) in cases {
            let name = preferred_name(branch);
            assert!(name.starts_with(prefix), "{branch} -> {name}");
            assert_eq!(name.len(), prefix.len() + HASH_LEN, "{branch} -> {name}");
            assert!(
                is_valid_name(&name) && !is_reserved(&name),
                "{branch} -> {name}"
            );
        }
        let long = "x".repeat(64);
        let name = preferred_name(&long);
        assert_eq!(name.len(), MAX_LEN);
        assert_ne!(preferred_name("feature/x"), preferred_name("Feature_X"));
        assert_eq!(preferred_name("feature/x"), preferred_name("feature/x"));
    }

    #[test]
    fn reserved_form() {
        assert!(is_reserved("pr-1") && is_reserved("pr-0042"));
        assert!(!is_reserved("pr-") && !is_reserved("pr-1a") && !is_reserved("pr-1-2"));
        assert_eq!(pull_request_environment_name(7), "pr-7");
    }

    #[test]
    fn collisions_are_resolved_against_stored_rows() {
        let victim = preferred_name("feature/x");
        // A branch literally named like feature/x's hashed name got there first.
        let envs = vec![branch_env(&victim, &victim)];
        let name = environment_name("feature/x", &envs);
        assert_ne!(name, victim);
        assert!(is_valid_name(&name));
        // And the owner keeps its own.
        assert_eq!(environment_name(&victim, &envs), victim);
        // Deterministic.
        assert_eq!(environment_name("feature/x", &envs), name);
        // A name already given to the branch is reused even if the rule changed.
        let envs = vec![branch_env("legacy", "feature/x")];
        assert_eq!(environment_name("feature/x", &envs), "legacy");
    }

    #[test]
    fn exhausted_windows_fall_back_to_counters() {
        let mut envs: Vec<Environment> = (0..8)
            .map(|w| branch_env(&hashed_name("b/x", w), &format!("other{w}")))
            .collect();
        let name = environment_name("b/x", &envs);
        assert!(name.ends_with("-2"), "{name}");
        envs.push(branch_env(&name, "other-again"));
        assert!(environment_name("b/x", &envs).ends_with("-3"));
    }

    #[test]
    fn conflicts_are_reported() {
        let envs = vec![
            branch_env("a", "a"),
            branch_env("a", "b"),
            branch_env("pr-1", "c"),
        ];
        assert_eq!(find_conflicts(&envs).len(), 2);
    }
}
