//! Service references → route backends with their ready endpoints.
//!
//! ```text
//!   (namespace, service, port) ──► Service ──► ServicePort (by number or by name)
//!                                                  │ its name ("" when unnamed)
//!                                                  ▼
//!   EndpointSlices labelled kubernetes.io/service-name=<service>, same namespace
//!     └─ slice port with that name ──► addresses of ready endpoints (IPv4/IPv6) : slice port
//! ```
//!
//! A reference that cannot be resolved still yields a backend, with no endpoints, plus a [`Problem`]:
//! the route then answers 503 for that share of traffic instead of disappearing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::conditions::Reason;
use crate::controller::Snapshot;
use crate::routes::{Backend, Endpoint};

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service port as a reference names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PortRef {
    Number(i32),
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(name) => f.write_str(name),
        }
    }
}

/// Which part of the reference a problem is about, so callers can name the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProblemSite {
    Service,
    Port,
}

/// Why a reference did not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    pub reason: Reason,
    pub site: ProblemSite,
    pub message: String,
}

/// A backend built from a reference, and what went wrong resolving it, if anything.
#[derive(Debug, Clone)]
pub(super) struct Resolution {
    pub backend: Backend,
    pub problem: Option<Problem>,
}

/// Services and EndpointSlices of a snapshot, indexed for lookups by namespace and name.
pub(super) struct ServiceIndex<'s> {
    services: BTreeMap<(&'s str, &'s str), &'s Service>,
    slices: BTreeMap<(&'s str, &'s str), Vec<&'s EndpointSlice>>,
}

impl<'s> ServiceIndex<'s> {
    pub fn new(snapshot: &'s Snapshot) -> ServiceIndex<'s> {
        let mut services = BTreeMap::new();
        for service in &snapshot.services {
            let (Some(namespace), Some(name)) = (&service.metadata.namespace, &service.metadata.name) else {
                continue;
            };
            services.entry((namespace.as_str(), name.as_str())).or_insert(service);
        }
        let mut slices: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for slice in &snapshot.endpoint_slices {
            let Some(namespace) = &slice.metadata.namespace else { continue };
            let Some(service) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else {
                continue;
            };
            slices.entry((namespace.as_str(), service.as_str())).or_default().push(slice);
        }
        ServiceIndex { services, slices }
    }

    /// Resolves `service`:`port` in `namespace` into a backend of the given weight.
    pub fn resolve(&self, namespace: &str, service: &str, port: &PortRef, weight: u32) -> Resolution {
        let name = format!("{namespace}/{service}:{port}");
        let unresolved = |reason, site, message| Resolution {
            backend: Backend { name: name.clone(), weight, ..Backend::default() },
            problem: Some(Problem { reason, site, message }),
        };
        let Some(svc) = self.services.get(&(namespace, service)) else {
            return unresolved(
                Reason::BackendNotFound,
                ProblemSite::Service,
                format!("Service {namespace}/{service} not found"),
            );
        };
        let spec = svc.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return unresolved(
                Reason::UnsupportedBackend,
                ProblemSite::Service,
                format!("Service {namespace}/{service} is of type ExternalName, which wsgate does not support"),
            );
        }
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        let found = ports.iter().find(|p| match port {
            PortRef::Number(n) => p.port == *n,
            PortRef::Name(wanted) => p.name.as_deref() == Some(wanted.as_str()),
        });
        let Some(service_port) = found else {
            let wanted = match port {
                PortRef::Number(n) => format!("port {n}"),
                PortRef::Name(wanted) => format!("port named {wanted:?}"),
            };
            return unresolved(
                Reason::PortNotFound,
                ProblemSite::Port,
                format!("Service {namespace}/{service} has no {wanted}; {}", list_ports(ports)),
            );
        };
        let port_name = service_port.name.as_deref().unwrap_or("");
        let (endpoints, unready) = self.endpoints(namespace, service, port_name);
        Resolution { backend: Backend { name, weight, endpoints, unready, ring: None }, problem: None }
    }

    /// Addresses of the Service's slices, on the slice port named like the Service port: the ready
    /// ones, and those not ready but not terminating either (EndpointConditions: `ready` unset counts as
    /// ready, `terminating` unset as not terminating).
    fn endpoints(&self, namespace: &str, service: &str, port_name: &str) -> (Vec<Endpoint>, Vec<Endpoint>) {
        let mut addrs = BTreeSet::new();
        let mut unready = BTreeSet::new();
        for slice in self.slices.get(&(namespace, service)).map(Vec::as_slice).unwrap_or_default() {
            if slice.address_type == "FQDN" {
                continue;
            }
            let ports = slice.ports.as_deref().unwrap_or_default();
            let Some(number) = ports
                .iter()
                .find(|p| p.name.as_deref().unwrap_or("") == port_name)
                .and_then(|p| p.port)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
            else {
                continue;
            };
            for endpoint in slice.endpoints.iter().flatten() {
                let conditions = endpoint.conditions.as_ref();
                let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
                let into = match (ready, terminating) {
                    (true, _) => &mut addrs,
                    (false, false) => &mut unready,
                    (false, true) => continue,
                };
                for address in &endpoint.addresses {
                    if let Ok(ip) = address.parse::<IpAddr>() {
                        into.insert(SocketAddr::new(ip, number));
                    }
                }
            }
        }
        let unready: Vec<Endpoint> =
            unready.into_iter().filter(|a| !addrs.contains(a)).map(|addr| Endpoint { addr }).collect();
        (addrs.into_iter().map(|addr| Endpoint { addr }).collect(), unready)
    }
}

/// `its ports are 80 "http", 3000` or `it has no ports`, to help fix a wrong port reference.
fn list_ports(ports: &[k8s_openapi::api::core::v1::ServicePort]) -> String {
    if ports.is_empty() {
        return "it has no ports".to_string();
    }
    let listed: Vec<String> = ports
        .iter()
        .map(|p| match p.name.as_deref() {
            Some(name) if !name.is_empty() => format!("{} {name:?}", p.port),
            _ => p.port.to_string(),
        })
        .collect();
    let noun = if ports.len() == 1 { "its port is" } else { "its ports are" };
    format!("{noun} {}", listed.join(", "))
}
