//! What compile says about the objects it read: diagnostics, and conditions per WebSocketRoute.
//!
//! ```text
//!   Report
//!     ├─ diagnostics        flat, sorted: `wsgate check` output, Kubernetes Events
//!     ├─ websocket_routes   Accepted / ResolvedRefs / Programmed per route: `.status.conditions`
//!     └─ ingresses          Ingresses of our class: `.status.loadBalancer`
//! ```
//!
//! Every condition and diagnostic carries a [`Reason`] from one closed enum (UpperCamelCase, as Gateway
//! API conventions ask) and a message that names the object or value at fault.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// Kinds of objects compile reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ObjectKind {
    Ingress,
    WebSocketRoute,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Ingress => "Ingress",
            ObjectKind::WebSocketRoute => "WebSocketRoute",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A namespaced object, e.g. `WebSocketRoute default/chat`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: ObjectKind, namespace: &str, name: &str) -> ObjectRef {
        ObjectRef { kind, namespace: namespace.to_string(), name: name.to_string() }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// How bad a diagnostic is: any `Error` makes `wsgate check` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// The machine-readable cause of a condition or diagnostic (the `reason` field of a Kubernetes condition
/// or Event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Reason {
    /// Accepted=True: the spec is valid and nothing conflicts with it.
    Accepted,
    /// The spec breaks a rule (bad hostname, path, weight, timeout, missing field…).
    Invalid,
    /// An older object already serves the same host and path (or the default backend).
    Conflicted,
    /// The same host and path appears twice in one object; the first one is used.
    Duplicate,
    /// ResolvedRefs=True: every backend Service and port exists.
    ResolvedRefs,
    /// The referenced Service does not exist in the object's namespace.
    BackendNotFound,
    /// The Service exists but has no such port.
    PortNotFound,
    /// The backend is of a kind wsgate cannot serve (an Ingress `resource` backend, an ExternalName Service).
    UnsupportedBackend,
    /// A TLS Secret reference is unusable: not found, wrong type, missing key, unparsable PEM, or a key
    /// that does not match the certificate (Gateway API's reason for the same problem).
    InvalidCertificateRef,
    /// A TLS host is not among the certificate's DNS names: clients that check names will refuse it.
    CertificateHostMismatch,
    /// A `wsgate.dev/` annotation wsgate does not know (a misspelling, most likely); it is ignored.
    UnknownAnnotation,
    /// An ingress-nginx annotation wsgate does not translate (or does not without `--nginx-compat`).
    UnsupportedAnnotation,
    /// An ingress-nginx annotation translated with a difference, or accepted with no effect.
    TranslatedAnnotation,
    /// An ingress-nginx canary Ingress: which route it joined, or why it serves nothing.
    Canary,
    /// Programmed=True: served, with at least one ready endpoint.
    Programmed,
    /// Served, but no backend with a non-zero weight has a ready endpoint (requests get 503).
    NoReadyEndpoints,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Accepted => "Accepted",
            Reason::Invalid => "Invalid",
            Reason::Conflicted => "Conflicted",
            Reason::Duplicate => "Duplicate",
            Reason::ResolvedRefs => "ResolvedRefs",
            Reason::BackendNotFound => "BackendNotFound",
            Reason::PortNotFound => "PortNotFound",
            Reason::UnsupportedBackend => "UnsupportedBackend",
            Reason::InvalidCertificateRef => "InvalidCertificateRef",
            Reason::CertificateHostMismatch => "CertificateHostMismatch",
            Reason::UnknownAnnotation => "UnknownAnnotation",
            Reason::UnsupportedAnnotation => "UnsupportedAnnotation",
            Reason::TranslatedAnnotation => "TranslatedAnnotation",
            Reason::Canary => "Canary",
            Reason::Programmed => "Programmed",
            Reason::NoReadyEndpoints => "NoReadyEndpoints",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about one field of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub object: ObjectRef,
    pub severity: Severity,
    pub reason: Reason,
    /// Path of the offending field, e.g. `spec.backends[0].service.port`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `WebSocketRoute default/chat: spec.backends[0].service.port: Service default/chat has no port named "ws"`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.field, self.message)
    }
}

/// The three condition types of a WebSocketRoute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ConditionType {
    Accepted,
    ResolvedRefs,
    Programmed,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Accepted => "Accepted",
            ConditionType::ResolvedRefs => "ResolvedRefs",
            ConditionType::Programmed => "Programmed",
        }
    }
}

/// `status` of a condition, spelled as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConditionStatus {
    True,
    False,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value { ConditionStatus::True } else { ConditionStatus::False }
    }
}

/// One condition, without the timestamps the status writer adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: ConditionType,
    pub status: ConditionStatus,
    pub reason: Reason,
    pub message: String,
}

/// The conditions of one WebSocketRoute, in the order Accepted, ResolvedRefs, Programmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteConditions {
    /// `metadata.generation` of the compiled object: the `observedGeneration` of each condition.
    pub observed_generation: Option<i64>,
    pub accepted: Condition,
    pub resolved_refs: Condition,
    pub programmed: Condition,
}

impl RouteConditions {
    pub fn iter(&self) -> impl Iterator<Item = &Condition> {
        [&self.accepted, &self.resolved_refs, &self.programmed].into_iter()
    }
}

/// Everything compile has to say besides the table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Sorted by object, then field.
    pub diagnostics: Vec<Diagnostic>,
    /// Every WebSocketRoute in the snapshot.
    pub websocket_routes: BTreeMap<ObjectRef, RouteConditions>,
    /// Every Ingress of our class, valid or not, sorted.
    pub ingresses: Vec<ObjectRef>,
}

impl Report {
    /// Whether any diagnostic is an error: `wsgate check` exits 1 then.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Warning)
    }

    /// The diagnostics about one object, in report order.
    pub fn diagnostics_for<'r>(&'r self, object: &'r ObjectRef) -> impl Iterator<Item = &'r Diagnostic> {
        self.diagnostics.iter().filter(move |d| &d.object == object)
    }

    /// The conditions of the WebSocketRoute `namespace/name`.
    pub fn route_conditions(&self, namespace: &str, name: &str) -> Option<&RouteConditions> {
        self.websocket_routes.get(&ObjectRef::new(ObjectKind::WebSocketRoute, namespace, name))
    }
}

/// Orders diagnostics by object, then by field with numbers compared by value (`[2]` before `[10]`).
pub(super) fn sort_diagnostics(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        a.object.cmp(&b.object).then_with(|| compare_natural(&a.field, &b.field)).then(a.severity.cmp(&b.severity))
    });
}

/// Compares strings treating each run of ASCII digits as a number.
fn compare_natural(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> impl Iterator<Item = (bool, &str)> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digit = first.is_ascii_digit();
            let end = rest.find(|c: char| c.is_ascii_digit() != digit).unwrap_or(rest.len());
            let (chunk, tail) = rest.split_at(end);
            rest = tail;
            Some((digit, chunk))
        })
    }
    let mut left = chunks(a);
    let mut right = chunks(b);
    loop {
        let ordering = match (left.next(), right.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some((true, x)), Some((true, y))) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            (Some((_, x)), Some((_, y))) => x.cmp(y),
        };
        if ordering.is_ne() {
            return ordering;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_reads_object_field_message() {
        let diagnostic = Diagnostic {
            object: ObjectRef::new(ObjectKind::WebSocketRoute, "default", "chat"),
            severity: Severity::Error,
            reason: Reason::PortNotFound,
            field: "spec.backends[0].service.port".to_string(),
            message: r#"Service default/chat has no port named "ws""#.to_string(),
        };
        assert_eq!(
            diagnostic.to_string(),
            r#"WebSocketRoute default/chat: spec.backends[0].service.port: Service default/chat has no port named "ws""#
        );
    }

    #[test]
    fn fields_sort_by_index_value() {
        let mut fields = vec!["spec.backends[10].weight", "spec.backends[2].weight", "spec.backends[2]", "spec.path"];
        fields.sort_by(|a, b| compare_natural(a, b));
        assert_eq!(fields, ["spec.backends[2]", "spec.backends[2].weight", "spec.backends[10].weight", "spec.path"]);
    }
}
