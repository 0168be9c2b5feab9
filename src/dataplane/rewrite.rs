//! A route's request rewrite (`Policy::rewrite`), applied to the head the backend gets, after the
//! hop-by-hop cleanup and the forwarding headers, on plain requests and WebSocket handshakes alike.
//!
//! ```text
//!   path    pattern matches the path ─► the replacement, captures expanded; the query is kept
//!   host    Host replaced (X-Forwarded-Host keeps what the client sent)
//!   headers set, replacing the client's
//! ```

use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Uri};

use crate::routes::RequestRewrite;

/// Rewrites `parts` (already in origin form) as the route asks.
pub fn apply(rewrite: &RequestRewrite, parts: &mut http::request::Parts) {
    if rewrite.is_empty() {
        return;
    }
    if let Some(path) = &rewrite.path
        && let Some(new_path) = path.apply(parts.uri.path())
    {
        let new_path = if new_path.starts_with('/') { new_path } else { format!("/{new_path}") };
        let target = match parts.uri.query() {
            Some(query) => format!("{new_path}?{query}"),
            None => new_path,
        };
        // A replacement that makes no valid target (a space from a capture) leaves the path as it was.
        if let Ok(target) = target.parse::<PathAndQuery>() {
            parts.uri = Uri::from(target);
        }
    }
    if let Some(host) = &rewrite.host
        && let Ok(value) = HeaderValue::from_str(host)
    {
        parts.headers.insert(HOST, value);
    }
    for (name, value) in &rewrite.set_headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            parts.headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{PathRewrite, Pattern};

    fn parts(target: &str) -> http::request::Parts {
        let (parts, ()) =
            http::Request::get(target).header(HOST, "app.example.com").body(()).expect("request").into_parts();
        parts
    }

    #[test]
    fn the_path_is_rewritten_with_captures_and_the_query_kept() {
        let rewrite = RequestRewrite {
            path: Some(PathRewrite {
                pattern: Pattern::prefix("(?i)/api(/|$)(.*)").expect("pattern"),
                replacement: "/$2".into(),
            }),
            host: Some("internal.svc".into()),
            set_headers: vec![("x-forwarded-prefix".into(), "/api".into())],
        };
        let mut request = parts("/API/users/7?full=1");
        apply(&rewrite, &mut request);
        assert_eq!(request.uri.to_string(), "/users/7?full=1");
        assert_eq!(request.headers[HOST], "internal.svc");
        assert_eq!(request.headers["x-forwarded-prefix"], "/api");
        let mut request = parts("/api");
        apply(&rewrite, &mut request);
        assert_eq!(request.uri.to_string(), "/", "an empty capture is the root");
        let mut request = parts("/other/api/x");
        apply(&rewrite, &mut request);
        assert_eq!(request.uri.to_string(), "/other/api/x", "no match at the start: unchanged");
    }
}
