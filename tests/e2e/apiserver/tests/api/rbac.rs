//! Authentication and RBAC: kube-rs clients holding ServiceAccount tokens, raw requests where the
//! exact `Status` bodies matter, each RBAC feature allowed and refused.

use futures_util::StreamExt;
use hyper::{Method, StatusCode};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use wsgate_test_apiserver::Error;

use crate::harness::{Cluster, within};

/// Creates an object as the admin, failing the test unless it is created.
async fn admin_create(c: &Cluster, path: &str, body: Value) {
    let (s, out) = c.raw(Method::POST, path, Some(&body)).await;
    assert_eq!(s, StatusCode::CREATED, "create {path}: {out}");
}

async fn role(c: &Cluster, ns: &str, name: &str, rules: Value) {
    let path = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles");
    admin_create(c, &path, json!({"metadata": {"name": name}, "rules": rules})).await;
}

async fn cluster_role(c: &Cluster, name: &str, rules: Value) {
    let body = json!({"metadata": {"name": name}, "rules": rules});
    admin_create(c, "/apis/rbac.authorization.k8s.io/v1/clusterroles", body).await;
}

async fn role_binding(c: &Cluster, ns: &str, name: &str, role_ref: (&str, &str), subjects: Value) {
    let body = json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_ref.0, "name": role_ref.1},
        "subjects": subjects,
    });
    admin_create(c, &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"), body).await;
}

async fn cluster_role_binding(c: &Cluster, name: &str, role: &str, subjects: Value) {
    let body = json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    });
    admin_create(c, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", body).await;
}

fn sa(ns: &str, name: &str) -> Value {
    json!([{"kind": "ServiceAccount", "name": name, "namespace": ns}])
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).expect("configmap")
}

/// The message of a 403, failing the test on anything else.
fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 && s.reason == "Forbidden" => s.message,
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

fn unauthorized<T: std::fmt::Debug>(result: Result<T, kube::Error>) {
    match result {
        Err(kube::Error::Api(s)) if s.code == 401 && s.reason == "Unauthorized" => {}
        other => panic!("expected 401 Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_tokens_are_unauthorized_and_no_token_is_anonymous() {
    let c = Cluster::start().await;
    let (s, body) = c.raw_as(Some("not-a-token"), Method::GET, "/api/v1/namespaces/default/services", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    let (s, _) = c.raw_as(Some("not-a-token"), Method::GET, "/version", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a bad credential is never anonymous");

    // No credentials: system:anonymous, which system:public-info-viewer lets read version and health.
    for path in ["/version", "/healthz", "/readyz", "/livez"] {
        let (s, body) = c.raw_as(None, Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
    }
    let (s, body) = c.raw_as(None, Method::GET, "/api", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "forbidden: User \"system:anonymous\" cannot get path \"/api\"",
               "reason": "Forbidden", "details": {}, "code": 403})
    );
    let (s, body) = c.raw_as(None, Method::GET, "/api/v1/namespaces/default/services", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "services is forbidden: User \"system:anonymous\" cannot list resource \"services\" in API group \"\" in the namespace \"default\"",
               "reason": "Forbidden", "details": {"kind": "services"}, "code": 403})
    );
    // Authorization comes before routing: a path nobody serves is still forbidden, not 404.
    let (s, _) = c.raw_as(None, Method::GET, "/apis/nothing.example/v1/things", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let denied = c.server.denied_requests();
    assert_eq!(denied.len(), 3, "{denied:?}");
    assert!(denied.iter().all(|d| d.user == "system:anonymous"));
}

#[tokio::test]
async fn service_account_tokens_live_as_long_as_their_service_account() {
    let c = Cluster::start().await;
    match c.server.service_account_token("default", "ghost") {
        Err(Error::NoServiceAccount { namespace, name }) => {
            assert_eq!((namespace.as_str(), name.as_str()), ("default", "ghost"))
        }
        other => panic!("a token for a missing ServiceAccount: {other:?}"),
    }
    let robot = c.service_account("default", "robot").await;
    // system:discovery and system:public-info-viewer: every authenticated user reads version and discovery.
    let version = within(10, "version", robot.client.apiserver_version()).await.expect("version as the robot");
    assert_eq!(version.git_version, "v1.32.0");
    let groups = within(10, "groups", robot.client.list_api_groups()).await.expect("discovery as the robot");
    assert!(groups.groups.iter().any(|g| g.name == "rbac.authorization.k8s.io"));
    // Nothing else: no binding names the robot yet.
    let services: Api<Service> = Api::namespaced(robot.client.clone(), "default");
    assert_eq!(
        forbidden(services.list(&ListParams::default()).await),
        "services is forbidden: User \"system:serviceaccount:default:robot\" cannot list resource \"services\" in \
         API group \"\" in the namespace \"default\""
    );

    // The token dies with its ServiceAccount, and a new account of the same name does not revive it.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(c.client().await, "default");
    accounts.delete("robot", &DeleteParams::default()).await.expect("delete the ServiceAccount");
    unauthorized(robot.client.apiserver_version().await);
    let again = c.service_account("default", "robot").await;
    unauthorized(robot.client.apiserver_version().await);
    again.client.apiserver_version().await.expect("a fresh token for the new account works");
}

#[tokio::test]
async fn roles_grant_their_verbs_in_their_own_namespace_only() {
    let c = Cluster::start().await;
    c.namespace("a").await;
    c.namespace("b").await;
    let robot = c.service_account("a", "robot").await;
    role(
        &c,
        "a",
        "cm-editor",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create"]}]),
    )
    .await;
    // A ServiceAccount subject without a namespace means the binding's namespace.
    role_binding(&c, "a", "robot-cm", ("Role", "cm-editor"), json!([{"kind": "ServiceAccount", "name": "robot"}]))
        .await;

    let in_a: Api<ConfigMap> = Api::namespaced(robot.client.clone(), "a");
    in_a.create(&PostParams::default(), &configmap("made-by-robot")).await.expect("create is granted");
    in_a.get("made-by-robot").await.expect("get is granted");
    assert_eq!(in_a.list(&ListParams::default()).await.expect("list is granted").items.len(), 1);
    let mut events = in_a.watch(&WatchParams::default().timeout(1), "0").await.expect("watch is granted").boxed();
    let first = within(10, "first watch event", events.next()).await.expect("an event").expect("event");
    assert!(matches!(first, WatchEvent::Added(cm) if cm.metadata.name.as_deref() == Some("made-by-robot")));

    assert_eq!(
        forbidden(in_a.delete("made-by-robot", &DeleteParams::default()).await),
        "configmaps \"made-by-robot\" is forbidden: User \"system:serviceaccount:a:robot\" cannot delete resource \
         \"configmaps\" in API group \"\" in the namespace \"a\""
    );
    let patch = Patch::Merge(json!({"data": {"k": "w"}}));
    assert!(forbidden(in_a.patch("made-by-robot", &PatchParams::default(), &patch).await).contains("cannot patch"));
    let in_b: Api<ConfigMap> = Api::namespaced(robot.client.clone(), "b");
    assert_eq!(
        forbidden(in_b.list(&ListParams::default()).await),
        "configmaps is forbidden: User \"system:serviceaccount:a:robot\" cannot list resource \"configmaps\" in API \
         group \"\" in the namespace \"b\""
    );
    let everywhere: Api<ConfigMap> = Api::all(robot.client.clone());
    assert_eq!(
        forbidden(everywhere.list(&ListParams::default()).await),
        "configmaps is forbidden: User \"system:serviceaccount:a:robot\" cannot list resource \"configmaps\" in API \
         group \"\" at the cluster scope"
    );
    let message = forbidden(everywhere.watch(&WatchParams::default(), "0").await.map(|_| ()));
    assert!(
        message.contains("cannot watch resource \"configmaps\" in API group \"\" at the cluster scope"),
        "{message}"
    );
}

#[tokio::test]
async fn cluster_roles_apply_in_one_namespace_through_role_bindings_and_everywhere_through_cluster_role_bindings() {
    let c = Cluster::start().await;
    c.namespace("a").await;
    c.namespace("b").await;
    let robot = c.service_account("a", "robot").await;
    cluster_role(
        &c,
        "svc-reader",
        json!([{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}]),
    )
    .await;
    let in_a: Api<Service> = Api::namespaced(robot.client.clone(), "a");
    let in_b: Api<Service> = Api::namespaced(robot.client.clone(), "b");
    let everywhere: Api<Service> = Api::all(robot.client.clone());
    forbidden(in_a.list(&ListParams::default()).await);

    role_binding(&c, "a", "read-here", ("ClusterRole", "svc-reader"), sa("a", "robot")).await;
    in_a.list(&ListParams::default()).await.expect("granted in a by the RoleBinding");
    forbidden(in_b.list(&ListParams::default()).await);
    forbidden(everywhere.list(&ListParams::default()).await);

    cluster_role_binding(&c, "read-everywhere", "svc-reader", sa("a", "robot")).await;
    in_b.list(&ListParams::default()).await.expect("granted in b by the ClusterRoleBinding");
    everywhere.list(&ListParams::default()).await.expect("granted at the cluster scope");
    // The verbs are still only the ClusterRole's.
    let svc: Service =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})).expect("service");
    assert!(forbidden(in_b.create(&PostParams::default(), &svc).await).contains("cannot create resource \"services\""));
}

#[tokio::test]
async fn subresources_and_wildcards_match_like_the_real_rules() {
    let c = Cluster::start().await;
    c.namespace("a").await;
    let robot = c.service_account("a", "robot").await;
    let ing = json!({"metadata": {"name": "web"}, "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}});
    admin_create(&c, "/apis/networking.k8s.io/v1/namespaces/a/ingresses", ing).await;
    role(
        &c,
        "a",
        "ingress-writer",
        json!([{"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "patch"]}]),
    )
    .await;
    role_binding(&c, "a", "robot", ("Role", "ingress-writer"), sa("a", "robot")).await;

    let ingresses: Api<Ingress> = Api::namespaced(robot.client.clone(), "a");
    let status = Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}}));
    ingresses
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})))
        .await
        .expect("patch on the main resource is granted");
    assert_eq!(
        forbidden(ingresses.patch_status("web", &PatchParams::default(), &status).await),
        "ingresses.networking.k8s.io \"web\" is forbidden: User \"system:serviceaccount:a:robot\" cannot patch \
         resource \"ingresses/status\" in API group \"networking.k8s.io\" in the namespace \"a\""
    );

    // `*/status` grants every status subresource of the group.
    role(
        &c,
        "a",
        "any-status",
        json!([{"apiGroups": ["networking.k8s.io"], "resources": ["*/status"], "verbs": ["patch"]}]),
    )
    .await;
    role_binding(&c, "a", "robot-status", ("Role", "any-status"), sa("a", "robot")).await;
    ingresses.patch_status("web", &PatchParams::default(), &status).await.expect("granted by */status");

    // `*` resources and verbs within one group; other groups stay closed.
    let configmaps: Api<ConfigMap> = Api::namespaced(robot.client.clone(), "a");
    forbidden(configmaps.list(&ListParams::default()).await);
    role(&c, "a", "core-all", json!([{"apiGroups": [""], "resources": ["*"], "verbs": ["*"]}])).await;
    role_binding(&c, "a", "robot-core", ("Role", "core-all"), sa("a", "robot")).await;
    configmaps.create(&PostParams::default(), &configmap("c")).await.expect("every core verb");
    configmaps.delete("c", &DeleteParams::default()).await.expect("every core verb");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(robot.client.clone(), "a");
    assert!(forbidden(deployments.list(&ListParams::default()).await).contains("in API group \"apps\""));
}

#[tokio::test]
async fn resource_names_limit_a_rule_to_named_objects() {
    let c = Cluster::start().await;
    c.namespace("a").await;
    let robot = c.service_account("a", "robot").await;
    let admin: Api<ConfigMap> = Api::namespaced(c.client().await, "a");
    for name in ["allowed", "other"] {
        admin.create(&PostParams::default(), &configmap(name)).await.expect("admin creates");
    }
    role(
        &c,
        "a",
        "one-map",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["allowed"], "verbs": ["get", "list"]}]),
    )
    .await;
    role_binding(&c, "a", "robot", ("Role", "one-map"), sa("a", "robot")).await;
    let maps: Api<ConfigMap> = Api::namespaced(robot.client.clone(), "a");
    maps.get("allowed").await.expect("the named object");
    assert_eq!(
        forbidden(maps.get("other").await),
        "configmaps \"other\" is forbidden: User \"system:serviceaccount:a:robot\" cannot get resource \
         \"configmaps\" in API group \"\" in the namespace \"a\""
    );
    forbidden(maps.list(&ListParams::default()).await);
    // A list selecting exactly that name by field is a request for that name, as in a real cluster.
    let one = maps.list(&ListParams::default().fields("metadata.name=allowed")).await.expect("list by name");
    assert_eq!(one.items.len(), 1);
}

#[tokio::test]
async fn users_groups_and_service_accounts_are_subjects() {
    let c = Cluster::start().await;
    for ns in ["a", "b", "c"] {
        c.namespace(ns).await;
    }
    let by_sa = c.service_account("a", "by-sa").await;
    let by_user = c.service_account("a", "by-user").await;
    let by_group = c.service_account("b", "by-group").await;
    let nobody = c.service_account("c", "nobody").await;
    cluster_role(&c, "ns-reader", json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}])).await;
    let subjects = json!([
        {"kind": "ServiceAccount", "name": "by-sa", "namespace": "a"},
        {"kind": "User", "name": "system:serviceaccount:a:by-user"},
        {"kind": "Group", "name": "system:serviceaccounts:b"},
    ]);
    cluster_role_binding(&c, "ns-readers", "ns-reader", subjects).await;
    for who in [&by_sa, &by_user, &by_group] {
        Api::<Namespace>::all(who.client.clone()).list(&ListParams::default()).await.expect("a matching subject");
    }
    assert_eq!(
        forbidden(Api::<Namespace>::all(nobody.client.clone()).list(&ListParams::default()).await),
        "namespaces is forbidden: User \"system:serviceaccount:c:nobody\" cannot list resource \"namespaces\" in API \
         group \"\" at the cluster scope"
    );
    // The group every ServiceAccount is in.
    cluster_role_binding(&c, "all-sas", "ns-reader", json!([{"kind": "Group", "name": "system:serviceaccounts"}]))
        .await;
    Api::<Namespace>::all(nobody.client.clone()).list(&ListParams::default()).await.expect("system:serviceaccounts");
}

#[tokio::test]
async fn non_resource_urls_follow_the_default_policy_and_explicit_rules() {
    let c = Cluster::start().await;
    let robot = c.service_account("default", "robot").await;
    let token = Some(robot.token.as_str());
    for path in ["/version", "/healthz", "/api", "/api/v1", "/apis", "/apis/networking.k8s.io/v1", "/openapi/v3"] {
        let (s, body) = c.raw_as(token, Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "{path} for an authenticated user: {body}");
    }
    let (s, body) = c.raw_as(token, Method::GET, "/", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "forbidden: User \"system:serviceaccount:default:robot\" cannot get path \"/\"");
    let (s, _) = c.raw_as(token, Method::POST, "/version", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "system:discovery grants get only");
    cluster_role(&c, "root", json!([{"nonResourceURLs": ["/"], "verbs": ["get"]}])).await;
    cluster_role_binding(&c, "root", "root", sa("default", "robot")).await;
    let (s, body) = c.raw_as(token, Method::GET, "/", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // The default policy is stored like any object.
    let roles: Api<ClusterRole> = Api::all(c.client().await);
    let names: Vec<String> = roles
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect();
    for wanted in ["cluster-admin", "system:basic-user", "system:discovery", "system:public-info-viewer"] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(c.client().await);
    let public = bindings.get("system:public-info-viewer").await.expect("binding");
    let groups: Vec<String> = public.subjects.unwrap_or_default().into_iter().map(|s| s.name).collect();
    assert_eq!(groups, ["system:authenticated", "system:unauthenticated"]);
}

#[tokio::test]
async fn bindings_to_missing_roles_are_named_in_the_reason() {
    let c = Cluster::start().await;
    c.namespace("a").await;
    let robot = c.service_account("a", "robot").await;
    role_binding(&c, "a", "dangling", ("Role", "ghost"), sa("a", "robot")).await;
    let maps: Api<ConfigMap> = Api::namespaced(robot.client.clone(), "a");
    assert_eq!(
        forbidden(maps.list(&ListParams::default()).await),
        "configmaps is forbidden: User \"system:serviceaccount:a:robot\" cannot list resource \"configmaps\" in API \
         group \"\" in the namespace \"a\": RBAC: role.rbac.authorization.k8s.io \"ghost\" not found"
    );
    role(&c, "a", "ghost", json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}])).await;
    maps.list(&ListParams::default()).await.expect("the role now exists");
}

#[tokio::test]
async fn rbac_objects_are_defaulted_and_validated() {
    let c = Cluster::start().await;
    c.namespace("a").await;
    let roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/a/roles";
    let bad = json!({"metadata": {"name": "bad"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}, {"nonResourceURLs": ["/x"], "verbs": ["get"]}]});
    let (s, body) = c.raw(Method::POST, roles, Some(&bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["message"],
        "Role.rbac.authorization.k8s.io \"bad\" is invalid: [rules[0].verbs: Required value: verbs must contain at \
         least one value, rules[1].nonResourceURLs: Invalid value: []string{\"/x\"}: namespaced rules cannot apply to \
         non-resource URLs]"
    );
    let crbs = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
    let bad = json!({"metadata": {"name": "bad"}, "roleRef": {"kind": "Role", "name": "r"},
                     "subjects": [{"kind": "ServiceAccount", "name": "robot"}, {"kind": "Robot", "name": "x"}]});
    let (s, body) = c.raw(Method::POST, crbs, Some(&bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["message"],
        "ClusterRoleBinding.rbac.authorization.k8s.io \"bad\" is invalid: [roleRef.kind: Unsupported value: \"Role\": \
         supported values: \"ClusterRole\", subjects[0].namespace: Required value, subjects[1].kind: Unsupported value: \
         \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"]"
    );

    // roleRef.apiGroup and a User's apiGroup are defaulted; a ServiceAccount's stays empty.
    let rbs: Api<RoleBinding> = Api::namespaced(c.client().await, "a");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "ok"},
        "roleRef": {"apiGroup": "", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "robot"}],
    }))
    .expect("binding");
    let stored = rbs.create(&PostParams::default(), &binding).await.expect("created");
    assert_eq!(stored.role_ref.api_group.as_deref(), Some("rbac.authorization.k8s.io"));
    let subjects = stored.subjects.expect("subjects");
    assert_eq!(subjects[0].api_group.as_deref(), Some("rbac.authorization.k8s.io"));
    assert_eq!(subjects[1].api_group, None);
    // roleRef cannot change.
    let patch = Patch::Merge(json!({"roleRef": {"name": "edit"}}));
    let e = rbs.patch("ok", &PatchParams::default(), &patch).await.expect_err("roleRef is immutable");
    let kube::Error::Api(s) = e else { panic!("an API error") };
    assert_eq!(
        s.message,
        "RoleBinding.rbac.authorization.k8s.io \"ok\" is invalid: roleRef: Invalid value: \
         rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"
    );
}
