//! The byte relay between an upgraded client socket and an upgraded backend socket.
//!
//! ```text
//!   client ──read──► scratch (per thread) ──try_write──► backend      (upstream half)
//!   client ◄──try_write── scratch ◄──read── backend                   (downstream half)
//!            └─ only when the destination is full: the remainder is copied into `pending`,
//!               and that half stops reading until it drains (backpressure)
//!   EOF on one side ─► no more relaying; what either half still holds is written out, then:
//!      nothing sent to the other side lately ─► the tunnel ends; dropping the sockets closes both
//!      bytes sent to it lately ─► FIN to both, read and discard the other side's input until it
//!                                 closes (at most 5 s / 1 MiB), then the tunnel ends (lingering close)
//!   no byte either way for `idle_timeout` ─► both sockets closed
//! ```
//!
//! Why readiness and a per-thread scratch buffer instead of `copy_bidirectional`: an idle tunnel then
//! owns no buffer at all (only two sockets, one timer and a few counters), which is what lets a gateway
//! hold very many quiet WebSockets. Bytes are copied once, from the kernel into the scratch buffer and
//! straight out again. The relay works on the raw `TcpStream`s, recovered from hyper's `Upgraded` by
//! downcasting, together with any bytes hyper had already read past the handshake.
//!
//! Why the first EOF closes both sides: a WebSocket ends with a Close frame each way, after which the
//! server closes the TCP connection (RFC 6455 §7.1.1), so once either side has sent its FIN nothing the
//! other side could still send has a reader. Closing both at once (nginx does the same) saves a
//! `shutdown` and a second `recv` per WebSocket, about a tenth of the syscalls of a short-lived one. A
//! peer that half-closes and then keeps reading (not something a WebSocket endpoint does) gets the EOF
//! of the whole connection instead. One care is taken: a socket closed while the peer's input is unread,
//! or that receives input after it was closed, answers with a reset, and a reset drops what the kernel
//! still had to send that peer. So when bytes went to the side still open lately (a Close frame, a last
//! message), the tunnel sends its FIN after them and waits for that side to close (a lingering close, as
//! for HTTP in RFC 9112 §9.6); when nothing did, it closes at once.
//!
//! Byte counts are kept locally and flushed to the Prometheus counters every [`FLUSH_BYTES`], at most
//! [`FLUSH_INTERVAL`] after the first unflushed byte, and when the tunnel ends. Reads that empty the
//! socket clear its cached readiness (see [`read_draining`]), so a relayed message costs one `recv`
//! and one `send`, as in nginx, and no clock read.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read as _};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use prometheus::IntCounter;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Size of the per-thread scratch buffer one read fills.
const SCRATCH_LEN: usize = 64 * 1024;
/// Unflushed bytes in one direction that trigger a flush to the metrics.
pub const FLUSH_BYTES: u64 = 1024 * 1024;
/// Longest delay before relayed bytes show up in the metrics.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

thread_local! {
    // why per thread: a tunnel borrows it only inside one synchronous poll (no await while borrowed),
    // so one buffer per worker thread serves every tunnel on that thread.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH_LEN].into_boxed_slice());
}

/// Why a tunnel ended without an I/O error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client's side reached EOF first (for a WebSocket, normally after its Close frames).
    ClientClosed,
    /// The backend's side reached EOF first.
    BackendClosed,
    /// Neither side sent a byte for the idle timeout.
    IdleTimeout,
    /// The route's max lifetime passed (see `session`).
    MaxLifetime,
    /// Frame layer: a peer did not answer wsgate's ping within the pong timeout.
    PongTimeout(Side),
    /// Frame layer: a peer sent a message over the route's maxMessageBytes (it got 1009).
    MessageTooBig(Side),
    /// Frame layer: a peer sent an invalid frame (it got 1002, or 1007 for a Close reason not UTF-8).
    ProtocolError(Side),
    /// Frame layer: the endpoint was terminating or removed (drain Close): 1001.
    EndpointDrain,
    /// Frame layer: wsgate shut down: 1001.
    Shutdown,
    /// Frame layer: closed to rebalance after a scale-out: 1012.
    Rebalance,
}

/// One side of a relayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Backend,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Backend => "backend",
        }
    }
}

impl End {
    /// The `reason` label of `wsgate_websocket_closed_total` and the access log's `end`.
    pub fn reason(self) -> &'static str {
        match self {
            End::ClientClosed => "client_closed",
            End::BackendClosed => "backend_closed",
            End::IdleTimeout => "idle_timeout",
            End::MaxLifetime => "max_lifetime",
            End::PongTimeout(_) => "pong_timeout",
            End::MessageTooBig(_) => "message_too_big",
            End::ProtocolError(_) => "protocol_error",
            End::EndpointDrain => "endpoint_drain",
            End::Shutdown => "shutdown",
            End::Rebalance => "rebalance",
        }
    }

    /// Whose doing it was: `client`, `backend` or `wsgate` (the `side` label).
    pub fn side(self) -> &'static str {
        match self {
            End::ClientClosed => "client",
            End::BackendClosed => "backend",
            End::PongTimeout(side) | End::MessageTooBig(side) | End::ProtocolError(side) => side.as_str(),
            _ => "wsgate",
        }
    }
}

/// The counters one direction flushes into.
#[derive(Debug)]
pub struct Meter {
    counter: IntCounter,
    unflushed: u64,
    total: u64,
}

impl Meter {
    pub fn new(counter: IntCounter) -> Meter {
        Meter { counter, unflushed: 0, total: 0 }
    }

    /// Bytes counted so far.
    pub(super) fn total(&self) -> u64 {
        self.total
    }

    pub(super) fn add(&mut self, n: usize) {
        self.unflushed += n as u64;
        self.total += n as u64;
        if self.unflushed >= FLUSH_BYTES {
            self.flush();
        }
    }

    pub(super) fn flush(&mut self) {
        if self.unflushed > 0 {
            self.counter.inc_by(self.unflushed);
            self.unflushed = 0;
        }
    }
}

/// One direction of the relay.
#[derive(Debug)]
struct Half {
    /// Bytes read but not yet written: hyper's leftovers at the start, or what the destination could
    /// not take. Empty (and unallocated) in the steady state.
    pending: Bytes,
    /// The source reached EOF: the tunnel ends once `pending` is written.
    eof: bool,
    meter: Meter,
}

impl Half {
    fn new(pending: Bytes, meter: Meter) -> Half {
        let mut half = Half { pending, eof: false, meter };
        let already = half.pending.len();
        half.meter.add(already);
        half
    }

    /// Writes out what `pending` holds. `Ready(Ok)` once it is empty.
    fn poll_flush(&mut self, dst: &TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            ready!(dst.poll_write_ready(cx))?;
            match dst.try_write(&self.pending) {
                Ok(n) => self.pending.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Moves bytes from `src` to `dst` until one of them would block. `Ready(Ok)` means `src` reached
    /// EOF and everything read before it was written; an error means the tunnel must close.
    fn poll_relay(
        &mut self,
        src: &TcpStream,
        dst: &TcpStream,
        scratch: &mut [u8],
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        // why no explicit budget: TcpStream readiness polls take part in tokio's cooperative budget, so a
        // busy tunnel yields to other tasks on its own.
        loop {
            ready!(self.poll_flush(dst, cx))?;
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            ready!(src.poll_read_ready(cx))?;
            let n = match read_draining(src, scratch) {
                Ok(0) => {
                    self.eof = true;
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            };
            self.meter.add(n);
            let mut written = 0;
            while written < n {
                match dst.try_write(&scratch[written..n]) {
                    Ok(k) => written += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // The only copy to the heap, and only while the destination is slower.
                        self.pending = Bytes::copy_from_slice(&scratch[written..n]);
                        break;
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
    }
}

/// Reads what `src` has into `buf`. A read that returns less than `buf` can hold has emptied the
/// socket's receive queue, so the cached readiness is cleared right away: the next poll then waits for
/// the next epoll edge instead of making a `recv` that can only fail with `EAGAIN`. That is one syscall
/// less per relayed message (nginx does the same). A FIN that arrived with the data is not lost: tokio
/// never clears the read-closed readiness (EPOLLRDHUP), so the next poll still sees it.
pub(super) fn read_draining(src: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let socket = SockRef::from(src);
    let mut got = None;
    let result = src.try_io(Interest::READABLE, || {
        let n = (&*socket).read(buf)?;
        got = Some(n);
        if n > 0 && n < buf.len() { Err(io::ErrorKind::WouldBlock.into()) } else { Ok(n) }
    });
    match got {
        Some(n) => Ok(n),
        None => result,
    }
}

/// A relay's idle timeout, kept without reading the clock per message (the plain tunnel and the TLS
/// relay share it).
///
/// A poll that moved bytes only calls [`note_moved`](IdleClock::note_moved), which sets a flag; the
/// first such call after a tick pulls the timer in to one check period away. Each tick runs the
/// caller's `on_tick` (flush counters) and, if bytes moved since the previous tick, restarts the
/// silence at "now" (never earlier than the last byte); a tick that finds `idle_timeout` of silence
/// ends the relay. So a silent relay closes after `idle_timeout` plus at most one check period (an
/// eighth of it), never before, and relayed bytes reach the metrics within [`FLUSH_INTERVAL`].
#[derive(Debug)]
pub(super) struct IdleClock {
    idle_timeout: Duration,
    /// Start of the current silence: no later than the last byte moved before the latest tick.
    quiet_since: Instant,
    /// Bytes moved since the latest tick.
    moved: bool,
    timer: Pin<Box<Sleep>>,
    /// The timer has been polled since it last fired, so it holds this task's waker and will wake it:
    /// until it fires (`is_elapsed`) there is no need to poll it again.
    armed: bool,
}

impl IdleClock {
    pub(super) fn new(idle_timeout: Duration) -> IdleClock {
        let now = Instant::now();
        IdleClock {
            idle_timeout,
            quiet_since: now,
            moved: false,
            timer: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
            armed: false,
        }
    }

    /// How often the timer ticks while bytes move.
    fn check_period(&self) -> Duration {
        (self.idle_timeout / 8).clamp(Duration::from_millis(1), FLUSH_INTERVAL)
    }

    /// Records that bytes moved; the first time after a tick, pulls the timer in to one check period.
    #[inline]
    pub(super) fn note_moved(&mut self) {
        if !self.moved {
            self.moved = true;
            let due = Instant::now() + self.check_period();
            if due < self.timer.deadline() {
                self.timer.as_mut().reset(due);
            }
        }
    }

    /// Runs the ticks that are due, calling `on_tick` for each; `Ready` once `idle_timeout` passed
    /// without a byte moved.
    #[inline(always)]
    pub(super) fn poll_idle(&mut self, cx: &mut Context<'_>, on_tick: impl FnMut()) -> Poll<()> {
        // why gated: polling an armed timer on every wake-up (every relayed message) only re-registers
        // the same waker; resets keep the registered waker.
        if self.armed && !self.timer.is_elapsed() {
            return Poll::Pending;
        }
        self.poll_ticks(cx, on_tick)
    }

    fn poll_ticks(&mut self, cx: &mut Context<'_>, mut on_tick: impl FnMut()) -> Poll<()> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            on_tick();
            if std::mem::take(&mut self.moved) {
                self.quiet_since = now;
            } else if self.quiet_since + self.idle_timeout <= now {
                return Poll::Ready(());
            }
            self.timer.as_mut().reset(self.quiet_since + self.idle_timeout);
        }
        self.armed = true;
        Poll::Pending
    }

    /// Turns the clock into a plain deadline `after` from now (a lingering close's limit).
    pub(super) fn close_in(&mut self, after: Duration) {
        self.timer.as_mut().reset(Instant::now() + after);
        self.armed = false;
    }

    /// `Ready` once the deadline of [`close_in`](IdleClock::close_in) passed.
    pub(super) fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.armed || self.timer.is_elapsed() {
            if self.timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            self.armed = true;
        }
        Poll::Pending
    }
}

/// A running relay. Await it (by `&mut` to read the totals afterwards); dropping it closes both sockets
/// and flushes the byte counters. Its idle timeout is an [`IdleClock`], whose ticks also flush the
/// byte counters.
#[derive(Debug)]
pub struct Tunnel {
    client: TcpStream,
    backend: TcpStream,
    upstream: Half,
    downstream: Half,
    clock: IdleClock,
    /// Each half's byte total at the latest tick: a half whose total moved since wrote to its
    /// destination lately, so that peer may not have received everything yet when the tunnel closes.
    totals_at_tick: (u64, u64),
    /// One side reached EOF: how far the close has come.
    closing: Option<Closing>,
}

/// The close after the first EOF.
#[derive(Debug, Clone, Copy)]
enum Closing {
    /// No more reads; what either half holds is being written out.
    Flushing(End),
    /// The peer still open was sent bytes lately: it got our FIN after them, and its input is read and
    /// discarded until it closes too (at most [`LINGER`] and [`LINGER_BYTES`]).
    Lingering { end: End, discarded: usize },
}

/// Longest a closing tunnel (or TLS relay) waits for the peer still open to close.
pub(super) const LINGER: Duration = Duration::from_secs(5);
/// Most bytes a closing tunnel (or TLS relay) reads and discards from the peer still open.
pub(super) const LINGER_BYTES: usize = 1024 * 1024;

/// The two sockets of a tunnel and what hyper had read past the handshake on each.
#[derive(Debug)]
pub struct Ends {
    pub client: TcpStream,
    pub client_buffered: Bytes,
    pub backend: TcpStream,
    pub backend_buffered: Bytes,
}

impl Tunnel {
    /// `upstream` counts client → backend bytes, `downstream` the other way.
    pub fn new(ends: Ends, idle_timeout: Duration, upstream: Meter, downstream: Meter) -> Tunnel {
        let mut tunnel = Tunnel {
            client: ends.client,
            backend: ends.backend,
            upstream: Half::new(ends.client_buffered, upstream),
            downstream: Half::new(ends.backend_buffered, downstream),
            clock: IdleClock::new(idle_timeout),
            closing: None,
            totals_at_tick: (0, 0),
        };
        if tunnel.unflushed() {
            tunnel.clock.note_moved();
        }
        tunnel
    }

    /// Bytes relayed so far: (client → backend, backend → client).
    pub fn totals(&self) -> (u64, u64) {
        (self.upstream.meter.total, self.downstream.meter.total)
    }

    fn unflushed(&self) -> bool {
        self.upstream.meter.unflushed > 0 || self.downstream.meter.unflushed > 0
    }

    fn flush(&mut self) {
        self.upstream.meter.flush();
        self.downstream.meter.flush();
    }

    /// The side that did not reach EOF.
    fn open_side(&self, end: End) -> &TcpStream {
        match end {
            End::ClientClosed => &self.backend,
            _ => &self.client,
        }
    }

    /// Whether bytes went toward the side still open since the latest tick (at most a check period
    /// ago): then some may still sit in our send queue, and closing with input unread would reset the
    /// connection and drop them.
    fn wrote_lately_to_the_open_side(&self, end: End) -> bool {
        match end {
            End::ClientClosed => self.upstream.meter.total != self.totals_at_tick.0,
            _ => self.downstream.meter.total != self.totals_at_tick.1,
        }
    }

    /// Reads and drops what the side still open has already sent, if its readiness says there is any
    /// (no syscall otherwise): a socket closed with unread input sends a reset instead of a FIN.
    fn discard_readable(&self, end: End) {
        let open = self.open_side(end);
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            for _ in 0..16 {
                match read_draining(open, &mut scratch) {
                    Ok(n) if n > 0 => continue,
                    _ => break,
                }
            }
        });
    }

    /// After our FIN to the side still open: reads and discards its input until it closes, errs, or
    /// the linger limits are reached; then the tunnel ends with `end`.
    fn poll_linger(&mut self, end: End, cx: &mut Context<'_>) -> Poll<io::Result<End>> {
        let mut discarded = match self.closing {
            Some(Closing::Lingering { discarded, .. }) => discarded,
            _ => 0,
        };
        let open = match end {
            End::ClientClosed => &self.backend,
            _ => &self.client,
        };
        let finished = SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            loop {
                match open.poll_read_ready(cx) {
                    Poll::Pending => return false,
                    Poll::Ready(Err(_)) => return true,
                    Poll::Ready(Ok(())) => {}
                }
                match read_draining(open, &mut scratch) {
                    Ok(0) => return true,
                    Ok(n) => {
                        discarded += n;
                        if discarded >= LINGER_BYTES {
                            return true;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return true,
                }
            }
        });
        self.closing = Some(Closing::Lingering { end, discarded });
        if finished || self.clock.poll_deadline(cx).is_ready() {
            return Poll::Ready(Ok(end));
        }
        Poll::Pending
    }
}

impl Future for Tunnel {
    type Output = io::Result<End>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<End>> {
        let this = self.get_mut();
        let before = this.upstream.meter.total + this.downstream.meter.total;
        if this.closing.is_none() {
            let ended = SCRATCH.with(|cell| {
                let mut scratch = cell.borrow_mut();
                match this.upstream.poll_relay(&this.client, &this.backend, &mut scratch, cx)? {
                    Poll::Ready(()) => return Ok(Some(End::ClientClosed)),
                    Poll::Pending => {}
                }
                match this.downstream.poll_relay(&this.backend, &this.client, &mut scratch, cx)? {
                    Poll::Ready(()) => Ok(Some(End::BackendClosed)),
                    Poll::Pending => Ok::<_, io::Error>(None),
                }
            });
            match ended {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(end) => this.closing = end.map(Closing::Flushing),
            }
        }
        if let Some(Closing::Flushing(end)) = this.closing {
            // The first EOF ends the tunnel; bytes the other direction already read are written first.
            let up = this.upstream.poll_flush(&this.backend, cx)?;
            let down = this.downstream.poll_flush(&this.client, cx)?;
            if up.is_ready() && down.is_ready() {
                if !this.wrote_lately_to_the_open_side(end) {
                    this.discard_readable(end);
                    return Poll::Ready(Ok(end));
                }
                // Our FIN goes out to both after the bytes still queued for them (the side that closed
                // sees its EOF now, not at the end of the linger).
                let _ = SockRef::from(&this.client).shutdown(std::net::Shutdown::Write);
                let _ = SockRef::from(&this.backend).shutdown(std::net::Shutdown::Write);
                this.closing = Some(Closing::Lingering { end, discarded: 0 });
                this.clock.close_in(LINGER);
            }
        }
        if let Some(Closing::Lingering { end, .. }) = this.closing {
            return this.poll_linger(end, cx);
        }
        if this.upstream.meter.total + this.downstream.meter.total != before {
            this.clock.note_moved();
        }
        let (upstream, downstream, totals_at_tick) =
            (&mut this.upstream, &mut this.downstream, &mut this.totals_at_tick);
        let idle = this.clock.poll_idle(cx, || {
            upstream.meter.flush();
            downstream.meter.flush();
            *totals_at_tick = (upstream.meter.total, downstream.meter.total);
        });
        if idle.is_ready() {
            return Poll::Ready(Ok(End::IdleTimeout));
        }
        Poll::Pending
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.unwrap(), b.unwrap().0)
    }

    fn meter() -> Meter {
        Meter::new(IntCounter::new("t", "t").unwrap())
    }

    /// client_far ⇄ [client_near ⇄ tunnel ⇄ backend_near] ⇄ backend_far
    async fn tunnel(idle: Duration, client_buffered: &'static [u8]) -> (TcpStream, TcpStream, Tunnel) {
        let (client_far, client_near) = pair().await;
        let (backend_near, backend_far) = pair().await;
        let ends = Ends {
            client: client_near,
            client_buffered: Bytes::from_static(client_buffered),
            backend: backend_near,
            backend_buffered: Bytes::new(),
        };
        (client_far, backend_far, Tunnel::new(ends, idle, meter(), meter()))
    }

    #[tokio::test]
    async fn relays_leftovers_then_the_first_eof_closes_both_sides() {
        let (mut client, mut backend, mut tunnel) = tunnel(Duration::from_secs(60), b"early").await;
        let relay = tokio::spawn(async move {
            let end = (&mut tunnel).await;
            (end.unwrap(), tunnel.totals())
        });
        let mut buf = [0u8; 5];
        backend.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"early");
        backend.write_all(b"reply").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"reply");
        client.write_all(b"hello").await.unwrap();
        client.shutdown().await.unwrap();
        // The backend gets the data sent before the EOF, then the EOF; the client's side is closed too.
        let mut got = Vec::new();
        backend.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest)).await.unwrap().unwrap();
        assert!(rest.is_empty(), "{rest:?}");
        // The backend was sent bytes lately, so the tunnel waits for it to close (a lingering close).
        drop(backend);
        let (end, totals) = tokio::time::timeout(Duration::from_secs(5), relay).await.unwrap().unwrap();
        assert_eq!(end, End::ClientClosed);
        assert_eq!(totals, (10, 5));
    }

    #[tokio::test]
    async fn bytes_read_before_the_other_sides_eof_are_still_delivered() {
        let (mut client, mut backend, tunnel) = tunnel(Duration::from_secs(60), b"").await;
        let relay = tokio::spawn(tunnel);
        // The backend sends a last message and closes at once, as a WebSocket server does after its
        // Close frame: the client must get every byte before its EOF.
        let last = vec![7u8; 256 * 1024];
        backend.write_all(&last).await.unwrap();
        drop(backend);
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got)).await.unwrap().unwrap();
        assert_eq!(got.len(), last.len());
        drop(client);
        let end = tokio::time::timeout(Duration::from_secs(5), relay).await.unwrap().unwrap();
        assert_eq!(end.unwrap(), End::BackendClosed);
    }

    #[tokio::test]
    async fn a_client_still_sending_does_not_reset_the_last_bytes_it_is_owed() {
        let (mut client, mut backend, tunnel) = tunnel(Duration::from_secs(60), b"").await;
        let relay = tokio::spawn(tunnel);
        // A polite backend: its last message, then its FIN, then it reads until the other side closes.
        let last: Vec<u8> = (0..16 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
        let sent = last.clone();
        let server = tokio::spawn(async move {
            backend.write_all(&sent).await.unwrap();
            backend.shutdown().await.unwrap();
            let mut rest = Vec::new();
            let _ = backend.read_to_end(&mut rest).await;
        });
        // The client reads most of the message; the tunnel has long seen the backend's EOF and holds the
        // tail in its send queue. Then the client, not yet aware, sends something: a tunnel that closed
        // with that unread (or closed before it came) would answer with a reset and drop the tail.
        let mut got = vec![0u8; last.len() - 1024 * 1024];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut got)).await.unwrap().unwrap();
        client.write_all(b"still talking").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut tail = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut tail)).await.unwrap().unwrap();
        got.extend_from_slice(&tail);
        assert!(got == last, "{} of {} bytes, in order", got.len(), last.len());
        drop(client);
        let end = tokio::time::timeout(Duration::from_secs(5), relay).await.unwrap().unwrap();
        assert_eq!(end.unwrap(), End::BackendClosed);
        tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn idle_tunnel_times_out() {
        let (_client, _backend, tunnel) = tunnel(Duration::from_millis(100), b"").await;
        let started = std::time::Instant::now();
        let end = tokio::time::timeout(Duration::from_secs(5), tunnel).await.unwrap().unwrap();
        assert_eq!(end, End::IdleTimeout);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
