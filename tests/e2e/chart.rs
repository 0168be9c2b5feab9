//! The Helm chart against the API server: every object `helm template` renders is applied the way
//! helm 4 installs (server-side apply), and the real wsgate binary runs as the chart's
//! ServiceAccount with exactly the chart's RBAC, configured by the chart's Deployment arguments.
//!
//! ```text
//!   helm template charts/wsgate ──► kubectl apply --server-side ──► in-repo API server: stored and validated
//!                                                                    real cluster: --dry-run=server
//!   chart's ServiceAccount, (Cluster)Roles, bindings ──► token for the ServiceAccount ──► wsgate run <chart args>
//!       ──► routes live, traffic echoes, status written, Event recorded, Lease held, nothing refused
//!   the same with one rule removed ──► exactly that part fails (403s counted, status or endpoints missing)
//!   each rule of controller::rbac::RULES removed in turn ──► wsgate is refused exactly that (none is spare)
//! ```
//!
//! helm comes from `$HELM`, else PATH, else `.ci/tools.sh` (as tests/chart.rs finds it); kubectl from
//! `$KUBECTL`, else PATH, else `.ci/tools.sh`. A missing tool is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::Deserialize;
use serde_json::{Value, json};
use wsgate::controller::rbac::RULES;
use wsgate::crd::WebSocketRoute;

use super::{LIVE, PORT, conditions, echo, ingress, ready, route, service, slice};
use crate::harness::{self, Cluster, TempDir, TestNamespace, TestNet, Wsgate, eventually, ingress_addresses};
use crate::tools;

/// Longest any helm or kubectl invocation may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// The address the test publishes as the chart Service's load balancer (TEST-NET-2).
const LOAD_BALANCER_IP: &str = "198.51.100.20";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$VAR`, else `name` on PATH, else the tools `.ci/tools.sh` installs (and caches).
fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| tools::tool("HELM", "helm"))
}

fn kubectl() -> &'static Path {
    static KUBECTL: OnceLock<PathBuf> = OnceLock::new();
    KUBECTL.get_or_init(|| tools::tool("KUBECTL", "kubectl"))
}

/// Runs a command to completion within TOOL_TIMEOUT, killing it if it takes longer.
fn run(command: Command) -> Output {
    tools::run(command, TOOL_TIMEOUT)
}

/// `helm template RELEASE charts/wsgate --namespace NS --include-crds [-f VALUES] [--set K=V]…` as JSON documents.
fn render(release: &str, namespace: &str, values: Option<&str>, set: &[(&str, &str)]) -> Vec<Value> {
    let mut command = Command::new(helm());
    command.args(["template", release]).arg(root().join("charts/wsgate"));
    command.args(["--namespace", namespace, "--include-crds"]);
    if let Some(values) = values {
        command.arg("-f").arg(root().join("charts/wsgate/ci").join(values));
    }
    for (key, value) in set {
        command.args(["--set", &format!("{key}={value}")]);
    }
    let output = run(command);
    assert!(output.status.success(), "helm template failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).expect("helm renders YAML that maps to JSON"))
        .filter(|document| !document.is_null())
        .collect()
}

fn kind(document: &Value) -> &str {
    document["kind"].as_str().unwrap_or_default()
}

fn name(document: &Value) -> &str {
    document["metadata"]["name"].as_str().unwrap_or_default()
}

fn only<'a>(documents: &'a [Value], wanted: &str) -> &'a Value {
    let found: Vec<&Value> = documents.iter().filter(|d| kind(d) == wanted).collect();
    assert_eq!(found.len(), 1, "expected exactly one {wanted}");
    found[0]
}

/// `kubectl apply --server-side` of `documents` as the cluster's user (`--dry-run=server` when
/// `dry_run`); Ok(stdout) or Err(stderr).
fn apply(cluster: &Cluster, documents: &[Value], dry_run: bool) -> Result<String, String> {
    let dir = TempDir::new("apply");
    let file = dir.0.join("manifests.yaml");
    let yaml: Vec<String> =
        documents.iter().map(|d| serde_yaml::to_string(d).expect("a document serializes")).collect();
    std::fs::write(&file, yaml.join("---\n")).expect("write manifests");
    let mut command = Command::new(kubectl());
    command.arg("--kubeconfig").arg(&cluster.kubeconfig).arg("--cache-dir").arg(dir.0.join("cache"));
    command.args(["apply", "--server-side", "--field-manager=wsgate-e2e", "-f"]).arg(&file);
    if dry_run {
        command.arg("--dry-run=server");
    }
    let output = run(command);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() { Ok(stdout) } else { Err(format!("{stderr}\n(stdout: {stdout})")) }
}

/// `serviceaccount/name`, `clusterrole.rbac.authorization.k8s.io/name`: how kubectl names an object.
fn kubectl_name(document: &Value) -> String {
    let api_version = document["apiVersion"].as_str().unwrap_or_default();
    let kind = kind(document).to_ascii_lowercase();
    match api_version.split_once('/') {
        Some((group, _)) => format!("{kind}.{group}/{}", name(document)),
        None => format!("{kind}/{}", name(document)),
    }
}

/// A release name unique on this machine (cluster-scoped objects carry it, so runs never collide).
fn release_name(namespace: &TestNamespace) -> String {
    let suffix = namespace.name.rsplit('-').next().unwrap_or_default();
    format!("wsgate-{}-{suffix}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rendered_object_is_accepted_by_the_api_server() {
    let cluster = Cluster::start().await;
    let dry_run = cluster.local.is_none();
    if dry_run {
        eprintln!("KUBECONFIG names a real cluster: applying with --dry-run=server, nothing is created");
    }
    let release_ns = cluster.namespace("chart").await;
    let watch_ns = cluster.namespace("chart-apps").await;
    let release = release_name(&release_ns);
    let scenarios: [(&str, Vec<(&str, &str)>); 2] = [
        ("defaults-values.yaml", vec![]),
        ("single-namespace-values.yaml", vec![("controller.watchNamespace", watch_ns.name.as_str())]),
    ];
    let mut last = Vec::new();
    for (index, (values, set)) in scenarios.iter().enumerate() {
        let release = format!("{release}-{index}");
        let documents = render(&release, &release_ns.name, Some(values), set);
        let kinds: Vec<&str> = documents.iter().map(kind).collect();
        for wanted in ["CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Deployment", "IngressClass"] {
            assert!(kinds.contains(&wanted), "{values}: {wanted} rendered ({kinds:?})");
        }
        let out = apply(&cluster, &documents, dry_run).unwrap_or_else(|e| panic!("{values}: not accepted:\n{e}"));
        for document in &documents {
            let line = format!("{} serverside-applied", kubectl_name(document));
            assert!(out.lines().any(|l| l.starts_with(&line)), "{values}: `{line}` in:\n{out}");
        }
        assert_eq!(out.lines().count(), documents.len(), "{values}: one line per object:\n{out}");
        eprintln!("{values}: {} objects accepted", documents.len());
        last = documents;
    }

    if !dry_run {
        // What was applied is stored: the Deployment as rendered, the Role in the watched namespace.
        let deployment = only(&last, "Deployment");
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(cluster.client.clone(), &release_ns.name);
        let stored = deployments.get(name(deployment)).await.expect("the Deployment is stored");
        let stored = serde_json::to_value(stored).expect("serializes");
        assert_eq!(
            stored["spec"]["template"]["spec"]["containers"][0]["args"],
            deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        );
        let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(cluster.client.clone(), &watch_ns.name);
        assert!(
            !roles.list(&ListParams::default()).await.expect("roles").items.is_empty(),
            "a Role in the watched namespace"
        );
    }

    // The check can fail: a misspelled field and an RBAC rule without verbs are refused, by name.
    let mut broken = last.clone();
    for document in broken.iter_mut() {
        if kind(document) == "Deployment" {
            document["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = json!("Always");
        }
        if kind(document) == "Role" {
            document["rules"][0]["verbs"] = json!([]);
        }
    }
    let error = apply(&cluster, &broken, dry_run).expect_err("broken manifests are refused");
    eprintln!("broken manifests, as kubectl reports them:\n{error}");
    assert!(error.contains("imagePullPolicyy"), "the unknown field is named:\n{error}");
    assert!(
        error.contains("rules[0].verbs: Required value: verbs must contain at least one value"),
        "the empty rule is named:\n{error}"
    );
}

/// The chart installed for one namespace (watched and holding the release), as far as wsgate needs:
/// its RBAC, ServiceAccount, traffic Service and IngressClass are applied; the Deployment's arguments
/// are what wsgate runs with.
struct Install {
    release: String,
    user: String,
    ingress_class: String,
    wsgate: Wsgate,
    _kubeconfig: TempDir,
}

/// Removes `verb` (`*`: every verb) on `resource` from every rule of the rendered (Cluster)Roles; a
/// rule left with no verb is removed. Fails the test if no rule granted it.
fn revoke(documents: &mut [Value], resource: &str, verb: &str) {
    let mut revoked = 0;
    for document in documents.iter_mut().filter(|d| matches!(kind(d), "Role" | "ClusterRole")) {
        let Some(rules) = document["rules"].as_array_mut() else { continue };
        for rule in rules.iter_mut() {
            let grants = rule["resources"].as_array().is_some_and(|r| r.iter().any(|x| x == resource));
            if let (true, Some(verbs)) = (grants, rule["verbs"].as_array_mut()) {
                let before = verbs.len();
                verbs.retain(|v| verb != "*" && v != verb);
                revoked += before - verbs.len();
            }
        }
        rules.retain(|rule| rule["verbs"].as_array().is_some_and(|v| !v.is_empty()));
    }
    assert!(revoked > 0, "the chart grants no {verb} on {resource}");
}

impl Install {
    /// Renders the chart for `namespace`, applies it (minus `revoked` permissions), issues a token for
    /// its ServiceAccount and starts wsgate with the Deployment's arguments as that ServiceAccount.
    async fn new(cluster: &Cluster, namespace: &str, revoked: &[(&str, &str)]) -> Install {
        // Cluster-scoped objects carry the release name: one per namespace, so installs never share them.
        let release = format!("wsgate-{}", namespace.rsplit('-').next().unwrap_or_default());
        let mut documents = render(&release, namespace, None, &[("controller.watchNamespace", namespace)]);
        for (resource, verb) in revoked {
            revoke(&mut documents, resource, verb);
        }
        let wanted =
            ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "IngressClass"];
        let applied: Vec<Value> = documents.iter().filter(|d| wanted.contains(&kind(d))).cloned().collect();
        apply(cluster, &applied, false).unwrap_or_else(|e| panic!("the chart's objects are accepted:\n{e}"));

        // Play the cloud controller: the chart's LoadBalancer Service gets an address.
        let traffic = documents
            .iter()
            .find(|d| kind(d) == "Service" && d["spec"]["type"] == "LoadBalancer")
            .expect("the chart's traffic Service");
        let services: Api<Service> = Api::namespaced(cluster.client.clone(), namespace);
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": LOAD_BALANCER_IP}]}}});
        services.patch_status(name(traffic), &PatchParams::default(), &Patch::Merge(&status)).await.expect("LB status");

        let account = name(only(&documents, "ServiceAccount")).to_string();
        let local = cluster.local.as_ref().expect("tokens are issued by the in-repo API server");
        let token = local.service_account_token(namespace, &account).expect("a token for the chart's ServiceAccount");
        let dir = TempDir::new("sa-kubeconfig");
        let kubeconfig = dir.0.join("kubeconfig");
        local.write_kubeconfig_for_token(&kubeconfig, &token).expect("write kubeconfig");

        let deployment = only(&documents, "Deployment");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<String> = container["args"]
            .as_array()
            .expect("container args")
            .iter()
            .map(|a| a.as_str().expect("string args").to_string())
            .map(|a| {
                // Listeners on loopback at free ports instead of the pod's fixed ports; JSON logs, which
                // the harness reads its addresses from (the chart's default format too).
                if a.starts_with("--http-addr=") {
                    "--http-addr=127.0.0.1:0".to_string()
                } else if a.starts_with("--admin-addr=") {
                    "--admin-addr=127.0.0.1:0".to_string()
                } else if a.starts_with("--log-format=") {
                    "--log-format=json".to_string()
                } else {
                    a
                }
            })
            .collect();
        assert!(
            args.contains(&format!("--namespace={namespace}")),
            "the chart scopes wsgate to the namespace: {args:?}"
        );
        // The downward API of the chart's Deployment sets these.
        let pod = format!("{release}-pod-0");
        let env = [("POD_NAME", pod.as_str()), ("POD_NAMESPACE", namespace)];
        let env_names: Vec<&str> =
            container["env"].as_array().into_iter().flatten().filter_map(|e| e["name"].as_str()).collect();
        assert!(env.iter().all(|(k, _)| env_names.contains(k)), "the chart sets {env_names:?}");
        let wsgate = Wsgate::launch(&kubeconfig, &args, &env);
        let ingress_class = name(only(&documents, "IngressClass")).to_string();
        Install {
            release,
            user: format!("system:serviceaccount:{namespace}:{account}"),
            ingress_class,
            wsgate,
            _kubeconfig: dir,
        }
    }

    /// The API server's refusals of this install's requests.
    fn denied(&self, cluster: &Cluster) -> Vec<String> {
        let local = cluster.local.as_ref().expect("in-repo API server");
        local.denied_requests().into_iter().filter(|d| d.user == self.user).map(|d| d.message).collect()
    }

    async fn metric(&self, series: &str) -> f64 {
        self.wsgate.metric(series).await
    }
}

/// Fixture for the RBAC tests: the in-repo API server (tokens are issued there), a namespace, and
/// echo backends. `None` (after saying why) against a real cluster.
async fn local_fixture(test: &str) -> Option<(Cluster, TestNamespace, TestNet)> {
    let cluster = Cluster::start().await;
    if cluster.local.is_none() {
        eprintln!(
            "KUBECONFIG names a real cluster: this test needs the in-repo API server, which issues ServiceAccount \
             tokens and lists refused requests; nothing to check here"
        );
        return None;
    }
    let ns = cluster.namespace(test).await;
    Some((cluster, ns, TestNet::create()))
}

fn api<K>(cluster: &Cluster, ns: &TestNamespace) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(cluster.client.clone(), &ns.name)
}

async fn create<K>(cluster: &Cluster, ns: &TestNamespace, object: &K)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    api::<K>(cluster, ns)
        .create(&kube::api::PostParams::default(), object)
        .await
        .unwrap_or_else(|e| panic!("create {object:?}: {e}"));
}

fn class(mut ingress: Ingress, class: &str) -> Ingress {
    if let Some(spec) = ingress.spec.as_mut() {
        spec.ingress_class_name = Some(class.to_string());
    }
    ingress
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsgate_runs_with_exactly_the_charts_rbac() {
    let Some((cluster, ns, net)) = local_fixture("chart-rbac").await else { return };
    let pod = net.echo(0, PORT, "pod-0");
    create(&cluster, &ns, &service("chat")).await;
    create(&cluster, &ns, &slice("chat", &[(pod.addr, true)])).await;
    let install = Install::new(&cluster, &ns.name, &[]).await;
    let gw = &install.wsgate;
    ready(gw).await;

    // Watches: a new WebSocketRoute and Ingress go live and carry traffic.
    create(&cluster, &ns, &route("chat", "/chat", "chat")).await;
    create(&cluster, &ns, &class(ingress("web", "rbac.example", "/http", "chat"), &install.ingress_class)).await;
    create(&cluster, &ns, &route("lonely", "/lonely", "missing")).await;
    // A misspelt policy annotation: served without it, and said so in an Event.
    let mut typo = class(ingress("typo", "typo.example", "/typo", "chat"), &install.ingress_class);
    typo.metadata.annotations =
        Some([("wsgate.dev/allowed-origin".to_string(), "https://app.example".to_string())].into());
    create(&cluster, &ns, &typo).await;
    eventually("the route is live", LIVE * 5, || async { gw.ws("any", "/chat").await.is_ok() }).await;
    let mut session = gw.ws("any", "/chat").await.expect("session");
    echo(&mut session, "as the chart's ServiceAccount").await;
    eventually("the Ingress is live", LIVE * 5, || async { gw.get("rbac.example", "/http/x").await.0 == 200 }).await;

    // Status on both kinds, an Event, the Lease.
    let routes = api::<WebSocketRoute>(&cluster, &ns);
    eventually("route status is written", harness::WAIT, || async {
        let now = conditions(&routes, "chat").await;
        ["Accepted", "ResolvedRefs", "Programmed"]
            .iter()
            .all(|t| now.iter().any(|(ty, s, _, _)| ty == t && s == "True"))
    })
    .await;
    let ingresses = api::<Ingress>(&cluster, &ns);
    eventually("Ingress status has the chart Service's address", harness::WAIT, || async {
        ingress_addresses(&ingresses, "web").await == [LOAD_BALANCER_IP]
    })
    .await;
    let events = api::<Event>(&cluster, &ns);
    eventually("an Event records the broken route", harness::WAIT, || async {
        events.list(&ListParams::default()).await.is_ok_and(|list| {
            list.items.iter().any(|e| {
                e.reason.as_deref() == Some("BackendNotFound")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("lonely")
            })
        })
    })
    .await;
    eventually("an Event names the unknown annotation", harness::WAIT, || async {
        events.list(&ListParams::default()).await.is_ok_and(|list| {
            list.items.iter().any(|e| {
                e.reason.as_deref() == Some("UnknownAnnotation")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("typo")
                    && e.note.as_deref().is_some_and(|n| n.contains("did you mean wsgate.dev/allowed-origins?"))
            })
        })
    })
    .await;
    let leases = api::<Lease>(&cluster, &ns);
    let lease = leases.get(&format!("{}-leader", install.release)).await.expect("the chart's Lease exists");
    let holder = lease.spec.and_then(|s| s.holder_identity);
    assert_eq!(holder, Some(format!("{}-pod-0", install.release)));

    // Nothing wsgate asked for was refused, and it saw no failure.
    assert_eq!(install.denied(&cluster), Vec::<String>::new(), "requests the chart's RBAC does not allow");
    for series in [
        "wsgate_status_writes_total{kind=\"WebSocketRoute\",outcome=\"failed\"}",
        "wsgate_status_writes_total{kind=\"Ingress\",outcome=\"failed\"}",
    ] {
        assert_eq!(install.metric(series).await, 0.0, "{series}");
    }
    let (_, metrics) = gw.admin_get("/metrics").await;
    for kind in ["Ingress", "IngressClass", "WebSocketRoute", "Service", "EndpointSlice"] {
        let series = format!("wsgate_kube_watch_errors_total{{kind=\"{kind}\"}} 0");
        assert!(metrics.lines().any(|l| l == series), "`{series}` in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_patch_on_websocketroutes_status_route_status_is_never_written() {
    let Some((cluster, ns, net)) = local_fixture("chart-no-status").await else { return };
    let pod = net.echo(0, PORT, "pod-0");
    create(&cluster, &ns, &service("chat")).await;
    create(&cluster, &ns, &slice("chat", &[(pod.addr, true)])).await;
    let install = Install::new(&cluster, &ns.name, &[("websocketroutes/status", "patch")]).await;
    let gw = &install.wsgate;
    ready(gw).await;
    create(&cluster, &ns, &route("chat", "/chat", "chat")).await;
    create(&cluster, &ns, &class(ingress("web", "rbac.example", "/http", "chat"), &install.ingress_class)).await;

    // Serving does not need status: the route works.
    eventually("the route is live", LIVE * 5, || async { gw.ws("any", "/chat").await.is_ok() }).await;
    let mut session = gw.ws("any", "/chat").await.expect("session");
    echo(&mut session, "served all the same").await;
    // The status pass that writes Ingress status has tried the route first: it was refused.
    let ingresses = api::<Ingress>(&cluster, &ns);
    eventually("Ingress status is written (the permission is still there)", harness::WAIT, || async {
        ingress_addresses(&ingresses, "web").await == [LOAD_BALANCER_IP]
    })
    .await;
    let failed = "wsgate_status_writes_total{kind=\"WebSocketRoute\",outcome=\"failed\"}";
    eventually("the refused status write is counted", harness::WAIT, || async { install.metric(failed).await > 0.0 })
        .await;
    let routes = api::<WebSocketRoute>(&cluster, &ns);
    assert_eq!(conditions(&routes, "chat").await, vec![], "no status reached the route");
    let expected = format!(
        "websocketroutes.wsgate.dev \"chat\" is forbidden: User \"{}\" cannot patch resource \
         \"websocketroutes/status\" in API group \"wsgate.dev\" in the namespace \"{}\"",
        install.user, ns.name
    );
    let denied = install.denied(&cluster);
    assert!(denied.contains(&expected), "{expected}\nnot among the refusals: {denied:#?}");
    assert!(
        denied.iter().all(|d| d.contains("websocketroutes/status")),
        "only that permission is missing: {denied:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rights_on_secrets_routes_are_served_without_certificates() {
    // An older chart's RBAC (or a cluster that forbids Secrets): wsgate must still become ready and serve.
    let Some((cluster, ns, net)) = local_fixture("chart-no-secrets").await else { return };
    let pod = net.echo(0, PORT, "pod-0");
    let install = Install::new(&cluster, &ns.name, &[("secrets", "list")]).await;
    let gw = &install.wsgate;
    ready(gw).await;
    create(&cluster, &ns, &service("chat")).await;
    create(&cluster, &ns, &slice("chat", &[(pod.addr, true)])).await;
    create(&cluster, &ns, &route("chat", "/chat", "chat")).await;
    eventually("the route is served", LIVE * 5, || async { gw.ws("any", "/chat").await.is_ok() }).await;
    assert!(gw.log().contains("cannot list Secrets"), "the operator is told why: {}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_watch_on_endpointslices_new_endpoints_never_arrive() {
    let Some((cluster, ns, net)) = local_fixture("chart-no-watch").await else { return };
    let pod = net.echo(0, PORT, "pod-0");
    let install = Install::new(&cluster, &ns.name, &[("endpointslices", "watch")]).await;
    let gw = &install.wsgate;
    ready(gw).await; // the first list is allowed, so wsgate syncs and serves
    create(&cluster, &ns, &service("chat")).await;
    create(&cluster, &ns, &route("chat", "/chat", "chat")).await;
    eventually("the route is served, without endpoints", LIVE * 5, || async {
        gw.ws("any", "/chat").await.err() == Some(503)
    })
    .await;

    create(&cluster, &ns, &slice("chat", &[(pod.addr, true)])).await;
    // With the chart's RBAC this goes live within LIVE (the positive test); here it never does.
    let watched = std::time::Instant::now();
    while watched.elapsed() < LIVE * 2 {
        assert_eq!(gw.ws("any", "/chat").await.err(), Some(503), "an endpoint arrived without a watch");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let errors = "wsgate_kube_watch_errors_total{kind=\"EndpointSlice\"}";
    assert!(install.metric(errors).await > 0.0, "the failing watch is counted");
    let expected = format!(
        "endpointslices.discovery.k8s.io is forbidden: User \"{}\" cannot watch resource \"endpointslices\" in API \
         group \"discovery.k8s.io\" in the namespace \"{}\"",
        install.user, ns.name
    );
    let denied = install.denied(&cluster);
    assert!(denied.contains(&expected), "{expected}\nnot among the refusals: {denied:#?}");
    assert!(denied.iter().all(|d| d == &expected), "only that permission is missing: {denied:#?}");
}

/// Rules the chart grants ahead of the code that uses them: (resource, why). Remove an entry once
/// wsgate uses the resource (the test below fails until then, so this list cannot go stale).
const GRANTED_AHEAD: &[(&str, &str)] = &[];

/// Objects that make wsgate use every permission right after its first sync: a served route and
/// Ingress (status), a route with a missing backend (an Event).
async fn exercise(cluster: &Cluster, ns: &TestNamespace) {
    let endpoint: std::net::SocketAddr = "198.51.100.7:8080".parse().expect("address"); // never dialed
    create(cluster, ns, &service("chat")).await;
    create(cluster, ns, &slice("chat", &[(endpoint, true)])).await;
    create(cluster, ns, &route("chat", "/chat", "chat")).await;
    create(cluster, ns, &ingress("web", "rbac.example", "/http", "chat")).await;
    create(cluster, ns, &route("lonely", "/lonely", "missing")).await;
}

/// Whether wsgate has done everything [`exercise`] asks of it: route status, Ingress status, an Event.
async fn exercised(cluster: &Cluster, ns: &TestNamespace) -> bool {
    let routes = api::<WebSocketRoute>(cluster, ns);
    let status = conditions(&routes, "chat").await.iter().any(|(t, s, _, _)| t == "Programmed" && s == "True");
    let ingress = ingress_addresses(&api::<Ingress>(cluster, ns), "web").await == [LOAD_BALANCER_IP];
    let events = api::<Event>(cluster, ns).list(&ListParams::default()).await;
    let event = events.is_ok_and(|l| l.items.iter().any(|e| e.reason.as_deref() == Some("BackendNotFound")));
    status && ingress && event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_of_the_rbac_contract_is_needed() {
    let Some((cluster, _, _)) = local_fixture("chart-rules").await else { return };
    // One install per rule, each without that rule, all running at once.
    let mut installs = Vec::new();
    for (index, rule) in RULES.iter().enumerate() {
        let resource = rule.resources[0];
        let ns = cluster.namespace(&format!("rule-{index}")).await;
        exercise(&cluster, &ns).await;
        let install = Install::new(&cluster, &ns.name, &[(resource, "*")]).await;
        installs.push((resource, ns, install));
    }
    for (resource, ns, install) in &installs {
        match GRANTED_AHEAD.iter().find(|(r, _)| r == resource) {
            Some((_, why)) => {
                eventually(&format!("wsgate without {resource} does all its work"), harness::WAIT, || {
                    exercised(&cluster, ns)
                })
                .await;
                assert_eq!(
                    install.denied(&cluster),
                    Vec::<String>::new(),
                    "{resource} is granted ahead of use ({why}), but wsgate asked for it: remove it from GRANTED_AHEAD"
                );
            }
            None => {
                eventually(&format!("wsgate without {resource} is refused"), harness::WAIT, || async {
                    !install.denied(&cluster).is_empty()
                })
                .await;
                let wanted = format!("resource \"{resource}\"");
                let denied = install.denied(&cluster);
                assert!(denied.iter().all(|d| d.contains(&wanted)), "only {resource} is refused: {denied:#?}");
                eprintln!("without {resource}: {}", denied[0]);
            }
        }
    }
}
