//! Status written back to the API: WebSocketRoute conditions, Ingress load-balancer addresses, and an
//! Event per new configuration error. Only the Lease holder writes; no-ops are skipped.
//!
//! ```text
//!   (Snapshot, Desired) ──► for each object: merge desired with current ──┬─ equal → skip
//!         (latest wins)        (lastTransitionTime kept unless status flips)  └─ differs → merge patch /status
//! ```
//!
//! Our own patch comes back as a watch event and triggers a rebuild; that rebuild finds the status equal
//! and writes nothing, so there is no write loop. A write whose echo has not reached the store yet is
//! remembered, so it is not sent twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use super::Snapshot;
use super::lease::Leadership;
use crate::crd::WebSocketRoute;
use crate::metrics::Metrics;

/// `namespace`, `name`.
pub type ObjectKey = (String, String);

/// One condition as compile wants it; times and generations are filled in here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredCondition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// A configuration error to record as an Event on its object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectError {
    pub kind: &'static str,
    pub key: ObjectKey,
    pub reason: String,
    pub message: String,
}

/// What status should say, from one compile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub routes: BTreeMap<ObjectKey, Vec<DesiredCondition>>,
    /// Ingresses of our class: their `.status.loadBalancer` gets the published addresses.
    pub ingresses: Vec<ObjectKey>,
    pub errors: Vec<ObjectError>,
}

/// Where Ingress status addresses come from.
#[derive(Debug, Clone, Default)]
pub enum PublishTarget {
    /// Ingress status is left alone.
    #[default]
    None,
    /// Copy the load-balancer addresses of this Service (`namespace`, `name`).
    Service(ObjectKey),
    /// Fixed IPs or hostnames.
    Addresses(Vec<String>),
}

/// Handle to the status task: send it each compile's result.
#[derive(Clone)]
pub struct StatusWriter {
    tx: watch::Sender<Option<Arc<(Snapshot, Desired)>>>,
}

impl StatusWriter {
    /// Starts the writer task. `instance` names this replica in the Events it records (the API requires
    /// `reportingInstance`).
    pub fn spawn(
        client: Client,
        leadership: Leadership,
        publish: PublishTarget,
        metrics: Arc<Metrics>,
        instance: String,
    ) -> StatusWriter {
        let (tx, rx) = watch::channel(None);
        let reporter = Reporter { controller: super::compile::CONTROLLER_NAME.into(), instance: Some(instance) };
        let recorder = Recorder::new(client.clone(), reporter);
        let task = Task { client, publish, metrics, recorder, written: HashMap::new(), events: HashMap::new() };
        tokio::spawn(task.run(rx, leadership));
        StatusWriter { tx }
    }

    /// Replaces what the writer works towards; an older pending update is dropped.
    pub fn update(&self, snapshot: Snapshot, desired: Desired) {
        self.tx.send_replace(Some(Arc::new((snapshot, desired))));
    }
}

/// Events for the same object and message are not repeated more often than this.
const EVENT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

struct Task {
    client: Client,
    publish: PublishTarget,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    /// Per object: the resourceVersion seen when we wrote, and the status we wrote.
    written: HashMap<(&'static str, ObjectKey), (Option<String>, serde_json::Value)>,
    events: HashMap<ObjectError, tokio::time::Instant>,
}

impl Task {
    async fn run(mut self, mut rx: watch::Receiver<Option<Arc<(Snapshot, Desired)>>>, mut leadership: Leadership) {
        loop {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = leadership.changed() => {
                    // A new leader must not trust what an earlier term wrote.
                    self.written.clear();
                }
            }
            if !leadership.is_leader() {
                continue;
            }
            let Some(current) = rx.borrow_and_update().clone() else { continue };
            let (snapshot, desired) = &*current;
            self.write_routes(snapshot, desired, &leadership).await;
            self.write_ingresses(snapshot, desired, &leadership).await;
            self.record_events(desired, &leadership).await;
        }
    }

    async fn write_routes(&mut self, snapshot: &Snapshot, desired: &Desired, leadership: &Leadership) {
        let now = Time(Timestamp::now());
        for route in &snapshot.websocket_routes {
            let key = (route.namespace().unwrap_or_default(), route.name_any());
            let Some(wanted) = desired.routes.get(&key) else { continue };
            let current = route.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
            let conditions = merge_conditions(current, wanted, route.meta().generation, &now);
            if conditions == current {
                continue;
            }
            let body = json!({ "status": { "conditions": conditions } });
            if !leadership.is_leader() {
                return;
            }
            let api: Api<WebSocketRoute> = Api::namespaced(self.client.clone(), &key.0);
            self.patch("WebSocketRoute", key, route.resource_version(), body, |name, patch| {
                let api = api.clone();
                async move { api.patch_status(&name, &PatchParams::default(), &patch).await.map(|_| ()) }
            })
            .await;
        }
    }

    async fn write_ingresses(&mut self, snapshot: &Snapshot, desired: &Desired, leadership: &Leadership) {
        let addresses = match &self.publish {
            PublishTarget::None => return,
            PublishTarget::Addresses(list) => list
                .iter()
                .map(|a| {
                    if a.parse::<std::net::IpAddr>().is_ok() {
                        IngressLoadBalancerIngress { ip: Some(a.clone()), ..Default::default() }
                    } else {
                        IngressLoadBalancerIngress { hostname: Some(a.clone()), ..Default::default() }
                    }
                })
                .collect::<Vec<_>>(),
            PublishTarget::Service((ns, name)) => {
                let found = snapshot
                    .services
                    .iter()
                    .find(|s| s.namespace().as_deref() == Some(ns.as_str()) && s.name_any() == *name)
                    .cloned();
                let service = match found {
                    Some(s) => Some(s),
                    None => Api::namespaced(self.client.clone(), ns).get_opt(name).await.ok().flatten(),
                };
                let lb = service.and_then(|s| s.status).and_then(|s| s.load_balancer).and_then(|lb| lb.ingress);
                lb.unwrap_or_default()
                    .into_iter()
                    .map(|i| IngressLoadBalancerIngress { ip: i.ip, hostname: i.hostname, ..Default::default() })
                    .collect()
            }
        };
        let wanted = serde_json::to_value(&addresses).expect("addresses serialize");
        for ingress in &snapshot.ingresses {
            let key = (ingress.namespace().unwrap_or_default(), ingress.name_any());
            if !desired.ingresses.contains(&key) {
                continue;
            }
            let current = ingress
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .map(|i| serde_json::to_value(i).expect("addresses serialize"))
                .unwrap_or_else(|| json!([]));
            if current == wanted {
                continue;
            }
            if !leadership.is_leader() {
                return;
            }
            let body = json!({ "status": { "loadBalancer": { "ingress": wanted } } });
            let api: Api<Ingress> = Api::namespaced(self.client.clone(), &key.0);
            self.patch("Ingress", key, ingress.resource_version(), body, |name, patch| {
                let api = api.clone();
                async move { api.patch_status(&name, &PatchParams::default(), &patch).await.map(|_| ()) }
            })
            .await;
        }
    }

    /// Sends one merge patch unless the same body was already written against the same resourceVersion.
    async fn patch<F, Fut>(
        &mut self,
        kind: &'static str,
        key: ObjectKey,
        seen_version: Option<String>,
        body: serde_json::Value,
        send: F,
    ) where
        F: FnOnce(String, Patch<serde_json::Value>) -> Fut,
        Fut: std::future::Future<Output = Result<(), kube::Error>>,
    {
        let entry = (kind, key);
        if let Some((version, written)) = self.written.get(&entry)
            && *version == seen_version
            && *written == body
        {
            return;
        }
        let name = entry.1.1.clone();
        match send(name, Patch::Merge(body.clone())).await {
            Ok(()) => {
                self.metrics.status_writes_total.with_label_values(&[kind, "written"]).inc();
                tracing::debug!(kind, namespace = %entry.1.0, name = %entry.1.1, "status written");
                self.written.insert(entry, (seen_version, body));
            }
            Err(error) => {
                self.metrics.status_writes_total.with_label_values(&[kind, "failed"]).inc();
                tracing::warn!(kind, namespace = %entry.1.0, name = %entry.1.1, %error, "status write failed");
            }
        }
    }

    async fn record_events(&mut self, desired: &Desired, leadership: &Leadership) {
        let now = tokio::time::Instant::now();
        self.events.retain(|_, at| now.duration_since(*at) < EVENT_INTERVAL);
        for error in &desired.errors {
            if self.events.contains_key(error) || !leadership.is_leader() {
                continue;
            }
            let (api_version, kind) = match error.kind {
                "WebSocketRoute" => (WebSocketRoute::api_version(&()).to_string(), "WebSocketRoute"),
                "Ingress" => (Ingress::api_version(&()).to_string(), "Ingress"),
                _ => continue,
            };
            let reference = ObjectReference {
                api_version: Some(api_version),
                kind: Some(kind.to_string()),
                namespace: Some(error.key.0.clone()),
                name: Some(error.key.1.clone()),
                ..Default::default()
            };
            let event = Event {
                type_: EventType::Warning,
                reason: error.reason.clone(),
                note: Some(error.message.chars().take(1024).collect()),
                action: "Compile".into(),
                secondary: None,
            };
            match self.recorder.publish(&event, &reference).await {
                Ok(()) => {
                    self.events.insert(error.clone(), now);
                }
                Err(e) => tracing::warn!(error = %e, "cannot record event"),
            }
        }
    }
}

/// The conditions to store: `wanted` in order, keeping `lastTransitionTime` from `current` where the
/// status did not change, and conditions of other types that compile does not own.
pub fn merge_conditions(
    current: &[Condition],
    wanted: &[DesiredCondition],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = wanted
        .iter()
        .map(|w| {
            let status = if w.status { "True" } else { "False" };
            let previous = current.iter().find(|c| c.type_ == w.type_);
            let last_transition_time = match previous {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: w.type_.to_string(),
                status: status.to_string(),
                reason: w.reason.clone(),
                message: w.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect();
    out.extend(current.iter().filter(|c| !wanted.iter().any(|w| w.type_ == c.type_)).cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(type_: &'static str, status: bool, reason: &str) -> DesiredCondition {
        DesiredCondition { type_, status, reason: reason.into(), message: format!("{type_} {reason}") }
    }

    #[test]
    fn transition_time_changes_only_when_status_flips() {
        let t0 = Time("2026-01-01T00:00:00Z".parse().expect("valid time"));
        let t1 = Time("2026-01-02T00:00:00Z".parse().expect("valid time"));
        let first = merge_conditions(&[], &[cond("Accepted", true, "Accepted")], Some(1), &t0);
        assert_eq!(first[0].last_transition_time, t0);
        assert_eq!(first[0].observed_generation, Some(1));

        // Same status, new message and generation: time kept.
        let mut again = cond("Accepted", true, "Accepted");
        again.message = "still fine".into();
        let second = merge_conditions(&first, &[again], Some(2), &t1);
        assert_eq!(second[0].last_transition_time, t0);
        assert_eq!(second[0].message, "still fine");
        assert_eq!(second[0].observed_generation, Some(2));

        // Status flips: time moves.
        let third = merge_conditions(&second, &[cond("Accepted", false, "Invalid")], Some(2), &t1);
        assert_eq!(third[0].last_transition_time, t1);
        assert_eq!(third[0].status, "False");
    }

    #[test]
    fn unchanged_input_gives_identical_conditions() {
        let t0 = Time("2026-01-01T00:00:00Z".parse().expect("valid time"));
        let t1 = Time("2026-01-02T00:00:00Z".parse().expect("valid time"));
        let wanted = [cond("Accepted", true, "Accepted"), cond("ResolvedRefs", false, "BackendNotFound")];
        let first = merge_conditions(&[], &wanted, Some(3), &t0);
        assert_eq!(merge_conditions(&first, &wanted, Some(3), &t1), first);
    }
}
