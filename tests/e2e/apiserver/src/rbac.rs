//! Authorization: kube-apiserver's request attributes and its RBAC authorizer, evaluated over the
//! stored `rbac.authorization.k8s.io/v1` Roles, ClusterRoles, RoleBindings and ClusterRoleBindings,
//! plus the default policy every cluster starts with.
//!
//! ```text
//!   method + path + query ──attributes()──► verb, API group, resource[/subresource], name, namespace
//!                                           (or a non-resource path: /version, /api, /openapi/v3 …)
//!   user in system:masters ───────────────► allowed (the privileged-group authorizer, before RBAC)
//!   ClusterRoleBindings, then RoleBindings of the request's namespace, whose subjects match the user
//!      └─► rules of the Role / ClusterRole they reference ──rule_allows()──► first match: allowed
//!                                                           none: 403 Forbidden (the real message;
//!                                                           bindings to missing roles named after "RBAC:")
//! ```
//!
//! Not modelled: aggregated ClusterRoles (`aggregationRule` is stored, never evaluated), the escalation
//! checks on writes of roles and bindings (`escalate`/`bind`), impersonation, other authorizers.

use std::collections::HashMap;

use hyper::Method;
use serde_json::{Value, json};

use crate::authn::{self, UserInfo};
use crate::catalog::StorageKey;
use crate::meta;
use crate::registry::{self, WriteOptions};
use crate::status::ApiError;
use crate::store::State;

/// The API group of RBAC objects.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// What a request asks to do, as the authorizers see it (`authorizer.Attributes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`; for
    /// non-resource requests the lowercased HTTP method.
    pub verb: String,
    /// Whether the path names API objects (`/api/v1/…`, `/apis/g/v/…`) rather than a plain URL.
    pub resource_request: bool,
    pub path: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub namespace: String,
}

/// Parses a request like `RequestInfoFactory.NewRequestInfo` does.
pub fn attributes(user: UserInfo, method: &Method, path: &str, query: &HashMap<String, String>) -> Attributes {
    let mut a = Attributes {
        user,
        verb: method.as_str().to_ascii_lowercase(),
        resource_request: false,
        path: path.to_string(),
        api_group: String::new(),
        api_version: String::new(),
        resource: String::new(),
        subresource: String::new(),
        name: String::new(),
        namespace: String::new(),
    };
    let trimmed = path.trim_matches('/');
    let parts: Vec<&str> = if trimmed.is_empty() { Vec::new() } else { trimmed.split('/').collect() };
    if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
        return a;
    }
    let mut rest = &parts[1..];
    if parts[0] == "apis" {
        if rest.len() < 3 {
            return a;
        }
        a.api_group = rest[0].to_string();
        rest = &rest[1..];
    }
    a.api_version = rest[0].to_string();
    rest = &rest[1..];
    let special_verb = matches!(rest[0], "watch" | "proxy");
    if special_verb {
        if rest.len() < 2 {
            // The real server cannot build request info for these and answers 500; as a path they
            // are plain URLs here.
            return a;
        }
        a.verb = rest[0].to_string();
        rest = &rest[1..];
    } else {
        a.verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
    }
    a.resource_request = true;
    if rest[0] == "namespaces" && rest.len() > 1 {
        a.namespace = rest[1].to_string();
        // `/namespaces/{ns}/{resource}…` addresses objects in the namespace; `/namespaces/{ns}`,
        // `…/status` and `…/finalize` address the namespace itself.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    a.resource = rest[0].to_string();
    if rest.len() >= 2 {
        a.name = rest[1].to_string();
    }
    if rest.len() >= 3 && a.verb != "proxy" {
        a.subresource = rest[2].to_string();
    }
    if a.name.is_empty() && a.verb == "get" {
        let (watch, decoded) = watch_param(query.get("watch").map(String::as_str));
        a.verb = if watch { "watch" } else { "list" }.into();
        // A list or watch of one object by field selector is a request for that name.
        if decoded && let Some(name) = exact_name(query.get("fieldSelector").map(String::as_str).unwrap_or_default()) {
            a.name = name;
        }
    }
    if a.name.is_empty() && a.verb == "delete" {
        a.verb = "deletecollection".into();
    }
    a
}

/// `watch` as ListOptions decodes it: Go's `ParseBool`; a value it cannot parse fails the decode,
/// after which anything but "false"/"0" means watch. Returns (watch, decoded cleanly).
fn watch_param(value: Option<&str>) -> (bool, bool) {
    match value {
        None => (false, true),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => (true, true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => (false, true),
        Some(other) => (!matches!(other.to_ascii_lowercase().as_str(), "false" | "0"), false),
    }
}

/// The name a field selector requires with `metadata.name=x` or `metadata.name==x`, when it is a
/// valid path segment.
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let term = term.trim();
        let value = term.strip_prefix("metadata.name==").or_else(|| term.strip_prefix("metadata.name="))?;
        meta::check_path_segment(value).is_empty().then(|| value.to_string())
    })
}

fn key(resource: &str) -> StorageKey {
    StorageKey { group: GROUP.into(), resource: resource.into() }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// Whether a binding's subjects include the user (`appliesTo`). ServiceAccount subjects without a
/// namespace mean the binding's own namespace.
fn applies_to(user: &UserInfo, subjects: &Value, binding_namespace: &str) -> bool {
    subjects.as_array().into_iter().flatten().any(|s| {
        let name = s["name"].as_str().unwrap_or_default();
        match s["kind"].as_str().unwrap_or_default() {
            "User" => user.name == name,
            "Group" => user.in_group(name),
            "ServiceAccount" => {
                let ns = s["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(binding_namespace);
                !ns.is_empty() && user.name == authn::service_account_user(ns, name)
            }
            _ => false,
        }
    })
}

/// The rules of the role a binding references, or the error the real resolver reports.
fn referenced_rules(st: &State, role_ref: &Value, binding_namespace: &str) -> Result<Vec<Value>, String> {
    let name = role_ref["name"].as_str().unwrap_or_default();
    let (found, singular) = match role_ref["kind"].as_str().unwrap_or_default() {
        "Role" => (st.get(&key("roles"), binding_namespace, name), "role"),
        "ClusterRole" => (st.get(&key("clusterroles"), "", name), "clusterrole"),
        other => return Err(format!("unsupported role reference kind: {other:?}")),
    };
    match found {
        Some(role) => Ok(role["rules"].as_array().cloned().unwrap_or_default()),
        None => Err(format!("{singular}.{GROUP} {name:?} not found")),
    }
}

/// `RuleAllows`: verb, then API group, resource (`resource/subresource`, `*`, `*/subresource`) and
/// resource name for resource requests; non-resource URLs (exact, `*`, or a `prefix*`) otherwise.
pub fn rule_allows(a: &Attributes, rule: &Value) -> bool {
    let verbs = strings(&rule["verbs"]);
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if !a.resource_request {
        return strings(&rule["nonResourceURLs"]).iter().any(|url| {
            *url == "*" || *url == a.path || (url.ends_with('*') && a.path.starts_with(url.trim_end_matches('*')))
        });
    }
    let groups = strings(&rule["apiGroups"]);
    if !groups.iter().any(|g| *g == "*" || *g == a.api_group) {
        return false;
    }
    let combined =
        if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
    let resource_ok = strings(&rule["resources"]).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty()
                && r.len() == a.subresource.len() + 2
                && r.strip_prefix("*/") == Some(&a.subresource))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(&rule["resourceNames"]);
    names.is_empty() || names.contains(&a.name.as_str())
}

/// Decides a request: `Ok` when allowed, else the 403 the real server answers.
pub fn authorize(st: &State, a: &Attributes) -> Result<(), ApiError> {
    if a.user.in_group(authn::MASTERS) {
        return Ok(());
    }
    let mut errors: Vec<String> = Vec::new();
    let mut visit = |role_ref: &Value, binding_namespace: &str| -> bool {
        match referenced_rules(st, role_ref, binding_namespace) {
            Ok(rules) => rules.iter().any(|rule| rule_allows(a, rule)),
            Err(e) => {
                if !errors.contains(&e) {
                    errors.push(e);
                }
                false
            }
        }
    };
    for binding in st.list(&key("clusterrolebindings"), None) {
        if applies_to(&a.user, &binding["subjects"], "") && visit(&binding["roleRef"], "") {
            return Ok(());
        }
    }
    if !a.namespace.is_empty() {
        for binding in st.list(&key("rolebindings"), Some(&a.namespace)) {
            if applies_to(&a.user, &binding["subjects"], &a.namespace) && visit(&binding["roleRef"], &a.namespace) {
                return Ok(());
            }
        }
    }
    let reason = match errors.len() {
        0 => String::new(),
        1 => format!("RBAC: {}", errors[0]),
        _ => format!("RBAC: [{}]", errors.join(", ")),
    };
    Err(forbidden(a, &reason))
}

/// The 403 for a denied request (`responsewriters.Forbidden`).
pub fn forbidden(a: &Attributes, reason: &str) -> ApiError {
    let user = &a.user.name;
    let mut message = if !a.resource_request {
        format!("User {user:?} cannot {} path {:?}", a.verb, a.path)
    } else {
        let resource =
            if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", a.namespace)
        };
        format!("User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}", a.verb, a.api_group)
    };
    // The real server escapes what could read as HTML.
    message = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    if a.resource_request {
        ApiError::forbidden(&a.api_group, &a.resource, &a.name, &message)
    } else {
        ApiError::forbidden("", "", "", &message)
    }
}

/// The discovery and health paths every authenticated user may read (`system:discovery`).
const DISCOVERY_URLS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
];
/// The paths everyone, authenticated or not, may read (`system:public-info-viewer`).
const PUBLIC_INFO_URLS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// The default ClusterRoles and ClusterRoleBindings a new cluster has (the subset of the real
/// bootstrap policy that concerns users and service accounts).
pub fn default_policy() -> Vec<(&'static str, Value)> {
    let meta = |name: &str| {
        json!({
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        })
    };
    let role = |name: &str, rules: Value| {
        (
            "clusterroles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(name), "rules": rules}),
        )
    };
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> =
            groups.iter().map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g})).collect();
        (
            "clusterrolebindings",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": meta(name),
                "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
                "subjects": subjects,
            }),
        )
    };
    vec![
        role(
            "cluster-admin",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        ),
        role("system:discovery", json!([{"nonResourceURLs": DISCOVERY_URLS, "verbs": ["get"]}])),
        role("system:public-info-viewer", json!([{"nonResourceURLs": PUBLIC_INFO_URLS, "verbs": ["get"]}])),
        role(
            "system:basic-user",
            json!([
                {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
            ]),
        ),
        binding("cluster-admin", &[authn::MASTERS]),
        binding("system:discovery", &[authn::AUTHENTICATED]),
        binding("system:public-info-viewer", &[authn::AUTHENTICATED, authn::UNAUTHENTICATED]),
        binding("system:basic-user", &[authn::AUTHENTICATED]),
    ]
}

/// Stores [`default_policy`].
pub fn bootstrap(st: &mut State) {
    for (resource, obj) in default_policy() {
        let Some(rt) = st.catalog.lookup(GROUP, "v1", resource).cloned() else { continue };
        if let Err(e) = registry::create(st, &rt, None, obj, &WriteOptions::default()) {
            tracing::error!(resource, error = %e.message, "default RBAC policy object not created");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, path: &str, query: &[(&str, &str)]) -> Attributes {
        let q = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        attributes(UserInfo::service_account("ns", "sa"), &method, path, &q)
    }

    /// (resource request, verb, API group, resource, subresource, name, namespace)
    type Summary<'a> = (bool, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str);

    fn summary(a: &Attributes) -> Summary<'_> {
        (a.resource_request, &a.verb, &a.api_group, &a.resource, &a.subresource, &a.name, &a.namespace)
    }

    #[test]
    fn request_attributes_follow_the_request_info_factory() {
        type Case<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], Summary<'a>);
        let cases: Vec<Case> = vec![
            (Method::GET, "/api/v1/namespaces/a/services", &[], (true, "list", "", "services", "", "", "a")),
            (Method::GET, "/api/v1/services", &[("watch", "true")], (true, "watch", "", "services", "", "", "")),
            (Method::GET, "/api/v1/services", &[("watch", "yes")], (true, "watch", "", "services", "", "", "")),
            (Method::GET, "/api/v1/services", &[("watch", "0")], (true, "list", "", "services", "", "", "")),
            (
                Method::PATCH,
                "/apis/networking.k8s.io/v1/namespaces/a/ingresses/web/status",
                &[],
                (true, "patch", "networking.k8s.io", "ingresses", "status", "web", "a"),
            ),
            (Method::GET, "/api/v1/namespaces/a", &[], (true, "get", "", "namespaces", "", "a", "a")),
            (
                Method::PUT,
                "/api/v1/namespaces/a/finalize",
                &[],
                (true, "update", "", "namespaces", "finalize", "a", "a"),
            ),
            (Method::GET, "/api/v1/namespaces", &[], (true, "list", "", "namespaces", "", "", "")),
            (
                Method::DELETE,
                "/api/v1/namespaces/a/configmaps",
                &[],
                (true, "deletecollection", "", "configmaps", "", "", "a"),
            ),
            (Method::POST, "/api/v1/namespaces/a/configmaps", &[], (true, "create", "", "configmaps", "", "", "a")),
            (
                Method::GET,
                "/api/v1/namespaces/a/configmaps",
                &[("fieldSelector", "metadata.name=one")],
                (true, "list", "", "configmaps", "", "one", "a"),
            ),
            (Method::GET, "/api/v1/watch/namespaces/a/pods/p", &[], (true, "watch", "", "pods", "", "p", "a")),
            (Method::GET, "/apis/apps/v1", &[], (false, "get", "", "", "", "", "")),
            (Method::GET, "/api/v1", &[], (false, "get", "", "", "", "", "")),
            (Method::POST, "/version", &[], (false, "post", "", "", "", "", "")),
        ];
        for (method, path, query, want) in cases {
            let a = attrs(method, path, query);
            assert_eq!(summary(&a), want, "{path} {query:?}");
        }
    }

    #[test]
    fn rules_match_like_rule_allows() {
        let patch_status = attrs(Method::PATCH, "/apis/networking.k8s.io/v1/namespaces/a/ingresses/web/status", &[]);
        let rule = |v: Value| v;
        let grants = |r: Value| rule_allows(&patch_status, &rule(r));
        assert!(grants(
            json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["patch"]})
        ));
        assert!(grants(json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})));
        assert!(grants(json!({"apiGroups": ["networking.k8s.io"], "resources": ["*/status"], "verbs": ["patch"]})));
        assert!(grants(
            json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["patch"], "resourceNames": ["web"]})
        ));
        assert!(!grants(json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["patch"]})));
        assert!(!grants(
            json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]})
        ));
        assert!(!grants(json!({"apiGroups": [""], "resources": ["ingresses/status"], "verbs": ["patch"]})));
        assert!(!grants(
            json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["patch"], "resourceNames": ["other"]})
        ));
        assert!(!grants(json!({"apiGroups": ["networking.k8s.io"], "resources": ["*/scale"], "verbs": ["patch"]})));

        let version = attrs(Method::GET, "/version", &[]);
        assert!(rule_allows(&version, &json!({"nonResourceURLs": ["/version"], "verbs": ["get"]})));
        assert!(rule_allows(&version, &json!({"nonResourceURLs": ["/ver*"], "verbs": ["get"]})));
        assert!(!rule_allows(&version, &json!({"nonResourceURLs": ["/api/*"], "verbs": ["get"]})));
        assert!(!rule_allows(&version, &json!({"nonResourceURLs": ["/version"], "verbs": ["post"]})));
    }

    #[test]
    fn forbidden_messages_match_the_real_wording() {
        let a = attrs(Method::PATCH, "/apis/networking.k8s.io/v1/namespaces/ns/ingresses/x/status", &[]);
        assert_eq!(
            forbidden(&a, "").message,
            "ingresses.networking.k8s.io \"x\" is forbidden: User \"system:serviceaccount:ns:sa\" cannot patch \
             resource \"ingresses/status\" in API group \"networking.k8s.io\" in the namespace \"ns\""
        );
        let a = attrs(Method::GET, "/api/v1/services", &[("watch", "1")]);
        let e = forbidden(&a, "RBAC: role.rbac.authorization.k8s.io \"r\" not found");
        assert_eq!(
            e.message,
            "services is forbidden: User \"system:serviceaccount:ns:sa\" cannot watch resource \"services\" in API \
             group \"\" at the cluster scope: RBAC: role.rbac.authorization.k8s.io \"r\" not found"
        );
        assert_eq!(e.details, json!({"kind": "services"}));
        let a = attrs(Method::GET, "/", &[]);
        let e = forbidden(&a, "");
        assert_eq!(e.message, "forbidden: User \"system:serviceaccount:ns:sa\" cannot get path \"/\"");
        assert_eq!(e.details, json!({}));
    }
}
