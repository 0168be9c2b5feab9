//! The `WebSocketRoute` custom resource (`wsgate.dev/v1alpha1`).
//!
//! These Rust types are the source of `crds/websocketroutes.wsgate.dev.yaml`: `wsgate crd` prints the
//! CustomResourceDefinition generated from them, and a test fails when the committed file differs. The
//! doc comments below become the field descriptions `kubectl explain` shows.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Routes WebSocket (and plain HTTP) traffic for a set of hostnames and a path to weighted Service
/// backends, with WebSocket-aware timeouts and load balancing.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "wsgate.dev",
    version = "v1alpha1",
    kind = "WebSocketRoute",
    namespaced,
    status = "WebSocketRouteStatus",
    shortname = "wsr",
    category = "wsgate",
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hostnames"}"#,
    printcolumn = r#"{"name":"Path","type":"string","jsonPath":".spec.path.value"}"#,
    printcolumn = r#"{"name":"Programmed","type":"string","jsonPath":".status.conditions[?(@.type==\"Programmed\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketRouteSpec {
    /// Hostnames this route answers for, matched against the request's Host header without its port.
    /// `*.example.com` matches exactly one extra label (`chat.example.com`, not `example.com` nor
    /// `a.b.example.com`). Empty or omitted matches every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub hostnames: Vec<String>,

    /// The request path to match. Omitted means `Prefix /`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatchSpec>,

    /// Services that receive the connections, chosen by weight. At least one is required.
    #[schemars(length(min = 1, max = 16))]
    pub backends: Vec<BackendRef>,

    /// Handshake and idle timeouts. Omitted values use the defaults (handshake `10s`, idle `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,

    /// How new connections are spread over the ready endpoints of a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancing: Option<LoadBalancingSpec>,

    /// TLS termination on the HTTPS listener for `hostnames`: the certificate is chosen by the SNI name
    /// the client sends, so without `hostnames` this is ignored (with a warning). The route is still
    /// served over plain HTTP too, unless `redirect` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RouteTls>,
}

/// The certificate served for a route's hostnames.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteTls {
    /// Name of a Secret of type `kubernetes.io/tls` in the route's namespace, with the PEM certificate
    /// chain (leaf first) in `tls.crt` and the PEM private key in `tls.key`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Answer plain-HTTP requests for the hostnames with `308 Permanent Redirect` to the same URL over
    /// `https://` (when the HTTPS listener is on and the certificate is usable). Default false.
    /// WebSocket handshakes are redirected too, and WebSocket clients do not follow redirects: a
    /// `ws://` client then fails and must be switched to `wss://`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redirect: bool,
}

/// A path matcher, with the semantics of Ingress paths.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PathMatchSpec {
    /// `Exact` matches the path exactly (case-sensitive); `Prefix` matches element-wise on `/`, so
    /// `/chat` matches `/chat` and `/chat/room`, not `/chatroom`. Default `Prefix`.
    #[serde(rename = "type", default)]
    pub kind: PathMatchType,
    /// The path; must start with `/`.
    pub value: String,
}

/// How a path is matched.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PathMatchType {
    Exact,
    #[default]
    Prefix,
}

/// One weighted backend.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// The Service in the route's namespace, and its port.
    pub service: ServiceRef,
    /// Relative share of new connections among this route's backends (0 to 1000000, default 1). A
    /// backend with weight 0 receives no new connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub weight: Option<u32>,
}

/// A Service port reference.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// Name of the Service, in the same namespace as the route.
    pub name: String,
    /// The Service port, by number (`8080`) or by name (`ws`).
    pub port: IntOrString,
}

/// WebSocket timeouts, as duration strings such as `500ms`, `10s`, `5m`, `1h` or `1h30m`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// How long the backend has to answer the upgrade request; the client gets 504 after it. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<String>,
    /// How long an established WebSocket may carry no data in either direction before wsgate closes it.
    /// Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<String>,
}

/// Load-balancing settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancingSpec {
    /// `LeastConnections` (default) sends a new connection to the endpoint with the fewest active ones,
    /// so long-lived sockets spread evenly over new pods; `RoundRobin` rotates.
    #[serde(default)]
    pub policy: LoadBalancingPolicy,
}

/// A load-balancing policy.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum LoadBalancingPolicy {
    #[default]
    LeastConnections,
    RoundRobin,
}

/// Observed state, written by the controller.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketRouteStatus {
    /// `Accepted` (the spec is valid and not in conflict), `ResolvedRefs` (every backend Service and port
    /// exists) and `Programmed` (the route is served and has at least one ready endpoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The CustomResourceDefinition as YAML, exactly as committed in `crds/`.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let crd = WebSocketRoute::crd();
    let yaml = serde_yaml::to_string(&crd).expect("a CRD always serializes to YAML");
    format!("# Generated by `wsgate crd` from src/crd/mod.rs. Do not edit by hand.\n{yaml}")
}
