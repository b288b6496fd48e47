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
    /// The database refused a value (SQLSTATE class 22, a data exception such as a NUL in
    /// text or a number out of range, or class 23 other than a unique violation): the data is
    /// at fault, not the database, so retrying the same write cannot help.
    #[error("the database refused a value: {0}")]
    Rejected(String),
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
            | sqlx::Error::WorkerCrashed
            // An answer that is not PostgreSQL's protocol: a proxy or balancer in front of a
            // database that is gone accepts the connection and closes it.
            | sqlx::Error::Protocol(_) => Self::Unavailable(err),
            // Admin shutdown, cannot connect now, too many connections, read-only replica.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("57P") || c.starts_with("08") || c == "53300" || c == "25006"
                }) =>
            {
                Self::Unavailable(err)
            }
            // The database named in the URL does not exist, the login is refused or a table
            // is missing (schema not migrated): nothing the caller sent is wrong and an
            // operator can fix it, so it is an outage too.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    matches!(c.as_ref(), "3D000" | "28000" | "28P01" | "42P01")
                }) =>
            {
                Self::Unavailable(err)
            }
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("22") || (c.starts_with("23") && c != "23505")
                }) =>
            {
                Self::Rejected(db.message().to_owned())
            }
            _ => Self::Database(err),
        }
    }
}
