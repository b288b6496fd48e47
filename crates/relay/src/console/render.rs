//! What every page shares: the layout's data, timestamps, links, and turning a template into
//! a response. Values are formatted here; templates only place (and escape) them.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, SecondsFormat, Utc};

use super::error::ConsoleError;
use super::session::{Flash, Session};

/// The layout's data: the title, which navigation entry is current, the session's CSRF
/// token (for the "Log out" form in the header) and the flash message to show once.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub title: String,
    pub nav: &'static str,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// Appended to asset URLs so an upgrade is fetched at once.
    pub version: &'static str,
}

impl Layout {
    pub(super) fn new(title: impl Into<String>, nav: &'static str, session: &Session) -> Self {
        Self {
            title: title.into(),
            nav,
            csrf: session.csrf.clone(),
            flash: session.flash.clone(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// A point in time as shown: ISO 8601 in UTC for the machine-readable `datetime` and the
/// text, and a relative hint ("3 min ago").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    pub iso: String,
    pub ago: String,
}

impl Stamp {
    pub(super) fn new(at: DateTime<Utc>) -> Self {
        Self::at(at, Utc::now())
    }

    pub(super) fn at(at: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        Self {
            iso: at.to_rfc3339_opts(SecondsFormat::Secs, true),
            ago: relative(at, now),
        }
    }
}

pub(super) fn stamp(at: Option<DateTime<Utc>>) -> Option<Stamp> {
    at.map(Stamp::new)
}

fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds();
    let (amount, future) = (seconds.unsigned_abs(), seconds < 0);
    let text = match amount {
        0..=9 => return "just now".into(),
        10..=59 => format!("{amount} s"),
        60..=3599 => format!("{} min", amount / 60),
        3600..=86_399 => format!("{} h", amount / 3600),
        _ => match amount / 86_400 {
            1 => "1 day".into(),
            days => format!("{days} days"),
        },
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A link with query parameters; empty values are left out.
pub(super) fn href(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (name, value) in params {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            query.append_pair(name, value);
            any = true;
        }
    }
    if any {
        format!("{path}?{}", query.finish())
    } else {
        path.to_owned()
    }
}

/// Empty form and query values mean "not given".
pub(super) fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The shortened commit shown in tables (the full one goes in a `title`).
pub(super) fn short_commit(commit: &str) -> String {
    commit.chars().take(12).collect()
}

/// JSON as people read it, or the text as it is when it is not JSON.
pub(super) fn pretty(bytes: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => serde_json::to_string_pretty(&value)
            .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned()),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

pub(super) fn pretty_value(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Renders a page with 200.
pub(super) fn page(template: &impl Template) -> Result<Response, ConsoleError> {
    page_with(StatusCode::OK, template)
}

pub(super) fn page_with(
    status: StatusCode,
    template: &impl Template,
) -> Result<Response, ConsoleError> {
    Ok((status, Html(template.render()?)).into_response())
}

/// After an action: back to a page with a GET, so reloading does not repeat the action.
pub(super) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso_with_a_hint() {
        let now = DateTime::parse_from_rfc3339("2026-12-15T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let cases = [
            (0, "just now"),
            (42, "42 s ago"),
            (180, "3 min ago"),
            (7200, "2 h ago"),
            (86_400, "1 day ago"),
            (3 * 86_400, "3 days ago"),
            (-120, "in 2 min"),
        ];
        for (seconds_ago, hint) in cases {
            let at = now - chrono::Duration::seconds(seconds_ago);
            assert_eq!(Stamp::at(at, now).ago, hint);
        }
        assert_eq!(Stamp::at(now, now).iso, "2026-12-15T10:00:00Z");
    }

    #[test]
    fn links_leave_out_empty_values_and_encode_the_rest() {
        assert_eq!(href("/console/jobs", &[("state", None)]), "/console/jobs");
        assert_eq!(
            href(
                "/console/deliveries",
                &[("event_key", Some("repo:push")), ("status", Some(""))]
            ),
            "/console/deliveries?event_key=repo%3Apush"
        );
    }

    #[test]
    fn bodies_are_pretty_printed_when_json() {
        assert_eq!(pretty(br#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(pretty(b"not json"), "not json");
    }
}
