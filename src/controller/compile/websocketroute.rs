//! WebSocketRoute (wsgate.dev/v1alpha1) → candidate routes and conditions.
//!
//! ```text
//!   spec.hostnames[k] (or every host) × spec.path (default Prefix /) ─► one candidate per hostname
//!   spec.backends[b]  ─► weighted backends (weight default 1, at most 1000000)
//!   spec.timeouts, spec.loadBalancing, spec.allowedOrigins, spec.subprotocols, spec.limits
//!                     ─► Policy (policy.rs, shared with the wsgate.dev/ Ingress annotations)
//!   spec.tls.secretName ─► a TLS request for the hostnames (a bad Secret: ResolvedRefs=False)
//!   spec.tls.redirect   ─► plain HTTP answered with 308 to https:// (hostnames with a usable certificate)
//! ```
//!
//! Any invalid field makes the whole route unserved (Accepted=False, reason Invalid); backends are
//! still resolved so ResolvedRefs tells the whole story in one pass.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::backends::{PortRef, ServiceIndex};
use super::conditions::{Condition, ConditionType, RouteConditions};
use super::matchers::{check_path, parse_hostname};
use super::policy::{FieldSite, PolicySpec, compile_policy};
use super::tls::TlsRequest;
use super::{Candidate, Claimant, Diagnostic, ObjectKind, ObjectReport, Outcome, Reason};
use crate::crd::{PathMatchType, WebSocketRoute};
use crate::routes::{HostMatch, PathMatch, Route, Source, SourceKind};

/// Largest weight a backend may have.
const MAX_WEIGHT: u32 = 1_000_000;

/// What a route's conditions are computed from, besides the claim outcome.
#[derive(Debug, Default)]
pub(super) struct Findings {
    generation: Option<i64>,
    /// Messages of invalid fields.
    invalid: Vec<String>,
    /// Reasons and messages of unresolved backend references.
    unresolved: Vec<(Reason, String)>,
    /// Whether the route asks for TLS.
    tls: bool,
}

/// Turns one WebSocketRoute into candidate routes (none when its spec is invalid).
pub(super) fn compile_route(
    route: &WebSocketRoute,
    index: &ServiceIndex<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Claimant {
    let mut claimant = Claimant::new(ObjectKind::WebSocketRoute, &route.metadata);
    let object = claimant.object.clone();
    let spec = &route.spec;
    let mut report = ObjectReport::new(&object, index, diagnostics);

    let mut hosts = Vec::new();
    for (k, hostname) in spec.hostnames.iter().enumerate() {
        match parse_hostname(hostname) {
            Ok(host) => hosts.push((host, format!("spec.hostnames[{k}]"))),
            Err(message) => report.invalid(format!("spec.hostnames[{k}]"), message),
        }
    }
    if spec.hostnames.is_empty() {
        hosts.push((HostMatch::Any, "spec.path".to_string()));
    }

    let path = match &spec.path {
        None => Some(PathMatch::prefix("/")),
        Some(path) => match check_path(&path.value) {
            Ok(()) => Some(match path.kind {
                PathMatchType::Exact => PathMatch::exact(&path.value),
                PathMatchType::Prefix => PathMatch::prefix(&path.value),
            }),
            Err(message) => {
                report.invalid("spec.path.value".to_string(), message);
                None
            }
        },
    };

    if spec.backends.is_empty() {
        report.invalid("spec.backends".to_string(), "at least one backend is required".to_string());
    }
    let mut backends = Vec::new();
    let mut notes = Vec::new();
    for (b, backend) in spec.backends.iter().enumerate() {
        let field = format!("spec.backends[{b}]");
        let weight = backend.weight.unwrap_or(1);
        if weight > MAX_WEIGHT {
            report.invalid(format!("{field}.weight"), format!("weight {weight} is above the maximum {MAX_WEIGHT}"));
        }
        let name = backend.service.name.as_str();
        if name.is_empty() {
            report.invalid(format!("{field}.service.name"), "service name is required".to_string());
        }
        let port_field = format!("{field}.service.port");
        let port = match &backend.service.port {
            IntOrString::Int(n) if (1..=65535).contains(n) => Some(PortRef::Number(*n)),
            IntOrString::Int(n) => {
                report.invalid(port_field.clone(), format!("port number {n} is out of range 1-65535"));
                None
            }
            IntOrString::String(s) if !s.is_empty() => Some(PortRef::Name(s.clone())),
            IntOrString::String(_) => {
                report.invalid(port_field.clone(), "service port is required".to_string());
                None
            }
        };
        if let Some(port) = port.filter(|_| !name.is_empty()) {
            let (backend, note) = report.resolve(name, &port, weight, &format!("{field}.service"), &port_field);
            backends.push(backend);
            notes.push(note);
        }
    }

    let fields = PolicySpec {
        timeouts: spec.timeouts.clone().unwrap_or_default(),
        load_balancing: spec.load_balancing.clone(),
        allowed_origins: spec.allowed_origins.clone(),
        allow_missing_origin: spec.allow_missing_origin,
        subprotocols: spec.subprotocols.clone(),
        limits: spec.limits.clone(),
    };
    let mut problems = Vec::new();
    let policy = compile_policy(&fields, &mut problems);
    for (field, message) in problems {
        report.invalid(FieldSite::Spec.name(&field), message);
    }

    if let Some(tls) = &spec.tls {
        let field = "spec.tls.secretName".to_string();
        let tls_hosts: Vec<(HostMatch, String)> =
            hosts.iter().filter(|(host, _)| *host != HostMatch::Any).cloned().collect();
        if tls.secret_name.is_empty() {
            report.invalid(field, "secretName is required".to_string());
        } else if tls_hosts.is_empty() {
            let message = "spec.tls needs spec.hostnames: a certificate is chosen by the SNI name the client \
                           sends, so it is never served"
                .to_string();
            report.warning(Reason::Invalid, "spec.tls".to_string(), message);
        } else {
            claimant.tls.push(TlsRequest { secret: tls.secret_name.clone(), field, hosts: tls_hosts });
            if tls.redirect {
                claimant.https_redirect = Some("spec.tls.redirect".to_string());
            }
        }
    }

    if let Some(path) = path.filter(|_| report.invalid.is_empty()) {
        let id: Arc<str> = format!("{}/{}", object.namespace, object.name).into();
        let source =
            Source { kind: SourceKind::WebSocketRoute, namespace: object.namespace.clone(), name: object.name.clone() };
        for (host, field) in hosts {
            claimant.routes.push(Candidate {
                route: Route {
                    id: id.clone(),
                    source: source.clone(),
                    host,
                    path: path.clone(),
                    backends: backends.clone(),
                    policy: policy.clone(),
                },
                field,
                backends: notes.clone(),
            });
        }
    }
    let ObjectReport { invalid, unresolved, .. } = report;
    let tls = !claimant.tls.is_empty();
    claimant.route_findings = Some(Findings { generation: route.metadata.generation, invalid, unresolved, tls });
    if !claimant.route_findings.as_ref().is_some_and(|f| f.invalid.is_empty()) {
        // An unserved route asks for no certificate.
        claimant.tls.clear();
    }
    claimant
}

/// Accepted, ResolvedRefs and Programmed for one route, given what compile, claim and the TLS step found.
pub(super) fn conditions(
    findings: &Findings,
    candidates: &[Candidate],
    outcome: &Outcome,
    tls_problems: &[(Reason, String)],
) -> RouteConditions {
    let condition = |kind, ok: bool, reason, message: String| Condition { kind, status: ok.into(), reason, message };
    let accepted = if !findings.invalid.is_empty() {
        condition(ConditionType::Accepted, false, Reason::Invalid, findings.invalid.join("; "))
    } else if !outcome.conflicts.is_empty() {
        condition(ConditionType::Accepted, false, Reason::Conflicted, outcome.conflicts.join("; "))
    } else {
        condition(
            ConditionType::Accepted,
            true,
            Reason::Accepted,
            "Route is valid and conflicts with no other route".into(),
        )
    };
    let unresolved: Vec<&(Reason, String)> = findings.unresolved.iter().chain(tls_problems).collect();
    let resolved_refs = match unresolved.first() {
        None if findings.tls => condition(
            ConditionType::ResolvedRefs,
            true,
            Reason::ResolvedRefs,
            "All backend Services and ports exist, and the TLS Secret is valid".into(),
        ),
        None => condition(
            ConditionType::ResolvedRefs,
            true,
            Reason::ResolvedRefs,
            "All backend Services and ports exist".into(),
        ),
        Some((reason, _)) => {
            let messages: Vec<&str> = unresolved.iter().map(|(_, m)| m.as_str()).collect();
            condition(ConditionType::ResolvedRefs, false, *reason, messages.join("; "))
        }
    };
    let served = || outcome.served.iter().map(|&i| &candidates[i].route);
    let programmed = if !findings.invalid.is_empty() {
        condition(
            ConditionType::Programmed,
            false,
            Reason::Invalid,
            "Route is not served because its spec is invalid".into(),
        )
    } else if outcome.served.is_empty() {
        let message = "Route is not served: older routes already serve all of its hosts and paths".into();
        condition(ConditionType::Programmed, false, Reason::Conflicted, message)
    } else if served().any(Route::has_ready_endpoint) {
        condition(ConditionType::Programmed, true, Reason::Programmed, "Route is served and has ready endpoints".into())
    } else {
        let message = "Route is served, but no backend with a non-zero weight has a ready endpoint: requests get 503";
        condition(ConditionType::Programmed, false, Reason::NoReadyEndpoints, message.into())
    };
    RouteConditions { observed_generation: findings.generation, accepted, resolved_refs, programmed }
}
