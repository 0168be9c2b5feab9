//! Why a request could not be proxied, and the one place that turns that into a response.
//!
//! ```text
//!   ProxyError ──► status()            404 / 503 / 502 / 504 / 400 / 426
//!              ──► upgrade_outcome()   the `outcome` label of wsgate_websocket_upgrades_total
//!              ──► into_response()     text/plain, one line, Connection: close where the
//!                                      client's connection state is uncertain
//! ```
//!
//! Every error records which side caused it (client, backend, or configuration) so that logs can pick a
//! level: a client's mistake is `debug`, a backend that breaks the protocol is `warn`.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER, SEC_WEBSOCKET_VERSION, UPGRADE};
use http::{HeaderValue, Response, StatusCode};

use crate::metrics::UpgradeOutcome;

use super::body::ProxyBody;

/// Longest host or path echoed back in a 404 body; the rest is cut so the answer stays one short line.
const MAX_ECHOED_LEN: usize = 200;

/// A request that wsgate answers itself instead of relaying the backend's answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No route matches the request's host and path.
    #[error("no route for host {host:?} path {path:?}")]
    NoRoute { host: String, path: String },
    /// The route matched, but none of its weighted backends has a ready endpoint.
    #[error("no ready endpoint")]
    NoEndpoint,
    /// Every endpoint tried refused or did not accept the TCP connection in time.
    #[error("connecting to the backend failed: {0}")]
    Connect(#[source] io::Error),
    /// The backend accepted the connection, then reset it or spoke broken HTTP.
    #[error("the backend failed: {0}")]
    Backend(#[source] hyper::Error),
    /// The same, seen by the fast upgrade path (which speaks HTTP/1.1 to the backend itself).
    #[error("the backend failed: {0}")]
    BackendStream(#[source] io::Error),
    /// The backend answered 101 in a way RFC 6455 §4.1 tells a client to fail (a wrong
    /// `Sec-WebSocket-Accept`, no `Upgrade: websocket`, no `Connection: upgrade`); the reason is a
    /// fixed sentence.
    #[error("the backend's 101 answer is not a WebSocket handshake: {0}")]
    BadSwitch(&'static str),
    /// The backend did not answer in time.
    #[error("the backend did not answer within {0:?}")]
    Timeout(Duration),
    /// The request breaks HTTP/1.1 itself (RFC 9112 §3.2: Host missing, repeated or invalid; a request
    /// target in a form the request may not use); the reason is a fixed sentence.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The client's upgrade request breaks RFC 6455 §4.2.1; the reason is a fixed sentence.
    #[error("bad WebSocket handshake: {0}")]
    BadHandshake(&'static str),
    /// The client asked for a WebSocket version other than 13.
    #[error("unsupported WebSocket version: this server speaks version 13")]
    UnsupportedVersion,
    /// The route's admission policy refused the handshake before any backend was contacted.
    #[error("{}", .0.message())]
    Refused(Refused),
    /// The request body is larger than the route's `maxRequestBodyBytes`: 413.
    #[error("the request body is larger than this route allows ({0} bytes)")]
    BodyTooLarge(u64),
}

/// Why a route's admission policy refused a handshake: the `reason` label of `wsgate_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The `Origin` is not in the route's allow-list (or missing / `null` where those are refused): 403.
    Origin,
    /// The client offered none of the route's subprotocols: 400.
    Subprotocol,
    /// The route has `maxConnections` WebSockets open: 503 with `Retry-After`.
    RouteMaxConnections,
    /// The client has `maxConnectionsPerClient` WebSockets open on the route: 429 with `Retry-After`.
    ClientMaxConnections,
    /// The client's handshake rate is spent: 429 with `Retry-After` (seconds until the next token).
    ClientRate { retry_after_secs: u64 },
    /// The client's address is not allowed on the route (`sourceRanges`): 403, plain requests too.
    SourceRange,
}

impl Refused {
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Origin => "origin",
            Refused::Subprotocol => "subprotocol",
            Refused::RouteMaxConnections => "route_max_connections",
            Refused::ClientMaxConnections => "client_max_connections",
            Refused::ClientRate { .. } => "client_rate",
            Refused::SourceRange => "source_range",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Refused::Origin | Refused::SourceRange => StatusCode::FORBIDDEN,
            Refused::Subprotocol => StatusCode::BAD_REQUEST,
            Refused::RouteMaxConnections => StatusCode::SERVICE_UNAVAILABLE,
            Refused::ClientMaxConnections | Refused::ClientRate { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// `Retry-After` seconds, for the refusals that pass with time.
    pub fn retry_after(self) -> Option<u64> {
        match self {
            Refused::Origin | Refused::Subprotocol | Refused::SourceRange => None,
            // why 1 s: a slot frees whenever any WebSocket of the route (or client) closes; there is no
            // better estimate, and a short wait spreads the retries.
            Refused::RouteMaxConnections | Refused::ClientMaxConnections => Some(1),
            Refused::ClientRate { retry_after_secs } => Some(retry_after_secs.max(1)),
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refused::Origin => "this Origin may not open a WebSocket on this route",
            Refused::Subprotocol => {
                "the client offered none of the subprotocols this route speaks (Sec-WebSocket-Protocol)"
            }
            Refused::RouteMaxConnections => "this route has as many WebSockets open as it allows",
            Refused::ClientMaxConnections => "this client has as many WebSockets open on this route as it may",
            Refused::ClientRate { .. } => "too many WebSocket handshakes from this client",
            Refused::SourceRange => "this client address may not use this route",
        }
    }
}

/// Which party an error points at: decides the log level and whether an operator should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong; nothing to fix on our side.
    Client,
    /// The backend refused, reset, misbehaved or was slow.
    Backend,
    /// The route table has nothing for the request (no route, no endpoint).
    Config,
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::NoEndpoint => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect(_)
            | ProxyError::Backend(_)
            | ProxyError::BackendStream(_)
            | ProxyError::BadSwitch(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadRequest(_) | ProxyError::BadHandshake(_) => StatusCode::BAD_REQUEST,
            ProxyError::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            ProxyError::Refused(refused) => refused.status(),
            ProxyError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    pub fn side(&self) -> Side {
        match self {
            ProxyError::NoRoute { .. } | ProxyError::NoEndpoint => Side::Config,
            ProxyError::Connect(_)
            | ProxyError::Backend(_)
            | ProxyError::BackendStream(_)
            | ProxyError::BadSwitch(_)
            | ProxyError::Timeout(_) => Side::Backend,
            ProxyError::BadRequest(_)
            | ProxyError::BadHandshake(_)
            | ProxyError::UnsupportedVersion
            | ProxyError::Refused(_)
            | ProxyError::BodyTooLarge(_) => Side::Client,
        }
    }

    pub fn upgrade_outcome(&self) -> UpgradeOutcome {
        match self {
            ProxyError::NoRoute { .. } => UpgradeOutcome::NoRoute,
            ProxyError::NoEndpoint => UpgradeOutcome::NoEndpoint,
            ProxyError::Connect(_)
            | ProxyError::Backend(_)
            | ProxyError::BackendStream(_)
            | ProxyError::BadSwitch(_) => UpgradeOutcome::BackendError,
            ProxyError::Timeout(_) => UpgradeOutcome::Timeout,
            ProxyError::BadRequest(_)
            | ProxyError::BadHandshake(_)
            | ProxyError::UnsupportedVersion
            | ProxyError::BodyTooLarge(_) => UpgradeOutcome::BadRequest,
            ProxyError::Refused(_) => UpgradeOutcome::Refused,
        }
    }

    /// The one-line body the client reads.
    fn reason(&self) -> String {
        match self {
            ProxyError::NoRoute { host, path } => {
                format!("no route for host {:?} path {:?}\n", cut(host), cut(path))
            }
            ProxyError::NoEndpoint => "no ready endpoint for this route\n".to_string(),
            ProxyError::Connect(_) => "could not connect to the backend\n".to_string(),
            ProxyError::Backend(_) | ProxyError::BackendStream(_) => {
                "the backend closed the connection or answered with broken HTTP\n".to_string()
            }
            ProxyError::Timeout(_) => "the backend did not answer in time\n".to_string(),
            other => format!("{other}\n"),
        }
    }

    /// The response wsgate sends for this error. `upgrade` says whether the request asked for a WebSocket:
    /// a client that wanted to switch protocols and did not get to cannot reuse the connection sensibly,
    /// so those answers close it.
    pub fn into_response(self, upgrade: bool) -> Response<ProxyBody> {
        let mut response = Response::new(ProxyBody::full(Bytes::from(self.reason())));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        // why: after a refused upgrade (or a handshake we could not parse) the client may already be
        // writing WebSocket frames; closing is the only state both ends agree on.
        if upgrade || self.side() == Side::Client {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if let ProxyError::UnsupportedVersion = self {
            // RFC 6455 §4.4: the versions this server speaks. RFC 9110 §15.5.22 and §7.8: a 426 names
            // the protocol to upgrade to in `Upgrade`, and whoever sends `Upgrade` lists it in
            // `Connection`.
            headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade, close"));
        }
        if let ProxyError::Refused(refused) = self
            && let Some(seconds) = refused.retry_after()
        {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }

    /// Logs a request the proxy had to answer itself: per-request detail is `debug`; what an operator
    /// must fix (a backend breaking the protocol) is logged where it is detected, at `warn`.
    pub fn log(&self) {
        match self.side() {
            Side::Client | Side::Config => {
                tracing::debug!(error = %self, status = self.status().as_u16(), "request refused")
            }
            Side::Backend => tracing::debug!(error = %self, status = self.status().as_u16(), "backend failed"),
        }
    }
}

/// Shortens client-supplied text echoed in a body, on a character boundary.
fn cut(s: &str) -> &str {
    if s.len() <= MAX_ECHOED_LEN {
        return s;
    }
    let mut end = MAX_ECHOED_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_text(response: Response<ProxyBody>) -> String {
        let bytes = response.into_body().collect().await.expect("a full body never fails").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8 body")
    }

    #[tokio::test]
    async fn no_route_names_host_and_path() {
        let err = ProxyError::NoRoute { host: "chat.example".into(), path: "/room".into() };
        let response = err.into_response(false);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        assert!(response.headers().get(CONNECTION).is_none());
        assert_eq!(body_text(response).await, "no route for host \"chat.example\" path \"/room\"\n");
    }

    #[tokio::test]
    async fn echoed_text_is_cut() {
        let err = ProxyError::NoRoute { host: "h".repeat(5000), path: "/".into() };
        let text = body_text(err.into_response(true)).await;
        assert!(text.len() < 300, "{} bytes", text.len());
    }

    #[test]
    fn version_mismatch_advertises_13_and_closes() {
        let response = ProxyError::UnsupportedVersion.into_response(true);
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers()[SEC_WEBSOCKET_VERSION], "13");
        assert_eq!(response.headers()[UPGRADE], "websocket");
        assert_eq!(response.headers()[CONNECTION], "upgrade, close");
    }

    #[test]
    fn statuses_and_outcomes() {
        let refused = || ProxyError::Connect(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(refused().status(), StatusCode::BAD_GATEWAY);
        assert_eq!(refused().upgrade_outcome(), UpgradeOutcome::BackendError);
        assert_eq!(ProxyError::NoEndpoint.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ProxyError::Timeout(Duration::from_secs(1)).status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(ProxyError::Timeout(Duration::from_secs(1)).upgrade_outcome(), UpgradeOutcome::Timeout);
        assert_eq!(ProxyError::BadHandshake("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(ProxyError::BadSwitch("x").status(), StatusCode::BAD_GATEWAY);
    }
}
