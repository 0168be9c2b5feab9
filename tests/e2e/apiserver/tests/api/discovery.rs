//! Discovery documents and what kube-rs' discovery makes of them.

use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::harness::Cluster;

fn resource<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["resources"].as_array().expect("resources").iter().find(|r| r["name"] == name).unwrap_or(&Value::Null)
}

#[tokio::test]
async fn legacy_discovery_documents() {
    let c = Cluster::start().await;
    let (s, v) = c.raw(Method::GET, "/version", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!((v["major"].as_str(), v["minor"].as_str()), (Some("1"), Some("32")));

    let (_, api) = c.raw(Method::GET, "/api", None).await;
    assert_eq!(api["versions"][0], "v1");

    let (_, core) = c.raw(Method::GET, "/api/v1", None).await;
    assert_eq!(core["kind"], "APIResourceList");
    let svc = resource(&core, "services");
    assert_eq!((svc["kind"].as_str(), svc["namespaced"].as_bool()), (Some("Service"), Some(true)));
    assert_eq!(svc["shortNames"][0], "svc");
    let status = resource(&core, "services/status");
    assert_eq!(status["verbs"], serde_json::json!(["get", "patch", "update"]));
    assert!(resource(&core, "secrets/status").is_null());
    assert_eq!(resource(&core, "namespaces")["namespaced"], false);

    let (_, groups) = c.raw(Method::GET, "/apis", None).await;
    let names: Vec<&str> =
        groups["groups"].as_array().expect("groups").iter().filter_map(|g| g["name"].as_str()).collect();
    for g in ["networking.k8s.io", "discovery.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io", "events.k8s.io"] {
        assert!(names.contains(&g), "{g} in {names:?}");
    }
    let (_, net) = c.raw(Method::GET, "/apis/networking.k8s.io/v1", None).await;
    assert_eq!(resource(&net, "ingressclasses")["namespaced"], false);
    assert!(!resource(&net, "ingresses/status").is_null());

    let (s, _) = c.raw(Method::GET, "/apis/networking.k8s.io/v9", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v2) = c.raw(Method::GET, "/openapi/v2", None).await;
    assert_eq!((s, v2["swagger"].as_str()), (StatusCode::OK, Some("2.0")), "an empty Swagger document");
}

#[tokio::test]
async fn kube_discovery_resolves_builtin_kinds() {
    let c = Cluster::start().await;
    let discovery = kube::Discovery::new(c.client().await).run().await.expect("discovery runs");
    let (ar, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk("networking.k8s.io", "v1", "Ingress"))
        .expect("Ingress is discoverable");
    assert_eq!(ar.plural, "ingresses");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(caps.subresources.iter().any(|(sub, _)| sub.plural == "ingresses/status" || sub.plural == "status"));
}

#[tokio::test]
async fn aggregated_discovery_when_asked_first() {
    let c = Cluster::start().await;
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let fetch = |path: &'static str, accept: &'static str| {
        let url = format!("{}{path}", c.server.url());
        async move {
            let req = hyper::Request::get(url)
                .header("accept", accept)
                .header("authorization", format!("Bearer {}", wsgate_test_apiserver::authn::ADMIN_TOKEN))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request");
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
            let resp = client.request(req).await.expect("response");
            let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let body = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
            (ct, serde_json::from_slice::<Value>(&body).expect("json"))
        }
    };
    let (ct, apis) = fetch("/apis", accept).await;
    assert_eq!(ct, "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
    assert_eq!(apis["kind"], "APIGroupDiscoveryList");
    let net = apis["items"].as_array().expect("items").iter().find(|g| g["metadata"]["name"] == "networking.k8s.io");
    let ing = net.expect("networking group")["versions"][0]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["resource"] == "ingresses")
        .cloned()
        .expect("ingresses");
    assert_eq!(ing["scope"], "Namespaced");
    assert_eq!(ing["responseKind"]["kind"], "Ingress");
    assert_eq!(ing["subresources"][0]["subresource"], "status");
    let (_, core) = fetch("/api", accept).await;
    assert_eq!(core["items"][0]["metadata"]["name"], "");
    let (ct, legacy) = fetch("/apis", "application/json").await;
    assert_eq!((ct.as_str(), legacy["kind"].as_str()), ("application/json", Some("APIGroupList")));
}
