//! The in-memory object store: one table of JSON objects per storage key, a global
//! resourceVersion counter, and a bounded history of change events per table for watches.
//!
//! ```text
//!   write ──► State (under one Mutex) ──► rv += 1, object stored, Event appended to its table
//!                                    └──► changes (tokio watch of the rv) wakes every watcher
//!   watch ──► events_since(key, rv) ──► Ok(events) | Err(oldest) → 410 Expired
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::apply::FieldPath;
use crate::catalog::{Catalog, StorageKey};
use crate::meta;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One change, as a watch replays it.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub rv: u64,
    /// The object after the change (for a delete: the last state, carrying the delete's rv).
    pub object: Arc<Value>,
    /// The object before the change (absent for an add).
    pub prev: Option<Arc<Value>>,
}

/// `(namespace, name)`; the namespace is "" for cluster-scoped objects.
pub type ObjectKey = (String, String);

#[derive(Debug, Default)]
struct Table {
    objects: BTreeMap<ObjectKey, Arc<Value>>,
    history: VecDeque<Event>,
    /// Events with an rv at or below this were dropped from `history`.
    compacted_through: u64,
}

/// Everything the server knows, guarded by one lock.
#[derive(Debug)]
pub struct State {
    /// The last resourceVersion handed out.
    pub rv: u64,
    /// The served types (built-ins plus CRD-declared ones).
    pub catalog: Catalog,
    window: usize,
    tables: HashMap<StorageKey, Table>,
    next_cluster_ip: u32,
    next_node_port: u32,
    /// Server-side apply: uid → (field manager, status subresource?) → fields it applied last.
    owners: HashMap<String, HashMap<(String, bool), Vec<FieldPath>>>,
}

/// Why a watch cannot resume: the oldest rv it could have resumed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub oldest: u64,
}

impl State {
    fn new(window: usize) -> Self {
        State {
            rv: 0,
            catalog: Catalog::default(),
            window,
            tables: HashMap::new(),
            next_cluster_ip: 1,
            next_node_port: 0,
            owners: HashMap::new(),
        }
    }

    /// One stored object.
    pub fn get(&self, key: &StorageKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.tables.get(key)?.objects.get(&(ns.to_string(), name.to_string())).cloned()
    }

    /// Objects of a table in `(namespace, name)` order, optionally one namespace only.
    pub fn list(&self, key: &StorageKey, ns: Option<&str>) -> Vec<Arc<Value>> {
        let Some(t) = self.tables.get(key) else { return Vec::new() };
        match ns {
            Some(ns) => t
                .objects
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            None => t.objects.values().cloned().collect(),
        }
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, key: &StorageKey, event: Event) {
        let window = self.window;
        let table = self.tables.entry(key.clone()).or_default();
        table.history.push_back(event);
        while table.history.len() > window {
            if let Some(old) = table.history.pop_front() {
                table.compacted_through = old.rv;
            }
        }
    }

    /// Stores a new object, stamping the next resourceVersion; records ADDED.
    pub fn insert(&mut self, key: &StorageKey, mut obj: Value) -> Arc<Value> {
        let rv = self.bump();
        meta::meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let k = (meta::meta_str(&obj, "namespace").to_string(), meta::meta_str(&obj, "name").to_string());
        let obj = Arc::new(obj);
        self.tables.entry(key.clone()).or_default().objects.insert(k, obj.clone());
        self.record(key, Event { kind: EventKind::Added, rv, object: obj.clone(), prev: None });
        obj
    }

    /// Replaces an existing object, stamping the next resourceVersion; records MODIFIED.
    pub fn replace(&mut self, key: &StorageKey, mut obj: Value) -> Arc<Value> {
        let rv = self.bump();
        meta::meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let k = (meta::meta_str(&obj, "namespace").to_string(), meta::meta_str(&obj, "name").to_string());
        let obj = Arc::new(obj);
        let prev = self.tables.entry(key.clone()).or_default().objects.insert(k, obj.clone());
        self.record(key, Event { kind: EventKind::Modified, rv, object: obj.clone(), prev });
        obj
    }

    /// Removes an object; records DELETED (the event's object carries the delete's rv).
    pub fn remove(&mut self, key: &StorageKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        let prev = self.tables.get_mut(key)?.objects.remove(&(ns.to_string(), name.to_string()))?;
        self.owners.remove(meta::meta_str(&prev, "uid"));
        let rv = self.bump();
        let mut last = (*prev).clone();
        meta::meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
        self.record(key, Event { kind: EventKind::Deleted, rv, object: Arc::new(last), prev: Some(prev.clone()) });
        Some(prev)
    }

    /// Events of a table after `since`, or `Expired` when some were already dropped.
    pub fn events_since(&self, key: &StorageKey, since: u64) -> Result<Vec<Event>, Expired> {
        let Some(t) = self.tables.get(key) else { return Ok(Vec::new()) };
        if since < t.compacted_through {
            let oldest = t.history.front().map_or(self.rv, |e| e.rv);
            return Err(Expired { oldest });
        }
        let start = t.history.partition_point(|e| e.rv <= since);
        Ok(t.history.iter().skip(start).cloned().collect())
    }

    /// Whether a watch or list continuation from `since` can still be served for this table.
    pub fn expired(&self, key: &StorageKey, since: u64) -> Option<Expired> {
        self.events_since(key, since).err()
    }

    /// The fields `manager` applied last to the object with `uid` (server-side apply).
    pub fn owned(&self, uid: &str, manager: &str, status: bool) -> Vec<FieldPath> {
        self.owners.get(uid).and_then(|m| m.get(&(manager.to_string(), status))).cloned().unwrap_or_default()
    }

    /// Records the fields `manager` just applied to the object with `uid`.
    pub fn set_owned(&mut self, uid: &str, manager: &str, status: bool, fields: Vec<FieldPath>) {
        self.owners.entry(uid.to_string()).or_default().insert((manager.to_string(), status), fields);
    }

    /// Drops every retained event, so watches from any earlier rv get 410 Gone.
    pub fn compact(&mut self) {
        let rv = self.rv;
        for t in self.tables.values_mut() {
            t.history.clear();
            t.compacted_through = rv;
        }
    }

    /// Sets how many events each table keeps (older ones are dropped on the next write).
    pub fn set_window(&mut self, window: usize) {
        self.window = window.max(1);
    }

    /// The storage keys that hold objects in namespace `ns`.
    pub fn keys_with_namespace(&self, ns: &str) -> Vec<StorageKey> {
        self.tables.iter().filter(|(_, t)| t.objects.keys().any(|(n, _)| n == ns)).map(|(k, _)| k.clone()).collect()
    }

    /// The next ClusterIP from 10.96.0.0/12 (10.96.0.1 is left for `kubernetes`).
    pub fn allocate_cluster_ip(&mut self) -> String {
        self.next_cluster_ip += 1;
        let n = self.next_cluster_ip;
        format!("10.{}.{}.{}", 96 + ((n >> 16) & 0x0f), (n >> 8) & 0xff, n & 0xff)
    }

    /// The next NodePort from 30000-32767 (wrapping; uniqueness is not checked).
    pub fn allocate_node_port(&mut self) -> u32 {
        let p = 30000 + self.next_node_port % 2768;
        self.next_node_port += 1;
        p
    }
}

/// The shared store: state plus the change signal watchers wait on.
#[derive(Debug)]
pub struct Store {
    state: Mutex<State>,
    changes: watch::Sender<u64>,
}

impl Store {
    /// An empty store keeping `window` events per table.
    pub fn new(window: usize) -> Self {
        let (changes, _) = watch::channel(0);
        Store { state: Mutex::new(State::new(window.max(1))), changes }
    }

    /// Locks the state for reading.
    pub fn read(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs a write under the lock, then wakes watchers if anything changed.
    pub fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (out, rv) = {
            let mut st = self.read();
            let out = f(&mut st);
            (out, st.rv)
        };
        self.changes.send_if_modified(|cur| {
            if *cur == rv {
                false
            } else {
                *cur = rv;
                true
            }
        });
        out
    }

    /// A receiver that changes whenever the resourceVersion moves.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StorageKey {
        StorageKey { group: String::new(), resource: "configmaps".into() }
    }

    fn cm(ns: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}})
    }

    #[test]
    fn writes_stamp_increasing_versions_and_keep_history() {
        let store = Store::new(2);
        store.write(|st| {
            st.insert(&key(), cm("a", "x"));
            st.insert(&key(), cm("b", "y"));
            st.replace(&key(), cm("a", "x"));
        });
        let st = store.read();
        assert_eq!(st.rv, 3);
        assert_eq!(st.list(&key(), Some("a")).len(), 1);
        assert_eq!(st.get(&key(), "a", "x").expect("stored")["metadata"]["resourceVersion"], "3");
        let events = st.events_since(&key(), 1).expect("retained");
        assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), vec![EventKind::Added, EventKind::Modified]);
        assert_eq!(st.events_since(&key(), 0).expect_err("dropped"), Expired { oldest: 2 });
    }

    #[test]
    fn delete_events_carry_the_delete_version() {
        let store = Store::new(10);
        store.write(|st| {
            st.insert(&key(), cm("a", "x"));
            st.remove(&key(), "a", "x");
        });
        let st = store.read();
        let events = st.events_since(&key(), 1).expect("retained");
        assert_eq!(events[0].kind, EventKind::Deleted);
        assert_eq!(events[0].object["metadata"]["resourceVersion"], "2");
        assert_eq!(events[0].prev.as_ref().expect("prev")["metadata"]["resourceVersion"], "1");
        assert!(st.get(&key(), "a", "x").is_none());
    }

    #[test]
    fn compaction_expires_older_versions() {
        let store = Store::new(10);
        store.write(|st| {
            st.insert(&key(), cm("a", "x"));
            st.compact();
        });
        assert!(store.read().expired(&key(), 0).is_some());
        assert!(store.read().expired(&key(), 1).is_none());
    }
}
