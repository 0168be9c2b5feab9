//! Per-route and per-client admission limits, per wsgate replica: open WebSockets on a route, open
//! WebSockets of one client IP on a route, and a handshake rate per client IP on a route.
//!
//! ```text
//!   admit  route cap (RouteFull) ─► client cap (ClientFull) ─► handshake rate (RateLimited) ─► Permit
//!          every check before any change: a refused handshake takes no slot and no token
//!   Permit held by the tunnel; its Drop gives the route and client slots back (once)
//! ```
//!
//! One `std::sync::Mutex` guards all state. Why not shards: a critical section is a couple of hash
//! look-ups (no I/O, no allocation on the common path), far cheaper than the TCP and HTTP work of the
//! handshake around it, and one table makes the `max_tracked_clients` bound exact.
//!
//! Memory is bounded. Route counters exist only while a route has open connections counted against a
//! `max_connections` (removed when they fall to zero). Per-(route, client) entries are at most
//! `max_tracked_clients`; when the table is full the least recently used *idle* entry (no open
//! connections) makes room. Dropping an idle entry whose bucket had refilled loses nothing (it equals a
//! fresh one); dropping one whose bucket was partly spent forgets that client's recent handshakes,
//! which the bound accepts as its trade-off. Entries with open connections are never evicted, or a
//! client cap could be escaped by waiting for eviction. When every entry is busy, a new client is
//! admitted under the route cap alone, without per-client state (logged at warn, at most once a
//! minute): refusing would let one crowd of long-lived clients lock every newcomer out of the route,
//! and the route cap still bounds the damage.

use crate::routes::RouteLimits;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tracing::warn;

/// Why a handshake was refused; each maps to one HTTP answer in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The route has `limit` open connections already.
    RouteFull { limit: u32 },
    /// This client has `limit` open connections on the route already.
    ClientFull { limit: u32 },
    /// This client's handshake bucket is empty; a token is back after `retry_after` (whole seconds,
    /// at least 1 s, as `Retry-After` wants).
    RateLimited { retry_after: Duration },
}

/// Admission state shared by every connection of this replica.
pub struct Limits {
    state: Arc<Mutex<State>>,
    /// `clients.len()` as of the last admit, for the gauge without taking the lock again.
    tracked: std::sync::atomic::AtomicUsize,
}

/// Slots held for one admitted connection, given back when it drops.
#[must_use = "dropping the permit releases the connection's slots at once"]
pub struct Permit {
    /// `None` for routes without limits: nothing to give back, nothing locked.
    held: Option<Held>,
}

struct Held {
    state: Arc<Mutex<State>>,
    /// Counted in `State::routes` (the route had a `max_connections`).
    route: Option<Arc<str>>,
    /// Counted in an entry's `open` (the route had a `max_connections_per_client`).
    client: Option<ClientKey>,
}

type ClientKey = (Arc<str>, IpAddr);

/// Least often a table-full warning is logged: once a minute says it is still happening without
/// flooding the log on every handshake.
const FULL_WARNING_INTERVAL: Duration = Duration::from_secs(60);

struct State {
    max_tracked: usize,
    /// Open connections per route, for routes with a `max_connections`; never holds a zero.
    routes: HashMap<Arc<str>, u32>,
    clients: HashMap<ClientKey, Client>,
    /// Idle entries (`open == 0`) by the stamp of their last use, oldest first: the eviction order.
    /// Busy entries are not in it, so eviction never has to skip them.
    idle: BTreeMap<u64, ClientKey>,
    /// Source of stamps; u64 does not wrap in practice.
    next_stamp: u64,
    /// When the table-full warning was last logged.
    warned_full: Option<Instant>,
}

/// One client on one route.
struct Client {
    /// Open connections counted against a `max_connections_per_client`.
    open: u32,
    /// The handshake bucket as a GCRA "theoretical arrival time": the bucket is full when
    /// `tat <= now`, and each handshake pushes it one emission interval later. Why GCRA: one Instant
    /// instead of a float token count plus a refill time, and exact integer-nanosecond arithmetic.
    tat: Option<Instant>,
    /// Stamp of the last use; the key in `State::idle` while the entry is idle.
    stamp: u64,
}

impl Limits {
    /// Limits keeping at most `max_tracked_clients` per-(route, client) entries (at least 1).
    pub fn new(max_tracked_clients: usize) -> Limits {
        let state = State {
            max_tracked: max_tracked_clients.max(1),
            routes: HashMap::new(),
            clients: HashMap::new(),
            idle: BTreeMap::new(),
            next_stamp: 0,
            warned_full: None,
        };
        Limits { state: Arc::new(Mutex::new(state)), tracked: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// Admits one WebSocket handshake from `client` on `route`, or says why not. Checks, in order, the
    /// route cap, the client cap and the handshake rate; nothing changes unless all pass.
    pub fn admit(
        &self,
        route: &Arc<str>,
        client: IpAddr,
        limits: &RouteLimits,
        now: Instant,
    ) -> Result<Permit, Refusal> {
        if limits.is_unlimited() {
            return Ok(Permit { held: None });
        }
        let mut state = lock(&self.state);
        if let Some(limit) = limits.max_connections
            && state.routes.get(route).copied().unwrap_or(0) >= limit
        {
            return Err(Refusal::RouteFull { limit });
        }
        let per_client = limits.max_connections_per_client.is_some() || limits.handshakes_per_client.is_some();
        let mut counted_client = None;
        if per_client {
            let key = (Arc::clone(route), client);
            if state.check_client(&key, limits, now)? {
                counted_client = limits.max_connections_per_client.map(|_| key);
            }
        }
        let counted_route = limits.max_connections.map(|_| {
            *state.routes.entry(Arc::clone(route)).or_insert(0) += 1;
            Arc::clone(route)
        });
        self.tracked.store(state.clients.len(), std::sync::atomic::Ordering::Relaxed);
        drop(state);
        if counted_route.is_none() && counted_client.is_none() {
            // Rate only, or an untracked client: nothing to give back.
            return Ok(Permit { held: None });
        }
        Ok(Permit { held: Some(Held { state: Arc::clone(&self.state), route: counted_route, client: counted_client }) })
    }

    /// Number of per-(route, client) entries held, busy and idle: how close the table is to its bound.
    #[cfg(test)]
    pub fn tracked_clients(&self) -> usize {
        lock(&self.state).clients.len()
    }

    /// [`tracked_clients`](Limits::tracked_clients) as of the last admit, without the lock (for the gauge
    /// on every handshake).
    pub fn tracked_clients_seen(&self) -> usize {
        self.tracked.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl State {
    /// The client cap and rate checks for `key`, and on success the entry's update (`open` is counted
    /// when the route has a client cap). `Ok(false)`: admitted without per-client state (table full).
    fn check_client(&mut self, key: &ClientKey, limits: &RouteLimits, now: Instant) -> Result<bool, Refusal> {
        let stamp = self.stamp();
        let cap = limits.max_connections_per_client;
        let Some(entry) = self.clients.get_mut(key) else {
            // A fresh entry has no connections and a full bucket: only a zero cap refuses it.
            if let Some(limit @ 0) = cap {
                return Err(Refusal::ClientFull { limit });
            }
            if self.clients.len() >= self.max_tracked && !self.evict_one() {
                self.warn_full(now);
                return Ok(false);
            }
            let mut entry = Client { open: 0, tat: None, stamp };
            if let Some(rate) = limits.handshakes_per_client {
                let (interval, _) = bucket(rate);
                entry.tat = Some(now + interval);
            }
            if cap.is_some() {
                entry.open = 1;
            } else {
                self.idle.insert(stamp, key.clone());
            }
            self.clients.insert(key.clone(), entry);
            return Ok(true);
        };
        // Touch the entry even when refusing: a client being refused is the one whose state matters.
        if entry.open == 0 {
            self.idle.remove(&entry.stamp);
            self.idle.insert(stamp, key.clone());
        }
        entry.stamp = stamp;
        if let Some(limit) = cap
            && entry.open >= limit
        {
            return Err(Refusal::ClientFull { limit });
        }
        if let Some(rate) = limits.handshakes_per_client {
            let (interval, tolerance) = bucket(rate);
            let tat = entry.tat.filter(|&tat| tat > now).unwrap_or(now);
            let allowed_at = tat.checked_sub(tolerance).unwrap_or(now);
            if allowed_at > now {
                return Err(Refusal::RateLimited { retry_after: whole_seconds(allowed_at - now) });
            }
            entry.tat = Some(tat + interval);
        }
        if cap.is_some() {
            if entry.open == 0 {
                self.idle.remove(&stamp);
            }
            entry.open += 1;
        }
        Ok(true)
    }

    /// Removes the least recently used idle entry; false when every entry is busy.
    fn evict_one(&mut self) -> bool {
        let Some((_, key)) = self.idle.pop_first() else {
            return false;
        };
        self.clients.remove(&key);
        true
    }

    fn warn_full(&mut self, now: Instant) {
        if self.warned_full.is_some_and(|at| now.saturating_duration_since(at) < FULL_WARNING_INTERVAL) {
            return;
        }
        self.warned_full = Some(now);
        warn!(
            max_tracked_clients = self.max_tracked,
            "every per-client admission entry has open connections; new clients are admitted under the route \
             limit only (raise the tracked-clients limit)"
        );
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    fn release(&mut self, held: &mut Held) {
        if let Some(route) = held.route.take()
            && let Some(open) = self.routes.get_mut(&route)
        {
            *open -= 1;
            if *open == 0 {
                self.routes.remove(&route);
            }
        }
        if let Some(key) = held.client.take() {
            let stamp = self.stamp();
            // Busy entries are never evicted, so the entry is there.
            if let Some(entry) = self.clients.get_mut(&key) {
                entry.open -= 1;
                if entry.open == 0 {
                    entry.stamp = stamp;
                    self.idle.insert(stamp, key);
                }
            }
        }
    }
}

/// The rate's emission interval and tolerance: a bucket of `max(burst, per_second, 1)` tokens that
/// refills `per_second` a second. A zero `per_second` is taken as 1/s so a bucket always refills
/// (a never-refilling bucket would lock a client out until its entry happens to be evicted).
fn bucket(rate: crate::routes::Rate) -> (Duration, Duration) {
    let per_second = rate.per_second.max(1);
    let capacity = rate.burst.max(per_second);
    let interval = Duration::from_secs(1) / per_second;
    (interval, interval * (capacity - 1))
}

/// `wait` rounded up to whole seconds, at least one: `Retry-After` counts whole seconds, and a client
/// told 0 would come straight back.
fn whole_seconds(wait: Duration) -> Duration {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

/// Why poisoning is ignored: every critical section leaves the counts consistent before anything that
/// can panic, and a Drop must not panic.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(mut held) = self.held.take() {
            let state = Arc::clone(&held.state);
            lock(&state).release(&mut held);
        }
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.held {
            None => f.write_str("Permit(unlimited)"),
            Some(held) => f
                .debug_struct("Permit")
                .field("route", &held.route)
                .field("client", &held.client.as_ref().map(|(_, ip)| ip))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Rate;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn route(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    fn route_cap(max: u32) -> RouteLimits {
        RouteLimits { max_connections: Some(max), ..RouteLimits::default() }
    }

    fn client_cap(max: u32) -> RouteLimits {
        RouteLimits { max_connections_per_client: Some(max), ..RouteLimits::default() }
    }

    fn rate(per_second: u32, burst: u32) -> RouteLimits {
        RouteLimits { handshakes_per_client: Some(Rate { per_second, burst }), ..RouteLimits::default() }
    }

    fn open_on_route(limits: &Limits, route: &str) -> u32 {
        lock(&limits.state).routes.get(route).copied().unwrap_or(0)
    }

    fn open_of_client(limits: &Limits, route: &Arc<str>, client: IpAddr) -> u32 {
        lock(&limits.state).clients.get(&(Arc::clone(route), client)).map_or(0, |c| c.open)
    }

    const _: () = {
        const fn send_static<T: Send + 'static>() {}
        const fn send_sync<T: Send + Sync>() {}
        send_static::<Permit>();
        send_sync::<Limits>();
    };

    #[test]
    fn unlimited_routes_get_an_empty_permit_and_no_state() {
        let limits = Limits::new(10);
        let r = route("r");
        let permits: Vec<_> =
            (0..5).map(|n| limits.admit(&r, ip(n), &RouteLimits::default(), Instant::now()).unwrap()).collect();
        assert!(permits.iter().all(|p| p.held.is_none()));
        assert_eq!(limits.tracked_clients(), 0);
        assert!(lock(&limits.state).routes.is_empty());
    }

    #[test]
    fn route_cap_refuses_the_next_and_admits_again_after_a_drop() {
        let limits = Limits::new(10);
        let r = route("r");
        let now = Instant::now();
        let mut permits: Vec<_> = (0..3).map(|n| limits.admit(&r, ip(n), &route_cap(3), now).unwrap()).collect();
        assert_eq!(limits.admit(&r, ip(9), &route_cap(3), now).unwrap_err(), Refusal::RouteFull { limit: 3 });
        assert_eq!(open_on_route(&limits, "r"), 3);
        permits.pop();
        assert_eq!(open_on_route(&limits, "r"), 2);
        permits.push(limits.admit(&r, ip(9), &route_cap(3), now).unwrap());
        // Another route has its own count.
        assert!(limits.admit(&route("other"), ip(9), &route_cap(3), now).is_ok());
        drop(permits);
        assert!(lock(&limits.state).routes.is_empty(), "zero counters are removed");
        // A route cap alone keeps no per-client state.
        assert_eq!(limits.tracked_clients(), 0);
    }

    #[test]
    fn zero_caps_refuse_everything_and_create_nothing() {
        let limits = Limits::new(10);
        let r = route("r");
        let now = Instant::now();
        assert_eq!(limits.admit(&r, ip(1), &route_cap(0), now).unwrap_err(), Refusal::RouteFull { limit: 0 });
        assert_eq!(limits.admit(&r, ip(1), &client_cap(0), now).unwrap_err(), Refusal::ClientFull { limit: 0 });
        assert_eq!(limits.tracked_clients(), 0);
    }

    #[test]
    fn client_cap_refuses_one_client_while_another_is_admitted() {
        let limits = Limits::new(10);
        let r = route("r");
        let now = Instant::now();
        let a1 = limits.admit(&r, ip(1), &client_cap(2), now).unwrap();
        let _a2 = limits.admit(&r, ip(1), &client_cap(2), now).unwrap();
        assert_eq!(limits.admit(&r, ip(1), &client_cap(2), now).unwrap_err(), Refusal::ClientFull { limit: 2 });
        let _b1 = limits.admit(&r, ip(2), &client_cap(2), now).unwrap();
        // The same client on another route is another entry.
        let _other = limits.admit(&route("other"), ip(1), &client_cap(2), now).unwrap();
        drop(a1);
        assert!(limits.admit(&r, ip(1), &client_cap(2), now).is_ok());
    }

    #[test]
    fn rate_admits_the_burst_then_refuses_until_a_token_refills() {
        let limits = Limits::new(10);
        let r = route("r");
        let t0 = Instant::now();
        for _ in 0..3 {
            drop(limits.admit(&r, ip(1), &rate(1, 3), t0).unwrap());
        }
        let refusal = limits.admit(&r, ip(1), &rate(1, 3), t0).unwrap_err();
        assert_eq!(refusal, Refusal::RateLimited { retry_after: Duration::from_secs(1) });
        // Another client has its own bucket.
        assert!(limits.admit(&r, ip(2), &rate(1, 3), t0).is_ok());
        let t1 = t0 + Duration::from_secs(1);
        assert!(limits.admit(&r, ip(1), &rate(1, 3), t1).is_ok());
        assert!(limits.admit(&r, ip(1), &rate(1, 3), t1).is_err());
        // A long pause refills the bucket to its burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            drop(limits.admit(&r, ip(1), &rate(1, 3), t2).unwrap());
        }
        assert!(limits.admit(&r, ip(1), &rate(1, 3), t2).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let limits = Limits::new(10);
        let r = route("r");
        let t0 = Instant::now();
        // 100 ms into a 1 s wait: told 1 s.
        drop(limits.admit(&r, ip(1), &rate(1, 1), t0).unwrap());
        let later = t0 + Duration::from_millis(100);
        assert_eq!(
            limits.admit(&r, ip(1), &rate(1, 1), later).unwrap_err(),
            Refusal::RateLimited { retry_after: Duration::from_secs(1) }
        );
        // 2/s: the next token is 500 ms away, told as 1 s.
        for _ in 0..2 {
            drop(limits.admit(&r, ip(2), &rate(2, 2), t0).unwrap());
        }
        assert_eq!(
            limits.admit(&r, ip(2), &rate(2, 2), t0).unwrap_err(),
            Refusal::RateLimited { retry_after: Duration::from_secs(1) }
        );
        assert!(limits.admit(&r, ip(2), &rate(2, 2), t0 + Duration::from_millis(500)).is_ok());
        assert_eq!(whole_seconds(Duration::from_millis(1500)), Duration::from_secs(2));
        assert_eq!(whole_seconds(Duration::from_secs(3)), Duration::from_secs(3));
        assert_eq!(whole_seconds(Duration::ZERO), Duration::from_secs(1));
    }

    #[test]
    fn a_burst_below_the_rate_is_taken_as_the_rate() {
        let limits = Limits::new(10);
        let r = route("r");
        let t0 = Instant::now();
        for _ in 0..5 {
            drop(limits.admit(&r, ip(1), &rate(5, 0), t0).unwrap());
        }
        assert!(limits.admit(&r, ip(1), &rate(5, 0), t0).is_err());
    }

    #[test]
    fn refusals_consume_nothing() {
        let limits = Limits::new(10);
        let r = route("r");
        let t0 = Instant::now();
        let all = RouteLimits {
            max_connections: Some(2),
            max_connections_per_client: Some(1),
            handshakes_per_client: Some(Rate { per_second: 1, burst: 2 }),
        };
        let held = limits.admit(&r, ip(1), &all, t0).unwrap();
        // Client cap refusals: no token taken.
        for _ in 0..5 {
            assert_eq!(limits.admit(&r, ip(1), &all, t0).unwrap_err(), Refusal::ClientFull { limit: 1 });
        }
        assert_eq!(open_of_client(&limits, &r, ip(1)), 1);
        drop(held);
        // The second token of the burst is still there.
        let held = limits.admit(&r, ip(1), &all, t0).unwrap();
        drop(held);
        assert!(matches!(limits.admit(&r, ip(1), &all, t0), Err(Refusal::RateLimited { .. })));
        // Route cap refusals: no token, no client entry.
        let _b = limits.admit(&r, ip(2), &all, t0).unwrap();
        let _c = limits.admit(&r, ip(3), &all, t0).unwrap();
        let tracked = limits.tracked_clients();
        for _ in 0..5 {
            assert_eq!(limits.admit(&r, ip(4), &all, t0).unwrap_err(), Refusal::RouteFull { limit: 2 });
        }
        assert_eq!(limits.tracked_clients(), tracked);
        assert_eq!(open_on_route(&limits, "r"), 2);
        // A rate refusal takes no slot.
        assert_eq!(open_of_client(&limits, &r, ip(1)), 0);
    }

    #[test]
    fn idle_entries_are_bounded() {
        let limits = Limits::new(100);
        let r = route("r");
        let t0 = Instant::now();
        let both = RouteLimits { max_connections_per_client: Some(1), ..rate(1, 1) };
        for n in 0..1_000 {
            drop(limits.admit(&r, ip(n), &both, t0).unwrap());
            assert!(limits.tracked_clients() <= 100);
        }
        assert_eq!(limits.tracked_clients(), 100);
        let state = lock(&limits.state);
        assert_eq!(state.idle.len(), 100);
        // The most recent clients are the ones kept.
        assert!(state.clients.contains_key(&(Arc::clone(&r), ip(999))));
        assert!(!state.clients.contains_key(&(Arc::clone(&r), ip(0))));
    }

    #[test]
    fn the_least_recently_used_idle_entry_goes_first() {
        let limits = Limits::new(2);
        let r = route("r");
        let t0 = Instant::now();
        drop(limits.admit(&r, ip(1), &rate(1, 1), t0).unwrap());
        drop(limits.admit(&r, ip(2), &rate(1, 1), t0).unwrap());
        // Client 1 is used again (refused, still a use): client 2 is now the oldest.
        assert!(limits.admit(&r, ip(1), &rate(1, 1), t0).is_err());
        drop(limits.admit(&r, ip(3), &rate(1, 1), t0).unwrap());
        assert!(limits.admit(&r, ip(1), &rate(1, 1), t0).is_err(), "client 1 kept its empty bucket");
        assert!(limits.admit(&r, ip(2), &rate(1, 1), t0).is_ok(), "client 2 was forgotten");
    }

    #[test]
    fn busy_entries_are_never_evicted_and_a_full_table_falls_back_to_the_route_cap() {
        let limits = Limits::new(100);
        let r = route("r");
        let t0 = Instant::now();
        let caps =
            RouteLimits { max_connections: Some(150), max_connections_per_client: Some(1), ..RouteLimits::default() };
        let held: Vec<_> = (0..100).map(|n| limits.admit(&r, ip(n), &caps, t0).unwrap()).collect();
        assert_eq!(limits.tracked_clients(), 100);
        // Every busy client is still capped.
        for n in 0..100 {
            assert_eq!(limits.admit(&r, ip(n), &caps, t0).unwrap_err(), Refusal::ClientFull { limit: 1 });
        }
        // New clients are admitted without state, under the route cap only.
        let untracked: Vec<_> = (0..50).map(|_| limits.admit(&r, ip(500), &caps, t0).unwrap()).collect();
        assert_eq!(limits.tracked_clients(), 100);
        assert_eq!(limits.admit(&r, ip(501), &caps, t0).unwrap_err(), Refusal::RouteFull { limit: 150 });
        drop(untracked);
        assert_eq!(open_on_route(&limits, "r"), 100);
        // Once a busy client closes, its idle entry makes room and new clients are tracked again.
        drop(held.into_iter().next());
        let _new = limits.admit(&r, ip(600), &caps, t0).unwrap();
        assert_eq!(open_of_client(&limits, &r, ip(600)), 1);
        assert_eq!(limits.admit(&r, ip(600), &caps, t0).unwrap_err(), Refusal::ClientFull { limit: 1 });
        assert_eq!(limits.tracked_clients(), 100);
    }

    #[test]
    fn a_permit_releases_exactly_once_on_another_thread() {
        let limits = Limits::new(10);
        let r = route("r");
        let caps =
            RouteLimits { max_connections: Some(5), max_connections_per_client: Some(5), ..RouteLimits::default() };
        let a = limits.admit(&r, ip(1), &caps, Instant::now()).unwrap();
        let b = limits.admit(&r, ip(1), &caps, Instant::now()).unwrap();
        std::thread::spawn(move || drop(a)).join().unwrap();
        assert_eq!(open_on_route(&limits, "r"), 1);
        assert_eq!(open_of_client(&limits, &r, ip(1)), 1);
        drop(b);
        assert_eq!(open_on_route(&limits, "r"), 0);
        assert_eq!(open_of_client(&limits, &r, ip(1)), 0);
    }

    #[test]
    fn concurrent_admits_and_drops_end_at_zero() {
        let limits = Arc::new(Limits::new(50));
        let r = route("r");
        let caps = RouteLimits {
            max_connections: Some(1_000),
            max_connections_per_client: Some(1_000),
            handshakes_per_client: Some(Rate { per_second: 1_000_000, burst: 1_000_000 }),
        };
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (limits, r) = (Arc::clone(&limits), Arc::clone(&r));
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for n in 0..1_000u32 {
                        let permit = limits.admit(&r, ip(t * 1_000 + n % 80), &caps, Instant::now());
                        held.push(permit.expect("well under every limit"));
                        if held.len() > 8 {
                            drop(held.remove(0));
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let state = lock(&limits.state);
        assert!(state.routes.is_empty());
        assert!(state.clients.values().all(|c| c.open == 0));
        assert_eq!(state.idle.len(), state.clients.len());
        assert!(state.clients.len() <= 50);
    }
}
