//! The generic byte relay, for upgraded connections whose client side is not a plain TCP socket (a
//! WebSocket over TLS). The readiness-based [`Tunnel`](super::tunnel::Tunnel) needs two raw
//! `TcpStream`s; a TLS stream must be read through rustls, so it goes through this small copy loop.
//!
//! ```text
//!   client (TLS) ──read──► buf (16 KiB) ──write_all + flush──► backend   (upstream)
//!   client (TLS) ◄──write_all + flush── buf (16 KiB) ◄──read── backend   (downstream)
//!   EOF on one side ─► shutdown(write) on the other (close_notify + FIN for TLS), and the other
//!   direction stops once the chunk it holds is written ─► Closed (the first EOF ends the relay, as
//!   in the plain tunnel; see `tunnel` for why); no byte either way for `idle_timeout` ─► IdleTimeout
//! ```
//!
//! Memory: each relay owns two 16 KiB buffers for its whole life, on top of rustls's own buffers (about
//! as much again), so an idle TLS WebSocket costs tens of KiB where a plain one costs nearly nothing.
//! That is the price of simplicity here; the plain path stays buffer-free.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::tunnel::{End, Meter};

/// Size of each direction's buffer.
const BUFFER_LEN: usize = 16 * 1024;

/// When bytes last moved, in milliseconds since the relay started; shared by both directions.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Resolves once `idle` has passed with no byte moved; at most one wake-up per `idle` while busy.
    async fn silent_for(&self, idle: Duration) {
        loop {
            let last = self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            if last + idle <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(last + idle).await;
        }
    }
}

/// Relays between `client` and `backend` until one side closes, the idle timeout, or an I/O error. `backend_buffered` is what was read from the backend past its 101 answer; it goes to the
/// client first. Byte counts go to `upstream` (client → backend) and `downstream`.
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
    let activity = Activity { started: Instant::now(), last_ms: AtomicU64::new(0) };
    let (client_read, client_write) = tokio::io::split(client);
    let (backend_read, backend_write) = tokio::io::split(backend);
    let (stop, _) = watch::channel(false);
    let up = pump(client_read, backend_write, Bytes::new(), upstream, &activity, &stop);
    let down = pump(backend_read, client_write, backend_buffered, downstream, &activity, &stop);
    let end = tokio::select! {
        both = async { tokio::try_join!(up, down) } => both.map(|(client_eof, _)| {
            if client_eof { End::ClientClosed } else { End::BackendClosed }
        }),
        () = activity.silent_for(idle_timeout) => Ok(End::IdleTimeout),
    };
    upstream.flush();
    downstream.flush();
    end
}

/// One direction: copies until `src` reaches EOF, then shuts down `dst`'s write side and tells the other
/// direction to stop; or stops when told to, between chunks (a chunk read is always written). `true`
/// when this direction's EOF is what ended the relay.
async fn pump<R, W>(
    mut src: R,
    mut dst: W,
    first: Bytes,
    meter: &mut Meter,
    activity: &Activity,
    stop: &watch::Sender<bool>,
) -> io::Result<bool>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if !first.is_empty() {
        dst.write_all(&first).await?;
        dst.flush().await?;
        meter.add(first.len());
        activity.touch();
    }
    let mut buf = vec![0u8; BUFFER_LEN];
    let mut stopped = stop.subscribe();
    loop {
        let n = tokio::select! {
            biased;
            _ = stopped.wait_for(|stop| *stop) => return Ok(false),
            n = src.read(&mut buf) => n?,
        };
        if n == 0 {
            stop.send_replace(true);
            // A peer that already went away makes shutdown fail; nothing is left to tell it.
            let _ = dst.shutdown().await;
            return Ok(true);
        }
        // why flush: a TLS writer may keep encrypted records buffered until flushed.
        dst.write_all(&buf[..n]).await?;
        dst.flush().await?;
        meter.add(n);
        activity.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::IntCounter;

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
        // The backend keeps its side open; the relay ends anyway and the client sees EOF.
        let (end, up, down) = tokio::time::timeout(Duration::from_secs(5), relay).await.expect("ends").expect("task");
        assert_eq!(end, End::ClientClosed);
        assert_eq!((up, down), (5, 10));
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.expect("read");
        assert!(rest.is_empty(), "{rest:?}");
        drop(backend);
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
}
