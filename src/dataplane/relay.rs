//! The generic byte relay, for upgraded connections whose client side is not a plain TCP socket (a
//! WebSocket over TLS). The readiness-based [`Tunnel`](super::tunnel::Tunnel) needs two raw
//! `TcpStream`s; a TLS stream must be read through rustls, so it goes through this poll loop over any
//! `AsyncRead + AsyncWrite`, built the same way.
//!
//! ```text
//!   client (TLS) ──poll_read──► scratch (per thread) ──poll_write──► backend   (upstream half)
//!   client (TLS) ◄──poll_write── scratch ◄──poll_read── backend                (downstream half)
//!            └─ only when the destination is full: the remainder is copied into `pending`,
//!               and that half stops reading until it drains (backpressure); each half flushes
//!               its destination after writing (rustls may hold encrypted records until then)
//!   EOF on one side ─► what either half still holds is written out, shutdown(write) on the other
//!                      side (close_notify + FIN for TLS), its input read and discarded until it
//!                      closes too (at most 5 s / 1 MiB: a lingering close, see `tunnel` for why),
//!                      and the relay ends (the first EOF ends it, as in the plain tunnel); a TLS
//!                      client that closes TCP without close_notify counts as an EOF
//!   no byte either way for `idle_timeout` ─► IdleTimeout
//! ```
//!
//! Memory: an idle relay owns no buffer. Reads go into a per-thread scratch buffer, borrowed only
//! inside one synchronous poll, and go straight out again; only what the destination cannot take yet
//! is copied to the heap (and freed once written). An idle TLS WebSocket costs about 10.6 KiB of RSS
//! (37 KiB with the two 16 KiB buffers this relay used to own; see `examples/idle_wss.rs`), most of it
//! rustls's connection state, per heaptrack: its 4 KiB receive buffer (resized to 4 KiB before every
//! socket read, with no API to release it), the connection struct (1.2 KiB), the record keys (1.1 KiB).
//! rustls's outgoing queues are empty while idle; under backpressure they hold at most its default
//! buffer limit (64 KiB) before writes return `Pending` and this relay stops reading.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::tunnel::{End, IdleClock, LINGER, LINGER_BYTES, Meter};

/// Size of the per-thread scratch buffer one read fills: one TLS record's plaintext at most.
const SCRATCH_LEN: usize = 16 * 1024;

thread_local! {
    // why per thread: a relay borrows it only inside one synchronous poll (no await while borrowed), so
    // one buffer per worker thread serves every relay on that thread.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH_LEN].into_boxed_slice());
}

/// Relays between `client` and `backend` until one side closes, the idle timeout, or an I/O error.
/// `backend_buffered` is what was read from the backend past its 101 answer; it goes to the client
/// first. Byte counts go to `upstream` (client → backend) and `downstream`; they are flushed to the
/// metrics while the relay runs (see [`Meter`]) and when it ends.
pub async fn relay<C, B>(
    client: C,
    backend: B,
    backend_buffered: Bytes,
    idle_timeout: Duration,
    upstream: &mut Meter,
    downstream: &mut Meter,
) -> io::Result<End>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let relay = Relay {
        client,
        backend,
        upstream: Half::new(Bytes::new(), upstream),
        downstream: Half::new(backend_buffered, downstream),
        clock: IdleClock::new(idle_timeout),
        closing: None,
        lingering: None,
    };
    relay.await
}

/// Writes out `pending` and, if anything went out since, flushes `dst` (rustls may hold encrypted
/// records until then). `Ready(Ok)` once both are done. Shared with the frame relay.
pub(super) fn poll_write_pending<W: AsyncWrite + Unpin + ?Sized>(
    pending: &mut Bytes,
    unflushed: &mut bool,
    dst: &mut W,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !pending.is_empty() {
        let n = ready!(Pin::new(&mut *dst).poll_write(cx, pending))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        pending.advance(n);
        *unflushed = true;
    }
    if *unflushed {
        ready!(Pin::new(&mut *dst).poll_flush(cx))?;
        *unflushed = false;
    }
    Poll::Ready(Ok(()))
}

/// Reads and discards `src` into `scratch` until it closes or errs (`true`), `discarded` reaches
/// [`LINGER_BYTES`] (`true`), or it has nothing more now (`false`): the lingering close of both relays.
pub(super) fn discard_until_closed<R: AsyncRead + Unpin + ?Sized>(
    src: &mut R,
    scratch: &mut [u8],
    discarded: &mut usize,
    cx: &mut Context<'_>,
) -> bool {
    loop {
        let mut buf = ReadBuf::new(scratch);
        match Pin::new(&mut *src).poll_read(cx, &mut buf) {
            Poll::Pending => return false,
            Poll::Ready(Err(_)) => return true,
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return true,
            Poll::Ready(Ok(())) => {
                *discarded += buf.filled().len();
                if *discarded >= LINGER_BYTES {
                    return true;
                }
            }
        }
    }
}

/// Which side reached EOF first.
#[derive(Debug, Clone, Copy)]
enum Eof {
    Client,
    Backend,
}

/// One direction of the relay.
struct Half<'m> {
    /// Bytes read but not yet written: the backend's leftovers at the start, or what the destination
    /// could not take. Empty (and unallocated) in the steady state.
    pending: Bytes,
    /// Bytes went to the destination since its last flush.
    unflushed: bool,
    /// The source reached EOF.
    eof: bool,
    meter: &'m mut Meter,
}

impl<'m> Half<'m> {
    fn new(pending: Bytes, meter: &'m mut Meter) -> Half<'m> {
        meter.add(pending.len());
        Half { unflushed: false, eof: false, pending, meter }
    }

    /// Writes out what `pending` holds and flushes the destination. `Ready(Ok)` once both are done.
    fn poll_drain<W: AsyncWrite + Unpin>(&mut self, dst: &mut W, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_write_pending(&mut self.pending, &mut self.unflushed, dst, cx)
    }

    /// Moves bytes from `src` to `dst` until one of them is not ready. `Ready(Ok)` means `src` reached
    /// EOF and everything read before it was written; an error means the relay must end.
    fn poll_relay<R, W>(
        &mut self,
        src: &mut R,
        dst: &mut W,
        scratch: &mut [u8],
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            ready!(self.poll_drain(dst, cx))?;
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(scratch);
            match ready!(Pin::new(&mut *src).poll_read(cx, &mut buf)) {
                Ok(()) => {}
                // why: rustls reports a peer that closed TCP without close_notify this way; for a relay
                // that is the end of that side's input like any other EOF (the bytes before it are good).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.eof = true;
                    continue;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
            let n = buf.filled().len();
            if n == 0 {
                self.eof = true;
                continue;
            }
            self.meter.add(n);
            let mut written = 0;
            while written < n {
                match Pin::new(&mut *dst).poll_write(cx, &scratch[written..n]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(k)) => written += k,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        // The only copy to the heap, and only while the destination is slower.
                        self.pending = Bytes::copy_from_slice(&scratch[written..n]);
                        break;
                    }
                }
            }
            self.unflushed = true;
        }
    }
}

/// A running relay, with the plain tunnel's [`IdleClock`]: no clock read per message, a silent relay
/// ends after `idle_timeout` plus at most an eighth of it, never before.
struct Relay<'m, C, B> {
    client: C,
    backend: B,
    upstream: Half<'m>,
    downstream: Half<'m>,
    clock: IdleClock,
    /// One side reached EOF: no more reads; pending bytes are written, then the other side is shut down.
    closing: Option<Eof>,
    /// After the close: bytes of the side still open read and discarded while waiting for it to close
    /// (see `poll_linger`).
    lingering: Option<usize>,
}

impl<C, B> Relay<'_, C, B>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    fn total(&self) -> u64 {
        self.upstream.meter.total() + self.downstream.meter.total()
    }

    /// Relays both halves until one reaches EOF (`Ready(Ok(Some))`) or neither can move (`Pending`).
    fn poll_halves(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Eof>> {
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let (client, backend) = (&mut self.client, &mut self.backend);
            if self.upstream.poll_relay(client, backend, &mut scratch, cx)?.is_ready() {
                return Poll::Ready(Ok(Eof::Client));
            }
            if self.downstream.poll_relay(backend, client, &mut scratch, cx)?.is_ready() {
                return Poll::Ready(Ok(Eof::Backend));
            }
            Poll::Pending
        })
    }

    /// After the first EOF: writes out what both halves hold, then shuts down the side opposite the EOF.
    fn poll_close(&mut self, eof: Eof, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let up = self.upstream.poll_drain(&mut self.backend, cx)?;
        let down = self.downstream.poll_drain(&mut self.client, cx)?;
        if up.is_pending() || down.is_pending() {
            return Poll::Pending;
        }
        // A peer that already went away makes shutdown fail; nothing is left to tell it.
        let shutdown = match eof {
            Eof::Client => Pin::new(&mut self.backend).poll_shutdown(cx),
            Eof::Backend => Pin::new(&mut self.client).poll_shutdown(cx),
        };
        shutdown.map(|_| Ok(()))
    }
}

impl<C, B> Relay<'_, C, B>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    /// Reads and discards the input of the side opposite `eof` until it closes, errs, or the linger
    /// limits ([`LINGER`], [`LINGER_BYTES`]) are reached.
    fn poll_linger(&mut self, eof: Eof, cx: &mut Context<'_>) -> Poll<()> {
        let mut discarded = self.lingering.unwrap_or(0);
        let finished = SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            match eof {
                Eof::Client => discard_until_closed(&mut self.backend, &mut scratch, &mut discarded, cx),
                Eof::Backend => discard_until_closed(&mut self.client, &mut scratch, &mut discarded, cx),
            }
        });
        self.lingering = Some(discarded);
        if finished {
            return Poll::Ready(());
        }
        self.clock.poll_deadline(cx)
    }
}

impl<C, B> Future for Relay<'_, C, B>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    type Output = io::Result<End>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<End>> {
        let this = self.get_mut();
        let before = this.total();
        if this.closing.is_none()
            && let Poll::Ready(eof) = this.poll_halves(cx)?
        {
            this.closing = Some(eof);
        }
        if let Some(eof) = this.closing
            && this.lingering.is_none()
            && this.poll_close(eof, cx)?.is_ready()
        {
            // Closing now with the other side's input unread (or arriving later) would answer with a
            // reset, dropping what the kernel still has to send it: wait for that side to close.
            this.lingering = Some(0);
            this.clock.close_in(LINGER);
        }
        if let Some(eof) = this.closing
            && this.lingering.is_some()
        {
            let end = match eof {
                Eof::Client => End::ClientClosed,
                Eof::Backend => End::BackendClosed,
            };
            return this.poll_linger(eof, cx).map(|()| Ok(end));
        }
        if this.total() != before {
            this.clock.note_moved();
        }
        let (upstream, downstream) = (&mut this.upstream, &mut this.downstream);
        if this
            .clock
            .poll_idle(cx, || {
                upstream.meter.flush();
                downstream.meter.flush();
            })
            .is_ready()
        {
            return Poll::Ready(Ok(End::IdleTimeout));
        }
        Poll::Pending
    }
}

impl<C, B> Drop for Relay<'_, C, B> {
    fn drop(&mut self) {
        self.upstream.meter.flush();
        self.downstream.meter.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::IntCounter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn meter() -> Meter {
        Meter::new(IntCounter::new("t", "t").expect("counter"))
    }

    #[tokio::test]
    async fn relays_both_ways_and_the_first_eof_ends_it() {
        let (mut client, client_near) = tokio::io::duplex(64);
        let (backend_near, mut backend) = tokio::io::duplex(64);
        let relay = tokio::spawn(async move {
            let (mut up, mut down) = (meter(), meter());
            let end = relay(
                client_near,
                backend_near,
                Bytes::from_static(b"early"),
                Duration::from_secs(60),
                &mut up,
                &mut down,
            )
            .await;
            (end.expect("relay"), up.total(), down.total())
        });
        let mut early = [0u8; 5];
        client.read_exact(&mut early).await.expect("leftovers");
        assert_eq!(&early, b"early");
        backend.write_all(b"reply").await.expect("write");
        client.read_exact(&mut early).await.expect("reply");
        assert_eq!(&early, b"reply");
        client.write_all(b"hello").await.expect("write");
        client.shutdown().await.expect("half-close");
        let mut got = Vec::new();
        backend.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"hello", "the backend sees the client's EOF after its data");
        // The relay waits for the backend to close too (a lingering close), then ends.
        drop(backend);
        let (end, up, down) = tokio::time::timeout(Duration::from_secs(5), relay).await.expect("ends").expect("task");
        assert_eq!(end, End::ClientClosed);
        assert_eq!((up, down), (5, 10));
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.expect("read");
        assert!(rest.is_empty(), "{rest:?}");
    }

    /// A TLS client as rustls reports one that closed TCP without close_notify: some bytes, then
    /// `UnexpectedEof`. Writes go nowhere.
    struct Truncated(Option<&'static [u8]>);

    impl AsyncRead for Truncated {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            match self.0.take() {
                Some(bytes) => {
                    buf.put_slice(bytes);
                    Poll::Ready(Ok(()))
                }
                None => Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
            }
        }
    }

    impl AsyncWrite for Truncated {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_tls_client_gone_without_close_notify_is_an_eof_not_an_error() {
        let (backend_near, mut backend) = tokio::io::duplex(64);
        let relay = tokio::spawn(async move {
            let (mut up, mut down) = (meter(), meter());
            let client = Truncated(Some(b"last words"));
            relay(client, backend_near, Bytes::new(), Duration::from_secs(60), &mut up, &mut down).await
        });
        let mut got = Vec::new();
        backend.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"last words", "the bytes before the truncation are delivered, then EOF");
        drop(backend);
        let end = tokio::time::timeout(Duration::from_secs(5), relay).await.expect("ends").expect("task");
        assert_eq!(end.expect("no I/O error"), End::ClientClosed);
    }

    #[tokio::test]
    async fn a_silent_relay_times_out_and_a_busy_one_does_not() {
        let (mut client, client_near) = tokio::io::duplex(64);
        let (backend_near, mut backend) = tokio::io::duplex(64);
        let idle = Duration::from_millis(200);
        let relay = tokio::spawn(async move {
            let (mut up, mut down) = (meter(), meter());
            relay(client_near, backend_near, Bytes::new(), idle, &mut up, &mut down).await
        });
        // Traffic for longer than the idle timeout keeps it open.
        let mut last_write = std::time::Instant::now();
        for _ in 0..4 {
            last_write = std::time::Instant::now();
            client.write_all(b"x").await.expect("write");
            let mut one = [0u8; 1];
            backend.read_exact(&mut one).await.expect("relayed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!relay.is_finished(), "traffic keeps the relay open past the idle timeout");
        let end = tokio::time::timeout(Duration::from_secs(5), relay).await.expect("ends").expect("task");
        assert_eq!(end.expect("no I/O error"), End::IdleTimeout);
        assert!(last_write.elapsed() >= idle, "closed only after a full idle period without bytes");
    }

    #[tokio::test]
    async fn a_slow_reader_gets_every_byte_sent_before_the_other_sides_eof() {
        // 64-byte pipes: nearly every write toward the client finds it full, so the relay keeps the rest
        // aside and stops reading until the client catches up.
        let (mut client, client_near) = tokio::io::duplex(64);
        let (backend_near, mut backend) = tokio::io::duplex(64);
        let counter = IntCounter::new("down", "down").expect("counter");
        let down_counter = counter.clone();
        let relay = tokio::spawn(async move {
            let (mut up, mut down) = (meter(), Meter::new(down_counter));
            relay(client_near, backend_near, Bytes::new(), Duration::from_secs(60), &mut up, &mut down).await
        });
        let last: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
        let sent = last.clone();
        let writer = tokio::spawn(async move {
            backend.write_all(&sent).await.expect("write");
            // The backend closes right after its last message, as a WebSocket server does.
            drop(backend);
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got)).await.expect("EOF").expect("read");
        assert!(got == last, "{} of {} bytes, in order", got.len(), last.len());
        writer.await.expect("writer");
        drop(client);
        let end = tokio::time::timeout(Duration::from_secs(5), relay).await.expect("ends").expect("task");
        assert_eq!(end.expect("no I/O error"), End::BackendClosed);
        assert_eq!(counter.get(), last.len() as u64, "every relayed byte reaches the metric");
    }
}
