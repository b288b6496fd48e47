//! The two pagination envelopes, as documented.
//!
//! Cloud 2.0: `{"size", "page", "pagelen", "next", "previous", "values"}`; `page` is 1-based,
//! `pagelen` is capped by the server, and `next`/`previous` are complete URLs that keep every
//! other query parameter. Server: `{"size", "limit", "isLastPage", "start", "nextPageStart",
//! "values"}` driven by `start`/`limit`; `nextPageStart` is present only when more follow.

use serde_json::{json, Value};
use url::Url;

pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One Cloud page of `values`. `self_url` is the public URL of the endpoint without query.
pub(crate) fn cloud_page(
    values: Vec<Value>,
    pairs: &[(String, String)],
    self_url: &Url,
    max_pagelen: usize,
) -> Value {
    let page: usize = param(pairs, "page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let pagelen = param(pairs, "pagelen")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(max_pagelen)
        .min(max_pagelen.max(1));
    let size = values.len();
    let start = (page - 1).saturating_mul(pagelen);
    let slice: Vec<Value> = values.into_iter().skip(start).take(pagelen).collect();
    let link = |to: usize| {
        let mut url = self_url.clone();
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs.iter().filter(|(k, _)| k != "page") {
                q.append_pair(k, v);
            }
            q.append_pair("page", &to.to_string());
        }
        url.to_string()
    };
    let mut body = json!({
        "size": size,
        "page": page,
        "pagelen": pagelen,
        "values": slice,
    });
    if start + pagelen < size {
        body["next"] = json!(link(page + 1));
    }
    if page > 1 {
        body["previous"] = json!(link(page - 1));
    }
    body
}

/// One Server page of `values`.
pub(crate) fn server_page(
    values: Vec<Value>,
    pairs: &[(String, String)],
    max_limit: usize,
) -> Value {
    let start: usize = param(pairs, "start")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let limit = param(pairs, "limit")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(max_limit)
        .min(max_limit.max(1));
    let total = values.len();
    let slice: Vec<Value> = values.into_iter().skip(start).take(limit).collect();
    let is_last = start + slice.len() >= total;
    let mut body = json!({
        "size": slice.len(),
        "limit": limit,
        "isLastPage": is_last,
        "start": start,
        "values": slice,
    });
    if !is_last {
        body["nextPageStart"] = json!(start + limit);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_pages_link_with_the_other_parameters() {
        let url = Url::parse("http://h/2.0/x").unwrap();
        let pairs = query_pairs(Some("q=state%3D%22OPEN%22&pagelen=50"));
        let p = cloud_page((0..5).map(|i| json!(i)).collect(), &pairs, &url, 2);
        assert_eq!(p["values"], json!([0, 1]));
        assert_eq!(p["size"], 5);
        let next = Url::parse(p["next"].as_str().unwrap()).unwrap();
        let next_pairs: Vec<_> = next.query_pairs().into_owned().collect();
        assert_eq!(param(&next_pairs, "q"), Some("state=\"OPEN\""));
        assert_eq!(param(&next_pairs, "page"), Some("2"));
        let last = cloud_page(
            (0..5).map(|i| json!(i)).collect(),
            &query_pairs(Some("page=3")),
            &url,
            2,
        );
        assert_eq!(last["values"], json!([4]));
        assert!(last.get("next").is_none());
        assert!(last["previous"].as_str().unwrap().contains("page=2"));
    }

    #[test]
    fn server_pages_end_at_is_last_page() {
        let vals: Vec<Value> = (0..3).map(|i| json!(i)).collect();
        let p = server_page(vals.clone(), &[], 2);
        assert_eq!(p["isLastPage"], false);
        assert_eq!(p["nextPageStart"], 2);
        let p = server_page(vals, &query_pairs(Some("start=2")), 2);
        assert_eq!(p["isLastPage"], true);
        assert!(p.get("nextPageStart").is_none());
        assert_eq!(p["values"], json!([2]));
    }
}
