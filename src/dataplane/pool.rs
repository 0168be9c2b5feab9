//! Connections to backends: connecting with a timeout, and a keep-alive pool per endpoint address.
//!
//! ```text
//!   checkout(addr) ──► idle HTTP/1.1 sender that is still open and ready ──► reuse
//!                 └──► none ──► connect(addr) ──► handshake ──► new sender (driver task spawned)
//!   after the response head: checkin(addr, sender) ── task waits until the exchange is over
//!                                                    (body fully read) ──► back to idle
//! ```
//!
//! Why our own pool rather than hyper-util's legacy `Client`: the proxy must know that a *connect*
//! failed (to try the next endpoint and count the failure for ejection) before the request body is
//! handed over, and must keep the body when the pooled connection turned out to be closed. Owning the
//! connect step and using `try_send_request` gives both. Upgrade handshakes always use a fresh
//! connection (an upgraded connection never returns to a pool).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::body::RequestBody;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

/// Longest wait for a TCP connect to one endpoint before moving on to the next.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Idle keep-alive connections older than this are closed rather than reused: many servers drop idle
/// connections after a few seconds to a minute, and reusing one they are closing costs a 502.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per endpoint; more are closed when returned.
pub const MAX_IDLE_PER_ENDPOINT: usize = 64;
/// Largest response head accepted from a backend.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 64 * 1024;
/// How often checkin sweeps every endpoint for expired connections.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// A sender for plain requests, whose bodies are the client's streamed bodies.
pub type Sender = SendRequest<RequestBody>;

/// Idle keep-alive connections to backends, by endpoint address.
#[derive(Debug, Default)]
pub struct Pool {
    inner: Mutex<PoolInner>,
}

#[derive(Debug, Default)]
struct PoolInner {
    idle: HashMap<SocketAddr, Vec<Idle>>,
    swept_at: Option<Instant>,
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && self.sender.is_ready() && now.duration_since(self.since) < IDLE_TIMEOUT
    }
}

impl Pool {
    pub fn new() -> Pool {
        Pool::default()
    }

    /// An idle connection to `addr`, if one is still usable. Most recently returned first (it is the
    /// least likely to have been closed by the server).
    pub fn checkout(&self, addr: SocketAddr) -> Option<Sender> {
        let now = Instant::now();
        let mut inner = self.lock();
        let idle = inner.idle.get_mut(&addr)?;
        let found = loop {
            match idle.pop() {
                Some(conn) if conn.usable(now) => break Some(conn.sender),
                Some(_) => continue,
                None => break None,
            }
        };
        if idle.is_empty() {
            inner.idle.remove(&addr);
        }
        found
    }

    /// Hands a sender back once its current exchange is over. Spawns a small task because HTTP/1.1
    /// can reuse a connection only after the whole response body has been read.
    pub fn checkin(self: &Arc<Self>, addr: SocketAddr, mut sender: Sender) {
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            // Errors mean the connection closed mid-exchange (or will not be reused); drop it.
            if sender.ready().await.is_ok() {
                pool.put(addr, sender);
            }
        });
    }

    fn put(&self, addr: SocketAddr, sender: Sender) {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.swept_at.is_none_or(|at| now.duration_since(at) >= SWEEP_INTERVAL) {
            inner.swept_at = Some(now);
            inner.idle.retain(|_, conns| {
                conns.retain(|c| c.usable(now));
                !conns.is_empty()
            });
        }
        let conns = inner.idle.entry(addr).or_default();
        if conns.len() < MAX_IDLE_PER_ENDPOINT {
            conns.push(Idle { sender, since: now });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolInner> {
        // why ignore poisoning: the map only holds connections; a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Opens a TCP connection to an endpoint with [`CONNECT_TIMEOUT`] (or less, if `budget` is shorter).
pub async fn connect(addr: SocketAddr, budget: Duration) -> io::Result<TcpStream> {
    let limit = budget.min(CONNECT_TIMEOUT);
    let stream = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(result) => result?,
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    };
    // why: WebSocket frames and small responses should leave at once, not wait for Nagle.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Starts an HTTP/1.1 client connection on `stream`; the connection is driven by a spawned task that
/// ends when the sender is dropped or the server closes. With `upgrades`, a 101 hands the socket to
/// `hyper::upgrade::on(response)`.
pub async fn handshake<B>(stream: TcpStream, upgrades: bool) -> Result<SendRequest<B>, hyper::Error>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, connection) =
        http1::Builder::new().max_header_size(MAX_RESPONSE_HEADER_BYTES).handshake(TokioIo::new(stream)).await?;
    if upgrades {
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                debug!(%error, "backend connection ended with an error");
            }
        });
    } else {
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, "backend connection ended with an error");
            }
        });
    }
    Ok(sender)
}
