//! CEL rules (`x-kubernetes-validations`) of CRDs: wsgate's own WebSocketRoute CRD refusing bad
//! routes with kube-apiserver's 422, on create, update and patch; rules blocked by type errors;
//! transition rules and ratcheting; CRDs whose rules do not compile.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::Cluster;

const WEBSOCKETROUTE_CRD: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../crds/websocketroutes.wsgate.dev.yaml"));

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const ROUTES: &str = "/apis/wsgate.dev/v1alpha1/namespaces/default/websocketroutes";

async fn install_websocketroute_crd(c: &Cluster) {
    let crd: Value = serde_yaml::from_str(WEBSOCKETROUTE_CRD).expect("the committed CRD is YAML");
    let (s, body) = c.raw(Method::POST, CRDS, Some(&crd)).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
}

fn route(name: &str, spec: Value) -> Value {
    let mut full = json!({"backends": [{"service": {"name": "chat", "port": "ws"}}]});
    full.as_object_mut().expect("object").extend(spec.as_object().expect("object").clone());
    json!({"apiVersion": "wsgate.dev/v1alpha1", "kind": "WebSocketRoute", "metadata": {"name": name}, "spec": full})
}

/// `(reason, field, message)` of each cause of a Status.
fn causes(status: &Value) -> Vec<(String, String, String)> {
    let text = |c: &Value, k: &str| c[k].as_str().unwrap_or_default().to_string();
    status["details"]["causes"]
        .as_array()
        .map(|causes| causes.iter().map(|c| (text(c, "reason"), text(c, "field"), text(c, "message"))).collect())
        .unwrap_or_default()
}

const BURST: &str = "handshakeBurstPerClient must be at least handshakesPerSecondPerClient";
const HASH_ON: &str = "hashOn is required with policy ConsistentHash, and allowed only with it";

#[tokio::test]
async fn websocketroutes_breaking_a_crd_rule_are_refused_with_the_rule_message() {
    let c = Cluster::start().await;
    install_websocketroute_crd(&c).await;

    let good = route("good", json!({"limits": {"handshakesPerSecondPerClient": 5, "handshakeBurstPerClient": 10}}));
    let (s, created) = c.raw(Method::POST, ROUTES, Some(&good)).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["spec"]["limits"]["handshakeBurstPerClient"], 10);

    let bad = route("limited", json!({"limits": {"handshakesPerSecondPerClient": 10, "handshakeBurstPerClient": 2}}));
    let (s, status) = c.raw(Method::POST, ROUTES, Some(&bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        format!("WebSocketRoute.wsgate.dev \"limited\" is invalid: spec.limits: Invalid value: \"object\": {BURST}")
    );
    assert_eq!(
        causes(&status),
        [("FieldValueInvalid".into(), "spec.limits".into(), format!("Invalid value: \"object\": {BURST}"))]
    );
    assert_eq!(status["details"]["name"], "limited");
    assert_eq!(
        (&status["details"]["group"], &status["details"]["kind"]),
        (&json!("wsgate.dev"), &json!("WebSocketRoute"))
    );
    let (s, _) = c.raw(Method::GET, &format!("{ROUTES}/limited"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a refused route is not stored");

    // Two broken rules: both causes, and the message lists them as the real server does. `policy` is
    // defaulted (LeastConnections) before the rules run.
    let two = route(
        "two",
        json!({"loadBalancing": {"hashOn": {"type": "SourceIP", "name": "x"}}, "subprotocols": {"allowed": ["a b"]}}),
    );
    let (s, status) = c.raw(Method::POST, ROUTES, Some(&two)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    let fields: Vec<String> = causes(&status).into_iter().map(|(_, field, _)| field).collect();
    assert_eq!(fields, ["spec.loadBalancing", "spec.loadBalancing.hashOn", "spec.subprotocols"]);
    let message = status["message"].as_str().expect("message");
    assert!(
        message.starts_with(&format!(
            "WebSocketRoute.wsgate.dev \"two\" is invalid: [spec.loadBalancing: Invalid value: \"object\": {HASH_ON}, \
             spec.loadBalancing.hashOn: Invalid value: \"object\": name is not allowed for type SourceIP, "
        )),
        "{message}"
    );

    // Updates and patches are held to the same rules; the stored route is left as it was.
    let patch = json!({"spec": {"loadBalancing": {"policy": "ConsistentHash"}}});
    let (s, status) =
        c.raw_typed(Method::PATCH, &format!("{ROUTES}/good"), "application/merge-patch+json", Some(&patch)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(
        status["message"],
        format!(
            "WebSocketRoute.wsgate.dev \"good\" is invalid: spec.loadBalancing: Invalid value: \"object\": {HASH_ON}"
        )
    );
    let mut replaced = created.clone();
    replaced["spec"]["limits"]["handshakeBurstPerClient"] = json!(1);
    let (s, status) = c.raw(Method::PUT, &format!("{ROUTES}/good"), Some(&replaced)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(causes(&status)[0].1, "spec.limits");
    let fixed = json!({"spec": {"loadBalancing": {"policy": "ConsistentHash", "hashOn": {"type": "SourceIP"}}}});
    let (s, body) =
        c.raw_typed(Method::PATCH, &format!("{ROUTES}/good"), "application/merge-patch+json", Some(&fixed)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["spec"]["limits"]["handshakeBurstPerClient"], 10);

    // A type error stops the rules, and one cause says so, as in kube-apiserver.
    let typed =
        route("typed", json!({"limits": {"handshakesPerSecondPerClient": "ten", "handshakeBurstPerClient": 2}}));
    let (s, status) = c.raw(Method::POST, ROUTES, Some(&typed)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    let got = causes(&status);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str()),
        ("FieldValueTypeInvalid", "spec.limits.handshakesPerSecondPerClient")
    );
    assert_eq!(
        got[1],
        (
            "FieldValueInvalid".into(),
            "<nil>".into(),
            "Invalid value: null: some validation rules were not checked because the object was invalid; correct \
             the existing errors to complete validation"
                .into()
        )
    );
}

/// A CRD whose `spec.name` may not change once set and whose `spec.size` must be small.
fn gadget_crd(rules: bool) -> Value {
    let spec_rules =
        if rules { json!([{"rule": "self.size <= 10", "message": "size must be at most 10"}]) } else { json!([]) };
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "x-kubernetes-validations": spec_rules, "properties": {
                            "size": {"type": "integer"},
                            "note": {"type": "string"},
                            "name": {"type": "string", "x-kubernetes-validations": [
                                {"rule": "self == oldSelf", "message": "name is immutable"}]}}}}}}}]}
    })
}

#[tokio::test]
async fn transition_rules_and_ratcheting_on_update() {
    let c = Cluster::start().await;
    let (s, body) = c.raw(Method::POST, CRDS, Some(&gadget_crd(false))).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let gadgets = "/apis/example.com/v1/namespaces/default/gadgets";
    let gadget = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"},
                        "spec": {"name": "first", "size": 50}});
    let (s, body) = c.raw(Method::POST, gadgets, Some(&gadget)).await;
    assert_eq!(s, StatusCode::CREATED, "no oldSelf on create: {body}");

    let merge = "application/merge-patch+json";
    let rename = json!({"spec": {"name": "second"}});
    let (s, status) = c.raw_typed(Method::PATCH, &format!("{gadgets}/g"), merge, Some(&rename)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(
        status["message"],
        "Gadget.example.com \"g\" is invalid: spec.name: Invalid value: \"string\": name is immutable"
    );

    // A rule added later: the stored size 50 breaks it, yet updates that leave spec alone pass
    // (ratcheting); changing spec to another value that breaks it does not.
    let (_, stored) = c.raw(Method::GET, &format!("{CRDS}/gadgets.example.com"), None).await;
    let mut with_rule = gadget_crd(true);
    with_rule["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"].clone();
    let (s, body) = c.raw(Method::PUT, &format!("{CRDS}/gadgets.example.com"), Some(&with_rule)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let label = json!({"metadata": {"labels": {"touched": "yes"}}});
    let (s, body) = c.raw_typed(Method::PATCH, &format!("{gadgets}/g"), merge, Some(&label)).await;
    assert_eq!(s, StatusCode::OK, "an unchanged spec is ratcheted: {body}");
    let grow = json!({"spec": {"size": 60}});
    let (s, status) = c.raw_typed(Method::PATCH, &format!("{gadgets}/g"), merge, Some(&grow)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(
        status["message"],
        "Gadget.example.com \"g\" is invalid: spec: Invalid value: \"object\": size must be at most 10"
    );
    let shrink = json!({"spec": {"size": 5}});
    let (s, body) = c.raw_typed(Method::PATCH, &format!("{gadgets}/g"), merge, Some(&shrink)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_crd_whose_rule_does_not_compile_is_refused() {
    let c = Cluster::start().await;
    let mut crd = gadget_crd(false);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
        json!([{"rule": "self.size <=", "message": "broken"}]);
    let (s, status) = c.raw(Method::POST, CRDS, Some(&crd)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    let got = causes(&status);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule");
    assert!(got[0].2.starts_with("Invalid value: \"self.size <=\": compilation failed: "), "{}", got[0].2);
}
