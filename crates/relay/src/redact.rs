//! What the relay shows of a URL that may carry credentials: the one function every log line,
//! CLI output, API answer and page goes through (`deploy_remote`, `deploy_hook_url`,
//! `base_url`, and any URL quoted in an error).
//!
//! Hidden: the user name and the password of an http(s) URL (a token is often given as the
//! user name: `https://TOKEN@host/...`), the password of any other URL (an ssh user is not a
//! secret: the key is), and the value of every query parameter whose name looks like a
//! credential (see [`is_credential_name`]). The rest stays readable, so an admin still sees
//! which host and path a setting points at.

use url::Url;

const HIDDEN: &str = "*****";

/// The URL with its credentials replaced by `*****`.
pub fn url(raw: &str) -> String {
    let Ok(mut url) = Url::parse(raw) else {
        return scp_like(raw);
    };
    if url.cannot_be_a_base() {
        // `user:pw@host:path` parses as a URL of scheme `user`.
        return scp_like(raw);
    }
    let web = matches!(url.scheme(), "http" | "https");
    let mut changed = false;
    if url.password().is_some() {
        let _ = url.set_password(Some(HIDDEN));
        changed = true;
    }
    if web && !url.username().is_empty() {
        let _ = url.set_username(HIDDEN);
        changed = true;
    }
    if url.query_pairs().any(|(name, _)| is_credential_name(&name)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_credential_name(&name) {
                    HIDDEN.to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    // Unchanged values are shown exactly as stored (no added trailing slash).
    if changed {
        url.to_string()
    } else {
        raw.to_owned()
    }
}

/// Whether a query parameter's name says its value is a secret: `token`, `access_token`,
/// `api_key`, `X-Amz-Signature`, `client_secret`, `password`, `auth`, `sig`, ...
pub fn is_credential_name(name: &str) -> bool {
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    [
        "token",
        "key",
        "secret",
        "pass",
        "pwd",
        "sig",
        "auth",
        "credential",
        "session",
        "code",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// `user:password@host:path` is not a URL; only a password can be hidden there (the user of
/// an ssh remote is not a secret).
fn scp_like(raw: &str) -> String {
    match raw.split_once('@') {
        Some((userinfo, rest)) if !userinfo.contains('/') => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{HIDDEN}@{rest}"),
            None => raw.to_owned(),
        },
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_hidden() {
        assert_eq!(
            url("https://u:pw@host/x.git"),
            "https://*****:*****@host/x.git"
        );
        assert_eq!(
            url("https://ghp_tokenvalue@host/x.git"),
            "https://*****@host/x.git"
        );
        assert_eq!(url("https://u:p%40ss@host/x"), "https://*****:*****@host/x");
        assert_eq!(url("ssh://git:pw@host/x.git"), "ssh://git:*****@host/x.git");
        assert_eq!(url("ssh://git@host/x.git"), "ssh://git@host/x.git");
        assert_eq!(url("git@host:team/x.git"), "git@host:team/x.git");
        assert_eq!(url("user:pw@host:team/x.git"), "user:*****@host:team/x.git");
        assert_eq!(url("https://host/x"), "https://host/x");
        assert_eq!(url("/srv/git/x.git"), "/srv/git/x.git");
    }

    #[test]
    fn credential_query_values_are_hidden() {
        assert_eq!(
            url("https://hooks.example.com/h?token=abc&env=prod"),
            "https://hooks.example.com/h?token=*****&env=prod"
        );
        for name in [
            "access_token",
            "api_key",
            "apiKey",
            "X-Amz-Signature",
            "client_secret",
            "password",
            "auth",
            "sig",
        ] {
            let shown = url(&format!("https://h/x?{name}=s3cr3t"));
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        assert_eq!(url("https://h/x?page=2"), "https://h/x?page=2");
    }
}
