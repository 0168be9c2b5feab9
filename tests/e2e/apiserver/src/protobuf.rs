//! Kubernetes protobuf request bodies, for the kinds kubectl's generator commands send that way
//! (`kubectl create namespace|configmap|secret|serviceaccount|service`, typed clients' delete
//! options). Typed clients send `Content-Type: application/vnd.kubernetes.protobuf`; answers stay
//! JSON, which those clients also accept.
//!
//! ```text
//!   "k8s\0" ‖ Unknown{typeMeta{apiVersion, kind}, raw} ──► message table for the kind ──► JSON
//! ```
//!
//! Field numbers come from the kinds' `generated.proto`. Zero values (which the Go marshaller
//! writes for every non-pointer field) are dropped, as JSON's `omitempty` would. A kind without a
//! table, or a field number the table does not know, is refused with 415 rather than guessed.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::meta;
use crate::status::ApiError;

/// How one field is represented.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    /// `bytes`, shown as base64 in JSON.
    Bytes,
    Int,
    Bool,
    Msg(&'static [Field]),
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>`.
    MapBytes,
    /// `metav1.Time`: `{seconds, nanos}` shown as RFC 3339.
    Time,
    /// `intstr.IntOrString`: `{type, intVal, strVal}`.
    IntOrString,
}

#[derive(Clone, Copy)]
struct Field {
    num: u64,
    name: &'static str,
    kind: Kind,
    repeated: bool,
}

const fn f(num: u64, name: &'static str, kind: Kind) -> Field {
    Field { num, name, kind, repeated: false }
}

const fn r(num: u64, name: &'static str, kind: Kind) -> Field {
    Field { num, name, kind, repeated: true }
}

const OWNER_REFERENCE: &[Field] = &[
    f(1, "kind", Kind::Str),
    f(3, "name", Kind::Str),
    f(4, "uid", Kind::Str),
    f(5, "apiVersion", Kind::Str),
    f(6, "controller", Kind::Bool),
    f(7, "blockOwnerDeletion", Kind::Bool),
];

const OBJECT_META: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "generateName", Kind::Str),
    f(3, "namespace", Kind::Str),
    f(4, "selfLink", Kind::Str),
    f(5, "uid", Kind::Str),
    f(6, "resourceVersion", Kind::Str),
    f(7, "generation", Kind::Int),
    f(8, "creationTimestamp", Kind::Time),
    f(9, "deletionTimestamp", Kind::Time),
    f(10, "deletionGracePeriodSeconds", Kind::Int),
    f(11, "labels", Kind::MapStr),
    f(12, "annotations", Kind::MapStr),
    r(13, "ownerReferences", Kind::Msg(OWNER_REFERENCE)),
    r(14, "finalizers", Kind::Str),
];

const OBJECT_REFERENCE: &[Field] = &[
    f(1, "kind", Kind::Str),
    f(2, "namespace", Kind::Str),
    f(3, "name", Kind::Str),
    f(4, "uid", Kind::Str),
    f(5, "apiVersion", Kind::Str),
    f(6, "resourceVersion", Kind::Str),
    f(7, "fieldPath", Kind::Str),
];

const LOCAL_OBJECT_REFERENCE: &[Field] = &[f(1, "name", Kind::Str)];

const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "data", Kind::MapStr),
    f(3, "binaryData", Kind::MapBytes),
    f(4, "immutable", Kind::Bool),
];

const SECRET: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "data", Kind::MapBytes),
    f(3, "type", Kind::Str),
    f(4, "stringData", Kind::MapStr),
    f(5, "immutable", Kind::Bool),
];

const NAMESPACE_SPEC: &[Field] = &[r(1, "finalizers", Kind::Str)];
const NAMESPACE_STATUS: &[Field] = &[f(1, "phase", Kind::Str)];
const NAMESPACE: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(NAMESPACE_SPEC)),
    f(3, "status", Kind::Msg(NAMESPACE_STATUS)),
];

const SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    r(2, "secrets", Kind::Msg(OBJECT_REFERENCE)),
    r(3, "imagePullSecrets", Kind::Msg(LOCAL_OBJECT_REFERENCE)),
    f(4, "automountServiceAccountToken", Kind::Bool),
];

const SERVICE_PORT: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "protocol", Kind::Str),
    f(3, "port", Kind::Int),
    f(4, "targetPort", Kind::IntOrString),
    f(5, "nodePort", Kind::Int),
    f(6, "appProtocol", Kind::Str),
];

const CLIENT_IP_CONFIG: &[Field] = &[f(1, "timeoutSeconds", Kind::Int)];
const SESSION_AFFINITY_CONFIG: &[Field] = &[f(1, "clientIP", Kind::Msg(CLIENT_IP_CONFIG))];

const SERVICE_SPEC: &[Field] = &[
    r(1, "ports", Kind::Msg(SERVICE_PORT)),
    f(2, "selector", Kind::MapStr),
    f(3, "clusterIP", Kind::Str),
    f(4, "type", Kind::Str),
    r(5, "externalIPs", Kind::Str),
    f(7, "sessionAffinity", Kind::Str),
    f(8, "loadBalancerIP", Kind::Str),
    r(9, "loadBalancerSourceRanges", Kind::Str),
    f(10, "externalName", Kind::Str),
    f(11, "externalTrafficPolicy", Kind::Str),
    f(12, "healthCheckNodePort", Kind::Int),
    f(13, "publishNotReadyAddresses", Kind::Bool),
    f(14, "sessionAffinityConfig", Kind::Msg(SESSION_AFFINITY_CONFIG)),
];

const LOAD_BALANCER_INGRESS: &[Field] = &[f(1, "ip", Kind::Str), f(2, "hostname", Kind::Str)];
const LOAD_BALANCER_STATUS: &[Field] = &[r(1, "ingress", Kind::Msg(LOAD_BALANCER_INGRESS))];
const SERVICE_STATUS: &[Field] = &[f(1, "loadBalancer", Kind::Msg(LOAD_BALANCER_STATUS))];

const SERVICE: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(SERVICE_SPEC)),
    f(3, "status", Kind::Msg(SERVICE_STATUS)),
];

const PRECONDITIONS: &[Field] = &[f(1, "uid", Kind::Str), f(2, "resourceVersion", Kind::Str)];

const DELETE_OPTIONS: &[Field] = &[
    f(1, "gracePeriodSeconds", Kind::Int),
    f(2, "preconditions", Kind::Msg(PRECONDITIONS)),
    f(3, "orphanDependents", Kind::Bool),
    f(4, "propagationPolicy", Kind::Str),
    r(5, "dryRun", Kind::Str),
];

const TYPE_META: &[Field] = &[f(1, "apiVersion", Kind::Str), f(2, "kind", Kind::Str)];

const UNKNOWN: &[Field] = &[
    f(1, "typeMeta", Kind::Msg(TYPE_META)),
    f(2, "raw", Kind::Bytes),
    f(3, "contentEncoding", Kind::Str),
    f(4, "contentType", Kind::Str),
];

/// The message table for `apiVersion`/`kind`, if this server decodes it.
fn table_for(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    match (api_version, kind) {
        ("v1", "ConfigMap") => Some(CONFIG_MAP),
        ("v1", "Secret") => Some(SECRET),
        ("v1", "Namespace") => Some(NAMESPACE),
        ("v1", "ServiceAccount") => Some(SERVICE_ACCOUNT),
        ("v1", "Service") => Some(SERVICE),
        (_, "DeleteOptions") => Some(DELETE_OPTIONS),
        _ => None,
    }
}

fn unsupported(why: String) -> ApiError {
    ApiError {
        code: 415,
        reason: "UnsupportedMediaType",
        message: format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({why})"
        ),
        details: Value::Null,
    }
}

/// A cursor over protobuf wire data.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or_else(|| unsupported("truncated varint".into()))?;
            self.buf = rest;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(unsupported("varint too long".into()))
    }

    fn bytes(&mut self) -> Result<&'a [u8], ApiError> {
        let len = usize::try_from(self.varint()?).map_err(|_| unsupported("length overflow".into()))?;
        if len > self.buf.len() {
            return Err(unsupported("truncated field".into()));
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
    }
}

fn string(bytes: &[u8]) -> Result<Value, ApiError> {
    std::str::from_utf8(bytes).map(|s| json!(s)).map_err(|_| unsupported("invalid UTF-8 in a string field".into()))
}

fn decode_value(kind: Kind, wire: u64, r: &mut Reader<'_>) -> Result<Value, ApiError> {
    match (kind, wire) {
        (Kind::Int, 0) => Ok(json!(r.varint()? as i64)),
        (Kind::Bool, 0) => Ok(json!(r.varint()? != 0)),
        (Kind::Str, 2) => string(r.bytes()?),
        (Kind::Bytes, 2) => Ok(json!(base64::engine::general_purpose::STANDARD.encode(r.bytes()?))),
        (Kind::Msg(desc), 2) => Ok(Value::Object(decode_message(r.bytes()?, desc)?)),
        (Kind::Time, 2) => {
            let t = decode_message(r.bytes()?, &[f(1, "seconds", Kind::Int), f(2, "nanos", Kind::Int)])?;
            match t.get("seconds").and_then(Value::as_i64) {
                Some(s) if s > 0 => Ok(json!(meta::format_rfc3339(s as u64))),
                _ => Ok(Value::Null),
            }
        }
        (Kind::IntOrString, 2) => {
            let desc = [f(1, "type", Kind::Int), f(2, "intVal", Kind::Int), f(3, "strVal", Kind::Str)];
            let v = decode_message(r.bytes()?, &desc)?;
            if v.get("type").and_then(Value::as_i64) == Some(1) {
                Ok(v.get("strVal").cloned().unwrap_or_else(|| json!("")))
            } else {
                Ok(v.get("intVal").cloned().unwrap_or_else(|| json!(0)))
            }
        }
        _ => Err(unsupported(format!("unexpected wire type {wire}"))),
    }
}

fn decode_map_entry(bytes: &[u8], value_kind: Kind) -> Result<(String, Value), ApiError> {
    let desc = [f(1, "key", Kind::Str), f(2, "value", value_kind)];
    let mut m = decode_message(bytes, &desc)?;
    let key = m.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
    let value = m.remove("value").unwrap_or_else(|| json!(""));
    Ok((key, value))
}

fn decode_message(buf: &[u8], desc: &[Field]) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    let mut r = Reader { buf };
    while !r.buf.is_empty() {
        let tag = r.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        let field = desc.iter().find(|f| f.num == num).ok_or_else(|| unsupported(format!("unknown field {num}")))?;
        match field.kind {
            Kind::MapStr | Kind::MapBytes => {
                if wire != 2 {
                    return Err(unsupported(format!("unexpected wire type {wire}")));
                }
                let value_kind = if matches!(field.kind, Kind::MapStr) { Kind::Str } else { Kind::Bytes };
                let (k, v) = decode_map_entry(r.bytes()?, value_kind)?;
                let entry = out.entry(field.name).or_insert_with(|| json!({}));
                if let Value::Object(m) = entry {
                    m.insert(k, v);
                }
            }
            kind => {
                let v = decode_value(kind, wire, &mut r)?;
                if field.repeated {
                    let entry = out.entry(field.name).or_insert_with(|| json!([]));
                    if let Value::Array(a) = entry {
                        a.push(v);
                    }
                } else if !is_zero(&v) || matches!(kind, Kind::IntOrString) {
                    out.insert(field.name.into(), v);
                } else {
                    out.remove(field.name);
                }
            }
        }
    }
    Ok(out)
}

/// Decodes a `application/vnd.kubernetes.protobuf` body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let inner = body.strip_prefix(b"k8s\x00").ok_or_else(|| unsupported("missing the k8s protobuf prefix".into()))?;
    let unknown = decode_message(inner, UNKNOWN)?;
    let api_version =
        unknown.get("typeMeta").and_then(|t| t.get("apiVersion")).and_then(Value::as_str).unwrap_or_default();
    let kind = unknown.get("typeMeta").and_then(|t| t.get("kind")).and_then(Value::as_str).unwrap_or_default();
    let desc = table_for(api_version, kind).ok_or_else(|| unsupported(format!("protobuf is decoded only for v1 ConfigMap, Secret, Namespace, ServiceAccount, Service and DeleteOptions, not {api_version} {kind}")))?;
    let raw = unknown
        .get("raw")
        .and_then(Value::as_str)
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
        .transpose()
        .map_err(|_| unsupported("invalid raw bytes".into()))?
        .unwrap_or_default();
    let mut obj = decode_message(&raw, desc)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, num: u8, bytes: &[u8]) {
        out.push((num << 3) | 2);
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }

    #[test]
    fn decodes_a_config_map_envelope() {
        let mut meta = Vec::new();
        field(&mut meta, 1, b"cfg");
        field(&mut meta, 2, b"");
        let mut label = Vec::new();
        field(&mut label, 1, b"app");
        field(&mut label, 2, b"web");
        field(&mut meta, 11, &label);
        let mut cm = Vec::new();
        field(&mut cm, 1, &meta);
        let mut entry = Vec::new();
        field(&mut entry, 1, b"k");
        field(&mut entry, 2, b"v");
        field(&mut cm, 2, &entry);
        let mut type_meta = Vec::new();
        field(&mut type_meta, 1, b"v1");
        field(&mut type_meta, 2, b"ConfigMap");
        let mut unknown = Vec::new();
        field(&mut unknown, 1, &type_meta);
        field(&mut unknown, 2, &cm);
        let mut body = b"k8s\x00".to_vec();
        body.extend_from_slice(&unknown);
        let v = decode(&body).expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "web"}}, "data": {"k": "v"}})
        );
        let mut bad = b"k8s\x00".to_vec();
        let mut tm = Vec::new();
        field(&mut tm, 1, b"apps/v1");
        field(&mut tm, 2, b"Deployment");
        field(&mut bad, 1, &tm);
        assert_eq!(decode(&bad).expect_err("no table").code, 415);
    }
}
