//! The CLI's errors and their exit codes, decided in one place.
//!
//! | code | meaning |
//! |---|---|
//! | 1 | unexpected failure |
//! | 2 | invalid flags or values (clap uses 2 as well) |
//! | 3 | the named integration or delivery does not exist |
//! | 4 | a validation found problems (`integration:validate`) |
//! | 5 | the database is unavailable |
//! | 6 | Bitbucket refused the request or could not be reached |
//! | 7 | the environment's state refuses the change (deactivating production, ...) |
//! | 78 | configuration error (EX_CONFIG) |

use relay_store::StoreError;

use crate::admin::AdminError;
use crate::app::AppError;
use crate::config::ConfigError;
use crate::secrets::SecretError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    ValidationFailed(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(StoreError),
    #[error("{0}")]
    Bitbucket(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Invalid(_) => 2,
            Self::NotFound(_) => 3,
            Self::ValidationFailed(_) => 4,
            Self::Store(err) if err.is_unavailable() => 5,
            Self::Bitbucket(_) => 6,
            Self::Refused(_) => 7,
            Self::Config(_) | Self::Secret(SecretError::InvalidKey | SecretError::MissingKey) => 78,
            Self::Secret(_) | Self::Store(_) | Self::Other(_) => 1,
        }
    }
}

impl From<AppError> for CliError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Config(err) => Self::Config(err),
            AppError::Secret(err) => Self::Secret(err),
            AppError::Store(err) => Self::from(err),
            other => Self::Other(anyhow::Error::new(other)),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::NotFound(what.to_owned()),
            other => Self::Store(other),
        }
    }
}

impl From<AdminError> for CliError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::Invalid(message) => Self::Invalid(message),
            AdminError::NotFound(what) => Self::NotFound(what),
            AdminError::Refused(message) => Self::Refused(message),
            AdminError::Store(err) => Self::from(err),
            AdminError::Secret(err) => Self::Secret(err),
            AdminError::Bitbucket(message) => Self::Bitbucket(format!("Bitbucket: {message}")),
        }
    }
}
