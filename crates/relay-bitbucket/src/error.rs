//! Typed failures of the Bitbucket clients. Messages never contain credentials: requests
//! carry them only in headers, and error bodies are reduced to Bitbucket's own message.

use std::time::Duration;

/// Why a Bitbucket call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 401, or the OAuth consumer was refused: the key/secret or token is wrong or expired.
    #[error("Bitbucket rejected the credentials (401){}", suffix(.message))]
    Unauthorized { message: Option<String> },
    /// 403: the credentials work but lack a permission (e.g. webhook admin, repository write).
    #[error("the credentials lack a permission Bitbucket requires (403){}", suffix(.message))]
    Forbidden { message: Option<String> },
    /// 404: the repository, commit or webhook does not exist (or is invisible to these
    /// credentials, which Bitbucket reports the same way).
    #[error("not found on Bitbucket (404): {what}{}", suffix(.message))]
    NotFound {
        what: String,
        message: Option<String>,
    },
    /// 429 after the retries ran out, or with a `Retry-After` longer than the client may wait.
    #[error("Bitbucket rate limit hit (429){}", match .retry_after {
        Some(d) => format!("; retry after {} s", d.as_secs()),
        None => String::new(),
    })]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx after the retries ran out.
    #[error("Bitbucket failed with HTTP {status}")]
    Server { status: u16 },
    /// Any other refusal (400 validation errors, 409, ...), with Bitbucket's message.
    #[error("Bitbucket refused the request (HTTP {status}){}", suffix(.message))]
    Rejected {
        status: u16,
        message: Option<String>,
    },
    /// Connection refused, DNS, TLS or a timeout. The message carries the whole cause chain
    /// (reqwest's own message alone says only "error sending request"), so the error is not
    /// also exposed as `source()`, which would print the chain twice.
    #[error("cannot reach Bitbucket: {}", chain(.0))]
    Network(reqwest::Error),
    /// A 2xx answer that does not have the documented shape.
    #[error("unexpected response from Bitbucket: {0}")]
    InvalidResponse(String),
    /// The configuration cannot form valid requests (bad base URL, empty repository name).
    #[error("invalid Bitbucket configuration: {0}")]
    Config(String),
}

fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn suffix(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

impl Error {
    /// The HTTP status behind the error, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { .. } => Some(401),
            Self::Forbidden { .. } => Some(403),
            Self::NotFound { .. } => Some(404),
            Self::RateLimited { .. } => Some(429),
            Self::Server { status } | Self::Rejected { status, .. } => Some(*status),
            Self::Network(_) | Self::InvalidResponse(_) | Self::Config(_) => None,
        }
    }

    /// Worth trying again later (the job runner's retry decision): outages and rate limits,
    /// not refusals.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Server { .. } | Self::Network(_)
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
