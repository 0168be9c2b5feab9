//! A consistent set of the Kubernetes objects the compiler reads.

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use crate::crd::WebSocketRoute;

/// Every object compile looks at, as k8s-openapi types. Order does not matter: compile sorts.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub ingresses: Vec<Ingress>,
    pub ingress_classes: Vec<IngressClass>,
    pub websocket_routes: Vec<WebSocketRoute>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Secrets of type `kubernetes.io/tls` (the Kubernetes source lists no other type; file mode keeps
    /// every v1 Secret and compile checks the type of the ones referenced).
    pub secrets: Vec<Secret>,
}
