//! The committed CRD is exactly what the Rust types generate, and says what users rely on.

use std::path::Path;

const CRD_PATH: &str = "crds/websocketroutes.wsgate.dev.yaml";

#[test]
fn committed_crd_is_the_generated_one() {
    let committed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(CRD_PATH))
        .unwrap_or_else(|e| panic!("cannot read {CRD_PATH}: {e}"));
    assert!(
        committed == wsgate::crd::crd_yaml(),
        "{CRD_PATH} differs from the types in src/crd: regenerate it with `cargo run -- crd > {CRD_PATH}`"
    );
}

#[test]
fn crd_schema_describes_the_spec() {
    let crd: serde_json::Value = serde_yaml::from_str(&wsgate::crd::crd_yaml()).expect("CRD YAML parses");
    assert_eq!(crd["spec"]["group"], "wsgate.dev");
    assert_eq!(crd["spec"]["names"]["kind"], "WebSocketRoute");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    // Either backends (the short form) or rules: a CEL rule says so, the schema requires neither.
    assert!(spec.get("required").is_none(), "{}", spec["required"]);
    let rules: Vec<&str> = spec["x-kubernetes-validations"]
        .as_array()
        .expect("spec has CEL rules")
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert!(rules.contains(&"has(self.rules) != has(self.backends)"), "{rules:?}");
    let backends = &spec["properties"]["backends"];
    assert_eq!(backends["minItems"], 1);
    let port = &backends["items"]["properties"]["service"]["properties"]["port"];
    assert_eq!(port["x-kubernetes-int-or-string"], true, "port takes a number or a name: {port}");
    let path_type = &spec["properties"]["path"]["properties"]["type"];
    assert_eq!(path_type["enum"], serde_json::json!(["Exact", "Prefix", "RegularExpression"]));
    let policy = &spec["properties"]["loadBalancing"]["properties"]["policy"];
    assert_eq!(policy["enum"], serde_json::json!(["LeastConnections", "RoundRobin", "ConsistentHash"]));
    for field in [
        "hostnames",
        "path",
        "backends",
        "timeouts",
        "loadBalancing",
        "allowedOrigins",
        "allowMissingOrigin",
        "subprotocols",
        "limits",
    ] {
        let description = spec["properties"][field]["description"].as_str().unwrap_or_default();
        assert!(description.len() > 20, "spec.{field} needs a description for kubectl explain, got {description:?}");
    }
}
