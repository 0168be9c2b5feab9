//! The one decision pipeline every request and every WebSocket handshake goes through, whichever codec
//! read it (the first-request reader in `fast_upgrade`, hyper in `server`, HTTP/2 streams later). The
//! codecs only read a head and write the [`Answer`]; every decision, metric and access line is here.
//!
//! ```text
//!   route   host (RFC 9112 §3.2) ─► load the table once ─► lookup ─► HTTPS redirect?
//!             │ 400 / 404 / 308                                        (plain requests: on to forward)
//!   admit   RFC 6455 handshake (400 / 426) ─► Origin (403) ─► subprotocols (400)
//!             ─► limits: route, client, handshake rate (503 / 429 + Retry-After) ─► affinity key
//!   pick    balancer (least connections | round robin | consistent hash with bounded load)
//!   connect next endpoint on a failed connect (at most MAX_TRIES), within the handshake timeout
//!   backend handshake  request head ─► answer head ─ not 101: its body (≤ 64 KiB) relayed, closed
//!                                                  ─ 101 with a wrong accept: 502
//!   switch  101 to the client (hop-by-hop rewritten, Set-Cookie when wsgate made the affinity cookie)
//!   session TunnelSetup (session.rs): the tunnel task owns the sockets, lease, permit and metrics
//!
//!   rescue  every error above ─► one response (error.rs) + metrics + access line (`Trail::finish`)
//! ```
//!
//! A handshake answered with anything but 101 always closes the client connection, on every codec: a
//! client that wanted to switch protocols may already be sending frames.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::header::{
    CONNECTION, CONTENT_LENGTH, ORIGIN, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, SET_COOKIE,
    UPGRADE,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tracing::{Span, debug, warn};

use crate::metrics::UpgradeOutcome;
use crate::routes::policy::OriginVerdict;
use crate::routes::{HashOn, LoadBalancing, OriginPolicy, RequestView, Route, normalize_host};

use super::Shared;
use super::access::{self, Kind, Session};
use super::affinity::{self, Affinity};
use super::balancer::{Lease, Pick};
use super::conn::Conn;
use super::error::{ProxyError, Refused};
use super::handshake;
use super::headers::{X_FORWARDED_FOR, prepare_head, remove_hop_by_hop};
use super::limits::Permit;
use super::session::TunnelSetup;
use super::wire::{self, Framing};
use super::{host, pool, redirect};

/// Distinct endpoints tried for one request or handshake before answering 502.
pub const MAX_TRIES: usize = 3;

/// What a codec writes back for a handshake.
pub enum Answer {
    /// The backend switched: write the 101 with these headers, then run the tunnel.
    Switched(Box<Switched>),
    /// Anything else: write it and close the connection.
    Respond(Reply),
}

/// A handshake that switched: the 101's headers, the backend socket and what the tunnel needs.
pub struct Switched {
    pub headers: HeaderMap,
    pub backend: TcpStream,
    /// Bytes the backend sent past its 101 (the first frames, usually none).
    pub backend_buffered: Bytes,
    pub setup: TunnelSetup,
}

/// A complete answer wsgate writes itself (an error, a refusal relayed from the backend, a redirect).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The same answer as hyper's response.
    pub fn into_response(self) -> http::Response<super::body::ProxyBody> {
        let mut response = http::Response::new(super::body::ProxyBody::full(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }

    fn from_error(error: ProxyError, upgrade: bool) -> Reply {
        let (parts, body) = error.into_response(upgrade).into_parts();
        let body = match body {
            super::body::ProxyBody::Full(Some(bytes)) => bytes,
            _ => Bytes::new(),
        };
        Reply { status: parts.status, headers: parts.headers, body }
    }
}

/// Why the route phase stopped a request before it had a route to proxy on.
pub enum Stop {
    Error(ProxyError),
    /// The route redirects: plain HTTP to HTTPS (308), or its own redirect (`Policy::redirect`).
    Redirect(StatusCode, HeaderValue),
}

impl From<ProxyError> for Stop {
    fn from(error: ProxyError) -> Stop {
        Stop::Error(error)
    }
}

/// What one exchange did, written down as it goes: the route it got, the endpoint picked, the access
/// record. `finish_*` counts it and writes its access line: the rescue point.
pub struct Trail {
    kind: Kind,
    started: Instant,
    pub access: Option<Box<access::Request>>,
    pub route: Option<Arc<Route>>,
    pub picked: Option<Pick>,
}

impl Trail {
    pub fn new(kind: Kind) -> Trail {
        Trail { kind, started: Instant::now(), access: None, route: None, picked: None }
    }

    /// The route phase: which host the request is for, the route in the table of this moment, and
    /// whether it is redirected to HTTPS.
    pub fn route(&mut self, shared: &Shared, conn: &Conn, parts: &http::request::Parts) -> Result<Arc<Route>, Stop> {
        let path = parts.uri.path();
        let host = match host::routing_host(&parts.method, parts.version, &parts.uri, &parts.headers) {
            Ok(host) => host,
            Err(error) => {
                self.open_access(shared, conn, parts, "");
                return Err(error.into());
            }
        };
        self.open_access(shared, conn, parts, &normalize_host(host));
        let table = shared.table.load();
        shared.balancer.observe(&table);
        let request = RequestView { host, path, query: parts.uri.query(), headers: Some(&parts.headers) };
        let Some(route) = table.lookup_request(&request) else {
            return Err(ProxyError::NoRoute { host: normalize_host(host).into_owned(), path: path.to_string() }.into());
        };
        Span::current().record("route", &*route.id);
        self.route = Some(Arc::clone(route));
        if let Some(location) = redirect::target(shared, conn.addr.is_https(), route, host, &parts.uri) {
            return Err(Stop::Redirect(StatusCode::PERMANENT_REDIRECT, location));
        }
        if route.policy.force_https_redirect
            && !conn.addr.is_https()
            && !forwarded_https(shared, conn, &parts.headers)
            && let Some(location) = redirect::location(
                &normalize_host(host),
                shared.https_redirect_port.unwrap_or(redirect::DEFAULT_HTTPS_PORT),
                &parts.uri,
            )
        {
            return Err(Stop::Redirect(StatusCode::PERMANENT_REDIRECT, location));
        }
        if let Some((status, location)) = route
            .policy
            .redirect
            .as_ref()
            .and_then(|r| redirect::route_redirect(r, conn.addr.is_https(), host, &parts.uri))
        {
            return Err(Stop::Redirect(status, location));
        }
        // After the redirect, as ingress-nginx orders them: a refused client is told so on HTTPS.
        if let Some(ranges) = &route.policy.source_ranges
            && !ranges.allows(client_ip(shared, conn, &parts.headers))
        {
            return Err(ProxyError::Refused(Refused::SourceRange).into());
        }
        Ok(Arc::clone(route))
    }

    fn open_access(&mut self, shared: &Shared, conn: &Conn, parts: &http::request::Parts, host: &str) {
        if shared.access_log {
            let client = client_ip(shared, conn, &parts.headers);
            self.access =
                Some(access::Request::new(self.kind, &conn.addr, client, &parts.method, host, parts.uri.path()));
        }
    }

    fn route_id(&self) -> &str {
        self.route.as_ref().map_or("", |r| &r.id)
    }

    /// Counts a plain request's answer and writes its access line.
    pub fn finish_plain(self, shared: &Shared, status: StatusCode, bytes: access::Bytes) {
        shared.metrics.http_requests_total.with_label_values(&[self.route_id(), status.as_str()]).inc();
        if let Some(access) = &self.access {
            access::answered(access, status.as_u16(), self.route.as_deref(), self.picked.as_ref(), bytes);
        }
    }

    /// Counts a handshake answered with anything but 101 and writes its access line.
    fn finish_refused(self, shared: &Shared, status: StatusCode, outcome: UpgradeOutcome) {
        self.count_upgrade(shared, outcome);
        if let Some(access) = &self.access {
            let bytes = access::Bytes::default();
            access::answered(access, status.as_u16(), self.route.as_deref(), self.picked.as_ref(), bytes);
        }
    }

    fn count_upgrade(&self, shared: &Shared, outcome: UpgradeOutcome) {
        let metrics = &shared.metrics;
        let route = self.route_id();
        metrics.websocket_upgrades_total.with_label_values(&[route, outcome.as_str()]).inc();
        let reached_backend = matches!(
            outcome,
            UpgradeOutcome::Success | UpgradeOutcome::Rejected | UpgradeOutcome::BackendError | UpgradeOutcome::Timeout
        );
        if reached_backend {
            // Requests refused before a backend was involved would only add zeros to the latency histogram.
            let elapsed = self.started.elapsed().as_secs_f64();
            metrics.websocket_handshake_duration_seconds.with_label_values(&[route]).observe(elapsed);
        }
        debug!(outcome = outcome.as_str(), "upgrade answered");
    }

    /// The answer for a request the route phase stopped, counted (plain requests and handshakes alike).
    pub fn stop(self, shared: &Shared, stop: Stop, upgrade: bool) -> Reply {
        match stop {
            Stop::Redirect(status, location) => {
                let (parts, _) = redirect::response(status, location).into_parts();
                debug!(route = self.route_id(), %status, "redirected");
                // Counted as an HTTP answer even for handshakes: the client is sent elsewhere.
                self.finish_plain(shared, parts.status, access::Bytes::default());
                Reply { status: parts.status, headers: parts.headers, body: Bytes::new() }
            }
            Stop::Error(error) => self.rescue(shared, error, upgrade),
        }
    }

    /// The rescue point: an error becomes its response, its metrics and its access line.
    pub fn rescue(mut self, shared: &Shared, error: ProxyError, upgrade: bool) -> Reply {
        error.log();
        if let ProxyError::Refused(refused) = &error {
            shared.metrics.refused_total.with_label_values(&[self.route_id(), refused.reason()]).inc();
            if let Some(access) = &mut self.access {
                access.set_refused(refused.reason());
            }
        }
        let outcome = error.upgrade_outcome();
        let reply = Reply::from_error(error, upgrade);
        if upgrade {
            self.finish_refused(shared, reply.status, outcome);
        } else {
            self.finish_plain(shared, reply.status, access::Bytes::default());
        }
        reply
    }
}

/// The client's address for policies and logs: the socket peer (or the PROXY protocol source), or,
/// when that peer is a trusted proxy, the address `X-Forwarded-For` names (see `client_ip`).
/// Whether a `--trusted-proxies` peer says the client came over HTTPS (`X-Forwarded-Proto: https`, its
/// last value: the one the nearest proxy wrote).
fn forwarded_https(shared: &Shared, conn: &Conn, headers: &HeaderMap) -> bool {
    shared.trusted_proxies.is_trusted(conn.addr.ip())
        && headers
            .get_all(&super::headers::X_FORWARDED_PROTO)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

pub fn client_ip(shared: &Shared, conn: &Conn, headers: &HeaderMap) -> IpAddr {
    let peer = conn.addr.ip();
    if shared.trusted_proxies.is_empty() {
        return peer;
    }
    let values = headers.get_all(&X_FORWARDED_FOR).into_iter().map(HeaderValue::as_bytes);
    super::client_ip::client_from_forwarded_for(peer, values, &shared.trusted_proxies)
}

/// The affinity key of a request on `route`, when the route hashes.
pub fn affinity(
    shared: &Shared,
    conn: &Conn,
    route: &Route,
    parts: &http::request::Parts,
    trail: &mut Trail,
) -> Option<Affinity> {
    let LoadBalancing::ConsistentHash(hash) = &route.policy.load_balancing else { return None };
    let mut found = affinity::key(&hash.on, &parts.headers, &parts.uri, client_ip(shared, conn, &parts.headers))?;
    if let HashOn::Cookie(cookie) = &hash.on
        && cookie.secure_on_https
        && !cookie.secure
        && (conn.addr.is_https() || forwarded_https(shared, conn, &parts.headers))
        && let Some(set_cookie) = found.set_cookie.as_ref().and_then(|v| v.to_str().ok())
    {
        found.set_cookie = HeaderValue::from_str(&format!("{set_cookie}; Secure")).ok();
    }
    if let Some(access) = &mut trail.access {
        access.set_affinity(found.source);
    }
    Some(found)
}

/// The endpoints one request or handshake tries: the balancer's picks, each endpoint at most once.
pub struct Attempts {
    tried: [SocketAddr; MAX_TRIES],
    count: usize,
    last_error: Option<ProxyError>,
}

impl Attempts {
    pub fn new() -> Attempts {
        // why a fixed array: no allocation for the handful of addresses tried.
        Attempts { tried: [SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)); MAX_TRIES], count: 0, last_error: None }
    }

    /// The next endpoint to try, or the error to answer with when none is left (the last connect
    /// error, or no endpoint at all).
    pub fn next(
        &mut self,
        shared: &Shared,
        route: &Route,
        key: Option<u64>,
        picked: &mut Option<Pick>,
    ) -> Result<Lease, ProxyError> {
        let next =
            (self.count < MAX_TRIES).then(|| shared.balancer.pick_explained(route, &self.tried[..self.count], key));
        let Some((lease, pick)) = next.flatten() else {
            return Err(self.last_error.take().unwrap_or(ProxyError::NoEndpoint));
        };
        *picked = Some(pick);
        self.tried[self.count] = lease.addr();
        self.count += 1;
        Span::current().record("endpoint", tracing::field::display(lease.addr()));
        Ok(lease)
    }

    /// Records a failed connect to `addr` (counted for ejection); the next pick moves on.
    pub fn failed(&mut self, shared: &Shared, addr: SocketAddr, error: io::Error) {
        debug!(endpoint = %addr, %error, "connect failed");
        if shared.balancer.connect_failed(addr) {
            warn!(
                endpoint = %addr,
                %error,
                seconds = super::balancer::EJECTION.as_secs(),
                "endpoint ejected after repeated connect failures"
            );
        }
        self.last_error = Some(ProxyError::Connect(error));
    }
}

/// One WebSocket handshake, from its head to the answer a codec writes. `parts` is the client's
/// request head (its body, if any, is never read: a handshake with one is refused).
pub async fn handshake(shared: &Arc<Shared>, conn: &Arc<Conn>, parts: http::request::Parts) -> Answer {
    let mut trail = Trail::new(Kind::WebSocket);
    let route = match trail.route(shared, conn, &parts) {
        Ok(route) => route,
        Err(stop) => return Answer::Respond(trail.stop(shared, stop, true)),
    };
    match proxy(shared, conn, &route, parts, &mut trail).await {
        Ok(Done::Switched(mut switched)) => {
            trail.count_upgrade(shared, UpgradeOutcome::Success);
            // The session's line is written by the tunnel task, when it ends.
            if let (Some(request), Some(picked)) = (trail.access.take(), trail.picked) {
                switched.setup.set_access(Session::open(request, &route, picked, &conn.drain));
            }
            Answer::Switched(switched)
        }
        Ok(Done::Refused(reply)) => {
            trail.finish_refused(shared, reply.status, UpgradeOutcome::Rejected);
            Answer::Respond(reply)
        }
        Err(error) => Answer::Respond(trail.rescue(shared, error, true)),
    }
}

enum Done {
    Switched(Box<Switched>),
    /// The backend answered with something other than 101: relayed.
    Refused(Reply),
}

/// admit ─► pick + connect ─► backend handshake ─► switch.
async fn proxy(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    route: &Arc<Route>,
    mut parts: http::request::Parts,
    trail: &mut Trail,
) -> Result<Done, ProxyError> {
    let handshake = handshake::validate(&parts.method, parts.version, &parts.headers)?;
    let admitted = admit(shared, conn, route, &parts, trail)?;
    let affinity = affinity(shared, conn, route, &parts, trail);

    prepare_head(&mut parts, &conn.addr);
    super::rewrite::apply(&route.policy.rewrite, &mut parts);
    // why set explicitly: the hop-by-hop cleanup removed them, and the backend must see exactly these.
    parts.headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    parts.headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    parts.headers.insert(SEC_WEBSOCKET_KEY, handshake.key.clone());
    parts.headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    if let Some(offered) = admitted.subprotocols {
        parts.headers.insert(SEC_WEBSOCKET_PROTOCOL, offered);
    }
    let mut request = Vec::with_capacity(512);
    wire::encode_request(&mut request, &parts);
    drop(parts);

    let timeout = route.policy.handshake_timeout;
    let key = affinity.as_ref().map(|a| a.key);
    let exchange = ask(shared, route, &request, key, &mut trail.picked);
    let answer = match tokio::time::timeout(timeout, exchange).await {
        Ok(answer) => answer?,
        Err(_) => return Err(ProxyError::Timeout(timeout)),
    };
    if answer.status != StatusCode::SWITCHING_PROTOCOLS {
        let reply = tokio::time::timeout(timeout, refusal(answer)).await.map_err(|_| ProxyError::Timeout(timeout))?;
        return reply.map(Done::Refused);
    }
    if let Err(error) = handshake::check_accept(&handshake, &answer.headers) {
        warn!(route = %route.id, endpoint = %answer.lease.addr(), %error, "backend answered a broken 101");
        return Err(error);
    }
    Ok(Done::Switched(switch(shared, conn, route, answer, admitted.permit, affinity)))
}

/// The Origin policy's verdict on a handshake's `Origin`; sent twice, it is refused (which one
/// would the browser have meant?). Shared with `/debug/explain`.
pub(super) fn origin_verdict(origins: &OriginPolicy, headers: &HeaderMap) -> OriginVerdict {
    let mut values = headers.get_all(ORIGIN).iter();
    match (values.next(), values.next()) {
        (_, Some(_)) => OriginVerdict::Refused,
        (origin, None) => origins.check(origin.map(HeaderValue::as_bytes)),
    }
}

/// The subprotocol names a handshake offers, in its order, across every `Sec-WebSocket-Protocol` line.
pub(super) fn offered_subprotocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let values = headers.get_all(SEC_WEBSOCKET_PROTOCOL).iter().filter_map(|v| v.to_str().ok());
    values.flat_map(|v| v.split(',')).map(str::trim).filter(|t| !t.is_empty())
}

/// What the admit phase let through.
struct Admitted {
    /// The route's admission slots, held by the tunnel.
    permit: Option<Permit>,
    /// `Sec-WebSocket-Protocol` to forward (the allowed names the client offered), when the route
    /// restricts subprotocols and the client offered any.
    subprotocols: Option<HeaderValue>,
}

/// The admit phase: Origin, subprotocols, then the limits (which hold slots, so they come last: a
/// handshake refused for its Origin never takes a slot or a token).
fn admit(
    shared: &Shared,
    conn: &Conn,
    route: &Arc<Route>,
    parts: &http::request::Parts,
    trail: &mut Trail,
) -> Result<Admitted, ProxyError> {
    let admission = &route.policy.admission;
    if admission.is_open() {
        return Ok(Admitted { permit: None, subprotocols: None });
    }
    let headers = &parts.headers;
    if let Some(origins) = &admission.origins {
        let verdict = origin_verdict(origins, headers);
        debug!(?verdict, "origin checked");
        if let Some(access) = &mut trail.access {
            access.set_origin(origins.describe(verdict));
        }
        if !verdict.allowed() {
            return Err(ProxyError::Refused(Refused::Origin));
        }
    }
    let mut subprotocols = None;
    if let Some(policy) = &admission.subprotocols {
        let allowed = policy.filter(offered_subprotocols(headers));
        if allowed.is_empty() && policy.required {
            return Err(ProxyError::Refused(Refused::Subprotocol));
        }
        if !allowed.is_empty() {
            subprotocols = HeaderValue::from_str(&allowed.join(", ")).ok();
        }
    }
    let mut permit = None;
    if !admission.limits.is_unlimited() {
        let client = client_ip(shared, conn, headers);
        let admitted = shared.limits.admit(&route.id, client, &admission.limits, Instant::now());
        let tracked = i64::try_from(shared.limits.tracked_clients_seen()).unwrap_or(i64::MAX);
        shared.metrics.limit_tracked_clients.set(tracked);
        permit = Some(admitted.map_err(|refusal| ProxyError::Refused(Refused::from(refusal)))?);
    }
    Ok(Admitted { permit, subprotocols })
}

/// The backend's answer head, and the socket it came on.
struct BackendAnswer {
    backend: TcpStream,
    bytes: Bytes,
    head_len: usize,
    status: StatusCode,
    headers: HeaderMap,
    lease: Lease,
}

/// pick + connect (next endpoint when a connect fails), then the backend handshake: the request
/// head out, the answer head in. The caller bounds the time.
async fn ask(
    shared: &Shared,
    route: &Route,
    request: &[u8],
    key: Option<u64>,
    picked: &mut Option<Pick>,
) -> Result<BackendAnswer, ProxyError> {
    let (mut backend, lease) = connect(shared, route, key, picked).await?;
    backend.write_all(request).await.map_err(ProxyError::BackendStream)?;
    let (bytes, head_len) = wire::read_answer_head(&mut backend).await.map_err(ProxyError::BackendStream)?;
    let (status, headers) = wire::parse_answer(&bytes, head_len).ok_or_else(|| {
        ProxyError::BackendStream(io::Error::new(io::ErrorKind::InvalidData, "malformed answer head"))
    })?;
    Ok(BackendAnswer { backend, bytes, head_len, status, headers, lease })
}

/// Picks an endpoint and connects to it within the route's handshake timeout, moving on to the next
/// endpoint when a connect fails (at most [`MAX_TRIES`]).
async fn connect(
    shared: &Shared,
    route: &Route,
    key: Option<u64>,
    picked: &mut Option<Pick>,
) -> Result<(TcpStream, Lease), ProxyError> {
    let deadline = tokio::time::Instant::now() + route.policy.handshake_timeout;
    let mut attempts = Attempts::new();
    loop {
        let lease = attempts.next(shared, route, key, picked)?;
        let addr = lease.addr();
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
        match pool::connect(addr, budget).await {
            Ok(stream) => {
                shared.balancer.connected(addr);
                return Ok((stream, lease));
            }
            Err(error) if error.kind() == io::ErrorKind::TimedOut && budget < pool::CONNECT_TIMEOUT => {
                // Our own deadline ran out, not the endpoint's patience: no failure to hold against it.
                return Err(ProxyError::Timeout(route.policy.handshake_timeout));
            }
            Err(error) => attempts.failed(shared, addr, error),
        }
    }
}

/// A backend's answer other than 101, with its body, for the client; the backend connection closes.
async fn refusal(answer: BackendAnswer) -> Result<Reply, ProxyError> {
    let BackendAnswer { mut backend, bytes, head_len, status, mut headers, lease, .. } = answer;
    let framing = Framing::of(status, &headers);
    let read = BytesMut::from(&bytes[head_len..]);
    drop(bytes);
    let body = wire::read_body(&mut backend, framing, read).await.map_err(ProxyError::BackendStream)?;
    drop(lease);
    remove_hop_by_hop(&mut headers);
    headers.remove(CONTENT_LENGTH);
    if framing != Framing::None {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    debug!(status = status.as_u16(), "backend refused the upgrade");
    Ok(Reply { status, headers, body })
}

/// The switch phase: the 101 for the client, and everything the tunnel will own.
fn switch(
    shared: &Shared,
    conn: &Arc<Conn>,
    route: &Route,
    answer: BackendAnswer,
    permit: Option<Permit>,
    affinity: Option<Affinity>,
) -> Box<Switched> {
    let BackendAnswer { backend, bytes, head_len, mut headers, lease, .. } = answer;
    remove_hop_by_hop(&mut headers);
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Some(cookie) = affinity.and_then(|a| a.set_cookie) {
        headers.append(SET_COOKIE, cookie);
    }
    let backend_buffered = wire::copy_bytes(&bytes[head_len..]);
    // why any extension counts: permessage-deflate is the one in use; an unknown one may also use RSV1.
    let extensions = super::frame::Extensions { permessage_deflate: headers.contains_key("sec-websocket-extensions") };
    let setup = TunnelSetup::new(shared, conn, route, lease, permit, None, extensions);
    Box::new(Switched { headers, backend, backend_buffered, setup })
}

impl From<super::limits::Refusal> for Refused {
    fn from(refusal: super::limits::Refusal) -> Refused {
        match refusal {
            super::limits::Refusal::RouteFull { .. } => Refused::RouteMaxConnections,
            super::limits::Refusal::ClientFull { .. } => Refused::ClientMaxConnections,
            super::limits::Refusal::RateLimited { retry_after } => {
                Refused::ClientRate { retry_after_secs: retry_after.as_secs_f64().ceil() as u64 }
            }
        }
    }
}
