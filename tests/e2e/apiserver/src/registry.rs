//! Write semantics, per verb, the way the real generic registry applies them: type and object
//! metadata checks, namespace lifecycle, status-subresource rules, defaulting, validation,
//! optimistic concurrency, generation, no-op detection, finalizers, and the cascades the real
//! controllers perform (namespace contents, a CRD's custom resources).
//!
//! ```text
//!   create ─┐                                  ┌─► State::insert   (ADDED)
//!   update ─┼─► admit (meta, status, defaults, ├─► State::replace  (MODIFIED)
//!   patch  ─┘    schema, validation, rv check) └─► no-op: nothing written
//!   delete ──► preconditions ─► finalizers? ─► deletionTimestamp (MODIFIED) | State::remove (DELETED)
//! ```

use serde_json::{Value, json};

use crate::apply;
use crate::builtin_schema;
use crate::catalog::{ResourceType, StorageKey};
use crate::events;
use crate::meta;
use crate::patch::{self, PatchKind};
use crate::schema;
use crate::status::{self, ApiError, FieldCause};
use crate::store::State;
use crate::validation;

/// How unknown fields are treated (`fieldValidation` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// Options every write carries.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// `dryRun=All`: run every step but store nothing.
    pub dry_run: bool,
    pub validation: FieldValidation,
    pub field_manager: Option<String>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { dry_run: false, validation: FieldValidation::Warn, field_manager: None }
    }
}

/// A successful write: HTTP code, body, and `Warning` header texts.
#[derive(Debug)]
pub struct Written {
    pub code: u16,
    pub body: Value,
    pub warnings: Vec<String>,
}

fn namespaces_key() -> StorageKey {
    StorageKey { group: String::new(), resource: "namespaces".into() }
}

fn crds_key() -> StorageKey {
    StorageKey { group: "apiextensions.k8s.io".into(), resource: "customresourcedefinitions".into() }
}

fn is_crd(rt: &ResourceType) -> bool {
    rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions"
}

fn is_namespace(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.resource == "namespaces"
}

/// The object as served at `rt`'s version (custom resources are stored at one version and read
/// at any served version with only `apiVersion` changed, like the `None` conversion strategy).
pub fn present(obj: &Value, rt: &ResourceType) -> Value {
    let mut out = if events::is_events_v1(rt) { events::from_core(obj) } else { obj.clone() };
    if let Value::Object(map) = &mut out {
        map.insert("apiVersion".into(), json!(rt.api_version()));
        map.insert("kind".into(), json!(rt.kind));
    }
    out
}

/// The form an object is stored in (events.k8s.io Events are stored as core Events).
fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    if events::is_events_v1(rt) { events::to_core(&obj) } else { obj }
}

/// The `PartialObjectMetadata` view of an object (metadata-only clients).
pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({}))})
}

/// Checks (and fills when absent) `apiVersion` and `kind` against the endpoint's type.
fn check_type_meta(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    let Value::Object(map) = obj else {
        return Err(ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: the request body must be a JSON object",
            rt.kind, rt.version, rt.kind
        )));
    };
    let api_version = rt.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(rt.kind));
        }
        Some(k) if k == rt.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind, rt.version, rt.kind, rt.kind
            )));
        }
    }
    Ok(())
}

/// Drops unknown `metadata` keys and returns their paths.
fn prune_meta(obj: &mut Value) -> Vec<String> {
    let before: Vec<String> =
        obj.get("metadata").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    meta::prune_object_meta(obj);
    let after = obj.get("metadata").and_then(Value::as_object);
    before
        .into_iter()
        .filter(|k| k != "selfLink" && k != "managedFields" && after.is_none_or(|m| !m.contains_key(k)))
        .map(|k| format!("metadata.{k}"))
        .collect()
}

/// Applies `fieldValidation` to the unknown fields found.
fn unknown_fields(
    rt: &ResourceType,
    unknown: &[String],
    opts: &WriteOptions,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    if unknown.is_empty() {
        return Ok(());
    }
    match opts.validation {
        FieldValidation::Ignore => Ok(()),
        FieldValidation::Warn => {
            warnings.extend(unknown.iter().map(|p| format!("unknown field {p:?}")));
            Ok(())
        }
        FieldValidation::Strict => {
            let list: Vec<String> = unknown.iter().map(|p| format!("unknown field {p:?}")).collect();
            Err(ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
                rt.kind,
                rt.version,
                rt.kind,
                list.join(", ")
            )))
        }
    }
}

/// The status a new object starts with, for kinds whose status only controllers write.
fn initial_status(rt: &ResourceType) -> Option<Value> {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "services") | ("networking.k8s.io", "ingresses") => Some(json!({"loadBalancer": {}})),
        ("", "namespaces") => Some(json!({"phase": "Active"})),
        ("", "pods") => Some(json!({"phase": "Pending", "qosClass": "BestEffort"})),
        _ if rt.is_custom() => None,
        _ => Some(json!({})),
    }
}

/// Everything but metadata (and status, for kinds with a status subresource): what bumps generation.
fn spec_part(obj: &Value, has_status: bool) -> Value {
    let mut v = obj.clone();
    if let Value::Object(m) = &mut v {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if has_status {
            m.remove("status");
        }
    }
    v
}

fn invalid(rt: &ResourceType, name: &str, causes: Vec<FieldCause>) -> ApiError {
    ApiError::invalid(&rt.group, &rt.kind, name, causes)
}

/// Runs defaulting, schema processing and validation; returns the causes found.
fn admit_body(
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
    unknown: &mut Vec<String>,
) -> Result<Vec<FieldCause>, ApiError> {
    if rt.schema.is_none()
        && let Some(schema) = builtin_schema::schema_for(&rt.group, &rt.resource)
    {
        let decoded = schema::decode_builtin(schema, obj);
        if let Some(e) = decoded.type_errors.first() {
            return Err(ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: {e}",
                rt.kind, rt.version, rt.kind
            )));
        }
        unknown.extend(decoded.pruned);
    }
    validation::default(rt, obj)?;
    let mut causes = Vec::new();
    if let Some(schema) = &rt.schema {
        let out = schema::process(schema, obj);
        unknown.extend(out.pruned);
        let rules = schema::validate_rules(schema, obj, old, &out.causes);
        causes.extend(out.causes);
        causes.extend(rules);
    }
    let mut all = validation::validate(rt, obj, old);
    all.extend(causes);
    Ok(all)
}

/// `POST` on a collection.
pub fn create(
    st: &mut State,
    rt: &ResourceType,
    ns: Option<&str>,
    mut obj: Value,
    opts: &WriteOptions,
) -> Result<Written, ApiError> {
    check_type_meta(rt, &mut obj)?;
    let mut unknown = prune_meta(&mut obj);
    let mut warnings = Vec::new();
    let body_ns = meta::meta_str(&obj, "namespace").to_string();
    let ns = if rt.namespaced {
        let ns = ns.unwrap_or_default().to_string();
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta::meta_mut(&mut obj).insert("namespace".into(), json!(ns));
        ns
    } else {
        meta::meta_mut(&mut obj).remove("namespace");
        String::new()
    };
    let mut causes = Vec::new();
    let mut name = meta::meta_str(&obj, "name").to_string();
    if name.is_empty() {
        let prefix = meta::meta_str(&obj, "generateName").to_string();
        if prefix.is_empty() {
            causes.push(FieldCause::required("metadata.name", "name or generateName is required"));
        } else {
            name = meta::generate_name(&prefix);
            meta::meta_mut(&mut obj).insert("name".into(), json!(name));
        }
    }
    if rt.namespaced {
        match st.get(&namespaces_key(), "", &ns) {
            None => return Err(ApiError::not_found("", "namespaces", &ns)),
            Some(n) if n["metadata"].get("deletionTimestamp").is_some() => {
                return Err(ApiError::namespace_terminating(&rt.group, &rt.resource, &name, &ns));
            }
            Some(_) => {}
        }
    }
    if rt.has_status && !is_crd(rt) {
        match initial_status(rt) {
            Some(s) => obj["status"] = s,
            None => {
                obj.as_object_mut().map(|m| m.remove("status"));
            }
        }
    }
    if !name.is_empty() {
        causes.extend(validation::check_name(rt, &name));
    }
    causes.extend(admit_body(rt, &mut obj, None, &mut unknown)?);
    unknown_fields(rt, &unknown, opts, &mut warnings)?;
    if !causes.is_empty() {
        return Err(invalid(rt, &name, causes));
    }
    let key = rt.storage_key();
    if st.get(&key, &ns, &name).is_some() {
        return Err(ApiError::already_exists(&rt.group, &rt.resource, &name));
    }
    if meta::meta_str(&obj, "resourceVersion").parse::<u64>().is_ok_and(|rv| rv != 0) {
        return Err(ApiError::storage("resourceVersion should not be set on objects to be created"));
    }
    {
        let m = meta::meta_mut(&mut obj);
        m.insert("uid".into(), json!(meta::new_uid()));
        m.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("resourceVersion");
        if rt.generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    if rt.group.is_empty() && rt.resource == "services" {
        allocate_service_ips(st, &mut obj);
        assign_node_ports(st, &mut obj, None);
    }
    if is_crd(rt) {
        let storage: Vec<Value> = obj["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["storage"].as_bool() == Some(true))
            .map(|v| v["name"].clone())
            .collect();
        obj["status"] = json!({"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": storage});
    }
    if opts.dry_run {
        return Ok(Written { code: 201, body: present(&obj, rt), warnings });
    }
    let stored = st.insert(&key, to_storage(rt, obj));
    let body = present(&stored, rt);
    if is_crd(rt) {
        establish_crd(st, &name);
    }
    Ok(Written { code: 201, body, warnings })
}

fn allocate_service_ips(st: &mut State, obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    if spec.get("type").and_then(Value::as_str) == Some("ExternalName") {
        return;
    }
    let ip = match spec.get("clusterIP").and_then(Value::as_str) {
        Some(ip) if !ip.is_empty() => ip.to_string(),
        _ => st.allocate_cluster_ip(),
    };
    spec.insert("clusterIP".into(), json!(ip));
    spec.insert("clusterIPs".into(), json!([ip]));
    if ip != "None" {
        spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
    }
    spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
}

/// NodePort and LoadBalancer Services: traffic-policy defaults and a nodePort for every port
/// (kept from `old` for ports that already had one).
fn assign_node_ports(st: &mut State, obj: &mut Value, old: Option<&Value>) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    if ty != "NodePort" && ty != "LoadBalancer" {
        return;
    }
    spec.entry("externalTrafficPolicy").or_insert(json!("Cluster"));
    if ty == "LoadBalancer" {
        spec.entry("allocateLoadBalancerNodePorts").or_insert(json!(true));
    }
    let old_ports: Vec<Value> = old.and_then(|o| o["spec"]["ports"].as_array().cloned()).unwrap_or_default();
    let Some(Value::Array(ports)) = spec.get_mut("ports") else { return };
    for port in ports.iter_mut().filter_map(Value::as_object_mut) {
        if port.get("nodePort").is_some() {
            continue;
        }
        let kept =
            old_ports.iter().find(|o| o.get("port") == port.get("port")).and_then(|o| o.get("nodePort")).cloned();
        let node_port = kept.unwrap_or_else(|| json!(st.allocate_node_port()));
        port.insert("nodePort".into(), node_port);
    }
}

/// The apiextensions controller's part: names accepted, CRD established, types served.
fn establish_crd(st: &mut State, name: &str) {
    let key = crds_key();
    let Some(current) = st.get(&key, "", name) else { return };
    let mut crd = (*current).clone();
    let now = meta::now_rfc3339();
    let names = crd["spec"]["names"].clone();
    crd["status"]["acceptedNames"] = names;
    crd["status"]["conditions"] = json!([
        {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
        {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
    ]);
    st.catalog.set_crd(name, Some(&crd));
    st.replace(&key, crd);
}

/// `PUT` on an object or its `/status`.
pub fn update(
    st: &mut State,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    mut body: Value,
    opts: &WriteOptions,
) -> Result<Written, ApiError> {
    let ns_str = if rt.namespaced { ns.unwrap_or_default() } else { "" };
    let key = rt.storage_key();
    let Some(old) = st.get(&key, ns_str, name) else {
        if rt.create_on_update && subresource.is_none() {
            return create(st, rt, ns, body, opts);
        }
        return Err(ApiError::not_found(&rt.group, &rt.resource, name));
    };
    check_type_meta(rt, &mut body)?;
    let body_name = meta::meta_str(&body, "name");
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let body_ns = meta::meta_str(&body, "namespace");
    if rt.namespaced && !body_ns.is_empty() && body_ns != ns_str {
        return Err(ApiError::bad_request(format!(
            "the namespace of the object ({body_ns}) does not match the namespace on the URL ({ns_str})"
        )));
    }
    let old_rv = meta::meta_str(&old, "resourceVersion").to_string();
    let body_rv = meta::meta_str(&body, "resourceVersion").to_string();
    if !body_rv.is_empty() && body_rv != old_rv {
        return Err(ApiError::stale(&rt.group, &rt.resource, name));
    }
    if body_rv.is_empty() && !rt.unconditional_update {
        return Err(invalid(
            rt,
            name,
            vec![FieldCause::invalid("metadata.resourceVersion", &json!("0x0"), "must be specified for an update")],
        ));
    }
    let mut unknown = prune_meta(&mut body);
    let mut warnings = Vec::new();
    let old_view = present(&old, rt);
    let old_obj: &Value = &old_view;
    let mut new = if subresource == Some("status") {
        let mut n = old_obj.clone();
        match body.get("status") {
            Some(s) => n["status"] = s.clone(),
            None => {
                n.as_object_mut().map(|m| m.remove("status"));
            }
        }
        if !rt.is_custom() {
            for field in ["labels", "annotations"] {
                match body["metadata"].get(field) {
                    Some(v) => {
                        meta::meta_mut(&mut n).insert(field.into(), v.clone());
                    }
                    None => {
                        meta::meta_mut(&mut n).remove(field);
                    }
                }
            }
        }
        n
    } else {
        let mut n = body;
        if rt.has_status {
            match old_obj.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    n.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        n
    };
    {
        let m = meta::meta_mut(&mut new);
        for field in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
            match old_obj["metadata"].get(field) {
                Some(v) => m.insert(field.into(), v.clone()),
                None => m.remove(field),
            };
        }
        if rt.namespaced {
            m.insert("namespace".into(), json!(ns_str));
        } else {
            m.remove("namespace");
        }
        m.insert("resourceVersion".into(), json!(old_rv));
    }
    let mut causes = admit_body(rt, &mut new, Some(old_obj), &mut unknown)?;
    unknown_fields(rt, &unknown, opts, &mut warnings)?;
    if old_obj["metadata"].get("deletionTimestamp").is_some() {
        let old_f = old_obj["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
        for f in new["metadata"]["finalizers"].as_array().into_iter().flatten() {
            if !old_f.contains(f) {
                causes.push(FieldCause::forbidden(
                    "metadata.finalizers",
                    &format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{f}}}"),
                ));
            }
        }
    }
    if !causes.is_empty() {
        return Err(invalid(rt, name, causes));
    }
    if rt.group.is_empty() && rt.resource == "services" {
        keep_service_ips(old_obj, &mut new);
        assign_node_ports(st, &mut new, Some(old_obj));
    }
    if is_crd(rt) && subresource.is_none() {
        accept_crd_names(&mut new);
    }
    if rt.generation && spec_part(&new, rt.has_status) != spec_part(old_obj, rt.has_status) {
        let g = old_obj["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        meta::meta_mut(&mut new).insert("generation".into(), json!(g));
    }
    if new == *old_obj {
        return Ok(Written { code: 200, body: present(old_obj, rt), warnings });
    }
    if opts.dry_run {
        return Ok(Written { code: 200, body: present(&new, rt), warnings });
    }
    let finalized = new["metadata"].get("deletionTimestamp").is_some()
        && new["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
    let stored = st.replace(&key, to_storage(rt, new));
    let body = present(&stored, rt);
    if finalized {
        remove_now(st, rt, ns_str, name);
    } else if is_crd(rt) {
        st.catalog.set_crd(name, Some(&stored));
    }
    Ok(Written { code: 200, body, warnings })
}

fn keep_service_ips(old: &Value, new: &mut Value) {
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else { return };
    for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if !spec.contains_key(field)
            && let Some(v) = old["spec"].get(field)
        {
            spec.insert(field.into(), v.clone());
        }
    }
}

fn accept_crd_names(crd: &mut Value) {
    let names = crd["spec"]["names"].clone();
    if crd["status"].is_object() {
        crd["status"]["acceptedNames"] = names;
        let mut stored: Vec<Value> = crd["status"]["storedVersions"].as_array().cloned().unwrap_or_default();
        for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
            if v["storage"].as_bool() == Some(true) && !stored.contains(&v["name"]) {
                stored.push(v["name"].clone());
            }
        }
        crd["status"]["storedVersions"] = json!(stored);
    }
}

/// `PATCH` on an object or its `/status`.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    st: &mut State,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    kind: PatchKind,
    body: Value,
    opts: &WriteOptions,
) -> Result<Written, ApiError> {
    if kind == PatchKind::Apply && opts.field_manager.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![FieldCause::required("fieldManager", "is required for apply patch")],
        ));
    }
    let ns_str = if rt.namespaced { ns.unwrap_or_default() } else { "" };
    let manager = opts.field_manager.clone().unwrap_or_default();
    let status = subresource == Some("status");
    let Some(old) = st.get(&rt.storage_key(), ns_str, name) else {
        if kind == PatchKind::Apply && subresource.is_none() {
            let mut obj = body.clone();
            if meta::meta_str(&obj, "name").is_empty() {
                meta::meta_mut(&mut obj).insert("name".into(), json!(name));
            }
            let written = create(st, rt, ns, obj, opts)?;
            if !opts.dry_run {
                st.set_owned(meta::meta_str(&written.body, "uid"), &manager, false, apply::leaf_paths(&body));
            }
            return Ok(written);
        }
        return Err(ApiError::not_found(&rt.group, &rt.resource, name));
    };
    let uid = meta::meta_str(&old, "uid").to_string();
    let current = present(&old, rt);
    let mut candidate = if kind == PatchKind::Apply {
        if !body.is_object() {
            return Err(ApiError::bad_request("error decoding YAML: the applied configuration must be an object"));
        }
        apply::apply(&current, &body, &st.owned(&uid, &manager, status))
    } else {
        patch::apply(kind, &current, &body)?
    };
    if meta::meta_str(&candidate, "name").is_empty() && candidate.is_object() {
        meta::meta_mut(&mut candidate).insert("name".into(), json!(name));
    }
    let written = update(st, rt, ns, name, subresource, candidate, opts)?;
    if kind == PatchKind::Apply && !opts.dry_run && st.get(&rt.storage_key(), ns_str, name).is_some() {
        st.set_owned(&uid, &manager, status, apply::leaf_paths(&body));
    }
    Ok(written)
}

/// Removes an object now, with the cascades real controllers would perform.
fn remove_now(st: &mut State, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
    let removed = st.remove(&rt.storage_key(), ns, name)?;
    if is_namespace(rt) {
        for key in st.keys_with_namespace(name) {
            let names: Vec<String> =
                st.list(&key, Some(name)).iter().map(|o| meta::meta_str(o, "name").to_string()).collect();
            for n in names {
                st.remove(&key, name, &n);
            }
        }
    }
    if is_crd(rt) {
        let group = removed["spec"]["group"].as_str().unwrap_or_default().to_string();
        let plural = removed["spec"]["names"]["plural"].as_str().unwrap_or_default().to_string();
        let key = StorageKey { group, resource: plural };
        let all: Vec<(String, String)> = st
            .list(&key, None)
            .iter()
            .map(|o| (meta::meta_str(o, "namespace").to_string(), meta::meta_str(o, "name").to_string()))
            .collect();
        for (n, o) in all {
            st.remove(&key, &n, &o);
        }
        st.catalog.set_crd(name, None);
    }
    Some((*removed).clone())
}

/// `DELETE` on an object. `options` is the (possibly empty) `DeleteOptions` body.
pub fn delete(
    st: &mut State,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    options: &Value,
    opts: &WriteOptions,
) -> Result<Written, ApiError> {
    let ns_str = if rt.namespaced { ns.unwrap_or_default() } else { "" };
    let key = rt.storage_key();
    let Some(old) = st.get(&key, ns_str, name) else {
        return Err(ApiError::not_found(&rt.group, &rt.resource, name));
    };
    let uid = meta::meta_str(&old, "uid").to_string();
    let rv = meta::meta_str(&old, "resourceVersion").to_string();
    let pre = &options["preconditions"];
    if let Some(want) = pre["uid"].as_str()
        && want != uid
    {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.resource,
            name,
            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
        ));
    }
    if let Some(want) = pre["resourceVersion"].as_str()
        && want != rv
    {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.resource,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"
            ),
        ));
    }
    if is_namespace(rt) {
        if old["metadata"].get("deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                "",
                "namespaces",
                name,
                "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
            ));
        }
        let mut marked = (*old).clone();
        meta::meta_mut(&mut marked).insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
        marked["status"]["phase"] = json!("Terminating");
        if opts.dry_run {
            return Ok(Written { code: 200, body: present(&marked, rt), warnings: Vec::new() });
        }
        let stored = st.replace(&key, marked);
        return Ok(Written { code: 200, body: present(&stored, rt), warnings: Vec::new() });
    }
    let has_finalizers = old["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
    if has_finalizers {
        if old["metadata"].get("deletionTimestamp").is_some() || opts.dry_run {
            return Ok(Written { code: 202, body: present(&old, rt), warnings: Vec::new() });
        }
        let mut marked = (*old).clone();
        let m = meta::meta_mut(&mut marked);
        m.insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        if let Some(g) = m.get("generation").and_then(Value::as_i64) {
            m.insert("generation".into(), json!(g + 1));
        }
        let stored = st.replace(&key, marked);
        return Ok(Written { code: 202, body: present(&stored, rt), warnings: Vec::new() });
    }
    let last = if opts.dry_run { Some((*old).clone()) } else { remove_now(st, rt, ns_str, name) };
    let last = last.ok_or_else(|| ApiError::not_found(&rt.group, &rt.resource, name))?;
    let body = if rt.returns_deleted_object {
        present(&last, rt)
    } else {
        status::delete_success(&rt.group, &rt.resource, name, &uid)
    };
    Ok(Written { code: 200, body, warnings: Vec::new() })
}

/// `DELETE` on a collection: deletes every matching object, answers with the list deleted.
pub fn delete_collection(
    st: &mut State,
    rt: &ResourceType,
    ns: Option<&str>,
    matches: &dyn Fn(&Value) -> bool,
    opts: &WriteOptions,
) -> Result<Written, ApiError> {
    let key = rt.storage_key();
    let targets: Vec<(String, String)> = st
        .list(&key, if rt.namespaced { ns } else { None })
        .iter()
        .filter(|o| matches(o))
        .map(|o| (meta::meta_str(o, "namespace").to_string(), meta::meta_str(o, "name").to_string()))
        .collect();
    let mut items = Vec::new();
    for (n, name) in targets {
        let w = delete(st, rt, Some(&n), &name, &Value::Null, opts)?;
        if w.body["kind"] != "Status" {
            items.push(w.body);
        } else if let Some(o) = st.get(&key, &n, &name) {
            items.push(present(&o, rt));
        }
    }
    Ok(Written {
        code: 200,
        body: json!({"kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
        warnings: Vec::new(),
    })
}

/// The namespace controller's part: once a namespace is terminating, delete its contents, then
/// the namespace itself (unless `metadata.finalizers` still hold it).
pub fn finalize_namespace(st: &mut State, name: &str) {
    let Some(ns) = st.get(&namespaces_key(), "", name) else { return };
    if ns["metadata"].get("deletionTimestamp").is_none() {
        return;
    }
    for key in st.keys_with_namespace(name) {
        let names: Vec<String> =
            st.list(&key, Some(name)).iter().map(|o| meta::meta_str(o, "name").to_string()).collect();
        for n in names {
            st.remove(&key, name, &n);
        }
    }
    if ns["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty) {
        st.remove(&namespaces_key(), "", name);
    }
}

/// Creates the namespaces and the default RBAC policy every cluster starts with.
pub fn bootstrap(st: &mut State) {
    let rt = st.catalog.lookup("", "v1", "namespaces").cloned();
    let Some(rt) = rt else { return };
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        if let Err(e) = create(st, &rt, None, obj, &WriteOptions::default()) {
            tracing::error!(namespace = ns, error = %e.message, "bootstrap namespace not created");
        }
    }
    crate::rbac::bootstrap(st);
}
