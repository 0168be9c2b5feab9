//! The byte relay between an upgraded client socket and an upgraded backend socket.
//!
//! ```text
//!   client ──read──► scratch (per thread) ──try_write──► backend      (upstream half)
//!   client ◄──try_write── scratch ◄──read── backend                   (downstream half)
//!            └─ only when the destination is full: the remainder is copied into `pending`,
//!               and that half stops reading until it drains (backpressure)
//!   EOF on one side ─► shutdown(write) on the other; the other half keeps going
//!   EOF on both sides ─► the tunnel ends; dropping the sockets closes them
//!   no byte either way for `idle_timeout` ─► both sockets closed
//! ```
//!
//! Why readiness and a per-thread scratch buffer instead of `copy_bidirectional`: an idle tunnel then
//! owns no buffer at all (only two sockets, one timer and a few counters), which is what lets a gateway
//! hold very many quiet WebSockets. Bytes are copied once, from the kernel into the scratch buffer and
//! straight out again. The relay works on the raw `TcpStream`s, recovered from hyper's `Upgraded` by
//! downcasting, together with any bytes hyper had already read past the handshake.
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
use tokio::io::{AsyncWrite, Interest};
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
    /// Both sides closed their write half (the normal end of a WebSocket).
    Closed,
    /// Neither side sent a byte for the idle timeout.
    IdleTimeout,
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
    /// The source reached EOF; after `pending` drains, the destination's write side is shut down.
    eof: bool,
    /// EOF relayed: this direction is finished.
    done: bool,
    meter: Meter,
}

impl Half {
    fn new(pending: Bytes, meter: Meter) -> Half {
        let mut half = Half { pending, eof: false, done: false, meter };
        let already = half.pending.len();
        half.meter.add(already);
        half
    }

    /// Moves bytes from `src` to `dst` until one of them would block. `Ready(Ok)` means the direction is
    /// finished; an error means the tunnel must close.
    fn poll_relay(
        &mut self,
        src: &TcpStream,
        dst: &mut TcpStream,
        scratch: &mut [u8],
        other_done: bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        // why no explicit budget: TcpStream readiness polls take part in tokio's cooperative budget, so a
        // busy tunnel yields to other tasks on its own.
        loop {
            while !self.pending.is_empty() {
                ready!(dst.poll_write_ready(cx))?;
                match dst.try_write(&self.pending) {
                    Ok(n) => self.pending.advance(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if self.eof {
                // why only while the other direction runs: once both sources reached EOF the tunnel
                // ends and dropping the sockets sends the FIN anyway, so shutdown(2) would be a wasted
                // syscall on every WebSocket's close. A peer that already went away makes shutdown
                // fail; the other half will notice that.
                if !other_done {
                    let _ = ready!(Pin::new(&mut *dst).poll_shutdown(cx));
                }
                self.done = true;
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
fn read_draining(src: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
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

/// A running relay. Await it (by `&mut` to read the totals afterwards); dropping it closes both sockets
/// and flushes the byte counters.
///
/// The timer works without reading the clock per message: a poll that moved bytes only sets `moved`;
/// the first such poll after a timer tick pulls the timer in to one check period away. Each tick
/// flushes the byte counters and, if bytes moved since the previous tick, restarts the silence at
/// "now" (never earlier than the last byte); a tick that finds `idle_timeout` of silence ends the
/// tunnel. So a silent tunnel closes after `idle_timeout` plus at most one check period (an eighth of
/// it), never before, and relayed bytes reach the metrics within [`FLUSH_INTERVAL`].
#[derive(Debug)]
pub struct Tunnel {
    client: TcpStream,
    backend: TcpStream,
    upstream: Half,
    downstream: Half,
    idle_timeout: Duration,
    /// Start of the current silence: no later than the last byte moved before the latest tick.
    quiet_since: Instant,
    /// Bytes moved since the latest tick.
    moved: bool,
    timer: Pin<Box<Sleep>>,
}

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
        let now = Instant::now();
        let mut tunnel = Tunnel {
            client: ends.client,
            backend: ends.backend,
            upstream: Half::new(ends.client_buffered, upstream),
            downstream: Half::new(ends.backend_buffered, downstream),
            idle_timeout,
            quiet_since: now,
            moved: false,
            timer: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
        };
        if tunnel.unflushed() {
            tunnel.note_moved();
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

    /// How often the timer ticks while bytes move.
    fn check_period(&self) -> Duration {
        (self.idle_timeout / 8).clamp(Duration::from_millis(1), FLUSH_INTERVAL)
    }

    /// Records that bytes moved; the first time after a tick, pulls the timer in to one check period.
    fn note_moved(&mut self) {
        if !self.moved {
            self.moved = true;
            let due = Instant::now() + self.check_period();
            if due < self.timer.deadline() {
                self.timer.as_mut().reset(due);
            }
        }
    }

    fn flush(&mut self) {
        self.upstream.meter.flush();
        self.downstream.meter.flush();
    }
}

impl Future for Tunnel {
    type Output = io::Result<End>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<End>> {
        let this = self.get_mut();
        let before = this.upstream.meter.total + this.downstream.meter.total;
        let (up, down) = SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let up = this.upstream.poll_relay(&this.client, &mut this.backend, &mut scratch, this.downstream.done, cx);
            let down =
                this.downstream.poll_relay(&this.backend, &mut this.client, &mut scratch, this.upstream.done, cx);
            (up, down)
        });
        if let Poll::Ready(Err(e)) = up {
            return Poll::Ready(Err(e));
        }
        if let Poll::Ready(Err(e)) = down {
            return Poll::Ready(Err(e));
        }
        if this.upstream.done && this.downstream.done {
            return Poll::Ready(Ok(End::Closed));
        }
        if this.upstream.meter.total + this.downstream.meter.total != before {
            this.note_moved();
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            this.flush();
            if std::mem::take(&mut this.moved) {
                this.quiet_since = now;
            } else if this.quiet_since + this.idle_timeout <= now {
                return Poll::Ready(Ok(End::IdleTimeout));
            }
            this.timer.as_mut().reset(this.quiet_since + this.idle_timeout);
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
    async fn relays_leftovers_data_and_half_close() {
        let (mut client, mut backend, mut tunnel) = tunnel(Duration::from_secs(60), b"early").await;
        let relay = tokio::spawn(async move {
            let end = (&mut tunnel).await;
            (end.unwrap(), tunnel.totals())
        });
        let mut buf = [0u8; 5];
        backend.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"early");
        client.write_all(b"hello").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        backend.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello", "the backend sees the client's EOF after its data");
        // The other direction still works after the half-close.
        backend.write_all(b"late reply").await.unwrap();
        backend.shutdown().await.unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"late reply");
        let (end, totals) = tokio::time::timeout(Duration::from_secs(5), relay).await.unwrap().unwrap();
        assert_eq!(end, End::Closed);
        assert_eq!(totals, (10, 10));
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
