//! CustomResourceDefinitions: establishment, discovery, schema validation, pruning, defaulting,
//! status subresource, multiple versions and removal.

use hyper::{Method, StatusCode};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::conditions;
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

use crate::harness::{Cluster, within};

pub fn crd_json() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                 "additionalPrinterColumns": [
                    {"name": "Host", "type": "string", "jsonPath": ".spec.host"},
                    {"name": "Port", "type": "integer", "jsonPath": ".spec.port"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["host"], "properties": {
                        "host": {"type": "string", "pattern": "^[a-z0-9.-]+$"},
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 80},
                        "mode": {"type": "string", "enum": ["fast", "safe"]},
                        "target": {"x-kubernetes-int-or-string": true},
                        "paths": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}}},
                {"name": "v1alpha1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
            ]
        }
    })
}

fn widget_resource(version: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.com", version, "Widget"), "widgets")
}

async fn install(c: &Cluster) -> Api<CustomResourceDefinition> {
    let crds: Api<CustomResourceDefinition> = Api::all(c.client().await);
    let crd: CustomResourceDefinition = serde_json::from_value(crd_json()).expect("crd");
    crds.create(&PostParams::default(), &crd).await.expect("create CRD");
    within(
        10,
        "CRD established",
        await_condition(crds.clone(), "widgets.example.com", conditions::is_crd_established()),
    )
    .await
    .expect("condition");
    crds
}

fn api_error(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn custom_resources_are_validated_pruned_and_defaulted() {
    let c = Cluster::start().await;
    install(&c).await;
    let api: Api<DynamicObject> = Api::namespaced_with(c.client().await, "default", &widget_resource("v1"));
    let ok: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
        "spec": {"host": "a.example.com", "target": "http", "extra": {"free": {"form": 1}}, "unknown": true},
        "status": {"ready": true}
    }))
    .expect("widget");
    let created = api.create(&PostParams::default(), &ok).await.expect("create widget");
    assert_eq!(created.data["spec"]["port"], 80, "default applied");
    assert!(created.data["spec"].get("unknown").is_none(), "unknown field pruned");
    assert_eq!(created.data["spec"]["extra"]["free"]["form"], 1, "preserve-unknown-fields kept");
    assert!(created.data.get("status").is_none(), "status ignored on create with a status subresource");
    assert_eq!(created.metadata.generation, Some(1));

    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "bad"},
        "spec": {"port": 0, "mode": "slow", "target": 1.5, "paths": []}
    }))
    .expect("widget");
    let err = api_error(api.create(&PostParams::default(), &bad).await.expect_err("invalid"));
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let fields: Vec<String> = err.details.expect("details").causes.into_iter().map(|c| c.field).collect();
    assert_eq!(fields, vec!["spec.host", "spec.mode", "spec.paths", "spec.port", "spec.target"]);
    assert!(err.message.starts_with("Widget.example.com \"bad\" is invalid: ["), "{}", err.message);

    let strict = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "s"},
                        "spec": {"host": "h", "nope": 1}});
    let (s, body) = c
        .raw(Method::POST, "/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Strict", Some(&strict))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().expect("message").ends_with("strict decoding error: unknown field \"spec.nope\""));

    let status = json!({"status": {"ready": true}, "spec": {"host": "ignored.example.com"}});
    let with_status =
        api.patch_status("w1", &PatchParams::default(), &Patch::Merge(&status)).await.expect("patch status");
    assert_eq!(with_status.data["status"]["ready"], true);
    assert_eq!(with_status.data["spec"]["host"], "a.example.com", "spec ignored on /status");
    assert_eq!(with_status.metadata.generation, Some(1));
    let spec = json!({"spec": {"port": 8080}});
    let respec = api.patch("w1", &PatchParams::default(), &Patch::Merge(&spec)).await.expect("patch spec");
    assert_eq!(respec.metadata.generation, Some(2));
    assert_eq!(respec.data["status"]["ready"], true, "status kept on main-resource writes");

    let unconditional = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
                               "spec": {"host": "b.example.com"}});
    let (s, body) =
        c.raw(Method::PUT, "/apis/example.com/v1/namespaces/default/widgets/w1", Some(&unconditional)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "custom resources need a resourceVersion on update: {body}");

    let alpha: Api<DynamicObject> = Api::namespaced_with(c.client().await, "default", &widget_resource("v1alpha1"));
    let via_alpha = alpha.get("w1").await.expect("read at the other served version");
    assert_eq!(via_alpha.types.expect("types").api_version, "example.com/v1alpha1");
}

#[tokio::test]
async fn crds_come_and_go_from_discovery() {
    let c = Cluster::start().await;
    let (_, before) = c.raw(Method::GET, "/apis/example.com/v1", None).await;
    assert_eq!(before["code"], 404);
    let crds = install(&c).await;
    let (_, list) = c.raw(Method::GET, "/apis/example.com/v1", None).await;
    let names: Vec<&str> =
        list["resources"].as_array().expect("resources").iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, vec!["widgets", "widgets/status"]);
    let (_, groups) = c.raw(Method::GET, "/apis/example.com", None).await;
    assert_eq!(groups["preferredVersion"]["version"], "v1");

    let discovery = kube::Discovery::new(c.client().await).run().await.expect("discovery");
    assert!(discovery.resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget")).is_some());

    let api: Api<DynamicObject> = Api::namespaced_with(c.client().await, "default", &widget_resource("v1"));
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"host": "h"}
    }))
    .expect("widget");
    api.create(&PostParams::default(), &w).await.expect("create");
    crds.delete("widgets.example.com", &DeleteParams::default()).await.expect("delete CRD");
    let (s, _) = c.raw(Method::GET, "/apis/example.com/v1/namespaces/default/widgets/w", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, groups) = c.raw(Method::GET, "/apis", None).await;
    assert!(!groups.to_string().contains("example.com"));
    let crd: CustomResourceDefinition = serde_json::from_value(crd_json()).expect("crd");
    crds.create(&PostParams::default(), &crd).await.expect("re-create CRD");
    assert_eq!(api.list(&Default::default()).await.expect("list").items.len(), 0, "custom resources went with the CRD");
}

#[tokio::test]
async fn invalid_crds_are_rejected() {
    let c = Cluster::start().await;
    let mut crd = crd_json();
    crd["metadata"]["name"] = json!("wrong.example.com");
    crd["spec"]["versions"][1]["storage"] = json!(true);
    let (s, body) = c.raw(Method::POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", Some(&crd)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> =
        body["details"]["causes"].as_array().expect("causes").iter().filter_map(|c| c["field"].as_str()).collect();
    assert_eq!(fields, vec!["metadata.name", "spec.versions"]);
}
