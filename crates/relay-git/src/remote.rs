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

    /// A remote whose URL may carry `user:password@` (or a token as the user name): the
    /// credentials move into a `Basic` header and out of the URL, so they appear in no error
    /// message and no git configuration. They are percent-decoded once, here (`p%40ss` is
    /// sent as `p@ss`). Only http(s) carries credentials this way: the user of an ssh URL
    /// is the ssh login and stays in the URL.
    pub fn from_url_with_userinfo(raw: &str) -> Self {
        match Url::parse(raw) {
            Ok(mut url)
                if matches!(url.scheme(), "http" | "https")
                    && (!url.username().is_empty() || url.password().is_some()) =>
            {
                let user = decode(url.username());
                let password = SecretString::from(decode(url.password().unwrap_or_default()));
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

/// Percent-decodes one userinfo part (a URL always holds it encoded).
fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> String {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
        format!("Authorization: Basic {encoded}")
    }

    #[test]
    fn userinfo_is_decoded_once_and_leaves_the_url() {
        let remote = RemoteAccess::from_url_with_userinfo(
            "https://dep%20loy:p%40ss%2Fw@git.example.com/a.git",
        );
        assert_eq!(remote.url(), "https://git.example.com/a.git");
        assert_eq!(
            remote.authorization_header().unwrap(),
            basic("dep loy:p@ss/w")
        );
        let token_only =
            RemoteAccess::from_url_with_userinfo("https://tok%2Ben@git.example.com/a.git");
        assert_eq!(token_only.authorization_header().unwrap(), basic("tok+en:"));
    }

    #[test]
    fn ssh_users_stay_in_the_url() {
        let remote = RemoteAccess::from_url_with_userinfo("ssh://git@git.example.com/a.git");
        assert_eq!(remote.url(), "ssh://git@git.example.com/a.git");
        assert!(remote.authorization_header().is_none());
    }
}
