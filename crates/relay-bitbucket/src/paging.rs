//! URL building and the two pagination envelopes.

use serde_json::Value;
use url::Url;

use crate::error::{Error, Result};

/// Upper bound on pages per listing: a server that keeps answering `next` must not keep a
/// worker forever.
pub(crate) const MAX_PAGES: usize = 1000;

/// `base` + path segments, each percent-encoded; keeps any path prefix of `base` (proxies).
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Result<Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| Error::Config(format!("{base} cannot be a base URL")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Cloud: `values` and the complete `next` URL, if any.
pub(crate) fn cloud_page(body: Value) -> Result<(Vec<Value>, Option<String>)> {
    let Value::Object(mut map) = body else {
        return Err(Error::InvalidResponse("page is not a JSON object".into()));
    };
    let values = match map.remove("values") {
        Some(Value::Array(values)) => values,
        _ => return Err(Error::InvalidResponse("page without a values array".into())),
    };
    let next = match map.remove("next") {
        Some(Value::String(next)) if !next.is_empty() => Some(next),
        None | Some(Value::Null) | Some(Value::String(_)) => None,
        Some(_) => return Err(Error::InvalidResponse("page `next` is not a URL".into())),
    };
    Ok((values, next))
}

/// Server: `values` and `nextPageStart` unless `isLastPage`.
pub(crate) fn server_page(body: Value) -> Result<(Vec<Value>, Option<u64>)> {
    let Value::Object(mut map) = body else {
        return Err(Error::InvalidResponse("page is not a JSON object".into()));
    };
    let values = match map.remove("values") {
        Some(Value::Array(values)) => values,
        _ => return Err(Error::InvalidResponse("page without a values array".into())),
    };
    let last = map
        .get("isLastPage")
        .and_then(Value::as_bool)
        .ok_or_else(|| Error::InvalidResponse("page without isLastPage".into()))?;
    if last {
        return Ok((values, None));
    }
    let next = map
        .get("nextPageStart")
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::InvalidResponse("page without nextPageStart".into()))?;
    Ok((values, Some(next)))
}

/// The `next` link must stay on the API's origin: the bearer token goes with it.
pub(crate) fn checked_next(api_base: &Url, next: &str) -> Result<Url> {
    let url = Url::parse(next)
        .map_err(|e| Error::InvalidResponse(format!("page `next` is not a URL: {e}")))?;
    if url.origin() != api_base.origin() {
        return Err(Error::InvalidResponse(format!(
            "page `next` leaves the API host ({})",
            url.origin().ascii_serialization()
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_keep_prefixes_and_encode() {
        let base = Url::parse("https://proxy.example/bb/").unwrap();
        let url = endpoint(&base, &["2.0", "repositories", "w s", "r"]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://proxy.example/bb/2.0/repositories/w%20s/r"
        );
        let bare = Url::parse("https://api.bitbucket.org").unwrap();
        assert_eq!(
            endpoint(&bare, &["2.0", "x"]).unwrap().as_str(),
            "https://api.bitbucket.org/2.0/x"
        );
    }

    #[test]
    fn envelopes() {
        let (v, next) = cloud_page(json!({"values": [1], "next": "http://h/p?page=2"})).unwrap();
        assert_eq!((v.len(), next.as_deref()), (1, Some("http://h/p?page=2")));
        assert!(cloud_page(json!({"next": "x"})).is_err());
        let (_, next) =
            server_page(json!({"values": [], "isLastPage": false, "nextPageStart": 25})).unwrap();
        assert_eq!(next, Some(25));
        assert!(server_page(json!({"values": []})).is_err());
        assert!(server_page(json!({"values": [], "isLastPage": false})).is_err());
    }

    #[test]
    fn next_must_stay_on_the_api_host() {
        let api = Url::parse("https://api.bitbucket.org").unwrap();
        assert!(checked_next(&api, "https://api.bitbucket.org/2.0/x?page=2").is_ok());
        assert!(checked_next(&api, "https://evil.example/2.0/x").is_err());
    }
}
