//! The Kubernetes API permissions wsgate uses: the one list the Helm chart's RBAC is checked against.
//!
//! Every API call the controller makes must be covered here, and nothing more is granted: a test renders
//! the chart and compares its (Cluster)Role rules with [`RULES`].

use serde::Serialize;

/// One RBAC policy rule, in the shape of `rbac.authorization.k8s.io/v1` `PolicyRule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub api_groups: &'static [&'static str],
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Whether the resource is cluster-scoped (so it needs a ClusterRole even for a one-namespace install).
    #[serde(skip)]
    pub cluster_scoped: bool,
}

const WATCH: &[&str] = &["get", "list", "watch"];

/// What the controller does with each resource.
pub const RULES: &[Rule] = &[
    // Sources compiled into the route table.
    Rule { api_groups: &["networking.k8s.io"], resources: &["ingresses"], verbs: WATCH, cluster_scoped: false },
    Rule { api_groups: &["networking.k8s.io"], resources: &["ingressclasses"], verbs: WATCH, cluster_scoped: true },
    Rule { api_groups: &["wsgate.dev"], resources: &["websocketroutes"], verbs: WATCH, cluster_scoped: false },
    Rule { api_groups: &[""], resources: &["services"], verbs: WATCH, cluster_scoped: false },
    Rule { api_groups: &["discovery.k8s.io"], resources: &["endpointslices"], verbs: WATCH, cluster_scoped: false },
    Rule { api_groups: &[""], resources: &["secrets"], verbs: WATCH, cluster_scoped: false },
    // Status written back (JSON merge patch on the status subresource).
    Rule {
        api_groups: &["networking.k8s.io"],
        resources: &["ingresses/status"],
        verbs: &["patch"],
        cluster_scoped: false,
    },
    Rule {
        api_groups: &["wsgate.dev"],
        resources: &["websocketroutes/status"],
        verbs: &["patch"],
        cluster_scoped: false,
    },
    // Configuration errors recorded on the objects (events.k8s.io/v1, as kube-runtime's Recorder writes them).
    Rule { api_groups: &["events.k8s.io"], resources: &["events"], verbs: &["create", "patch"], cluster_scoped: false },
    // Leader election for the status writer.
    Rule {
        api_groups: &["coordination.k8s.io"],
        resources: &["leases"],
        verbs: &["get", "create", "update"],
        cluster_scoped: false,
    },
];

/// The rules as YAML (`wsgate rbac`), for inspection and for comparing with rendered manifests.
pub fn rules_yaml() -> String {
    serde_yaml::to_string(RULES).expect("static rules serialize")
}
