//! The open frame-layer WebSockets, by route and endpoint, so something outside a session can ask it to
//! close: shutdown (every session) and, from the route table, drain and rebalance.
//!
//! ```text
//!   session starts on the frame layer ─► register(route, endpoint) ─► Registration (held by the task)
//!   shutdown ─► fire_all(Shutdown) ─► each relay sends its Closes on its next wake-up
//!   task ends ─► Registration dropped ─► entry removed
//! ```
//!
//! One mutex over a map: a session touches it twice (start, end), the controllers of shutdown, drain
//! and rebalance once per pass; the relays never do while relaying.
//!
//! The drain and rebalance controller ([`Controller`], a task per proxy) looks at the route table and
//! the sessions every [`TICK`]:
//!
//! ```text
//!   route with drain Close: a session whose endpoint is neither ready nor merely unready (terminating,
//!     or gone from its EndpointSlice) ─► EndpointDrain after the route's grace period (Close 1001)
//!   route with rebalance: a backend gained endpoints ─► an episode, until every endpoint holds at most
//!     floor(fair × (1 + tolerance)) (fair = the sessions the backend held when the episode began ÷
//!     its endpoints, since closed clients come back): closes from the most loaded
//!     endpoints, never below that bound (so never below the fair share), at most maxClosesPerSecond
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use super::framed::{CloseRequest, Signal};
use crate::routes::{Route, RouteTable, SharedTable};

/// How often the controller looks at the table and the sessions.
pub const TICK: Duration = Duration::from_millis(100);
/// Longest a rebalance episode runs.
const EPISODE: Duration = Duration::from_secs(600);

/// Every open frame-layer session.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
}

/// One open session.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    pub route: Arc<str>,
    pub endpoint: SocketAddr,
    pub signal: Arc<Signal>,
}

/// A session's place in [`Sessions`]; removed when dropped.
#[derive(Debug)]
pub struct Registration {
    sessions: Arc<Sessions>,
    id: u64,
    signal: Arc<Signal>,
}

impl Registration {
    pub fn signal(&self) -> Arc<Signal> {
        Arc::clone(&self.signal)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.id);
    }
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(self: &Arc<Self>, route: &Arc<str>, endpoint: SocketAddr) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let signal = Arc::new(Signal::default());
        let entry = Entry { id, route: Arc::clone(route), endpoint, signal: Arc::clone(&signal) };
        self.lock().insert(id, entry);
        Registration { sessions: Arc::clone(self), id, signal }
    }

    /// Asks every open session to close; returns how many were asked.
    pub fn fire_all(&self, why: CloseRequest) -> usize {
        let signals: Vec<Arc<Signal>> = self.lock().values().map(|e| Arc::clone(&e.signal)).collect();
        signals.iter().filter(|s| s.fire(why)).count()
    }

    /// A copy of the open sessions (for drain and rebalance passes).
    pub fn snapshot(&self) -> Vec<Entry> {
        self.lock().values().cloned().collect()
    }
}

/// A rebalance in progress for one backend of one route.
#[derive(Debug)]
struct Episode {
    until: Instant,
    /// Closes that may be made now (a token bucket filled at maxClosesPerSecond, at most one second's).
    budget: f64,
    closes: u64,
    /// Sessions the backend held when the episode began: the fair share is computed from it. Why not
    /// the current count: a closed client is briefly counted nowhere (gone, not yet back) or twice
    /// (still closing, already back), so a share from it would close too many or too few. Clients that
    /// arrive during the episode go to the least loaded (new) endpoints anyway.
    population: usize,
}

/// The drain and rebalance controller of one proxy (see the module docs).
#[derive(Debug, Default)]
pub struct Controller {
    /// Sessions whose endpoint left, and when they get their Close.
    draining: HashMap<u64, (Instant, Arc<Signal>)>,
    /// Each (route, backend)'s endpoints at the previous tick.
    known: HashMap<(Arc<str>, usize), HashSet<SocketAddr>>,
    episodes: HashMap<(Arc<str>, usize), Episode>,
}

impl Controller {
    /// Runs until the proxy is gone (`sessions` can no longer be upgraded).
    pub async fn run(sessions: Weak<Sessions>, table: SharedTable) {
        let mut controller = Controller::default();
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(sessions) = sessions.upgrade() else { return };
            let table = table.load_full();
            controller.tick(&sessions, &table, Instant::now());
        }
    }

    /// One pass; `now` from the caller, so tests can drive it.
    pub fn tick(&mut self, sessions: &Sessions, table: &RouteTable, now: Instant) {
        let routes: HashMap<&str, &Arc<Route>> = table
            .routes()
            .filter(|r| r.policy.frames.drain.is_some() || r.policy.frames.rebalance.is_some())
            .map(|r| (&*r.id, r))
            .collect();
        if routes.is_empty() && self.draining.is_empty() {
            self.known.clear();
            self.episodes.clear();
            return;
        }
        let open = sessions.snapshot();
        let mut by_route: HashMap<&str, Vec<&Entry>> = HashMap::new();
        for entry in &open {
            by_route.entry(&*entry.route).or_default().push(entry);
        }
        for (id, route) in &routes {
            let entries = by_route.get(id).map(Vec::as_slice).unwrap_or_default();
            if let Some(drain) = route.policy.frames.drain {
                let kept: HashSet<SocketAddr> =
                    route.backends.iter().flat_map(|b| b.endpoints.iter().chain(&b.unready)).map(|e| e.addr).collect();
                for entry in entries.iter().filter(|e| !kept.contains(&e.endpoint)) {
                    self.draining.entry(entry.id).or_insert_with(|| {
                        info!(route = %entry.route, endpoint = %entry.endpoint, grace_seconds = drain.grace.as_secs_f64(),
                            "endpoint terminating or gone: its WebSocket will be closed with 1001");
                        (now + drain.grace, Arc::clone(&entry.signal))
                    });
                }
            }
            if let Some(rebalance) = route.policy.frames.rebalance {
                for (index, backend) in route.backends.iter().enumerate() {
                    let key = (Arc::clone(&route.id), index);
                    let current: HashSet<SocketAddr> = backend.endpoints.iter().map(|e| e.addr).collect();
                    let previous = self.known.insert(key.clone(), current.clone());
                    let grew = previous.is_some_and(|p| current.iter().any(|a| !p.contains(a)));
                    if grew {
                        info!(route = %route.id, backend = %backend.name, endpoints = current.len(), "endpoints added: rebalancing");
                        self.episodes.insert(
                            key.clone(),
                            Episode { until: now + EPISODE, budget: 0.0, closes: 0, population: 0 },
                        );
                    }
                    let Some(episode) = self.episodes.get_mut(&key) else { continue };
                    let rate = f64::from(rebalance.max_closes_per_second);
                    episode.budget = (episode.budget + rate * TICK.as_secs_f64()).min(rate.max(1.0));
                    let done = rebalance_pass(entries, &current, rebalance.tolerance_percent, episode);
                    if done || now >= episode.until {
                        info!(route = %route.id, backend = %backend.name, closes = episode.closes, "rebalance done");
                        self.episodes.remove(&key);
                    }
                }
            }
        }
        self.known.retain(|(id, _), _| routes.contains_key(&**id));
        self.episodes.retain(|(id, _), _| routes.contains_key(&**id));
        let open_ids: HashSet<u64> = open.iter().map(|e| e.id).collect();
        self.draining.retain(|id, (due, signal)| {
            if !open_ids.contains(id) {
                return false;
            }
            if now >= *due {
                signal.fire(CloseRequest::EndpointDrain);
                return false;
            }
            true
        });
    }
}

/// Closes what one rebalance tick may on the sessions of one backend (`entries`: the route's); returns
/// whether the backend is balanced within `tolerance_percent`.
fn rebalance_pass(
    entries: &[&Entry],
    endpoints: &HashSet<SocketAddr>,
    tolerance_percent: u32,
    episode: &mut Episode,
) -> bool {
    if endpoints.is_empty() {
        return true;
    }
    let mut total = 0usize;
    let mut open: BTreeMap<SocketAddr, Vec<&Entry>> = endpoints.iter().map(|a| (*a, Vec::new())).collect();
    for entry in entries {
        if let Some(list) = open.get_mut(&entry.endpoint) {
            total += 1;
            if !entry.signal.fired() {
                list.push(entry);
            }
        }
    }
    if episode.population == 0 {
        episode.population = total;
    }
    let fair = episode.population as f64 / endpoints.len() as f64;
    let bound = ((fair * (1.0 + f64::from(tolerance_percent) / 100.0)).floor() as usize).max(fair.ceil() as usize);
    let mut over: Vec<(usize, SocketAddr)> =
        open.iter().filter(|(_, list)| list.len() > bound).map(|(addr, list)| (list.len() - bound, *addr)).collect();
    if over.is_empty() {
        return true;
    }
    over.sort_by(|a, b| b.cmp(a));
    for (excess, addr) in over {
        for entry in open[&addr].iter().take(excess) {
            if episode.budget < 1.0 {
                return false;
            }
            if entry.signal.fire(CloseRequest::Rebalance) {
                episode.budget -= 1.0;
                episode.closes += 1;
            }
        }
    }
    false
}
