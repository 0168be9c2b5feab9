//! HTTP/1.1 on the wire, for the parts of a WebSocket handshake wsgate speaks itself: the request
//! head sent to the backend, its answer head, a refusal's body, and the heads the first-request codec
//! writes to the client.
//!
//! ```text
//!   encode_request ─► backend ─► read_answer_head + parse_answer ─► 101: the tunnel gets the socket
//!                                                                 └► other: read_body (≤ 64 KiB,
//!                                                                    framing per RFC 9112 §6.3,
//!                                                                    chunks decoded)
//! ```

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::io;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

use super::headers::has_token;
use super::pool;

/// Most header lines a head may have on the paths that parse with httparse.
pub const MAX_HEADERS: usize = 64;
/// Largest refusal body (an answer other than 101 to a handshake) wsgate relays; a larger one is a 502.
pub const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// Reads a response head (up to [`pool::MAX_RESPONSE_HEADER_BYTES`]); returns the bytes and its length.
pub async fn read_answer_head(backend: &mut TcpStream) -> io::Result<(Bytes, usize)> {
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

/// The status and headers of a complete answer head; header values share `bytes`.
pub fn parse_answer(bytes: &Bytes, len: usize) -> Option<(StatusCode, HeaderMap)> {
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
pub fn encode_request(out: &mut Vec<u8>, parts: &http::request::Parts) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(parts.uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    encode_headers(out, &parts.headers);
    out.extend_from_slice(b"\r\n");
}

/// A status line and the headers, without the blank line that ends the head.
pub fn encode_status(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap) {
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
pub fn copy_bytes(bytes: &[u8]) -> Bytes {
    if bytes.is_empty() { Bytes::new() } else { Bytes::copy_from_slice(bytes) }
}

/// How an answer's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the backend closes.
    UntilClose,
}

impl Framing {
    pub fn of(status: StatusCode, headers: &HeaderMap) -> Framing {
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
}

/// Reads a whole body framed as `framing`, starting with `read` (the bytes already read past the
/// head), at most [`MAX_REFUSAL_BODY`] of payload; a chunked body is decoded (trailers are dropped).
/// The caller bounds the time.
pub async fn read_body(backend: &mut TcpStream, framing: Framing, mut read: BytesMut) -> io::Result<Bytes> {
    let too_large = || io::Error::new(io::ErrorKind::InvalidData, "the body is larger than 64 KiB");
    match framing {
        Framing::None => Ok(Bytes::new()),
        Framing::Length(length) => {
            let length = usize::try_from(length).ok().filter(|n| *n <= MAX_REFUSAL_BODY).ok_or_else(too_large)?;
            while read.len() < length {
                if backend.read_buf(&mut read).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            read.truncate(length);
            Ok(read.freeze())
        }
        Framing::UntilClose => loop {
            if read.len() > MAX_REFUSAL_BODY {
                return Err(too_large());
            }
            read.reserve(4096);
            if backend.read_buf(&mut read).await? == 0 {
                return Ok(read.freeze());
            }
        },
        Framing::Chunked => {
            let mut chunks = Chunks::default();
            let mut data = BytesMut::new();
            loop {
                let used = chunks.decode(&read, &mut data)?;
                read.advance(used);
                if chunks.done() {
                    return Ok(data.freeze());
                }
                if data.len() > MAX_REFUSAL_BODY || read.len() > MAX_REFUSAL_BODY {
                    return Err(too_large());
                }
                read.reserve(4096);
                if backend.read_buf(&mut read).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
    }
}

/// A chunked body decoder that can be fed in pieces.
#[derive(Debug, Default)]
struct Chunks {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside chunk data: data bytes left, then the CRLF after it.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    Done,
}

impl Chunks {
    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes as much of `buf` as it can, appending chunk data to `data`; returns how many bytes of
    /// `buf` were used (the rest waits for more input).
    fn decode(&mut self, buf: &[u8], data: &mut BytesMut) -> io::Result<usize> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunked body: {what}"));
        let mut pos = 0;
        loop {
            match self.state {
                ChunkState::Size => match httparse::parse_chunk_size(&buf[pos..]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        pos += used;
                        self.state = if size == 0 { ChunkState::Trailers } else { ChunkState::Data(size) };
                    }
                    Ok(httparse::Status::Partial) => return Ok(pos),
                    Err(_) => return Err(bad("chunk size")),
                },
                ChunkState::Data(left) => {
                    let take = ((buf.len() - pos) as u64).min(left);
                    data.extend_from_slice(&buf[pos..pos + take as usize]);
                    pos += take as usize;
                    if take < left {
                        self.state = ChunkState::Data(left - take);
                        return Ok(pos);
                    }
                    self.state = ChunkState::DataEnd;
                }
                ChunkState::DataEnd => match buf.get(pos..pos + 2) {
                    Some(b"\r\n") => {
                        pos += 2;
                        self.state = ChunkState::Size;
                    }
                    Some(_) => return Err(bad("no CRLF after chunk data")),
                    None => return Ok(pos),
                },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded_whole_or_in_pieces() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        let mut chunks = Chunks::default();
        let mut data = BytesMut::new();
        assert_eq!(chunks.decode(body, &mut data).unwrap(), body.len() - 4);
        assert!(chunks.done());
        assert_eq!(&data[..], b"hello world");
        // The same body arriving three bytes at a time.
        let mut chunks = Chunks::default();
        let mut data = BytesMut::new();
        let mut buf: Vec<u8> = Vec::new();
        for piece in body.chunks(3) {
            buf.extend_from_slice(piece);
            let used = chunks.decode(&buf, &mut data).unwrap();
            buf.drain(..used);
            if chunks.done() {
                break;
            }
        }
        assert_eq!(&data[..], b"hello world");
        assert!(Chunks::default().decode(b"5\r\nhelloXX", &mut BytesMut::new()).is_err());
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
}
