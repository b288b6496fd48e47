//! Field checks for integration input. Each returns a message naming the field.

use relay_core::targets;

/// Longest name-like value (`key`, `username`).
pub const MAX_NAME_BYTES: usize = 1024;
/// Longest credential (`secret`, `token`, `webhook_secret`, `deploy_hook_secret`).
pub const MAX_SECRET_BYTES: usize = 4096;
/// Shortest webhook secret an admin may choose (the generated ones are 32 characters).
pub const MIN_WEBHOOK_SECRET_CHARS: usize = 16;

/// An http(s) URL the relay calls (`deploy_hook_url`); see `relay_core::targets` for what is
/// refused. Messages never repeat the value: it may carry credentials.
pub fn http_url(field: &str, raw: &str) -> Result<String, String> {
    let url = targets::http_url(raw).map_err(|e| format!("{field} {e}"))?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Bitbucket Server's `base_url`: like [`http_url`], without credentials (the token is sent
/// as a header).
pub fn base_url(raw: &str) -> Result<String, String> {
    let url = targets::http_url_without_credentials(raw).map_err(|e| format!("base_url {e}"))?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A git remote: a URL git understands, an scp-like `user@host:path`, or an absolute path.
pub fn git_remote(field: &str, raw: &str) -> Result<String, String> {
    targets::git_remote(raw).map_err(|e| format!("{field} {e}"))?;
    Ok(raw.trim().to_owned())
}

/// An `environment_url` template: an http(s) URL in which `{environment}` is replaced.
pub fn environment_url(raw: &str) -> Result<String, String> {
    let probe = raw.trim().replace("{environment}", "env");
    if probe.contains('{') || probe.contains('}') {
        return Err(format!(
            "environment_url: {raw:?} may only use the placeholder {{environment}}"
        ));
    }
    http_url("environment_url", &probe)?;
    Ok(raw.trim().to_owned())
}

/// A name-like value: not empty, no control characters, at most [`MAX_NAME_BYTES`].
pub fn non_empty(field: &str, raw: &str) -> Result<String, String> {
    bounded(field, raw, MAX_NAME_BYTES)
}

/// A credential: like [`non_empty`], at most [`MAX_SECRET_BYTES`].
pub fn secret(field: &str, raw: &str) -> Result<String, String> {
    bounded(field, raw, MAX_SECRET_BYTES)
}

/// A webhook secret an admin chose: at least [`MIN_WEBHOOK_SECRET_CHARS`] characters, since
/// anyone who guesses it can sign deliveries.
pub fn webhook_secret(raw: &str) -> Result<String, String> {
    let secret = secret("webhook_secret", raw)?;
    if secret.chars().count() < MIN_WEBHOOK_SECRET_CHARS {
        return Err(format!(
            "webhook_secret must be at least {MIN_WEBHOOK_SECRET_CHARS} characters (omit it to have one generated)"
        ));
    }
    Ok(secret)
}

fn bounded(field: &str, raw: &str, max: usize) -> Result<String, String> {
    if raw.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if raw.len() > max {
        return Err(format!("{field} must be at most {max} bytes"));
    }
    if raw.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(raw.trim().to_owned())
}

/// A Standard Webhooks secret: `whsec_` followed by base64 of at least 24 bytes.
pub fn deploy_hook_secret(raw: &str) -> Result<String, String> {
    use base64::Engine;
    let raw = raw.trim();
    let decoded = raw
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
    match decoded {
        Some(key) if key.len() >= 24 && raw.len() <= MAX_SECRET_BYTES => Ok(raw.to_owned()),
        _ => Err("deploy_hook_secret must look like whsec_<base64 of at least 24 bytes>".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            http_url("f", "https://x.example.com/hook/").unwrap(),
            "https://x.example.com/hook"
        );
        assert!(http_url("f", "ftp://x").is_err());
        assert!(http_url("f", "not a url").is_err());
        let refused = http_url("deploy_hook_url", "http://169.254.169.254/latest").unwrap_err();
        assert!(
            refused.starts_with("deploy_hook_url points at"),
            "{refused}"
        );
        let hidden = base_url("https://admin:hunter2@bitbucket.example.com").unwrap_err();
        assert!(!hidden.contains("hunter2"), "{hidden}");
    }

    #[test]
    fn remotes() {
        assert!(git_remote("deploy_remote", "git@example.com:team/a.git").is_ok());
        let err = git_remote("deploy_remote", "ssh://-oProxyCommand=x/a").unwrap_err();
        assert!(err.contains("must not start with '-'"), "{err}");
    }

    #[test]
    fn sizes_and_strength() {
        assert!(non_empty("username", &"u".repeat(MAX_NAME_BYTES)).is_ok());
        let err = non_empty("username", &"u".repeat(900 * 1024)).unwrap_err();
        assert_eq!(err, "username must be at most 1024 bytes");
        assert!(webhook_secret("x").unwrap_err().contains("at least 16"));
        assert!(webhook_secret("0123456789abcdef").is_ok());
        assert!(secret("token", &"t".repeat(MAX_SECRET_BYTES + 1)).is_err());
    }

    #[test]
    fn environment_templates() {
        assert!(environment_url("https://{environment}.preview.example.com").is_ok());
        assert!(environment_url("https://{branch}.example.com").is_err());
        assert!(environment_url("{environment}").is_err());
    }
}
