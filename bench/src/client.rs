//! A lean WebSocket client (RFC 6455, client side): the opening handshake, masked binary frames out,
//! unmasked frames in, and a check of every echoed payload.
//!
//! ```text
//!   connect(from 127.0.0.x) ─► GET + Upgrade ─► 101 + correct Sec-WebSocket-Accept ─► Conn
//!   Conn::echo(payload):  [0x82 | len | mask key | masked payload] ─►
//!                         ◄─ [0x82 | len | payload]   must equal what was sent, byte for byte
//! ```
//!
//! Why not tungstenite: with two cores shared by the load generator, the proxy and the backends, the
//! generator must cost as little CPU per message as possible, so one write and (usually) one read per
//! round trip, no per-message allocation, and no message abstraction.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The GUID RFC 6455 appends to the key before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest handshake answer accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Longest a handshake may take before it counts as an error.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection or an exchange failed; every one is counted as an error by the workloads.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("handshake answered {0}")]
    Status(u16),
    #[error("handshake answer malformed")]
    BadHead,
    #[error("wrong Sec-WebSocket-Accept")]
    BadAccept,
    #[error("timed out")]
    Timeout,
    #[error("echoed frame differs from the message sent")]
    Mismatch,
    #[error("connection closed")]
    Closed,
}

/// The `Sec-WebSocket-Accept` a correct server derives from `key`.
pub fn accept_for(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID);
    BASE64.encode(sha.finalize())
}

/// A small, fast pseudo-random generator (xorshift64*): keys and mask keys need variety, not secrecy.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// An open WebSocket.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// Received bytes not yet consumed: `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The frame being sent (header, mask key, masked payload), reused for every message.
    out: Vec<u8>,
    rng: Rng,
}

/// Opens a TCP connection from `source` to `target` and performs the opening handshake for `path`.
pub async fn connect(target: SocketAddr, source: IpAddr, path: &str, seed: u64) -> Result<Conn, ClientError> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, open(target, source, path, seed)).await {
        Ok(result) => result,
        Err(_) => Err(ClientError::Timeout),
    }
}

async fn open(target: SocketAddr, source: IpAddr, path: &str, seed: u64) -> Result<Conn, ClientError> {
    let socket = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    let mut rng = Rng::new(seed);
    let mut raw_key = [0u8; 16];
    raw_key[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    raw_key[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    let key = BASE64.encode(raw_key);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: bench.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://bench.local\r\n\
         X-Bench-User: user-{seed}\r\n\r\n"
    );
    let mut conn = Conn { stream, buf: vec![0u8; 512], start: 0, end: 0, out: Vec::new(), rng };
    conn.stream.write_all(request.as_bytes()).await?;
    let head_len = loop {
        if let Some(pos) = find_head_end(&conn.buf[..conn.end]) {
            break pos;
        }
        if conn.end == conn.buf.len() {
            if conn.buf.len() >= MAX_HEAD {
                return Err(ClientError::BadHead);
            }
            conn.buf.resize(conn.buf.len() * 2, 0);
        }
        let n = conn.stream.read(&mut conn.buf[conn.end..]).await?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        conn.end += n;
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&conn.buf[..head_len]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(ClientError::BadHead),
    }
    let status = response.code.ok_or(ClientError::BadHead)?;
    if status != 101 {
        return Err(ClientError::Status(status));
    }
    let expected = accept_for(key.as_bytes());
    let accept = response.headers.iter().find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"));
    if accept.map(|h| h.value.trim_ascii()) != Some(expected.as_bytes()) {
        return Err(ClientError::BadAccept);
    }
    conn.start = head_len;
    Ok(conn)
}

/// The length of the HTTP head (through the blank line), once it is complete.
pub fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

impl Conn {
    /// Sends `payload` as one masked binary frame and waits for its echo, which must be identical.
    pub async fn echo(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.send(payload).await?;
        self.expect(payload).await
    }

    /// Like [`Conn::echo`], bounded by `limit`.
    pub async fn echo_within(&mut self, payload: &[u8], limit: Duration) -> Result<(), ClientError> {
        match tokio::time::timeout(limit, self.echo(payload)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout),
        }
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        let len = payload.len();
        self.out.clear();
        self.out.push(0x82);
        if len < 126 {
            self.out.push(0x80 | len as u8);
        } else if len <= usize::from(u16::MAX) {
            self.out.push(0x80 | 126);
            self.out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.out.push(0x80 | 127);
            self.out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = (self.rng.next_u64() as u32).to_ne_bytes();
        self.out.extend_from_slice(&mask);
        let body = self.out.len();
        self.out.extend_from_slice(payload);
        apply_mask(&mut self.out[body..], mask);
        self.stream.write_all(&self.out).await?;
        Ok(())
    }

    /// Reads one frame and checks it is an unmasked, final binary frame carrying exactly `payload`.
    async fn expect(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.fill(2).await?;
        let b0 = self.buf[self.start];
        let b1 = self.buf[self.start + 1];
        if b0 != 0x82 || b1 & 0x80 != 0 {
            return Err(ClientError::Mismatch);
        }
        let (header, len) = match b1 & 0x7f {
            126 => {
                self.fill(4).await?;
                (4, usize::from(u16::from_be_bytes([self.buf[self.start + 2], self.buf[self.start + 3]])))
            }
            127 => {
                self.fill(10).await?;
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&self.buf[self.start + 2..self.start + 10]);
                (10, usize::try_from(u64::from_be_bytes(raw)).map_err(|_| ClientError::Mismatch)?)
            }
            n => (2, usize::from(n)),
        };
        if len != payload.len() {
            return Err(ClientError::Mismatch);
        }
        self.fill(header + len).await?;
        let body = &self.buf[self.start + header..self.start + header + len];
        if body != payload {
            return Err(ClientError::Mismatch);
        }
        self.start += header + len;
        Ok(())
    }

    /// Makes sure at least `need` unconsumed bytes are buffered.
    async fn fill(&mut self, need: usize) -> Result<(), ClientError> {
        while self.end - self.start < need {
            if self.start > 0 && (self.start == self.end || self.buf.len() - self.start < need) {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() < need {
                self.buf.resize(need.next_power_of_two(), 0);
            }
            let n = self.stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.end += n;
        }
        Ok(())
    }

    /// Sends a close frame (1000) and waits, within `limit`, for the server's close or EOF.
    pub async fn close(mut self, limit: Duration) {
        let frame = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8];
        let _ = tokio::time::timeout(limit, async {
            if self.stream.write_all(&frame).await.is_ok() {
                let mut sink = [0u8; 256];
                while let Ok(n) = self.stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            }
        })
        .await;
    }
}

/// XORs `data` with the 4-byte mask key (RFC 6455 §5.3), eight bytes at a time where it can.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // Chunks of eight keep the key aligned: the tail starts at a multiple of four.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_accept() {
        assert_eq!(accept_for(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn masking_twice_restores_and_matches_the_bytewise_rule() {
        let original: Vec<u8> = (0..77u8).collect();
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut data = original.clone();
        apply_mask(&mut data, mask);
        for (i, (masked, plain)) in data.iter().zip(&original).enumerate() {
            assert_eq!(*masked, plain ^ mask[i % 4]);
        }
        apply_mask(&mut data, mask);
        assert_eq!(data, original);
    }
}
