//! End-to-end: the real `wsgate` binary in Kubernetes mode, driven through an API server the way a user
//! drives a cluster, with real WebSocket clients and echo backends.
//!
//! `cargo test --test e2e` starts the in-repo API server (tests/e2e/apiserver) unless `KUBECONFIG` is
//! set, in which case the same tests run against that cluster (they need root for the network
//! namespace that holds the backends, and create and delete their own namespaces). The tests here run
//! wsgate as the cluster's admin; `chart` applies the Helm chart and runs wsgate with exactly its RBAC.

#[allow(dead_code)]
#[path = "../support/ca.rs"]
mod ca;
mod chart;
mod harness;
mod tls;
#[path = "../support/tools.rs"]
mod tools;

use std::time::Duration;

use harness::{Cluster, TestNet, Wsgate, echo, eventually, ingress_addresses, object, within};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use wsgate::crd::WebSocketRoute;

const PORT: u16 = 8080;
/// How fast a change must be served.
const LIVE: Duration = Duration::from_secs(1);
/// In the many-changes test: the longest any one change may take (a stall of the shared CI machine
/// must not fail it), while its p99 must stay within [`LIVE`].
const LIVE_OUTLIER: Duration = Duration::from_secs(5);

fn service(name: &str) -> Service {
    object(json!({
        "metadata": {"name": name},
        "spec": {"clusterIP": "None", "ports": [{"name": "ws", "port": 80, "targetPort": PORT}]}
    }))
}

/// An EndpointSlice for `service` with the given (address, ready) endpoints on PORT.
fn slice(service: &str, endpoints: &[(std::net::SocketAddr, bool)]) -> EndpointSlice {
    let endpoints: Vec<_> = endpoints
        .iter()
        .map(|(addr, ready)| json!({"addresses": [addr.ip().to_string()], "conditions": {"ready": ready}}))
        .collect();
    object(json!({
        "metadata": {"name": format!("{service}-slice"), "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "ws", "port": PORT, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
}

fn route(name: &str, path: &str, service: &str) -> WebSocketRoute {
    object(json!({
        "apiVersion": "wsgate.dev/v1alpha1",
        "kind": "WebSocketRoute",
        "metadata": {"name": name},
        "spec": {"path": {"type": "Prefix", "value": path}, "backends": [{"service": {"name": service, "port": "ws"}}]}
    }))
}

fn ingress(name: &str, host: &str, path: &str, service: &str) -> Ingress {
    object(json!({
        "metadata": {"name": name},
        "spec": {
            "ingressClassName": "wsgate",
            "rules": [{"host": host, "http": {"paths": [{
                "path": path, "pathType": "Prefix",
                "backend": {"service": {"name": service, "port": {"number": 80}}}
            }]}}]
        }
    }))
}

struct Fixture {
    cluster: Cluster,
    ns: harness::TestNamespace,
    net: TestNet,
}

impl Fixture {
    async fn new(test: &str) -> Fixture {
        Fixture::on(Cluster::start().await, test).await
    }

    async fn on(cluster: Cluster, test: &str) -> Fixture {
        let ns = cluster.namespace(test).await;
        Fixture { cluster, ns, net: TestNet::create() }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.cluster.client.clone(), &self.ns.name)
    }

    async fn create<K>(&self, obj: &K) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        self.api::<K>().create(&PostParams::default(), obj).await.unwrap_or_else(|e| panic!("create {obj:?}: {e}"))
    }

    async fn set_slice(&self, service: &str, endpoints: &[(std::net::SocketAddr, bool)]) {
        let api = self.api::<EndpointSlice>();
        let name = format!("{service}-slice");
        let wanted = slice(service, endpoints);
        let patch = json!({"endpoints": wanted.endpoints});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch EndpointSlice");
    }

    fn wsgate(&self, extra: &[&str]) -> Wsgate {
        Wsgate::start(&self.cluster, &self.ns.name, extra)
    }
}

async fn ready(gw: &Wsgate) {
    eventually("wsgate is ready", harness::WAIT, || async { gw.admin_get("/readyz").await.0 == 200 }).await;
}

/// Ready endpoints of the first served route, from /debug/routes.
async fn served_endpoints(gw: &Wsgate) -> usize {
    let (_, body) = gw.admin_get("/debug/routes").await;
    let table: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    table["routes"][0]["backends"][0]["endpoints"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_go_live_and_away_within_a_second() {
    let f = Fixture::new("live").await;
    let pods = [f.net.echo(0, PORT, "pod-0"), f.net.echo(1, PORT, "pod-1")];
    f.create(&service("chat")).await;
    f.create(&slice("chat", &[(pods[0].addr, true), (pods[1].addr, true)])).await;
    let gw = f.wsgate(&[]);
    ready(&gw).await;
    assert_eq!(gw.ws("any", "/chat").await.err(), Some(404), "nothing is routed yet");

    f.create(&route("chat", "/chat", "chat")).await;
    let took = eventually("the new route answers", LIVE, || async { gw.ws("any", "/chat").await.is_ok() }).await;
    eprintln!("WebSocketRoute created → live in {took:?}");
    let mut session = gw.ws("any", "/chat/room").await.expect("session");
    echo(&mut session, "hello through the cluster").await;

    f.create(&ingress("web", "e2e.example", "/http", "chat")).await;
    eventually("the Ingress answers", LIVE, || async { gw.get("e2e.example", "/http/x").await.0 == 200 }).await;
    let (_, body) = gw.get("e2e.example", "/http/x").await;
    assert!(body.contains("pod-"), "the echo backend answered: {body}");
    assert_eq!(gw.get("other.example", "/http/x").await.0, 404, "the Ingress rule is for its host only");

    f.api::<WebSocketRoute>().delete("chat", &DeleteParams::default()).await.expect("delete route");
    let took =
        eventually("the deleted route answers 404", LIVE, || async { gw.ws("any", "/chat").await.err() == Some(404) })
            .await;
    eprintln!("WebSocketRoute deleted → 404 in {took:?}");
    // The socket opened before the delete is not cut: the table swap does not touch it.
    echo(&mut session, "still here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unready_endpoints_get_no_new_connections_and_new_endpoints_get_them() {
    let f = Fixture::new("endpoints").await;
    let pods = [f.net.echo(0, PORT, "pod-0"), f.net.echo(1, PORT, "pod-1"), f.net.echo(2, PORT, "pod-2")];
    f.create(&service("chat")).await;
    f.create(&slice("chat", &[(pods[0].addr, true), (pods[1].addr, true)])).await;
    f.create(&route("chat", "/", "chat")).await;
    let gw = f.wsgate(&[]);
    ready(&gw).await;
    eventually("two endpoints served", LIVE * 5, || async { served_endpoints(&gw).await == 2 }).await;

    let mut sessions = Vec::new();
    for i in 0..10 {
        let (mut ws, name) = gw.ws_named("any", &format!("/s{i}")).await.expect("session");
        echo(&mut ws, "hi").await;
        sessions.push((ws, name));
    }
    let on = |sessions: &[(harness::Ws, String)], pod: &str| sessions.iter().filter(|(_, n)| n == pod).count();
    assert_eq!((on(&sessions, "pod-0"), on(&sessions, "pod-1")), (5, 5), "least connections spreads evenly");

    // pod-1 stops being ready: no new connections, but its open ones keep echoing.
    f.set_slice("chat", &[(pods[0].addr, true), (pods[1].addr, false)]).await;
    let took = eventually("pod-1 leaves the table", LIVE, || async { served_endpoints(&gw).await == 1 }).await;
    eprintln!("endpoint marked not ready → out of the table in {took:?}");
    let mut fresh = Vec::new();
    for i in 0..6 {
        let (ws, name) = gw.ws_named("any", &format!("/n{i}")).await.expect("session");
        assert_eq!(name, "pod-0", "a not-ready endpoint got a new connection");
        fresh.push((ws, name));
    }
    for (ws, _) in sessions.iter_mut() {
        echo(ws, "open sessions survive").await;
    }

    // Scale up: pod-2 appears with no connections, so least-connections sends it every new one.
    f.set_slice("chat", &[(pods[0].addr, true), (pods[1].addr, false), (pods[2].addr, true)]).await;
    eventually("pod-2 joins the table", LIVE, || async { served_endpoints(&gw).await == 2 }).await;
    for i in 0..6 {
        let (mut ws, name) = gw.ws_named("any", &format!("/m{i}")).await.expect("session");
        assert_eq!(name, "pod-2", "new connections go to the new, idle endpoint");
        echo(&mut ws, "new pod").await;
        fresh.push((ws, name));
    }
    assert_eq!(pods[2].stats.open_websockets(), 6);
}

async fn conditions(api: &Api<WebSocketRoute>, name: &str) -> Vec<(String, String, String, String)> {
    let route = api.get(name).await.expect("get route");
    route
        .status
        .map(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status, c.reason, c.message))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_explains_routes_and_is_written_only_on_change() {
    let f = Fixture::new("status").await;
    let pod = f.net.echo(0, PORT, "pod-0");
    let gw = f.wsgate(&["--publish-address", "198.51.100.10"]);
    ready(&gw).await;
    let routes = f.api::<WebSocketRoute>();
    f.create(&route("lonely", "/lonely", "missing")).await;

    let expected = format!("Service {}/missing not found", f.ns.name);
    eventually("ResolvedRefs=False names the missing Service", LIVE * 5, || async {
        conditions(&routes, "lonely")
            .await
            .iter()
            .any(|(t, s, r, m)| t == "ResolvedRefs" && s == "False" && r == "BackendNotFound" && m.contains(&expected))
    })
    .await;
    let now = conditions(&routes, "lonely").await;
    assert!(now.iter().any(|(t, s, _, _)| t == "Accepted" && s == "True"), "{now:?}");
    assert!(now.iter().any(|(t, s, _, _)| t == "Programmed" && s == "False"), "{now:?}");
    assert_eq!(gw.ws("any", "/lonely").await.err(), Some(503), "served, but with no endpoint");

    // The error is also an Event on the route.
    let events: Api<k8s_openapi::api::events::v1::Event> = f.api();
    eventually("an Event records the error", LIVE * 5, || async {
        events.list(&ListParams::default()).await.is_ok_and(|list| {
            list.items.iter().any(|e| {
                e.reason.as_deref() == Some("BackendNotFound")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("lonely")
            })
        })
    })
    .await;

    // The Service appears: the conditions turn True and the route serves.
    f.create(&service("missing")).await;
    f.create(&slice("missing", &[(pod.addr, true)])).await;
    eventually("ResolvedRefs and Programmed turn True", LIVE * 5, || async {
        let now = conditions(&routes, "lonely").await;
        ["Accepted", "ResolvedRefs", "Programmed"]
            .iter()
            .all(|t| now.iter().any(|(ty, s, _, _)| ty == t && s == "True"))
    })
    .await;
    let mut ws = gw.ws("any", "/lonely").await.expect("served now");
    echo(&mut ws, "found").await;

    // Ingress status gets the published address.
    let ingresses = f.api::<Ingress>();
    f.create(&ingress("web", "status.example", "/", "missing")).await;
    eventually("Ingress status carries the published address", LIVE * 5, || async {
        ingress_addresses(&ingresses, "web").await.iter().any(|ip| ip == "198.51.100.10")
    })
    .await;

    // Nothing about the route changes while other objects churn: no status write, no new resourceVersion.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let version = routes.get("lonely").await.expect("route").metadata.resource_version;
    let writes = gw.metric("wsgate_status_writes_total{kind=\"WebSocketRoute\",outcome=\"written\"}").await;
    let generation = gw.metric("wsgate_route_table_generation").await;
    f.create(&service("other")).await;
    f.create(&slice("other", &[(pod.addr, true)])).await;
    for ready in [false, true, false, true] {
        f.set_slice("other", &[(pod.addr, ready)]).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    f.set_slice("missing", &[(pod.addr, true)]).await; // same content: a no-op for the table
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(writes >= 2.0, "status was written while it changed ({writes})");
    assert_eq!(gw.metric("wsgate_status_writes_total{kind=\"WebSocketRoute\",outcome=\"written\"}").await, writes);
    assert_eq!(routes.get("lonely").await.expect("route").metadata.resource_version, version);
    assert_eq!(gw.metric("wsgate_route_table_generation").await, generation, "unrelated churn changed the table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_restart_loses_no_connection() {
    let mut f = Fixture::new("restart").await;
    if f.cluster.local.is_none() {
        eprintln!("an external API server cannot be restarted by this test: nothing to check here");
        return;
    }
    let pods = [f.net.echo(0, PORT, "pod-0"), f.net.echo(1, PORT, "pod-1")];
    f.create(&service("chat")).await;
    f.create(&slice("chat", &[(pods[0].addr, true), (pods[1].addr, true)])).await;
    f.create(&route("chat", "/chat", "chat")).await;
    let gw = f.wsgate(&[]);
    ready(&gw).await;
    eventually("route live", LIVE * 5, || async { gw.ws("any", "/chat").await.is_ok() }).await;
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(gw.ws("any", "/chat").await.expect("session"));
    }

    let server = f.cluster.local.as_mut().expect("local API server");
    server.stop().await;
    // The counters exist from the start; wait for one to move.
    eventually("watch errors are counted", harness::WAIT, || async {
        let (_, metrics) = gw.admin_get("/metrics").await;
        metrics
            .lines()
            .filter(|l| l.starts_with("wsgate_kube_watch_errors_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
            > 0.0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gw.admin_get("/readyz").await.0, 200, "stale but valid beats down");
    for ws in sessions.iter_mut() {
        echo(ws, "during the outage").await;
    }
    let mut during = gw.ws("any", "/chat").await.expect("new sessions use the last good table");
    echo(&mut during, "new during the outage").await;

    let server = f.cluster.local.as_mut().expect("local API server");
    within("API server restart", server.start()).await.expect("restart the API server");
    f.create(&route("after", "/after", "chat")).await;
    let took = eventually("changes flow again after the restart", Duration::from_secs(40), || async {
        gw.ws("any", "/after").await.is_ok()
    })
    .await;
    eprintln!("after the API server came back, a new route was live in {took:?}");
    for ws in sessions.iter_mut().chain(std::iter::once(&mut during)) {
        echo(ws, "after the restart").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_but_only_the_lease_holder_writes_status() {
    let f = Fixture::new("lease").await;
    let pod = f.net.echo(0, PORT, "pod-0");
    f.create(&service("chat")).await;
    f.create(&slice("chat", &[(pod.addr, true)])).await;
    let a = f.wsgate(&["--identity", "replica-a", "--lease-name", "e2e-leader"]);
    let b = f.wsgate(&["--identity", "replica-b", "--lease-name", "e2e-leader"]);
    ready(&a).await;
    ready(&b).await;
    let routes = f.api::<WebSocketRoute>();
    f.create(&route("chat", "/chat", "chat")).await;
    eventually("status written", harness::WAIT, || async {
        conditions(&routes, "chat").await.iter().any(|(t, s, _, _)| t == "Programmed" && s == "True")
    })
    .await;
    for gw in [&a, &b] {
        // Status can be written by one replica before the other has compiled the route.
        eventually("every replica serves the route", LIVE, || async { gw.ws("any", "/chat").await.is_ok() }).await;
        let mut ws = gw.ws("any", "/chat").await.expect("every replica serves");
        echo(&mut ws, "replica").await;
    }
    let series = "wsgate_status_writes_total{kind=\"WebSocketRoute\",outcome=\"written\"}";
    let (wa, wb) = (a.metric(series).await, b.metric(series).await);
    assert!((wa > 0.0) != (wb > 0.0), "exactly one replica writes status: a={wa} b={wb}");
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = f.api();
    let holder = leases.get("e2e-leader").await.expect("lease").spec.and_then(|s| s.holder_identity);
    let (leader, follower) = if wa > 0.0 { (a, b) } else { (b, a) };
    let expected_holder = if wa > 0.0 { "replica-a" } else { "replica-b" };
    assert_eq!(holder.as_deref(), Some(expected_holder));

    // The holder goes away: the other replica takes the lease over and writes status.
    drop(leader);
    f.create(&route("later", "/later", "chat")).await;
    let took = eventually("the remaining replica writes status", Duration::from_secs(45), || async {
        conditions(&routes, "later").await.iter().any(|(t, s, _, _)| t == "Programmed" && s == "True")
    })
    .await;
    eprintln!("lease holder killed → status written by the other replica after {took:?}");
    assert!(follower.metric(series).await > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingresses_are_served_before_the_crd_is_installed() {
    let cluster = Cluster::start_without_crd().await;
    if cluster.local.is_none() {
        eprintln!("a shared cluster has the CRD installed by the other tests: nothing to check here");
        return;
    }
    let f = Fixture::on(cluster, "nocrd").await;
    let pod = f.net.echo(0, PORT, "pod-0");
    f.create(&service("chat")).await;
    f.create(&slice("chat", &[(pod.addr, true)])).await;
    f.create(&ingress("web", "nocrd.example", "/", "chat")).await;
    let gw = f.wsgate(&[]);
    ready(&gw).await;
    eventually("the Ingress is served without the CRD", LIVE, || async { gw.get("nocrd.example", "/").await.0 == 200 })
        .await;
    assert!(gw.log().contains("the WebSocketRoute CRD is not installed"), "the operator is told why");

    // Installed later: WebSocketRoutes are picked up without a restart.
    f.cluster.install_crd().await;
    f.create(&route("chat", "/chat", "chat")).await;
    let took = eventually("a WebSocketRoute after the CRD appears", Duration::from_secs(40), || async {
        gw.ws("any", "/chat").await.is_ok()
    })
    .await;
    eprintln!("CRD installed → first WebSocketRoute live in {took:?}");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Measures how long changes take to be served (reported, and bounded by [`LIVE`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_the_table_fast() {
    let f = Fixture::new("latency").await;
    let pods = [f.net.echo(0, PORT, "pod-0"), f.net.echo(1, PORT, "pod-1")];
    f.create(&service("chat")).await;
    f.create(&slice("chat", &[(pods[0].addr, true), (pods[1].addr, true)])).await;
    let gw = f.wsgate(&[]);
    ready(&gw).await;

    let mut routes = Vec::new();
    for i in 0..100 {
        f.create(&route(&format!("r{i}"), &format!("/r{i}"), "chat")).await;
        let path = format!("/r{i}");
        routes.push(eventually("route live", LIVE_OUTLIER, || async { gw.get("any", &path).await.0 == 200 }).await);
    }
    routes.sort();
    let mut endpoints = Vec::new();
    for i in 0..40 {
        let ready = i % 2 == 1;
        f.set_slice("chat", &[(pods[0].addr, true), (pods[1].addr, ready)]).await;
        let want = if ready { 2 } else { 1 };
        endpoints.push(
            eventually("endpoint change live", LIVE_OUTLIER, || async { served_endpoints(&gw).await == want }).await,
        );
    }
    endpoints.sort();
    eprintln!(
        "object change → live route: p50 {:?} p99 {:?} (n={}); endpoint change → live table: p50 {:?} p99 {:?} (n={})",
        percentile(&routes, 0.5),
        percentile(&routes, 0.99),
        routes.len(),
        percentile(&endpoints, 0.5),
        percentile(&endpoints, 0.99),
        endpoints.len()
    );
    for (what, sorted) in [("object change → live route", &routes), ("endpoint change → live table", &endpoints)] {
        let p99 = percentile(sorted, 0.99);
        assert!(p99 <= LIVE, "{what}: p99 {p99:?} is over {LIVE:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_class_ingresses_are_served_their_annotations_reported_and_their_status_left_alone() {
    let f = Fixture::new("nginx").await;
    let pod = f.net.echo(0, PORT, "pod-0");
    let gw = f.wsgate(&["--nginx-compat", "--watch-ingress-class", "nginx", "--publish-address", "198.51.100.10"]);
    ready(&gw).await;
    f.create(&service("chat")).await;
    f.create(&slice("chat", &[(pod.addr, true)])).await;
    // An Ingress still owned by ingress-nginx, with a snippet wsgate will not run.
    let legacy: Ingress = object(json!({
        "metadata": {"name": "legacy", "annotations": {
            "nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers \"X-Frame-Options: DENY\";",
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"
        }},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": "legacy.example", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "chat", "port": {"number": 80}}}
            }]}}]
        }
    }));
    f.create(&legacy).await;
    // One of wsgate's own, so that status writing is known to have happened.
    f.create(&ingress("ours", "ours.example", "/", "chat")).await;

    let mut ws = eventually_ws(&gw, "legacy.example", "/chat").await;
    echo(&mut ws, "served by wsgate beside ingress-nginx").await;

    let events: Api<k8s_openapi::api::events::v1::Event> = f.api();
    eventually("a Warning Event names the snippet", LIVE * 5, || async {
        events.list(&ListParams::default()).await.is_ok_and(|list| {
            list.items.iter().any(|e| {
                e.reason.as_deref() == Some("UnsupportedAnnotation")
                    && e.type_.as_deref() == Some("Warning")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("legacy")
                    && e.note
                        .as_deref()
                        .is_some_and(|n| n.contains("configuration-snippet") && n.contains("never executed"))
            })
        })
    })
    .await;

    let ingresses = f.api::<Ingress>();
    eventually("wsgate's own Ingress gets its status", LIVE * 5, || async {
        !ingress_addresses(&ingresses, "ours").await.is_empty()
    })
    .await;
    let legacy = ingress_addresses(&ingresses, "legacy").await;
    assert!(legacy.is_empty(), "the nginx Ingress's status is left to ingress-nginx: {legacy:?}");
}

/// Retries a WebSocket to `host` `path` until the route is served.
async fn eventually_ws(gw: &Wsgate, host: &str, path: &str) -> harness::Ws {
    for _ in 0..100 {
        if let Ok(ws) = gw.ws(host, path).await {
            return ws;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{host}{path} was never served");
}
