//! WebSocketRoute (wsgate.dev/v1alpha1) → candidate routes and conditions.
//!
//! ```text
//!   spec.hostnames[k] (or every host) × spec.path (default Prefix /) ─► one candidate per hostname
//!   spec.backends[b]  ─► weighted backends (weight default 1, at most 1000000)
//!   or spec.rules[i]: hostnames × rules[i].matches[j] (path + header and query conditions; none:
//!                     Prefix /) ─► one candidate each, with rules[i].backends
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
use super::policy::{FieldSite, PolicySpec, compile_policy, is_token};
use super::tls::TlsRequest;
use super::{BackendNote, Candidate, Claimant, Diagnostic, ObjectKind, ObjectReport, Outcome, Reason};
use crate::crd::{BackendRef, PathMatchSpec, PathMatchType, RouteMatch, ValueMatchType, WebSocketRoute};
use crate::routes::{
    Backend, Conditions, HeaderCondition, HostMatch, PathMatch, Pattern, QueryCondition, Route, Source, SourceKind,
    ValueMatch,
};

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

    // The short form (`path` + `backends`) is one rule; the long form lists them.
    let mut rules: Vec<Rule> = Vec::new();
    if !spec.rules.is_empty() {
        if !spec.backends.is_empty() {
            let message = "set either backends (with an optional path) or rules, not both".to_string();
            report.invalid("spec.backends".to_string(), message);
        }
        if spec.path.is_some() {
            let message = "path is not allowed with rules: write it in rules[].matches[].path".to_string();
            report.invalid("spec.path".to_string(), message);
        }
        for (i, rule) in spec.rules.iter().enumerate() {
            let field = format!("spec.rules[{i}]");
            let mut matches = Vec::new();
            for (j, m) in rule.matches.iter().enumerate() {
                let field = format!("{field}.matches[{j}]");
                if let Some(matcher) = route_match(&mut report, m, &field) {
                    matches.push((matcher, field));
                }
            }
            if rule.matches.is_empty() {
                matches.push(((PathMatch::prefix("/"), Conditions::default()), field.clone()));
            }
            if rule.backends.is_empty() {
                report.invalid(format!("{field}.backends"), "at least one backend is required".to_string());
            }
            let (backends, notes) = resolve_backends(&mut report, &rule.backends, &format!("{field}.backends"));
            rules.push(Rule { matches, backends, notes });
        }
    } else {
        let path = match &spec.path {
            None => Some(PathMatch::prefix("/")),
            Some(path) => path_match(&mut report, path, "spec.path"),
        };
        if spec.backends.is_empty() {
            report.invalid("spec.backends".to_string(), "at least one backend is required".to_string());
        }
        let (backends, notes) = resolve_backends(&mut report, &spec.backends, "spec.backends");
        // why no field: a short-form candidate is named by its hostname's field, as before rules existed.
        let matches = path.map(|path| ((path, Conditions::default()), String::new())).into_iter().collect();
        rules.push(Rule { matches, backends, notes });
    }

    let fields = PolicySpec::of_route(spec);
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

    if report.invalid.is_empty() {
        let id: Arc<str> = format!("websocketroute/{}/{}", object.namespace, object.name).into();
        let source =
            Source { kind: SourceKind::WebSocketRoute, namespace: object.namespace.clone(), name: object.name.clone() };
        for (host, host_field) in &hosts {
            for rule in &rules {
                for ((path, conditions), match_field) in &rule.matches {
                    claimant.routes.push(Candidate {
                        raw_path: None,
                        route: Route {
                            id: id.clone(),
                            source: source.clone(),
                            host: host.clone(),
                            path: path.clone(),
                            conditions: conditions.clone(),
                            backends: rule.backends.clone(),
                            policy: policy.clone(),
                        },
                        field: if match_field.is_empty() { host_field.clone() } else { match_field.clone() },
                        backends: rule.notes.clone(),
                    });
                }
            }
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

/// One rule of a route: its matchers (each with the field it was written at) and its backends.
struct Rule {
    matches: Vec<((PathMatch, Conditions), String)>,
    backends: Vec<Backend>,
    notes: Vec<BackendNote>,
}

/// Resolves a list of weighted backends written at `field` (`spec.backends`, `spec.rules[0].backends`).
fn resolve_backends(
    report: &mut ObjectReport<'_, '_>,
    list: &[BackendRef],
    field: &str,
) -> (Vec<Backend>, Vec<BackendNote>) {
    let mut backends = Vec::new();
    let mut notes = Vec::new();
    for (b, backend) in list.iter().enumerate() {
        let field = format!("{field}[{b}]");
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
    (backends, notes)
}

/// A path as written at `field` (`spec.path`, `spec.rules[0].matches[1].path`).
fn path_match(report: &mut ObjectReport<'_, '_>, path: &PathMatchSpec, field: &str) -> Option<PathMatch> {
    let value_field = format!("{field}.value");
    match path.kind {
        PathMatchType::RegularExpression => match PathMatch::regex(&path.value) {
            Ok(path) => Some(path),
            Err(error) => {
                report.invalid(value_field, format!("{:?} is not a valid regular expression: {error}", path.value));
                None
            }
        },
        kind => match check_path(&path.value) {
            Ok(()) if kind == PathMatchType::Exact => Some(PathMatch::exact(&path.value)),
            Ok(()) => Some(PathMatch::prefix(&path.value)),
            Err(message) => {
                report.invalid(value_field, message);
                None
            }
        },
    }
}

/// One entry of `rules[].matches`: its path and its header and query conditions.
fn route_match(report: &mut ObjectReport<'_, '_>, m: &RouteMatch, field: &str) -> Option<(PathMatch, Conditions)> {
    let path = match &m.path {
        None => Some(PathMatch::prefix("/")),
        Some(path) => path_match(report, path, &format!("{field}.path")),
    };
    let mut ok = path.is_some();
    let value = |report: &mut ObjectReport<'_, '_>, kind: ValueMatchType, text: &str, field: String| match kind {
        ValueMatchType::Exact => Some(ValueMatch::Exact(text.to_string())),
        ValueMatchType::RegularExpression => match Pattern::new(text) {
            Ok(pattern) => Some(ValueMatch::RegularExpression(pattern)),
            Err(error) => {
                report.invalid(field, format!("{text:?} is not a valid regular expression: {error}"));
                None
            }
        },
    };
    let mut conditions = Conditions::default();
    for (k, header) in m.headers.iter().enumerate() {
        let field = format!("{field}.headers[{k}]");
        let name = header.name.to_ascii_lowercase();
        if !is_token(&header.name) {
            let message = format!("{:?} is not a valid header name (an HTTP token)", header.name);
            report.invalid(format!("{field}.name"), message);
            ok = false;
        } else if conditions.headers.iter().any(|h| h.name == name) {
            // Gateway API's rule: only the first entry for a name counts; wsgate refuses the ambiguity.
            report.invalid(format!("{field}.name"), format!("header {:?} is matched twice", header.name));
            ok = false;
        } else if let Some(value) = value(report, header.kind, &header.value, format!("{field}.value")) {
            conditions.headers.push(HeaderCondition { name, value });
        } else {
            ok = false;
        }
    }
    for (k, query) in m.query_params.iter().enumerate() {
        let field = format!("{field}.queryParams[{k}]");
        if query.name.is_empty() {
            report.invalid(format!("{field}.name"), "a query parameter name is required".to_string());
            ok = false;
        } else if conditions.query.iter().any(|q| q.name == query.name) {
            report.invalid(format!("{field}.name"), format!("query parameter {:?} is matched twice", query.name));
            ok = false;
        } else if let Some(value) = value(report, query.kind, &query.value, format!("{field}.value")) {
            conditions.query.push(QueryCondition { name: query.name.clone(), value });
        } else {
            ok = false;
        }
    }
    path.filter(|_| ok).map(|path| (path, conditions))
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
