//! The frame-aware relay: a WebSocket relayed frame by frame (RFC 6455 §5), for routes whose policy
//! needs it (keepalive, a message-size limit, drain, rebalance; `Policy::frames`). Other routes keep the
//! byte tunnel (`tunnel`, `relay`); the choice is made from the route table when the session starts.
//!
//! ```text
//!   src ──read──► scratch (per thread, 256 B headroom + 64 KiB) ──FrameReader──► events
//!     Header of a data frame ─► its header bytes, then its payload spans, forwarded as they came
//!                               (still masked, never copied unless a frame before them was dropped)
//!     control frame          ─► held (≤ 125 B) until complete, then forwarded re-encoded with its own
//!                               key (the same bytes), or swallowed: the Pong answering wsgate's Ping
//!     invalid frame          ─► Close 1002 (1007, 1009) to the sender, 1001 to the other side
//!   output ──write──► dst; what dst cannot take yet is kept (`pending`) and src is not read until it
//!                     drains (backpressure: at most one read, 64 KiB, plus injected frames per direction)
//!   injected frames (Ping, Close) ─► placed where the output toward that peer is between frames
//! ```
//!
//! wsgate closes a session (its idle timeout, max lifetime, a peer that stopped answering pings, a
//! drain, shutdown, rebalance, a broken frame) with a Close frame to each side that has not had one, at
//! a frame boundary: the data frame in flight is finished first, later frames are dropped. It then waits
//! for each side's Close (or its EOF), at most [`CLOSE_WAIT`], and shuts both connections down. When an
//! endpoint closes on its own, its Close is forwarded and the relay ends at the first EOF as the byte
//! tunnel does; a peer that vanishes without a Close leaves the other side a Close 1001.
//!
//! Memory: a relay holds two readers (208 B each), two empty buffers and its timers; nothing grows while
//! it is idle. Bytes read go through the per-thread scratch buffer and only what a destination cannot
//! take is copied to the heap.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::frame::{
    self, CLOSE_GOING_AWAY, Direction, Event, Extensions, FrameReader, MAX_CONTROL_PAYLOAD, Opcode, ProtocolError,
};
use super::relay::{discard_until_closed, poll_write_pending};
use super::tunnel::{End, IdleClock, LINGER, Meter, Side};
use crate::routes::Keepalive;

/// Room before each read in the scratch buffer: a frame that began in the previous read (a split
/// header, a control frame) is written out whole, so the output can start before the read did.
const HEADROOM: usize = 256;
/// Bytes one read takes.
const READ_LEN: usize = 64 * 1024;
/// Longest wsgate waits for the Close of a side it sent a Close to.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Close code: the server is restarting (RFC 6455 §7.4.1, IANA registry): reconnect.
pub const CLOSE_SERVICE_RESTART: u16 = 1012;
/// Payload length of wsgate's own pings: `wsgate` and a 2-byte counter.
const PING_LEN: usize = 8;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; HEADROOM + READ_LEN].into_boxed_slice());
}

/// Why something outside the relay asks it to close (`Signal::fire`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseRequest {
    /// The endpoint is terminating or gone (after the route's grace period): 1001.
    EndpointDrain = 1,
    /// wsgate is shutting down: 1001.
    Shutdown = 2,
    /// The endpoint holds more than its share after a scale-out: 1012.
    Rebalance = 3,
}

/// A close request for one session, set from any thread, read by the relay on its next wake-up.
#[derive(Debug, Default)]
pub struct Signal {
    request: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    /// Asks the session to close; only the first request counts. Returns whether this one did.
    pub fn fire(&self, why: CloseRequest) -> bool {
        let first = self.request.compare_exchange(0, why as u8, Ordering::AcqRel, Ordering::Acquire).is_ok();
        if first && let Some(waker) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            waker.wake();
        }
        first
    }

    /// Whether a close was requested.
    pub fn fired(&self) -> bool {
        self.request.load(Ordering::Acquire) != 0
    }

    /// The request, if any. The first call registers the task's waker (a task's waker stays valid for
    /// its life), so a later `fire` wakes it; later calls are one atomic load.
    #[inline(always)]
    fn poll(&self, cx: &mut Context<'_>, registered: &mut bool) -> Option<CloseRequest> {
        if !*registered {
            *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            *registered = true;
        }
        match self.request.load(Ordering::Acquire) {
            1 => Some(CloseRequest::EndpointDrain),
            2 => Some(CloseRequest::Shutdown),
            3 => Some(CloseRequest::Rebalance),
            _ => None,
        }
    }
}

/// What a frame relay does besides relaying.
#[derive(Debug, Clone)]
pub struct FrameOptions {
    pub keepalive: Option<Keepalive>,
    pub max_message: Option<u64>,
    pub extensions: Extensions,
    pub idle_timeout: Duration,
    pub max_lifetime: Option<Duration>,
    /// Counts wsgate's pings (toward the client, toward the backend).
    pub pings_sent: Option<[IntCounter; 2]>,
}

/// How a frame relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    pub end: End,
    /// The code of the client's closing handshake: the first Close sent to or received from it.
    pub client_code: Option<u16>,
}

/// The client socket of a plain-TCP WebSocket, read the way the byte tunnel reads it: a read that
/// empties the socket clears its readiness, so a message costs one `recv` (see `tunnel`).
pub struct Draining(pub TcpStream);

impl AsyncRead for Draining {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let stream = &self.get_mut().0;
        loop {
            ready!(stream.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match super::tunnel::read_draining(stream, unfilled) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Draining {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// What the frame being read from a source is, for forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Current {
    /// Between frames.
    None,
    /// A data frame whose header was forwarded: its payload is too.
    Forward,
    /// A data frame read while closing: dropped.
    Drop,
    /// A control frame, held by the reader until complete. Its masking key, to re-encode it.
    Control(Option<[u8; 4]>),
}

/// One direction: a source read through a [`FrameReader`], its output toward the other peer.
struct Dir {
    reader: FrameReader,
    current: Current,
    /// The output toward the destination is inside a forwarded data frame: nothing may be injected.
    in_data_frame: bool,
    /// Output not yet written (the peer's leftovers are scanned first, see `initial`).
    pending: Bytes,
    unflushed: bool,
    /// Frames to inject toward the destination at the next frame boundary.
    inject: Vec<u8>,
    /// Bytes the handshake reader had read past the head, not yet scanned.
    initial: Bytes,
    /// The source reached EOF.
    eof: bool,
    /// A Close frame went toward the destination (forwarded or injected).
    close_sent: bool,
    /// The source sent its Close (its code, if it had one).
    close_received: Option<Option<u16>>,
    /// The source broke the protocol: its input is discarded.
    failed: bool,
    meter: Meter,
}

/// What one scan of a read found.
#[derive(Default)]
struct Scanned {
    /// Output: `scratch[start..end]`, and where in it the output first stands between frames.
    start: usize,
    end: usize,
    boundary: Option<usize>,
    /// Endpoint bytes were forwarded (what the idle timeout counts).
    forwarded: bool,
    /// The Pong answering wsgate's ping came.
    pong: bool,
    /// A Close was forwarded toward the destination.
    close_forwarded: Option<Option<u16>>,
    error: Option<ProtocolError>,
}

impl Dir {
    fn new(direction: Direction, extensions: Extensions, max: Option<u64>, initial: Bytes, meter: Meter) -> Dir {
        Dir {
            reader: FrameReader::new(direction, extensions).with_max_message(max),
            current: Current::None,
            in_data_frame: false,
            pending: Bytes::new(),
            unflushed: false,
            inject: Vec::new(),
            initial,
            eof: false,
            close_sent: false,
            close_received: None,
            failed: false,
            meter,
        }
    }

    /// Whether this direction still reads its source.
    fn reading(&self) -> bool {
        !self.eof && !self.failed
    }

    /// Moves frames waiting for a boundary behind the pending output, if it ends at one.
    #[inline]
    fn place_injected(&mut self) {
        if !self.inject.is_empty() && !self.in_data_frame {
            let inject = std::mem::take(&mut self.inject);
            self.pending = if self.pending.is_empty() {
                Bytes::from(inject)
            } else {
                Bytes::from([&self.pending[..], &inject[..]].concat())
            };
        }
    }

    /// Writes out `pending` and flushes the destination. `Ready(Ok)` once both are done.
    #[inline(always)]
    fn poll_drain<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        dst: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        // The steady state of a busy relay: everything read was written and flushed.
        if self.pending.is_empty() && self.inject.is_empty() && !self.unflushed {
            return Poll::Ready(Ok(()));
        }
        self.place_injected();
        poll_write_pending(&mut self.pending, &mut self.unflushed, dst, cx)
    }

    /// Scans `scratch[HEADROOM..HEADROOM + n]`, compacting the output in place (see the module docs).
    /// `expect_pong`: the payload of wsgate's unanswered ping toward this source. `closing`: wsgate is
    /// closing the session, so only the rest of a data frame in flight is forwarded.
    fn scan(&mut self, scratch: &mut [u8], n: usize, expect_pong: Option<[u8; PING_LEN]>, closing: bool) -> Scanned {
        let end_in = HEADROOM + n;
        let mut out = Scanned { start: HEADROOM, end: HEADROOM, ..Scanned::default() };
        let mut w: Option<usize> = None;
        // Where the output starts is only known once something is emitted (before HEADROOM for a frame
        // begun in the previous read, after it when leading frames are dropped).
        let starts_between_frames = !self.in_data_frame;
        let mut r = HEADROOM;
        loop {
            let (used, event) = match self.reader.feed(&scratch[r..end_in]) {
                Ok(found) => found,
                Err(error) => {
                    out.error = Some(error);
                    self.failed = true;
                    break;
                }
            };
            let after = r + used;
            let Some(event) = event else { break };
            match event {
                Event::Header(header) if header.opcode.is_control() => self.current = Current::Control(header.mask),
                Event::Header(_) if closing => self.current = Current::Drop,
                Event::Header(_) => {
                    let bytes = self.reader.header_bytes();
                    let len = bytes.len();
                    let at = *w.get_or_insert_with(|| {
                        out.start = after - len;
                        after - len
                    });
                    // `at + len <= after`: a header read whole sits at or after `at`; one split over two
                    // reads is the first thing in this one, and the headroom holds its first part. A
                    // header read whole where the output stands is already in place.
                    if at != after - len || at < HEADROOM {
                        scratch[at..at + len].copy_from_slice(bytes);
                    }
                    w = Some(at + len);
                    self.current = Current::Forward;
                    self.in_data_frame = true;
                    out.forwarded = true;
                }
                Event::Payload { len, end_of_frame } => {
                    if self.current == Current::Forward {
                        let at = *w.get_or_insert_with(|| {
                            out.start = r;
                            r
                        });
                        if at != r {
                            scratch.copy_within(r..r + len, at);
                        }
                        w = Some(at + len);
                        if end_of_frame {
                            self.in_data_frame = false;
                            out.boundary.get_or_insert(at + len);
                        }
                    }
                    if end_of_frame && !matches!(self.current, Current::Control(_)) {
                        self.current = Current::None;
                    }
                }
                Event::Control(control) => {
                    let Current::Control(mask) = self.current else {
                        unreachable!("a Control event ends a control frame")
                    };
                    self.current = Current::None;
                    let payload = control.payload();
                    let ours = control.opcode() == Opcode::Pong && expect_pong.is_some_and(|p| p[..] == *payload);
                    if control.opcode() == Opcode::Close {
                        let code = control.close().map(|(code, _)| code);
                        self.close_received = Some(code);
                        if !closing {
                            out.close_forwarded = Some(code);
                        }
                    }
                    if ours {
                        out.pong = true;
                    } else if !closing {
                        let mut frame = [0u8; 6 + MAX_CONTROL_PAYLOAD];
                        let len = encode_control(&mut frame, control.opcode(), payload, mask);
                        let at = *w.get_or_insert_with(|| {
                            out.start = after - len;
                            after - len
                        });
                        scratch[at..at + len].copy_from_slice(&frame[..len]);
                        w = Some(at + len);
                        out.forwarded = true;
                    }
                }
            }
            r = after;
        }
        if let Some(w) = w {
            out.end = w;
        } else {
            out.start = HEADROOM;
            out.end = HEADROOM;
        }
        if starts_between_frames {
            out.boundary = Some(out.start);
        }
        out
    }

    /// Writes a scan's output (with the injected frames at its first boundary), keeping what `dst`
    /// cannot take in `pending`.
    fn write_out<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        dst: &mut W,
        scratch: &[u8],
        out: &Scanned,
        cx: &mut Context<'_>,
    ) -> io::Result<()> {
        let output = &scratch[out.start..out.end];
        if !self.inject.is_empty()
            && let Some(boundary) = out.boundary
        {
            let split = boundary - out.start;
            let inject = std::mem::take(&mut self.inject);
            self.pending = Bytes::from([&output[..split], &inject[..], &output[split..]].concat());
            return Ok(());
        }
        let mut written = 0;
        while written < output.len() {
            match Pin::new(&mut *dst).poll_write(cx, &output[written..]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(k)) => written += k,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {
                    self.pending = Bytes::copy_from_slice(&output[written..]);
                    break;
                }
            }
        }
        if written > 0 {
            // Flushed at once (a no-op on TCP, rustls's records on TLS); only a flush that cannot finish
            // now is left for `poll_drain`.
            match Pin::new(&mut *dst).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => self.unflushed = true,
            }
        }
        Ok(())
    }
}

/// What [`Dir::relay`] did, for the session to act on.
#[derive(Default)]
struct Relayed {
    /// The source reached EOF.
    eof: bool,
    /// Endpoint bytes were forwarded (what the idle timeout counts).
    moved: bool,
    /// The Pong answering wsgate's ping came.
    pong: bool,
    /// The first Close forwarded toward the destination (its code, if it had one).
    close_forwarded: Option<Option<u16>>,
    /// The source broke the protocol; nothing after the error was forwarded.
    error: Option<ProtocolError>,
}

impl Dir {
    /// Reads `src`, scans and writes to `dst` until one of them would block, or the source ends or
    /// breaks the protocol. `expect`: the payload of wsgate's unanswered ping toward `src`.
    fn relay<S, D>(
        &mut self,
        src: &mut S,
        dst: &mut D,
        scratch: &mut [u8],
        mut expect: Option<[u8; PING_LEN]>,
        closing: bool,
        cx: &mut Context<'_>,
    ) -> io::Result<Relayed>
    where
        S: AsyncRead + Unpin,
        D: AsyncWrite + Unpin,
    {
        let mut relayed = Relayed::default();
        loop {
            if self.poll_drain(dst, cx)?.is_pending() || !self.reading() {
                return Ok(relayed);
            }
            let n = if !self.initial.is_empty() {
                let n = self.initial.len().min(READ_LEN);
                scratch[HEADROOM..HEADROOM + n].copy_from_slice(&self.initial[..n]);
                self.initial.advance(n);
                n
            } else {
                let mut buf = ReadBuf::new(&mut scratch[HEADROOM..]);
                match Pin::new(&mut *src).poll_read(cx, &mut buf) {
                    Poll::Pending => return Ok(relayed),
                    Poll::Ready(Ok(())) => buf.filled().len(),
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
                    Poll::Ready(Err(e)) => return Err(e),
                }
            };
            if n == 0 {
                self.eof = true;
                relayed.eof = true;
                return Ok(relayed);
            }
            self.meter.add(n);
            let scanned = self.scan(scratch, n, expect, closing);
            self.write_out(dst, scratch, &scanned, cx)?;
            relayed.moved |= scanned.forwarded;
            if let Some(code) = scanned.close_forwarded {
                self.close_sent = true;
                relayed.close_forwarded.get_or_insert(code);
            }
            if scanned.pong {
                relayed.pong = true;
                expect = None;
            }
            if let Some(error) = scanned.error {
                relayed.error = Some(error);
                return Ok(relayed);
            }
        }
    }
}

/// Writes a control frame (FIN, no RSV bits) into `buf`; returns its length.
fn encode_control(
    buf: &mut [u8; 6 + MAX_CONTROL_PAYLOAD],
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> usize {
    buf[0] = 0x80 | opcode.as_u8();
    buf[1] = payload.len() as u8 | if mask.is_some() { 0x80 } else { 0 };
    let mut at = 2;
    if let Some(key) = mask {
        buf[2..6].copy_from_slice(&key);
        at = 6;
    }
    buf[at..at + payload.len()].copy_from_slice(payload);
    if let Some(key) = mask {
        frame::apply_mask(&mut buf[at..at + payload.len()], key, 0);
    }
    at + payload.len()
}

/// wsgate's keepalive toward one peer.
#[derive(Debug)]
struct Pinger {
    next_ping: Instant,
    /// The unanswered ping: its payload and when its pong is due.
    awaiting: Option<([u8; PING_LEN], Instant)>,
    sent: u16,
}

/// Where a wsgate-initiated close stands.
#[derive(Debug, Clone, Copy)]
struct Closing {
    end: End,
    deadline: Instant,
}

/// A running frame relay; await it.
pub struct FrameRelay<C, B> {
    client: C,
    backend: B,
    /// client → backend.
    up: Dir,
    /// backend → client.
    down: Dir,
    clock: IdleClock,
    /// Keepalive, lifetime and close deadlines; created when the first of them is set.
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer was polled since it last fired, so it holds this task's waker (resets keep it): until
    /// it fires there is no need to poll it on every wake-up of a busy relay (as in `IdleClock`).
    timer_armed: bool,
    lifetime: Option<Instant>,
    /// Pinging the client, the backend.
    pingers: [Option<Pinger>; 2],
    keepalive: Option<Keepalive>,
    pings_sent: Option<[IntCounter; 2]>,
    signal: Option<Arc<Signal>>,
    registered: bool,
    closing: Option<Closing>,
    /// After the first EOF while open: which side, and the lingering close's progress.
    eof: Option<(Side, Option<usize>)>,
    /// How the session ends, once known.
    end: Option<End>,
    client_code: Option<u16>,
    /// The side whose Close came first, when an endpoint closed.
    first_close: Option<Side>,
    seed: u64,
}

impl<C, B> FrameRelay<C, B>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    /// `client_buffered` and `backend_buffered`: what the handshake readers had read past the heads.
    /// Byte counts go to `upstream` (client → backend) and `downstream`, as in the byte tunnel.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: C,
        client_buffered: Bytes,
        backend: B,
        backend_buffered: Bytes,
        options: FrameOptions,
        signal: Option<Arc<Signal>>,
        upstream: Meter,
        downstream: Meter,
    ) -> FrameRelay<C, B> {
        let now = Instant::now();
        let FrameOptions { keepalive, max_message, extensions, idle_timeout, max_lifetime, pings_sent } = options;
        let pinger = |on: bool| {
            let interval = keepalive.map(|k| k.ping_interval)?;
            on.then(|| Pinger { next_ping: now + interval, awaiting: None, sent: 0 })
        };
        let toward = keepalive.map(|k| k.toward);
        let up = Dir::new(Direction::ClientToServer, extensions, max_message, client_buffered, upstream);
        let down = Dir::new(Direction::ServerToClient, extensions, max_message, backend_buffered, downstream);
        let mut relay = FrameRelay {
            client,
            backend,
            up,
            down,
            clock: IdleClock::new(idle_timeout),
            timer: None,
            timer_armed: false,
            lifetime: max_lifetime.map(|d| now + d),
            pingers: [pinger(toward.is_some_and(|t| t.client())), pinger(toward.is_some_and(|t| t.backend()))],
            keepalive,
            pings_sent,
            signal,
            registered: false,
            closing: None,
            eof: None,
            end: None,
            client_code: None,
            first_close: None,
            seed: seed(),
        };
        relay.arm_timer();
        relay
    }

    /// Bytes read so far: (from the client, from the backend).
    pub fn totals(&self) -> (u64, u64) {
        (self.up.meter.total(), self.down.meter.total())
    }

    /// Starts wsgate's close: a Close to each side that has not had one, at its next frame boundary.
    fn start_close(&mut self, end: End, to_client: (u16, &str), to_backend: (u16, &str)) {
        if self.closing.is_some() || self.eof.is_some() {
            return;
        }
        if !self.down.close_sent {
            frame::encode_close(to_client.0, to_client.1, None, &mut self.down.inject);
            self.down.close_sent = true;
            self.client_code.get_or_insert(to_client.0);
        }
        if !self.up.close_sent {
            let key = frame::mask_key(&mut self.seed);
            frame::encode_close(to_backend.0, to_backend.1, Some(key), &mut self.up.inject);
            self.up.close_sent = true;
        }
        self.closing = Some(Closing { end, deadline: Instant::now() + CLOSE_WAIT });
        self.arm_timer();
    }

    /// The close for a broken frame from `side`: its code to the sender, 1001 to the other side.
    fn refuse(&mut self, side: Side, error: ProtocolError) {
        let end = if matches!(error, ProtocolError::MessageTooBig { .. }) {
            End::MessageTooBig(side)
        } else {
            End::ProtocolError(side)
        };
        let reason = error.to_string();
        let other = (CLOSE_GOING_AWAY, "the other side broke the WebSocket protocol");
        let sender = (error.close_code(), reason.as_str());
        match side {
            Side::Client => self.start_close(end, sender, other),
            Side::Backend => self.start_close(end, other, sender),
        }
    }

    /// The earliest of the keepalive, lifetime and close deadlines.
    fn next_deadline(&self) -> Option<Instant> {
        let pings = self.pingers.iter().flatten().map(|p| p.awaiting.map_or(p.next_ping, |(_, due)| due));
        let closing = self.closing.map(|c| c.deadline);
        let lifetime = if self.closing.is_none() { self.lifetime } else { None };
        pings.chain(closing).chain(lifetime).min()
    }

    fn arm_timer(&mut self) {
        let Some(deadline) = self.next_deadline() else { return };
        match &mut self.timer {
            Some(timer) if timer.deadline() == deadline => {}
            Some(timer) => timer.as_mut().reset(deadline),
            None => {
                self.timer = Some(Box::pin(tokio::time::sleep_until(deadline)));
                self.timer_armed = false;
            }
        }
    }

    /// Runs what is due: pings, pong timeouts, the max lifetime, the close deadline.
    fn on_timer(&mut self, now: Instant) {
        if let Some(closing) = self.closing {
            if now >= closing.deadline {
                self.end = Some(closing.end);
            }
            return;
        }
        if self.lifetime.is_some_and(|at| now >= at) {
            let reason = (CLOSE_GOING_AWAY, "wsgate: the connection reached its max lifetime");
            self.start_close(End::MaxLifetime, reason, reason);
            return;
        }
        let Some(keepalive) = self.keepalive else { return };
        for (i, side) in [Side::Client, Side::Backend].into_iter().enumerate() {
            let Some(pinger) = &mut self.pingers[i] else { continue };
            if let Some((_, due)) = pinger.awaiting {
                if now >= due {
                    let reason = (CLOSE_GOING_AWAY, "wsgate: a peer stopped answering pings");
                    self.start_close(End::PongTimeout(side), reason, reason);
                    // The silent side is not waited for.
                    match side {
                        Side::Client => self.up.eof = true,
                        Side::Backend => self.down.eof = true,
                    }
                    return;
                }
            } else if now >= pinger.next_ping {
                pinger.sent = pinger.sent.wrapping_add(1);
                let mut payload = *b"wsgate\0\0";
                payload[6..].copy_from_slice(&pinger.sent.to_be_bytes());
                pinger.awaiting = Some((payload, now + keepalive.pong_timeout));
                pinger.next_ping = now + keepalive.ping_interval;
                match side {
                    Side::Client => frame::encode_ping(&payload, None, &mut self.down.inject),
                    Side::Backend => {
                        let key = frame::mask_key(&mut self.seed);
                        frame::encode_ping(&payload, Some(key), &mut self.up.inject)
                    }
                }
                if let Some(counters) = &self.pings_sent {
                    counters[i].inc();
                }
            }
        }
    }

    #[inline(always)]
    fn poll_timer(&mut self, cx: &mut Context<'_>) {
        if self.timer_armed && self.timer.as_ref().is_some_and(|timer| !timer.is_elapsed()) {
            return;
        }
        self.poll_timer_due(cx);
    }

    fn poll_timer_due(&mut self, cx: &mut Context<'_>) {
        for _ in 0..4 {
            let Some(timer) = &mut self.timer else { return };
            if self.timer_armed && !timer.is_elapsed() {
                return;
            }
            if timer.as_mut().poll(cx).is_pending() {
                self.timer_armed = true;
                return;
            }
            self.timer_armed = false;
            let now = Instant::now();
            self.on_timer(now);
            if self.end.is_some() {
                return;
            }
            match self.next_deadline() {
                Some(deadline) if deadline > now => self.arm_timer(),
                Some(_) => continue,
                None => {
                    self.timer = None;
                    return;
                }
            }
        }
    }

    /// Moves frames one way until neither end can go on; returns whether the source reached EOF.
    fn poll_dir(&mut self, side: Side, scratch: &mut [u8], cx: &mut Context<'_>) -> io::Result<bool> {
        // The pong wsgate waits for comes from the source of this direction.
        let source = match side {
            Side::Client => 0,
            Side::Backend => 1,
        };
        let closing = self.closing.is_some();
        let expect = self.pingers[source].as_ref().and_then(|p| p.awaiting.map(|(payload, _)| payload));
        // why two calls, not one on trait objects: each is monomorphised for its pair of stream
        // types, so the reads and writes of the hot loop are direct calls.
        let relayed = match side {
            Side::Client => self.up.relay(&mut self.client, &mut self.backend, scratch, expect, closing, cx)?,
            Side::Backend => self.down.relay(&mut self.backend, &mut self.client, scratch, expect, closing, cx)?,
        };
        if relayed.moved {
            self.clock.note_moved();
        }
        if let Some(code) = relayed.close_forwarded {
            self.first_close.get_or_insert(side);
            if let Some(code) = code {
                self.client_code.get_or_insert(code);
            }
        }
        if relayed.pong {
            if let Some(pinger) = &mut self.pingers[source] {
                pinger.awaiting = None;
            }
            self.arm_timer();
        }
        if let Some(error) = relayed.error {
            self.refuse(side, error);
            return Ok(false);
        }
        Ok(relayed.eof)
    }

    /// After the first EOF while open: writes out what both directions hold, tells the other side (a
    /// Close 1001 if it had none and stands between frames), shuts it down, then reads and discards its
    /// input until it closes too (at most [`LINGER`] / [`LINGER_BYTES`]), as the byte relays do.
    fn poll_after_eof(&mut self, side: Side, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.eof.and_then(|(_, lingering)| lingering).is_none() {
            let up = self.up.poll_drain(&mut self.backend, cx)?;
            let down = self.down.poll_drain(&mut self.client, cx)?;
            if up.is_pending() || down.is_pending() {
                return Poll::Pending;
            }
            // A peer that already went away makes shutdown fail; nothing is left to tell it.
            let shutdown = match side {
                Side::Client => Pin::new(&mut self.backend).poll_shutdown(cx),
                Side::Backend => Pin::new(&mut self.client).poll_shutdown(cx),
            };
            if shutdown.is_pending() {
                return Poll::Pending;
            }
            self.eof = Some((side, Some(0)));
            self.clock.close_in(LINGER);
        }
        let mut discarded = self.eof.and_then(|(_, l)| l).unwrap_or(0);
        let finished = SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            match side {
                Side::Client => discard_until_closed(&mut self.backend, &mut scratch, &mut discarded, cx),
                Side::Backend => discard_until_closed(&mut self.client, &mut scratch, &mut discarded, cx),
            }
        });
        self.eof = Some((side, Some(discarded)));
        if finished {
            return Poll::Ready(Ok(()));
        }
        self.clock.poll_deadline(cx).map(Ok)
    }

    /// The first EOF while open: the side it came from, and a Close 1001 queued for the other side if
    /// it was not sent one and its output stands between frames.
    fn on_eof(&mut self, side: Side) {
        let other = match side {
            Side::Client => &mut self.up,
            Side::Backend => &mut self.down,
        };
        if !other.close_sent && !other.in_data_frame && self.first_close.is_none() {
            let (mask, reason) = match side {
                Side::Client => (Some(frame::mask_key(&mut self.seed)), "wsgate: the client went away"),
                Side::Backend => (None, "wsgate: the backend went away"),
            };
            frame::encode_close(CLOSE_GOING_AWAY, reason, mask, &mut other.inject);
            other.close_sent = true;
            if side == Side::Backend {
                self.client_code.get_or_insert(CLOSE_GOING_AWAY);
            }
        }
        self.eof = Some((side, None));
    }

    /// Whether wsgate's close is complete: both Closes written, and each side closed or gone.
    fn close_done(&self) -> bool {
        let written = |d: &Dir| d.inject.is_empty() && d.pending.is_empty();
        let answered = |d: &Dir| d.close_received.is_some() || !d.reading();
        written(&self.up) && written(&self.down) && answered(&self.up) && answered(&self.down)
    }

    fn finish(&mut self, end: End) -> Closed {
        self.up.meter.flush();
        self.down.meter.flush();
        Closed { end, client_code: self.client_code }
    }
}

impl<C, B> Future for FrameRelay<C, B>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    type Output = io::Result<Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<Closed>> {
        let this = self.get_mut();
        if let Some((side, _)) = this.eof {
            ready!(this.poll_after_eof(side, cx))?;
            let end = match this.first_close.unwrap_or(side) {
                Side::Client => End::ClientClosed,
                Side::Backend => End::BackendClosed,
            };
            return Poll::Ready(Ok(this.finish(end)));
        }
        if this.closing.is_none()
            && let Some(signal) = &this.signal
            && let Some(request) = signal.poll(cx, &mut this.registered)
        {
            let (end, code, reason) = match request {
                CloseRequest::EndpointDrain => {
                    (End::EndpointDrain, CLOSE_GOING_AWAY, "wsgate: the endpoint is going away")
                }
                CloseRequest::Shutdown => (End::Shutdown, CLOSE_GOING_AWAY, "wsgate: shutting down"),
                CloseRequest::Rebalance => (End::Rebalance, CLOSE_SERVICE_RESTART, "wsgate: rebalancing, reconnect"),
            };
            this.start_close(end, (code, reason), (code, reason));
        }
        this.poll_timer(cx);
        if let Some(end) = this.end {
            return Poll::Ready(Ok(this.finish(end)));
        }
        let eof = SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            // why both always: a direction not polled registers no waker, and input already waiting on
            // its socket would then never wake this task.
            let client_eof = this.poll_dir(Side::Client, &mut scratch, cx)?;
            let backend_eof = this.poll_dir(Side::Backend, &mut scratch, cx)?;
            // A close started by the second direction (a broken frame) left Closes for the first.
            let _ = this.up.poll_drain(&mut this.backend, cx)?;
            Ok::<_, io::Error>(match (client_eof, backend_eof) {
                (true, _) => Some(Side::Client),
                (_, true) => Some(Side::Backend),
                _ => None,
            })
        })?;
        if let Some(closing) = this.closing {
            if this.close_done() {
                let _ = Pin::new(&mut this.client).poll_shutdown(cx);
                let _ = Pin::new(&mut this.backend).poll_shutdown(cx);
                return Poll::Ready(Ok(this.finish(closing.end)));
            }
            this.poll_timer(cx);
            if let Some(end) = this.end {
                return Poll::Ready(Ok(this.finish(end)));
            }
            return Poll::Pending;
        }
        if let Some(side) = eof {
            this.on_eof(side);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // The timers may have queued a ping, a close: poll again so it is written.
        if !this.up.inject.is_empty() && !this.up.in_data_frame
            || !this.down.inject.is_empty() && !this.down.in_data_frame
        {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let (up, down) = (&mut this.up, &mut this.down);
        if this
            .clock
            .poll_idle(cx, || {
                up.meter.flush();
                down.meter.flush();
            })
            .is_ready()
        {
            let reason = (CLOSE_GOING_AWAY, "wsgate: idle timeout");
            this.start_close(End::IdleTimeout, reason, reason);
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// A seed for masking keys, different per relay.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // why RandomState: its keys are random per process (and vary per instance), so no crate is needed.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNT.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn meter() -> Meter {
        Meter::new(IntCounter::new("t", "t").expect("counter"))
    }

    fn client_frame(fin: bool, opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
        frame::encode_frame(fin, opcode, payload, Some([9, 8, 7, 6]), out);
    }

    /// Scans `input` cut into reads at `cuts`; returns the output of every read, concatenated.
    fn scan_in_pieces(input: &[u8], cuts: &[usize], expect_pong: Option<[u8; PING_LEN]>) -> (Vec<u8>, bool) {
        let mut dir = Dir::new(Direction::ClientToServer, Extensions::default(), None, Bytes::new(), meter());
        let mut scratch = vec![0u8; HEADROOM + READ_LEN];
        let mut out = Vec::new();
        let mut pong = false;
        let mut at = 0;
        let mut bounds: Vec<usize> = Vec::new();
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            while cut - bounds.last().copied().unwrap_or(0) > READ_LEN {
                let next = bounds.last().copied().unwrap_or(0) + READ_LEN;
                bounds.push(next);
            }
            bounds.push(cut);
        }
        for cut in bounds {
            let piece = &input[at..cut];
            at = cut;
            // Garbage in the headroom: the scan must never read it as output.
            scratch[..HEADROOM].fill(0xEE);
            scratch[HEADROOM..HEADROOM + piece.len()].copy_from_slice(piece);
            let scanned = dir.scan(&mut scratch, piece.len(), expect_pong, false);
            assert!(scanned.error.is_none(), "{:?}", scanned.error);
            out.extend_from_slice(&scratch[scanned.start..scanned.end]);
            pong |= scanned.pong;
        }
        (out, pong)
    }

    #[test]
    fn a_stream_split_anywhere_is_forwarded_byte_for_byte() {
        let mut input = Vec::new();
        client_frame(false, Opcode::Text, b"hello, ", &mut input);
        client_frame(true, Opcode::Ping, b"are you there", &mut input);
        client_frame(true, Opcode::Continuation, b"world", &mut input);
        client_frame(true, Opcode::Binary, &[7u8; 300], &mut input);
        client_frame(true, Opcode::Close, &[0x03, 0xE8, b'b', b'y', b'e'], &mut input);
        for cut in 0..=input.len() {
            let (out, _) = scan_in_pieces(&input, &[cut], None);
            assert!(out == input, "cut at {cut}: {} bytes out of {}", out.len(), input.len());
        }
        for a in (0..input.len()).step_by(3) {
            for b in a..input.len() {
                let (out, _) = scan_in_pieces(&input, &[a, b], None);
                assert!(out == input, "cuts at {a} and {b}");
            }
        }
    }

    #[test]
    fn wsgates_pong_is_swallowed_wherever_the_reads_are_cut() {
        let ours = *b"wsgate\0\x01";
        let (mut input, mut expected) = (Vec::new(), Vec::new());
        client_frame(false, Opcode::Text, &[b'a'; 130], &mut input);
        client_frame(false, Opcode::Text, &[b'a'; 130], &mut expected);
        client_frame(true, Opcode::Pong, &ours, &mut input);
        client_frame(true, Opcode::Pong, b"someone else's", &mut input);
        client_frame(true, Opcode::Pong, b"someone else's", &mut expected);
        client_frame(true, Opcode::Continuation, &[b'b'; 70_000], &mut input);
        client_frame(true, Opcode::Continuation, &[b'b'; 70_000], &mut expected);
        for cut in (0..input.len()).step_by(7).chain(130..180) {
            let (out, pong) = scan_in_pieces(&input, &[cut.min(input.len())], Some(ours));
            assert!(pong, "cut at {cut}: the pong is seen");
            assert!(out == expected, "cut at {cut}: {} bytes out, {} expected", out.len(), expected.len());
        }
    }

    #[tokio::test]
    async fn injected_frames_land_between_frames_never_inside_one() {
        // A backend that streams one long frame slowly: the ping toward the client must wait for its end.
        let (mut client, client_near) = tokio::io::duplex(1 << 20);
        let (backend_near, mut backend) = tokio::io::duplex(1 << 20);
        let keepalive = Keepalive {
            ping_interval: Duration::from_millis(30),
            pong_timeout: Duration::from_secs(10),
            toward: crate::routes::Toward::Client,
        };
        let options = FrameOptions {
            keepalive: Some(keepalive),
            max_message: None,
            extensions: Extensions::default(),
            idle_timeout: Duration::from_secs(60),
            max_lifetime: None,
            pings_sent: None,
        };
        let relay =
            FrameRelay::new(client_near, Bytes::new(), backend_near, Bytes::new(), options, None, meter(), meter());
        let task = tokio::spawn(relay);
        let payload = vec![b'x'; 4000];
        let mut frame = Vec::new();
        frame::encode_frame(true, Opcode::Binary, &payload, None, &mut frame);
        for chunk in frame.chunks(500) {
            backend.write_all(chunk).await.expect("write");
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        // Read what the client got: the whole frame (pings only before or after it), then a ping.
        let mut reader = FrameReader::new(Direction::ServerToClient, Extensions::default());
        let mut got = Vec::new();
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !events.iter().any(|e| matches!(e, Event::Control(c) if c.opcode() == Opcode::Ping && got.len() > 4000)) {
            assert!(Instant::now() < deadline, "no ping after the frame: {events:?}");
            let mut buf = [0u8; 1024];
            let n =
                tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await.expect("read").expect("ok");
            got.extend_from_slice(&buf[..n]);
            let mut at = 0;
            loop {
                let (used, event) = reader.feed(&buf[at..n]).expect("every frame the client gets is valid");
                at += used;
                match event {
                    Some(event) => events.push(event),
                    None => break,
                }
            }
        }
        let headers: Vec<_> =
            events.iter().filter_map(|e| if let Event::Header(h) = e { Some(h.opcode) } else { None }).collect();
        assert!(headers.contains(&Opcode::Binary), "{headers:?}");
        task.abort();
    }
}
