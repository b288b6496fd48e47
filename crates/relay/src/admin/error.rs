use relay_store::StoreError;

use crate::secrets::SecretError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bad input from the admin; the message names the field and what is expected.
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The change is not allowed in the current state (deactivating production, activating a
    /// deleted environment).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Bitbucket refused or could not be reached; the message says which and why.
    #[error("Bitbucket: {0}")]
    Bitbucket(String),
}

impl From<StoreError> for AdminError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::NotFound(what.to_owned()),
            other => Self::Store(other),
        }
    }
}
