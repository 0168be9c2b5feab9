//! The OpenAPI v3 documents kubectl needs, and no more.
//!
//! kubectl (1.27+) validates `create/replace/apply` with `--validate=strict` by default. Before
//! sending, it asks whether the server supports the `fieldValidation` query parameter for the
//! object's kind: it reads `/openapi/v3`, then `/openapi/v3/<api/v1 | apis/g/v>` and looks for a
//! PATCH operation tagged `x-kubernetes-group-version-kind` with a `fieldValidation` query
//! parameter. If found, validation is left to the server (`?fieldValidation=Strict`); if the
//! documents are missing (404 on v3 *and* v2) kubectl fails with "the server could not find the
//! requested resource ... turn validation off with --validate=false". So each group version gets
//! a document with one such operation per kind, plus component schemas (the CRD schema for custom
//! resources, the Kubernetes schema for built-ins).
//!
//! `/openapi/v2` is an empty Swagger 2.0 document (no paths, no definitions), in protobuf when
//! asked (kubectl asks only for protobuf). kubectl up to 1.27 refuses `apply` without it; with it,
//! kubectl finds no model for the kind and takes strategic-merge metadata from its compiled-in
//! types, as it does for any kind the document does not describe.
//!
//! ```text
//!   /openapi/v3            {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=…"}, …}}
//!   /openapi/v3/api/v1     {"openapi": "3.0.0", "paths": {…patch + fieldValidation…}, "components": …}
//! ```

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::catalog::{Catalog, ResourceType};

/// `group/version` keys as the v3 root lists them: `api/v1`, `apis/apps/v1`.
fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// The document for one group version, if served.
pub fn group_version_doc(catalog: &Catalog, group: &str, version: &str, server_version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = catalog.all().filter(|t| t.group == group && t.version == version).collect();
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for t in types {
        let gvk = json!([{"group": t.group, "version": t.version, "kind": t.kind}]);
        let schema_name = schema_name(t);
        let op = json!({
            "operationId": format!("patch{}", t.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
            "parameters": [
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
            ],
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}}}}}
        });
        let item_path = if t.namespaced {
            format!("{}/namespaces/{{namespace}}/{}/{{name}}", t.gv_path(), t.resource)
        } else {
            format!("{}/{}/{{name}}", t.gv_path(), t.resource)
        };
        paths.insert(item_path, json!({"patch": op}));
        let mut schema = match (&t.schema, crate::builtin_schema::schema_for(&t.group, &t.resource)) {
            (Some(s), _) => (**s).clone(),
            (None, Some(s)) => s.clone(),
            (None, None) => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        };
        schema["x-kubernetes-group-version-kind"] = gvk;
        schemas.insert(schema_name, schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": server_version},
        "paths": paths,
        "components": {"schemas": schemas}
    }))
}

fn schema_name(t: &ResourceType) -> String {
    let group = if t.group.is_empty() { "core".to_string() } else { t.group.clone() };
    let mut reversed: Vec<&str> = group.split('.').collect();
    reversed.reverse();
    format!("{}.{}.{}", reversed.join("."), t.version, t.kind)
}

/// `/openapi/v3`: every served group version with a content hash in its URL.
pub fn root(catalog: &Catalog, server_version: &str) -> Value {
    let mut gvs: Vec<(String, String)> = catalog.all().map(|t| (t.group.clone(), t.version.clone())).collect();
    gvs.sort();
    gvs.dedup();
    let mut paths = Map::new();
    for (g, v) in gvs {
        if let Some(doc) = group_version_doc(catalog, &g, &v, server_version) {
            let mut h = DefaultHasher::new();
            doc.to_string().hash(&mut h);
            let key = gv_key(&g, &v);
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={:016X}", h.finish())}),
            );
        }
    }
    json!({"paths": paths})
}

/// The Swagger 2.0 document, as JSON: version information only.
pub fn v2_json(server_version: &str) -> Value {
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": server_version}, "paths": {}, "definitions": {}})
}

/// Appends one length-delimited protobuf field.
fn proto_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push((field << 3) | 2);
    let mut len = bytes.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(bytes);
}

/// The same document in gnostic's protobuf form (`openapi.v2.Document`: `swagger` = 1,
/// `info` = 2 with `title` = 1 and `version` = 2).
pub fn v2_protobuf(server_version: &str) -> Vec<u8> {
    let mut info = Vec::new();
    proto_field(&mut info, 1, b"Kubernetes");
    proto_field(&mut info, 2, server_version.as_bytes());
    let mut doc = Vec::new();
    proto_field(&mut doc, 1, b"2.0");
    proto_field(&mut doc, 2, &info);
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn v2_protobuf_encodes_lengths() {
        let doc = super::v2_protobuf("v1.32.0");
        assert_eq!(&doc[..5], &[0x0a, 3, b'2', b'.', b'0']);
        assert_eq!(doc[5], 0x12);
        assert_eq!(doc[6] as usize, doc.len() - 7);
    }

    use super::*;

    #[test]
    fn each_kind_has_a_patch_with_field_validation() {
        let c = Catalog::default();
        let doc = group_version_doc(&c, "networking.k8s.io", "v1", "v1.32.0").expect("served");
        let op = &doc["paths"]["/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Ingress");
        assert!(op["parameters"].as_array().expect("params").iter().any(|p| p["name"] == "fieldValidation"));
        let cluster = &doc["paths"]["/apis/networking.k8s.io/v1/ingressclasses/{name}"]["patch"];
        assert_eq!(cluster["x-kubernetes-group-version-kind"]["kind"], "IngressClass");
        let root = root(&c, "v1.32.0");
        assert!(
            root["paths"]["api/v1"]["serverRelativeURL"].as_str().expect("url").starts_with("/openapi/v3/api/v1?hash=")
        );
    }
}
