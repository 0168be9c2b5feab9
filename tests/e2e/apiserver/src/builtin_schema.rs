//! OpenAPI schemas of the built-in kinds, taken from k8s-openapi (which generates them from the
//! Kubernetes OpenAPI document), fully inlined. They let the server decode built-in objects the
//! way the real one does: unknown fields are dropped (and reported under `fieldValidation`),
//! wrongly typed fields are a 400 decode error, `null` fields read as absent. They are also what
//! `/openapi/v3` publishes, so `kubectl explain` works for built-ins.
//!
//! ```text
//!   (group, resource) ──► schema (generated once per process) ──► schema::decode_builtin
//! ```

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_openapi::api::{apps, autoscaling, coordination, core, discovery, events, networking, policy, rbac};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

fn inline<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3().with(|s| s.inline_subschemas = true).into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(m) = &mut schema {
        m.remove("$schema");
    }
    schema
}

type Table = HashMap<(&'static str, &'static str), Value>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Table::new();
        t.insert(("", "configmaps"), inline::<core::v1::ConfigMap>());
        t.insert(("", "endpoints"), inline::<core::v1::Endpoints>());
        t.insert(("", "events"), inline::<core::v1::Event>());
        t.insert(("", "namespaces"), inline::<core::v1::Namespace>());
        t.insert(("", "pods"), inline::<core::v1::Pod>());
        t.insert(("", "secrets"), inline::<core::v1::Secret>());
        t.insert(("", "serviceaccounts"), inline::<core::v1::ServiceAccount>());
        t.insert(("", "services"), inline::<core::v1::Service>());
        t.insert(("apps", "deployments"), inline::<apps::v1::Deployment>());
        t.insert(("autoscaling", "horizontalpodautoscalers"), inline::<autoscaling::v2::HorizontalPodAutoscaler>());
        t.insert(("coordination.k8s.io", "leases"), inline::<coordination::v1::Lease>());
        t.insert(("discovery.k8s.io", "endpointslices"), inline::<discovery::v1::EndpointSlice>());
        t.insert(("events.k8s.io", "events"), inline::<events::v1::Event>());
        t.insert(("networking.k8s.io", "ingressclasses"), inline::<networking::v1::IngressClass>());
        t.insert(("networking.k8s.io", "ingresses"), inline::<networking::v1::Ingress>());
        t.insert(("networking.k8s.io", "networkpolicies"), inline::<networking::v1::NetworkPolicy>());
        t.insert(("policy", "poddisruptionbudgets"), inline::<policy::v1::PodDisruptionBudget>());
        t.insert(("rbac.authorization.k8s.io", "clusterrolebindings"), inline::<rbac::v1::ClusterRoleBinding>());
        t.insert(("rbac.authorization.k8s.io", "clusterroles"), inline::<rbac::v1::ClusterRole>());
        t.insert(("rbac.authorization.k8s.io", "rolebindings"), inline::<rbac::v1::RoleBinding>());
        t.insert(("rbac.authorization.k8s.io", "roles"), inline::<rbac::v1::Role>());
        t
    })
}

/// The inlined schema of a built-in resource (none for CRDs, whose schema type is recursive).
pub fn schema_for(group: &str, resource: &str) -> Option<&'static Value> {
    table().iter().find(|((g, r), _)| *g == group && *r == resource).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_schema_is_inlined() {
        let s = schema_for("", "services").expect("services");
        let port = &s["properties"]["spec"]["properties"]["ports"]["items"]["properties"]["port"];
        assert_eq!(port["type"], "integer");
        let target = &s["properties"]["spec"]["properties"]["ports"]["items"]["properties"]["targetPort"];
        assert_eq!(target["x-kubernetes-int-or-string"], true);
        assert!(schema_for("apiextensions.k8s.io", "customresourcedefinitions").is_none());
    }
}
