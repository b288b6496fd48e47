//! Parse errors, and the field readers that produce them with the field's path.

use super::{time, CommitHash};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown event key {0:?}")]
    UnknownEventKey(String),
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("body does not have the expected shape: {0}")]
    UnexpectedShape(String),
    #[error("missing field {0}")]
    MissingField(String),
    #[error("invalid value for {field}: {value:?}")]
    InvalidValue { field: String, value: String },
    #[error("X-Event-Key {header:?} does not match the body's eventKey {body:?}")]
    EventKeyMismatch { header: String, body: String },
}

impl ParseError {
    /// Short machine-readable label for metrics and the delivery's outcome.
    pub fn label(&self) -> &'static str {
        match self {
            Self::UnknownEventKey(_) => "unknown_event_key",
            Self::InvalidJson(_) => "invalid_json",
            Self::UnexpectedShape(_) => "unexpected_shape",
            Self::MissingField(_) => "missing_field",
            Self::InvalidValue { .. } => "invalid_value",
            Self::EventKeyMismatch { .. } => "event_key_mismatch",
        }
    }

    pub(crate) fn missing(path: &str) -> Self {
        Self::MissingField(path.to_owned())
    }

    pub(crate) fn invalid(field: &str, value: impl Into<String>) -> Self {
        Self::InvalidValue {
            field: field.to_owned(),
            value: value.into(),
        }
    }
}

/// serde_json errors split into "not JSON at all" and "JSON of the wrong shape".
pub(crate) fn json_error(err: serde_json::Error) -> ParseError {
    match err.classify() {
        serde_json::error::Category::Data => ParseError::UnexpectedShape(err.to_string()),
        _ => ParseError::InvalidJson(err.to_string()),
    }
}

/// Event keys come from a header anyone can send: keep error messages bounded.
pub(crate) fn truncate_for_error(raw: &str) -> String {
    raw.chars().take(100).collect()
}

/// A commit id field, with the field's path in the error.
pub(crate) fn commit_field(field: &str, raw: Option<&str>) -> Result<CommitHash, ParseError> {
    let raw = raw.ok_or_else(|| ParseError::missing(field))?;
    CommitHash::parse(raw).map_err(|_| ParseError::invalid(field, truncate_for_error(raw)))
}

/// A required, non-empty string field.
pub(crate) fn text_field(field: &str, raw: Option<String>) -> Result<String, ParseError> {
    match raw {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => Err(ParseError::invalid(field, "")),
        None => Err(ParseError::missing(field)),
    }
}

/// Epoch milliseconds from a JSON number or an ISO-8601 string; `null`/absent is `None`.
pub(crate) fn timestamp_field(
    field: &str,
    raw: Option<&serde_json::Value>,
) -> Result<Option<i64>, ParseError> {
    match raw {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ParseError::invalid(field, n.to_string())),
        Some(serde_json::Value::String(s)) => time::parse_timestamp_ms(s)
            .map(Some)
            .ok_or_else(|| ParseError::invalid(field, truncate_for_error(s))),
        Some(other) => Err(ParseError::invalid(field, other.to_string())),
    }
}
