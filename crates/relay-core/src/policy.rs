//! Preview-environment policies as values: branch filters (regular expressions), durations
//! (`90s`, `72h`, `7d`) and why the relay itself holds an environment inactive.
//!
//! Patterns are stored as the admin wrote them and compiled where they are used
//! ([`BranchFilters`]); [`validate_pattern`] refuses a pattern that does not compile before it
//! is stored, so the planner only meets a broken one if a row was edited by hand.

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::settings::{Settings, SettingsError};

/// Longest pattern accepted, in bytes: filters name branches, not documents.
pub const MAX_PATTERN_LEN: usize = 1000;
/// Compiled size limit, so a pathological pattern cannot make every plan slow.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// Longest idle TTL: a year (keeps millisecond arithmetic far from overflow).
pub const MAX_IDLE_TTL_SECS: u64 = 366 * 24 * 3600;

/// Compiles `pattern` so that it must match the whole branch name.
fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
}

/// Checks a branch filter; `""` (after trimming) clears it.
pub fn validate_pattern(field: &'static str, raw: &str) -> Result<Option<String>, SettingsError> {
    let pattern = raw.trim();
    if pattern.is_empty() {
        return Ok(None);
    }
    let refuse = |message: String| SettingsError::Pattern { field, message };
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(refuse(format!("longer than {MAX_PATTERN_LEN} characters")));
    }
    match compile(pattern) {
        Ok(_) => Ok(Some(pattern.to_owned())),
        // regex's message spans several lines with a caret under the error; one line is
        // enough for a CLI or API answer.
        Err(err) => Err(refuse(
            err.to_string()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        )),
    }
}

/// The compiled filters of one integration. A pattern that does not compile is left out
/// (that filter then filters nothing) and reported in [`BranchFilters::broken`].
#[derive(Debug, Clone, Default)]
pub struct BranchFilters {
    include: Option<Regex>,
    exclude: Option<Regex>,
    target_include: Option<Regex>,
    pub broken: Vec<&'static str>,
}

impl BranchFilters {
    pub fn new(settings: &Settings) -> Self {
        let mut broken = Vec::new();
        let mut one = |field: &'static str, pattern: &Option<String>| {
            let pattern = pattern.as_deref()?;
            compile(pattern).map_err(|_| broken.push(field)).ok()
        };
        let include = one("branch_include", &settings.branch_include);
        let exclude = one("branch_exclude", &settings.branch_exclude);
        let target_include = one(
            "pull_request_target_include",
            &settings.pull_request_target_include,
        );
        Self {
            include,
            exclude,
            target_include,
            broken,
        }
    }

    /// Why `branch` gets no branch environment and, as a source, no pull-request
    /// environment; `None` when the filters allow it. (The default branch is production
    /// whatever this says: callers check that first.)
    pub fn branch_excluded(&self, branch: &str) -> Option<&'static str> {
        if self.include.as_ref().is_some_and(|re| !re.is_match(branch)) {
            return Some("branch_include");
        }
        if self.exclude.as_ref().is_some_and(|re| re.is_match(branch)) {
            return Some("branch_exclude");
        }
        None
    }

    /// Whether pull requests into `target` get environments (`pull_request_target_include`).
    pub fn target_excluded(&self, target: &str) -> Option<&'static str> {
        self.target_include
            .as_ref()
            .is_some_and(|re| !re.is_match(target))
            .then_some("pull_request_target_include")
    }
}

/// A duration as an admin gives it: seconds (JSON number) or text such as `90s`, `15m`,
/// `72h`, `7d`. `0`, `""` and `off` turn the setting off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DurationInput {
    Seconds(u64),
    Text(String),
}

impl DurationInput {
    /// Seconds, `None` for off.
    pub fn seconds(&self, field: &'static str) -> Result<Option<u64>, SettingsError> {
        let secs = match self {
            Self::Seconds(secs) => *secs,
            Self::Text(text) => {
                parse_duration(text).map_err(|message| SettingsError::Duration {
                    field,
                    value: text.clone(),
                    message,
                })?
            }
        };
        if secs > MAX_IDLE_TTL_SECS {
            return Err(SettingsError::Duration {
                field,
                value: format_duration(secs),
                message: format!("at most {}", format_duration(MAX_IDLE_TTL_SECS)),
            });
        }
        Ok((secs > 0).then_some(secs))
    }
}

/// `90s`, `15m`, `72h`, `7d` or plain seconds; `""` and `off` are 0.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err("expected a number with s, m, h or d (e.g. 90s, 72h, 7d)".into()),
    };
    let count: u64 = digits
        .parse()
        .map_err(|_| "expected a number with s, m, h or d (e.g. 90s, 72h, 7d)".to_owned())?;
    count
        .checked_mul(unit_secs)
        .ok_or_else(|| "too large".to_owned())
}

/// The shortest exact spelling: `7d`, `72h`... `90s`.
pub fn format_duration(secs: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// Why the relay itself keeps an environment inactive, and so what brings it back. An
/// environment an operator deactivated has none: only an operator activates it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitingReason {
    /// Beyond `max_active_environments`: activated in order when a slot frees up.
    MaxActiveEnvironments,
    /// No push or deployment for `environment_idle_ttl`: the next push activates it.
    Idle,
    /// A draft pull request while `build_draft_pull_requests` is off: activated when it is
    /// ready for review (or the setting is turned on).
    Draft,
}

crate::text_enum!(WaitingReason, "waiting reason", {
    MaxActiveEnvironments => "max_active_environments",
    Idle => "idle",
    Draft => "draft",
});

impl WaitingReason {
    /// What the build status, the pull-request comment and `environment:info` say.
    pub fn describe(self) -> &'static str {
        match self {
            Self::MaxActiveEnvironments => "waiting: max active environments reached",
            Self::Idle => {
                "stopped: idle for longer than environment_idle_ttl; the next push starts it again"
            }
            Self::Draft => "stopped: draft pull request (build_draft_pull_requests is off)",
        }
    }
}

/// An environment the relay holds inactive: why, and since when (epoch ms; orders the queue
/// of environments waiting for a slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub reason: WaitingReason,
    pub since_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let table = [
            ("90s", Ok(90)),
            ("90", Ok(90)),
            ("15m", Ok(900)),
            ("72h", Ok(72 * 3600)),
            ("7d", Ok(7 * 86_400)),
            (" 7d ", Ok(7 * 86_400)),
            ("", Ok(0)),
            ("off", Ok(0)),
            ("0", Ok(0)),
        ];
        for (text, expected) in table {
            assert_eq!(parse_duration(text), expected, "{text}");
        }
        for bad in ["7w", "h", "-1h", "1.5h", "1h30m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(7 * 86_400), "7d");
        assert_eq!(format_duration(72 * 3600), "3d");
        assert_eq!(format_duration(90), "90s");
        assert_eq!(format_duration(5400), "90m");
    }

    #[test]
    fn duration_inputs() {
        let field = "environment_idle_ttl";
        assert_eq!(DurationInput::Seconds(60).seconds(field), Ok(Some(60)));
        assert_eq!(DurationInput::Seconds(0).seconds(field), Ok(None));
        assert_eq!(
            DurationInput::Text("72h".into()).seconds(field),
            Ok(Some(259_200))
        );
        assert_eq!(DurationInput::Text("off".into()).seconds(field), Ok(None));
        let err = DurationInput::Text("soon".into())
            .seconds(field)
            .unwrap_err();
        assert!(err.to_string().contains("environment_idle_ttl"), "{err}");
        assert!(DurationInput::Text("400d".into()).seconds(field).is_err());
        let parsed: DurationInput = serde_json::from_str("\"7d\"").unwrap();
        assert_eq!(parsed, DurationInput::Text("7d".into()));
        let parsed: DurationInput = serde_json::from_str("3600").unwrap();
        assert_eq!(parsed, DurationInput::Seconds(3600));
    }

    #[test]
    fn patterns_match_whole_names() {
        let settings = Settings {
            branch_include: Some("feature/.*|main".into()),
            branch_exclude: Some(".*-wip".into()),
            pull_request_target_include: Some("main|release/.+".into()),
            ..Settings::default()
        };
        let filters = BranchFilters::new(&settings);
        assert!(filters.broken.is_empty());
        assert_eq!(filters.branch_excluded("feature/login"), None);
        assert_eq!(filters.branch_excluded("main"), None);
        assert_eq!(
            filters.branch_excluded("old-feature/x"),
            Some("branch_include")
        );
        assert_eq!(
            filters.branch_excluded("feature/x-wip"),
            Some("branch_exclude")
        );
        assert_eq!(filters.target_excluded("release/1"), None);
        assert_eq!(
            filters.target_excluded("develop"),
            Some("pull_request_target_include")
        );
        assert_eq!(BranchFilters::default().branch_excluded("anything"), None);
    }

    #[test]
    fn patterns_are_validated() {
        assert_eq!(
            validate_pattern("branch_include", " feature/.* "),
            Ok(Some("feature/.*".into()))
        );
        assert_eq!(validate_pattern("branch_include", "  "), Ok(None));
        let err = validate_pattern("branch_exclude", "feature/(").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("branch_exclude: "), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(validate_pattern("branch_exclude", &"a".repeat(1001)).is_err());
        let broken = Settings {
            branch_exclude: Some("(".into()),
            ..Settings::default()
        };
        let filters = BranchFilters::new(&broken);
        assert_eq!(filters.broken, ["branch_exclude"]);
        assert_eq!(filters.branch_excluded("x"), None);
    }

    #[test]
    fn waiting_reasons_round_trip() {
        for reason in WaitingReason::ALL {
            assert_eq!(reason.as_str().parse::<WaitingReason>(), Ok(*reason));
            let json = serde_json::to_string(reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
        assert_eq!(
            WaitingReason::MaxActiveEnvironments.describe(),
            "waiting: max active environments reached"
        );
    }
}
