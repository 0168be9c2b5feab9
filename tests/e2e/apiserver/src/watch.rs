//! Watch streams: chunked JSON lines (`{"type":"ADDED","object":{...}}`) fed from the store's
//! per-table event history, with the real watch cache's semantics for selectors (an object that
//! stops matching yields DELETED with its previous content), bookmarks, timeouts and 410 Expired.
//!
//! ```text
//!   start: rv ""/"0" → ADDED for every matching object, then changes after the current rv
//!          rv N      → changes after N (410 ERROR event if N fell out of the history window)
//!   loop:  events_since(last) → filter → send; wait for (change | bookmark tick | timeout | stop)
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::catalog::ResourceType;
use crate::meta;
use crate::registry::present;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Event, EventKind, Store};

/// What one watch request asked for.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `None`: start with the current state as ADDED events ("" and "0"); `Some(n)`: after n.
    pub start: Option<u64>,
    /// `sendInitialEvents=true`: mark the end of the initial events with a bookmark.
    pub initial_end_bookmark: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
    /// `Accept: …;as=PartialObjectMetadata`: events carry metadata only.
    pub metadata_only: bool,
}

impl WatchSpec {
    /// The object as this watcher receives it.
    fn show(&self, obj: &Value) -> Value {
        let full = present(obj, &self.rt);
        if self.metadata_only { crate::registry::partial_metadata(&full) } else { full }
    }

    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = self.namespace.as_deref().is_none_or(|ns| meta::meta_str(obj, "namespace") == ns);
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The event this watcher sees for a stored change, if any.
    fn convert(&self, e: &Event) -> Option<(&'static str, Value)> {
        let cur = e.kind != EventKind::Deleted && self.matches(&e.object);
        let old = e.prev.as_deref().is_some_and(|p| self.matches(p));
        match (cur, old) {
            (true, false) => Some(("ADDED", self.show(&e.object))),
            (true, true) => Some(("MODIFIED", self.show(&e.object))),
            (false, true) => {
                let mut gone = self.show(e.prev.as_deref().unwrap_or(&e.object));
                meta::meta_mut(&mut gone).insert("resourceVersion".into(), json!(e.rv.to_string()));
                Some(("DELETED", gone))
            }
            (false, false) => None,
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (kind, api_version) = if self.metadata_only {
            ("PartialObjectMetadata".to_string(), "meta.k8s.io/v1".to_string())
        } else {
            (self.rt.kind.clone(), self.rt.api_version())
        };
        json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": metadata}})
    }
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn event_line(kind: &str, object: Value) -> Bytes {
    line(&json!({"type": kind, "object": object}))
}

fn error_line(e: &ApiError) -> Bytes {
    event_line("ERROR", e.to_status())
}

/// The response body of a watch: a task streams lines into it until timeout, stop or hang-up.
pub fn serve(store: Arc<Store>, spec: WatchSpec, shutdown: watch::Receiver<bool>) -> UnsyncBoxBody<Bytes, Infallible> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(run(store, spec, tx, shutdown));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    StreamBody::new(stream).boxed_unsync()
}

async fn run(store: Arc<Store>, spec: WatchSpec, tx: mpsc::Sender<Bytes>, mut shutdown: watch::Receiver<bool>) {
    let key = spec.rt.storage_key();
    let mut changes = store.subscribe();
    changes.borrow_and_update();
    let start: Result<(u64, Vec<Value>), ApiError> = {
        let st = store.read();
        match spec.start {
            None => {
                let objs: Vec<Value> = st
                    .list(&key, spec.namespace.as_deref())
                    .iter()
                    .filter(|o| spec.matches(o))
                    .map(|o| spec.show(o))
                    .collect();
                Ok((st.rv, objs))
            }
            Some(n) => match st.expired(&key, n) {
                Some(exp) => Err(ApiError::expired(format!("too old resource version: {n} ({})", exp.oldest))),
                None if n > st.rv => Err(ApiError::too_large_resource_version(n, st.rv)),
                None => Ok((n, Vec::new())),
            },
        }
    };
    let (mut last, initial) = match start {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(error_line(&e)).await;
            return;
        }
    };
    for obj in initial {
        if tx.send(event_line("ADDED", obj)).await.is_err() {
            return;
        }
    }
    if spec.initial_end_bookmark && tx.send(line(&spec.bookmark(last, true))).await.is_err() {
        return;
    }
    let deadline = Instant::now() + spec.timeout;
    let mut tick = tokio::time::interval_at(Instant::now() + spec.bookmark_interval, spec.bookmark_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        changes.borrow_and_update();
        let (events, rv, served) = {
            let st = store.read();
            let served = st.catalog.lookup(&spec.rt.group, &spec.rt.version, &spec.rt.resource).is_some();
            (st.events_since(&key, last), st.rv, served)
        };
        match events {
            Err(exp) => {
                let e = ApiError::expired(format!("too old resource version: {last} ({})", exp.oldest));
                let _ = tx.send(error_line(&e)).await;
                return;
            }
            Ok(events) => {
                for e in &events {
                    if let Some((kind, obj)) = spec.convert(e)
                        && tx.send(event_line(kind, obj)).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
        last = rv;
        if !served {
            return;
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {
                if spec.bookmarks && tx.send(line(&spec.bookmark(last, false))).await.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                if spec.bookmarks {
                    let _ = tx.send(line(&spec.bookmark(last, false))).await;
                }
                return;
            }
            _ = shutdown.changed() => return,
            _ = tx.closed() => return,
        }
    }
}
