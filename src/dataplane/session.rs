//! The session phase: an upgraded WebSocket, from its 101 to its end, whichever codec switched it.
//!
//! ```text
//!   TunnelSetup (taken when the 101 is relayed: lease, permit, metrics, meters, timeouts, Conn)
//!     ├─ client a plain TCP socket ─► Tunnel (readiness relay, per-thread buffer)
//!     └─ client over TLS           ─► relay (poll loop through rustls)
//!   ends: either side closes, idle timeout, max lifetime, I/O error, or the drain deadline drops it
//! ```
//!
//! The task owns everything it needs and never looks at the route table again, so table swaps cannot
//! touch it. The endpoint lease, the admission permit and the connection's slot are held until it ends.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use prometheus::{Histogram, IntGauge};
use tokio::net::TcpStream;
use tracing::{Instrument as _, Span, debug};

use crate::metrics::Direction;
use crate::routes::Route;

use super::Shared;
use super::access::Session;
use super::balancer::Lease;
use super::conn::{Conn, Prefixed};
use super::frame::Extensions;
use super::framed::{Closed, Draining, FrameOptions, FrameRelay};
use super::limits::Permit;
use super::sessions::Registration;
use super::tunnel::{End, Ends, Meter, Tunnel};

/// What a frame-layer session holds besides what every tunnel does.
struct Frames {
    options: FrameOptions,
    registration: Registration,
    /// `wsgate_websocket_frame_layer_active` for the route, up while the session is open.
    active: Up,
}

/// Where a session's end is counted: `wsgate_websocket_closed_total` and, for a pong timeout,
/// `wsgate_websocket_pongs_missed_total`.
struct EndMetrics {
    route: Arc<str>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl EndMetrics {
    fn count(&self, end: &io::Result<End>, client_code: Option<u16>) {
        let (reason, side) = match end {
            Ok(end) => (end.reason(), end.side()),
            Err(_) => ("error", "wsgate"),
        };
        let code = client_code.map_or_else(|| "none".to_string(), |c| c.to_string());
        self.metrics.websocket_closed_total.with_label_values(&[&*self.route, reason, side, &code]).inc();
        if let Ok(End::PongTimeout(side)) = end {
            self.metrics.websocket_pongs_missed_total.with_label_values(&[&*self.route, side.as_str()]).inc();
        }
    }
}

/// Everything a tunnel task owns besides its sockets.
pub struct TunnelSetup {
    lease: Lease,
    /// The route's (and client's) admission slots, when the route has limits.
    permit: Option<Permit>,
    session: SessionMetrics,
    /// The access line, written when the session ends (`None` with the access log off).
    access: Option<Box<Session>>,
    upstream: Meter,
    downstream: Meter,
    idle_timeout: Duration,
    max_lifetime: Option<Duration>,
    /// The drain token and the `--max-connections` slot of the client connection.
    conn: Arc<Conn>,
    /// Set when the route's policy needs the frame layer.
    frames: Option<Box<Frames>>,
    ended: EndMetrics,
}

impl TunnelSetup {
    pub fn new(
        shared: &Shared,
        conn: &Arc<Conn>,
        route: &Route,
        lease: Lease,
        permit: Option<Permit>,
        access: Option<Box<Session>>,
        extensions: Extensions,
    ) -> TunnelSetup {
        let metrics = &shared.metrics;
        let id: &str = &route.id;
        let frames = (!route.policy.frames.is_off()).then(|| {
            let pings_sent = route.policy.frames.keepalive.map(|_| {
                let counter = |toward: &str| metrics.websocket_pings_sent_total.with_label_values(&[id, toward]);
                [counter("client"), counter("backend")]
            });
            let options = FrameOptions {
                keepalive: route.policy.frames.keepalive,
                max_message: route.policy.frames.max_message_bytes,
                extensions,
                idle_timeout: route.policy.idle_timeout,
                max_lifetime: route.policy.max_lifetime,
                pings_sent,
            };
            let active = Up::new(metrics.websocket_frame_layer_active.with_label_values(&[id]));
            let registration = shared.sessions.register(&route.id, lease.addr());
            Box::new(Frames { options, registration, active })
        });
        let session = SessionMetrics::open(
            metrics.websocket_connections_active.with_label_values(&[id]),
            metrics.websocket_connection_duration_seconds.with_label_values(&[id]),
        );
        let upstream = Meter::new(metrics.proxied_bytes_total.with_label_values(&[id, Direction::Upstream.as_str()]));
        let downstream =
            Meter::new(metrics.proxied_bytes_total.with_label_values(&[id, Direction::Downstream.as_str()]));
        TunnelSetup {
            lease,
            permit,
            session,
            access,
            upstream,
            downstream,
            idle_timeout: route.policy.idle_timeout,
            max_lifetime: route.policy.max_lifetime,
            conn: Arc::clone(conn),
            frames,
            ended: EndMetrics { route: Arc::clone(&route.id), metrics: Arc::clone(&shared.metrics) },
        }
    }

    /// The session on the frame layer: the same bookkeeping as [`run`](TunnelSetup::run), a
    /// [`FrameRelay`] instead of the byte tunnel, for any client stream (plain TCP or TLS).
    fn run_frames<C>(
        self,
        frames: Frames,
        client: C,
        client_buffered: Bytes,
        backend: TcpStream,
        backend_buffered: Bytes,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let TunnelSetup { lease, permit, session, access, upstream, downstream, conn, ended, .. } = self;
        let Frames { options, registration, active } = frames;
        let signal = registration.signal();
        let mut relay = FrameRelay::new(
            client,
            client_buffered,
            Draining(backend),
            backend_buffered,
            options,
            Some(signal),
            upstream,
            downstream,
        );
        async move {
            let closed = (&mut relay).await;
            let (up, down) = relay.totals();
            let (end, code) = match closed {
                Ok(Closed { end, client_code }) => (Ok(end), client_code),
                Err(error) => (Err(error), None),
            };
            match &end {
                Ok(end) => debug!(bytes_up = up, bytes_down = down, ?end, code, "WebSocket closed"),
                Err(error) => debug!(bytes_up = up, bytes_down = down, %error, "WebSocket closed by an I/O error"),
            }
            ended.count(&end, code);
            if let Some(mut access) = access {
                access.close(&end, up, down);
            }
            drop(active);
            drop((relay, registration, session, permit, lease, conn));
        }
    }

    /// Sets the access line the session writes when it ends.
    pub fn set_access(&mut self, access: Box<Session>) {
        self.access = Some(access);
    }

    /// Relays until either side closes, the idle timeout, the max lifetime or an I/O error. At the drain
    /// deadline the worker's runtime is dropped with this task in it, which closes both sockets.
    ///
    /// why not an `async fn`: its arguments would stay in the task next to what they are moved into (the
    /// tunnel, the meters), doubling what every idle WebSocket holds; the block captures each once.
    pub fn run(mut self, ends: Ends) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        if let Some(frames) = self.frames.take() {
            let Ends { client, client_buffered, backend, backend_buffered } = ends;
            return Box::pin(self.run_frames(*frames, Draining(client), client_buffered, backend, backend_buffered));
        }
        Box::pin(self.run_tunnel(ends))
    }

    fn run_tunnel(self, ends: Ends) -> impl Future<Output = ()> + Send + 'static {
        // why the drain is not watched here: a `select!` on the drain phase re-polls that future (a lock
        // in tokio's Notify) on every wake-up of a busy tunnel, i.e. for every relayed message; the
        // worker's runtime closes what is left at the deadline instead (`server::Worker::serve`).
        let TunnelSetup {
            lease,
            permit,
            session,
            access,
            upstream,
            downstream,
            idle_timeout,
            max_lifetime,
            conn,
            ended,
            ..
        } = self;
        let mut tunnel = Tunnel::new(ends, idle_timeout, upstream, downstream);
        async move {
            let end = within_lifetime(max_lifetime, &mut tunnel).await;
            let (up, down) = tunnel.totals();
            match &end {
                Ok(end) => debug!(bytes_up = up, bytes_down = down, ?end, "tunnel closed"),
                Err(error) => debug!(bytes_up = up, bytes_down = down, %error, "tunnel closed by an I/O error"),
            }
            ended.count(&end, None);
            if let Some(mut access) = access {
                access.close(&end, up, down);
            }
            // Held for the tunnel's whole life: the balancer counts the lease, the limits the permit,
            // the gauge the session, the drain and --max-connections the connection.
            drop((tunnel, session, permit, lease, conn));
        }
    }

    /// Like [`run`](TunnelSetup::run) for a client that is not a plain TCP socket (TLS): relays with the
    /// generic copy loop, with the same timeouts, metrics and drain.
    pub fn relay(
        mut self,
        client: TokioIo<Upgraded>,
        backend: TcpStream,
        backend_buffered: Bytes,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        if let Some(frames) = self.frames.take() {
            return Box::pin(self.run_frames(*frames, client, Bytes::new(), backend, backend_buffered));
        }
        Box::pin(self.relay_bytes(client, backend, backend_buffered))
    }

    fn relay_bytes(
        self,
        client: TokioIo<Upgraded>,
        backend: TcpStream,
        backend_buffered: Bytes,
    ) -> impl Future<Output = ()> + Send + 'static {
        // why not an `async fn`: see `run`.
        let TunnelSetup {
            lease,
            permit,
            session,
            access,
            mut upstream,
            mut downstream,
            idle_timeout,
            max_lifetime,
            conn,
            ended,
            ..
        } = self;
        async move {
            let relay =
                super::relay::relay(client, backend, backend_buffered, idle_timeout, &mut upstream, &mut downstream);
            let end = within_lifetime(max_lifetime, relay).await;
            upstream.flush();
            downstream.flush();
            let (up, down) = (upstream.total(), downstream.total());
            match &end {
                Ok(end) => debug!(bytes_up = up, bytes_down = down, ?end, "TLS tunnel closed"),
                Err(error) => debug!(bytes_up = up, bytes_down = down, %error, "TLS tunnel closed by an I/O error"),
            }
            ended.count(&end, None);
            if let Some(mut access) = access {
                access.close(&end, up, down);
            }
            drop((session, permit, lease, conn));
        }
    }
}

/// Runs a relay, ending it with [`End::MaxLifetime`] once `max_lifetime` has passed.
///
/// why a timeout only when set: the timer is polled on every wake-up of a busy relay; routes without
/// a max lifetime keep the relay's own single timer. Why boxed: unboxed, the timer's space would be in
/// every tunnel's task, lifetime or not (an idle WebSocket is mostly its task's size).
async fn within_lifetime(
    max_lifetime: Option<Duration>,
    relay: impl Future<Output = io::Result<End>>,
) -> io::Result<End> {
    match max_lifetime {
        None => relay.await,
        Some(limit) => Box::pin(tokio::time::timeout(limit, relay)).await.unwrap_or(Ok(End::MaxLifetime)),
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

/// Recovers the client's TCP socket (and bytes read past the handshake) from hyper's upgraded
/// connection, served over `TokioIo<Prefixed>` (see `fast_upgrade`). A client served over TLS is handed
/// back as it is (`Err`).
///
/// why copy the leftovers: hyper's `read_buf` is a view into its whole read buffer (8 KiB or more);
/// keeping it would keep that buffer alive for the tunnel's life. The leftovers are usually empty.
pub fn recover(upgraded: Upgraded) -> Result<(TcpStream, Bytes), Upgraded> {
    let parts = upgraded.downcast::<TokioIo<Prefixed>>()?;
    let (stream, unread) = parts.io.into_inner().into_parts();
    let leftovers = if unread.is_empty() && parts.read_buf.is_empty() {
        Bytes::new()
    } else {
        Bytes::from([&unread[..], &parts.read_buf[..]].concat())
    };
    Ok((stream, leftovers))
}

/// A gauge held up while this lives: a setup dropped before its session runs (a client gone before the
/// 101) takes it down too.
struct Up(IntGauge);

impl Up {
    fn new(gauge: IntGauge) -> Up {
        gauge.inc();
        Up(gauge)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.0.dec();
    }
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
