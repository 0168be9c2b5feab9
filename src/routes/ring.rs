//! A consistent-hash ring with bounded loads, for the `ConsistentHash` load-balancing policy.
//!
//! ```text
//!   key ──► first point clockwise ──► owner ── over the load bound? ──► next distinct endpoint …
//!            (VNODES points per endpoint, placed by hash64 of "addr#vnode")
//! ```
//!
//! Why a ring: when an endpoint comes or goes, only the keys it owned move (about 1/n of them), so
//! long-lived sessions elsewhere keep their backend. Why a load bound: a few hot keys would otherwise
//! pile onto one endpoint; capping each endpoint at (1 + ε) times the mean load and walking on to the
//! next endpoint keeps the spread even while most keys still land on their owner.
//!
//! Everything here is a pure function of the endpoint *addresses* (never of pointers, slice order or a
//! per-process random seed), so every wsgate replica builds the same ring and sends a key to the same
//! endpoint.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// Points per endpoint. Why 160: the share each endpoint owns varies by roughly 1/√VNODES (about 8 %
/// of its fair share here), while the ring stays small (160 × 16 bytes per endpoint) and is built once
/// per route table, not per request.
pub const VNODES: usize = 160;

/// A 64-bit hash that never changes: FNV-1a followed by the murmur3 `fmix64` finalizer.
///
/// Why not `std::hash`: its output may differ between processes and Rust versions, and replicas must
/// agree. Why the finalizer: FNV-1a's low bits mix poorly, and callers reduce keys with `key % total`.
pub fn hash64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let fnv = bytes.iter().fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    fmix64(fnv)
}

/// murmur3's finalizer: every input bit affects every output bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The ring over one backend's endpoints. Indices it returns are positions in the slice given to
/// [`Ring::new`], so callers can look the endpoint up in their own list.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Ring {
    /// (point, endpoint index), sorted by point.
    points: Vec<(u64, u32)>,
    /// Length of the slice given to `new`: the size of `pick`'s "already offered" table.
    slots: usize,
    /// Distinct addresses on the ring: when `pick` has offered this many, it has seen them all.
    distinct: usize,
}

/// Sizes only: the points themselves (160 per endpoint) would drown any assertion message.
impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("endpoints", &self.distinct).field("points", &self.points.len()).finish()
    }
}

impl Ring {
    /// Builds the ring. An address listed twice is one endpoint (the first index is returned for it),
    /// so a duplicate cannot double an endpoint's share. Slices longer than `u32::MAX` are cut there.
    pub fn new(endpoints: &[SocketAddr]) -> Ring {
        // Why sort by address: the points, and which endpoint wins a (rare) point collision, must not
        // depend on the order the endpoints were listed in.
        let limit = endpoints.len().min(u32::MAX as usize);
        let mut by_addr: Vec<(SocketAddr, u32)> =
            endpoints[..limit].iter().zip(0u32..).map(|(addr, index)| (*addr, index)).collect();
        by_addr.sort_unstable();
        by_addr.dedup_by_key(|(addr, _)| *addr);

        let mut ranked: Vec<(u64, u32)> = Vec::with_capacity(by_addr.len() * VNODES);
        let mut text = String::with_capacity(64);
        for ((addr, _), rank) in by_addr.iter().zip(0u32..) {
            for vnode in 0..VNODES {
                text.clear();
                // Writing to a String cannot fail.
                let _ = write!(text, "{addr}#{vnode}");
                ranked.push((hash64(text.as_bytes()), rank));
            }
        }
        // Ranks follow address order, so equal points are ordered by address.
        ranked.sort_unstable();
        let points = ranked.into_iter().map(|(point, rank)| (point, by_addr[rank as usize].1)).collect();
        Ring { points, slots: limit, distinct: by_addr.len() }
    }

    /// True when the ring has no endpoints: `owner` and `pick` then return `None`.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The endpoint that owns `key`: the one with the first point at or after it, wrapping around.
    pub fn owner(&self, key: u64) -> Option<usize> {
        self.points.get(self.start(key)).map(|&(_, index)| index as usize)
    }

    /// The first endpoint clockwise from `key` that `usable` accepts. Each distinct endpoint is offered
    /// once, in ring order starting with the owner; after all have been refused, `None`.
    pub fn pick(&self, key: u64, mut usable: impl FnMut(usize) -> bool) -> Option<usize> {
        let start = self.start(key);
        let (before, after) = self.points.split_at(start);
        // Why lazily: the owner is usually accepted, and then nothing needs allocating.
        let mut offered: Vec<bool> = Vec::new();
        let mut refused = 0;
        for &(_, index) in after.iter().chain(before) {
            let index = index as usize;
            if offered.get(index).copied().unwrap_or(false) {
                continue;
            }
            if usable(index) {
                return Some(index);
            }
            if offered.is_empty() {
                offered.resize(self.slots, false);
            }
            offered[index] = true;
            refused += 1;
            if refused == self.distinct {
                break;
            }
        }
        None
    }

    /// Position of the first point at or after `key`, wrapping to 0 past the last one.
    fn start(&self, key: u64) -> usize {
        let at = self.points.partition_point(|&(point, _)| point < key);
        if at == self.points.len() { 0 } else { at }
    }
}

/// The most connections an endpoint may already hold and still get one more: `⌈(1 + ε)·(active + 1) /
/// endpoints⌉` with ε = `epsilon_percent` / 100, and at least 1.
///
/// Why `active + 1`: the bound is for the placement being made, so that the total load after it fits
/// under `endpoints × bound` and some endpoint is always below the bound. Computed in `u128` so no input
/// overflows; `endpoints == 0` gives 1.
pub fn load_bound(active: usize, endpoints: usize, epsilon_percent: u32) -> usize {
    if endpoints == 0 {
        return 1;
    }
    let numerator = (100 + u128::from(epsilon_percent)) * (active as u128 + 1);
    let denominator = 100 * endpoints as u128;
    usize::try_from(numerator.div_ceil(denominator)).unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Vec<SocketAddr> {
        (0..n).map(|i| SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 8080))).collect()
    }

    fn key(i: usize) -> u64 {
        hash64(format!("session-{i}").as_bytes())
    }

    #[test]
    fn hash64_values_are_pinned() {
        // Changing these breaks agreement between replicas running different wsgate versions.
        assert_eq!(hash64(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(hash64(b"a"), 0x82a2_a958_a9be_ce5b);
        assert_eq!(hash64(b"10.0.0.1:8080#17"), 0xaad3_c5cb_0714_bb04);
        assert_eq!(hash64(&[10, 1, 2, 3]), 0xb8b3_87fa_0a1c_d4e9);
    }

    #[test]
    fn hash64_low_bits_are_balanced() {
        let mut buckets = [0usize; 7];
        for i in 0..7_000 {
            buckets[(hash64(format!("client-{i}").as_bytes()) % 7) as usize] += 1;
        }
        for (bucket, &count) in buckets.iter().enumerate() {
            assert!((800..=1_200).contains(&count), "bucket {bucket} got {count} of 7000: {buckets:?}");
        }
    }

    #[test]
    fn each_endpoint_owns_a_fair_share() {
        let ring = Ring::new(&endpoints(10));
        let mut owned = [0usize; 10];
        for i in 0..10_000 {
            owned[ring.owner(key(i)).unwrap()] += 1;
        }
        for (index, &count) in owned.iter().enumerate() {
            assert!((700..=1_300).contains(&count), "endpoint {index} owns {count} of 10000: {owned:?}");
        }
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_keys() {
        let before = endpoints(10);
        let after: Vec<SocketAddr> = before.iter().copied().filter(|a| *a != before[3]).collect();
        let (old, new) = (Ring::new(&before), Ring::new(&after));
        let mut moved = 0;
        for i in 0..10_000 {
            let was = before[old.owner(key(i)).unwrap()];
            let is = after[new.owner(key(i)).unwrap()];
            if was == before[3] {
                moved += 1;
            } else {
                assert_eq!(is, was, "key {i} moved although its owner stayed");
            }
        }
        assert!((600..=1_400).contains(&moved), "{moved} of 10000 keys moved");
    }

    #[test]
    fn ring_does_not_depend_on_slice_order() {
        let listed = endpoints(10);
        let mut shuffled = listed.clone();
        shuffled.reverse();
        shuffled.swap(0, 4);
        let (a, b) = (Ring::new(&listed), Ring::new(&shuffled));
        for i in 0..2_000 {
            assert_eq!(listed[a.owner(key(i)).unwrap()], shuffled[b.owner(key(i)).unwrap()]);
            let (mut order_a, mut order_b) = (Vec::new(), Vec::new());
            a.pick(key(i), |e| {
                order_a.push(listed[e]);
                false
            });
            b.pick(key(i), |e| {
                order_b.push(shuffled[e]);
                false
            });
            assert_eq!(order_a, order_b);
        }
    }

    #[test]
    fn same_addresses_build_equal_rings() {
        assert_eq!(Ring::new(&endpoints(5)), Ring::new(&endpoints(5)));
        assert_ne!(Ring::new(&endpoints(5)), Ring::new(&endpoints(6)));
    }

    #[test]
    fn empty_ring_has_no_owner_and_offers_nothing() {
        let ring = Ring::new(&[]);
        assert!(ring.is_empty() && Ring::default().is_empty());
        assert_eq!(ring.owner(42), None);
        let mut offers = 0;
        assert_eq!(
            ring.pick(42, |_| {
                offers += 1;
                true
            }),
            None
        );
        assert_eq!(offers, 0);
    }

    #[test]
    fn one_endpoint_owns_every_key() {
        let ring = Ring::new(&endpoints(1));
        assert!(!ring.is_empty());
        assert!((0..1_000).all(|i| ring.owner(key(i)) == Some(0)));
        assert_eq!(ring.owner(0), Some(0));
        assert_eq!(ring.owner(u64::MAX), Some(0));
    }

    #[test]
    fn keys_past_the_last_point_wrap_to_the_first() {
        let ring = Ring::new(&endpoints(10));
        assert_eq!(ring.owner(u64::MAX), ring.owner(0));
    }

    #[test]
    fn pick_offers_each_endpoint_once_starting_with_the_owner() {
        let ring = Ring::new(&endpoints(10));
        for i in 0..200 {
            let mut offered = Vec::new();
            let picked = ring.pick(key(i), |e| {
                offered.push(e);
                false
            });
            assert_eq!(picked, None);
            assert_eq!(offered.first().copied(), ring.owner(key(i)));
            let mut sorted = offered.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn pick_returns_the_first_accepted_endpoint() {
        let ring = Ring::new(&endpoints(10));
        let owner = ring.owner(key(7)).unwrap();
        assert_eq!(ring.pick(key(7), |_| true), Some(owner));
        let mut offered = Vec::new();
        let picked = ring.pick(key(7), |e| {
            offered.push(e);
            offered.len() == 3
        });
        assert_eq!(picked, Some(offered[2]));
        assert_ne!(picked, Some(owner));
    }

    #[test]
    fn duplicate_addresses_are_one_endpoint() {
        let mut listed = endpoints(3);
        listed.push(listed[1]);
        let ring = Ring::new(&listed);
        let plain = Ring::new(&endpoints(3));
        assert!((0..1_000).all(|i| ring.owner(key(i)) == plain.owner(key(i))));
        let mut offered = Vec::new();
        ring.pick(key(1), |e| {
            offered.push(e);
            false
        });
        offered.sort_unstable();
        assert_eq!(offered, vec![0, 1, 2]);
    }

    #[test]
    fn ipv6_endpoints_work() {
        let listed: Vec<SocketAddr> =
            ["[2001:db8::1]:80", "[2001:db8::2]:80", "10.0.0.1:80"].iter().map(|s| s.parse().unwrap()).collect();
        let ring = Ring::new(&listed);
        let mut owned = [0usize; 3];
        for i in 0..3_000 {
            owned[ring.owner(key(i)).unwrap()] += 1;
        }
        assert!(owned.iter().all(|&n| n > 600), "{owned:?}");
    }

    #[test]
    fn load_bound_rounds_up_and_never_overflows() {
        assert_eq!(load_bound(0, 10, 25), 1);
        assert_eq!(load_bound(99, 10, 25), 13); // 1.25 × 100 / 10 = 12.5
        assert_eq!(load_bound(79, 10, 25), 10); // exactly 10
        assert_eq!(load_bound(9, 10, 0), 1);
        assert_eq!(load_bound(10, 10, 0), 2);
        assert_eq!(load_bound(5, 0, 25), 1);
        assert_eq!(load_bound(usize::MAX, 1, u32::MAX), usize::MAX);
        assert_eq!(load_bound(usize::MAX, usize::MAX, 0), 2);
    }

    #[test]
    fn bounded_load_spreads_a_hot_key() {
        const N: usize = 10;
        let listed = endpoints(N);
        let ring = Ring::new(&listed);
        let hot = key(424_242);
        let hot_owner = ring.owner(hot).unwrap();
        let mut active = [0usize; N];
        let mut hot_on_owner = 0;
        for placed in 0..5_000 {
            let k = if placed % 2 == 0 { hot } else { key(placed) };
            let bound = load_bound(placed, N, 25);
            let owner_under_bound = active[hot_owner] < bound;
            let picked = ring.pick(k, |e| active[e] < bound).expect("some endpoint is always under the bound");
            if k == hot && owner_under_bound {
                assert_eq!(picked, hot_owner, "hot key left its owner while under the bound");
                hot_on_owner += 1;
            }
            active[picked] += 1;
        }
        let max = *active.iter().max().unwrap();
        let mean = 5_000.0 / N as f64;
        assert!(max as f64 <= (1.25 * mean).ceil() + 1.0, "max {max} with mean {mean}: {active:?}");
        assert!(hot_on_owner > 0);
        assert_eq!(active.iter().sum::<usize>(), 5_000);
    }
}
