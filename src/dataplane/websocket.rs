//! WebSocket upgrades: check the client's handshake, forward it, check the backend's answer, then hand
//! both sockets to a [`Tunnel`].
//!
//! ```text
//!   validate (400 / 426) ─► pick + connect (next endpoint on refusal) ─► send handshake
//!     │   everything up to the backend's answer must fit in policy.handshake_timeout (else 504)
//!     ▼
//!   backend answer ── not 101 ─► relayed as is (minus hop-by-hop): outcome "rejected"
//!                  ── 101, wrong Sec-WebSocket-Accept / no Upgrade, Connection ─► 502, backend closed
//!                  ── 101, correct ─► spawn tunnel task (awaits both upgrades) ─► 101 to the client
//!   tunnel task: both ends TCP ─► Tunnel; client over TLS ─► relay (generic copy loop)
//! ```
//!
//! The tunnel task owns everything it needs: the route's id and idle timeout, the endpoint lease, the
//! metric handles and a drain token. It never looks at the route table again, so table swaps cannot
//! touch it.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::header::{CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use prometheus::{Histogram, IntGauge};
use tokio::net::TcpStream;
use tracing::{Instrument as _, Span, debug, warn};

use crate::metrics::{Direction, UpgradeOutcome};
use crate::routes::Route;

use super::Shared;
use super::access::{self, Session};
use super::balancer::{Lease, Pick};
use super::body::ProxyBody;
use super::error::ProxyError;
use super::fast_upgrade::Prefixed;
use super::forward::{MAX_TRIES, log_failure, note_connect_failure, prepare_head};
use super::handshake;
use super::headers::{ClientAddr, remove_hop_by_hop};
use super::pool;
use super::server::Drain;
use super::tunnel::{Ends, Meter, Tunnel};

/// What the backend made of the handshake.
enum Answer {
    /// 101 with a correct accept: the tunnel task is running.
    Switched(Response<ProxyBody>),
    /// Any other status, relayed to the client.
    Refused(Response<ProxyBody>),
}

/// Proxies one WebSocket handshake along `route`, counts it and, on success, starts its tunnel.
pub async fn proxy(
    shared: &Arc<Shared>,
    client: &ClientAddr,
    drain: &Drain,
    req: Request<Incoming>,
    route: &Arc<Route>,
    mut access: Option<Box<access::Request>>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let mut picked = None;
    let (response, outcome) = match upgrade(shared, client, drain, req, route, &mut picked, &mut access).await {
        Ok(Answer::Switched(response)) => (response, UpgradeOutcome::Success),
        Ok(Answer::Refused(response)) => (response, UpgradeOutcome::Rejected),
        Err(error) => {
            log_failure(&error);
            let outcome = error.upgrade_outcome();
            (error.into_response(true), outcome)
        }
    };
    account(shared, route, outcome, started);
    debug!(status = response.status().as_u16(), outcome = outcome.as_str(), "upgrade answered");
    // A switched handshake's line is written by its tunnel task, when the session ends.
    if let Some(access) = access {
        let status = response.status().as_u16();
        access::answered(&access, status, Some(route), picked.as_ref(), access::Bytes::default());
    }
    response
}

/// Counts one answered handshake: its outcome and, when a backend took part, its latency.
pub fn account(shared: &Shared, route: &Route, outcome: UpgradeOutcome, started: Instant) {
    let metrics = &shared.metrics;
    metrics.websocket_upgrades_total.with_label_values(&[&*route.id, outcome.as_str()]).inc();
    let reached_backend = matches!(
        outcome,
        UpgradeOutcome::Success | UpgradeOutcome::Rejected | UpgradeOutcome::BackendError | UpgradeOutcome::Timeout
    );
    if reached_backend {
        // Requests refused before a backend was involved would only add zeros to the latency histogram.
        metrics
            .websocket_handshake_duration_seconds
            .with_label_values(&[&*route.id])
            .observe(started.elapsed().as_secs_f64());
    }
}

async fn upgrade(
    shared: &Arc<Shared>,
    client: &ClientAddr,
    drain: &Drain,
    mut req: Request<Incoming>,
    route: &Arc<Route>,
    picked: &mut Option<Pick>,
    access: &mut Option<Box<access::Request>>,
) -> Result<Answer, ProxyError> {
    let handshake = handshake::validate(req.method(), req.version(), req.headers())?;
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (mut parts, _empty_body) = req.into_parts();
    prepare_head(&mut parts, client);
    // why set explicitly: the hop-by-hop cleanup removed them, and the backend must see exactly these.
    parts.headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    parts.headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    parts.headers.insert(SEC_WEBSOCKET_KEY, handshake.key.clone());
    parts.headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));

    let timeout = route.policy.handshake_timeout;
    let exchange = tokio::time::timeout(timeout, exchange(shared, route, parts, picked));
    let (response, sender, lease) = exchange.await.map_err(|_| ProxyError::Timeout(timeout))??;

    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        return Ok(Answer::Refused(Response::from_parts(parts, ProxyBody::relayed(body, Some(lease)))));
    }
    if let Err(error) = handshake::check_accept(&handshake, response.headers()) {
        // Dropping the response and the sender closes the backend connection.
        warn!(route = %route.id, endpoint = %lease.addr(), %error, "backend answered a broken 101");
        return Err(error);
    }
    let session = access.take().zip(*picked).map(|(request, picked)| Session::open(request, route, picked, drain));
    Ok(Answer::Switched(switch(shared, drain, route, client_upgrade, response, sender, lease, session)))
}

/// Connects to an endpoint (trying the next one when a connect fails) and sends the handshake.
async fn exchange(
    shared: &Shared,
    route: &Route,
    parts: http::request::Parts,
    picked: &mut Option<Pick>,
) -> Result<(Response<Incoming>, SendRequest<Empty<Bytes>>, Lease), ProxyError> {
    let (stream, lease) = connect_upgrade_backend(shared, route, picked).await?;
    let mut sender = pool::handshake(stream, true).await.map_err(ProxyError::Backend)?;
    let request = Request::from_parts(parts, Empty::new());
    let response = sender.send_request(request).await.map_err(ProxyError::Backend)?;
    Ok((response, sender, lease))
}

/// Picks an endpoint and connects to it within the route's handshake timeout, moving on to the next
/// endpoint when a connect fails (at most `MAX_TRIES`). Shared by both upgrade paths. `picked` is the
/// last endpoint tried, and why (for the access log).
pub(super) async fn connect_upgrade_backend(
    shared: &Shared,
    route: &Route,
    picked: &mut Option<Pick>,
) -> Result<(TcpStream, Lease), ProxyError> {
    let deadline = tokio::time::Instant::now() + route.policy.handshake_timeout;
    // why a fixed array: no allocation for the handful of addresses tried.
    let mut tried = [SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)); MAX_TRIES];
    let mut attempts = 0;
    let mut last_error = None;
    loop {
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
            Err(error) => {
                note_connect_failure(shared, addr, &error);
                last_error = Some(ProxyError::Connect(error));
            }
        }
    }
}

/// Relays a correct 101 and starts the tunnel task. The task is spawned *before* the 101 goes out, so
/// it is already waiting when hyper hands over the client's socket.
#[allow(clippy::too_many_arguments)]
fn switch(
    shared: &Arc<Shared>,
    drain: &Drain,
    route: &Arc<Route>,
    client_upgrade: OnUpgrade,
    mut response: Response<Incoming>,
    sender: SendRequest<Empty<Bytes>>,
    lease: Lease,
    session: Option<Box<Session>>,
) -> Response<ProxyBody> {
    let backend_upgrade = hyper::upgrade::on(&mut response);
    let (mut parts, _empty_body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    parts.headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    parts.headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));

    let setup = TunnelSetup::new(shared, drain, route, lease, session);
    spawn_tunnel(async move {
        let ends = tokio::try_join!(client_upgrade, backend_upgrade);
        // The 101 has been processed by then; the connection's request sender is no longer needed.
        drop(sender);
        match ends.map(|(client, backend)| (recover(client), recover(backend))) {
            Ok((Ok((client, client_buffered)), Ok((backend, backend_buffered)))) => {
                setup.run(Ends { client, client_buffered, backend, backend_buffered }).await;
            }
            // The client came over TLS: its bytes must go through rustls.
            Ok((Err(client), Ok((backend, backend_buffered)))) => {
                setup.relay(TokioIo::new(client), backend, backend_buffered).await;
            }
            Ok((_, Err(_))) => tracing::error!("upgraded backend connection is not a TCP stream; closing"),
            Err(error) => debug!(%error, "upgrade did not complete"),
        }
    });
    Response::from_parts(parts, ProxyBody::empty())
}

/// Everything a tunnel task owns besides its sockets, taken when the 101 is relayed: the endpoint lease,
/// the session metrics, the byte meters, the idle timeout and a drain token. It never looks at the route
/// table again, so table swaps cannot touch it.
pub struct TunnelSetup {
    lease: Lease,
    session: SessionMetrics,
    /// The access line, written when the session ends (`None` with the access log off).
    access: Option<Box<Session>>,
    upstream: Meter,
    downstream: Meter,
    idle_timeout: std::time::Duration,
    drain: Drain,
}

impl TunnelSetup {
    pub fn new(
        shared: &Shared,
        drain: &Drain,
        route: &Route,
        lease: Lease,
        access: Option<Box<Session>>,
    ) -> TunnelSetup {
        let metrics = &shared.metrics;
        let id: &str = &route.id;
        let session = SessionMetrics::open(
            metrics.websocket_connections_active.with_label_values(&[id]),
            metrics.websocket_connection_duration_seconds.with_label_values(&[id]),
        );
        let upstream = Meter::new(metrics.proxied_bytes_total.with_label_values(&[id, Direction::Upstream.as_str()]));
        let downstream =
            Meter::new(metrics.proxied_bytes_total.with_label_values(&[id, Direction::Downstream.as_str()]));
        TunnelSetup {
            lease,
            session,
            access,
            upstream,
            downstream,
            idle_timeout: route.policy.idle_timeout,
            drain: drain.clone(),
        }
    }

    /// Relays until either side closes, the idle timeout or an I/O error. At the drain deadline the
    /// worker's runtime is dropped with this task in it, which closes both sockets.
    pub async fn run(self, ends: Ends) {
        // Held for the tunnel's whole life: the drain waits for it, the balancer counts it, the gauge
        // goes down when it ends however it ends.
        //
        // why the drain is not watched here: a `select!` on the drain phase re-polls that future (a lock
        // in tokio's Notify) on every wake-up of a busy tunnel, i.e. for every relayed message; the
        // worker's runtime closes what is left at the deadline instead (`server::Worker::serve`).
        let TunnelSetup { lease: _lease, session: _session, access, upstream, downstream, idle_timeout, drain: _drain } =
            self;
        let mut tunnel = Tunnel::new(ends, idle_timeout, upstream, downstream);
        let end = (&mut tunnel).await;
        let (up, down) = tunnel.totals();
        match &end {
            Ok(end) => debug!(bytes_up = up, bytes_down = down, ?end, "tunnel closed"),
            Err(error) => debug!(bytes_up = up, bytes_down = down, %error, "tunnel closed by an I/O error"),
        }
        if let Some(mut access) = access {
            access.close(&end, up, down);
        }
    }
}

impl TunnelSetup {
    /// Like [`run`](TunnelSetup::run) for a client that is not a plain TCP socket (TLS): relays with the
    /// generic copy loop, with the same idle timeout, metrics and drain.
    async fn relay(self, client: TokioIo<Upgraded>, backend: TcpStream, backend_buffered: Bytes) {
        let TunnelSetup {
            lease: _lease,
            session: _session,
            access,
            mut upstream,
            mut downstream,
            idle_timeout,
            drain: _drain,
        } = self;
        let end =
            super::relay::relay(client, backend, backend_buffered, idle_timeout, &mut upstream, &mut downstream).await;
        upstream.flush();
        downstream.flush();
        let (up, down) = (upstream.total(), downstream.total());
        match &end {
            Ok(end) => debug!(bytes_up = up, bytes_down = down, ?end, "TLS tunnel closed"),
            Err(error) => debug!(bytes_up = up, bytes_down = down, %error, "TLS tunnel closed by an I/O error"),
        }
        if let Some(mut access) = access {
            access.close(&end, up, down);
        }
    }
}

/// Spawns a tunnel task on this thread's runtime.
pub fn spawn_tunnel(task: impl Future<Output = ()> + Send + 'static) {
    // why not always instrument: with debug spans off (the default), the wrapper is pure overhead on
    // every poll of a long-lived, busy task.
    let span = Span::current();
    if span.is_disabled() {
        tokio::spawn(task);
    } else {
        tokio::spawn(task.instrument(span));
    }
}

/// Recovers the TCP socket (and bytes read past the handshake) from an upgraded connection. The client
/// side is served over `TokioIo<Prefixed>` (see `fast_upgrade`), the backend side over
/// `TokioIo<TcpStream>`. A client served over TLS is handed back as it is (`Err`).
///
/// why copy the leftovers: hyper's `read_buf` is a view into its whole read buffer (8 KiB or more);
/// keeping it would keep that buffer alive for the tunnel's life. The leftovers are usually empty.
fn recover(upgraded: Upgraded) -> Result<(TcpStream, Bytes), Upgraded> {
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => return Ok((parts.io.into_inner(), copy_leftovers(&[], &parts.read_buf))),
        Err(upgraded) => upgraded,
    };
    let parts = upgraded.downcast::<TokioIo<Prefixed>>()?;
    let (stream, unread) = parts.io.into_inner().into_parts();
    Ok((stream, copy_leftovers(&unread, &parts.read_buf)))
}

/// Copies bytes read ahead into a buffer of their own (usually nothing).
fn copy_leftovers(first: &[u8], second: &[u8]) -> Bytes {
    if first.is_empty() && second.is_empty() {
        return Bytes::new();
    }
    Bytes::from([first, second].concat())
}

/// An open tunnel as the metrics see it: the gauge is up while it exists, its lifetime is observed when
/// it goes.
struct SessionMetrics {
    active: IntGauge,
    duration: Histogram,
    opened: Instant,
}

impl SessionMetrics {
    fn open(active: IntGauge, duration: Histogram) -> SessionMetrics {
        active.inc();
        SessionMetrics { active, duration, opened: Instant::now() }
    }
}

impl Drop for SessionMetrics {
    fn drop(&mut self) {
        // why this order: whoever sees the gauge go down (a scrape, a test) also sees the duration.
        self.duration.observe(self.opened.elapsed().as_secs_f64());
        self.active.dec();
    }
}
