//! What the relay shows of a URL that may carry credentials: the one function every log line,
//! CLI output, API answer and page goes through.

use url::Url;

/// Hides the password of a URL's userinfo, for display.
pub fn url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("*****"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(url("https://u:pw@host/x.git"), "https://u:*****@host/x.git");
        assert_eq!(url("https://host/x"), "https://host/x");
    }
}
