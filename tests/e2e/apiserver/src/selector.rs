//! Label and field selectors, parsed from the `labelSelector` / `fieldSelector` query parameters
//! with the grammar of k8s.io/apimachinery (`a=b,c!=d,e in (x,y),!f,g`, `metadata.name=x`).

use serde_json::Value;

use crate::catalog::ResourceType;
use crate::status::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum LabelOp {
    Exists,
    NotExists,
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Greater(i64),
    Less(i64),
}

#[derive(Debug, Clone, PartialEq)]
struct LabelRequirement {
    key: String,
    op: LabelOp,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

fn parse_error(s: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {why} (in {s:?})"))
}

fn parse_set(s: &str, rest: &str) -> Result<Vec<String>, ApiError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| parse_error(s, "expected a parenthesised set of values"))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

fn check_key(s: &str, key: &str) -> Result<(), ApiError> {
    match crate::meta::qualified_name_error(key) {
        None => Ok(()),
        Some(e) => Err(parse_error(s, &format!("invalid label key {key:?}: {e}"))),
    }
}

impl LabelSelector {
    /// Parses a `labelSelector` value; errors are 400 BadRequest like the real server's.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector { requirements });
        }
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                return Err(parse_error(s, "found '', expected: identifier"));
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                let key = key.trim();
                check_key(s, key)?;
                LabelRequirement { key: key.to_string(), op: LabelOp::NotExists }
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelRequirement { key: k.trim().to_string(), op: LabelOp::NotEquals(v.trim().to_string()) }
            } else if let Some((k, v)) = part.split_once("==") {
                LabelRequirement { key: k.trim().to_string(), op: LabelOp::Equals(v.trim().to_string()) }
            } else if let Some((k, v)) = part.split_once('=') {
                LabelRequirement { key: k.trim().to_string(), op: LabelOp::Equals(v.trim().to_string()) }
            } else if let Some((k, v)) = part.split_once('>') {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| parse_error(s, "for 'Gt', 'Lt' operators, the value must be an integer"))?;
                LabelRequirement { key: k.trim().to_string(), op: LabelOp::Greater(n) }
            } else if let Some((k, v)) = part.split_once('<') {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| parse_error(s, "for 'Gt', 'Lt' operators, the value must be an integer"))?;
                LabelRequirement { key: k.trim().to_string(), op: LabelOp::Less(n) }
            } else {
                let mut words = part.splitn(2, char::is_whitespace);
                let key = words.next().unwrap_or_default().trim().to_string();
                let rest = words.next().unwrap_or_default().trim();
                if rest.is_empty() {
                    LabelRequirement { key, op: LabelOp::Exists }
                } else if let Some(set) = rest.strip_prefix("notin") {
                    LabelRequirement { key, op: LabelOp::NotIn(parse_set(s, set)?) }
                } else if let Some(set) = rest.strip_prefix("in") {
                    LabelRequirement { key, op: LabelOp::In(parse_set(s, set)?) }
                } else {
                    return Err(parse_error(s, &format!("found '{rest}', expected: in, notin, =, ==, !=, gt, lt")));
                }
            };
            check_key(s, &req.key)?;
            requirements.push(req);
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether an object's labels satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match &r.op {
            LabelOp::Exists => get(&r.key).is_some(),
            LabelOp::NotExists => get(&r.key).is_none(),
            LabelOp::Equals(v) => get(&r.key) == Some(v.as_str()),
            LabelOp::NotEquals(v) => get(&r.key) != Some(v.as_str()),
            LabelOp::In(set) => get(&r.key).is_some_and(|x| set.iter().any(|v| v == x)),
            LabelOp::NotIn(set) => get(&r.key).is_none_or(|x| !set.iter().any(|v| v == x)),
            LabelOp::Greater(n) => get(&r.key).and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x > *n),
            LabelOp::Less(n) => get(&r.key).and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x < *n),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct FieldRequirement {
    field: String,
    value: String,
    equal: bool,
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Field selector keys a kind supports beyond `metadata.name` and `metadata.namespace`.
fn extra_fields(rt: &ResourceType) -> &'static [&'static str] {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        _ => &[],
    }
}

/// Unescapes `\,`, `\=` and `\\` in a field selector value.
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits on commas not escaped with a backslash.
fn split_unescaped(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

impl FieldSelector {
    /// Parses a `fieldSelector` value, rejecting fields the kind does not index.
    pub fn parse(s: &str, rt: &ResourceType) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector { requirements });
        }
        for part in split_unescaped(s) {
            let part = part.trim();
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            let field = field.trim();
            let known = field == "metadata.name" || field == "metadata.namespace" || extra_fields(rt).contains(&field);
            if !known {
                let message = if rt.is_custom() {
                    format!("{field:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")
                } else {
                    format!("field label not supported: {field}")
                };
                return Err(ApiError::bad_request(message));
            }
            requirements.push(FieldRequirement { field: field.to_string(), value: unescape(value), equal });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether an object's fields satisfy every requirement (absent fields read as "").
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_value(obj, &r.field);
            (actual == r.value) == r.equal
        })
    }
}

/// Reads a dotted field path as the string the field indexers produce.
fn field_value(obj: &Value, path: &str) -> String {
    if path == "source" {
        return obj["source"]["component"].as_str().unwrap_or_default().to_string();
    }
    let mut cur = obj;
    for seg in path.split('.') {
        cur = &cur[seg];
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "n", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_selector_grammar() {
        let sel = LabelSelector::parse("a=b,c!=d,e in (x, y),!f,g").expect("valid");
        assert!(sel.matches(&obj(json!({"a": "b", "e": "y", "g": ""}))));
        assert!(!sel.matches(&obj(json!({"a": "b", "e": "y", "g": "", "f": "1"}))));
        assert!(!sel.matches(&obj(json!({"a": "b", "e": "z", "g": ""}))));
        assert!(!sel.matches(&obj(json!({"a": "b", "c": "d", "e": "x", "g": ""}))));
        assert!(!sel.matches(&obj(json!({"a": "b", "e": "x"}))));
        let notin = LabelSelector::parse("tier notin (web)").expect("valid");
        assert!(notin.matches(&obj(json!({}))));
        assert!(!notin.matches(&obj(json!({"tier": "web"}))));
        assert!(LabelSelector::parse("a in x").is_err());
        assert!(LabelSelector::parse("bad key=1").is_err());
    }

    #[test]
    fn field_selector_checks_supported_fields() {
        let c = Catalog::default();
        let svc = c.lookup("", "v1", "services").expect("served");
        let sel = FieldSelector::parse("metadata.name=n,metadata.namespace!=other", svc).expect("valid");
        assert!(sel.matches(&obj(json!({}))));
        assert!(!FieldSelector::parse("metadata.name=m", svc).expect("valid").matches(&obj(json!({}))));
        let err = FieldSelector::parse("spec.type=ClusterIP", svc).expect_err("unsupported");
        assert_eq!(err.message, "field label not supported: spec.type");
        let secrets = c.lookup("", "v1", "secrets").expect("served");
        let sel = FieldSelector::parse("type=Opaque", secrets).expect("valid");
        assert!(sel.matches(&json!({"type": "Opaque"})));
    }
}
