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

    /// Classifies a libgit2 error raised while talking to `url`.
    pub(crate) fn from_remote(url: &str, err: &git2::Error, timed_out: bool) -> Self {
        let url = url.to_owned();
        if timed_out {
            return Self::Timeout { url };
        }
        let message = err.message().to_owned();
        match (err.code(), err.class()) {
            (git2::ErrorCode::Auth, _) => Self::Auth { url },
            (_, git2::ErrorClass::Http)
                if message.contains("401")
                    || message.contains("403")
                    || message.contains("authentication") =>
            {
                Self::Auth { url }
            }
            (
                _,
                git2::ErrorClass::Http
                | git2::ErrorClass::Net
                | git2::ErrorClass::Os
                | git2::ErrorClass::Ssl,
            ) => Self::Network { url, message },
            _ => Self::Git(message),
        }
    }
}

impl From<git2::Error> for GitError {
    fn from(err: git2::Error) -> Self {
        Self::Git(err.message().to_owned())
    }
}
