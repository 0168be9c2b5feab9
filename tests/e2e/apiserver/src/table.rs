//! Server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), as kubectl get
//! asks for it: custom resources get their CRD's `additionalPrinterColumns` (or the default `Age`),
//! CRDs the generic `Name`/`Created At`, other built-ins `Name`/`Age`.
//!
//! ```text
//!   items ──► columns for the type ──► rows {cells: [name, …], object: item}
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::catalog::ResourceType;
use crate::meta;
use crate::store::State;

struct Column {
    name: String,
    kind: String,
    description: String,
    priority: i64,
    /// JSONPath for custom columns; `None` means the object's name.
    path: Option<String>,
}

fn column(name: &str, kind: &str, path: Option<&str>, description: &str) -> Column {
    Column {
        name: name.into(),
        kind: kind.into(),
        description: description.into(),
        priority: 0,
        path: path.map(str::to_string),
    }
}

fn columns(st: &State, rt: &ResourceType) -> Vec<Column> {
    let name = column("Name", "string", None, "Name must be unique within a namespace.");
    let created = ".metadata.creationTimestamp";
    let age_doc = "CreationTimestamp is a timestamp representing the server time when this object was created.";
    if let Some(crd_name) = &rt.crd_name {
        let crd = st.get(
            &crate::catalog::StorageKey {
                group: "apiextensions.k8s.io".into(),
                resource: "customresourcedefinitions".into(),
            },
            "",
            crd_name,
        );
        let version = crd.as_ref().and_then(|c| {
            c["spec"]["versions"]
                .as_array()
                .and_then(|vs| vs.iter().find(|v| v["name"] == rt.version.as_str()))
                .cloned()
        });
        let extra: Vec<Column> = version
            .as_ref()
            .and_then(|v| v["additionalPrinterColumns"].as_array())
            .into_iter()
            .flatten()
            .map(|c| Column {
                name: c["name"].as_str().unwrap_or_default().into(),
                kind: c["type"].as_str().unwrap_or("string").into(),
                description: c["description"].as_str().unwrap_or_default().into(),
                priority: c["priority"].as_i64().unwrap_or(0),
                path: c["jsonPath"].as_str().map(str::to_string),
            })
            .collect();
        let mut out = vec![name];
        if extra.is_empty() {
            out.push(column("Age", "date", Some(created), age_doc));
        } else {
            out.extend(extra);
        }
        return out;
    }
    if rt.resource == "customresourcedefinitions" {
        return vec![name, column("Created At", "date", Some(created), age_doc)];
    }
    vec![name, column("Age", "string", Some(created), age_doc)]
}

/// `duration.HumanDuration`: how kubectl and the server print ages.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    let y = d / 365;
    match () {
        _ if secs < 120 => format!("{secs}s"),
        _ if m < 10 && secs % 60 != 0 => format!("{m}m{}s", secs % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 && h % 24 != 0 => format!("{d}d{}h", h % 24),
        _ if d < 365 * 2 => format!("{d}d"),
        _ if d < 365 * 8 && d % 365 != 0 => format!("{y}y{}d", d % 365),
        _ => format!("{y}y"),
    }
}

/// Seconds since an RFC 3339 UTC timestamp (`2026-11-25T03:40:10Z`).
fn age_secs(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts.get(r).and_then(|s| s.parse::<i64>().ok());
    let (y, mo, d, h, mi, s) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let (yy, mm) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let then = days * 86_400 + h * 3600 + mi * 60 + s;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    Some(now - then)
}

/// Evaluates the simple JSONPath subset printer columns use; the first match wins.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = vec![obj];
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            cur = cur.into_iter().filter_map(|v| v.get(key)).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let sel = &r[..end];
            rest = &r[end + 1..];
            cur = cur
                .into_iter()
                .flat_map(|v| {
                    v.as_array().map(|a| a.iter().collect::<Vec<_>>()).unwrap_or_default().into_iter().enumerate()
                })
                .filter(|(i, item)| select(sel, *i, item))
                .map(|(_, item)| item)
                .collect();
        } else {
            return None;
        }
    }
    cur.into_iter().next()
}

fn select(sel: &str, index: usize, item: &Value) -> bool {
    if sel == "*" {
        return true;
    }
    if let Ok(i) = sel.parse::<usize>() {
        return i == index;
    }
    let Some(expr) = sel.strip_prefix("?(@.").and_then(|s| s.strip_suffix(')')) else { return false };
    let Some((field, want)) = expr.split_once("==") else { return item.get(expr.trim()).is_some() };
    let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
    match item.get(field.trim()) {
        Some(Value::String(s)) => s == want,
        Some(other) => serde_json::from_str::<Value>(want).is_ok_and(|w| &w == other),
        None => false,
    }
}

fn cell(col: &Column, obj: &Value) -> Value {
    let Some(path) = &col.path else { return json!(meta::meta_str(obj, "name")) };
    let Some(v) = json_path(obj, path) else { return Value::Null };
    match (col.kind.as_str(), v) {
        ("date", Value::String(ts)) if col.name == "Created At" => json!(ts),
        ("date", Value::String(ts)) => age_secs(ts).map_or(Value::Null, |s| json!(human_duration(s))),
        ("string", _) if col.name == "Age" => {
            v.as_str().and_then(age_secs).map_or(Value::Null, |s| json!(human_duration(s)))
        }
        ("string", Value::String(s)) => json!(s),
        ("string", other) => json!(other.to_string()),
        (_, other) => other.clone(),
    }
}

/// The `Table` for `items` (already presented at the requested version).
pub fn render(st: &State, rt: &ResourceType, items: &[Value], metadata: Value) -> Value {
    let cols = columns(st, rt);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            let format = if c.path.is_none() { "name" } else { "" };
            json!({"name": c.name, "type": c.kind, "format": format, "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| cell(c, o)).collect();
            json!({"cells": cells, "object": o})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86_400 + 3600), "3d1h");
        assert_eq!(human_duration(40 * 86_400), "40d");
    }

    #[test]
    fn json_paths_for_printer_columns() {
        let o = json!({"spec": {"hostnames": ["a", "b"], "path": {"value": "/ws"}},
                       "status": {"conditions": [{"type": "Accepted", "status": "True"}, {"type": "Programmed", "status": "False"}]}});
        assert_eq!(json_path(&o, ".spec.path.value"), Some(&json!("/ws")));
        assert_eq!(json_path(&o, ".spec.hostnames"), Some(&json!(["a", "b"])));
        assert_eq!(json_path(&o, ".spec.hostnames[1]"), Some(&json!("b")));
        assert_eq!(json_path(&o, r#".status.conditions[?(@.type=="Programmed")].status"#), Some(&json!("False")));
        assert_eq!(json_path(&o, ".spec.missing"), None);
    }

    #[test]
    fn ages_are_measured_from_timestamps() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let ts = meta::format_rfc3339(now - 90);
        let age = age_secs(&ts).expect("parses");
        assert!((90..=92).contains(&age), "{age}");
    }
}
