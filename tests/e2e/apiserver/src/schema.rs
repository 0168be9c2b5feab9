//! Structural-schema handling of custom resources, in the order the real server applies it:
//! prune unknown fields, apply `default`s, then validate against the `openAPIV3Schema`.
//!
//! ```text
//!   object ──prune──► (unknown field paths) ──default──► validate ──► Vec<FieldCause>
//! ```
//!
//! Supported keywords: type, nullable, properties, additionalProperties, items, required, enum,
//! minimum/maximum (+exclusive), minLength/maxLength, pattern, minItems/maxItems, uniqueItems,
//! minProperties/maxProperties, allOf/anyOf/oneOf/not, default, x-kubernetes-int-or-string,
//! x-kubernetes-preserve-unknown-fields, x-kubernetes-embedded-resource, x-kubernetes-list-type=set.
//! CEL rules (`x-kubernetes-validations`) run after these checks, through `wsgate_crd_cel` (the
//! evaluator wsgate's file mode uses), unless a type or enum error blocks them, as in kube-apiserver.
//! Not supported: format checks, list-type=map keys.

use serde_json::{Map, Value};

use crate::status::FieldCause;

/// What processing an object against its schema found.
#[derive(Debug, Default)]
pub struct SchemaOutcome {
    /// Violations, as 422 causes.
    pub causes: Vec<FieldCause>,
    /// Paths of fields that were pruned (for `fieldValidation=Strict|Warn`).
    pub pruned: Vec<String>,
}

/// Prunes, defaults and validates `obj` (a whole custom resource) in place.
pub fn process(schema: &Value, obj: &mut Value) -> SchemaOutcome {
    let mut out = SchemaOutcome::default();
    if let Value::Object(map) = obj {
        let props = schema.get("properties").and_then(Value::as_object);
        let preserve = preserves_unknown(schema);
        let keys: Vec<String> = map.keys().cloned().collect();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.and_then(|p| p.get(&k)) {
                Some(sub) => {
                    if let Some(v) = map.get_mut(&k) {
                        prune(sub, v, &k, &mut out.pruned);
                    }
                }
                None if preserve => {}
                None => {
                    map.remove(&k);
                    out.pruned.push(k);
                }
            }
        }
        apply_defaults_here(schema, map);
        for (k, sub) in props.into_iter().flatten() {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(v) = map.get_mut(k) {
                default(sub, v);
            }
        }
    }
    validate_root(schema, obj, &mut out.causes);
    out
}

/// The `x-kubernetes-validations` rules of `schema` that `obj` (pruned and defaulted by [`process`])
/// breaks, as 422 causes; on update, with transition rules and ratcheting against `old`. `schema_causes`
/// are the causes [`process`] found: a type or enum error among them stops the rules from running, and
/// one cause says so, as kube-apiserver does.
pub fn validate_rules(
    schema: &Value,
    obj: &Value,
    old: Option<&Value>,
    schema_causes: &[FieldCause],
) -> Vec<FieldCause> {
    if !wsgate_crd_cel::has_rules(schema) {
        return Vec::new();
    }
    if schema_causes.iter().any(|c| matches!(c.reason, "FieldValueTypeInvalid" | "FieldValueNotSupported")) {
        return vec![FieldCause::invalid(
            "<nil>",
            &Value::Null,
            "some validation rules were not checked because the object was invalid; correct the existing errors to \
             complete validation",
        )];
    }
    wsgate_crd_cel::validate_update(schema, obj, old)
        .into_iter()
        .map(|v| FieldCause { reason: v.reason.as_str(), field: v.path.clone(), message: v.detail() })
        .collect()
}

/// What decoding a built-in object against its OpenAPI schema found.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Paths of unknown fields, dropped.
    pub pruned: Vec<String>,
    /// Wrongly typed fields, as Go's JSON decoder words them.
    pub type_errors: Vec<String>,
}

/// Decodes a built-in object the way the typed decoder does: `null` members read as absent,
/// unknown fields are dropped (below the root `metadata`, which is handled separately), and a
/// value of the wrong JSON type is an error.
pub fn decode_builtin(schema: &Value, obj: &mut Value) -> Decoded {
    let mut out = Decoded::default();
    drop_nulls(obj);
    if let Value::Object(map) = obj {
        let props = schema.get("properties").and_then(Value::as_object);
        let keys: Vec<String> = map.keys().cloned().collect();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.and_then(|p| p.get(&k)) {
                Some(sub) => {
                    if let Some(v) = map.get_mut(&k) {
                        prune(sub, v, &k, &mut out.pruned);
                    }
                }
                None => {
                    map.remove(&k);
                    out.pruned.push(k);
                }
            }
        }
    }
    check_types(schema, obj, "", &mut out.type_errors);
    out
}

fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Go's name for a JSON value kind in decode errors.
fn go_actual(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's name for the type a schema describes.
fn go_expected(schema: &Value) -> String {
    let format = schema.get("format").and_then(Value::as_str);
    match (schema.get("type").and_then(Value::as_str), format) {
        (Some("integer"), Some(f @ ("int32" | "int64"))) => f.to_string(),
        (Some("integer"), _) => "int".into(),
        (Some("number"), _) => "float64".into(),
        (Some("boolean"), _) => "bool".into(),
        (Some("array"), _) => "[]".into(),
        (Some("object"), _) if schema.get("properties").is_none() => "map[string]".into(),
        (Some("object"), _) => "struct".into(),
        (Some(t), _) => t.to_string(),
        (None, _) => "interface {}".into(),
    }
}

fn check_types(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() {
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool).unwrap_or(false);
    let ok = if int_or_string {
        value.is_string() || value.is_i64() || value.is_u64()
    } else {
        schema.get("type").and_then(Value::as_str).is_none_or(|t| type_matches(t, value))
    };
    if !ok {
        let expected = if int_or_string { "intstr.IntOrString".to_string() } else { go_expected(schema) };
        errors.push(format!(
            "json: cannot unmarshal {} into Go struct field .{path} of type {expected}",
            go_actual(value)
        ));
        return;
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in map {
                let p = child_path(path, k);
                if let Some(sub) = props.and_then(|m| m.get(k)) {
                    check_types(sub, v, &p, errors);
                } else if let Some(sub) = additional {
                    check_types(sub, v, &p, errors);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items").filter(|i| i.is_object()) {
                for (i, v) in items.iter().enumerate() {
                    check_types(sub, v, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool).unwrap_or(false)
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// Removes fields the schema does not declare, recording their paths.
fn prune(schema: &Value, value: &mut Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = preserves_unknown(schema);
            let embedded = schema.get("x-kubernetes-embedded-resource").and_then(Value::as_bool).unwrap_or(false);
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let p = child_path(path, &k);
                if let Some(sub) = props.and_then(|m| m.get(&k)) {
                    if let Some(v) = map.get_mut(&k) {
                        prune(sub, v, &p, pruned);
                    }
                } else if let Some(sub) = additional.filter(|a| a.is_object()) {
                    if let Some(v) = map.get_mut(&k) {
                        prune(sub, v, &p, pruned);
                    }
                } else if preserve
                    || additional.and_then(Value::as_bool) == Some(true)
                    || (embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
                {
                    // kept as is
                } else {
                    map.remove(&k);
                    pruned.push(p);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items").filter(|i| i.is_object()) {
                for (i, v) in items.iter_mut().enumerate() {
                    prune(sub, v, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

/// Fills absent (or null, when not nullable) properties that declare a `default`.
fn apply_defaults_here(schema: &Value, map: &mut Map<String, Value>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else { return };
    for (k, sub) in props {
        let Some(d) = sub.get("default") else { continue };
        let nullable = sub.get("nullable").and_then(Value::as_bool).unwrap_or(false);
        let absent = match map.get(k) {
            None => true,
            Some(Value::Null) => !nullable,
            Some(_) => false,
        };
        if absent {
            map.insert(k.clone(), d.clone());
        }
    }
}

fn default(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            apply_defaults_here(schema, map);
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if let Some(v) = map.get_mut(k) {
                        default(sub, v);
                    }
                }
            }
            if let Some(sub) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for v in map.values_mut() {
                    default(sub, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items").filter(|i| i.is_object()) {
                for v in items {
                    default(sub, v);
                }
            }
        }
        _ => {}
    }
}

/// The JSON type name the validator reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, v: &Value) -> bool {
    match expected {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        _ => true,
    }
}

fn validate_root(schema: &Value, obj: &Value, causes: &mut Vec<FieldCause>) {
    let Some(map) = obj.as_object() else { return };
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) && !matches!(r, "apiVersion" | "kind" | "metadata") {
                causes.push(FieldCause::required(r, ""));
            }
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(v) = map.get(k) {
                validate(sub, v, k, causes);
            }
        }
    }
}

/// Collects violations of `schema` by `value` at `path`.
pub fn validate(schema: &Value, value: &Value, path: &str, causes: &mut Vec<FieldCause>) {
    let nullable = schema.get("nullable").and_then(Value::as_bool).unwrap_or(false);
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool).unwrap_or(false);
    if value.is_null() && nullable {
        return;
    }
    if int_or_string {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            causes.push(FieldCause::type_invalid(
                path,
                &Value::String(type_name(value).into()),
                &format!("{path} in body must be of type integer,string: {:?}", type_name(value)),
            ));
            return;
        }
    } else if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !type_matches(t, value)
    {
        causes.push(FieldCause::type_invalid(
            path,
            &Value::String(type_name(value).into()),
            &format!("{path} in body must be of type {t}: {:?}", type_name(value)),
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        causes.push(FieldCause::not_supported(path, value, options));
    }
    match value {
        Value::String(s) => validate_string(schema, s, value, path, causes),
        Value::Number(_) => validate_number(schema, value, path, causes),
        Value::Array(items) => validate_array(schema, items, path, causes),
        Value::Object(map) => validate_object(schema, map, value, path, causes),
        _ => {}
    }
    validate_combinators(schema, value, path, causes);
}

fn validate_string(schema: &Value, s: &str, value: &Value, path: &str, causes: &mut Vec<FieldCause>) {
    let len = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        causes.push(FieldCause::invalid(path, value, &format!("{path} in body should be at least {min} chars long")));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        causes.push(FieldCause {
            reason: "FieldValueTooLong",
            field: path.to_string(),
            message: format!("Too long: may not be more than {max} bytes"),
        });
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Ok(re) = regex::Regex::new(pattern)
        && !re.is_match(s)
    {
        causes.push(FieldCause::invalid(path, value, &format!("{path} in body should match '{pattern}'")));
    }
}

fn validate_number(schema: &Value, value: &Value, path: &str, causes: &mut Vec<FieldCause>) {
    let Some(n) = value.as_f64() else { return };
    let excl_min = schema.get("exclusiveMinimum").and_then(Value::as_bool).unwrap_or(false);
    let excl_max = schema.get("exclusiveMaximum").and_then(Value::as_bool).unwrap_or(false);
    if let Some(min) = schema.get("minimum") {
        let m = min.as_f64().unwrap_or(f64::MIN);
        if n < m || (excl_min && n == m) {
            let rel = if excl_min { "greater than" } else { "greater than or equal to" };
            causes.push(FieldCause::invalid(path, value, &format!("{path} in body should be {rel} {min}")));
        }
    }
    if let Some(max) = schema.get("maximum") {
        let m = max.as_f64().unwrap_or(f64::MAX);
        if n > m || (excl_max && n == m) {
            let rel = if excl_max { "less than" } else { "less than or equal to" };
            causes.push(FieldCause::invalid(path, value, &format!("{path} in body should be {rel} {max}")));
        }
    }
}

fn validate_array(schema: &Value, items: &[Value], path: &str, causes: &mut Vec<FieldCause>) {
    let len = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        causes.push(FieldCause::invalid(
            path,
            &Value::from(len),
            &format!("{path} in body should have at least {min} items"),
        ));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        causes.push(FieldCause {
            reason: "FieldValueTooMany",
            field: path.to_string(),
            message: format!("Too many: {len}: must have at most {max} items"),
        });
    }
    let unique = schema.get("uniqueItems").and_then(Value::as_bool).unwrap_or(false)
        || schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set");
    if unique {
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                causes.push(FieldCause::duplicate(format!("{path}[{i}]"), item));
            }
        }
    }
    if let Some(sub) = schema.get("items").filter(|i| i.is_object()) {
        for (i, item) in items.iter().enumerate() {
            validate(sub, item, &format!("{path}[{i}]"), causes);
        }
    }
}

fn validate_object(schema: &Value, map: &Map<String, Value>, value: &Value, path: &str, causes: &mut Vec<FieldCause>) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                causes.push(FieldCause::required(child_path(path, r), ""));
            }
        }
    }
    let count = map.len() as u64;
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        causes.push(FieldCause::invalid(path, value, &format!("{path} in body should have at least {min} properties")));
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        causes.push(FieldCause::invalid(path, value, &format!("{path} in body should have at most {max} properties")));
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, v) in map {
        let p = child_path(path, k);
        if let Some(sub) = props.and_then(|m| m.get(k)) {
            validate(sub, v, &p, causes);
        } else if let Some(sub) = additional {
            validate(sub, v, &p, causes);
        }
    }
}

fn passes(schema: &Value, value: &Value, path: &str) -> bool {
    let mut c = Vec::new();
    validate(schema, value, path, &mut c);
    c.is_empty()
}

fn validate_combinators(schema: &Value, value: &Value, path: &str, causes: &mut Vec<FieldCause>) {
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(s, value, path, causes);
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(|s| passes(s, value, path))
    {
        causes.push(FieldCause::invalid(
            path,
            value,
            &format!("{path} in body must validate at least one schema (anyOf)"),
        ));
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && one.iter().filter(|s| passes(s, value, path)).count() != 1
    {
        causes.push(FieldCause::invalid(
            path,
            value,
            &format!("{path} in body must validate one and only one schema (oneOf)"),
        ));
    }
    if let Some(not) = schema.get("not")
        && passes(not, value, path)
    {
        causes.push(FieldCause::invalid(path, value, &format!("{path} in body should not validate the schema (not)")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["host"],
                    "properties": {
                        "host": {"type": "string", "pattern": "^[a-z.]+$"},
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 80},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "target": {"x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                    }
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn prunes_defaults_and_accepts_a_valid_object() {
        let mut obj = json!({
            "apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"host": "a.b", "unknown": 1, "target": "http", "extra": {"anything": [1]},
                     "labels": {"x": "y"}},
            "junk": true
        });
        let out = process(&schema(), &mut obj);
        assert!(out.causes.is_empty(), "{:?}", out.causes);
        assert_eq!(out.pruned, vec!["junk".to_string(), "spec.unknown".to_string()]);
        assert_eq!(obj["spec"]["port"], 80);
        assert_eq!(obj["spec"]["extra"]["anything"], json!([1]));
        assert_eq!(obj["metadata"]["name"], "w");
    }

    #[test]
    fn reports_each_violation_with_its_path() {
        let mut obj = json!({"spec": {"port": 0, "mode": "c", "target": true, "tags": [], "labels": {"x": 1}}});
        let out = process(&schema(), &mut obj);
        let fields: Vec<&str> = out.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.host", "spec.labels.x", "spec.mode", "spec.port", "spec.tags", "spec.target"]);
        let port = out.causes.iter().find(|c| c.field == "spec.port").expect("port cause");
        assert_eq!(port.message, "Invalid value: 0: spec.port in body should be greater than or equal to 1");
        let ty = out.causes.iter().find(|c| c.field == "spec.labels.x").expect("type cause");
        assert_eq!(ty.message, "Invalid value: \"integer\": spec.labels.x in body must be of type string: \"integer\"");
    }
}
