//! Commit ids as Bitbucket hands them out: sometimes full, sometimes abbreviated.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A validated, lowercase hexadecimal commit id that knows whether it is complete.
///
/// Bitbucket Cloud pull-request payloads carry 12-character abbreviations while pushes and
/// Bitbucket Server carry all 40 characters. Keeping the distinction in the type stops an
/// abbreviation from being fetched or stored as if it were a full object id: callers ask
/// [`CommitHash::is_full`] before handing one to git, and compare with
/// [`CommitHash::same_commit`], which understands abbreviations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitHash(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitHashError {
    #[error("a commit id needs at least {min} hex characters, got {0}", min = CommitHash::MIN_LEN)]
    TooShort(usize),
    #[error("a commit id has at most {max} hex characters, got {0}", max = CommitHash::FULL_LEN)]
    TooLong(usize),
    #[error("a commit id may only contain hex digits")]
    NotHex,
    #[error("the all-zero id means \"no commit\", not a commit")]
    Zero,
}

impl CommitHash {
    /// Length of a full SHA-1 object id.
    pub const FULL_LEN: usize = 40;
    /// Git's default abbreviation length; shorter prefixes are too ambiguous to compare.
    pub const MIN_LEN: usize = 7;

    /// Parses a full or abbreviated id. Upper-case hex is accepted and stored lowercase.
    /// The all-zero id is rejected: Bitbucket Server uses it for "no commit", see
    /// [`CommitHash::parse_nullable`].
    pub fn parse(raw: &str) -> Result<Self, CommitHashError> {
        let len = raw.len();
        if !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CommitHashError::NotHex);
        }
        if len < Self::MIN_LEN {
            return Err(CommitHashError::TooShort(len));
        }
        if len > Self::FULL_LEN {
            return Err(CommitHashError::TooLong(len));
        }
        if raw.bytes().all(|b| b == b'0') {
            return Err(CommitHashError::Zero);
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// Like [`CommitHash::parse`], but the all-zero id (Server's "missing side" of a ref
    /// change) and the empty string become `None`.
    pub fn parse_nullable(raw: &str) -> Result<Option<Self>, CommitHashError> {
        if raw.is_empty() || raw.bytes().all(|b| b == b'0') {
            return Ok(None);
        }
        Self::parse(raw).map(Some)
    }

    /// True when this is a complete 40-character id that git can fetch by itself.
    pub fn is_full(&self) -> bool {
        self.0.len() == Self::FULL_LEN
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both ids can name the same commit: equal when both are full, otherwise the
    /// shorter must be a prefix of the longer. An abbreviation is never *equal* to a full id,
    /// but it may denote it, and treating such a pair as different would rebuild for nothing.
    pub fn same_commit(&self, other: &CommitHash) -> bool {
        let (short, long) = if self.0.len() <= other.0.len() {
            (&self.0, &other.0)
        } else {
            (&other.0, &self.0)
        };
        long.starts_with(short.as_str())
    }
}

/// `same_commit` over optional ids: two absent ids agree, one absent one does not.
pub(crate) fn same_opt(a: Option<&CommitHash>, b: Option<&CommitHash>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.same_commit(b),
        (None, None) => true,
        _ => false,
    }
}

impl fmt::Display for CommitHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CommitHash {
    type Error = CommitHashError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CommitHash> for String {
    fn from(value: CommitHash) -> Self {
        value.0
    }
}

impl std::str::FromStr for CommitHash {
    type Err = CommitHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "823b2230a56056231c9425d63758fa87078a66b4";

    #[test]
    fn full_and_abbreviated() {
        let full = CommitHash::parse(FULL).unwrap();
        assert!(full.is_full());
        let short = CommitHash::parse("823b2230a560").unwrap();
        assert!(!short.is_full());
        assert_ne!(full, short);
        assert!(full.same_commit(&short) && short.same_commit(&full));
        let other = CommitHash::parse("823b2230a561").unwrap();
        assert!(!other.same_commit(&full));
        assert_eq!(CommitHash::parse(&FULL.to_uppercase()).unwrap(), full);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(CommitHash::parse("abc"), Err(CommitHashError::TooShort(3)));
        assert_eq!(
            CommitHash::parse(&"a".repeat(41)),
            Err(CommitHashError::TooLong(41))
        );
        assert_eq!(
            CommitHash::parse("xyz1234567"),
            Err(CommitHashError::NotHex)
        );
        assert_eq!(
            CommitHash::parse(&"0".repeat(40)),
            Err(CommitHashError::Zero)
        );
        assert_eq!(CommitHash::parse("é1234567"), Err(CommitHashError::NotHex));
    }

    #[test]
    fn nullable() {
        assert_eq!(CommitHash::parse_nullable(&"0".repeat(40)), Ok(None));
        assert_eq!(CommitHash::parse_nullable(""), Ok(None));
        assert!(CommitHash::parse_nullable(FULL).unwrap().is_some());
    }

    #[test]
    fn serde_validates() {
        let ok: CommitHash = serde_json::from_str(&format!("\"{FULL}\"")).unwrap();
        assert_eq!(ok.as_str(), FULL);
        assert!(serde_json::from_str::<CommitHash>("\"nope\"").is_err());
    }
}
