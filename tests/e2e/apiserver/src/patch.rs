//! The PATCH body types: JSON merge patch (RFC 7386), JSON patch (RFC 6902), a strategic merge
//! patch that knows the merge keys of the kinds wsgate uses, and server-side apply approximated as
//! a merge (no field ownership).
//!
//! ```text
//!   Content-Type ──► PatchKind ──► apply(current, body) ──► candidate object ──► update path
//! ```

use serde_json::{Map, Value};

use crate::status::ApiError;

/// The patch flavours the server accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    /// Maps a `Content-Type` (parameters ignored) to a patch kind.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

fn patch_error(message: impl Into<String>) -> ApiError {
    ApiError { code: 422, reason: "Invalid", message: message.into(), details: Value::Null }
}

/// Applies `patch` to `current` and returns the patched object.
pub fn apply(kind: PatchKind, current: &Value, patch: &Value) -> Result<Value, ApiError> {
    match kind {
        PatchKind::Merge | PatchKind::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal patch into Go value of type map[string]interface {}",
                ));
            }
            Ok(merge_patch(current, patch))
        }
        PatchKind::Json => json_patch(current, patch),
        PatchKind::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal patch into Go value of type map[string]interface {}",
                ));
            }
            strategic_merge(current, patch).ok_or_else(|| patch_error("strategic merge patch deleted the whole object"))
        }
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else { return patch.clone() };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

/// Decodes one RFC 6901 pointer into its reference tokens.
fn pointer_tokens(pointer: &str) -> Result<Vec<String>, ApiError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer.strip_prefix('/').ok_or_else(|| patch_error(format!("invalid JSON pointer {pointer:?}")))?;
    Ok(rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect())
}

fn parent_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, ApiError> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or_else(|| patch_error(format!("doc is missing path: {t}")))?,
            Value::Array(a) => {
                let i: usize = t.parse().map_err(|_| patch_error(format!("invalid array index {t:?}")))?;
                a.get_mut(i).ok_or_else(|| patch_error(format!("array index {i} out of bounds")))?
            }
            _ => return Err(patch_error(format!("doc is missing path: {t}"))),
        };
    }
    Ok(cur)
}

fn get_at(doc: &Value, pointer: &str) -> Result<Value, ApiError> {
    doc.pointer(pointer).cloned().ok_or_else(|| patch_error(format!("doc is missing path: {pointer:?}")))
}

fn remove_at(doc: &mut Value, pointer: &str) -> Result<Value, ApiError> {
    let tokens = pointer_tokens(pointer)?;
    let (last, parents) = tokens.split_last().ok_or_else(|| patch_error("cannot remove the document root"))?;
    match parent_mut(doc, parents)? {
        Value::Object(m) => m.remove(last).ok_or_else(|| patch_error(format!("doc is missing path: {pointer:?}"))),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| patch_error(format!("invalid array index {last:?}")))?;
            if i < a.len() { Ok(a.remove(i)) } else { Err(patch_error(format!("array index {i} out of bounds"))) }
        }
        _ => Err(patch_error(format!("doc is missing path: {pointer:?}"))),
    }
}

fn add_at(doc: &mut Value, pointer: &str, value: Value, replace: bool) -> Result<(), ApiError> {
    let tokens = pointer_tokens(pointer)?;
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parents)? {
        Value::Object(m) => {
            if replace && !m.contains_key(last) {
                return Err(patch_error(format!("doc is missing key: {pointer:?}")));
            }
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" && !replace {
                a.push(value);
                return Ok(());
            }
            let i: usize = last.parse().map_err(|_| patch_error(format!("invalid array index {last:?}")))?;
            if replace {
                let slot = a.get_mut(i).ok_or_else(|| patch_error(format!("array index {i} out of bounds")))?;
                *slot = value;
            } else if i <= a.len() {
                a.insert(i, value);
            } else {
                return Err(patch_error(format!("array index {i} out of bounds")));
            }
            Ok(())
        }
        _ => Err(patch_error(format!("doc is missing path: {pointer:?}"))),
    }
}

/// RFC 6902: a list of operations applied in order; any failure rejects the whole patch.
pub fn json_patch(current: &Value, patch: &Value) -> Result<Value, ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch"))?;
    let mut doc = current.clone();
    for op in ops {
        let path = op["path"].as_str().ok_or_else(|| patch_error("missing 'path' in JSON patch operation"))?;
        let value = || op.get("value").cloned().ok_or_else(|| patch_error("missing 'value' in JSON patch operation"));
        match op["op"].as_str().unwrap_or_default() {
            "add" => add_at(&mut doc, path, value()?, false)?,
            "replace" => add_at(&mut doc, path, value()?, true)?,
            "remove" => {
                remove_at(&mut doc, path)?;
            }
            "test" => {
                if get_at(&doc, path)? != value()? {
                    return Err(patch_error(format!("testing value {path} failed: test failed")));
                }
            }
            "move" => {
                let from = op["from"].as_str().ok_or_else(|| patch_error("missing 'from' in JSON patch operation"))?;
                let v = remove_at(&mut doc, from)?;
                add_at(&mut doc, path, v, false)?;
            }
            "copy" => {
                let from = op["from"].as_str().ok_or_else(|| patch_error("missing 'from' in JSON patch operation"))?;
                let v = get_at(&doc, from)?;
                add_at(&mut doc, path, v, false)?;
            }
            other => return Err(patch_error(format!("Unexpected kind: {other}"))),
        }
    }
    Ok(doc)
}

/// The merge key of a list field, for the kinds the server knows; `None` means "replace the list".
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "imagePullSecrets" => {
            Some("name")
        }
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                Some("containerPort")
            } else {
                Some("port")
            }
        }
        _ => None,
    }
}

/// Primitive lists whose patch strategy is "merge" (union instead of replace).
fn merges_primitives(field: &str) -> bool {
    field == "finalizers"
}

/// Strategic merge: merge patch plus list merging by key and the `$patch`, `$retainKeys`,
/// `$setElementOrder` and `$deleteFromPrimitiveList` directives. `None` means "delete this".
pub fn strategic_merge(target: &Value, patch: &Value) -> Option<Value> {
    let Value::Object(p) = patch else { return Some(patch.clone()) };
    match p.get("$patch").and_then(Value::as_str) {
        Some("delete") => return None,
        Some("replace") => {
            let mut out = p.clone();
            out.remove("$patch");
            return Some(Value::Object(out));
        }
        _ => {}
    }
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(remove)) = (out.get_mut(field), v.as_array()) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        match v {
            Value::Null => {
                out.remove(k);
            }
            Value::Object(_) => match strategic_merge(out.get(k).unwrap_or(&Value::Null), v) {
                Some(merged) => {
                    out.insert(k.clone(), merged);
                }
                None => {
                    out.remove(k);
                }
            },
            Value::Array(items) => {
                let merged = merge_list(k, out.get(k), items);
                out.insert(k.clone(), merged);
            }
            other => {
                out.insert(k.clone(), other.clone());
            }
        }
    }
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        out.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k.as_str())));
    }
    Some(Value::Object(out))
}

fn merge_list(field: &str, current: Option<&Value>, items: &[Value]) -> Value {
    let current: Vec<Value> = current.and_then(Value::as_array).cloned().unwrap_or_default();
    if items.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace")) {
        let rest: Vec<Value> =
            items.iter().filter(|i| i.get("$patch").and_then(Value::as_str) != Some("replace")).cloned().collect();
        return Value::Array(rest);
    }
    if items.iter().all(|i| !i.is_object()) {
        if merges_primitives(field) {
            let mut out = current;
            for i in items {
                if !out.contains(i) {
                    out.push(i.clone());
                }
            }
            return Value::Array(out);
        }
        return Value::Array(items.to_vec());
    }
    let Some(key) = merge_key(field, items) else {
        return Value::Array(items.iter().filter_map(|i| strategic_merge(&Value::Null, i)).collect());
    };
    let mut out = current;
    for item in items {
        let id = item.get(key);
        let pos = id.and_then(|id| out.iter().position(|c| c.get(key) == Some(id)));
        let deleting = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, deleting) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => match strategic_merge(&out[i], item) {
                Some(m) => out[i] = m,
                None => {
                    out.remove(i);
                }
            },
            (None, false) => {
                if let Some(m) = strategic_merge(&Value::Null, item) {
                    out.push(m);
                }
            }
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7386() {
        let cur = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        let out = merge_patch(&cur, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(out, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_ops() {
        let cur = json!({"spec": {"ports": [{"port": 80}]}, "metadata": {"labels": {"a/b": "x"}}});
        let p = json!([
            {"op": "add", "path": "/spec/ports/-", "value": {"port": 443}},
            {"op": "replace", "path": "/metadata/labels/a~1b", "value": "y"},
            {"op": "test", "path": "/spec/ports/0/port", "value": 80},
            {"op": "copy", "from": "/spec/ports/1", "path": "/spec/first"},
            {"op": "remove", "path": "/spec/ports/0"}
        ]);
        let out = json_patch(&cur, &p).expect("applies");
        assert_eq!(
            out,
            json!({"spec": {"ports": [{"port": 443}], "first": {"port": 443}}, "metadata": {"labels": {"a/b": "y"}}})
        );
        let failing = json!([{"op": "test", "path": "/spec/ports/0/port", "value": 1}]);
        assert_eq!(json_patch(&cur, &failing).expect_err("test fails").code, 422);
    }

    #[test]
    fn strategic_merge_merges_by_key() {
        let cur = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}],
                                  "selector": {"app": "a"}},
                         "metadata": {"finalizers": ["x"]}});
        let p = json!({"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                                "ports": [{"port": 80, "name": "web"}, {"port": 443, "$patch": "delete"}]},
                       "metadata": {"finalizers": ["y"]}});
        let out = strategic_merge(&cur, &p).expect("object");
        assert_eq!(out["spec"]["ports"], json!([{"port": 80, "name": "web"}]));
        assert_eq!(out["spec"]["selector"], json!({"app": "a"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        let replaced =
            strategic_merge(&cur, &json!({"spec": {"$patch": "replace", "type": "ClusterIP"}})).expect("object");
        assert_eq!(replaced["spec"], json!({"type": "ClusterIP"}));
    }
}
