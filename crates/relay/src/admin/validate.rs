//! Field checks for integration input. Each returns a message naming the field.

use url::Url;

pub fn http_url(field: &str, raw: &str) -> Result<String, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("{field}: {raw:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{field}: {raw:?} must be an http:// or https:// URL"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A git remote: a URL git understands, an scp-like `user@host:path`, or an absolute path.
pub fn git_remote(field: &str, raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.starts_with('/') {
        return Ok(raw.to_owned());
    }
    if let Ok(url) = Url::parse(raw) {
        if matches!(url.scheme(), "https" | "http" | "ssh" | "git" | "file") {
            return Ok(raw.to_owned());
        }
        return Err(format!(
            "{field}: scheme {:?} is not a git transport (use https, ssh, git, file or user@host:path)",
            url.scheme()
        ));
    }
    // scp-like `user@host:path` is not a URL (no scheme), so it lands here.
    if raw.contains('@') && raw.contains(':') && !raw.contains(char::is_whitespace) {
        return Ok(raw.to_owned());
    }
    Err(format!("{field}: {raw:?} is not a git remote URL"))
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

/// A branch name as git accepts it (the subset that matters to us).
pub fn non_empty(field: &str, raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
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
        Some(key) if key.len() >= 24 => Ok(raw.to_owned()),
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
    }

    #[test]
    fn remotes() {
        for ok in [
            "https://git.example.com/a.git",
            "ssh://git@example.com/a.git",
            "git@example.com:team/a.git",
            "/srv/git/a.git",
            "file:///srv/git/a.git",
        ] {
            assert!(git_remote("deploy_remote", ok).is_ok(), "{ok}");
        }
        for bad in ["", "ftp://x/a", "relative/path", "mailto:x@y"] {
            assert!(git_remote("deploy_remote", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environment_templates() {
        assert!(environment_url("https://{environment}.preview.example.com").is_ok());
        assert!(environment_url("https://{branch}.example.com").is_err());
        assert!(environment_url("{environment}").is_err());
    }
}
