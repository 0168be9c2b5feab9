//! The resource catalog: which (group, version, resource) the server serves, with the facts the
//! real registry keeps per kind (scope, kind names, status subresource, generation tracking, what a
//! delete answers), plus the types that CustomResourceDefinitions declare at run time.
//!
//! ```text
//!   built-in table ─┐
//!                   ├─► Catalog ──► routing (lookup) / discovery (/api, /apis/...) / OpenAPI v3
//!   CRD objects ────┘    (one ResourceType per served version)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

/// How names of a kind are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (namespaces).
    Label,
    /// DNS-1035 label (services).
    Dns1035,
    /// Path segment (RBAC kinds).
    PathSegment,
}

/// One served resource at one version.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    /// Plural, lower case: `services`.
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Serves `/status` and keeps `.status` out of main-resource writes.
    pub has_status: bool,
    /// Maintains `metadata.generation`.
    pub generation: bool,
    /// A delete answers with the object instead of a `Status`.
    pub returns_deleted_object: bool,
    /// An update without `metadata.resourceVersion` is accepted.
    pub unconditional_update: bool,
    /// An update of a missing object creates it.
    pub create_on_update: bool,
    pub name_rule: NameRule,
    /// For custom resources: the version's `openAPIV3Schema`.
    pub schema: Option<Arc<Value>>,
    /// For custom resources: the CRD that declares the type.
    pub crd_name: Option<String>,
}

impl ResourceType {
    /// `v1` or `networking.k8s.io/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The key objects of this type are stored under (shared by all versions, and by both
    /// groups that serve Events).
    pub fn storage_key(&self) -> StorageKey {
        if self.group == "events.k8s.io" && self.resource == "events" {
            return StorageKey { group: String::new(), resource: "events".into() };
        }
        StorageKey { group: self.group.clone(), resource: self.resource.clone() }
    }

    /// Whether this is a custom resource (declared by a CRD).
    pub fn is_custom(&self) -> bool {
        self.crd_name.is_some()
    }

    /// URL prefix of the group version: `/api/v1` or `/apis/apps/v1`.
    pub fn gv_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

/// Where a resource's objects live, independent of the version they are read at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey {
    pub group: String,
    pub resource: String,
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    has_status: bool,
    generation: bool,
    returns_deleted_object: bool,
    create_on_update: bool,
    name_rule: NameRule,
}

const fn b(group: &'static str, version: &'static str, resource: &'static str, kind: &'static str) -> Builtin {
    Builtin {
        group,
        version,
        resource,
        kind,
        namespaced: true,
        short_names: &[],
        categories: &[],
        has_status: false,
        generation: false,
        returns_deleted_object: false,
        create_on_update: false,
        name_rule: NameRule::Subdomain,
    }
}

impl Builtin {
    const fn cluster(mut self) -> Self {
        self.namespaced = false;
        self
    }
    const fn short(mut self, s: &'static [&'static str]) -> Self {
        self.short_names = s;
        self
    }
    const fn all(mut self) -> Self {
        self.categories = &["all"];
        self
    }
    const fn status(mut self) -> Self {
        self.has_status = true;
        self
    }
    const fn gen_(mut self) -> Self {
        self.generation = true;
        self
    }
    const fn returns(mut self) -> Self {
        self.returns_deleted_object = true;
        self
    }
    const fn upsert(mut self) -> Self {
        self.create_on_update = true;
        self
    }
    const fn names(mut self, r: NameRule) -> Self {
        self.name_rule = r;
        self
    }
}

/// The built-in kinds, in the order discovery lists them.
const BUILTINS: &[Builtin] = &[
    b("", "v1", "configmaps", "ConfigMap").short(&["cm"]),
    b("", "v1", "endpoints", "Endpoints").short(&["ep"]).upsert(),
    b("", "v1", "events", "Event").short(&["ev"]).upsert(),
    b("", "v1", "namespaces", "Namespace").cluster().short(&["ns"]).status().returns().names(NameRule::Label),
    b("", "v1", "pods", "Pod").short(&["po"]).all().status().returns(),
    b("", "v1", "secrets", "Secret"),
    b("", "v1", "serviceaccounts", "ServiceAccount").short(&["sa"]).returns(),
    b("", "v1", "services", "Service").short(&["svc"]).all().status().returns().names(NameRule::Dns1035),
    b("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition")
        .cluster()
        .short(&["crd", "crds"])
        .status()
        .gen_()
        .returns(),
    b("apps", "v1", "deployments", "Deployment").short(&["deploy"]).all().status().gen_(),
    b("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler").short(&["hpa"]).all().status().gen_(),
    b("coordination.k8s.io", "v1", "leases", "Lease"),
    b("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice").gen_(),
    b("events.k8s.io", "v1", "events", "Event").short(&["ev"]),
    b("networking.k8s.io", "v1", "ingressclasses", "IngressClass").cluster().gen_(),
    b("networking.k8s.io", "v1", "ingresses", "Ingress").short(&["ing"]).status().gen_(),
    b("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy").short(&["netpol"]).gen_(),
    b("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget").short(&["pdb"]).status().gen_(),
    b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding")
        .cluster()
        .names(NameRule::PathSegment),
    b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole").cluster().names(NameRule::PathSegment),
    b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding").names(NameRule::PathSegment),
    b("rbac.authorization.k8s.io", "v1", "roles", "Role").names(NameRule::PathSegment),
];

/// Built-in groups in the order `/apis` lists them (core is served at `/api`).
const BUILTIN_GROUPS: &[&str] = &[
    "apps",
    "events.k8s.io",
    "autoscaling",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
];

fn from_builtin(x: &Builtin) -> ResourceType {
    ResourceType {
        group: x.group.into(),
        version: x.version.into(),
        resource: x.resource.into(),
        singular: x.kind.to_ascii_lowercase(),
        kind: x.kind.into(),
        list_kind: format!("{}List", x.kind),
        namespaced: x.namespaced,
        short_names: x.short_names.iter().map(|s| s.to_string()).collect(),
        categories: x.categories.iter().map(|s| s.to_string()).collect(),
        has_status: x.has_status,
        generation: x.generation,
        returns_deleted_object: x.returns_deleted_object,
        unconditional_update: x.resource != "customresourcedefinitions",
        create_on_update: x.create_on_update,
        name_rule: x.name_rule,
        schema: None,
        crd_name: None,
    }
}

/// Everything the server serves right now.
#[derive(Debug, Clone)]
pub struct Catalog {
    builtins: Vec<ResourceType>,
    /// CRD name → its served versions, highest priority first.
    custom: BTreeMap<String, Vec<ResourceType>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog { builtins: BUILTINS.iter().map(from_builtin).collect(), custom: BTreeMap::new() }
    }
}

impl Catalog {
    /// Every served resource type.
    pub fn all(&self) -> impl Iterator<Item = &ResourceType> {
        self.builtins.iter().chain(self.custom.values().flatten())
    }

    /// The type served at `group/version/resource`.
    pub fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<&ResourceType> {
        self.all().find(|t| t.group == group && t.version == version && t.resource == resource)
    }

    /// Whether any version of this group is served.
    pub fn group_versions(&self, group: &str) -> Vec<String> {
        let mut versions: Vec<String> = Vec::new();
        for t in self.all().filter(|t| t.group == group) {
            if !versions.contains(&t.version) {
                versions.push(t.version.clone());
            }
        }
        versions.sort_by(|a, b| compare_kube_versions(a, b));
        versions
    }

    /// Whether the CRD `name` currently contributes types.
    pub fn has_crd(&self, name: &str) -> bool {
        self.custom.contains_key(name)
    }

    /// Replaces the types a CRD declares (or removes them when `crd` is `None`).
    pub fn set_crd(&mut self, name: &str, crd: Option<&Value>) {
        match crd.map(types_from_crd) {
            Some(types) if !types.is_empty() => {
                self.custom.insert(name.to_string(), types);
            }
            _ => {
                self.custom.remove(name);
            }
        }
    }

    /// Groups in discovery order: built-ins first, then CRD groups alphabetically.
    fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = BUILTIN_GROUPS.iter().map(|g| g.to_string()).collect();
        let mut extra: Vec<String> = self.custom.values().flatten().map(|t| t.group.clone()).collect();
        extra.sort();
        extra.dedup();
        for g in extra {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        groups
    }

    /// `GET /apis`: the legacy `APIGroupList`.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .iter()
            .filter_map(|g| {
                let versions = self.group_versions(g);
                let preferred = versions.first()?.clone();
                Some(api_group(g, &versions, &preferred))
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `GET /apis/<group>`: one `APIGroup`, if served.
    pub fn api_group(&self, group: &str) -> Option<Value> {
        let versions = self.group_versions(group);
        let preferred = versions.first()?.clone();
        let mut g = api_group(group, &versions, &preferred);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        Some(g)
    }

    /// `GET /api/v1` or `/apis/<group>/<version>`: the `APIResourceList`, if served.
    pub fn api_resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let mut types: Vec<&ResourceType> = self.all().filter(|t| t.group == group && t.version == version).collect();
        if types.is_empty() {
            return None;
        }
        types.sort_by(|a, b| a.resource.cmp(&b.resource));
        let mut resources = Vec::new();
        for t in types {
            let mut r = json!({
                "name": t.resource,
                "singularName": t.singular,
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": verbs(t),
            });
            if !t.short_names.is_empty() {
                r["shortNames"] = json!(t.short_names);
            }
            if !t.categories.is_empty() {
                r["categories"] = json!(t.categories);
            }
            resources.push(r);
            if t.has_status {
                resources.push(json!({
                    "name": format!("{}/status", t.resource),
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": t.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
    }
}

impl Catalog {
    /// The aggregated discovery document (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`): for
    /// `/api` the core group only, for `/apis` every other group, versions in priority order.
    pub fn aggregated_discovery(&self, core: bool) -> Value {
        let groups: Vec<String> = if core { vec![String::new()] } else { self.groups() };
        let items: Vec<Value> = groups
            .iter()
            .filter_map(|g| {
                let versions = self.group_versions(g);
                if versions.is_empty() {
                    return None;
                }
                let vs: Vec<Value> = versions
                    .iter()
                    .map(|v| {
                        let mut types: Vec<&ResourceType> =
                            self.all().filter(|t| &t.group == g && &t.version == v).collect();
                        types.sort_by(|a, b| a.resource.cmp(&b.resource));
                        let resources: Vec<Value> = types.iter().map(|t| aggregated_resource(t)).collect();
                        json!({"version": v, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                Some(json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vs}))
            })
            .collect();
        json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
    }
}

fn verbs(t: &ResourceType) -> Vec<&'static str> {
    if t.resource == "namespaces" {
        vec!["create", "delete", "get", "list", "patch", "update", "watch"]
    } else {
        vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }
}

fn aggregated_resource(t: &ResourceType) -> Value {
    let kind = json!({"group": t.group, "version": t.version, "kind": t.kind});
    let mut r = json!({
        "resource": t.resource,
        "responseKind": kind,
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular,
        "verbs": verbs(t),
    });
    if !t.short_names.is_empty() {
        r["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        r["categories"] = json!(t.categories);
    }
    if t.has_status {
        r["subresources"] =
            json!([{"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}]);
    }
    r
}

fn api_group(group: &str, versions: &[String], preferred: &str) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": {"groupVersion": format!("{group}/{preferred}"), "version": preferred},
    })
}

/// Parses a Kubernetes-style version (`v2beta1`) into a sort key: GA before beta before alpha,
/// higher numbers first; anything else sorts last, alphabetically.
fn version_rank(v: &str) -> (u8, i64, i64, String) {
    let parse = || -> Option<(u8, i64, i64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (2, n)
        } else {
            return None;
        };
        let minor: i64 = num.parse().ok()?;
        Some((level, -major, -minor))
    };
    match parse() {
        Some((l, a, b)) => (l, a, b, String::new()),
        None => (3, 0, 0, v.to_string()),
    }
}

/// Orders versions the way discovery does (highest priority first).
pub fn compare_kube_versions(a: &str, b: &str) -> std::cmp::Ordering {
    version_rank(a).cmp(&version_rank(b))
}

/// The resource types a CRD declares: one per served version, highest priority first.
fn types_from_crd(crd: &Value) -> Vec<ResourceType> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    let singular =
        names["singular"].as_str().filter(|s| !s.is_empty()).map_or(kind.to_ascii_lowercase(), str::to_string);
    let list_kind = names["listKind"].as_str().filter(|s| !s.is_empty()).map_or(format!("{kind}List"), str::to_string);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
    };
    let mut out: Vec<ResourceType> = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(false))
        .filter_map(|v| {
            let version = v["name"].as_str()?.to_string();
            Some(ResourceType {
                group: group.to_string(),
                version,
                resource: plural.to_string(),
                singular: singular.clone(),
                kind: kind.to_string(),
                list_kind: list_kind.clone(),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                has_status: v["subresources"].get("status").is_some_and(|s| !s.is_null()),
                generation: true,
                returns_deleted_object: true,
                unconditional_update: false,
                create_on_update: false,
                name_rule: NameRule::Subdomain,
                schema: v["schema"].get("openAPIV3Schema").cloned().map(Arc::new),
                crd_name: Some(name.clone()),
            })
        })
        .collect();
    out.sort_by(|a, b| compare_kube_versions(&a.version, &b.version));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_discovery() {
        let mut v = vec!["v1alpha1", "foo", "v2", "v1beta2", "v1", "v1beta1", "v10"];
        v.sort_by(|a, b| compare_kube_versions(a, b));
        assert_eq!(v, vec!["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn core_list_has_status_subresources() {
        let c = Catalog::default();
        let list = c.api_resource_list("", "v1").expect("core is served");
        let names: Vec<&str> =
            list["resources"].as_array().expect("array").iter().filter_map(|r| r["name"].as_str()).collect();
        assert!(names.contains(&"services/status"));
        assert!(!names.contains(&"secrets/status"));
    }

    #[test]
    fn crd_types_appear_and_disappear() {
        let mut c = Catalog::default();
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster",
                     "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1alpha1", "served": true, "storage": false},
                                  {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                                  {"name": "v0", "served": false, "storage": false}]}
        });
        c.set_crd("widgets.example.com", Some(&crd));
        let t = c.lookup("example.com", "v1", "widgets").expect("served");
        assert!(t.has_status && !t.namespaced);
        assert_eq!(t.list_kind, "WidgetList");
        assert!(c.lookup("example.com", "v0", "widgets").is_none());
        assert_eq!(c.group_versions("example.com"), vec!["v1", "v1alpha1"]);
        c.set_crd("widgets.example.com", None);
        assert!(c.lookup("example.com", "v1", "widgets").is_none());
        assert!(c.api_group("example.com").is_none());
    }
}
