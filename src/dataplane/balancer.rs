//! Choosing an endpoint for a new connection: a backend by weight, then one of its endpoints.
//!
//! ```text
//!   Route ─► backends with weight > 0 and an untried endpoint (healthy ones first)
//!          ─► weighted choice ─► endpoint by policy:
//!                                  LeastConnections: fewest active, ties to the least recently picked
//!                                  RoundRobin:       least recently picked
//!          ─► Lease (counts as active until dropped)
//! ```
//!
//! Per-endpoint state (active count, consecutive connect failures, ejection deadline, last pick) is kept
//! here, keyed by address, so it survives route-table swaps; entries that no table references any more
//! are pruned lazily when a new table is seen. An endpoint whose connects fail [`EJECT_AFTER_FAILURES`]
//! times in a row is skipped for [`EJECTION`]; when every candidate is ejected one is tried anyway,
//! because a possibly-recovered backend beats a certain 503.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::routes::ring::load_bound;

/// The backend `point` (below the sum of the weights) falls on, the weights laid end to end in order.
pub(super) fn by_weight<'r>(
    mut backends: impl Iterator<Item = (usize, &'r Backend)>,
    mut point: u64,
) -> Option<(usize, &'r Backend)> {
    backends.find(|(_, b)| {
        let weight = u64::from(b.weight);
        if point < weight {
            true
        } else {
            point -= weight;
            false
        }
    })
}

/// Connections an endpoint may hold above the consistent-hash load bound before a key is diverted
/// from it. Why: at low load the bound is one or two connections, and a client that reconnects
/// while its previous connection is still being closed would otherwise be moved to another pod
/// (and replicas, each counting only its own connections, would disagree). A constant, so at load
/// the bound is still (1 + ε) times the mean.
pub const LOAD_BOUND_SLACK: usize = 2;
use crate::routes::{Backend, LoadBalancing, Route, RouteTable};

/// Consecutive failed connects after which an endpoint is ejected.
pub const EJECT_AFTER_FAILURES: u32 = 3;
/// How long an ejected endpoint is skipped.
pub const EJECTION: Duration = Duration::from_secs(10);
/// Pruning walks every endpoint of the table; do it at most this often even if tables change faster.
const PRUNE_INTERVAL: Duration = Duration::from_secs(1);

/// Shared endpoint state for every route. Cheap to call from many tasks: one short mutex section per pick.
#[derive(Debug, Default)]
pub struct Balancer {
    inner: Mutex<Inner>,
    /// Spreads weighted backend choices; only its value modulo the total weight matters.
    spin: AtomicU64,
    /// Identity (address) of the last table pruned against, checked without the lock.
    seen_table: AtomicUsize,
}

#[derive(Debug, Default)]
struct Inner {
    endpoints: HashMap<SocketAddr, EndpointState>,
    /// Increments on every pick; an endpoint's `last_pick` is this value at its latest pick.
    picks: u64,
    pruned_at: Option<Instant>,
}

#[derive(Debug)]
struct EndpointState {
    /// Active proxied connections (tunnels and in-flight requests); decremented by `Lease::drop`.
    active: Arc<AtomicUsize>,
    failures: u32,
    ejected_until: Option<Instant>,
    last_pick: u64,
}

impl EndpointState {
    fn new() -> EndpointState {
        EndpointState { active: Arc::new(AtomicUsize::new(0)), failures: 0, ejected_until: None, last_pick: 0 }
    }
}

/// One active use of an endpoint: keeps its connection count up until dropped.
#[derive(Debug)]
pub struct Lease {
    addr: SocketAddr,
    active: Arc<AtomicUsize>,
}

impl Lease {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Why an endpoint was picked: what the access log's `pick`, `candidates`, `ejected` and `attempt` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub addr: SocketAddr,
    /// The policy's name (`LoadBalancing::name`).
    pub policy: &'static str,
    /// Index of the chosen backend in the route's `backends`.
    pub backend: usize,
    /// Endpoints of the chosen backend.
    pub endpoints: u32,
    /// Of those, the ones the policy chose among (not ejected, not tried yet for this request).
    pub candidates: u32,
    /// Of those, the ones skipped (or, when all were, still tried) because they are ejected.
    pub ejected: u32,
    /// 1 for the first endpoint tried for a request, 2 after one connect failure, ...
    pub attempt: u32,
    /// With consistent hashing and a key: whether the key's own endpoint took it (`Some(true)`), or
    /// another one on the ring because the owner was over the load bound, tried or ejected
    /// (`Some(false)`). `None`: no key, the policy's fallback (least connections) chose.
    pub owner: Option<bool>,
    /// The hash of the key, when there was one (never the key itself).
    pub key: Option<u64>,
}

impl Pick {
    /// The policy's name, as the access log writes it.
    pub fn policy_name(&self) -> &'static str {
        self.policy
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Inner {
    fn is_ejected(&self, addr: &SocketAddr, now: Instant) -> bool {
        self.endpoints.get(addr).and_then(|e| e.ejected_until).is_some_and(|until| until > now)
    }

    /// Whether `addr` may be picked: not tried yet and, when `healthy_only`, not ejected.
    fn usable(&self, addr: &SocketAddr, tried: &[SocketAddr], healthy_only: bool, now: Instant) -> bool {
        let ejected = healthy_only && self.is_ejected(addr, now);
        !ejected && !tried.contains(addr)
    }

    /// Whether a backend can take the connection: a non-zero weight and a usable endpoint.
    fn offers(&self, backend: &Backend, tried: &[SocketAddr], healthy_only: bool, now: Instant) -> bool {
        backend.weight > 0 && backend.endpoints.iter().any(|e| self.usable(&e.addr, tried, healthy_only, now))
    }

    fn active(&self, addr: &SocketAddr) -> usize {
        self.endpoints.get(addr).map_or(0, |e| e.active.load(Ordering::Relaxed))
    }

    fn last_pick(&self, addr: &SocketAddr) -> u64 {
        self.endpoints.get(addr).map_or(0, |e| e.last_pick)
    }

    /// Drops state for endpoints `table` does not reference and nothing uses. Returns false when it did
    /// not run because the last prune was too recent.
    fn prune(&mut self, table: &RouteTable, now: Instant) -> bool {
        if self.pruned_at.is_some_and(|at| now.duration_since(at) < PRUNE_INTERVAL) {
            return false;
        }
        self.pruned_at = Some(now);
        let referenced: HashSet<SocketAddr> =
            table.routes().flat_map(|r| r.backends.iter()).flat_map(|b| b.endpoints.iter().map(|e| e.addr)).collect();
        self.endpoints.retain(|addr, state| referenced.contains(addr) || state.active.load(Ordering::Relaxed) > 0);
        true
    }
}

impl Balancer {
    pub fn new() -> Balancer {
        Balancer::default()
    }

    /// Lets the balancer forget endpoints the current table no longer has (rate-limited, cheap when the
    /// table is unchanged). Call with the table a request was routed with.
    pub fn observe(&self, table: &RouteTable) {
        // why an address: tables are immutable and swapped whole, so a new table is a new allocation.
        // A reused address only delays a prune until the next swap.
        let identity = std::ptr::from_ref(table) as usize;
        if self.seen_table.load(Ordering::Relaxed) == identity {
            return;
        }
        if self.lock().prune(table, Instant::now()) {
            self.seen_table.store(identity, Ordering::Relaxed);
        }
    }

    /// Picks an endpoint of `route` not in `tried`, or `None` when there is none left.
    #[cfg(test)]
    pub fn pick(&self, route: &Route, tried: &[SocketAddr]) -> Option<Lease> {
        self.pick_explained(route, tried, None).map(|(lease, _)| lease)
    }

    /// Picks an endpoint of `route` not in `tried` (`None` when there is none left), and says why this
    /// one (for the access log). `key` is the affinity key's hash on a consistent-hash route: it picks
    /// the backend (by weight) and, on the backend's ring, the first endpoint under the load bound.
    pub fn pick_explained(&self, route: &Route, tried: &[SocketAddr], key: Option<u64>) -> Option<(Lease, Pick)> {
        let now = Instant::now();
        let mut inner = self.lock();
        // why two passes: ejected endpoints are a last resort, tried only when nothing healthy is left.
        let healthy_only = route.backends.iter().any(|b| inner.offers(b, tried, true, now));
        let offering = || route.backends.iter().enumerate().filter(|(_, b)| inner.offers(b, tried, healthy_only, now));

        let total: u64 = offering().map(|(_, b)| u64::from(b.weight)).sum();
        if total == 0 {
            return None;
        }
        // why the key picks the backend too: the same key must stay on the same backend (and so the
        // same endpoint) for as long as the weights stay.
        let point = match key {
            Some(key) => key % total,
            None => self.spin.fetch_add(1, Ordering::Relaxed) % total,
        };
        let (index, backend) = by_weight(offering(), point)?;

        // why one loop rather than `min_by_key` over a filter: it also counts what the access log says.
        let mut best: Option<(SocketAddr, (usize, u64))> = None;
        let (mut candidates, mut ejected) = (0u32, 0u32);
        for addr in backend.endpoints.iter().map(|e| e.addr) {
            if tried.contains(&addr) {
                continue;
            }
            if inner.is_ejected(&addr, now) {
                ejected += 1;
                if healthy_only {
                    continue;
                }
            }
            candidates += 1;
            let key = match route.policy.load_balancing {
                LoadBalancing::LeastConnections => (inner.active(&addr), inner.last_pick(&addr)),
                LoadBalancing::RoundRobin => (0, inner.last_pick(&addr)),
                LoadBalancing::ConsistentHash(_) => (inner.active(&addr), inner.last_pick(&addr)),
            };
            if best.is_none_or(|(_, best)| key < best) {
                best = Some((addr, key));
            }
        }
        let (mut addr, _) = best?;
        let mut owner = None;
        if let (Some(key), LoadBalancing::ConsistentHash(hash), Some(ring)) =
            (key, &route.policy.load_balancing, &backend.ring)
        {
            let endpoints = &backend.endpoints;
            let open: usize = endpoints.iter().map(|e| inner.active(&e.addr)).sum();
            let bound = load_bound(open, endpoints.len(), hash.load_bound_percent) + LOAD_BOUND_SLACK;
            let usable = |i: usize| {
                let addr = endpoints[i].addr;
                let skipped = tried.contains(&addr) || (healthy_only && inner.is_ejected(&addr, now));
                !skipped && inner.active(&addr) < bound
            };
            // Nothing under the bound (every endpoint tried or ejected): least connections decided above.
            if let Some(i) = ring.pick(key, usable) {
                owner = Some(ring.owner(key) == Some(i));
                addr = endpoints[i].addr;
            }
        }

        inner.picks += 1;
        let pick = inner.picks;
        let state = inner.endpoints.entry(addr).or_insert_with(EndpointState::new);
        state.last_pick = pick;
        state.active.fetch_add(1, Ordering::Relaxed);
        let why = Pick {
            addr,
            policy: route.policy.load_balancing.name(),
            backend: index,
            endpoints: u32::try_from(backend.endpoints.len()).unwrap_or(u32::MAX),
            candidates,
            ejected,
            attempt: u32::try_from(tried.len() + 1).unwrap_or(u32::MAX),
            owner,
            key: owner.and(key),
        };
        Some((Lease { addr, active: state.active.clone() }, why))
    }

    /// Records a successful connect: the endpoint's failure streak ends.
    pub fn connected(&self, addr: SocketAddr) {
        if let Some(state) = self.lock().endpoints.get_mut(&addr) {
            state.failures = 0;
            state.ejected_until = None;
        }
    }

    /// Records a failed connect; returns true when this failure ejected the endpoint.
    pub fn connect_failed(&self, addr: SocketAddr) -> bool {
        let mut inner = self.lock();
        let state = inner.endpoints.entry(addr).or_insert_with(EndpointState::new);
        state.failures += 1;
        if state.failures >= EJECT_AFTER_FAILURES {
            state.failures = 0;
            state.ejected_until = Some(Instant::now() + EJECTION);
            return true;
        }
        false
    }

    /// Active connections of an endpoint.
    #[cfg(test)]
    pub fn active(&self, addr: SocketAddr) -> usize {
        self.lock().active(&addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // why ignore poisoning: the state is counters; a panic elsewhere leaves them usable.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Endpoint, HostMatch, PathMatch, Policy, Source, SourceKind};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn route(backends: &[(u32, &[u16])], lb: LoadBalancing) -> Route {
        Route {
            id: "ns/r".into(),
            source: Source { kind: SourceKind::WebSocketRoute, namespace: "ns".into(), name: "r".into() },
            host: HostMatch::Any,
            path: PathMatch::prefix("/"),
            conditions: Default::default(),
            backends: backends
                .iter()
                .enumerate()
                .map(|(i, (weight, ports))| Backend {
                    name: format!("b{i}"),
                    weight: *weight,
                    endpoints: ports.iter().map(|p| Endpoint { addr: addr(*p) }).collect(),
                    ..Backend::default()
                })
                .collect(),
            policy: Policy { load_balancing: lb, ..Policy::default() },
        }
    }

    #[test]
    fn round_robin_alternates() {
        let balancer = Balancer::new();
        let route = route(&[(1, &[1, 2, 3])], LoadBalancing::RoundRobin);
        let picked: Vec<u16> = (0..6).map(|_| balancer.pick(&route, &[]).unwrap().addr().port()).collect();
        assert_eq!(picked, [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn least_connections_prefers_idle_endpoints() {
        let balancer = Balancer::new();
        let route = route(&[(1, &[1, 2])], LoadBalancing::LeastConnections);
        let held: Vec<Lease> = (0..4).map(|_| balancer.pick(&route, &[]).unwrap()).collect();
        assert_eq!(balancer.active(addr(1)), 2);
        assert_eq!(balancer.active(addr(2)), 2);
        // Free both leases on endpoint 1: the next two picks go there.
        let (one, two): (Vec<_>, Vec<_>) = held.into_iter().partition(|l| l.addr().port() == 1);
        drop(one);
        let next: Vec<u16> = (0..2).map(|_| balancer.pick(&route, &[]).unwrap().addr().port()).collect();
        assert_eq!(next, [1, 1]);
        drop(two);
    }

    #[test]
    fn weight_zero_and_empty_backends_are_never_chosen() {
        let balancer = Balancer::new();
        let route = route(&[(0, &[1]), (5, &[]), (1, &[3])], LoadBalancing::RoundRobin);
        for _ in 0..10 {
            assert_eq!(balancer.pick(&route, &[]).unwrap().addr().port(), 3);
        }
        assert!(balancer.pick(&route, &[addr(3)]).is_none());
    }

    #[test]
    fn weights_split_picks() {
        let balancer = Balancer::new();
        let route = route(&[(3, &[1]), (1, &[2])], LoadBalancing::RoundRobin);
        let ones = (0..400).filter(|_| balancer.pick(&route, &[]).unwrap().addr().port() == 1).count();
        assert_eq!(ones, 300);
    }

    #[test]
    fn ejects_after_repeated_failures_but_never_empties() {
        let balancer = Balancer::new();
        let route = route(&[(1, &[1, 2])], LoadBalancing::RoundRobin);
        balancer.pick(&route, &[]);
        assert!(!balancer.connect_failed(addr(1)));
        assert!(!balancer.connect_failed(addr(1)));
        assert!(balancer.connect_failed(addr(1)));
        for _ in 0..5 {
            assert_eq!(balancer.pick(&route, &[]).unwrap().addr().port(), 2);
        }
        // Everything ejected: still an answer.
        for _ in 0..3 {
            balancer.connect_failed(addr(2));
        }
        assert!(balancer.pick(&route, &[]).is_some());
        // Tried endpoints are skipped even when ejected ones are the fallback.
        assert_eq!(balancer.pick(&route, &[addr(1)]).unwrap().addr().port(), 2);
        balancer.connected(addr(1));
        assert_eq!(balancer.pick(&route, &[addr(2)]).unwrap().addr().port(), 1);
    }

    #[test]
    fn picks_say_why() {
        let balancer = Balancer::new();
        let route = route(&[(0, &[9]), (1, &[1, 2, 3])], LoadBalancing::LeastConnections);
        for _ in 0..3 {
            balancer.connect_failed(addr(1));
        }
        let (lease, pick) = balancer.pick_explained(&route, &[addr(2)], None).unwrap();
        assert_eq!(lease.addr(), addr(3));
        assert_eq!((pick.addr, pick.backend, pick.endpoints, pick.candidates), (addr(3), 1, 3, 1));
        assert_eq!((pick.ejected, pick.attempt, pick.policy_name()), (1, 2, "least_connections"));
        // Only the ejected one is left: tried anyway, and said so.
        let (lease, pick) = balancer.pick_explained(&route, &[addr(2), addr(3)], None).unwrap();
        assert_eq!(lease.addr(), addr(1));
        assert_eq!((pick.candidates, pick.ejected, pick.attempt), (1, 1, 3));
    }

    #[test]
    fn state_survives_swaps_and_prunes_unreferenced() {
        let balancer = Balancer::new();
        let r = route(&[(1, &[1, 2])], LoadBalancing::LeastConnections);
        let lease = balancer.pick(&r, &[]).unwrap();
        let first = RouteTable::new(vec![r.clone()], None);
        balancer.observe(&first);
        assert_eq!(balancer.active(lease.addr()), 1);
        // A table without endpoint 1 and 2: the in-use one survives pruning, the idle one goes.
        let empty = RouteTable::new(vec![], None);
        balancer.lock().pruned_at = None;
        balancer.observe(&empty);
        assert_eq!(balancer.lock().endpoints.len(), 1);
        drop(lease);
        balancer.lock().pruned_at = None;
        balancer.seen_table.store(0, Ordering::Relaxed);
        balancer.observe(&empty);
        assert!(balancer.lock().endpoints.is_empty());
    }
}
