//! Kubernetes source: one kube-runtime reflector per kind, each feeding a cheap read-only store.
//!
//! ```text
//!   watcher(Ingress) ─────────┐
//!   watcher(IngressClass) ────┤   trim managedFields,      stores ──► snapshot() ──► compile
//!   watcher(WebSocketRoute) ──┼─► backoff on errors,  ──►
//!   watcher(Service) ─────────┤   count errors            └─► `changed` (Notify) ──► debounced rebuild
//!   watcher(EndpointSlice) ───┤   (labelled kubernetes.io/service-name only)
//!   watcher(Secret) ──────────┘   (field selector type=kubernetes.io/tls only)
//! ```
//!
//! Secrets are listed with a field selector on their type, so wsgate never receives, let alone caches,
//! Secrets other than TLS certificates: less memory, and nothing it has no use for.
//!
//! Watchers reconnect with the watcher's default backoff; while the API server is away the stores keep
//! their last state, so the served table stays as it was. Deletes are not durable signals: the stores,
//! not the events, are the truth compile reads.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::Snapshot;
use crate::crd::WebSocketRoute;
use crate::metrics::Metrics;

/// The label EndpointSlices carry to name their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The only Secrets the source lists: `type=kubernetes.io/tls`.
pub const TLS_SECRET_SELECTOR: &str = "type=kubernetes.io/tls";

/// Read handles on every store, and the watcher tasks that fill them.
pub struct KubeSources {
    ingresses: Store<Ingress>,
    ingress_classes: Store<IngressClass>,
    websocket_routes: Store<WebSocketRoute>,
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
    /// True while listing WebSocketRoutes answers 404 (the CRD is not installed) or 403 (no RBAC).
    routes_absent: tokio::sync::watch::Receiver<bool>,
    /// True while listing TLS Secrets answers 403 (RBAC without secrets, e.g. from an older chart).
    secrets_denied: tokio::sync::watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl KubeSources {
    /// Starts one watcher per kind. `namespace` restricts the namespaced kinds to one namespace.
    /// `changed` is notified after every applied event.
    pub fn start(client: &Client, namespace: Option<&str>, metrics: Arc<Metrics>, changed: Arc<Notify>) -> KubeSources {
        fn namespaced<K>(client: &Client, namespace: Option<&str>) -> Api<K>
        where
            K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
            K::DynamicType: Default,
        {
            match namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            }
        }
        let mut tasks = Vec::new();
        let none = tokio::sync::watch::channel(false).0;
        let (absent_tx, routes_absent) = tokio::sync::watch::channel(false);
        let (ingresses, task) =
            reflect(namespaced(client, namespace), watcher::Config::default(), &metrics, &changed, &none);
        tasks.push(task);
        let (ingress_classes, task) =
            reflect(Api::all(client.clone()), watcher::Config::default(), &metrics, &changed, &none);
        tasks.push(task);
        let (websocket_routes, task) =
            reflect(namespaced(client, namespace), watcher::Config::default(), &metrics, &changed, &absent_tx);
        tasks.push(task);
        let (services, task) =
            reflect(namespaced(client, namespace), watcher::Config::default(), &metrics, &changed, &none);
        tasks.push(task);
        let slices = watcher::Config::default().labels(SERVICE_NAME_LABEL);
        let (endpoint_slices, task) = reflect(namespaced(client, namespace), slices, &metrics, &changed, &none);
        tasks.push(task);
        let (denied_tx, secrets_denied) = tokio::sync::watch::channel(false);
        let tls = watcher::Config::default().fields(TLS_SECRET_SELECTOR);
        let (secrets, task) = reflect(namespaced(client, namespace), tls, &metrics, &changed, &denied_tx);
        tasks.push(task);
        KubeSources {
            ingresses,
            ingress_classes,
            websocket_routes,
            services,
            endpoint_slices,
            secrets,
            routes_absent,
            secrets_denied,
            tasks,
        }
    }

    /// Resolves once every store has completed its first list: compiling before that would publish a
    /// table with routes missing. A cluster without the WebSocketRoute CRD (or without the right to list
    /// it) counts as having none, so Ingresses are served; likewise Secrets that wsgate may not list
    /// count as none, so routes are served without certificates. The watchers keep retrying and pick
    /// the objects up once the CRD or the permission is there.
    pub async fn wait_synced(&self) {
        let mut absent = self.routes_absent.clone();
        let routes = async {
            tokio::select! {
                _ = self.websocket_routes.wait_until_ready() => {}
                _ = absent.wait_for(|absent| *absent) => {
                    tracing::warn!(
                        "cannot list websocketroutes.wsgate.dev: the WebSocketRoute CRD is not installed (404) or \
                         RBAC does not allow it (403); serving Ingresses only until it can; install \
                         crds/websocketroutes.wsgate.dev.yaml"
                    );
                }
            }
        };
        let mut denied = self.secrets_denied.clone();
        let secrets = async {
            tokio::select! {
                _ = self.secrets.wait_until_ready() => {}
                _ = denied.wait_for(|denied| *denied) => {
                    tracing::warn!(
                        "cannot list Secrets (403: RBAC does not allow get/list/watch on secrets): serving without \
                         TLS certificates until it can; `wsgate rbac` prints the rules wsgate needs"
                    );
                }
            }
        };
        let _ = tokio::join!(
            self.ingresses.wait_until_ready(),
            self.ingress_classes.wait_until_ready(),
            routes,
            self.services.wait_until_ready(),
            self.endpoint_slices.wait_until_ready(),
            secrets,
        );
    }

    /// A copy of every store's current content.
    pub fn snapshot(&self) -> Snapshot {
        fn copy<K: Clone + kube::Resource + 'static>(store: &Store<K>) -> Vec<K>
        where
            K::DynamicType: std::hash::Hash + Eq + Clone,
        {
            store.state().iter().map(|o| (**o).clone()).collect()
        }
        Snapshot {
            ingresses: copy(&self.ingresses),
            ingress_classes: copy(&self.ingress_classes),
            websocket_routes: copy(&self.websocket_routes),
            services: copy(&self.services),
            endpoint_slices: copy(&self.endpoint_slices),
            secrets: copy(&self.secrets),
        }
    }
}

impl Drop for KubeSources {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Runs a reflector for one kind in a task; returns its store.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    metrics: &Arc<Metrics>,
    changed: &Arc<Notify>,
    unavailable: &tokio::sync::watch::Sender<bool>,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + std::hash::Hash + Eq + Clone + Send + Sync,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api, config).modify(|obj: &mut K| {
            // Nothing wsgate reads lives there, and it is most of an object's size.
            obj.managed_fields_mut().clear();
            obj.annotations_mut().remove("kubectl.kubernetes.io/last-applied-configuration");
        }),
    )
    .default_backoff();
    let metrics = metrics.clone();
    let changed = changed.clone();
    let absent = unavailable.clone();
    let task = tokio::spawn(async move {
        let errors = metrics.kube_watch_errors_total.with_label_values(&[kind.as_str()]);
        stream
            .for_each(|event| {
                match event {
                    Ok(_) => {
                        absent.send_if_modified(|a| std::mem::replace(a, false));
                        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
                        metrics.last_sync_timestamp_seconds.set(now);
                        changed.notify_one();
                    }
                    Err(error) => {
                        if is_unavailable(&error) {
                            absent.send_if_modified(|a| !std::mem::replace(a, true));
                        }
                        errors.inc();
                        tracing::warn!(kind = %kind, %error, "watch failed; retrying with backoff, serving the last good table");
                    }
                }
                std::future::ready(())
            })
            .await;
    });
    (store, task)
}

/// Whether the API answered 404 for the resource itself (its CRD is not installed) or 403 (wsgate may
/// not list it): retrying will not help until someone installs or grants it.
fn is_unavailable(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => matches!(status.code, 403 | 404),
        watcher::Error::WatchError(status) => matches!(status.code, 403 | 404),
        _ => false,
    }
}
