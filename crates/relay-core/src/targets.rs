//! Where the relay may send things: the checks for every URL and git remote an admin sets
//! (`base_url`, `deploy_hook_url`, `environment_url`, `deploy_remote`), in one place so the
//! CLI, the admin API and the job runners (which check again what older versions stored)
//! agree.
//!
//! * No component may start with `-`: git and ssh would read it as an option
//!   (`ssh://-oProxyCommand=...`, a host or path starting with `-`).
//! * http(s) targets may not be link-local or unspecified addresses (169.254.0.0/16, where
//!   cloud providers serve instance metadata and credentials; fe80::/10; `0`, 0.0.0.0, `::`)
//!   nor the metadata host names. Loopback and private addresses stay allowed: deploy hooks
//!   and Bitbucket Server often live on an internal network. A host name that *resolves* to a
//!   refused address is not caught here (that needs a check at connection time).
//! * Every value is at most [`MAX_URL_BYTES`] and holds no whitespace or control characters.
//!
//! Messages name the problem, never the value: a URL may carry credentials.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Longest URL or remote accepted.
pub const MAX_URL_BYTES: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("is longer than {MAX_URL_BYTES} bytes")]
    TooLong,
    #[error("must not contain whitespace or control characters")]
    BadCharacters,
    #[error("is not a URL ({0})")]
    NotAUrl(String),
    #[error("must be an http:// or https:// URL with a host")]
    NotHttp,
    #[error("scheme {0:?} is not a git transport (use https, http, ssh, git, file, user@host:path or an absolute path)")]
    NotGitTransport(String),
    #[error("is not a git remote (use a URL, user@host:path or an absolute path)")]
    NotARemote,
    #[error("its {0} must not start with '-' (git would read it as an option)")]
    LeadingDash(&'static str),
    #[error("points at a link-local, unspecified or metadata address ({0}); such addresses reach cloud instance metadata and are refused")]
    Forbidden(String),
    #[error("must not carry credentials (user or password in the URL)")]
    Credentials,
}

/// An http(s) URL the relay will call or show.
pub fn http_url(raw: &str) -> Result<Url, TargetError> {
    let raw = checked_text(raw)?;
    let url = Url::parse(raw).map_err(|e| TargetError::NotAUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::NotHttp);
    }
    let host = url.host().ok_or(TargetError::NotHttp)?;
    check_host(&host)?;
    if let Some(why) = forbidden_host(&host) {
        return Err(TargetError::Forbidden(why));
    }
    Ok(url)
}

/// An http(s) URL that must not carry credentials (Bitbucket Server's `base_url`: the token
/// travels in a header).
pub fn http_url_without_credentials(raw: &str) -> Result<Url, TargetError> {
    let url = http_url(raw)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    Ok(url)
}

/// A git remote: a URL git understands, an scp-like `user@host:path`, or an absolute path.
pub fn git_remote(raw: &str) -> Result<(), TargetError> {
    let raw = checked_text(raw)?;
    if raw.starts_with('-') {
        return Err(TargetError::LeadingDash("value"));
    }
    if raw.starts_with('/') {
        return check_path_components(raw);
    }
    if let Ok(url) = Url::parse(raw) {
        return check_remote_url(&url);
    }
    // scp-like `user@host:path` is not a URL (no scheme), so it lands here.
    let (address, path) = raw.split_once(':').ok_or(TargetError::NotARemote)?;
    if address.contains('/') || path.is_empty() {
        return Err(TargetError::NotARemote);
    }
    let (user, host) = address.rsplit_once('@').ok_or(TargetError::NotARemote)?;
    if host.is_empty() || user.is_empty() {
        return Err(TargetError::NotARemote);
    }
    if user.starts_with('-') {
        return Err(TargetError::LeadingDash("user"));
    }
    if host.starts_with('-') {
        return Err(TargetError::LeadingDash("host"));
    }
    check_path_components(path)
}

fn check_remote_url(url: &Url) -> Result<(), TargetError> {
    let scheme = url.scheme();
    if !matches!(scheme, "https" | "http" | "ssh" | "git" | "file") {
        return Err(TargetError::NotGitTransport(scheme.to_owned()));
    }
    if url.username().starts_with('-') {
        return Err(TargetError::LeadingDash("user"));
    }
    match url.host() {
        Some(host) => {
            check_host(&host)?;
            if matches!(scheme, "http" | "https") {
                if let Some(why) = forbidden_host(&host) {
                    return Err(TargetError::Forbidden(why));
                }
            }
        }
        None if scheme == "file" => {}
        None => return Err(TargetError::NotARemote),
    }
    check_path_components(url.path())
}

/// No segment of a path may start with `-`, percent-encoded or not.
fn check_path_components(path: &str) -> Result<(), TargetError> {
    let dash = path
        .split('/')
        .any(|segment| segment.starts_with('-') || segment.to_ascii_lowercase().starts_with("%2d"));
    if dash {
        return Err(TargetError::LeadingDash("path"));
    }
    Ok(())
}

fn check_host(host: &Host<&str>) -> Result<(), TargetError> {
    match host {
        Host::Domain(name) if name.starts_with('-') => Err(TargetError::LeadingDash("host")),
        _ => Ok(()),
    }
}

fn checked_text(raw: &str) -> Result<&str, TargetError> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_BYTES {
        return Err(TargetError::TooLong);
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(TargetError::BadCharacters);
    }
    Ok(raw)
}

/// Why a host is refused as a target, if it is.
pub fn forbidden_host(host: &Host<&str>) -> Option<String> {
    match host {
        Host::Ipv4(ip) => forbidden_ip(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => forbidden_ip(IpAddr::V6(*ip)),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            matches!(name.as_str(), "metadata.google.internal" | "metadata")
                .then(|| format!("the metadata host {name}"))
        }
    }
}

/// Link-local (169.254.0.0/16, fe80::/10) and unspecified (0.0.0.0/8, ::) addresses,
/// IPv4-mapped forms included.
pub fn forbidden_ip(ip: IpAddr) -> Option<String> {
    let refused = match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    };
    refused.then(|| ip.to_string())
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    ip.is_link_local() || ip.octets()[0] == 0
}

/// Whether an address is one Bitbucket (on the internet) cannot call back: unspecified,
/// loopback, private, link-local or unique-local. Used to warn about `RELAY_PUBLIC_URL`.
pub fn is_unreachable_from_outside(host: &Host<&str>) -> bool {
    let ip = match host {
        Host::Ipv4(ip) => IpAddr::V4(*ip),
        Host::Ipv6(ip) => IpAddr::V6(*ip),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            return name == "localhost" || name.ends_with(".localhost");
        }
    };
    match ip {
        IpAddr::V4(v4) => {
            v4.is_unspecified() || v4.is_loopback() || v4.is_private() || v4.is_link_local()
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_unreachable_from_outside(&Host::Ipv4(v4)),
            None => {
                v6.is_unspecified()
                    || v6.is_loopback()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
                    || v6 == Ipv6Addr::UNSPECIFIED
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_targets() {
        for ok in [
            "https://hooks.example.com/x",
            "http://10.0.0.5:8080/hook",
            "http://127.0.0.1:9000",
            "https://u:p@example.com/",
        ] {
            assert!(http_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://0/",
            "http://0.0.0.0:80/",
            "http://[fe80::1]/",
            "http://[::]/",
            "http://[::ffff:169.254.169.254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
        ] {
            assert!(
                matches!(http_url(bad), Err(TargetError::Forbidden(_))),
                "{bad}"
            );
        }
        assert!(http_url("ftp://x").is_err());
        assert!(http_url("https://-x.example.com/").is_err());
        assert!(http_url(&format!("https://x/{}", "a".repeat(3000))).is_err());
        assert_eq!(
            http_url_without_credentials("https://u:p@h/"),
            Err(TargetError::Credentials)
        );
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
            assert_eq!(git_remote(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "ftp://x/a",
            "relative/path",
            "mailto:x@y",
            "-uhttps://x/a.git",
            "ssh://-oProxyCommand=touch%20x/a",
            "ssh://git@-oProxyCommand=x/a",
            "ssh://-user@host/a",
            "https://host/-a.git",
            "https://host/%2Dupload-pack/a",
            "-oProxyCommand=x:path",
            "git@-host:team/a.git",
            "-user@host:team/a.git",
            "git@host:-team/a.git",
            "/srv/-x/a.git",
            "https://169.254.169.254/a.git",
            "https://host/a b.git",
        ] {
            assert!(git_remote(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_url_reachability() {
        for (host, unreachable) in [
            ("0.0.0.0", true),
            ("127.0.0.1", true),
            ("192.168.1.2", true),
            ("10.1.2.3", true),
            ("localhost", true),
            ("relay.example.com", false),
            ("8.8.8.8", false),
        ] {
            let url = Url::parse(&format!("http://{host}:8080/")).unwrap();
            assert_eq!(
                is_unreachable_from_outside(&url.host().unwrap()),
                unreachable,
                "{host}"
            );
        }
        let v6 = Url::parse("http://[::1]/").unwrap();
        assert!(is_unreachable_from_outside(&v6.host().unwrap()));
    }
}
