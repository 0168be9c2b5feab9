//! What one client connection carries through its life, whichever codec serves it: who the client is,
//! the drain token, and its slot under `--max-connections`.
//!
//! ```text
//!   accept ─► Slot (or refused: over --max-connections) ─► Conn { addr, drain, slot } (Arc)
//!     ├─ every request of the connection reads it
//!     └─ a WebSocket's tunnel task keeps a clone: the slot and the drain token live as long as the
//!        tunnel, which outlives the connection task on both codecs
//! ```
//!
//! `Prefixed` is the client socket with bytes already read from it (by the first-request reader)
//! put back in front, for hyper.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::headers::ClientAddr;

/// Where the listener is in its shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Serving,
    /// No new connections; existing ones finish their work.
    Draining,
    /// The drain deadline passed: close everything now.
    Closing,
}

/// Held by every connection and tunnel task while it runs.
#[derive(Debug, Clone)]
pub struct Drain {
    pub(super) _token: mpsc::Sender<()>,
    pub(super) phase: watch::Receiver<Phase>,
}

impl Drain {
    /// Whether the drain deadline has passed (what is still open is being closed).
    pub fn is_closing(&self) -> bool {
        *self.phase.borrow() == Phase::Closing
    }
}

/// One client connection, shared by its requests and by the tunnel it may become.
#[derive(Debug)]
pub struct Conn {
    pub addr: ClientAddr,
    pub drain: Drain,
    /// Released when the connection and any tunnel it became are gone.
    _slot: Slot,
}

impl Conn {
    pub fn new(addr: ClientAddr, drain: Drain, slot: Slot) -> Arc<Conn> {
        Arc::new(Conn { addr, drain, _slot: slot })
    }
}

/// The open client connections of every listener, and the `--max-connections` cap on them.
#[derive(Debug, Default)]
pub struct Connections {
    max: Option<usize>,
    open: Arc<AtomicUsize>,
}

impl Connections {
    pub fn new(max: Option<usize>) -> Connections {
        Connections { max, open: Arc::new(AtomicUsize::new(0)) }
    }

    /// A slot for a new connection, or `None` when `max` are open (the connection is refused).
    pub fn try_open(&self) -> Option<Slot> {
        let max = self.max.unwrap_or(usize::MAX);
        let admitted = self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
        admitted.ok().map(|_| Slot(Arc::clone(&self.open)))
    }

    /// Connections open now (WebSocket tunnels included).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub fn max(&self) -> Option<usize> {
        self.max
    }
}

/// One open connection under [`Connections`]; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
    fn connections_are_capped_and_slots_free_on_drop() {
        let connections = Connections::new(Some(2));
        let a = connections.try_open().expect("first");
        let _b = connections.try_open().expect("second");
        assert!(connections.try_open().is_none(), "the third is refused");
        drop(a);
        assert!(connections.try_open().is_some(), "a freed slot is reused");
        let unlimited = Connections::new(None);
        let slots: Vec<Slot> = (0..100).filter_map(|_| unlimited.try_open()).collect();
        assert_eq!((slots.len(), unlimited.open()), (100, 100));
    }
}
