//! Verbs, metadata, concurrency, status subresources and validation, through kube-rs and raw HTTP.

use hyper::{Method, StatusCode};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::harness::Cluster;

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .expect("service")
}

fn api_error(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn service_lifecycle_through_kube_client() {
    let c = Cluster::start().await;
    c.namespace("apps").await;
    let api: Api<Service> = Api::namespaced(c.client().await, "apps");
    let created = api.create(&PostParams::default(), &service("web")).await.expect("create");
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("apps"));
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    let rv: u64 = meta.resource_version.as_deref().expect("rv").parse().expect("numeric rv");
    let spec = created.spec.clone().expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"), "defaulted type");
    assert!(spec.cluster_ip.as_deref().is_some_and(|ip| ip.starts_with("10.96.")), "allocated ClusterIP");
    assert_eq!(spec.ports.expect("ports")[0].protocol.as_deref(), Some("TCP"));

    let got = api.get("web").await.expect("get");
    assert_eq!(got.metadata.uid, created.metadata.uid);
    let list = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    let list_rv: u64 = list.metadata.resource_version.expect("list rv").parse().expect("numeric");
    assert!(list_rv >= rv);

    let mut changed = got.clone();
    changed.spec.as_mut().expect("spec").selector = Some([("app".to_string(), "web2".to_string())].into());
    let replaced = api.replace("web", &PostParams::default(), &changed).await.expect("replace");
    let rv2: u64 = replaced.metadata.resource_version.as_deref().expect("rv").parse().expect("numeric");
    assert!(rv2 > rv, "resourceVersion increases: {rv} -> {rv2}");
    assert_eq!(replaced.spec.as_ref().and_then(|s| s.cluster_ip.clone()), spec.cluster_ip, "ClusterIP kept");

    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}});
    let patched = api.patch_status("web", &PatchParams::default(), &Patch::Merge(&status)).await.expect("patch_status");
    let lb = patched.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).expect("lb ingress");
    assert_eq!(lb[0].ip.as_deref(), Some("192.0.2.10"));

    let all: Api<Service> = Api::all(c.client().await);
    assert_eq!(all.list(&ListParams::default()).await.expect("all namespaces").items.len(), 1);

    let deleted = api.delete("web", &DeleteParams::default()).await.expect("delete");
    assert!(deleted.is_left(), "services answer a delete with the object");
    let err = api_error(api.get("web").await.expect_err("gone"));
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "services \"web\" not found");
}

#[tokio::test]
async fn error_bodies_are_status_objects_like_the_real_api() {
    let c = Cluster::start().await;
    let (s, body) = c.raw(Method::GET, "/api/v1/namespaces/default/services/x", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
               "message":"services \"x\" not found","reason":"NotFound",
               "details":{"name":"x","kind":"services"},"code":404})
    );
    let svc = json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}]}});
    let (s, _) = c.raw(Method::POST, "/api/v1/namespaces/default/services", Some(&svc)).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, body) = c.raw(Method::POST, "/api/v1/namespaces/default/services", Some(&svc)).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(body["reason"], "AlreadyExists");
    assert_eq!(body["message"], "services \"x\" already exists");

    let (s, body) = c.raw(Method::POST, "/api/v1/namespaces/nowhere/services", Some(&svc)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "namespaces \"nowhere\" not found");

    let other_ns = json!({"metadata": {"name": "y", "namespace": "kube-system"}, "spec": {"ports": [{"port": 80}]}});
    let (s, body) = c.raw(Method::POST, "/api/v1/namespaces/default/services", Some(&other_ns)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "the namespace of the provided object does not match the namespace sent on the request"
    );

    let (s, text) =
        c.raw_text(Method::POST, "/api/v1/namespaces/default/configmaps", "application/json", "{not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let status: Value = serde_json::from_str(&text).expect("a Status body");
    assert_eq!((status["kind"].as_str(), status["reason"].as_str()), (Some("Status"), Some("BadRequest")));

    let (s, body) = c.raw(Method::GET, "/apis/nothing.example.com/v1/things", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "the server could not find the requested resource");

    let bad_name = json!({"metadata": {"name": "Bad_Name"}});
    let (s, body) = c.raw(Method::POST, "/api/v1/namespaces/default/configmaps", Some(&bad_name)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
}

#[tokio::test]
async fn stale_updates_conflict() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}})).expect("cm");
    let first = api.create(&PostParams::default(), &cm).await.expect("create");
    let mut update = first.clone();
    update.data = Some([("a".to_string(), "2".to_string())].into());
    api.replace("cfg", &PostParams::default(), &update).await.expect("first replace");
    update.data = Some([("a".to_string(), "3".to_string())].into());
    let err = api_error(api.replace("cfg", &PostParams::default(), &update).await.expect_err("stale"));
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on configmaps \"cfg\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let stale_patch = json!({"metadata": {"resourceVersion": first.metadata.resource_version}, "data": {"a": "4"}});
    let err = api_error(
        api.patch("cfg", &PatchParams::default(), &Patch::Merge(&stale_patch)).await.expect_err("stale patch"),
    );
    assert_eq!(err.code, 409);
    assert_eq!(api.get("cfg").await.expect("get").data.expect("data")["a"], "2");
}

#[tokio::test]
async fn generation_moves_on_spec_changes_only() {
    let c = Cluster::start().await;
    let api: Api<Ingress> = Api::namespaced(c.client().await, "default");
    let ing: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "a.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    }))
    .expect("ingress");
    let created = api.create(&PostParams::default(), &ing).await.expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    let labels = json!({"metadata": {"labels": {"x": "y"}}});
    let relabeled = api.patch("web", &PatchParams::default(), &Patch::Merge(&labels)).await.expect("label");
    assert_eq!(relabeled.metadata.generation, Some(1), "metadata changes keep generation");
    let status = json!({"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}});
    let with_status = api.patch_status("web", &PatchParams::default(), &Patch::Merge(&status)).await.expect("status");
    assert_eq!(with_status.metadata.generation, Some(1), "status changes keep generation");
    let spec = json!({"spec": {"ingressClassName": "wsgate"}});
    let respec = api.patch("web", &PatchParams::default(), &Patch::Merge(&spec)).await.expect("spec");
    assert_eq!(respec.metadata.generation, Some(2), "spec changes bump generation");
    let same = api.patch("web", &PatchParams::default(), &Patch::Merge(&spec)).await.expect("no-op");
    assert_eq!(same.metadata.resource_version, respec.metadata.resource_version, "a no-op write stores nothing");
}

#[tokio::test]
async fn status_subresource_splits_spec_and_status() {
    let c = Cluster::start().await;
    let api: Api<Service> = Api::namespaced(c.client().await, "default");
    let mut svc = service("split");
    svc.status = serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}})).expect("status");
    let created = api.create(&PostParams::default(), &svc).await.expect("create");
    assert!(created.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).is_none(), "status ignored on create");

    let main = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}]}}});
    let after = api.patch("split", &PatchParams::default(), &Patch::Merge(&main)).await.expect("patch main");
    assert!(after.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).is_none(), "status ignored on main");

    let both = json!({"spec": {"selector": {"app": "other"}}, "metadata": {"labels": {"via": "status"}},
                      "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.3"}]}}});
    let after = api.patch_status("split", &PatchParams::default(), &Patch::Merge(&both)).await.expect("status");
    assert_eq!(after.spec.and_then(|s| s.selector).expect("selector")["app"], "split", "spec ignored on /status");
    assert_eq!(after.metadata.labels.expect("labels").get("via").map(String::as_str), Some("status"));
    let ips = after.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).expect("status written");
    assert_eq!(ips[0].ip.as_deref(), Some("192.0.2.3"));
}

#[tokio::test]
async fn loopback_endpoint_slices_are_invalid() {
    let c = Cluster::start().await;
    let api: Api<EndpointSlice> = Api::namespaced(c.client().await, "default");
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.2.3"]}, {"addresses": ["127.0.0.1"]}],
        "ports": [{"name": "http", "port": 8080}]
    }))
    .expect("slice");
    let err = api_error(api.create(&PostParams::default(), &slice).await.expect_err("loopback"));
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "EndpointSlice.discovery.k8s.io \"web-1\" is invalid: endpoints[1].addresses[0]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
    );
    let causes = err.details.expect("details").causes;
    assert_eq!(causes[0].field, "endpoints[1].addresses[0]");

    let missing = json!({"metadata": {"name": "x"}, "endpoints": [{"addresses": []}]});
    let (s, body) =
        c.raw(Method::POST, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", Some(&missing)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> =
        body["details"]["causes"].as_array().expect("causes").iter().filter_map(|c| c["field"].as_str()).collect();
    assert_eq!(fields, vec!["addressType", "endpoints[0].addresses"]);

    let ok = json!({"metadata": {"name": "ok"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]});
    let (s, body) = c.raw(Method::POST, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", Some(&ok)).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn ingress_validation_matches_the_real_rules() {
    let c = Cluster::start().await;
    let ing = json!({"metadata": {"name": "bad"}, "spec": {"rules": [{"host": "a.example.com", "http": {"paths": [
        {"path": "/", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
        {"path": "relative", "pathType": "Exact", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}});
    let (s, body) = c.raw(Method::POST, "/apis/networking.k8s.io/v1/namespaces/default/ingresses", Some(&ing)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["message"],
        "Ingress.networking.k8s.io \"bad\" is invalid: [spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified, spec.rules[0].http.paths[1].path: Invalid value: \"relative\": must be an absolute path]"
    );
}

#[tokio::test]
async fn selectors_and_pages_filter_lists() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web"), ("d", "cache")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}})).expect("cm");
        api.create(&PostParams::default(), &cm).await.expect("create");
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items.into_iter().filter_map(|c| c.metadata.name).collect()
    };
    let web = api.list(&ListParams::default().labels("tier=web")).await.expect("list");
    assert_eq!(names(web), vec!["a", "c"]);
    let set = api.list(&ListParams::default().labels("tier in (db,cache),tier!=cache")).await.expect("list");
    assert_eq!(names(set), vec!["b"]);
    let by_name = api.list(&ListParams::default().fields("metadata.name=d")).await.expect("list");
    assert_eq!(names(by_name), vec!["d"]);
    let err = api_error(api.list(&ListParams::default().fields("data.x=1")).await.expect_err("unsupported field"));
    assert_eq!(err.code, 400);

    let first = api.list(&ListParams::default().limit(3)).await.expect("page 1");
    let token = first.metadata.continue_.clone().expect("continue token");
    assert_eq!(first.metadata.remaining_item_count, Some(1));
    assert_eq!(names(first), vec!["a", "b", "c"]);
    let second = api.list(&ListParams::default().limit(3).continue_token(&token)).await.expect("page 2");
    assert!(second.metadata.continue_.as_deref().is_none_or(str::is_empty));
    assert_eq!(names(second), vec!["d"]);
}

#[tokio::test]
async fn patch_flavours_apply() {
    let c = Cluster::start().await;
    let api: Api<Service> = Api::namespaced(c.client().await, "default");
    let mut svc = service("p");
    svc.spec.as_mut().expect("spec").ports = serde_json::from_value(json!([
        {"name": "http", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443, "targetPort": 8443}
    ]))
    .expect("ports");
    api.create(&PostParams::default(), &svc).await.expect("create");

    let strategic = json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}});
    let out = api.patch("p", &PatchParams::default(), &Patch::Strategic(&strategic)).await.expect("strategic");
    let ports = out.spec.and_then(|s| s.ports).expect("ports");
    assert_eq!(ports.len(), 2, "strategic merge merges ports by key");
    assert_eq!(serde_json::to_value(&ports[1].target_port).expect("json"), json!(9443));

    let ops = json!([
        {"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}},
        {"op": "remove", "path": "/spec/ports/0"}
    ]);
    let (s, body) = c
        .raw_typed(Method::PATCH, "/api/v1/namespaces/default/services/p", "application/json-patch+json", Some(&ops))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["spec"]["ports"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["metadata"]["annotations"]["a"], "b");

    let applied =
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "p", "labels": {"applied": "yes"}}});
    let out = api.patch("p", &PatchParams::apply("tests"), &Patch::Apply(&applied)).await.expect("apply");
    assert_eq!(out.metadata.labels.expect("labels")["applied"], "yes");

    let (s, body) =
        c.raw_typed(Method::PATCH, "/api/v1/namespaces/default/services/p", "text/plain", Some(&json!({}))).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})).expect("cm");
    api.create(&PostParams::default(), &cm).await.expect("create");
    let (s, body) = c.raw(Method::DELETE, "/api/v1/namespaces/default/configmaps/held", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let pending = api.get("held").await.expect("still there");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let release = json!({"metadata": {"finalizers": null}});
    api.patch("held", &PatchParams::default(), &Patch::Merge(&release)).await.expect("release");
    assert_eq!(api_error(api.get("held").await.expect_err("gone")).code, 404);

    let plain: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "plain"}})).expect("cm");
    api.create(&PostParams::default(), &plain).await.expect("create");
    let (s, body) = c.raw(Method::DELETE, "/api/v1/namespaces/default/configmaps/plain", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!((body["kind"].as_str(), body["status"].as_str()), (Some("Status"), Some("Success")));
    assert_eq!(body["details"]["name"], "plain");
}

#[tokio::test]
async fn generate_name_and_secret_string_data() {
    let c = Cluster::start().await;
    let body = json!({"metadata": {"generateName": "tok-"}, "stringData": {"token": "s3cret"}});
    let (s, out) = c.raw(Method::POST, "/api/v1/namespaces/default/secrets", Some(&body)).await;
    assert_eq!(s, StatusCode::CREATED, "{out}");
    let name = out["metadata"]["name"].as_str().expect("name");
    assert!(name.starts_with("tok-") && name.len() == 9, "{name}");
    assert_eq!(out["type"], "Opaque");
    assert_eq!(out["data"]["token"], "czNjcmV0");
    assert!(out.get("stringData").is_none());
}

#[tokio::test]
async fn kube_event_recorder_creates_then_patches_a_series() {
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let c = Cluster::start().await;
    let client = c.client().await;
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &service("evented"))
        .await
        .expect("create");
    let reporter = Reporter { controller: "wsgate".into(), instance: Some("wsgate-0".into()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let reference = kube::Resource::object_ref(&svc, &());
    let event = Event {
        type_: EventType::Warning,
        reason: "NoEndpoints".into(),
        note: Some("no ready endpoints".into()),
        action: "Route".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.expect("first publish creates");
    recorder.publish(&event, &reference).await.expect("second publish patches the series");
    let events: Api<K8sEvent> = Api::namespaced(client, "default");
    let list = events.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("NoEndpoints"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(e.regarding.as_ref().and_then(|r| r.name.as_deref()), Some("evented"));

    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.client().await, "default");
    let listed = core.list(&ListParams::default()).await.expect("core list");
    assert_eq!(listed.items.len(), 1, "both groups serve the same events");
    let ce = &listed.items[0];
    assert_eq!(ce.involved_object.name.as_deref(), Some("evented"));
    assert_eq!(ce.message.as_deref(), Some("no ready endpoints"));
    assert_eq!(ce.reporting_component.as_deref(), Some("wsgate"));
    assert_eq!(ce.metadata.resource_version, e.metadata.resource_version);
}

#[tokio::test]
async fn resource_version_on_create_is_refused_like_storage_does() {
    let c = Cluster::start().await;
    let cm = json!({"metadata": {"name": "x", "resourceVersion": "12"}});
    let (s, body) = c.raw(Method::POST, "/api/v1/namespaces/default/configmaps", Some(&cm)).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["message"], "resourceVersion should not be set on objects to be created");
    assert!(body.get("reason").is_none());
}

#[tokio::test]
async fn built_in_kinds_decode_like_typed_objects() {
    let c = Cluster::start().await;
    let path = "/api/v1/namespaces/default/services";
    let typo = json!({"metadata": {"name": "t"}, "spec": {"ports": [{"port": 80, "prot": "TCP"}], "selectr": {}}});
    let (s, body) = c.raw(Method::POST, &format!("{path}?fieldValidation=Strict"), Some(&typo)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.ports[0].prot\", unknown field \"spec.selectr\""
    );

    let req = hyper::Request::builder()
        .method(Method::POST)
        .uri(format!("{}{path}", c.server.url()))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", wsgate_test_apiserver::authn::ADMIN_TOKEN))
        .body(http_body_util::Full::new(bytes::Bytes::from(typo.to_string())))
        .expect("request");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let resp = client.request(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::CREATED, "fieldValidation defaults to Warn");
    let warnings: Vec<String> =
        resp.headers().get_all("warning").iter().map(|v| v.to_str().expect("ascii").to_string()).collect();
    assert_eq!(
        warnings,
        vec!["299 - \"unknown field \\\"spec.ports[0].prot\\\"\"", "299 - \"unknown field \\\"spec.selectr\\\"\""]
    );
    let (_, stored) = c.raw(Method::GET, &format!("{path}/t"), None).await;
    assert!(stored["spec"].get("selectr").is_none(), "unknown fields are dropped: {stored}");

    let wrong_type = json!({"metadata": {"name": "w"}, "spec": {"ports": [{"port": "80"}]}});
    let (s, body) = c.raw(Method::POST, path, Some(&wrong_type)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().expect("message").contains("cannot unmarshal string into Go struct field"),
        "{body}"
    );
}

#[tokio::test]
async fn server_side_apply_removes_what_a_manager_stops_applying() {
    let c = Cluster::start().await;
    let api: Api<Ingress> = Api::namespaced(c.client().await, "default");
    let ing = |labels: Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "ssa", "labels": labels},
               "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})
    };
    let pp = PatchParams::apply("tests").force();
    api.patch("ssa", &pp, &Patch::Apply(&ing(json!({"a": "1", "b": "2"})))).await.expect("apply creates");
    let other = json!({"metadata": {"labels": {"c": "3"}}});
    api.patch("ssa", &PatchParams::default(), &Patch::Merge(&other)).await.expect("another writer");
    let out = api.patch("ssa", &pp, &Patch::Apply(&ing(json!({"a": "1"})))).await.expect("re-apply");
    let labels = out.metadata.labels.expect("labels");
    assert_eq!(labels.keys().collect::<Vec<_>>(), vec!["a", "c"], "b dropped by its manager, c kept");

    let status =
        |lb: Value| json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "status": {"loadBalancer": lb}});
    let with_lb = api
        .patch_status("ssa", &pp, &Patch::Apply(&status(json!({"ingress": [{"ip": "192.0.2.7"}]}))))
        .await
        .expect("status apply");
    assert!(with_lb.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).is_some());
    let cleared = api.patch_status("ssa", &pp, &Patch::Apply(&status(json!({})))).await.expect("status re-apply");
    assert!(cleared.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).is_none(), "status field released");
    assert_eq!(cleared.metadata.generation, Some(1));
}

#[tokio::test]
async fn garbage_in_gets_status_answers_not_crashes() {
    let c = Cluster::start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let bodies = [
        (cms, json!([])),
        (cms, json!("text")),
        (cms, json!({"metadata": "x"})),
        (cms, json!({"metadata": {"name": 5}})),
        (cms, json!({"metadata": {"name": "l", "labels": "x"}})),
        (cms, json!({"metadata": {"name": "d"}, "data": 5})),
        (crds, json!({"metadata": {"name": "a.b.c"}, "spec": "x"})),
        (crds, json!({"metadata": {"name": "a.b.c"}, "spec": {"names": "x", "versions": 3}})),
        (
            crds,
            json!({"metadata": {"name": "x.example.com"}, "spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "x", "kind": "X"}, "versions": [{"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": "nope"}}]}}),
        ),
    ];
    for (path, body) in &bodies {
        let (s, answer) = c.raw(Method::POST, path, Some(body)).await;
        assert!(s.is_client_error(), "{body} → {s} {answer}");
        assert_eq!(answer["kind"], "Status", "{body} → {answer}");
    }
    let (s, _) = c.raw(Method::POST, cms, Some(&json!({"metadata": {"name": "p"}}))).await;
    assert_eq!(s, StatusCode::CREATED);
    for (ct, patch) in [
        ("application/merge-patch+json", json!([1])),
        ("application/json-patch+json", json!({"op": "add"})),
        ("application/json-patch+json", json!([{"op": "replace", "path": "", "value": "s"}])),
        ("application/json-patch+json", json!([{"op": "move", "from": "/nope", "path": "/x"}])),
        ("application/strategic-merge-patch+json", json!({"$patch": "delete"})),
        ("application/apply-patch+yaml", json!({"data": {"a": "b"}})),
    ] {
        let (s, answer) = c.raw_typed(Method::PATCH, &format!("{cms}/p"), ct, Some(&patch)).await;
        assert!(s.is_client_error(), "{ct} {patch} → {s} {answer}");
    }
    for query in
        ["?limit=abc", "?watch=true&timeoutSeconds=-1&resourceVersion=abc", "?labelSelector=a%20in%20b", "?continue=!!"]
    {
        let (s, _) = c.raw(Method::GET, &format!("{cms}{query}"), None).await;
        assert!(s.is_success() || s.is_client_error(), "{query} → {s}");
    }
    let (s, _) = c.raw(Method::GET, "/api/v1/namespaces//configmaps", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = c.raw(Method::GET, "/version", None).await;
    assert_eq!((s, v["gitVersion"].as_str()), (StatusCode::OK, Some("v1.32.0")), "still serving");
}

#[tokio::test]
async fn load_balancer_services_get_node_ports_that_stay() {
    let c = Cluster::start().await;
    let api: Api<Service> = Api::namespaced(c.client().await, "default");
    let mut svc = service("lb");
    svc.spec.as_mut().expect("spec").type_ = Some("LoadBalancer".into());
    let created = api.create(&PostParams::default(), &svc).await.expect("create");
    let spec = created.spec.clone().expect("spec");
    let node_port = spec.ports.as_ref().expect("ports")[0].node_port.expect("nodePort allocated");
    assert!((30000..=32767).contains(&node_port));
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    let mut again = created.clone();
    again.spec.as_mut().expect("spec").ports.as_mut().expect("ports")[0].node_port = None;
    again.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    let replaced = api.replace("lb", &PostParams::default(), &again).await.expect("replace");
    assert_eq!(replaced.spec.expect("spec").ports.expect("ports")[0].node_port, Some(node_port), "kept on update");
}
