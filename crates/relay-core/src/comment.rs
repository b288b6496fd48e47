//! The text of the one comment the relay keeps on a pull request for its environment: the
//! environment, its state (building, deployed, failed with the reason, stopped, waiting),
//! its URL and the commit. Markdown that both products render.

use crate::event::CommitHash;
use crate::plan::BuildState;

/// What the comment says, from the build status it goes with.
#[derive(Debug, Clone, Copy)]
pub struct CommentFacts<'a> {
    pub environment: &'a str,
    pub state: BuildState,
    pub description: &'a str,
    pub url: Option<&'a str>,
    pub commit: &'a CommitHash,
}

/// The state in words: `building`, `deployed`, `failed: <reason>`, `stopped: <why>`, or the
/// waiting text itself.
pub fn state_text(state: BuildState, description: &str) -> String {
    let detail = description.trim();
    match state {
        BuildState::InProgress if detail.starts_with("waiting") => detail.to_owned(),
        BuildState::InProgress if detail.is_empty() => "building".to_owned(),
        BuildState::InProgress => format!("building ({detail})"),
        BuildState::Successful => "deployed".to_owned(),
        BuildState::Failed if detail.is_empty() => "failed".to_owned(),
        BuildState::Failed => format!("failed: {detail}"),
        BuildState::Stopped if detail.starts_with("stopped") => detail.to_owned(),
        BuildState::Stopped if detail.is_empty() => "stopped".to_owned(),
        BuildState::Stopped => format!("stopped: {detail}"),
    }
}

const FOOTER: &str = "_This comment is kept up to date by relay._";

fn heading(environment: &str) -> String {
    format!("**Preview environment `{environment}`**")
}

/// Whether `text` is the relay's comment about `environment` (its heading and footer), to
/// find a comment whose post answer was lost.
pub fn is_comment_for(text: &str, environment: &str) -> bool {
    text.starts_with(&heading(environment)) && text.trim_end().ends_with(FOOTER)
}

/// The whole comment.
pub fn render(facts: &CommentFacts<'_>) -> String {
    let commit = facts.commit.as_str();
    let short = &commit[..commit.len().min(12)];
    let url = match facts.url {
        // Deleted and stopped environments are not there to visit.
        Some(url) if facts.state != BuildState::Stopped => format!("<{url}>"),
        Some(url) => format!("{url} (not running)"),
        None => "none configured".to_owned(),
    };
    format!(
        "{heading}\n\n\
         * State: **{state}**\n\
         * URL: {url}\n\
         * Commit: `{short}`\n\n\
         {FOOTER}",
        heading = heading(facts.environment),
        state = state_text(facts.state, facts.description),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_in_words() {
        use BuildState::*;
        let table = [
            (
                InProgress,
                "built; deploying",
                "building (built; deploying)",
            ),
            (
                InProgress,
                "waiting: max active environments reached",
                "waiting: max active environments reached",
            ),
            (Successful, "deployed", "deployed"),
            (
                Failed,
                "merge conflict in a.txt",
                "failed: merge conflict in a.txt",
            ),
            (
                Stopped,
                "environment deleted",
                "stopped: environment deleted",
            ),
            (
                Stopped,
                "stopped: draft pull request",
                "stopped: draft pull request",
            ),
        ];
        for (state, description, expected) in table {
            assert_eq!(state_text(state, description), expected);
        }
    }

    #[test]
    fn the_comment_names_environment_state_url_and_commit() {
        let commit = CommitHash::parse(&"ab".repeat(20)).unwrap();
        let text = render(&CommentFacts {
            environment: "pr-7",
            state: BuildState::Successful,
            description: "deployed",
            url: Some("https://pr-7.example.com"),
            commit: &commit,
        });
        assert!(text.contains("`pr-7`"), "{text}");
        assert!(text.contains("**deployed**"), "{text}");
        assert!(text.contains("<https://pr-7.example.com>"), "{text}");
        assert!(text.contains("`abababababab`"), "{text}");
        assert!(is_comment_for(&text, "pr-7"));
        assert!(!is_comment_for(&text, "pr-70"));
        assert!(
            !is_comment_for(&format!("> {text}"), "pr-7"),
            "a quote is not ours"
        );
    }
}
