//! Plain HTTP requests, after the pipeline's route phase: the request head is cleaned and forwarded,
//! bodies stream both ways.
//!
//! ```text
//!   request ─► strip hop-by-hop, keep Host, add X-Forwarded-* ─► pick endpoint (balancer; the
//!              affinity key of a consistent-hash route, and its Set-Cookie on the answer)
//!     ─► pooled connection? try_send_request ── not sent (closed meanwhile) ─► fresh connection
//!     └► fresh connection ── connect fails ─► next endpoint (at most MAX_TRIES distinct ones)
//!   response head within RESPONSE_HEADER_TIMEOUT (else 504) ─► strip hop-by-hop ─► client
//!   response body streams through; the endpoint's lease ends with it and the connection returns
//!   to the pool once the exchange is over
//! ```
//!
//! Only connect failures are retried: once a request has been written, the body is gone and the backend
//! may have acted on it.

use std::time::Duration;

use http::header::SET_COOKIE;
use http::{Request, Response};
use hyper::body::Incoming;
use tracing::debug;

use crate::routes::Route;

use super::Shared;
use super::access;
use super::balancer::{Lease, Pick};
use super::body::{ProxyBody, RequestBody, TooLarge};
use super::conn::Conn;
use super::error::ProxyError;
use super::headers::{ClientAddr, prepare_head, remove_hop_by_hop};
use super::pipeline::{self, Attempts, Trail};
use super::pool::{self, Sender};

/// How long a backend may take to send the response head of a plain request before the client gets a
/// 504. Generous, because long-polling endpoints legitimately hold requests; body transfer after the
/// head has no limit.
pub const RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(60);

/// Proxies one plain request along `route` (the pipeline's route phase found it), then counts it and
/// writes its access line through `trail`.
pub async fn proxy(
    shared: &Shared,
    conn: &Conn,
    req: Request<Incoming>,
    route: &Route,
    mut trail: Trail,
) -> Response<ProxyBody> {
    let bytes_up = trail.access.as_ref().and_then(|_| access::content_length(req.headers()));
    let mut cors = route.policy.cors.as_ref().and_then(|cors| super::cors::headers(cors, req.headers()));
    if req.method() == http::Method::OPTIONS
        && let Some(cors) = cors.take()
    {
        // A preflight from an allowed origin is answered here, as ingress-nginx answers it.
        let response = super::cors::preflight(cors);
        trail.finish_plain(shared, response.status(), access::Bytes::default());
        return response;
    }
    let (parts, body) = req.into_parts();
    let affinity = pipeline::affinity(shared, conn, route, &parts, &mut trail);
    let req = Request::from_parts(parts, body);
    let key = affinity.as_ref().map(|a| a.key);
    let mut response = match forward(shared, &conn.addr, req, route, key, &mut trail.picked).await {
        Ok(response) => response,
        Err(error) => return trail.rescue(shared, error, false).into_response(),
    };
    // why on every answer to a client without the cookie: the first request (socket.io's long-poll)
    // must pin the client before it upgrades.
    if let Some(cookie) = affinity.and_then(|a| a.set_cookie) {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    if let Some(cors) = cors {
        super::cors::apply(response.headers_mut(), cors);
    }
    let bytes = access::Bytes { up: bytes_up, down: access::content_length(response.headers()) };
    trail.finish_plain(shared, response.status(), bytes);
    response
}

async fn forward(
    shared: &Shared,
    client: &ClientAddr,
    req: Request<Incoming>,
    route: &Route,
    key: Option<u64>,
    picked: &mut Option<Pick>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let limit = route.policy.max_request_body_bytes;
    if let Some(limit) = limit
        && access::content_length(&parts.headers).is_some_and(|length| length > limit)
    {
        // Refused before anything reaches a backend, as ingress-nginx's client_max_body_size does.
        return Err(ProxyError::BodyTooLarge(limit));
    }
    prepare_head(&mut parts, client);
    super::rewrite::apply(&route.policy.rewrite, &mut parts);
    let mut req = Request::from_parts(parts, RequestBody::new(body, limit));

    let mut attempts = Attempts::new();
    let (response, sender, lease) = loop {
        let lease = attempts.next(shared, route, key, picked)?;
        let addr = lease.addr();

        if let Some(mut sender) = shared.pool.checkout(addr) {
            match tokio::time::timeout(RESPONSE_HEADER_TIMEOUT, sender.try_send_request(req)).await {
                Ok(Ok(response)) => break (response, sender, lease),
                Ok(Err(mut error)) => match error.take_message() {
                    // The pooled connection closed before the request went out: nothing was sent, so
                    // a fresh connection to the same endpoint is safe.
                    Some(unsent) => req = unsent,
                    None => return Err(backend_error(error.into_error())),
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
                attempts.failed(shared, addr, error);
                continue;
            }
        };
        let mut sender: Sender = pool::handshake(stream, false).await.map_err(ProxyError::Backend)?;
        match tokio::time::timeout(RESPONSE_HEADER_TIMEOUT, sender.send_request(req)).await {
            Ok(Ok(response)) => break (response, sender, lease),
            Ok(Err(error)) => return Err(backend_error(error)),
            Err(_) => return Err(ProxyError::Timeout(RESPONSE_HEADER_TIMEOUT)),
        }
    };
    relay_response(shared, response, sender, lease)
}

/// A failed exchange: the client's fault when its body passed the route's limit (413), else the
/// backend's.
fn backend_error(error: hyper::Error) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(TooLarge(limit)) = cause.downcast_ref::<TooLarge>() {
            return ProxyError::BodyTooLarge(*limit);
        }
        source = cause.source();
    }
    ProxyError::Backend(error)
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
