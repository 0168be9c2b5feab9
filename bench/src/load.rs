//! The workloads. Each one runs against one target, counts what it completes inside a measured window
//! (after a warm-up), counts every error, and samples the proxy's CPU time at the window's edges.
//!
//! ```text
//!   upgrades   N handshakers: connect ─► handshake ─► check accept ─► close, repeat
//!   echo       C open WebSockets, each: send S bytes ─► wait for the echo ─► compare, repeat
//!   latency    C WebSockets, each sending at a fixed rate (well below saturation); round trips timed
//!   idle       open N WebSockets (each echoes once), then read the proxy's RSS
//!   reload     open 1,000, reload nginx/HAProxy, wait past the drain limit, count the dead
//!   changes    open 1,000, make 100 route changes in wsgate's manifest folder (timing each one until
//!              the new route answers), count the dead
//! ```
//!
//! Client sockets bind to 127.0.0.2 … 127.0.0.65 in turn, so large connection counts and fast
//! handshake loops never run out of ephemeral ports towards one address. Every loop stops on a flag set
//! after the window and every wait has a timeout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{self, Conn};
use crate::targets::{DRAIN_LIMIT, Target, WS_PATH, wsgate_probe_route};

/// How many client source addresses are used (127.0.0.2 onwards).
const SOURCES: usize = 64;
/// Concurrent handshakes while opening many connections.
const OPEN_CONCURRENCY: usize = 64;
/// Longest one echo may take before it counts as an error.
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest the workload tasks may take to stop after the window.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a route change may take to answer before it counts as an error.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(2);

/// Warm-up and measured window of the throughput workloads.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub window: Duration,
}

/// What a throughput workload measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    /// Operations completed inside the window.
    pub count: u64,
    pub seconds: f64,
    /// CPU seconds the proxy used inside the window.
    pub cpu: f64,
    pub errors: u64,
}

impl Window {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 { self.count as f64 / self.seconds } else { 0.0 }
    }

    /// Proxy CPU seconds per million operations.
    pub fn cpu_per_million(&self) -> f64 {
        if self.count > 0 { self.cpu / self.count as f64 * 1e6 } else { f64::NAN }
    }
}

pub fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES) as u8))
}

fn addr_of(addrs: &[SocketAddr], i: usize) -> SocketAddr {
    addrs[i % addrs.len()]
}

/// Counters and flags shared by a workload's tasks.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    measuring: AtomicBool,
    errors: AtomicU64,
    next: AtomicUsize,
}

/// Samples the per-task counters and the proxy CPU around the measured window.
async fn observe(target: &Target, shared: &Shared, counters: &[Arc<AtomicU64>], timing: Timing) -> Window {
    let sum = || counters.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>();
    tokio::time::sleep(timing.warmup).await;
    let (c0, cpu0, t0) = (sum(), target.cpu_seconds(), Instant::now());
    shared.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(timing.window).await;
    let (c1, cpu1, seconds) = (sum(), target.cpu_seconds(), t0.elapsed().as_secs_f64());
    shared.measuring.store(false, Ordering::Relaxed);
    shared.stop.store(true, Ordering::Relaxed);
    Window { count: c1 - c0, seconds, cpu: cpu1 - cpu0, errors: 0 }
}

async fn join_all<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> (Vec<T>, u64) {
    let mut outputs = Vec::with_capacity(handles.len());
    let mut lost = 0;
    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    for handle in handles {
        match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(output)) => outputs.push(output),
            _ => lost += 1,
        }
    }
    (outputs, lost)
}

/// Handshakes per second with `concurrency` clients that each connect, upgrade, check and close.
pub async fn upgrades(target: &Target, concurrency: usize, timing: Timing) -> Window {
    let shared = Arc::new(Shared::default());
    let addrs: Arc<[SocketAddr]> = target.addrs.clone().into();
    let counters: Vec<Arc<AtomicU64>> = (0..concurrency).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let handles: Vec<_> = counters
        .iter()
        .map(|counter| {
            let (shared, addrs, counter) = (Arc::clone(&shared), Arc::clone(&addrs), Arc::clone(counter));
            tokio::spawn(async move {
                while !shared.stop.load(Ordering::Relaxed) {
                    let i = shared.next.fetch_add(1, Ordering::Relaxed);
                    match client::connect(addr_of(&addrs, i), source(i), WS_PATH, i as u64).await {
                        Ok(conn) => {
                            drop(conn);
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            })
        })
        .collect();
    let mut window = observe(target, &shared, &counters, timing).await;
    let (_, lost) = join_all(handles).await;
    window.errors = shared.errors.load(Ordering::Relaxed) + lost;
    window
}

/// Opens `n` WebSockets, each checked with one small echo. Returns the open ones and the failures.
pub async fn open_many(addrs: &[SocketAddr], n: usize) -> (Vec<Conn>, u64) {
    let shared = Arc::new(Shared::default());
    let addrs: Arc<[SocketAddr]> = addrs.to_vec().into();
    let handles: Vec<_> = (0..OPEN_CONCURRENCY.min(n.max(1)))
        .map(|_| {
            let (shared, addrs) = (Arc::clone(&shared), Arc::clone(&addrs));
            tokio::spawn(async move {
                let mut opened = Vec::new();
                loop {
                    let i = shared.next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return opened;
                    }
                    let payload = (i as u64).to_le_bytes();
                    match client::connect(addr_of(&addrs, i), source(i), WS_PATH, i as u64).await {
                        Ok(mut conn) => match conn.echo_within(&payload, ECHO_TIMEOUT).await {
                            Ok(()) => opened.push(conn),
                            Err(_) => {
                                shared.errors.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        Err(_) => {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let (lists, lost) = join_all(handles).await;
    (lists.into_iter().flatten().collect(), shared.errors.load(Ordering::Relaxed) + lost)
}

/// Echoes one small message on every connection (64 at a time); returns the connections that answered
/// and how many did not.
pub async fn check_all(conns: Vec<Conn>, limit: Duration) -> (Vec<Conn>, u64) {
    let total = conns.len();
    let chunk = total.div_ceil(OPEN_CONCURRENCY).max(1);
    let mut handles = Vec::new();
    let mut rest = conns;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().saturating_sub(chunk));
        handles.push(tokio::spawn(async move {
            let mut alive = Vec::new();
            for (i, mut conn) in tail.into_iter().enumerate() {
                if conn.echo_within(&(i as u64).to_be_bytes(), limit).await.is_ok() {
                    alive.push(conn);
                }
            }
            alive
        }));
    }
    let (lists, _) = join_all(handles).await;
    let alive: Vec<Conn> = lists.into_iter().flatten().collect();
    let dead = (total - alive.len()) as u64;
    (alive, dead)
}

/// Messages per second with `conns` WebSockets, each with one `size`-byte message in flight.
pub async fn echo(target: &Target, conns: usize, size: usize, timing: Timing) -> Window {
    let (opened, open_errors) = open_many(&target.addrs, conns).await;
    let shared = Arc::new(Shared::default());
    let counters: Vec<Arc<AtomicU64>> = opened.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let handles: Vec<_> = opened
        .into_iter()
        .zip(&counters)
        .enumerate()
        .map(|(i, (mut conn, counter))| {
            let (shared, counter) = (Arc::clone(&shared), Arc::clone(counter));
            tokio::spawn(async move {
                let mut payload: Vec<u8> = (0..size).map(|k| (k * 31 + i) as u8).collect();
                let mut seq = 0u64;
                while !shared.stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let stamp = (seq << 20 | i as u64).to_le_bytes();
                    let n = stamp.len().min(payload.len());
                    payload[..n].copy_from_slice(&stamp[..n]);
                    match conn.echo_within(&payload, ECHO_TIMEOUT).await {
                        Ok(()) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    let mut window = observe(target, &shared, &counters, timing).await;
    let (_, lost) = join_all(handles).await;
    window.errors = open_errors + shared.errors.load(Ordering::Relaxed) + lost;
    window
}

/// Round-trip times (µs) of 64-byte echoes, `conns` WebSockets each sending `per_conn` messages per
/// second, staggered; only the measured window is kept.
pub async fn latency(target: &Target, conns: usize, per_conn: u32, timing: Timing) -> (Vec<u32>, u64) {
    let (opened, open_errors) = open_many(&target.addrs, conns).await;
    let shared = Arc::new(Shared::default());
    let period = Duration::from_secs(1) / per_conn.max(1);
    let count = opened.len().max(1) as u32;
    let handles: Vec<_> = opened
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let start = tokio::time::Instant::now() + period * (i as u32) / count;
                let mut ticks = tokio::time::interval_at(start, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut payload = [0u8; 64];
                let mut samples = Vec::new();
                let mut seq = 0u64;
                while !shared.stop.load(Ordering::Relaxed) {
                    ticks.tick().await;
                    seq += 1;
                    payload[..8].copy_from_slice(&(seq << 20 | i as u64).to_le_bytes());
                    let sent = Instant::now();
                    if conn.echo_within(&payload, ECHO_TIMEOUT).await.is_err() {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        return samples;
                    }
                    if shared.measuring.load(Ordering::Relaxed) {
                        samples.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                }
                samples
            })
        })
        .collect();
    let _ = observe(target, &shared, &[], timing).await;
    let (lists, lost) = join_all(handles).await;
    let mut samples: Vec<u32> = lists.into_iter().flatten().collect();
    samples.sort_unstable();
    (samples, open_errors + shared.errors.load(Ordering::Relaxed) + lost)
}

/// The value at quantile `q` of sorted samples.
pub fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[index])
}

/// What the idle-memory workload measured.
#[derive(Debug, Clone, Copy)]
pub struct Idle {
    pub opened: usize,
    pub bytes_per_conn: f64,
    pub errors: u64,
}

/// Restarts the proxy, then opens `n` WebSockets and reads how much its RSS grew per connection.
pub async fn idle(target: &mut Target, n: usize) -> anyhow::Result<Idle> {
    target.restart().await?;
    // Let the fresh process settle, with one connection through it, before the baseline.
    let (warm, _) = open_many(&target.addrs, 4).await;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = target.rss_bytes();
    let (conns, errors) = open_many(&target.addrs, n).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = target.rss_bytes();
    let opened = conns.len();
    drop(conns);
    // Give the proxy and the backends a moment to close everything before the next workload.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bytes_per_conn = if opened > 0 { after.saturating_sub(before) as f64 / opened as f64 } else { f64::NAN };
    Ok(Idle { opened, bytes_per_conn, errors })
}

/// Of `n` open WebSockets, how many a reload of nginx or HAProxy drops (checked past the drain limit).
pub async fn reload_drops(target: &Target, n: usize) -> anyhow::Result<(u64, u64)> {
    let (conns, errors) = open_many(&target.addrs, n).await;
    let missing = (n - conns.len()) as u64;
    target.reload()?;
    tokio::time::sleep(DRAIN_LIMIT + Duration::from_secs(2)).await;
    let (alive, dead) = check_all(conns, Duration::from_secs(2)).await;
    drop(alive);
    Ok((dead + missing, errors))
}

/// What the route-change workload measured.
#[derive(Debug, Clone)]
pub struct Changes {
    pub dropped: u64,
    /// Milliseconds from writing each change until the new route answered, sorted.
    pub propagation_ms: Vec<f64>,
    pub errors: u64,
}

/// Holds `n` WebSockets open through wsgate while `changes` route changes are made in its manifest
/// folder; each change adds a new path, and is timed until that path answers.
pub async fn wsgate_changes(target: &Target, n: usize, changes: usize) -> anyhow::Result<Changes> {
    let (conns, mut errors) = open_many(&target.addrs, n).await;
    let missing = (n - conns.len()) as u64;
    let dir = target.manifests();
    let addr = target.addrs[0];
    let mut propagation_ms = Vec::with_capacity(changes);
    for change in 0..changes {
        let path = format!("/probe-{change}");
        let temporary = dir.join(".probe.tmp");
        let started = Instant::now();
        std::fs::write(&temporary, wsgate_probe_route(&path))?;
        std::fs::rename(&temporary, dir.join("probe.yaml"))?;
        let mut answered = false;
        while started.elapsed() < PROPAGATION_TIMEOUT {
            if http_status(addr, &path).await == Some(200) {
                answered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if !answered {
            errors += 1;
        }
        propagation_ms.push(started.elapsed().as_secs_f64() * 1e3);
        // Spread the changes a little, as a real controller would see them.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (alive, dead) = check_all(conns, Duration::from_secs(2)).await;
    drop(alive);
    propagation_ms.sort_by(f64::total_cmp);
    Ok(Changes { dropped: dead + missing, propagation_ms, errors })
}

/// The status of a plain GET (new connection, `Connection: close`), or `None` on any failure.
pub async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench.local\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut buf = vec![0u8; 4096];
        let mut end = 0;
        while client::find_head_end(&buf[..end]).is_none() && end < buf.len() {
            let n = stream.read(&mut buf[end..]).await.ok()?;
            if n == 0 {
                break;
            }
            end += n;
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        response.parse(&buf[..end]).ok()?;
        response.code
    };
    tokio::time::timeout(Duration::from_secs(1), exchange).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_sample_at_or_above_the_rank() {
        let samples: Vec<u32> = (1..=1000).collect();
        assert_eq!(quantile(&samples, 0.5), 500.0);
        assert_eq!(quantile(&samples, 0.99), 990.0);
        assert_eq!(quantile(&samples, 0.999), 999.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
