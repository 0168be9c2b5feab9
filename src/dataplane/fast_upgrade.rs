//! The first request of every client connection is read here, before hyper sees the connection. A
//! WebSocket handshake is proxied right here, speaking HTTP/1.1 to both sides directly; anything else is
//! served by hyper, with the bytes already read put back in front of the socket.
//!
//! ```text
//!   read the first request head (≤ FAST_HEAD_LIMIT, ≤ HEADER_READ_TIMEOUT; a read is tried before the
//!   first epoll round trip, since the request usually arrived with the connection)
//!     ├─ not an upgrade, a body, incomplete at the limit, unparsable ─► hyper over `Prefixed`
//!     ├─ upgrade, but a bad handshake, a bad Host or no route ─► hyper over `Prefixed` (it answers
//!     │                                     400/426/404, counts them, and keeps the connection)
//!     ├─ upgrade on a route that redirects to HTTPS ─► hyper over `Prefixed` (it answers 308, counts it
//!     │                                     and closes the connection; see `redirect`)
//!     └─ upgrade with a route ─► pick + connect (next endpoint on refusal) ─► write the head
//!          ─► read the answer head (all within policy.handshake_timeout, else 504)
//!            101 + right accept ─► count, write 101 ─► tunnel task (this task ends)
//!            101 + wrong accept, no Upgrade or Connection ─► 502   other status ─► relayed with its body
//!            connect/backend failure ─► 502 / 503         every answer but 101 closes the connection
//! ```
//!
//! Why not hyper for handshakes: on each side hyper needs a connection task, a request channel, a
//! response channel and an upgrade hand-off, plus its 8 KiB buffers; for a WebSocket gateway that is most
//! of the user-space work per connection. Here a handshake is one parse of each head, one write each
//! way and no task but the tunnel's. Header handling is shared with the hyper path (`prepare_head`,
//! `remove_hop_by_hop`, `handshake::validate`, `check_accept`), so both paths forward the same heads.

use std::io::{self, Read as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{Instrument as _, debug, debug_span, warn};

use crate::metrics::UpgradeOutcome;
use crate::routes::{Route, normalize_host};

use super::Shared;
use super::access::{self, Kind, Session};
use super::balancer::{Lease, Pick};
use super::body::ProxyBody;
use super::error::ProxyError;
use super::forward::{log_failure, prepare_head};
use super::handshake::{self, ClientHandshake};
use super::headers::{ClientAddr, has_token, remove_hop_by_hop};
use super::host;
use super::pool;
use super::redirect;
use super::server::{Drain, HEADER_READ_TIMEOUT, Phase};
use super::tunnel::Ends;
use super::websocket::{TunnelSetup, account, connect_upgrade_backend, spawn_tunnel};

/// Largest first request head the fast path reads; a larger one goes to hyper (which allows 64 KiB).
pub const FAST_HEAD_LIMIT: usize = 8 * 1024;
/// The first read's size: a browser's handshake is 300–800 bytes.
const FIRST_READ: usize = 2048;
/// Most header lines a fast-path head may have; more go to hyper.
const MAX_HEADERS: usize = 64;
/// Size of the buffer a refusal's body is copied through.
const BODY_CHUNK: usize = 16 * 1024;

/// What the first request on a connection is.
// why not boxed: the value lives on the stack for one match; a box would be one more allocation per
// handshake.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum First {
    /// A complete WebSocket upgrade request.
    Upgrade(Head),
    /// Anything else: hyper serves the connection, starting with these bytes.
    Other(Bytes),
    /// The client went away, sent nothing in time, or the listener is draining.
    Gone,
}

/// A parsed request head and the bytes it was parsed from (header values point into them).
#[derive(Debug)]
pub struct Head {
    bytes: Bytes,
    len: usize,
    parts: http::request::Parts,
}

/// Reads the first request head. Hyper's limits apply: the head must arrive within
/// [`HEADER_READ_TIMEOUT`]; a connection that is still idle when the listener starts draining is closed.
pub async fn read_first(stream: &TcpStream, phase: &mut watch::Receiver<Phase>) -> First {
    let mut buf = BytesMut::new();
    match read_at_once(stream, &mut buf) {
        Ok(0) => return First::Gone,
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
        Err(_) => return First::Gone,
    }
    // why the timer only now: usually the whole head came with that first read, and a timer per
    // connection (armed and cancelled at once) is not free.
    if let Some(first) = complete(&mut buf) {
        return first;
    }
    match tokio::time::timeout(HEADER_READ_TIMEOUT, read_head(stream, phase, buf)).await {
        Ok(first) => first,
        Err(_) => First::Gone,
    }
}

/// What `buf` holds, once that is decided: a complete head, or something the fast path leaves to hyper.
fn complete(buf: &mut BytesMut) -> Option<First> {
    if buf.is_empty() {
        return None;
    }
    match head_length(buf) {
        Some(Ok(len)) => Some(classify(std::mem::take(buf).freeze(), len)),
        Some(Err(())) => Some(First::Other(std::mem::take(buf).freeze())),
        None if buf.len() >= FAST_HEAD_LIMIT => Some(First::Other(std::mem::take(buf).freeze())),
        None => None,
    }
}

async fn read_head(stream: &TcpStream, phase: &mut watch::Receiver<Phase>, mut buf: BytesMut) -> First {
    loop {
        tokio::select! {
            biased;
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow_and_update() != Phase::Serving {
                    return First::Gone;
                }
                continue;
            }
            ready = stream.readable() => {
                if ready.is_err() {
                    return First::Gone;
                }
            }
        }
        buf.reserve(FIRST_READ);
        match stream.try_read_buf(&mut buf) {
            Ok(0) => return First::Gone,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return First::Gone,
        }
        if let Some(first) = complete(&mut buf) {
            return first;
        }
    }
}

/// Reads what the socket has, without waiting for tokio to report it readable.
///
/// why: on a fresh connection the request is usually already there, and tokio would only learn that
/// from the next epoll round. A miss costs one EAGAIN. (A plain function, so the stack buffer is not
/// part of the connection task's state.)
fn read_at_once(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let mut first = [0u8; FIRST_READ];
    let n = (&*SockRef::from(stream)).read(&mut first)?;
    buf.extend_from_slice(&first[..n]);
    Ok(n)
}

/// The length of the request head in `buf` once it is complete; `Err` when it cannot be a request.
fn head_length(buf: &[u8]) -> Option<Result<usize, ()>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::Request::new(&mut headers).parse(buf) {
        Ok(httparse::Status::Complete(len)) => Some(Ok(len)),
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(Err(())),
    }
}

/// Decides between the fast path and hyper for a complete head.
fn classify(bytes: Bytes, len: usize) -> First {
    match parse_request(&bytes, len) {
        Some(parts) if handshake::wants_websocket(&parts.headers) && !has_body(&parts.headers) => {
            First::Upgrade(Head { bytes, len, parts })
        }
        _ => First::Other(bytes),
    }
}

/// A request that announces a body is left to hyper, which knows how to frame it (and answers a
/// handshake with a body 400, see `handshake::validate`).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers.get_all(CONTENT_LENGTH).iter().any(|v| v.as_bytes().trim_ascii() != b"0")
}

/// The request head as `http` types; header values and the URI share `bytes` instead of copying.
fn parse_request(bytes: &Bytes, len: usize) -> Option<http::request::Parts> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(&bytes[..len]), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let method = Method::from_bytes(request.method?.as_bytes()).ok()?;
    let uri = Uri::from_maybe_shared(bytes.slice_ref(request.path?.as_bytes())).ok()?;
    let version = match request.version? {
        1 => Version::HTTP_11,
        0 => Version::HTTP_10,
        _ => return None,
    };
    let mut map = HeaderMap::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let value = HeaderValue::from_maybe_shared(bytes.slice_ref(header.value)).ok()?;
        map.append(name, value);
    }
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = map;
    Some(parts)
}

/// Proxies an upgrade request. Returns the connection (and every byte read from it) when hyper should
/// answer instead: a handshake that breaks RFC 6455, or a request no route matches.
pub async fn proxy(
    shared: &Arc<Shared>,
    client: &ClientAddr,
    drain: &Drain,
    stream: TcpStream,
    head: Head,
) -> Option<(TcpStream, Bytes)> {
    let Head { bytes, len, parts } = head;
    let Ok(handshake) = handshake::validate(&parts.method, parts.version, &parts.headers) else {
        return Some((stream, bytes));
    };
    let (route, access) = {
        let Ok(host) = host::routing_host(&parts.method, parts.version, &parts.uri, &parts.headers) else {
            return Some((stream, bytes));
        };
        let table = shared.table.load();
        shared.balancer.observe(&table);
        match table.lookup(host, parts.uri.path()) {
            // why hand it to hyper: a redirect is one small answer, and hyper's path already writes it,
            // counts it and logs it; the fast path only saves work on handshakes that are proxied.
            Some(route) if redirect::port(shared, false, route).is_some() => return Some((stream, bytes)),
            Some(route) => {
                let access = shared.access_log.then(|| {
                    let host = normalize_host(host);
                    access::Request::new(Kind::WebSocket, client, &parts.method, &host, parts.uri.path())
                });
                (Arc::clone(route), access)
            }
            None => return Some((stream, bytes)),
        }
    };
    let span = debug_span!(
        "request",
        method = %parts.method,
        path = parts.uri.path(),
        route = &*route.id,
        endpoint = tracing::field::Empty,
    );
    let leftovers = copy_bytes(&bytes[len..]);
    let exchange = Exchange { shared, client, drain, route, handshake };
    exchange.run(stream, parts, leftovers, access).instrument(span).await;
    None
}

/// One handshake on the fast path, from the route on.
struct Exchange<'a> {
    shared: &'a Arc<Shared>,
    client: &'a ClientAddr,
    drain: &'a Drain,
    route: Arc<Route>,
    handshake: ClientHandshake,
}

/// The backend's answer head, and the socket it came on.
struct Answer {
    backend: TcpStream,
    bytes: Bytes,
    head_len: usize,
    status: StatusCode,
    headers: HeaderMap,
    lease: Lease,
}

impl Exchange<'_> {
    async fn run(
        self,
        mut stream: TcpStream,
        mut parts: http::request::Parts,
        leftovers: Bytes,
        access: Option<Box<access::Request>>,
    ) {
        let started = Instant::now();
        prepare_head(&mut parts, self.client);
        // why set explicitly: the hop-by-hop cleanup removed them, and the backend must see exactly these.
        parts.headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        parts.headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        parts.headers.insert(SEC_WEBSOCKET_KEY, self.handshake.key.clone());
        parts.headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        let mut out = Vec::with_capacity(512);
        encode_request(&mut out, &parts);
        drop(parts);

        let timeout = self.route.policy.handshake_timeout;
        let mut picked = None;
        let answer = match tokio::time::timeout(timeout, self.ask(&out, &mut picked)).await {
            Ok(result) => result,
            Err(_) => Err(ProxyError::Timeout(timeout)),
        };
        let answer = match answer {
            Ok(answer) if answer.status == StatusCode::SWITCHING_PROTOCOLS => answer,
            Ok(answer) => {
                let status = answer.status.as_u16();
                self.refuse(stream, answer, out, started).await;
                return log_refused(access, status, &self.route, picked);
            }
            Err(error) => {
                let status = self.fail(stream, error, out, started).await;
                return log_refused(access, status, &self.route, picked);
            }
        };
        if let Err(error) = handshake::check_accept(&self.handshake, &answer.headers) {
            warn!(route = %self.route.id, endpoint = %answer.lease.addr(), %error, "backend answered a broken 101");
            let status = self.fail(stream, error, out, started).await;
            return log_refused(access, status, &self.route, picked);
        }

        let Answer { backend, bytes, head_len, mut headers, lease, .. } = answer;
        remove_hop_by_hop(&mut headers);
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        out.clear();
        encode_status(&mut out, StatusCode::SWITCHING_PROTOCOLS, &headers);
        out.extend_from_slice(b"\r\n");
        let session =
            access.zip(picked).map(|(request, picked)| Session::open(request, &self.route, picked, self.drain));
        let setup = TunnelSetup::new(self.shared, self.drain, &self.route, lease, session);
        account(self.shared, &self.route, UpgradeOutcome::Success, started);
        debug!(status = 101, outcome = UpgradeOutcome::Success.as_str(), "upgrade answered");
        if let Err(error) = stream.write_all(&out).await {
            debug!(%error, "client went away before the 101");
            return;
        }
        let backend_buffered = copy_bytes(&bytes[head_len..]);
        drop(bytes);
        spawn_tunnel(setup.run(Ends { client: stream, client_buffered: leftovers, backend, backend_buffered }));
    }

    /// Connects to an endpoint (trying the next one when a connect fails), sends the head, reads the answer's.
    async fn ask(&self, request: &[u8], picked: &mut Option<Pick>) -> Result<Answer, ProxyError> {
        let (mut backend, lease) = connect_upgrade_backend(self.shared, &self.route, picked).await?;
        backend.write_all(request).await.map_err(ProxyError::BackendStream)?;
        let (bytes, head_len) = read_answer_head(&mut backend).await.map_err(ProxyError::BackendStream)?;
        let (status, headers) = parse_answer(&bytes, head_len).ok_or_else(|| {
            ProxyError::BackendStream(io::Error::new(io::ErrorKind::InvalidData, "malformed answer head"))
        })?;
        Ok(Answer { backend, bytes, head_len, status, headers, lease })
    }

    /// Relays a refusal (any status but 101) with its body, then closes the connection.
    async fn refuse(&self, mut stream: TcpStream, answer: Answer, mut out: Vec<u8>, started: Instant) {
        let Answer { mut backend, bytes, head_len, status, mut headers, lease, .. } = answer;
        let framing = Framing::of(status, &headers);
        remove_hop_by_hop(&mut headers);
        headers.remove(CONTENT_LENGTH);
        out.clear();
        encode_status(&mut out, status, &headers);
        match framing {
            Framing::Length(n) => out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes()),
            Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            Framing::None | Framing::UntilClose => {}
        }
        out.extend_from_slice(b"connection: close\r\n\r\n");
        account(self.shared, &self.route, UpgradeOutcome::Rejected, started);
        debug!(status = status.as_u16(), outcome = UpgradeOutcome::Rejected.as_str(), "upgrade answered");
        let idle = self.route.policy.idle_timeout;
        let body = BytesMut::from(&bytes[head_len..]);
        drop(bytes);
        let relayed = async {
            stream.write_all(&out).await?;
            framing.relay(&mut backend, &mut stream, body, idle).await?;
            stream.shutdown().await
        };
        if let Err(error) = relayed.await {
            debug!(%error, "relaying the refusal failed");
        }
        drop(lease);
    }

    /// Answers with the error's status and closes the connection; returns the status.
    async fn fail(&self, mut stream: TcpStream, error: ProxyError, mut out: Vec<u8>, started: Instant) -> u16 {
        log_failure(&error);
        let outcome = error.upgrade_outcome();
        let response = error.into_response(true);
        let (parts, body) = response.into_parts();
        let body = match body {
            ProxyBody::Full(Some(bytes)) => bytes,
            _ => Bytes::new(),
        };
        out.clear();
        encode_status(&mut out, parts.status, &parts.headers);
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(&body);
        account(self.shared, &self.route, outcome, started);
        debug!(status = parts.status.as_u16(), outcome = outcome.as_str(), "upgrade answered");
        if stream.write_all(&out).await.is_ok() {
            let _ = stream.shutdown().await;
        }
        parts.status.as_u16()
    }
}

/// The access line of a handshake answered with anything but 101.
fn log_refused(access: Option<Box<access::Request>>, status: u16, route: &Route, picked: Option<Pick>) {
    if let Some(access) = access {
        access::answered(&access, status, Some(route), picked.as_ref(), access::Bytes::default());
    }
}

/// Reads a response head (up to [`pool::MAX_RESPONSE_HEADER_BYTES`]); returns the bytes and its length.
async fn read_answer_head(backend: &mut TcpStream) -> io::Result<(Bytes, usize)> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if backend.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Response::new(&mut headers).parse(&buf) {
            Ok(httparse::Status::Complete(len)) => return Ok((buf.freeze(), len)),
            Ok(httparse::Status::Partial) if buf.len() < pool::MAX_RESPONSE_HEADER_BYTES => buf.reserve(1024),
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed or oversized answer head")),
        }
    }
}

fn parse_answer(bytes: &Bytes, len: usize) -> Option<(StatusCode, HeaderMap)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    if !matches!(response.parse(&bytes[..len]), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let status = StatusCode::from_u16(response.code?).ok()?;
    let mut map = HeaderMap::with_capacity(response.headers.len());
    for header in response.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let value = HeaderValue::from_maybe_shared(bytes.slice_ref(header.value)).ok()?;
        map.append(name, value);
    }
    Some((status, map))
}

/// `GET <path> HTTP/1.1` and the headers, as hyper's client would write them.
fn encode_request(out: &mut Vec<u8>, parts: &http::request::Parts) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(parts.uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    encode_headers(out, &parts.headers);
    out.extend_from_slice(b"\r\n");
}

/// A status line and the headers, without the blank line that ends the head.
fn encode_status(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    encode_headers(out, headers);
}

fn encode_headers(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Bytes read ahead, copied out of the (larger) buffer they were read into.
fn copy_bytes(bytes: &[u8]) -> Bytes {
    if bytes.is_empty() { Bytes::new() } else { Bytes::copy_from_slice(bytes) }
}

/// How a refusal's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the backend closes.
    UntilClose,
}

impl Framing {
    fn of(status: StatusCode, headers: &HeaderMap) -> Framing {
        if status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return Framing::None;
        }
        if has_token(headers, &TRANSFER_ENCODING, "chunked") {
            return Framing::Chunked;
        }
        match headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok()) {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    }

    /// Copies the body from `backend` to `client`, starting with `body` (bytes already read). Each read
    /// waits at most `idle`.
    async fn relay(
        self,
        backend: &mut TcpStream,
        client: &mut TcpStream,
        mut body: BytesMut,
        idle: Duration,
    ) -> io::Result<()> {
        match self {
            Framing::None => Ok(()),
            Framing::Length(mut left) => loop {
                let take = body.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                client.write_all(&body[..take]).await?;
                left -= take as u64;
                body.clear();
                if left == 0 {
                    return Ok(());
                }
                if read_more(backend, &mut body, idle).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            },
            Framing::UntilClose => loop {
                client.write_all(&body).await?;
                body.clear();
                if read_more(backend, &mut body, idle).await? == 0 {
                    return Ok(());
                }
            },
            Framing::Chunked => {
                let mut chunks = Chunks::default();
                loop {
                    let end = chunks.scan(&body)?;
                    client.write_all(&body[..end]).await?;
                    body.advance(end);
                    if chunks.done() {
                        return Ok(());
                    }
                    if read_more(backend, &mut body, idle).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
        }
    }
}

/// Appends what `backend` sends next to `body`, waiting at most `idle`; 0 means EOF.
async fn read_more(backend: &mut TcpStream, body: &mut BytesMut, idle: Duration) -> io::Result<usize> {
    body.reserve(BODY_CHUNK);
    match tokio::time::timeout(idle, backend.read_buf(body)).await {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Finds where a chunked body ends, so it can be relayed as is (framing included).
#[derive(Debug, Default)]
struct Chunks {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside chunk data; the count includes the CRLF after the data.
    Data(u64),
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    Done,
}

impl Chunks {
    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Walks `buf` as far as it can; returns how many bytes belong to the body so far.
    fn scan(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut pos = 0;
        loop {
            match self.state {
                ChunkState::Size => match httparse::parse_chunk_size(&buf[pos..]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        pos += used;
                        self.state = if size == 0 { ChunkState::Trailers } else { ChunkState::Data(size + 2) };
                    }
                    Ok(httparse::Status::Partial) => return Ok(pos),
                    Err(_) => return Err(io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")),
                },
                ChunkState::Data(left) => {
                    let take = ((buf.len() - pos) as u64).min(left);
                    pos += take as usize;
                    if take < left {
                        self.state = ChunkState::Data(left - take);
                        return Ok(pos);
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => match buf[pos..].windows(2).position(|w| w == b"\r\n") {
                    Some(0) => {
                        pos += 2;
                        self.state = ChunkState::Done;
                    }
                    Some(line) => pos += line + 2,
                    None => return Ok(pos),
                },
                ChunkState::Done => return Ok(pos),
            }
        }
    }
}

/// A client socket with bytes that were read from it before hyper took over, served first.
#[derive(Debug)]
pub struct Prefixed {
    prefix: Bytes,
    stream: TcpStream,
}

impl Prefixed {
    pub fn new(prefix: Bytes, stream: TcpStream) -> Prefixed {
        Prefixed { prefix, stream }
    }

    /// The socket and whatever of the prefix was not read yet.
    pub fn into_parts(self) -> (TcpStream, Bytes) {
        (self.stream, self.prefix)
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_end_after_the_last_chunk_and_trailers() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        let mut chunks = Chunks::default();
        assert_eq!(chunks.scan(body).unwrap(), body.len() - 4);
        assert!(chunks.done());
        // The same body arriving three bytes at a time.
        let mut chunks = Chunks::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut total = 0;
        for piece in body.chunks(3) {
            buf.extend_from_slice(piece);
            let end = chunks.scan(&buf).unwrap();
            total += end;
            buf.drain(..end);
            if chunks.done() {
                break;
            }
        }
        assert_eq!(total, body.len() - 4);
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let map = |pairs: &[(&str, &str)]| {
            let mut headers = HeaderMap::new();
            for (k, v) in pairs {
                headers.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
            }
            headers
        };
        assert_eq!(Framing::of(StatusCode::FORBIDDEN, &map(&[("content-length", "12")])), Framing::Length(12));
        assert_eq!(Framing::of(StatusCode::FORBIDDEN, &map(&[("transfer-encoding", "chunked")])), Framing::Chunked);
        assert_eq!(Framing::of(StatusCode::FORBIDDEN, &map(&[])), Framing::UntilClose);
        assert_eq!(Framing::of(StatusCode::NO_CONTENT, &map(&[("content-length", "12")])), Framing::None);
    }

    #[test]
    fn heads_are_classified() {
        let upgrade = "GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nrest";
        let bytes = Bytes::from(upgrade);
        let len = upgrade.len() - 4;
        match classify(bytes.clone(), len) {
            First::Upgrade(head) => {
                assert_eq!(head.parts.uri.path(), "/chat");
                assert_eq!(head.parts.headers["host"], "a");
                assert_eq!(&head.bytes[head.len..], b"rest");
            }
            other => panic!("expected the fast path, got {other:?}"),
        }
        let plain = Bytes::from_static(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(matches!(classify(plain.clone(), plain.len()), First::Other(b) if b == plain));
        let with_body = Bytes::from_static(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\n");
        assert!(matches!(classify(with_body.clone(), with_body.len()), First::Other(_)));
        assert_eq!(head_length(b"GET / HTTP/1.1\r\nHost"), None);
        assert_eq!(head_length(b"\x01\x02 nonsense\r\n\r\n"), Some(Err(())));
    }
}
