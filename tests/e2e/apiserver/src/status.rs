//! API errors as the real API server reports them: a `Status` object with an HTTP code, a machine
//! reason and a human message whose wording follows k8s.io/apimachinery's `errors` package.
//!
//! ```text
//!   handler ──Err(ApiError)──► into_status() ──► {"kind":"Status",...,"code":404}
//! ```

use serde_json::{Value, json};

/// One field problem inside a 422 Invalid answer (`details.causes[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldCause {
    /// `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: &'static str,
    /// Dotted path, e.g. `spec.rules[0].http.paths[0].pathType`.
    pub field: String,
    /// `Required value`, `Invalid value: "x": detail`, ...
    pub message: String,
}

impl FieldCause {
    /// `field: Required value` (with an optional detail after a colon).
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message =
            if detail.is_empty() { "Required value".to_string() } else { format!("Required value: {detail}") };
        FieldCause { reason: "FieldValueRequired", field: field.into(), message }
    }

    /// `field: Invalid value: <value>: detail`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        FieldCause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {detail}", render_value(value)),
        }
    }

    /// `field: Invalid value: <rendered>: detail`, for values Go prints with `%#v` (structs, slices).
    pub fn invalid_rendered(field: impl Into<String>, rendered: &str, detail: &str) -> Self {
        FieldCause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {rendered}: {detail}"),
        }
    }

    /// `field: Invalid value: "type": detail` (a JSON type mismatch).
    pub fn type_invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        FieldCause {
            reason: "FieldValueTypeInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {detail}", render_value(value)),
        }
    }

    /// `field: Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[Value]) -> Self {
        let list: Vec<String> = supported.iter().map(render_value).collect();
        FieldCause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: {}: supported values: {}", render_value(value), list.join(", ")),
        }
    }

    /// `field: Duplicate value: "x"`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        FieldCause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", render_value(value)),
        }
    }

    /// `field: Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        FieldCause { reason: "FieldValueForbidden", field: field.into(), message: format!("Forbidden: {detail}") }
    }

    /// The line the aggregate message shows: `field: message`.
    fn line(&self) -> String {
        if self.field.is_empty() { self.message.clone() } else { format!("{}: {}", self.field, self.message) }
    }
}

/// Renders a value the way Go's `%#v`-ish field errors do: strings quoted, numbers bare.
fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// An error answer: HTTP code plus the `Status` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

/// How a resource is named in messages: `services` or `ingresses.networking.k8s.io`.
pub fn qualified_resource(group: &str, resource: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

fn details(group: &str, kind: &str, name: &str) -> Value {
    let mut d = serde_json::Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    if !kind.is_empty() {
        d.insert("kind".into(), json!(kind));
    }
    Value::Object(d)
}

impl ApiError {
    /// 404 for a named object: `services "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} {name:?} not found", qualified_resource(group, resource)),
            details: details(group, resource, name),
        }
    }

    /// 404 for a path the server does not serve.
    pub fn no_route() -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: json!({}),
        }
    }

    /// 409 on create of an existing name.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} {name:?} already exists", qualified_resource(group, resource)),
            details: details(group, resource, name),
        }
    }

    /// 409 on a stale resourceVersion or a failed precondition.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                qualified_resource(group, resource)
            ),
            details: details(group, resource, name),
        }
    }

    /// The conflict every stale write gets.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with field causes: `Service "x" is invalid: spec.ports: Required value`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<FieldCause>) -> Self {
        let qualified_kind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let lines: Vec<String> = causes.iter().map(FieldCause::line).collect();
        let joined = if lines.len() == 1 { lines[0].clone() } else { format!("[{}]", lines.join(", ")) };
        let mut d = details(group, kind, name);
        let list: Vec<Value> =
            causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
        if let Value::Object(map) = &mut d {
            map.insert("causes".into(), Value::Array(list));
        }
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{qualified_kind} {name:?} is invalid: {joined}"),
            details: d,
        }
    }

    /// 401 for a request whose credentials authenticate no one (`NewUnauthorized("Unauthorized")`).
    pub fn unauthorized() -> Self {
        ApiError { code: 401, reason: "Unauthorized", message: "Unauthorized".into(), details: Value::Null }
    }

    /// 403 from the authorizer (`NewForbidden(groupResource, name, err)`): `services is forbidden: …`,
    /// `ingresses.networking.k8s.io "x" is forbidden: …`, or `forbidden: …` for non-resource paths.
    pub fn forbidden(group: &str, resource: &str, name: &str, err: &str) -> Self {
        let message = if group.is_empty() && resource.is_empty() {
            format!("forbidden: {err}")
        } else if name.is_empty() {
            format!("{} is forbidden: {err}", qualified_resource(group, resource))
        } else {
            format!("{} {name:?} is forbidden: {err}", qualified_resource(group, resource))
        };
        ApiError { code: 403, reason: "Forbidden", message, details: details(group, resource, name) }
    }

    /// 403 for a create in a namespace that is being deleted (NamespaceLifecycle admission).
    pub fn namespace_terminating(group: &str, resource: &str, name: &str, namespace: &str) -> Self {
        let why = format!("unable to create new content in namespace {namespace} because it is being terminated");
        let mut d = details(group, resource, name);
        if let Value::Object(map) = &mut d {
            map.insert(
                "causes".into(),
                json!([{"reason": "NamespaceTerminating", "message": why, "field": "metadata.namespace"}]),
            );
        }
        ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!("{} {name:?} is forbidden: {why}", qualified_resource(group, resource)),
            details: d,
        }
    }

    /// 500 with no reason: how the real server reports a plain storage error.
    pub fn storage(message: impl Into<String>) -> Self {
        ApiError { code: 500, reason: "", message: message.into(), details: Value::Null }
    }

    /// 400 with a plain message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError { code: 400, reason: "BadRequest", message: message.into(), details: Value::Null }
    }

    /// 405 for a verb the resource does not allow.
    pub fn method_not_allowed() -> Self {
        ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: "the server does not allow this method on the requested resource".into(),
            details: Value::Null,
        }
    }

    /// 410 for a resourceVersion older than the retained history.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError { code: 410, reason: "Expired", message: message.into(), details: Value::Null }
    }

    /// 415 for a body type the verb does not accept.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
            details: Value::Null,
        }
    }

    /// 504 for a resourceVersion the store has not reached yet.
    pub fn too_large_resource_version(asked: u64, current: u64) -> Self {
        ApiError {
            code: 504,
            reason: "Timeout",
            message: format!("Too large resource version: {asked}, current: {current}"),
            details: json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
        }
    }

    /// The `Status` object this error is sent as (`details` omitted when there are none).
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            status["reason"] = json!(self.reason);
        }
        if !self.details.is_null() {
            status["details"] = self.details.clone();
        }
        status
    }
}

/// The `Status` a delete answers with for kinds that do not return the deleted object.
pub fn delete_success(group: &str, resource: &str, name: &str, uid: &str) -> Value {
    let mut d = details(group, resource, name);
    if let Value::Object(map) = &mut d {
        map.insert("uid".into(), json!(uid));
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_the_real_body() {
        let status = ApiError::not_found("", "services", "x").to_status();
        assert_eq!(
            status,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"services \"x\" not found","reason":"NotFound",
                   "details":{"name":"x","kind":"services"},"code":404})
        );
    }

    #[test]
    fn grouped_resources_are_qualified() {
        let e = ApiError::stale("networking.k8s.io", "ingresses", "web");
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on ingresses.networking.k8s.io \"web\": the object has been modified; \
             please apply your changes to the latest version and try again"
        );
        assert_eq!(e.details["group"], "networking.k8s.io");
    }

    #[test]
    fn invalid_lists_every_cause() {
        let e = ApiError::invalid(
            "",
            "Service",
            "s",
            vec![FieldCause::required("spec.ports", ""), FieldCause::invalid("metadata.name", &json!("A"), "bad")],
        );
        assert_eq!(
            e.message,
            "Service \"s\" is invalid: [spec.ports: Required value, metadata.name: Invalid value: \"A\": bad]"
        );
        assert_eq!(e.details["causes"][1]["field"], "metadata.name");
        assert_eq!(e.code, 422);
    }
}
