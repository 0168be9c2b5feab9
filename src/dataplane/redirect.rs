//! The opt-in redirect of plain HTTP to HTTPS (`Policy::https_redirect`), and a route's own redirects
//! (`Policy::redirect`: a fixed URL, or `/` to an application root).
//!
//! ```text
//!   plain listener, route flagged, HTTPS listener on
//!     ─► 308 Permanent Redirect
//!        Location: https://{host as routed}{:port unless 443}{path and query as received}
//!        Content-Length: 0, Connection: close
//! ```
//!
//! WebSocket handshakes get the same answer (clients do not follow it: that is why it is opt-in). The
//! HTTPS listener never redirects.

use http::header::{CONNECTION, CONTENT_LENGTH, LOCATION};
use http::{HeaderValue, Response, StatusCode, Uri};

use crate::routes::{RedirectTarget, Route, RouteRedirect, normalize_host};

use super::Shared;
use super::body::ProxyBody;

/// The port `https://` URLs leave out.
pub const DEFAULT_HTTPS_PORT: u16 = 443;

/// The port to redirect to, when a request for `route` that came over plain HTTP (`https` false) must
/// be redirected.
pub fn port(shared: &Shared, https: bool, route: &Route) -> Option<u16> {
    if https || !route.policy.https_redirect {
        return None;
    }
    shared.https_redirect_port
}

/// The `Location` for a request to `host` (the routing host, normalized here) with target `uri`, when
/// it must be redirected.
pub fn target(shared: &Shared, https: bool, route: &Route, host: &str, uri: &Uri) -> Option<HeaderValue> {
    location(&normalize_host(host), port(shared, https, route)?, uri)
}

/// The `Location` for a request to `host` (as routed: lower-case, no port) with target `uri`, on an
/// HTTPS listener reached at `port`. `None` when the result is not a valid header value.
pub fn location(host: &str, port: u16, uri: &Uri) -> Option<HeaderValue> {
    let path = uri.path_and_query().map(|p| p.as_str()).filter(|p| p.starts_with('/')).unwrap_or("/");
    // why brackets: an IPv6 literal host is routed without them, but a URL needs them.
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    let url = match port {
        DEFAULT_HTTPS_PORT => format!("https://{host}{path}"),
        port => format!("https://{host}:{port}{path}"),
    };
    HeaderValue::try_from(url).ok()
}

/// A route's own redirect (`Policy::redirect`) for a request to `host` with target `uri`: the status
/// and `Location`, or `None` when it does not apply (`RootTo` for another path than `/`).
pub fn route_redirect(
    redirect: &RouteRedirect,
    https: bool,
    host: &str,
    uri: &Uri,
) -> Option<(StatusCode, HeaderValue)> {
    let status = StatusCode::from_u16(redirect.status).ok()?;
    let location = match &redirect.target {
        RedirectTarget::Url(url) => HeaderValue::from_str(url).ok()?,
        RedirectTarget::RootTo(path) if uri.path() == "/" => {
            let scheme = if https { "https" } else { "http" };
            HeaderValue::from_str(&format!("{scheme}://{host}{path}")).ok()?
        }
        RedirectTarget::RootTo(_) => return None,
    };
    Some((status, location))
}

/// The redirect answer (308 for the HTTPS redirect); the connection closes after it.
pub fn response(status: StatusCode, location: HeaderValue) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::empty());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(LOCATION, location);
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(host: &str, port: u16, target: &str) -> String {
        let uri: Uri = target.parse().expect("a valid request target");
        location(host, port, &uri).expect("a valid Location").to_str().expect("ASCII").to_string()
    }

    #[test]
    fn keeps_path_query_and_non_default_port() {
        assert_eq!(at("chat.example.com", 443, "/room?id=7&x"), "https://chat.example.com/room?id=7&x");
        assert_eq!(at("chat.example.com", 8443, "/"), "https://chat.example.com:8443/");
        assert_eq!(at("chat.example.com", 443, "http://Chat.Example.com:80/a?b"), "https://chat.example.com/a?b");
        assert_eq!(at("::1", 443, "/"), "https://[::1]/");
    }
}
