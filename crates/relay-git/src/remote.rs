//! Where to fetch from or push to, and how to authenticate.

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A remote URL plus the `Authorization` header value to send (`Bearer ...` or `Basic ...`).
#[derive(Clone)]
pub struct RemoteAccess {
    url: String,
    authorization: Option<SecretString>,
}

impl std::fmt::Debug for RemoteAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAccess")
            .field("url", &self.url)
            .field("authorization", &self.authorization.as_ref().map(|_| "set"))
            .finish()
    }
}

impl RemoteAccess {
    pub fn anonymous(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            authorization: None,
        }
    }

    pub fn with_authorization(url: impl Into<String>, authorization: SecretString) -> Self {
        Self {
            url: url.into(),
            authorization: Some(authorization),
        }
    }

    /// `Basic base64(user:password)`.
    pub fn basic(url: impl Into<String>, user: &str, password: &SecretString) -> Self {
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", password.expose_secret()));
        Self::with_authorization(url, SecretString::from(format!("Basic {encoded}")))
    }

    /// A remote whose URL may carry `user:password@`: the credentials move into a header and
    /// out of the URL, so they appear in no error message and no git configuration.
    pub fn from_url_with_userinfo(raw: &str) -> Self {
        match Url::parse(raw) {
            Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
                let user = url.username().to_owned();
                let password = SecretString::from(url.password().unwrap_or_default().to_owned());
                let _ = url.set_username("");
                let _ = url.set_password(None);
                Self::basic(url.to_string(), &user, &password)
            }
            _ => Self::anonymous(raw),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn authorization_header(&self) -> Option<String> {
        self.authorization
            .as_ref()
            .map(|value| format!("Authorization: {}", value.expose_secret()))
    }
}
