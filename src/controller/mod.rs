//! The control side: sources of Kubernetes objects, the pure compiler, and publishing.
//!
//! ```text
//!   manifests (file mode) ─┐
//!                          ├─► Snapshot ─► compile ─► (RouteTable, Report) ─► publish (ArcSwap)
//!   kube reflectors ───────┘
//! ```

pub mod compile;
pub mod file_mode;
pub mod kube_mode;
pub mod lease;
pub mod manifests;
pub mod publish;
pub mod rbac;
pub mod snapshot;
pub mod sources;
pub mod status;

pub use snapshot::Snapshot;

/// What status should say after a compile: the adapter between the compiler's report and the writer.
pub fn status_from_report(report: &compile::Report) -> status::Desired {
    let key = |o: &compile::ObjectRef| (o.namespace.clone(), o.name.clone());
    let routes = report
        .websocket_routes
        .iter()
        .map(|(object, conditions)| {
            let wanted = conditions
                .iter()
                .map(|c| status::DesiredCondition {
                    type_: c.kind.as_str(),
                    status: c.status == compile::ConditionStatus::True,
                    reason: c.reason.as_str().to_string(),
                    message: c.message.clone(),
                })
                .collect();
            (key(object), wanted)
        })
        .collect();
    // Errors, unknown wsgate.dev/ annotations (a misspelt policy is a policy silently off) and
    // ingress-nginx annotations that are not translated.
    let errors = report
        .diagnostics
        .iter()
        .filter(|d| {
            d.severity == compile::Severity::Error
                || matches!(d.reason, compile::Reason::UnknownAnnotation | compile::Reason::UnsupportedAnnotation)
        })
        .map(|d| status::ObjectError {
            kind: d.object.kind.as_str(),
            key: key(&d.object),
            reason: d.reason.as_str().to_string(),
            message: format!("{}: {}", d.field, d.message),
        })
        .collect();
    status::Desired { routes, ingresses: report.ingresses.iter().map(key).collect(), errors }
}
