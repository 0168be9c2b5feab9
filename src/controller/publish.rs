//! Publishing: compare a freshly compiled table with the served one and swap it in whole.
//!
//! ```text
//!   compile ─► RouteTable ─► Publisher::publish ─┬─ equal to served?  → count "unchanged", keep serving
//!                                                └─ different         → generation+1, ArcSwap::store
//! ```
//!
//! One store replaces the whole table, so a request sees either the old table or the new one, never a
//! mix; established connections hold no reference to the table and are not touched.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::admin::Readiness;
use crate::metrics::Metrics;
use crate::routes::{RouteTable, SharedTable};

/// What `publish` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The table differed and is now served under this generation.
    Swapped(u64),
    /// The table equals the one being served; nothing changed.
    Unchanged(u64),
}

/// The single writer of the shared table.
pub struct Publisher {
    table: SharedTable,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    generation: u64,
}

impl Publisher {
    pub fn new(table: SharedTable, metrics: Arc<Metrics>, readiness: Readiness) -> Publisher {
        let generation = table.load().generation;
        Publisher { table, metrics, readiness, generation }
    }

    /// Swaps `table` in unless it equals the served one. Marks wsgate ready on the first call.
    pub fn publish(&mut self, mut table: RouteTable) -> Published {
        let served = self.table.load();
        table.generation = served.generation;
        let outcome = if self.generation > 0 && *served.as_ref() == table {
            self.metrics.config_reloads_total.with_label_values(&["unchanged"]).inc();
            Published::Unchanged(self.generation)
        } else {
            self.generation += 1;
            table.generation = self.generation;
            let routes = table.routes().count();
            self.record_ready_endpoints(&table);
            self.record_certificates(&table);
            self.table.store(Arc::new(table));
            self.metrics.route_table_generation.set(self.generation as i64);
            self.metrics.route_table_routes.set(routes as i64);
            self.metrics.config_reloads_total.with_label_values(&["published"]).inc();
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
            self.metrics.config_last_reload_timestamp_seconds.set(now);
            tracing::info!(generation = self.generation, routes, "route table published");
            Published::Swapped(self.generation)
        };
        self.readiness.set_ready();
        outcome
    }

    /// `wsgate_route_ready_endpoints`: per route id, the fewest ready endpoints among its host/path
    /// entries, so one empty rule of an Ingress shows even when its other rules are served.
    fn record_ready_endpoints(&self, table: &RouteTable) {
        let mut fewest: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for route in table.routes() {
            let ready = route.backends.iter().filter(|b| b.weight > 0).map(|b| b.endpoints.len()).sum();
            fewest.entry(&route.id).and_modify(|n| *n = (*n).min(ready)).or_insert(ready);
        }
        // Routes that left the table leave the metric too.
        self.metrics.route_ready_endpoints.reset();
        for (route, ready) in fewest {
            self.metrics.route_ready_endpoints.with_label_values(&[route]).set(ready as i64);
        }
    }

    /// `wsgate_tls_certificate_expiry_timestamp_seconds`: one series per served Secret; Secrets no longer
    /// served leave the metric.
    fn record_certificates(&self, table: &RouteTable) {
        let expiry = &self.metrics.tls_certificate_expiry_timestamp_seconds;
        expiry.reset();
        for (secret, not_after) in table.tls().expiries() {
            expiry.with_label_values(&[secret]).set(not_after);
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Records a build that could not produce a table; the served table stays.
    pub fn reject(&self, errors: usize) {
        self.metrics.config_reloads_total.with_label_values(&["failed"]).inc();
        self.record_errors(errors);
    }

    /// Records the errors one build found: counted, and the gauge set to the current number.
    pub fn record_errors(&self, errors: usize) {
        self.metrics.config_errors_total.inc_by(errors as u64);
        self.metrics.config_errors.set(errors as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{HostMatch, PathMatch, Policy, Route, Source, SourceKind};

    fn table(path: &str) -> RouteTable {
        let route = Route {
            id: "default/a".into(),
            source: Source { kind: SourceKind::WebSocketRoute, namespace: "default".into(), name: "a".into() },
            host: HostMatch::Any,
            path: PathMatch::prefix(path),
            conditions: Default::default(),
            backends: vec![],
            policy: Policy::default(),
        };
        RouteTable::new(vec![route], None)
    }

    #[test]
    fn publishes_changes_and_skips_equal_tables() {
        let shared: SharedTable = Default::default();
        let metrics = Arc::new(Metrics::new());
        let readiness = Readiness::default();
        let mut publisher = Publisher::new(shared.clone(), metrics.clone(), readiness.clone());
        assert!(!readiness.is_ready());

        assert_eq!(publisher.publish(table("/a")), Published::Swapped(1));
        assert!(readiness.is_ready());
        assert_eq!(publisher.publish(table("/a")), Published::Unchanged(1));
        assert_eq!(publisher.publish(table("/b")), Published::Swapped(2));

        let served = shared.load();
        assert_eq!(served.generation, 2);
        assert!(served.lookup("any", "/b/x").is_some());
        assert!(served.lookup("any", "/a").is_none());
        let text = metrics.render();
        assert!(text.contains("wsgate_route_table_generation 2"), "{text}");
        assert!(text.contains("wsgate_route_ready_endpoints{route=\"default/a\"} 0"), "{text}");
        assert!(text.contains("wsgate_config_reloads_total{outcome=\"unchanged\"} 1"), "{text}");
    }

    #[test]
    fn an_empty_first_table_still_counts_as_published() {
        let shared: SharedTable = Default::default();
        let mut publisher = Publisher::new(shared.clone(), Arc::new(Metrics::new()), Readiness::default());
        assert_eq!(publisher.publish(RouteTable::default()), Published::Swapped(1));
        assert_eq!(publisher.publish(RouteTable::default()), Published::Unchanged(1));
    }
}
