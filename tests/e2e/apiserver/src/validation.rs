//! Per-kind defaulting and validation of built-in kinds, following the real registry strategies for
//! the fields wsgate and its tests touch (names, Service ports, EndpointSlice addresses, Ingress
//! paths, IngressClass controller, Secret data, Lease spec, events.k8s.io Events, CRD specs, RBAC
//! rules, role references and subjects).
//!
//! ```text
//!   decoded object ──default()──► validate() ──► [] ok | [FieldCause..] → 422 Invalid
//! ```

use std::net::IpAddr;

use base64::Engine;
use serde_json::{Value, json};

use crate::catalog::{NameRule, ResourceType};
use crate::meta;
use crate::status::{ApiError, FieldCause};

/// Fills the defaults the real server's defaulting functions set on every write.
pub fn default(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "services") => default_service(obj),
        ("", "secrets") => default_secret(obj)?,
        ("", "namespaces") => {
            let name = meta::meta_str(obj, "name").to_string();
            let labels = meta::meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
            if let Value::Object(l) = labels {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            if !obj["spec"]["finalizers"].is_array() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        ("discovery.k8s.io", "endpointslices") => {
            for port in obj["ports"].as_array_mut().into_iter().flatten() {
                if port.is_object() {
                    port.as_object_mut().map(|p| p.entry("protocol").or_insert_with(|| json!("TCP")));
                    port.as_object_mut().map(|p| p.entry("name").or_insert_with(|| json!("")));
                }
            }
        }
        ("apps", "deployments") => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert(json!(1));
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
                spec.entry("progressDeadlineSeconds").or_insert(json!(600));
                spec.entry("strategy").or_insert(
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                );
            }
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => default_binding(obj),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            if let Some(names) = obj.get_mut("spec").and_then(|s| s.get_mut("names")).and_then(Value::as_object_mut)
                && let Some(kind) = names.get("kind").and_then(Value::as_str).map(str::to_string)
            {
                if names.get("singular").and_then(Value::as_str).is_none_or(str::is_empty) {
                    names.insert("singular".into(), json!(kind.to_ascii_lowercase()));
                }
                if names.get("listKind").and_then(Value::as_str).is_none_or(str::is_empty) {
                    names.insert("listKind".into(), json!(format!("{kind}List")));
                }
            }
            if obj["spec"].is_object() && obj["spec"].get("conversion").is_none() {
                obj["spec"]["conversion"] = json!({"strategy": "None"});
            }
        }
        _ => {}
    }
    Ok(())
}

fn default_service(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    spec.entry("type").or_insert(json!("ClusterIP"));
    spec.entry("sessionAffinity").or_insert(json!("None"));
    let external_name = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
    if !external_name {
        spec.entry("internalTrafficPolicy").or_insert(json!("Cluster"));
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            port.entry("protocol").or_insert(json!("TCP"));
            if !port.contains_key("targetPort")
                && let Some(p) = port.get("port").cloned()
            {
                port.insert("targetPort".into(), p);
            }
        }
    }
}

fn default_secret(obj: &mut Value) -> Result<(), ApiError> {
    if obj.get("type").is_none_or(|t| t.as_str().is_none_or(str::is_empty)) {
        obj["type"] = json!("Opaque");
    }
    if let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|o| o.remove("stringData")) {
        if !obj["data"].is_object() {
            obj["data"] = json!({});
        }
        for (k, v) in string_data {
            let s = v.as_str().unwrap_or_default();
            obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s.as_bytes()));
        }
    }
    for (k, v) in obj["data"].as_object().into_iter().flatten() {
        let ok = v.as_str().is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
        if !ok {
            return Err(ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k}]"
            )));
        }
    }
    Ok(())
}

/// Checks `metadata.name` with the kind's rule.
pub fn check_name(rt: &ResourceType, name: &str) -> Vec<FieldCause> {
    let errs = match rt.name_rule {
        NameRule::Subdomain => meta::check_dns1123_subdomain(name),
        NameRule::Label => meta::check_dns1123_label(name),
        NameRule::Dns1035 => meta::check_dns1035_label(name),
        NameRule::PathSegment => meta::check_path_segment(name),
    };
    errs.iter().map(|e| FieldCause::invalid("metadata.name", &json!(name), e)).collect()
}

/// Validates a built-in object (after defaulting). `old` is the stored object on update.
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<FieldCause> {
    let mut causes = meta::check_labels_and_annotations(obj);
    if rt.is_custom() {
        return causes;
    }
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "services") => validate_service(obj, &mut causes),
        ("", "secrets") | ("", "configmaps") => validate_config_data(obj, old, &mut causes),
        ("discovery.k8s.io", "endpointslices") => validate_endpoint_slice(obj, &mut causes),
        ("networking.k8s.io", "ingresses") => validate_ingress(obj, &mut causes),
        ("networking.k8s.io", "ingressclasses") => validate_ingress_class(obj, &mut causes),
        ("coordination.k8s.io", "leases") => validate_lease(obj, &mut causes),
        ("events.k8s.io", "events") => validate_event(obj, &mut causes),
        ("apiextensions.k8s.io", "customresourcedefinitions") => validate_crd(obj, &mut causes),
        ("rbac.authorization.k8s.io", "roles") => validate_rules(obj, true, &mut causes),
        ("rbac.authorization.k8s.io", "clusterroles") => validate_cluster_role(obj, &mut causes),
        ("rbac.authorization.k8s.io", "rolebindings") => validate_binding(obj, true, &mut causes),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => validate_binding(obj, false, &mut causes),
        _ => {}
    }
    if let Some(old) = old {
        immutable(rt, obj, old, &mut causes);
        if rt.group == RBAC_GROUP && old["roleRef"] != obj["roleRef"] {
            causes.push(FieldCause::invalid_rendered(
                "roleRef",
                &go_role_ref(&obj["roleRef"]),
                "cannot change roleRef",
            ));
        }
    }
    causes
}

/// Fields the real strategies refuse to change once set.
fn immutable(rt: &ResourceType, obj: &Value, old: &Value, causes: &mut Vec<FieldCause>) {
    let fields: &[&str] = match (rt.group.as_str(), rt.resource.as_str()) {
        ("discovery.k8s.io", "endpointslices") => &["/addressType"],
        ("apiextensions.k8s.io", "customresourcedefinitions") => &["/spec/group", "/spec/scope", "/spec/names/plural"],
        ("apps", "deployments") => &["/spec/selector"],
        _ => &[],
    };
    for pointer in fields {
        let (new_v, old_v) = (obj.pointer(pointer), old.pointer(pointer));
        if old_v.is_some() && new_v != old_v {
            let path = pointer.trim_start_matches('/').replace('/', ".");
            causes.push(FieldCause::invalid(path, new_v.unwrap_or(&Value::Null), "field is immutable"));
        }
    }
}

fn port_number_ok(v: &Value) -> bool {
    v.as_i64().is_some_and(|p| (1..=65535).contains(&p))
}

const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

fn valid_port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push("must be no more than 15 characters".to_string());
    }
    let ok_chars = s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if !ok_chars {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

fn check_protocol(path: String, v: Option<&Value>, causes: &mut Vec<FieldCause>) {
    if let Some(p) = v
        && !matches!(p.as_str(), Some("TCP" | "UDP" | "SCTP"))
    {
        causes.push(FieldCause::not_supported(path, p, &[json!("SCTP"), json!("TCP"), json!("UDP")]));
    }
}

fn validate_service(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = &obj["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if !matches!(ty, "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName") {
        causes.push(FieldCause::not_supported(
            "spec.type",
            &spec["type"],
            &[json!("ClusterIP"), json!("ExternalName"), json!("LoadBalancer"), json!("NodePort")],
        ));
    }
    let headless = spec["clusterIP"].as_str() == Some("None");
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    if ty == "ExternalName" {
        if spec["externalName"].as_str().is_none_or(str::is_empty) {
            causes.push(FieldCause::required("spec.externalName", ""));
        }
    } else if ports.is_empty() && !headless {
        causes.push(FieldCause::required("spec.ports", ""));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let base = format!("spec.ports[{i}]");
        let name = port["name"].as_str().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            causes.push(FieldCause::required(format!("{base}.name"), ""));
        } else if !name.is_empty() {
            for e in meta::check_dns1123_label(name) {
                causes.push(FieldCause::invalid(format!("{base}.name"), &port["name"], &e));
            }
            if names.contains(&name) {
                causes.push(FieldCause::duplicate(format!("{base}.name"), &port["name"]));
            }
            names.push(name);
        }
        if !port_number_ok(&port["port"]) {
            causes.push(FieldCause::invalid(format!("{base}.port"), &port["port"], PORT_RANGE));
        }
        check_protocol(format!("{base}.protocol"), port.get("protocol"), causes);
        match &port["targetPort"] {
            Value::Null => {}
            Value::String(s) => {
                for e in valid_port_name(s) {
                    causes.push(FieldCause::invalid(format!("{base}.targetPort"), &port["targetPort"], &e));
                }
            }
            v if port_number_ok(v) => {}
            v => causes.push(FieldCause::invalid(format!("{base}.targetPort"), v, PORT_RANGE)),
        }
    }
}

fn validate_config_data(obj: &Value, old: Option<&Value>, causes: &mut Vec<FieldCause>) {
    for field in ["data", "binaryData"] {
        for (k, _) in obj[field].as_object().into_iter().flatten() {
            let ok =
                !k.is_empty() && k.len() <= 253 && k.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c));
            if !ok || k == "." || k == ".." {
                causes.push(FieldCause::invalid(
                    format!("{field}[{k}]"),
                    &json!(k),
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
            }
        }
    }
    if obj["type"].as_str() == Some("kubernetes.io/tls") {
        for key in ["tls.crt", "tls.key"] {
            if obj["data"].get(key).is_none() {
                causes.push(FieldCause::required(format!("data[{key}]"), ""));
            }
        }
    }
    if let Some(old) = old {
        if old["immutable"].as_bool() == Some(true) {
            let same = old["data"] == obj["data"] && old["binaryData"] == obj["binaryData"];
            if !same {
                causes.push(FieldCause::forbidden("data", "field is immutable when `immutable` is set"));
            }
            if obj["immutable"].as_bool() != Some(true) {
                causes.push(FieldCause::forbidden("immutable", "field is immutable when `immutable` is set"));
            }
        }
        if old.get("type").is_some()
            && old["type"] != obj["type"]
            && obj.get("type").is_some()
            && old.get("data").is_some()
        {
            causes.push(FieldCause::invalid("type", &obj["type"], "field is immutable"));
        }
    }
}

fn check_ip(path: String, value: &Value, want_v6: bool, causes: &mut Vec<FieldCause>) {
    let s = value.as_str().unwrap_or_default();
    let parsed: Option<IpAddr> = s.parse().ok();
    let family_ok = match parsed {
        Some(IpAddr::V4(_)) => !want_v6,
        Some(IpAddr::V6(_)) => want_v6,
        None => false,
    };
    if !family_ok {
        let fam = if want_v6 { "IPv6" } else { "IPv4" };
        causes.push(FieldCause::invalid(path, value, &format!("must be a valid {fam} address")));
        return;
    }
    let Some(ip) = parsed else { return };
    if ip.is_unspecified() {
        causes.push(FieldCause::invalid(path.clone(), value, &format!("may not be unspecified ({s})")));
    }
    if ip.is_loopback() {
        causes.push(FieldCause::invalid(
            path.clone(),
            value,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        causes.push(FieldCause::invalid(
            path.clone(),
            value,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    let ll_multicast = match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => (v6.segments()[0] & 0xff0f) == 0xff02,
    };
    if ll_multicast {
        causes.push(FieldCause::invalid(
            path,
            value,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

fn validate_endpoint_slice(obj: &Value, causes: &mut Vec<FieldCause>) {
    let address_type = obj["addressType"].as_str();
    match address_type {
        None | Some("") => causes.push(FieldCause::required("addressType", "")),
        Some("IPv4" | "IPv6" | "FQDN") => {}
        Some(_) => causes.push(FieldCause::not_supported(
            "addressType",
            &obj["addressType"],
            &[json!("FQDN"), json!("IPv4"), json!("IPv6")],
        )),
    }
    let endpoints = obj["endpoints"].as_array().map(Vec::as_slice).unwrap_or_default();
    if endpoints.len() > 1000 {
        causes.push(FieldCause::invalid("endpoints", &json!(endpoints.len()), "must have at most 1000 items"));
    }
    for (i, ep) in endpoints.iter().enumerate() {
        let addrs = ep["addresses"].as_array().map(Vec::as_slice).unwrap_or_default();
        let path = format!("endpoints[{i}].addresses");
        if addrs.is_empty() {
            causes.push(FieldCause::required(path.clone(), "must contain at least 1 address"));
        } else if addrs.len() > 100 {
            causes.push(FieldCause::invalid(path.clone(), &json!(addrs.len()), "must have at most 100 items"));
        }
        for (j, a) in addrs.iter().enumerate() {
            let p = format!("{path}[{j}]");
            match address_type {
                Some("IPv4") => check_ip(p, a, false, causes),
                Some("IPv6") => check_ip(p, a, true, causes),
                Some("FQDN") => {
                    for e in meta::check_dns1123_subdomain(a.as_str().unwrap_or_default()) {
                        causes.push(FieldCause::invalid(p.clone(), a, &e));
                    }
                }
                _ => {}
            }
        }
        if let Some(h) = ep["hostname"].as_str() {
            for e in meta::check_dns1123_label(h) {
                causes.push(FieldCause::invalid(format!("endpoints[{i}].hostname"), &ep["hostname"], &e));
            }
        }
    }
    let ports = obj["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut names: Vec<&str> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let name = port["name"].as_str().unwrap_or_default();
        if !name.is_empty() {
            for e in meta::check_dns1123_label(name) {
                causes.push(FieldCause::invalid(format!("ports[{i}].name"), &port["name"], &e));
            }
        }
        if names.contains(&name) {
            causes.push(FieldCause::duplicate(format!("ports[{i}].name"), &port["name"]));
        }
        names.push(name);
        if !port["port"].is_null() && !port_number_ok(&port["port"]) {
            causes.push(FieldCause::invalid(format!("ports[{i}].port"), &port["port"], PORT_RANGE));
        }
        check_protocol(format!("ports[{i}].protocol"), port.get("protocol"), causes);
    }
}

fn check_host(path: String, host: &Value, causes: &mut Vec<FieldCause>) {
    let s = host.as_str().unwrap_or_default();
    if s.parse::<IpAddr>().is_ok() {
        causes.push(FieldCause::invalid(path, host, "must be a DNS name, not an IP address"));
        return;
    }
    let checked = s.strip_prefix("*.").unwrap_or(s);
    for e in meta::check_dns1123_subdomain(checked) {
        let msg = if s.starts_with("*.") {
            "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()
        } else {
            e
        };
        causes.push(FieldCause::invalid(path.clone(), host, &msg));
    }
}

fn validate_backend(path: &str, backend: &Value, causes: &mut Vec<FieldCause>) {
    let service = backend.get("service").filter(|s| !s.is_null());
    let resource = backend.get("resource").filter(|s| !s.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => {
            causes.push(FieldCause::invalid(path, &json!(""), "cannot set both resource and service backends"))
        }
        (None, Some(r)) => {
            if r["kind"].as_str().is_none_or(str::is_empty) {
                causes.push(FieldCause::required(format!("{path}.resource.kind"), ""));
            }
            if r["name"].as_str().is_none_or(str::is_empty) {
                causes.push(FieldCause::required(format!("{path}.resource.name"), ""));
            }
        }
        (Some(s), None) => {
            match s["name"].as_str() {
                None | Some("") => causes.push(FieldCause::required(format!("{path}.service.name"), "")),
                Some(n) => {
                    for e in meta::check_dns1035_label(n) {
                        causes.push(FieldCause::invalid(format!("{path}.service.name"), &s["name"], &e));
                    }
                }
            }
            let port = &s["port"];
            let name = port["name"].as_str().filter(|n| !n.is_empty());
            let number = port["number"].as_i64().filter(|n| *n != 0);
            match (name, number) {
                (Some(_), Some(_)) => {
                    causes.push(FieldCause::invalid(path, &json!(""), "cannot set both port name & port number"))
                }
                (Some(n), None) => {
                    for e in valid_port_name(n) {
                        causes.push(FieldCause::invalid(format!("{path}.service.port.name"), &port["name"], &e));
                    }
                }
                (None, Some(_)) => {
                    if !port_number_ok(&port["number"]) {
                        causes.push(FieldCause::invalid(
                            format!("{path}.service.port.number"),
                            &port["number"],
                            PORT_RANGE,
                        ));
                    }
                }
                (None, None) => causes.push(FieldCause::required(path, "port name or number is required")),
            }
        }
        (None, None) => causes.push(FieldCause::invalid(path, &json!(""), "resource or service backend is required")),
    }
}

fn validate_ingress(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = &obj["spec"];
    let rules = spec["rules"].as_array().map(Vec::as_slice).unwrap_or_default();
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_empty() && default_backend.is_none() {
        causes.push(FieldCause::invalid("spec", &json!(rules), "either `defaultBackend` or `rules` must be specified"));
    }
    if let Some(b) = default_backend {
        validate_backend("spec.defaultBackend", b, causes);
    }
    if let Some(class) = spec["ingressClassName"].as_str() {
        for e in meta::check_dns1123_subdomain(class) {
            causes.push(FieldCause::invalid("spec.ingressClassName", &spec["ingressClassName"], &e));
        }
    }
    for (i, tls) in spec["tls"].as_array().into_iter().flatten().enumerate() {
        for (j, h) in tls["hosts"].as_array().into_iter().flatten().enumerate() {
            check_host(format!("spec.tls[{i}].hosts[{j}]"), h, causes);
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        let base = format!("spec.rules[{i}]");
        if let Some(h) = rule.get("host").filter(|h| h.as_str().is_some_and(|s| !s.is_empty())) {
            check_host(format!("{base}.host"), h, causes);
        }
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else { continue };
        let paths = http["paths"].as_array().map(Vec::as_slice).unwrap_or_default();
        if paths.is_empty() {
            causes.push(FieldCause::required(format!("{base}.http.paths"), ""));
        }
        for (j, p) in paths.iter().enumerate() {
            let pbase = format!("{base}.http.paths[{j}]");
            let path = p["path"].as_str().unwrap_or_default();
            match p["pathType"].as_str() {
                None => causes.push(FieldCause::required(format!("{pbase}.pathType"), "pathType must be specified")),
                Some("Exact" | "Prefix") => {
                    if !path.starts_with('/') {
                        causes.push(FieldCause::invalid(
                            format!("{pbase}.path"),
                            &p["path"],
                            "must be an absolute path",
                        ));
                    }
                    for bad in ["//", "/./", "/../", "%2f", "%2F"] {
                        if path.contains(bad) {
                            causes.push(FieldCause::invalid(
                                format!("{pbase}.path"),
                                &p["path"],
                                &format!("must not contain '{bad}'"),
                            ));
                        }
                    }
                    for bad in ["/..", "/."] {
                        if path.ends_with(bad) {
                            causes.push(FieldCause::invalid(
                                format!("{pbase}.path"),
                                &p["path"],
                                &format!("cannot end with '{bad}'"),
                            ));
                        }
                    }
                }
                Some("ImplementationSpecific") => {
                    if !path.is_empty() && !path.starts_with('/') {
                        causes.push(FieldCause::invalid(
                            format!("{pbase}.path"),
                            &p["path"],
                            "must be an absolute path",
                        ));
                    }
                }
                Some(_) => causes.push(FieldCause::not_supported(
                    format!("{pbase}.pathType"),
                    &p["pathType"],
                    &[json!("Exact"), json!("ImplementationSpecific"), json!("Prefix")],
                )),
            }
            validate_backend(&format!("{pbase}.backend"), &p["backend"], causes);
        }
    }
}

fn validate_ingress_class(obj: &Value, causes: &mut Vec<FieldCause>) {
    let controller = obj["spec"]["controller"].as_str().unwrap_or_default();
    if controller.is_empty() {
        causes.push(FieldCause::required("spec.controller", ""));
        return;
    }
    if controller.len() > 250 {
        causes.push(FieldCause {
            reason: "FieldValueTooLong",
            field: "spec.controller".into(),
            message: "Too long: may not be more than 250 bytes".into(),
        });
    }
    let ok = controller
        .split_once('/')
        .is_some_and(|(domain, path)| meta::check_dns1123_subdomain(domain).is_empty() && !path.is_empty());
    if !ok {
        causes.push(FieldCause::invalid(
            "spec.controller",
            &obj["spec"]["controller"],
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        ));
    }
}

fn validate_lease(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = &obj["spec"];
    if let Some(d) = spec.get("leaseDurationSeconds").and_then(Value::as_i64)
        && d <= 0
    {
        causes.push(FieldCause::invalid("spec.leaseDurationSeconds", &json!(d), "must be greater than 0"));
    }
    if let Some(t) = spec.get("leaseTransitions").and_then(Value::as_i64)
        && t < 0
    {
        causes.push(FieldCause::invalid("spec.leaseTransitions", &json!(t), "must be greater than or equal to 0"));
    }
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// A binding's `roleRef.apiGroup` defaults to the RBAC group; User and Group subjects get it too
/// (ServiceAccount subjects keep the core group, "").
fn default_binding(obj: &mut Value) {
    if let Some(role_ref) = obj.get_mut("roleRef").and_then(Value::as_object_mut)
        && role_ref.get("apiGroup").and_then(Value::as_str).is_none_or(str::is_empty)
    {
        role_ref.insert("apiGroup".into(), json!(RBAC_GROUP));
    }
    for subject in obj.get_mut("subjects").and_then(Value::as_array_mut).into_iter().flatten() {
        let Some(subject) = subject.as_object_mut() else { continue };
        let kind = subject.get("kind").and_then(Value::as_str).unwrap_or_default();
        if matches!(kind, "User" | "Group") && subject.get("apiGroup").and_then(Value::as_str).is_none_or(str::is_empty)
        {
            subject.insert("apiGroup".into(), json!(RBAC_GROUP));
        }
    }
}

/// A list of strings as Go's `%#v` prints a `[]string`.
fn go_strings(v: &Value) -> String {
    let items: Vec<String> =
        v.as_array().into_iter().flatten().map(|s| format!("{:?}", s.as_str().unwrap_or_default())).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// A role reference as Go's `%#v` prints the internal `rbac.RoleRef`.
fn go_role_ref(r: &Value) -> String {
    let field = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    format!("rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}", field("apiGroup"), field("kind"), field("name"))
}

fn non_empty(v: &Value) -> bool {
    v.as_array().is_some_and(|a| !a.is_empty())
}

/// `ValidatePolicyRule` for every rule of a Role (`namespaced`) or ClusterRole.
fn validate_rules(obj: &Value, namespaced: bool, causes: &mut Vec<FieldCause>) {
    for (i, rule) in obj["rules"].as_array().into_iter().flatten().enumerate() {
        let base = format!("rules[{i}]");
        if !non_empty(&rule["verbs"]) {
            causes.push(FieldCause::required(format!("{base}.verbs"), "verbs must contain at least one value"));
        }
        if non_empty(&rule["nonResourceURLs"]) {
            let urls = go_strings(&rule["nonResourceURLs"]);
            if namespaced {
                causes.push(FieldCause::invalid_rendered(
                    format!("{base}.nonResourceURLs"),
                    &urls,
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if non_empty(&rule["apiGroups"]) || non_empty(&rule["resources"]) || non_empty(&rule["resourceNames"]) {
                causes.push(FieldCause::invalid_rendered(
                    format!("{base}.nonResourceURLs"),
                    &urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if !non_empty(&rule["apiGroups"]) {
            causes.push(FieldCause::required(
                format!("{base}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if !non_empty(&rule["resources"]) {
            causes.push(FieldCause::required(
                format!("{base}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

fn validate_cluster_role(obj: &Value, causes: &mut Vec<FieldCause>) {
    validate_rules(obj, false, causes);
    if let Some(rule) = obj.get("aggregationRule").filter(|r| r.is_object())
        && !non_empty(&rule["clusterRoleSelectors"])
    {
        causes.push(FieldCause::required(
            "aggregationRule.clusterRoleSelectors",
            "at least one clusterRoleSelector required if aggregationRule is non-nil",
        ));
    }
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding`: the role reference and every subject.
fn validate_binding(obj: &Value, namespaced: bool, causes: &mut Vec<FieldCause>) {
    let role_ref = &obj["roleRef"];
    let api_group = role_ref["apiGroup"].as_str().unwrap_or_default();
    if api_group != RBAC_GROUP {
        causes.push(FieldCause::not_supported("roleRef.apiGroup", &json!(api_group), &[json!(RBAC_GROUP)]));
    }
    let kind = role_ref["kind"].as_str().unwrap_or_default();
    let kinds: &[&str] = if namespaced { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
    if !kinds.contains(&kind) {
        let supported: Vec<Value> = kinds.iter().map(|k| json!(k)).collect();
        causes.push(FieldCause::not_supported("roleRef.kind", &json!(kind), &supported));
    }
    match role_ref["name"].as_str().unwrap_or_default() {
        "" => causes.push(FieldCause::required("roleRef.name", "")),
        name => {
            for msg in meta::check_path_segment(name) {
                causes.push(FieldCause::invalid("roleRef.name", &json!(name), &msg));
            }
        }
    }
    for (i, subject) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
        let base = format!("subjects[{i}]");
        let name = subject["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            causes.push(FieldCause::required(format!("{base}.name"), ""));
        }
        let group = subject["apiGroup"].as_str().unwrap_or_default();
        match subject["kind"].as_str().unwrap_or_default() {
            "ServiceAccount" => {
                if !name.is_empty() {
                    for msg in meta::check_dns1123_subdomain(name) {
                        causes.push(FieldCause::invalid(format!("{base}.name"), &json!(name), &msg));
                    }
                }
                if !group.is_empty() {
                    causes.push(FieldCause::not_supported(format!("{base}.apiGroup"), &json!(group), &[json!("")]));
                }
                if !namespaced && subject["namespace"].as_str().is_none_or(str::is_empty) {
                    causes.push(FieldCause::required(format!("{base}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != RBAC_GROUP {
                    causes.push(FieldCause::not_supported(
                        format!("{base}.apiGroup"),
                        &json!(group),
                        &[json!(RBAC_GROUP)],
                    ));
                }
            }
            other => causes.push(FieldCause::not_supported(
                format!("{base}.kind"),
                &json!(other),
                &[json!("ServiceAccount"), json!("User"), json!("Group")],
            )),
        }
    }
}

fn validate_event(obj: &Value, causes: &mut Vec<FieldCause>) {
    for field in ["eventTime", "reportingController", "reportingInstance", "action", "reason"] {
        if obj[field].as_str().is_none_or(str::is_empty) {
            causes.push(FieldCause::required(field, ""));
        }
    }
    if !matches!(obj["type"].as_str(), Some("Normal" | "Warning")) {
        causes.push(FieldCause::not_supported("type", &obj["type"], &[json!("Normal"), json!("Warning")]));
    }
}

fn validate_crd(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let kind = spec["names"]["kind"].as_str().unwrap_or_default();
    if group.is_empty() {
        causes.push(FieldCause::required("spec.group", ""));
    } else if !group.contains('.') {
        causes.push(FieldCause::invalid("spec.group", &spec["group"], "should be a domain with at least one dot"));
    }
    if plural.is_empty() {
        causes.push(FieldCause::required("spec.names.plural", ""));
    }
    if kind.is_empty() {
        causes.push(FieldCause::required("spec.names.kind", ""));
    }
    let name = meta::meta_str(obj, "name");
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(FieldCause::invalid("metadata.name", &json!(name), "must be spec.names.plural+\".\"+spec.group"));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        causes.push(FieldCause::not_supported("spec.scope", &spec["scope"], &[json!("Cluster"), json!("Namespaced")]));
    }
    let versions = spec["versions"].as_array().map(Vec::as_slice).unwrap_or_default();
    if versions.is_empty() {
        causes.push(FieldCause::invalid(
            "spec.versions",
            &json!([]),
            "must have exactly one version marked as storage version",
        ));
    } else {
        let storage = versions.iter().filter(|v| v["storage"].as_bool() == Some(true)).count();
        if storage != 1 {
            causes.push(FieldCause::invalid(
                "spec.versions",
                &json!(storage),
                "must have exactly one version marked as storage version",
            ));
        }
    }
    for (i, v) in versions.iter().enumerate() {
        if v["name"].as_str().is_none_or(str::is_empty) {
            causes.push(FieldCause::required(format!("spec.versions[{i}].name"), ""));
        }
        let schema = v["schema"].get("openAPIV3Schema");
        if schema.is_none_or(Value::is_null) {
            causes.push(FieldCause::required(
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            ));
        } else if let Some(s) = schema
            && s["type"].as_str() != Some("object")
        {
            causes.push(FieldCause::invalid(
                format!("spec.versions[{i}].schema.openAPIV3Schema.type"),
                &s["type"],
                "must be object at the root",
            ));
        }
        if let Some(s) = schema {
            let prefix = format!("spec.versions[{i}].schema.openAPIV3Schema");
            for error in wsgate_crd_cel::check_rules(s, &prefix) {
                causes.push(FieldCause::invalid(error.path, &json!(error.rule), &error.message));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn rt(group: &str, resource: &str) -> ResourceType {
        let c = Catalog::default();
        c.all().find(|t| t.group == group && t.resource == resource).cloned().expect("built-in")
    }

    #[test]
    fn loopback_endpoint_addresses_are_rejected() {
        let slice = json!({"addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"]}, {"addresses": []}],
                           "ports": [{"port": 8080, "protocol": "TCP"}]});
        let causes = validate(&rt("discovery.k8s.io", "endpointslices"), &slice, None);
        assert_eq!(causes.len(), 2, "{causes:?}");
        assert_eq!(causes[0].field, "endpoints[0].addresses[0]");
        assert_eq!(
            causes[0].message,
            "Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
        );
        assert_eq!(causes[1].field, "endpoints[1].addresses");
    }

    #[test]
    fn ingress_paths_need_a_type_and_a_slash() {
        let ing = json!({"spec": {"rules": [{"host": "a.example.com", "http": {"paths": [
            {"path": "/", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
            {"path": "x", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"name": "http"}}}},
            {"path": "/y", "pathType": "Regex", "backend": {"service": {"name": "s", "port": {"number": 80}}}}
        ]}}]}});
        let causes = validate(&rt("networking.k8s.io", "ingresses"), &ing, None);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.rules[0].http.paths[0].pathType",
                "spec.rules[0].http.paths[1].path",
                "spec.rules[0].http.paths[2].pathType"
            ]
        );
    }

    #[test]
    fn service_defaults_and_port_checks() {
        let svc_rt = rt("", "services");
        let mut svc = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
        default(&svc_rt, &mut svc).expect("defaults");
        assert_eq!(svc["spec"]["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert!(validate(&svc_rt, &svc, None).is_empty());
        let bad = json!({"spec": {"ports": [{"port": 0, "name": "a"}, {"port": 80}]}});
        let fields: Vec<String> = validate(&svc_rt, &bad, None).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, vec!["spec.ports[0].port", "spec.ports[1].name"]);
        assert_eq!(validate(&svc_rt, &json!({"spec": {}}), None)[0].field, "spec.ports");
    }

    #[test]
    fn address_type_is_immutable() {
        let old = json!({"addressType": "IPv4", "endpoints": []});
        let new = json!({"addressType": "IPv6", "endpoints": []});
        let causes = validate(&rt("discovery.k8s.io", "endpointslices"), &new, Some(&old));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].message, "Invalid value: \"IPv6\": field is immutable");
    }

    #[test]
    fn secret_string_data_becomes_data() {
        let mut s = json!({"stringData": {"k": "v"}});
        default(&rt("", "secrets"), &mut s).expect("defaults");
        assert_eq!(s, json!({"type": "Opaque", "data": {"k": "dg=="}}));
        let mut bad = json!({"data": {"k": "!!"}});
        assert_eq!(default(&rt("", "secrets"), &mut bad).expect_err("bad base64").code, 400);
    }
}
