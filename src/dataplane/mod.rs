//! The dataplane: HTTP/1.1 listeners that route by host and path, proxy plain requests and tunnel
//! WebSockets. It reads the route table and nothing else of the controller.
//!
//! The life of a request, phase by phase (`pipeline`; each codec only reads a head and writes the
//! answer):
//!
//! ```text
//!   accept ─ over --max-connections: closed, counted ─► PROXY protocol header (--proxy-protocol)
//!     ─► TLS (HTTPS listener) ─► codec: the first request (`fast_upgrade`) or hyper (`server`)
//!     ─► route: host, load the table once, lookup (404), HTTPS redirect (308)
//!          plain request ─► forward: pick (affinity key) ─ connect ─ relay (502 / 503 / 504)
//!          handshake ─► admit: RFC 6455 (400 / 426), Origin (403), subprotocols (400),
//!                        limits (503 / 429 + Retry-After)
//!                    ─► pick + connect ─► backend handshake ─► not 101: relayed, closed
//!                    ─► switch: 101 ─► session: tunnel task (idle timeout, max lifetime, metrics)
//!     every error ─► one rescue point: response + metrics + access line
//! ```
//!
//! How it runs (each choice measured with `wsgate-bench`, see bench/README.md):
//!
//! - one thread per core, each a current-thread tokio runtime with its own SO_REUSEPORT socket: a
//!   connection, its backend socket and its tunnel stay on the thread that accepted it (`server`);
//! - the first request of a connection is read by `fast_upgrade`: a WebSocket handshake is proxied
//!   there without hyper on either side; everything else (and every later request) goes to hyper;
//! - a tunnel owns two sockets, a timer and counters, no buffer: reads go through one 64 KiB buffer
//!   per thread, and a read that empties the socket clears its readiness, so a relayed message costs
//!   one `recv` and one `send` (`tunnel`).
//!
//! On the HTTPS listener, `tls` terminates TLS first (certificate by SNI from the table), then the
//! connection is served by hyper as above; a WebSocket over TLS is relayed by `relay` (a plain copy
//! loop) instead of the socket-level `tunnel`.
//!
//! Modules: `server` (threads, listeners, hyper's codec, drain), `conn` (what a connection carries:
//! client, drain token, connection slot), `fast_upgrade` (the first-request codec), `pipeline` (the
//! phases and the rescue point), `wire` (HTTP/1.1 heads and bodies wsgate writes and reads itself),
//! `session` (the tunnel task), `forward` (plain HTTP), `tunnel` and `relay` (the byte relays),
//! `handshake` (RFC 6455 checks), `host` (RFC 9112 §3.2), `headers` (hop-by-hop and forwarding
//! headers), `affinity` (the consistent-hash key), `balancer` (endpoint choice and health), `limits`
//! (per-route and per-client admission limits), `client_ip` (trusted proxies and X-Forwarded-For),
//! `proxy_protocol` (PROXY v1/v2 headers from load balancers), `pool` (backend connections), `body`
//! (the response body type), `error` (error → response), `access` (the opt-in access log), `redirect`
//! (the opt-in 308 from plain HTTP to HTTPS), `tls` (certificates by SNI).

mod access;
mod affinity;
mod balancer;
mod body;
pub mod client_ip;
mod conn;
mod cors;
mod error;
pub mod explain;
mod fast_upgrade;
mod forward;
// why allowed: the parser's full API (encoders, accessors) is tested here; the relay uses part of it.
#[allow(dead_code)]
mod frame;
mod framed;
mod handshake;
mod headers;
mod host;
mod limits;
mod pipeline;
mod pool;
mod proxy_protocol;
mod redirect;
mod relay;
mod rewrite;
mod server;
mod session;
mod sessions;
mod tls;
mod tunnel;
mod wire;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::routes::SharedTable;

pub use access::AccessLog;
pub use client_ip::TrustedProxies;
pub use error::ProxyError;

/// The proxy: cheap to clone; every clone shares the table handle, metrics, balancer state and the
/// backend connection pool, so several listeners can serve from one `Proxy`.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

/// What every connection of every listener shares.
pub(crate) struct Shared {
    table: SharedTable,
    metrics: Arc<Metrics>,
    balancer: balancer::Balancer,
    pool: Arc<pool::Pool>,
    /// `--access-log on`: checked once per request or handshake.
    access_log: bool,
    /// The port `https://` redirects name; `None` when the HTTPS listener is off (no redirects).
    https_redirect_port: Option<u16>,
    /// Open client connections, capped by `--max-connections`.
    connections: conn::Connections,
    /// Per-route and per-client admission state.
    limits: limits::Limits,
    /// Peers whose `X-Forwarded-For` is believed.
    trusted_proxies: client_ip::TrustedProxies,
    /// Every connection starts with a PROXY protocol header.
    proxy_protocol: bool,
    /// Open frame-layer WebSockets, for shutdown, drain and rebalance.
    sessions: Arc<sessions::Sessions>,
    /// The drain and rebalance controller was started (by the first `serve`).
    controller: std::sync::atomic::AtomicBool,
}

/// Choices a [`Proxy`] is built with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyOptions {
    pub access_log: AccessLog,
    /// The HTTPS port plain-HTTP requests on routes with `Policy::https_redirect` are sent to (308).
    /// `None`: there is no HTTPS listener, so nothing is redirected.
    pub https_redirect_port: Option<u16>,
    /// Most client connections open at once, WebSockets included (every listener together); more are
    /// closed at accept. `None`: no limit.
    pub max_connections: Option<usize>,
    /// Peers (load balancers, other proxies) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// Read a PROXY protocol v1/v2 header at the start of every connection (cloud load balancers).
    pub proxy_protocol: bool,
    /// Most per-client entries the admission limits keep, busy ones included (0: the default). When
    /// every entry is busy, a new client is held only to the route's cap (logged at warn).
    pub max_tracked_clients: usize,
}

/// Default of [`ProxyOptions::max_tracked_clients`].
pub const DEFAULT_MAX_TRACKED_CLIENTS: usize = 100_000;

impl Proxy {
    /// A proxy without access log.
    pub fn new(table: SharedTable, metrics: Arc<Metrics>) -> Proxy {
        Proxy::with_access_log(table, metrics, AccessLog::Off)
    }

    /// A proxy that writes an access line (target `wsgate::access`) per request and per WebSocket
    /// session when `access_log` is on.
    pub fn with_access_log(table: SharedTable, metrics: Arc<Metrics>, access_log: AccessLog) -> Proxy {
        Proxy::with_options(table, metrics, ProxyOptions { access_log, ..ProxyOptions::default() })
    }

    /// A proxy with every option: the access log, and the port HTTPS redirects name.
    pub fn with_options(table: SharedTable, metrics: Arc<Metrics>, options: ProxyOptions) -> Proxy {
        let max_tracked_clients =
            if options.max_tracked_clients == 0 { DEFAULT_MAX_TRACKED_CLIENTS } else { options.max_tracked_clients };
        Proxy {
            shared: Arc::new(Shared {
                table,
                metrics,
                balancer: balancer::Balancer::new(),
                pool: Arc::new(pool::Pool::new()),
                access_log: options.access_log == AccessLog::On,
                https_redirect_port: options.https_redirect_port,
                connections: conn::Connections::new(options.max_connections),
                limits: limits::Limits::new(max_tracked_clients),
                trusted_proxies: options.trusted_proxies,
                proxy_protocol: options.proxy_protocol,
                sessions: Arc::default(),
                controller: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Client connections open now, and the `--max-connections` cap (for `/debug/routes`).
    pub fn connections(&self) -> (usize, Option<usize>) {
        (self.shared.connections.open(), self.shared.connections.max())
    }

    /// Accepts on `listener` until `shutdown` resolves; then stops accepting and waits for open
    /// connections (including WebSocket tunnels) to finish, at most `drain` long, then returns. Whatever
    /// is still open at the deadline is closed.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        drain: Duration,
    ) -> io::Result<()> {
        self.start_controller();
        server::serve(Arc::clone(&self.shared), listener, shutdown, drain, None).await
    }

    /// Starts the drain and rebalance controller once per proxy, on the caller's runtime; it ends when
    /// the proxy is dropped.
    fn start_controller(&self) {
        if !self.shared.controller.swap(true, std::sync::atomic::Ordering::AcqRel) {
            let sessions = Arc::downgrade(&self.shared.sessions);
            tokio::spawn(sessions::Controller::run(sessions, Arc::clone(&self.shared.table)));
        }
    }

    /// Like [`serve`](Proxy::serve), but terminating TLS on every connection: the certificate is chosen
    /// by the client's SNI name from the route table's TLS part, read on each handshake. Clients that
    /// send no SNI name, or one without a certificate, are refused during the handshake.
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        drain: Duration,
    ) -> io::Result<()> {
        let config = tls::server_config(Arc::clone(&self.shared.table))?;
        self.start_controller();
        server::serve(Arc::clone(&self.shared), listener, shutdown, drain, Some(config)).await
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("generation", &self.shared.table.load().generation).finish_non_exhaustive()
    }
}
