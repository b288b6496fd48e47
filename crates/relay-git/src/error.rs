//! git failures, classified so the job runner can tell a retry from a permanent problem and
//! print a reason an operator can act on. URLs in messages never carry credentials.

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{url} refused the credentials")]
    Auth { url: String },
    #[error("cannot reach {url}: {message}")]
    Network { url: String, message: String },
    #[error("git operation on {url} timed out")]
    Timeout { url: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{url} rejected the push of {reference}: {message}")]
    PushRejected {
        url: String,
        reference: String,
        message: String,
    },
    #[error("mirror directory {path}: {message}")]
    Storage { path: String, message: String },
    #[error("git: {0}")]
    Git(String),
}

impl GitError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Network { .. } | Self::Timeout { .. } | Self::Auth { .. } | Self::Storage { .. }
        )
    }
}

impl From<git2::Error> for GitError {
    fn from(err: git2::Error) -> Self {
        Self::Git(err.message().to_owned())
    }
}
