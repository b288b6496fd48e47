//! Typed identifiers, parsed once at the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Identifier of an integration, as it appears in the hook URL
/// `/webhooks/bitbucket/{integration_id}` and on the command line.
///
/// Ids are 1 to 64 characters of lowercase ASCII letters, digits, `-` and `_`, so they are safe
/// in URLs, file names (the mirror directory) and log lines without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IntegrationId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("integration id must not be empty")]
    Empty,
    #[error("integration id is longer than 64 characters")]
    TooLong,
    #[error("integration id may only contain lowercase letters, digits, '-' and '_'")]
    InvalidCharacter,
}

impl IntegrationId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(IdError::TooLong);
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(IdError::InvalidCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IntegrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for IntegrationId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for IntegrationId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<IntegrationId> for String {
    fn from(value: IntegrationId) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_url_safe_ids() {
        for ok in ["a", "abc123", "my-integration_2", &"x".repeat(64)] {
            assert!(IntegrationId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(IntegrationId::parse(""), Err(IdError::Empty));
        assert_eq!(IntegrationId::parse(&"x".repeat(65)), Err(IdError::TooLong));
        for bad in ["ABC", "a/b", "a b", "../x", "é", "a%2f"] {
            assert_eq!(
                IntegrationId::parse(bad),
                Err(IdError::InvalidCharacter),
                "{bad}"
            );
        }
    }
}
