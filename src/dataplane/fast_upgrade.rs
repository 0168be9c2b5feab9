//! The first request of every client connection is read here, before hyper sees the connection: a
//! codec of the decision pipeline that needs no hyper on either side. A WebSocket handshake is handed
//! to `pipeline::handshake` and its answer written straight to the socket; anything else is served by
//! hyper, with the bytes already read put back in front of the socket.
//!
//! ```text
//!   read the first request head (≤ FAST_HEAD_LIMIT, ≤ HEADER_READ_TIMEOUT; a read is tried before the
//!   first epoll round trip, since the request usually arrived with the connection)
//!     ├─ not a handshake, a body, incomplete at the limit, unparsable ─► hyper over `Prefixed`
//!     └─ a handshake ─► pipeline::handshake ─┬─ Switched: write the 101 ─► tunnel task (this task ends)
//!                                            └─ Respond: write it, close the connection
//! ```
//!
//! Why not hyper for handshakes: on each side hyper needs a connection task, a request channel, a
//! response channel and an upgrade hand-off, plus its 8 KiB buffers; for a WebSocket gateway that is most
//! of the user-space work per connection. Here a handshake is one parse of each head, one write each
//! way and no task but the tunnel's. Every decision is the pipeline's, shared with hyper's codec
//! (`server::handle`), so both codecs answer alike and leave the connection in the same state.

use std::io::{self, Read as _};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};
use socket2::SockRef;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{Instrument as _, debug, debug_span};

use super::Shared;
use super::conn::{Conn, Phase};
use super::handshake;
use super::pipeline::{self, Answer, Reply};
use super::server::HEADER_READ_TIMEOUT;
use super::session::spawn_tunnel;
use super::tunnel::Ends;
use super::wire::{self, MAX_HEADERS};

/// Largest first request head the fast path reads; a larger one goes to hyper (which allows 64 KiB).
pub const FAST_HEAD_LIMIT: usize = 8 * 1024;
/// The first read's size: a browser's handshake is 300–800 bytes.
const FIRST_READ: usize = 2048;

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

/// Reads the first request head, after `buf` (bytes already read: what followed a PROXY protocol
/// header, usually nothing). Hyper's limits apply: the head must arrive within
/// [`HEADER_READ_TIMEOUT`]; a connection that is still idle when the listener starts draining is closed.
pub async fn read_first(stream: &TcpStream, phase: &mut watch::Receiver<Phase>, mut buf: BytesMut) -> First {
    if let Some(first) = complete(&mut buf) {
        return first;
    }
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

/// Serves a handshake that came as the connection's first request: the pipeline decides, this writes.
pub async fn serve(shared: &Arc<Shared>, conn: &Arc<Conn>, mut stream: TcpStream, head: Head) {
    let Head { bytes, len, parts } = head;
    let span = debug_span!(
        "request",
        method = %parts.method,
        path = parts.uri.path(),
        route = tracing::field::Empty,
        endpoint = tracing::field::Empty,
    );
    let client_buffered = wire::copy_bytes(&bytes[len..]);
    let answer = pipeline::handshake(shared, conn, parts).instrument(span.clone()).await;
    drop(bytes);
    let mut out = Vec::with_capacity(256);
    match answer {
        Answer::Switched(switched) => {
            let pipeline::Switched { headers, backend, backend_buffered, setup } = *switched;
            wire::encode_status(&mut out, StatusCode::SWITCHING_PROTOCOLS, &headers);
            out.extend_from_slice(b"\r\n");
            drop(headers);
            if let Err(error) = stream.write_all(&out).await {
                debug!(%error, "client went away before the 101");
                return;
            }
            let _entered = span.enter();
            spawn_tunnel(setup.run(Ends { client: stream, client_buffered, backend, backend_buffered }));
        }
        Answer::Respond(reply) => {
            encode_reply(&mut out, reply);
            if stream.write_all(&out).await.is_ok() {
                let _ = stream.shutdown().await;
            }
        }
    }
}

/// A complete answer, framed with `Content-Length` (the connection closes after it).
fn encode_reply(out: &mut Vec<u8>, reply: Reply) {
    let Reply { status, mut headers, body } = reply;
    let bodiless = status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    if !bodiless && !headers.contains_key(CONTENT_LENGTH) {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    wire::encode_status(out, status, &headers);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;

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
