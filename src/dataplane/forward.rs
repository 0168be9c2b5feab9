//! Plain HTTP requests: the request head is cleaned and forwarded, bodies stream both ways.
//!
//! ```text
//!   request ─► strip hop-by-hop, keep Host, add X-Forwarded-* ─► pick endpoint (balancer)
//!     ─► pooled connection? try_send_request ── not sent (closed meanwhile) ─► fresh connection
//!     └► fresh connection ── connect fails ─► next endpoint (at most MAX_TRIES distinct ones)
//!   response head within RESPONSE_HEADER_TIMEOUT (else 504) ─► strip hop-by-hop ─► client
//!   response body streams through; the endpoint's lease ends with it and the connection returns
//!   to the pool once the exchange is over
//! ```
//!
//! Only connect failures are retried: once a request has been written, the body is gone and the backend
//! may have acted on it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use tracing::{Span, debug, warn};

use crate::routes::Route;

use super::Shared;
use super::access;
use super::balancer::{Lease, Pick};
use super::body::ProxyBody;
use super::error::{ProxyError, Side};
use super::headers::{ClientAddr, remove_hop_by_hop, set_forwarded};
use super::pool::{self, Sender};

/// Distinct endpoints tried for one request or handshake before answering 502.
pub const MAX_TRIES: usize = 3;
/// How long a backend may take to send the response head of a plain request before the client gets a
/// 504. Generous, because long-polling endpoints legitimately hold requests; body transfer after the
/// head has no limit.
pub const RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(60);

/// Proxies one plain request along `route`, counts it and, with `access`, writes its access line.
pub async fn proxy(
    shared: &Shared,
    client: &ClientAddr,
    req: Request<Incoming>,
    route: &Route,
    access: Option<Box<access::Request>>,
) -> Response<ProxyBody> {
    let bytes_up = access.as_ref().and_then(|_| access::content_length(req.headers()));
    let mut picked = None;
    let response = match forward(shared, client, req, route, &mut picked).await {
        Ok(response) => response,
        Err(error) => {
            log_failure(&error);
            error.into_response(false)
        }
    };
    shared.metrics.http_requests_total.with_label_values(&[&*route.id, response.status().as_str()]).inc();
    if let Some(access) = access {
        let bytes = access::Bytes { up: bytes_up, down: access::content_length(response.headers()) };
        access::answered(&access, response.status().as_u16(), Some(route), picked.as_ref(), bytes);
    }
    response
}

/// Logs a request the proxy had to answer itself: per-request detail is `debug`; what an operator must
/// fix (a backend breaking the protocol) is logged where it is detected, at `warn`.
pub fn log_failure(error: &ProxyError) {
    match error.side() {
        Side::Client | Side::Config => debug!(%error, status = error.status().as_u16(), "request refused"),
        Side::Backend => debug!(%error, status = error.status().as_u16(), "backend failed"),
    }
}

/// Rewrites the client's request head for the backend: origin-form URI, HTTP/1.1, no hop-by-hop headers,
/// Host kept, forwarding headers set.
///
/// The Host sent is the one the request was routed by (`host::routing_host`): an absolute-form target's
/// authority replaces the Host header (RFC 9112 §3.2.2), and a request without one (HTTP/1.0) gets an
/// empty Host, since the backend is spoken to in HTTP/1.1, where Host is required (§3.2).
pub fn prepare_head(parts: &mut http::request::Parts, client: &ClientAddr) {
    let target_authority = match (parts.uri.scheme(), parts.uri.authority()) {
        (Some(_), Some(authority)) => HeaderValue::from_str(authority.as_str()).ok(),
        _ => None,
    };
    let host = target_authority.or_else(|| parts.headers.get(HOST).cloned());
    remove_hop_by_hop(&mut parts.headers);
    set_forwarded(&mut parts.headers, client, host.as_ref());
    if host.is_none() {
        parts.headers.insert(HOST, HeaderValue::from_static(""));
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
    }
    parts.version = Version::HTTP_11;
    // why: extensions are per-connection state of the client side (e.g. hyper's upgrade handle).
    parts.extensions.clear();
}

async fn forward(
    shared: &Shared,
    client: &ClientAddr,
    req: Request<Incoming>,
    route: &Route,
    picked: &mut Option<Pick>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    prepare_head(&mut parts, client);
    let mut req = Request::from_parts(parts, body);

    // why a fixed array: no allocation for the handful of addresses tried.
    let mut tried = [SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)); MAX_TRIES];
    let mut attempts = 0;
    let mut last_error = None;
    let (response, sender, lease) = loop {
        let next = (attempts < MAX_TRIES).then(|| shared.balancer.pick_explained(route, &tried[..attempts]));
        let lease = match next.flatten() {
            Some((lease, pick)) => {
                *picked = Some(pick);
                lease
            }
            None => return Err(last_error.unwrap_or(ProxyError::NoEndpoint)),
        };
        let addr = lease.addr();
        tried[attempts] = addr;
        attempts += 1;
        Span::current().record("endpoint", tracing::field::display(addr));

        if let Some(mut sender) = shared.pool.checkout(addr) {
            match tokio::time::timeout(RESPONSE_HEADER_TIMEOUT, sender.try_send_request(req)).await {
                Ok(Ok(response)) => break (response, sender, lease),
                Ok(Err(mut error)) => match error.take_message() {
                    // The pooled connection closed before the request went out: nothing was sent, so
                    // a fresh connection to the same endpoint is safe.
                    Some(unsent) => req = unsent,
                    None => return Err(ProxyError::Backend(error.into_error())),
                },
                Err(_) => return Err(ProxyError::Timeout(RESPONSE_HEADER_TIMEOUT)),
            }
        }

        let stream = match pool::connect(addr, pool::CONNECT_TIMEOUT).await {
            Ok(stream) => {
                shared.balancer.connected(addr);
                stream
            }
            Err(error) => {
                note_connect_failure(shared, addr, &error);
                last_error = Some(ProxyError::Connect(error));
                continue;
            }
        };
        let mut sender: Sender = pool::handshake(stream, false).await.map_err(ProxyError::Backend)?;
        match tokio::time::timeout(RESPONSE_HEADER_TIMEOUT, sender.send_request(req)).await {
            Ok(Ok(response)) => break (response, sender, lease),
            Ok(Err(error)) => return Err(ProxyError::Backend(error)),
            Err(_) => return Err(ProxyError::Timeout(RESPONSE_HEADER_TIMEOUT)),
        }
    };
    relay_response(shared, response, sender, lease)
}

fn relay_response(
    shared: &Shared,
    response: Response<Incoming>,
    sender: Sender,
    lease: Lease,
) -> Result<Response<ProxyBody>, ProxyError> {
    let addr = lease.addr();
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    debug!(status = parts.status.as_u16(), "backend answered");
    shared.pool.checkin(addr, sender);
    Ok(Response::from_parts(parts, ProxyBody::relayed(body, Some(lease))))
}

/// Counts a failed connect for ejection; an ejection is something an operator should see.
pub fn note_connect_failure(shared: &Shared, addr: SocketAddr, error: &std::io::Error) {
    debug!(endpoint = %addr, %error, "connect failed");
    if shared.balancer.connect_failed(addr) {
        warn!(
            endpoint = %addr,
            %error,
            seconds = super::balancer::EJECTION.as_secs(),
            "endpoint ejected after repeated connect failures"
        );
    }
}
