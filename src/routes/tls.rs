//! The TLS part of the route table: which certificate answers which SNI name.
//!
//! ```text
//!   TlsTable
//!     ├─ exact     "chat.example.com" ─► Certificate { secret "default/chat-tls", not_after, key }
//!     └─ wildcard  "*.example.com"    ─► Certificate            (matches exactly one extra label)
//!
//!   lookup(sni): exact name, then the wildcard one label up; nothing else (no default certificate)
//! ```
//!
//! Certificates are parsed and checked by the compiler; the dataplane only hands the `CertifiedKey` to
//! rustls. Nothing here prints key material: `Debug` and serialization show the secret and the dates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use serde::Serialize;

use super::{HostMatch, normalize_host};

/// A checked certificate chain with its private key, and where it came from.
#[derive(Clone)]
pub struct Certificate {
    /// `namespace/name` of the Secret: the `secret` label of the expiry metric.
    pub secret: Arc<str>,
    /// The leaf certificate's notAfter, in Unix seconds.
    pub not_after: i64,
    /// DNS names in the leaf certificate's subjectAltName, as written.
    pub dns_names: Vec<String>,
    /// What rustls presents: the chain (leaf first) and the signing key.
    pub key: Arc<CertifiedKey>,
}

impl PartialEq for Certificate {
    /// Same secret and same chain. The key is not compared: the compiler only builds a `Certificate`
    /// whose key matches its leaf, so the same chain means the same public key.
    fn eq(&self, other: &Certificate) -> bool {
        self.secret == other.secret && self.not_after == other.not_after && self.key.cert == other.key.cert
    }
}

impl Eq for Certificate {}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("secret", &self.secret)
            .field("not_after", &self.not_after)
            .field("dns_names", &self.dns_names)
            .field("chain_len", &self.key.cert.len())
            .finish_non_exhaustive()
    }
}

/// SNI name → certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsTable {
    exact: HashMap<String, Arc<Certificate>>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, Arc<Certificate>>,
}

/// One host of the TLS table, for `/debug/routes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsHostView {
    pub host: String,
    pub secret: String,
    pub not_after: i64,
}

impl TlsTable {
    /// Adds `host` → `certificate` unless the host already has one (the compiler adds winners first).
    /// `HostMatch::Any` cannot be selected by SNI and is ignored. Returns whether it was added.
    pub fn insert(&mut self, host: &HostMatch, certificate: Arc<Certificate>) -> bool {
        let map = match host {
            HostMatch::Exact(name) => self.exact.entry(name.clone()),
            HostMatch::Wildcard(suffix) => self.wildcard.entry(suffix.clone()),
            HostMatch::Any => return false,
        };
        match map {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(certificate);
                true
            }
        }
    }

    /// The certificate for an SNI name (any case, trailing dot allowed): exact name first, then the
    /// wildcard covering its first label.
    pub fn lookup(&self, server_name: &str) -> Option<&Arc<Certificate>> {
        let name = normalize_host(server_name);
        let name = name.as_ref();
        if let Some(certificate) = self.exact.get(name) {
            return Some(certificate);
        }
        let (label, suffix) = name.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        self.wildcard.get(suffix)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }

    /// Every host with its certificate, sorted by host.
    pub fn hosts(&self) -> Vec<(HostMatch, &Arc<Certificate>)> {
        let exact = self.exact.iter().map(|(h, c)| (HostMatch::Exact(h.clone()), c));
        let wildcard = self.wildcard.iter().map(|(s, c)| (HostMatch::Wildcard(s.clone()), c));
        let mut hosts: Vec<_> = exact.chain(wildcard).collect();
        hosts.sort_by(|a, b| a.0.cmp(&b.0));
        hosts
    }

    /// Each served Secret once, with its certificate's notAfter: what the expiry metric shows.
    pub fn expiries(&self) -> BTreeMap<&str, i64> {
        self.exact.values().chain(self.wildcard.values()).map(|c| (&*c.secret, c.not_after)).collect()
    }

    /// The table as `/debug/routes` shows it: no key material.
    pub fn view(&self) -> Vec<TlsHostView> {
        self.hosts()
            .into_iter()
            .map(|(host, c)| TlsHostView {
                host: host.to_string(),
                secret: c.secret.to_string(),
                not_after: c.not_after,
            })
            .collect()
    }
}
