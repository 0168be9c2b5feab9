//! The dataplane: an HTTP/1.1 listener that routes by host and path, proxies plain requests and
//! tunnels WebSockets. It reads the route table and nothing else of the controller.
//!
//! The life of a request, phase by phase:
//!
//! ```text
//!   accept ──► read head (≤ 64 KiB, ≤ 30 s) ──► load table once ──► lookup(host, path)
//!                                                     │ no route: 404
//!              ┌──────────────────────────────────────┴───────────────────────┐
//!        plain request                                              Upgrade: websocket
//!   strip hop-by-hop, X-Forwarded-*                           validate handshake (400 / 426)
//!   pick endpoint ─ none: 503                                 pick endpoint ─ none: 503
//!   pooled or new connection                                  new connection ─ refused: next, then 502
//!     ─ refused: next endpoint, then 502                      send handshake, answer within
//!   response head within 60 s (504)                             handshake_timeout (504)
//!   relay head + stream body                                  not 101: relay; bad accept: 502
//!                                                             101: spawn tunnel, relay 101
//!                                                               tunnel: bytes both ways, first EOF
//!                                                               closes both, idle timeout, metrics
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
//! Modules: `server` (threads, listeners, connections, drain), `tls` (HTTPS: certificate per handshake),
//! `relay` (the byte relay for TLS WebSockets), `fast_upgrade` (the first request:
//! handshakes without hyper), `forward` (plain HTTP), `websocket` (upgrades through hyper, and the tunnel
//! task both paths share), `tunnel` (the byte relay), `handshake` (RFC 6455 checks), `host` (which
//! host a request is for, RFC 9112 §3.2), `headers`
//! (hop-by-hop and forwarding headers), `balancer` (endpoint choice and health), `pool` (backend
//! connections), `body` (the response body type), `error` (error → response, in one place), `access`
//! (the opt-in access log: one line per request and per WebSocket session), `redirect` (the opt-in 308
//! from plain HTTP to HTTPS, checked right after the route lookup on the plain listener).

mod access;
mod balancer;
mod body;
mod error;
mod fast_upgrade;
mod forward;
mod handshake;
mod headers;
mod host;
mod pool;
mod redirect;
mod relay;
mod server;
mod tls;
mod tunnel;
mod websocket;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::routes::SharedTable;

pub use access::AccessLog;
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
}

/// Choices a [`Proxy`] is built with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyOptions {
    pub access_log: AccessLog,
    /// The HTTPS port plain-HTTP requests on routes with `Policy::https_redirect` are sent to (308).
    /// `None`: there is no HTTPS listener, so nothing is redirected.
    pub https_redirect_port: Option<u16>,
}

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
        Proxy {
            shared: Arc::new(Shared {
                table,
                metrics,
                balancer: balancer::Balancer::new(),
                pool: Arc::new(pool::Pool::new()),
                access_log: options.access_log == AccessLog::On,
                https_redirect_port: options.https_redirect_port,
            }),
        }
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
        server::serve(Arc::clone(&self.shared), listener, shutdown, drain, None).await
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
        server::serve(Arc::clone(&self.shared), listener, shutdown, drain, Some(config)).await
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("generation", &self.shared.table.load().generation).finish_non_exhaustive()
    }
}
