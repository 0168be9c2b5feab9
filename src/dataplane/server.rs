//! The listener: accepting connections, serving HTTP/1.1 on each, routing every request, and draining.
//!
//! ```text
//!   one thread per core, each a current-thread runtime with its own SO_REUSEPORT socket on the address:
//!   accept ─ --max-connections reached: closed at once, counted ─► connection task (TCP_NODELAY)
//!               ├─ --proxy-protocol: the PROXY header first (the client's address; none: closed)
//!               ├─ HTTPS listener: TLS handshake (`tls`), then hyper as below, without fast_upgrade
//!               ├─ first request a WebSocket handshake ─► fast_upgrade (no hyper) ─► pipeline
//!               └─ otherwise: hyper http1 with upgrades, header size/time limits, the bytes read so far
//!                  put back in front
//!               └─ per request (`handle`, hyper's codec):
//!                    ├─ a handshake ─► pipeline::handshake ─► 101 + tunnel task, or an answer that closes
//!                    └─ otherwise    ─► pipeline route phase ─► forward::proxy (or 400 / 404 / 308)
//!
//!   shutdown resolves ─► stop accepting ─► Draining: idle keep-alive connections close, requests in
//!   flight finish, frame-layer WebSockets get Close 1001 on both sides and end with their closing
//!   handshakes, byte tunnels keep relaying ─► all drain tokens dropped, or `drain` elapsed ─► Closing:
//!   whatever is left is closed ─► serve returns
//! ```
//!
//! Why a runtime per core rather than tasks on the shared multi-threaded runtime: a WebSocket relay is a
//! few syscalls per message, so the scheduler's cross-thread hand-offs (one worker owning epoll, waking
//! the other) cost as much as the relay itself and add latency. With one epoll loop per thread, as in
//! nginx, a connection, its backend socket and its tunnel live and die on one thread and never wake
//! another. Measured with `wsgate-bench` (bench/README.md).
//!
//! Every connection task and every tunnel task holds a [`Drain`] (through its [`Conn`]): a clone of one
//! channel sender (the channel closes when the last clone is dropped, which is how `serve` knows
//! everything finished) plus a watch on the shutdown phase.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument as _, debug, debug_span, info, warn};

use super::Shared;
use super::access::Kind;
use super::body::ProxyBody;
use super::conn::{Conn, Drain, Phase, Prefixed, Slot};
use super::fast_upgrade::{self, First};
use super::headers::ClientAddr;
use super::pipeline::{self, Answer, Trail};
use super::session::{recover, spawn_tunnel};
use super::tunnel::Ends;
use super::{forward, handshake, proxy_protocol};

/// Largest request head (request line and headers) accepted; larger ones get 431.
pub const MAX_REQUEST_HEADER_BYTES: usize = 64 * 1024;
/// Time a client has to send a complete request head, counted from when the server starts waiting for
/// it. This cuts slowloris clients and also bounds how long an idle keep-alive connection stays open.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// After the drain deadline, how long `serve` waits for the remaining tasks to notice they must close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Pause after an accept error that is not about one connection (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Backlog of the per-worker listening sockets (tokio's default for `TcpListener::bind`).
const LISTEN_BACKLOG: i32 = 1024;

/// `tls`: terminate TLS with this configuration on every connection (the HTTPS listener).
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let (token, mut finished) = mpsc::channel::<()>(1);
    let (phase, phase_rx) = watch::channel(Phase::Serving);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_REQUEST_HEADER_BYTES)
        .keep_alive(true);
    let builder = Arc::new(builder);

    // Dropping these senders (this future ending or being dropped) stops the workers' accepting and
    // then their runtimes, so no worker thread outlives `serve`.
    let (accepting, accepting_rx) = watch::channel(true);
    let (exit, exit_rx) = watch::channel(false);
    let listeners = per_worker_listeners(listener, worker_count())?;
    let workers = listeners.len();
    for (index, listener) in listeners.into_iter().enumerate() {
        let worker = Worker {
            shared: Arc::clone(&shared),
            builder: Arc::clone(&builder),
            port: local.port(),
            tls: tls.clone(),
            token: token.clone(),
            phase: phase_rx.clone(),
            accepting: accepting_rx.clone(),
            exit: exit_rx.clone(),
        };
        std::thread::Builder::new().name(format!("wsgate-dataplane-{index}")).spawn(move || worker.run(listener))?;
    }
    info!(address = %local, workers, tls = tls.is_some(), "dataplane listening");

    shutdown.await;
    let _ = accepting.send(false);
    info!(address = %local, drain_seconds = drain.as_secs_f64(), "dataplane stopped accepting; draining");
    let _ = phase.send(Phase::Draining);
    // Frame-layer WebSockets get their Close 1001 now; byte tunnels keep relaying until they end or the
    // deadline closes them.
    let closing = shared.sessions.fire_all(super::framed::CloseRequest::Shutdown);
    if closing > 0 {
        info!(address = %local, websockets = closing, "sent Close 1001 to frame-layer WebSockets");
    }
    drop(token);
    if tokio::time::timeout(drain, finished.recv()).await.is_err() {
        warn!(address = %local, "drain deadline passed; closing the remaining connections");
        let _ = phase.send(Phase::Closing);
        let _ = tokio::time::timeout(CLOSE_GRACE, finished.recv()).await;
    }
    let _ = exit.send(true);
    info!(address = %local, "dataplane stopped");
    Ok(())
}

/// Dataplane threads: one per core.
fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One listening socket per worker. Each worker gets its own socket in one SO_REUSEPORT group, so the
/// kernel spreads new connections over the workers and wakes only the one that gets the connection.
/// If the group cannot be formed, the workers share duplicates of the one socket (every idle worker
/// then wakes for each connection, and one of them wins the accept).
///
/// SO_REUSEPORT lets other sockets of the same user join the port; wsgate binds its own port, so that
/// changes nothing for other users.
fn per_worker_listeners(listener: TcpListener, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let first = listener.into_std()?;
    let local = first.local_addr()?;
    let reuse = SockRef::from(&first).set_reuse_port(true).is_ok();
    let mut all = Vec::with_capacity(count.max(1));
    for _ in 1..count {
        let sibling = if reuse { reuse_port_sibling(local) } else { Err(io::ErrorKind::Unsupported.into()) };
        match sibling {
            Ok(sibling) => all.push(sibling),
            Err(error) => {
                debug!(%error, "no SO_REUSEPORT sibling; sharing the listening socket");
                all.push(first.try_clone()?);
            }
        }
    }
    all.insert(0, first);
    Ok(all)
}

fn reuse_port_sibling(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// One dataplane thread: a current-thread runtime that accepts on its own socket and runs every
/// connection and tunnel it accepted.
struct Worker {
    shared: Arc<Shared>,
    builder: Arc<http1::Builder>,
    port: u16,
    tls: Option<Arc<rustls::ServerConfig>>,
    token: mpsc::Sender<()>,
    phase: watch::Receiver<Phase>,
    accepting: watch::Receiver<bool>,
    exit: watch::Receiver<bool>,
}

impl Worker {
    fn run(self, listener: std::net::TcpListener) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "cannot start a dataplane thread");
                return;
            }
        };
        // Whatever is still running when this returns is dropped with the runtime: by then `serve`
        // has drained (or given up at the deadline) and said so through `exit`.
        runtime.block_on(self.serve(listener));
    }

    async fn serve(mut self, listener: std::net::TcpListener) {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "cannot register the listening socket");
                return;
            }
        };
        loop {
            tokio::select! {
                biased;
                changed = self.accepting.changed() => {
                    if changed.is_err() || !*self.accepting.borrow_and_update() {
                        break;
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Some(slot) = self.shared.connections.try_open() else {
                            // why close at once: established connections are untouched, and a new one
                            // waits for nothing; its client sees the close and may retry.
                            self.shared.metrics.refused_total.with_label_values(&["", "max_connections"]).inc();
                            debug!(%peer, "refused: --max-connections reached");
                            continue;
                        };
                        let drain = Drain { _token: self.token.clone(), phase: self.phase.clone() };
                        let tls = self.tls.clone();
                        let task = connection(Arc::clone(&self.shared), Arc::clone(&self.builder), stream, peer, self.port, (drain, slot), tls);
                        let span = debug_span!("conn", peer = %peer);
                        // why not always instrument: a disabled span only costs on every poll.
                        if span.is_disabled() {
                            tokio::spawn(task);
                        } else {
                            tokio::spawn(task.instrument(span));
                        }
                    }
                    Err(error) if is_per_connection(&error) => debug!(%error, "accept failed"),
                    Err(error) => {
                        warn!(%error, "accept failed; pausing before the next accept");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            }
        }
        drop(listener);
        drop(self.token);
        // Returning drops this thread's runtime and every task still in it (tunnels included), which
        // closes their sockets: that is how the drain deadline closes what is left.
        tokio::select! {
            _ = self.exit.wait_for(|exit| *exit) => {}
            _ = self.phase.wait_for(|phase| *phase == Phase::Closing) => {}
        }
    }
}

/// Accept errors that concern one connection only, not the listener.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}

async fn connection(
    shared: Arc<Shared>,
    builder: Arc<http1::Builder>,
    mut stream: TcpStream,
    peer: SocketAddr,
    listener_port: u16,
    (drain, slot): (Drain, Slot),
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    // why: small WebSocket frames and response heads should leave at once, not wait for Nagle.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "could not set TCP_NODELAY");
    }
    let mut phase = drain.phase.clone();
    let mut read = BytesMut::new();
    let mut client_ip = peer.ip();
    if shared.proxy_protocol {
        match proxy_protocol::read_header(&mut stream, &mut read, HEADER_READ_TIMEOUT).await {
            Ok(Some(source)) => client_ip = source.ip(),
            Ok(None) => {}
            Err(error) => {
                debug!(%error, "no valid PROXY protocol header; closing");
                shared.metrics.refused_total.with_label_values(&["", "proxy_protocol"]).inc();
                return;
            }
        }
    }
    let addr = ClientAddr::new(client_ip, listener_port);
    if let Some(config) = tls {
        let Some(stream) = super::tls::accept(&config, &shared.table, &shared.metrics, stream, read).await else {
            return;
        };
        let conn = Conn::new(addr.https(), drain, slot);
        return serve_http(shared, &builder, TokioIo::new(stream), conn, phase).await;
    }
    let conn = Conn::new(addr, drain, slot);
    let prefix = match fast_upgrade::read_first(&stream, &mut phase, read).await {
        First::Gone => return,
        First::Other(prefix) => prefix,
        First::Upgrade(head) => return fast_upgrade::serve(&shared, &conn, stream, head).await,
    };
    serve_http(shared, &builder, TokioIo::new(Prefixed::new(prefix, stream)), conn, phase).await;
}

/// Serves HTTP/1.1 with hyper on one client connection (plain or TLS) until it ends or the drain says so.
async fn serve_http<I>(
    shared: Arc<Shared>,
    builder: &http1::Builder,
    io: I,
    conn: Arc<Conn>,
    mut phase: watch::Receiver<Phase>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let shared = Arc::clone(&shared);
        let conn = Arc::clone(&conn);
        let span = debug_span!(
            "request",
            method = %req.method(),
            path = req.uri().path(),
            route = tracing::field::Empty,
            endpoint = tracing::field::Empty,
        );
        async move { Ok::<_, Infallible>(handle(&shared, &conn, req).await) }.instrument(span)
    });
    // why boxed: hyper's connection state is large; inline it would make every connection task (and its
    // spawn-time copy) that large, WebSocket handshakes on the fast path included.
    let mut conn = Box::pin(builder.serve_connection(io, service).with_upgrades());
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    debug!(%error, "client connection ended with an error");
                }
                return;
            }
            changed = phase.changed() => {
                let now = if changed.is_err() { Phase::Closing } else { *phase.borrow_and_update() };
                match now {
                    Phase::Serving => {}
                    Phase::Draining if !draining => {
                        draining = true;
                        // Closes the connection once the request in flight (if any) is answered.
                        conn.as_mut().graceful_shutdown();
                    }
                    Phase::Draining => {}
                    Phase::Closing => return,
                }
            }
        }
    }
}

/// hyper's codec of the decision pipeline: a handshake goes to `pipeline::handshake`, a plain request
/// through the route phase to `forward`.
async fn handle(shared: &Arc<Shared>, conn: &Arc<Conn>, mut req: Request<Incoming>) -> Response<ProxyBody> {
    if handshake::wants_websocket(req.headers()) {
        let client_upgrade = hyper::upgrade::on(&mut req);
        // The body is never read: a handshake announcing one is refused.
        let (parts, _body) = req.into_parts();
        return match pipeline::handshake(shared, conn, parts).await {
            Answer::Switched(switched) => switch(*switched, client_upgrade),
            Answer::Respond(reply) => reply.into_response(),
        };
    }
    let mut trail = Trail::new(Kind::Http);
    let (parts, body) = req.into_parts();
    match trail.route(shared, conn, &parts) {
        Ok(route) => forward::proxy(shared, conn, Request::from_parts(parts, body), &route, trail).await,
        Err(stop) => trail.stop(shared, stop, false).into_response(),
    }
}

/// Answers 101 and starts the tunnel task, which waits for hyper to hand over the client's socket.
///
/// why spawn before answering: the task must already be waiting when hyper performs the upgrade.
fn switch(switched: pipeline::Switched, client_upgrade: hyper::upgrade::OnUpgrade) -> Response<ProxyBody> {
    let pipeline::Switched { headers, backend, backend_buffered, setup } = switched;
    spawn_tunnel(async move {
        match client_upgrade.await.map(recover) {
            Ok(Ok((client, client_buffered))) => {
                setup.run(Ends { client, client_buffered, backend, backend_buffered }).await;
            }
            // The client came over TLS: its bytes must go through rustls.
            Ok(Err(client)) => setup.relay(TokioIo::new(client), backend, backend_buffered).await,
            Err(error) => debug!(%error, "upgrade did not complete"),
        }
    });
    let mut response = Response::new(ProxyBody::empty());
    *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = headers;
    response
}
