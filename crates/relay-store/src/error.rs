//! The store's one error type.
//!
//! Callers care about three things: the database could not be reached (retry later, HTTP 503),
//! the row they named does not exist or clashes with another, or something unexpected.

use sqlx::error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A stored row that the domain cannot read (hand-edited into nonsense).
    #[error("{0}")]
    Corrupt(String),
    #[error("failed to apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Maps a unique violation to `Conflict(what)`, everything else through `From`.
    pub fn unique_as_conflict(err: sqlx::Error, what: &'static str) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.kind() == ErrorKind::UniqueViolation {
                return Self::Conflict(what);
            }
        }
        Self::from(err)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err),
            // Admin shutdown, cannot connect now, too many connections, read-only replica.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("57P") || c.starts_with("08") || c == "53300" || c == "25006"
                }) =>
            {
                Self::Unavailable(err)
            }
            _ => Self::Database(err),
        }
    }
}
