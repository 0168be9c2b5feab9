//! The rules of wsgate's own CRD, read from the generated file, plus the Kubernetes behaviours the
//! evaluator models (paths, defaults, errors, transition rules, ratcheting, escaping).

use serde_json::{Value, json};

use super::*;

const CRD: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds/websocketroutes.wsgate.dev.yaml"));

fn schema() -> Value {
    let crd: Value = serde_yaml::from_str(CRD).expect("the CRD is YAML");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// A route with `spec` merged over a minimal valid one.
fn route(spec: Value) -> Value {
    let mut base = json!({"backends": [{"service": {"name": "chat", "port": "ws"}}]});
    base.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
    json!({"apiVersion": "wsgate.dev/v1alpha1", "kind": "WebSocketRoute", "metadata": {"name": "chat"}, "spec": base})
}

/// `path: message` of every violation.
fn lines(object: &Value) -> Vec<String> {
    validate(&schema(), object).iter().map(|v| format!("{}: {}", v.path, v.message)).collect()
}

fn hash_on(hash_on: Value) -> Value {
    route(json!({"loadBalancing": {"policy": "ConsistentHash", "hashOn": hash_on}}))
}

#[test]
fn the_crd_carries_the_rules_this_suite_covers() {
    let crd = CRD.matches("x-kubernetes-validations:").count();
    assert_eq!(crd, 8, "a rule block was added or removed: cover it here");
    let rules = CRD.matches("- message:").count();
    assert_eq!(rules, 14, "a rule was added or removed: cover it here");
    assert!(check_rules(&schema(), "spec.validation.openAPIV3Schema").is_empty());
    assert!(has_rules(&schema()));
    assert!(!has_rules(&json!({"type": "object", "properties": {"spec": {"type": "object", "items": {}}}})));
}

#[test]
fn a_route_using_every_rule_correctly_passes() {
    let good = route(json!({
        "hostnames": ["chat.example.com"],
        "limits": {"handshakesPerSecondPerClient": 5, "handshakeBurstPerClient": 10, "maxConnections": 100},
        "loadBalancing": {
            "policy": "ConsistentHash",
            "loadBoundPercent": 25,
            "hashOn": {"type": "Cookie", "name": "session", "cookie": {"sameSite": "None", "secure": true}}
        },
        "subprotocols": {"allowed": ["graphql-transport-ws", "v1.chat+json"]}
    }));
    assert_eq!(lines(&good), Vec::<String>::new());
    assert_eq!(lines(&route(json!({}))), Vec::<String>::new(), "no optional field, no rule");
    assert_eq!(lines(&route(json!({"limits": {}, "loadBalancing": {}}))), Vec::<String>::new());
}

#[test]
fn a_drain_grace_period_needs_close() {
    assert_eq!(
        lines(&route(json!({"drain": {"gracePeriod": "5s"}}))),
        ["spec.drain: gracePeriod applies only to onEndpointTermination Close"]
    );
    assert_eq!(
        lines(&route(json!({"drain": {"onEndpointTermination": "Keep", "gracePeriod": "5s"}}))),
        ["spec.drain: gracePeriod applies only to onEndpointTermination Close"]
    );
    let ok = route(json!({"drain": {"onEndpointTermination": "Close", "gracePeriod": "5s"}}));
    assert_eq!(lines(&ok), Vec::<String>::new());
    assert_eq!(lines(&route(json!({"drain": {"onEndpointTermination": "Keep"}}))), Vec::<String>::new());
}

#[test]
fn limits_burst_needs_a_rate_and_at_least_the_rate() {
    assert_eq!(
        lines(&route(json!({"limits": {"handshakeBurstPerClient": 3}}))),
        ["spec.limits: handshakeBurstPerClient needs handshakesPerSecondPerClient"]
    );
    let low = route(json!({"limits": {"handshakesPerSecondPerClient": 5, "handshakeBurstPerClient": 2}}));
    let violations = validate(&schema(), &low);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(
        violations[0].to_string(),
        "spec.limits: Invalid value: \"object\": handshakeBurstPerClient must be at least handshakesPerSecondPerClient"
    );
    assert_eq!(violations[0].reason.as_str(), "FieldValueInvalid");
    assert!(violations[0].rule.contains(">= self.handshakesPerSecondPerClient"), "{}", violations[0].rule);
    // Integers compare as integers, including an equal burst and one written as 10.0.
    for burst in [json!(5), json!(10), json!(10.0)] {
        let ok = route(json!({"limits": {"handshakesPerSecondPerClient": 5, "handshakeBurstPerClient": burst}}));
        assert_eq!(lines(&ok), Vec::<String>::new(), "{ok}");
    }
}

#[test]
fn load_balancing_hash_on_goes_with_consistent_hash_only() {
    let message = "spec.loadBalancing: hashOn is required with policy ConsistentHash, and allowed only with it";
    assert_eq!(lines(&route(json!({"loadBalancing": {"policy": "ConsistentHash"}}))), [message]);
    assert_eq!(
        lines(&route(json!({"loadBalancing": {"policy": "RoundRobin", "hashOn": {"type": "SourceIP"}}}))),
        [message]
    );
    // `policy` defaults to LeastConnections, as the API server stores it.
    assert_eq!(lines(&route(json!({"loadBalancing": {"hashOn": {"type": "SourceIP"}}}))), [message]);
    assert_eq!(
        lines(&route(json!({"loadBalancing": {"loadBoundPercent": 10}}))),
        ["spec.loadBalancing: loadBoundPercent applies only to policy ConsistentHash"]
    );
}

#[test]
fn hash_on_name_cookie_and_token_rules() {
    let at = "spec.loadBalancing.hashOn";
    assert_eq!(
        lines(&hash_on(json!({"type": "Header"}))),
        [format!("{at}: name is required for type Header, Cookie and QueryParam")]
    );
    assert_eq!(
        lines(&hash_on(json!({"type": "SourceIP", "name": "x"}))),
        [format!("{at}: name is not allowed for type SourceIP")]
    );
    assert_eq!(
        lines(&hash_on(json!({"type": "Header", "name": "X-User", "cookie": {}}))),
        [format!("{at}: cookie applies only to type Cookie")]
    );
    assert_eq!(
        lines(&hash_on(json!({"type": "Header", "name": "X User"}))),
        [format!("{at}: a header or cookie name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)")]
    );
    assert_eq!(lines(&hash_on(json!({"type": "QueryParam", "name": "room id"}))), Vec::<String>::new());
    assert_eq!(lines(&hash_on(json!({"type": "Header", "name": "X-User_Id!#$%&'*+.^`|~9"}))), Vec::<String>::new());
}

#[test]
fn a_same_site_none_cookie_must_be_secure() {
    let message =
        "spec.loadBalancing.hashOn.cookie: sameSite None requires secure: true (browsers drop such cookies otherwise)";
    for cookie in [json!({"sameSite": "None"}), json!({"sameSite": "None", "secure": false})] {
        assert_eq!(lines(&hash_on(json!({"type": "Cookie", "name": "s", "cookie": cookie}))), [message]);
    }
    for cookie in [json!({"sameSite": "Lax"}), json!({"secure": false}), json!({"sameSite": "None", "secure": true})] {
        assert_eq!(lines(&hash_on(json!({"type": "Cookie", "name": "s", "cookie": cookie}))), Vec::<String>::new());
    }
}

#[test]
fn subprotocol_names_must_be_tokens() {
    assert_eq!(
        lines(&route(json!({"subprotocols": {"allowed": ["chat", "bad proto"]}}))),
        ["spec.subprotocols: a subprotocol name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"]
    );
}

/// A route with `rules` instead of `backends`.
fn ruled(spec: Value) -> Value {
    let mut object = route(spec);
    object["spec"].as_object_mut().unwrap().remove("backends");
    object
}

#[test]
fn backends_or_rules_and_no_path_with_rules() {
    let either = "spec: set either backends (with an optional path) or rules, not both";
    let rules = json!([{"backends": [{"service": {"name": "chat", "port": 80}}]}]);
    assert_eq!(lines(&ruled(json!({"rules": rules}))), Vec::<String>::new());
    assert_eq!(lines(&route(json!({"rules": rules}))), [either], "both");
    assert_eq!(lines(&ruled(json!({}))), [either], "neither");
    assert_eq!(
        lines(&ruled(json!({"rules": rules, "path": {"value": "/chat"}}))),
        ["spec: path is not allowed with rules: write it in rules[].matches[].path"]
    );
    assert_eq!(lines(&route(json!({"path": {"value": "/chat"}}))), Vec::<String>::new(), "a path with backends");
}

#[test]
fn a_rule_header_match_name_must_be_a_token() {
    let header = |name: &str| {
        ruled(json!({"rules": [
            {"backends": [{"service": {"name": "a", "port": 80}}]},
            {"matches": [{"path": {"value": "/x"}}, {"headers": [{"name": "X-Ok", "value": "1"}, {"name": name, "value": "v"}]}],
             "backends": [{"service": {"name": "b", "port": 80}}]}
        ]}))
    };
    assert_eq!(lines(&header("X-Tenant")), Vec::<String>::new());
    assert_eq!(
        lines(&header("X Tenant")),
        [
            "spec.rules[1].matches[1].headers[1]: a header name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
        ]
    );
}

#[test]
fn several_violations_are_all_reported() {
    let object = route(json!({
        "limits": {"handshakeBurstPerClient": 3},
        "loadBalancing": {"policy": "ConsistentHash", "hashOn": {"type": "SourceIP", "name": "x"}}
    }));
    assert_eq!(
        lines(&object),
        [
            "spec.limits: handshakeBurstPerClient needs handshakesPerSecondPerClient",
            "spec.loadBalancing.hashOn: name is not allowed for type SourceIP",
        ]
    );
}

#[test]
fn a_null_of_a_nullable_field_is_present_as_the_api_server_keeps_it() {
    // `hashOn: null` is kept (the field is nullable), so `has(self.hashOn)` is true.
    assert_eq!(
        lines(&route(json!({"loadBalancing": {"hashOn": null}}))),
        ["spec.loadBalancing: hashOn is required with policy ConsistentHash, and allowed only with it"]
    );
    // A null burst against a rate cannot be compared: an evaluation error, reported.
    let null = route(json!({"limits": {"handshakesPerSecondPerClient": 5, "handshakeBurstPerClient": null}}));
    let lines = lines(&null);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("spec.limits: 'no such overload': call arguments did not match"), "{lines:?}");
}

/// A small schema with one rule at `spec.items[*]` and others, for the generic behaviours.
fn custom(rules: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "x-kubernetes-validations": rules,
                "properties": {
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                            "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min above max"}]
                        }
                    },
                    "labels": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "string",
                            "x-kubernetes-validations": [{"rule": "self.size() <= 3"}]
                        }
                    },
                    "ratio": {"type": "number"},
                    "name": {"type": "string"},
                    "x-name": {"type": "string"},
                    "namespace": {"type": "string"}
                }
            }
        }
    })
}

fn spec(spec: Value) -> Value {
    json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n", "labels": {"a": "b"}}, "spec": spec})
}

#[test]
fn list_items_and_map_values_are_validated_with_their_index_or_key() {
    let schema = custom(json!([]));
    let object = spec(json!({
        "items": [{"min": 1, "max": 2}, {"min": 3, "max": 2}],
        "labels": {"ok": "abc", "long": "abcd"}
    }));
    let got: Vec<String> = validate(&schema, &object).iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "spec.items[1]: Invalid value: \"object\": min above max",
            "spec.labels[long]: Invalid value: \"string\": failed rule: self.size() <= 3",
        ]
    );
}

#[test]
fn a_rule_that_fails_to_evaluate_is_a_violation_naming_the_error() {
    let schema = custom(json!([{"rule": "self.name == 'a'", "message": "name must be a"}]));
    let got = validate(&schema, &spec(json!({})));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "spec");
    assert_eq!(got[0].message, "no such key: name evaluating rule: name must be a");
    let schema = custom(json!([{"rule": "self.ratio > 1"}]));
    let got = validate(&schema, &spec(json!({"ratio": 2})));
    assert_eq!(got, [], "a number is a double, and double > int compares");
    let schema = custom(json!([{"rule": "self.name +"}]));
    let got = validate(&schema, &spec(json!({})));
    assert_eq!(got.len(), 1);
    assert!(got[0].message.starts_with("compilation failed: "), "{}", got[0].message);
    assert!(got[0].message.ends_with("for rule: self.name +"), "{}", got[0].message);
    let errors = check_rules(&schema, "spec.validation.openAPIV3Schema");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule");
}

#[test]
fn message_expression_reason_and_field_path() {
    let schema = custom(json!([{
        "rule": "self.name.startsWith('a')",
        "messageExpression": "'name ' + self.name + ' must start with a'",
        "message": "unused",
        "reason": "FieldValueForbidden",
        "fieldPath": ".name"
    }]));
    let got = validate(&schema, &spec(json!({"name": "bob"})));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to_string(), "spec.name: Forbidden: name bob must start with a");
    assert_eq!(got[0].reason.as_str(), "FieldValueForbidden");
    // A messageExpression that yields nothing usable falls back to the message.
    let schema = custom(json!([{"rule": "false", "messageExpression": "''", "message": "plain"}]));
    assert_eq!(validate(&schema, &spec(json!({})))[0].message, "plain");
}

#[test]
fn reserved_and_dashed_property_names_are_escaped_and_metadata_shows_only_the_name() {
    let schema = custom(json!([{"rule": "self.__namespace__ == 'ns' && self.x__dash__name == 'y'"}]));
    assert_eq!(validate(&schema, &spec(json!({"namespace": "ns", "x-name": "y"}))), []);
    let mut root = custom(json!([]));
    root["x-kubernetes-validations"] =
        json!([{"rule": "self.metadata.name == 'n' && !has(self.metadata.labels) && self.kind == 'X'"}]);
    assert_eq!(validate(&root, &spec(json!({}))), []);
    root["x-kubernetes-validations"] = json!([{"rule": "self.metadata.name == 'other'", "message": "root rule"}]);
    let got = validate(&root, &spec(json!({})));
    assert_eq!(got[0].to_string(), "<nil>: Invalid value: \"object\": root rule");
}

#[test]
fn transition_rules_run_on_update_only_and_unchanged_values_are_ratcheted() {
    let schema = custom(json!([{"rule": "self.name == oldSelf.name", "message": "name is immutable"}]));
    assert_eq!(validate(&schema, &spec(json!({"name": "a"}))), [], "no oldSelf on create");
    let old = spec(json!({"name": "a"}));
    assert_eq!(validate_update(&schema, &spec(json!({"name": "a"})), Some(&old)), []);
    let got = validate_update(&schema, &spec(json!({"name": "b"})), Some(&old));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message, "name is immutable");

    // A rule the old object already broke: an update that leaves that value alone passes, one that
    // changes it (and still breaks the rule) does not. Items of an atomic list are not matched to
    // old ones, so they are never ratcheted (as in Kubernetes).
    let schema = custom(json!([]));
    let old = spec(json!({"labels": {"long": "abcd"}, "items": [{"min": 3, "max": 2}]}));
    let kept = spec(json!({"labels": {"long": "abcd", "new": "x"}}));
    assert_eq!(validate_update(&schema, &kept, Some(&old)), []);
    let changed = spec(json!({"labels": {"long": "abcde"}}));
    assert_eq!(validate_update(&schema, &changed, Some(&old))[0].path, "spec.labels[long]");
    let same_list = spec(json!({"items": [{"min": 3, "max": 2}]}));
    assert_eq!(validate_update(&schema, &same_list, Some(&old))[0].path, "spec.items[0]");
    let mut keyed = schema.clone();
    keyed["properties"]["spec"]["properties"]["items"]["x-kubernetes-list-type"] = json!("map");
    keyed["properties"]["spec"]["properties"]["items"]["x-kubernetes-list-map-keys"] = json!(["min"]);
    assert_eq!(validate_update(&keyed, &same_list, Some(&old)), [], "a map list's items are matched by key");
}

#[test]
fn a_node_s_own_rules_are_reported_before_its_children_s() {
    let object = route(json!({"loadBalancing": {"policy": "RoundRobin", "hashOn": {"type": "SourceIP", "name": "x"}}}));
    assert_eq!(
        lines(&object),
        [
            "spec.loadBalancing: hashOn is required with policy ConsistentHash, and allowed only with it",
            "spec.loadBalancing.hashOn: name is not allowed for type SourceIP",
        ]
    );
}
