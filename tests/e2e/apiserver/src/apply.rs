//! Server-side apply, approximated per field manager: the fields a manager applied last time are
//! remembered (outside the object; `managedFields` are not stored), and a new apply from the same
//! manager removes the ones it no longer sets before merging the applied configuration in. This
//! matches real server-side apply for one manager per field; conflicts between managers, `force`
//! and key-wise merging of `listType=map` lists are not modelled (lists are owned as a whole).
//!
//! ```text
//!   current ──remove(previously owned − now applied)──► merge(applied) ──► candidate
//!   owned[(uid, manager, subresource)] = leaf paths of applied
//! ```

use serde_json::{Map, Value};

/// A field path from the object root.
pub type FieldPath = Vec<String>;

/// Metadata fields an applied configuration names without owning.
fn identity(path: &[String]) -> bool {
    matches!(path, [a] if a == "apiVersion" || a == "kind")
        || matches!(path, [m, f] if m == "metadata" && matches!(f.as_str(), "name" | "namespace" | "resourceVersion" | "uid" | "generateName"))
}

/// The leaf paths of an applied configuration (objects are walked, lists and scalars are leaves).
pub fn leaf_paths(applied: &Value) -> Vec<FieldPath> {
    let mut out = Vec::new();
    walk(applied, &mut Vec::new(), &mut out);
    out.retain(|p| !identity(p));
    out
}

fn walk(v: &Value, prefix: &mut FieldPath, out: &mut Vec<FieldPath>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                prefix.push(k.clone());
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.push(prefix.clone());
            }
        }
    }
}

/// Removes the field at `path`, if present.
fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = obj;
    for p in parents {
        match cur.get_mut(p.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Value::Object(m) = cur {
        m.remove(last);
    }
}

/// Merges `applied` into `target`: objects recursively, everything else replaced.
fn merge(target: &mut Value, applied: &Value) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) => {
            for (k, v) in a {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, a) => *t = a.clone(),
    }
}

/// The object after `applied` is applied by a manager that previously owned `owned`.
pub fn apply(current: &Value, applied: &Value, owned: &[FieldPath]) -> Value {
    let now = leaf_paths(applied);
    let mut out = current.clone();
    if !out.is_object() {
        out = Value::Object(Map::new());
    }
    for path in owned {
        let still = now.iter().any(|p| p.starts_with(path));
        if !still {
            remove_path(&mut out, path);
        }
    }
    merge(&mut out, applied);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> FieldPath {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn fields_dropped_from_the_applied_configuration_are_removed() {
        let current = json!({"metadata": {"name": "x", "labels": {"a": "1", "other": "kept"}},
                             "data": {"k1": "v1", "k2": "v2"}});
        let owned = vec![p("metadata.labels.a"), p("data.k1"), p("data.k2")];
        let applied =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k1": "new"}});
        let out = apply(&current, &applied, &owned);
        assert_eq!(out["data"], json!({"k1": "new"}));
        assert_eq!(out["metadata"]["labels"], json!({"other": "kept"}), "fields of other managers stay");
        assert_eq!(leaf_paths(&applied), vec![p("data.k1")]);
    }
}
