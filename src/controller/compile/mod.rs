//! Snapshot → RouteTable + Report: the pure compiler.
//!
//! ```text
//!   Snapshot ─┬─ Ingresses of our class ─► ingress.rs ────────┐  candidates (host, path, backends)
//!             ├─ WebSocketRoutes ────────► websocketroute.rs ─┤  + diagnostics
//!             ├─ Services, EndpointSlices ► backends.rs ──────┤  + TLS requests (Secret, hosts)
//!             └─ Secrets (kubernetes.io/tls) ► tls.rs ────────┘
//!                                   │
//!            claim: oldest object first; later claims on the same host + path (or the same TLS
//!            host with another Secret) are Conflicted
//!                                   │
//!        RouteTable::new(winners).with_tls(SNI map)  +  Report (diagnostics, conditions)
//! ```
//!
//! No I/O, no clock, no environment: the same snapshot gives the same table and report whatever the
//! order of its objects. Mistakes in objects never fail the compile: each becomes a [`Diagnostic`]
//! naming the object and field, the faulty part is dropped, and everything else is still served.

mod backends;
pub mod conditions;
pub mod duration;
mod ingress;
mod matchers;
pub mod migrate;
pub mod nginx;
pub mod policy;
pub mod tls;
mod websocketroute;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

pub use conditions::{
    Condition, ConditionStatus, ConditionType, Diagnostic, ObjectKind, ObjectRef, Reason, Report, RouteConditions,
    Severity,
};
pub use duration::{DurationError, format_duration, parse_duration};

use self::backends::{PortRef, ProblemSite, ServiceIndex};
use crate::controller::Snapshot;
use crate::routes::{Backend, Conditions, HostMatch, PathMatch, Route, RouteTable};

/// The `spec.controller` value of IngressClasses served by wsgate.
pub const CONTROLLER_NAME: &str = "wsgate.dev/ingress-controller";

/// Choices the compiler cannot read from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// Ingresses with this `spec.ingressClassName` (or legacy `kubernetes.io/ingress.class` annotation) are ours.
    pub ingress_class: String,
    /// Translate `nginx.ingress.kubernetes.io/` annotations (see `nginx.rs`); without it they are
    /// reported as ignored.
    pub nginx_compat: bool,
    /// Other controllers' IngressClass names whose Ingresses are served too (`nginx`, for a
    /// side-by-side migration); their status is not written.
    pub watch_ingress_classes: Vec<String>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { ingress_class: "wsgate".to_string(), nginx_compat: false, watch_ingress_classes: Vec::new() }
    }
}

/// The result of a compile: the table to serve and what to tell users about their objects.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub table: RouteTable,
    pub report: Report,
}

/// Compiles a snapshot. Pure and deterministic; never fails (problems are in `report`).
pub fn compile(snapshot: &Snapshot, options: &CompileOptions) -> Compiled {
    let index = ServiceIndex::new(snapshot);
    let mut diagnostics = Vec::new();
    let mut claimants = Vec::new();
    let mut ingresses = Vec::new();

    let classes = ingress::ClassSelector::new(&snapshot.ingress_classes, options);
    let mut canaries = Vec::new();
    for object in &snapshot.ingresses {
        let selected = classes.selects(object);
        if selected != ingress::Selected::No {
            let claimant = ingress::compile_ingress(object, &index, options.nginx_compat, &mut diagnostics);
            if selected == ingress::Selected::Ours {
                ingresses.push(claimant.object.clone());
            }
            let canary = if options.nginx_compat { nginx::canary(object.metadata.annotations.as_ref()) } else { None };
            match canary {
                Some(canary) => {
                    // A canary's own annotations are ignored (the main Ingress's apply): say that once.
                    let before = diagnostics.len();
                    diagnostics.retain(|d: &Diagnostic| {
                        d.object != claimant.object
                            || !matches!(d.reason, Reason::TranslatedAnnotation | Reason::UnsupportedAnnotation)
                    });
                    if diagnostics.len() < before {
                        diagnostics.push(Diagnostic {
                            object: claimant.object.clone(),
                            severity: Severity::Warning,
                            reason: Reason::Canary,
                            field: "metadata.annotations".to_string(),
                            message: "a canary Ingress's annotations other than canary-* are ignored, as in \
                                      ingress-nginx: the main Ingress's policy applies"
                                .to_string(),
                        });
                    }
                    canaries.push((claimant, canary))
                }
                None => claimants.push(claimant),
            }
        }
    }
    for object in &snapshot.websocket_routes {
        claimants.push(websocketroute::compile_route(object, &index, &mut diagnostics));
    }
    // Oldest first: the order in which objects claim hosts and paths.
    claimants.sort_by(|a, b| a.age.cmp(&b.age));
    canaries.sort_by(|a, b| a.0.age.cmp(&b.0.age));
    for (canary, settings) in canaries {
        ingress::merge_canary(&mut claimants, canary, settings, &mut diagnostics);
    }
    if options.nginx_compat {
        ingress::regex_hosts(&mut claimants, &mut diagnostics);
    }

    let outcomes = claim(&claimants, &mut diagnostics);
    warn_no_ready_endpoints(&claimants, &outcomes, &mut diagnostics);
    let (tls, (tls_problems, usable_hosts)) = tls::assign(&claimants, &snapshot.secrets, &mut diagnostics);
    warn_redirect_without_certificate(&claimants, &usable_hosts, &mut diagnostics);

    let mut websocket_routes = BTreeMap::new();
    for ((claimant, outcome), tls_problems) in claimants.iter().zip(&outcomes).zip(&tls_problems) {
        if let Some(findings) = &claimant.route_findings {
            let conditions = websocketroute::conditions(findings, &claimant.routes, outcome, tls_problems);
            websocket_routes.insert(claimant.object.clone(), conditions);
        }
    }

    let mut routes = Vec::new();
    let mut default_backend = None;
    for ((claimant, outcome), usable_hosts) in claimants.iter().zip(&outcomes).zip(&usable_hosts) {
        routes.extend(outcome.served.iter().map(|&i| {
            let mut route = claimant.routes[i].route.clone();
            route.policy.https_redirect = claimant.https_redirect.is_some() && usable_hosts.contains(&route.host);
            route
        }));
        if outcome.serves_default_backend {
            default_backend = claimant.default_backend.as_ref().map(|c| c.route.clone());
        }
    }

    conditions::sort_diagnostics(&mut diagnostics);
    ingresses.sort();
    Compiled {
        table: RouteTable::new(routes, default_backend).with_tls(tls),
        report: Report { diagnostics, websocket_routes, ingresses },
    }
}

/// An object that asks for the HTTPS redirect but has no usable certificate for any of its hosts is
/// told so: its routes stay on plain HTTP (a redirect to a host without a certificate would fail).
fn warn_redirect_without_certificate(
    claimants: &[Claimant],
    usable_hosts: &[Vec<HostMatch>],
    diagnostics: &mut Vec<Diagnostic>,
) {
    for (claimant, usable) in claimants.iter().zip(usable_hosts) {
        let Some(field) = &claimant.https_redirect else { continue };
        if usable.is_empty() {
            diagnostics.push(Diagnostic {
                object: claimant.object.clone(),
                severity: Severity::Warning,
                reason: Reason::InvalidCertificateRef,
                field: field.clone(),
                message: "the HTTPS redirect needs a usable TLS certificate for the route's hosts; none is \
                          served, so requests stay on plain HTTP"
                    .to_string(),
            });
        }
    }
}

/// Which object wins a tie: older first, then namespace, then name, then kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Age {
    /// `None` (no creationTimestamp) sorts first: treated as oldest.
    created: Option<Time>,
    namespace: String,
    name: String,
    kind: ObjectKind,
}

/// A route an object asks for, and the field it came from.
#[derive(Debug, Clone)]
struct Candidate {
    route: Route,
    /// An Ingress path as written (for ingress-nginx's regular-expression paths, `--nginx-compat`).
    raw_path: Option<String>,
    /// Where the host + path was written, e.g. `spec.rules[0].http.paths[1]` or `spec.hostnames[0]`.
    field: String,
    /// One per `route.backends` entry.
    backends: Vec<BackendNote>,
}

/// Where a backend was written and whether its Service and port were found.
#[derive(Debug, Clone)]
struct BackendNote {
    field: String,
    resolved: bool,
    /// `Service default/chat port 80` or `Service default/chat port "ws"`, for messages.
    target: String,
}

/// Everything one object asks for.
#[derive(Debug)]
struct Claimant {
    object: ObjectRef,
    age: Age,
    routes: Vec<Candidate>,
    default_backend: Option<Candidate>,
    /// Set for WebSocketRoutes: what their conditions are computed from.
    route_findings: Option<websocketroute::Findings>,
    /// Certificates the object asks to serve.
    tls: Vec<tls::TlsRequest>,
    /// The field asking for plain HTTP to be redirected to HTTPS, when the object asks for it.
    https_redirect: Option<String>,
    /// ingress-nginx's `use-regex` or `rewrite-target` (`--nginx-compat`): every Ingress path of this
    /// object's hosts becomes a case-insensitive prefix regular expression.
    regex_paths: bool,
}

impl Claimant {
    fn new(kind: ObjectKind, metadata: &ObjectMeta) -> Claimant {
        let namespace = metadata.namespace.clone().unwrap_or_default();
        let name = metadata.name.clone().unwrap_or_default();
        Claimant {
            object: ObjectRef::new(kind, &namespace, &name),
            age: Age { created: metadata.creation_timestamp.clone(), namespace, name, kind },
            routes: Vec::new(),
            default_backend: None,
            route_findings: None,
            tls: Vec::new(),
            https_redirect: None,
            regex_paths: false,
        }
    }
}

/// What one object got out of the claim step.
#[derive(Debug, Default)]
struct Outcome {
    /// Indexes into `Claimant::routes` of the routes in the table.
    served: Vec<usize>,
    serves_default_backend: bool,
    /// Messages of the claims lost to older objects.
    conflicts: Vec<String>,
}

/// Gives each host + path (and the default backend) to the first claimant asking for it. Claimants come
/// oldest first; a later claim from another object is Conflicted, one from the same object a Duplicate.
fn claim(claimants: &[Claimant], diagnostics: &mut Vec<Diagnostic>) -> Vec<Outcome> {
    // why allowed: a PathMatch's regex has an internal cache, but PathMatch hashes and compares by
    // its source text only, which never changes.
    #[allow(clippy::mutable_key_type)]
    let mut owners: HashMap<(&HostMatch, &PathMatch, &Conditions), (usize, &str)> = HashMap::new();
    let mut default_owner: Option<usize> = None;
    let mut outcomes: Vec<Outcome> = claimants.iter().map(|_| Outcome::default()).collect();
    for (at, claimant) in claimants.iter().enumerate() {
        for (i, candidate) in claimant.routes.iter().enumerate() {
            let route = &candidate.route;
            let key = (&route.host, &route.path, &route.conditions);
            let matcher = matchers::describe(&route.host, &route.path, &route.conditions);
            match owners.get(&key) {
                None => {
                    owners.insert(key, (at, candidate.field.as_str()));
                    outcomes[at].served.push(i);
                }
                Some(&(owner, first_field)) if owner == at => diagnostics.push(Diagnostic {
                    object: claimant.object.clone(),
                    severity: Severity::Warning,
                    reason: Reason::Duplicate,
                    field: candidate.field.clone(),
                    message: format!("{matcher} is already defined at {first_field}; this one is ignored"),
                }),
                Some(&(owner, _)) => {
                    let message = format!("{matcher} is already served by {}", precedence(&claimants[owner], claimant));
                    conflicted(&mut outcomes[at], diagnostics, claimant, &candidate.field, message);
                }
            }
        }
        if let Some(candidate) = &claimant.default_backend {
            match default_owner {
                None => {
                    default_owner = Some(at);
                    outcomes[at].serves_default_backend = true;
                }
                Some(owner) => {
                    let message =
                        format!("the default backend is already set by {}", precedence(&claimants[owner], claimant));
                    conflicted(&mut outcomes[at], diagnostics, claimant, &candidate.field, message);
                }
            }
        }
    }
    outcomes
}

/// Records a claim lost to an older object: on the loser's outcome and as an error diagnostic.
fn conflicted(
    outcome: &mut Outcome,
    diagnostics: &mut Vec<Diagnostic>,
    claimant: &Claimant,
    field: &str,
    message: String,
) {
    outcome.conflicts.push(message.clone());
    diagnostics.push(Diagnostic {
        object: claimant.object.clone(),
        severity: Severity::Error,
        reason: Reason::Conflicted,
        field: field.to_string(),
        message,
    });
}

/// `Ingress default/old, which is older` (or `…, which sorts first by namespace and name`).
fn precedence(winner: &Claimant, loser: &Claimant) -> String {
    let why = match (&winner.age.created, &loser.age.created) {
        (Some(w), Some(l)) if w < l => "which is older",
        (None, Some(_)) => "which is older (it has no creationTimestamp)",
        (None, None) => "which sorts first by namespace, name and kind (neither has a creationTimestamp)",
        _ => "which was created at the same time and sorts first by namespace, name and kind",
    };
    format!("{}, {why}", winner.object)
}

/// One warning per served backend whose Service resolved but has no ready endpoint.
fn warn_no_ready_endpoints(claimants: &[Claimant], outcomes: &[Outcome], diagnostics: &mut Vec<Diagnostic>) {
    for (claimant, outcome) in claimants.iter().zip(outcomes) {
        let served = outcome.served.iter().map(|&i| &claimant.routes[i]);
        let default = claimant.default_backend.iter().filter(|_| outcome.serves_default_backend);
        let mut warned = BTreeSet::new();
        for candidate in served.chain(default) {
            for (backend, note) in candidate.route.backends.iter().zip(&candidate.backends) {
                if note.resolved && backend.weight > 0 && backend.endpoints.is_empty() && warned.insert(&backend.name) {
                    diagnostics.push(Diagnostic {
                        object: claimant.object.clone(),
                        severity: Severity::Warning,
                        reason: Reason::NoReadyEndpoints,
                        field: note.field.clone(),
                        message: format!("{} has no ready endpoints", note.target),
                    });
                }
            }
        }
    }
}

/// The findings about one object while it is compiled: its diagnostics, plus what its conditions need.
/// It also resolves the object's backends, reporting each unresolved reference once.
struct ObjectReport<'c, 's> {
    object: &'c ObjectRef,
    index: &'c ServiceIndex<'s>,
    diagnostics: &'c mut Vec<Diagnostic>,
    /// Backend names already reported as unresolved.
    reported: BTreeSet<String>,
    /// Messages of invalid fields, in order, for Accepted.
    invalid: Vec<String>,
    /// Reasons and messages of unresolved references, in order, for ResolvedRefs.
    unresolved: Vec<(Reason, String)>,
}

impl<'c, 's> ObjectReport<'c, 's> {
    fn new(object: &'c ObjectRef, index: &'c ServiceIndex<'s>, diagnostics: &'c mut Vec<Diagnostic>) -> Self {
        ObjectReport {
            object,
            index,
            diagnostics,
            reported: BTreeSet::new(),
            invalid: Vec::new(),
            unresolved: Vec::new(),
        }
    }

    /// `field` names the `service` block of the reference (`….service`); `port_field` its port field.
    fn resolve(
        &mut self,
        service: &str,
        port: &PortRef,
        weight: u32,
        field: &str,
        port_field: &str,
    ) -> (Backend, BackendNote) {
        let resolution = self.index.resolve(&self.object.namespace, service, port, weight);
        let resolved = resolution.problem.is_none();
        if let Some(problem) = resolution.problem
            && self.reported.insert(resolution.backend.name.clone())
        {
            let field = match problem.site {
                ProblemSite::Service => format!("{field}.name"),
                ProblemSite::Port => port_field.to_string(),
            };
            self.unresolved.push((problem.reason, problem.message.clone()));
            self.diagnostics.push(Diagnostic {
                object: self.object.clone(),
                severity: Severity::Error,
                reason: problem.reason,
                field,
                message: problem.message,
            });
        }
        let namespace = &self.object.namespace;
        let target = match port {
            PortRef::Number(n) => format!("Service {namespace}/{service} port {n}"),
            PortRef::Name(name) => format!("Service {namespace}/{service} port {name:?}"),
        };
        (resolution.backend, BackendNote { field: field.to_string(), resolved, target })
    }

    /// Records an invalid field.
    fn invalid(&mut self, field: String, message: String) {
        self.invalid.push(message.clone());
        self.error(Reason::Invalid, field, message);
    }

    /// Records a backend wsgate cannot serve, found before resolution (an Ingress resource backend).
    fn unsupported(&mut self, field: String, message: String) {
        self.unresolved.push((Reason::UnsupportedBackend, message.clone()));
        self.error(Reason::UnsupportedBackend, field, message);
    }

    fn error(&mut self, reason: Reason, field: String, message: String) {
        self.push(Severity::Error, reason, field, message);
    }

    /// Records something the user should fix that changes nothing in what is served.
    fn warning(&mut self, reason: Reason, field: String, message: String) {
        self.push(Severity::Warning, reason, field, message);
    }

    fn push(&mut self, severity: Severity, reason: Reason, field: String, message: String) {
        self.diagnostics.push(Diagnostic { object: self.object.clone(), severity, reason, field, message });
    }
}
