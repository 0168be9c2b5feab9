//! Leader election with a `coordination.k8s.io/v1` Lease: every replica serves traffic, only the holder
//! writes status.
//!
//! ```text
//!   every `retry`:  get Lease ─┬─ absent             → create it, holding it
//!                              ├─ held by us         → renew (replace with resourceVersion)
//!                              ├─ unchanged for a    → take it over (transitions + 1)
//!                              │  whole lease period
//!                              └─ held by another    → follower
//!   a holder that could not renew within the renew deadline stops writing at once
//! ```
//!
//! Expiry is judged by how long *we* have seen the same record unchanged (as client-go does), not by
//! comparing the record's timestamps with our clock, so clock skew between nodes does not matter.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

/// How the lease is held.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's name in `holderIdentity` (the pod name in a cluster).
    pub identity: String,
    /// `leaseDurationSeconds`: how long a silent holder keeps the lease.
    pub duration: Duration,
    /// A holder that has not renewed for this long stops acting as leader (less than `duration`).
    pub renew_deadline: Duration,
    /// Time between attempts.
    pub retry: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: String, name: String, identity: String) -> LeaseConfig {
        LeaseConfig {
            namespace,
            name,
            identity,
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// Whether this replica currently holds the lease.
#[derive(Debug, Clone)]
pub struct Leadership(watch::Receiver<bool>);

impl Leadership {
    pub fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    /// A leadership that is always held: for a single replica without a lease.
    pub fn always() -> Leadership {
        let (tx, rx) = watch::channel(true);
        std::mem::forget(tx);
        Leadership(rx)
    }

    /// Resolves when leadership changes.
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Starts the election loop in a task.
pub fn spawn(client: Client, config: LeaseConfig) -> Leadership {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let mut elector = Elector { config, observed: None, last_renewed: None };
        loop {
            let leader = elector.step(&api).await;
            if *tx.borrow() != leader {
                tracing::info!(identity = %elector.config.identity, leader, "lease leadership changed");
                let _ = tx.send(leader);
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(elector.config.retry).await;
        }
    });
    Leadership(rx)
}

/// A Lease's holder and renew time: the record whose changes show the holder is alive.
type Record = (Option<String>, Option<MicroTime>);

struct Elector {
    config: LeaseConfig,
    /// The other holder's record as last seen, and when it was first seen in that state.
    observed: Option<(Record, Instant)>,
    last_renewed: Option<Instant>,
}

impl Elector {
    /// One attempt; returns whether we hold the lease now.
    async fn step(&mut self, api: &Api<Lease>) -> bool {
        match self.try_acquire_or_renew(api).await {
            Ok(true) => {
                self.last_renewed = Some(Instant::now());
                true
            }
            Ok(false) => {
                self.last_renewed = None;
                false
            }
            Err(error) => {
                tracing::warn!(%error, lease = %self.config.name, "lease update failed");
                // Still leader only while the last renewal is recent enough.
                self.last_renewed.is_some_and(|t| t.elapsed() < self.config.renew_deadline)
            }
        }
    }

    async fn try_acquire_or_renew(&mut self, api: &Api<Lease>) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let me = self.config.identity.clone();
        let seconds = i32::try_from(self.config.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.config.name.clone()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        if holder.as_deref() != Some(me.as_str()) {
            let record = (holder.clone(), spec.renew_time.clone());
            let held_for = spec.lease_duration_seconds.map(|s| Duration::from_secs(s.max(0) as u64));
            let expired = match &self.observed {
                Some((seen, since)) if *seen == record => since.elapsed() >= held_for.unwrap_or(self.config.duration),
                _ => {
                    self.observed = Some((record, Instant::now()));
                    false
                }
            };
            if holder.is_some() && !expired {
                return Ok(false);
            }
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(me);
        }
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(seconds);
        match api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(_) => {
                self.observed = None;
                Ok(true)
            }
            // Someone else wrote first: we learn who on the next attempt.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }
}
