//! The benchmark's echo backend: one thread, one listener, every WebSocket frame sent straight back.
//!
//! ```text
//!   GET + Upgrade: websocket ─► 101 + Sec-WebSocket-Accept ─► frames: unmask, echo unmasked
//!                                                               close ─► close echoed, then EOF
//!                                                               ping  ─► pong
//!   any other request        ─► 200 "ok" (keep-alive), so a proxy's plain-HTTP path can be probed
//! ```
//!
//! Why not the repo's `examples/echo.rs` (hyper + tungstenite): it spends several times the CPU per
//! message of this loop, and on two shared cores the backend would set the ceiling for every proxy.
//! The same echo serves every target (direct, nginx, HAProxy, wsgate), so the comparison stays fair.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::{accept_for, apply_mask, find_head_end};

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest frame payload echoed (the bench sends 64 KiB).
const MAX_FRAME: usize = 1 << 20;

/// Serves the given addresses on one current-thread runtime until the process is killed.
pub fn run(addrs: &[SocketAddr]) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut listeners = Vec::new();
        for addr in addrs {
            let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
            listeners.push(listener);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for listener in listeners {
            tasks.spawn(accept_loop(listener));
        }
        tasks.join_next().await;
        anyhow::bail!("an echo listener stopped")
    })
}

async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    // Errors are clients going away; nothing to report in a benchmark backend.
                    let _ = serve(stream).await;
                });
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

async fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1024];
    let mut end = 0;
    loop {
        // One request head per iteration (plain requests may come several on one connection).
        let head_len = loop {
            if let Some(len) = find_head_end(&buf[..end]) {
                break len;
            }
            if end == buf.len() {
                if buf.len() >= MAX_HEAD {
                    return Ok(());
                }
                buf.resize(buf.len() * 2, 0);
            }
            let n = stream.read(&mut buf[end..]).await?;
            if n == 0 {
                return Ok(());
            }
            end += n;
        };
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut request = httparse::Request::new(&mut headers);
        if !matches!(request.parse(&buf[..head_len]), Ok(httparse::Status::Complete(_))) {
            stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
            return Ok(());
        }
        let header = |name: &str| request.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
        let upgrade = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"));
        if let (true, Some(key)) = (upgrade, header("sec-websocket-key")) {
            let accept = accept_for(key.trim_ascii());
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            stream.write_all(answer.as_bytes()).await?;
            buf.copy_within(head_len..end, 0);
            end -= head_len;
            return frames(stream, buf, end).await;
        }
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n").await?;
        buf.copy_within(head_len..end, 0);
        end -= head_len;
    }
}

/// Echoes frames until the client closes. `buf[..end]` holds bytes already read.
async fn frames(mut stream: TcpStream, mut buf: Vec<u8>, mut end: usize) -> std::io::Result<()> {
    let mut out: Vec<u8> = Vec::new();
    loop {
        // Answer every complete frame in the buffer with one write.
        let mut start = 0;
        let mut closing = false;
        out.clear();
        while let Some((header, len)) = frame_size(&buf[start..end]) {
            if header + len > end - start {
                if header + len > buf.len() {
                    if header + len > MAX_FRAME + 14 {
                        return Ok(());
                    }
                    buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                    buf.resize((header + len).next_power_of_two(), 0);
                }
                break;
            }
            let b0 = buf[start];
            let mut mask = [0u8; 4];
            if buf[start + 1] & 0x80 != 0 {
                mask.copy_from_slice(&buf[start + header - 4..start + header]);
            }
            let payload = &mut buf[start + header..start + header + len];
            apply_mask(payload, mask);
            let opcode = b0 & 0x0f;
            let answer_b0 = if opcode == 0x9 { (b0 & 0xf0) | 0xA } else { b0 };
            out.push(answer_b0);
            if len < 126 {
                out.push(len as u8);
            } else if len <= usize::from(u16::MAX) {
                out.push(126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
            out.extend_from_slice(payload);
            start += header + len;
            if opcode == 0x8 {
                closing = true;
                break;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
        }
        if closing {
            let _ = stream.shutdown().await;
            return Ok(());
        }
        buf.copy_within(start..end, 0);
        end -= start;
        if end == 0 && buf.len() > 256 * 1024 {
            // Give memory back once a burst of large frames is over.
            buf = vec![0u8; 1024];
        }
        if end == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = stream.read(&mut buf[end..]).await?;
        if n == 0 {
            return Ok(());
        }
        end += n;
    }
}

/// The header length (masked client frames: 6, 8 or 14) and payload length of the frame starting `bytes`,
/// once its header is complete.
fn frame_size(bytes: &[u8]) -> Option<(usize, usize)> {
    if bytes.len() < 2 {
        return None;
    }
    let masked = if bytes[1] & 0x80 != 0 { 4 } else { 0 };
    match bytes[1] & 0x7f {
        126 => {
            let raw = bytes.get(2..4)?;
            Some((4 + masked, usize::from(u16::from_be_bytes([raw[0], raw[1]]))))
        }
        127 => {
            let raw: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
            Some((10 + masked, usize::try_from(u64::from_be_bytes(raw)).ok()?))
        }
        n => Some((2 + masked, usize::from(n))),
    }
    .filter(|(header, _)| bytes.len() >= *header)
}
