//! Kubernetes mode: reflectors feed a debounced rebuild; the table is published, status written back.
//!
//! ```text
//!   KubeSources ──changed──► (≥ DEBOUNCE since the last build) ──► snapshot ──► compile ──► Publisher
//!                                                               └──► StatusWriter (Lease holder only)
//! ```
//!
//! Nothing is compiled before every watcher has finished its first list, so the first table is complete.
//! While the API server is unreachable the stores keep their content: the served table stays, `/readyz`
//! stays 200, and `wsgate_kube_watch_errors_total` counts the failures.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::compile::{CompileOptions, compile};
use super::lease::{self, Leadership, LeaseConfig};
use super::publish::Publisher;
use super::sources::KubeSources;
use super::status::{PublishTarget, StatusWriter};
use crate::metrics::Metrics;

/// At most one build per this interval: a change after a quiet period is built at once, a burst of
/// changes (a `kubectl apply` of many objects, a rollout moving endpoints) is folded into the next build.
/// Endpoint changes go through the same path.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// How Kubernetes mode runs.
#[derive(Debug, Clone)]
pub struct KubeConfig {
    /// Watch only this namespace (the cluster-scoped IngressClass is always watched).
    pub namespace: Option<String>,
    pub compile: CompileOptions,
    pub publish: PublishTarget,
    /// `None`: no election, this replica writes status (single replica, tests).
    pub lease: Option<LeaseConfig>,
}

/// Why Kubernetes mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeModeError {
    #[error("cannot configure a Kubernetes client (in-cluster or KUBECONFIG): {0}")]
    Client(#[from] kube::Error),
}

/// Runs until `shutdown` resolves.
pub async fn run(
    config: KubeConfig,
    mut publisher: Publisher,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), KubeModeError> {
    let client = kube::Client::try_default().await?;
    tokio::pin!(shutdown);
    let changed = Arc::new(Notify::new());
    let sources = KubeSources::start(&client, config.namespace.as_deref(), metrics.clone(), changed.clone());
    tracing::info!(namespace = config.namespace.as_deref().unwrap_or("(all)"), "waiting for the first full sync");
    tokio::select! {
        _ = sources.wait_synced() => {}
        _ = &mut shutdown => return Ok(()),
    }
    let instance = config.lease.as_ref().map_or_else(|| "wsgate".to_string(), |l| l.identity.clone());
    let leadership = match config.lease {
        Some(lease) => lease::spawn(client.clone(), lease),
        None => Leadership::always(),
    };
    let status = StatusWriter::spawn(client, leadership, config.publish, metrics.clone(), instance);
    let mut noticed = Instant::now();
    loop {
        let snapshot = sources.snapshot();
        let compiled = compile(&snapshot, &config.compile);
        publisher.record_errors(compiled.report.errors().count());
        let desired = super::status_from_report(&compiled.report);
        publisher.publish(compiled.table);
        metrics.reconcile_duration_seconds.observe(noticed.elapsed().as_secs_f64());
        status.update(snapshot, desired);
        let built = Instant::now();

        tokio::select! {
            _ = changed.notified() => {}
            _ = &mut shutdown => return Ok(()),
        }
        noticed = Instant::now();
        // Every event is a whole, consistent object, so building right away is safe (unlike file mode,
        // where an editor may still be writing the file).
        tokio::time::sleep_until(built + DEBOUNCE).await;
    }
}
