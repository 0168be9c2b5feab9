//! Ingress (networking.k8s.io/v1) → candidate routes, following the Ingress API's semantics.
//!
//! ```text
//!   spec.defaultBackend             ─► the table's default backend
//!   spec.rules[i].host              ─► exact host, *.wildcard (one label), or every host when absent
//!     http.paths[j].pathType, path  ─► Exact | Prefix (ImplementationSpecific is treated as Prefix)
//!     http.paths[j].backend.service ─► one backend, weight 1
//!   spec.tls[t].secretName, hosts   ─► a TLS request (see `tls.rs`); empty hosts: every rule's host
//!   wsgate.dev/ssl-redirect: "true" ─► plain HTTP answered with 308 to https:// (hosts with a certificate)
//!   wsgate.dev/<policy> annotations ─► the Policy of every route (policy.rs, the same checks as the
//!                                      WebSocketRoute fields they stand for)
//! ```
//!
//! Which Ingresses are ours is decided by [`ClassSelector`]. A faulty path, rule host or backend drops
//! that path or rule only; a faulty `spec.tls` entry only loses its certificate. A policy annotation
//! with a bad value drops the whole Ingress (a policy must not be silently off); an unknown
//! `wsgate.dev/` annotation is a warning and changes nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

use super::backends::{PortRef, ServiceIndex};
use super::matchers::{check_path, parse_hostname};
use super::nginx;
use super::policy::{self, FieldSite};
use super::tls::TlsRequest;
use super::{
    BackendNote, CONTROLLER_NAME, Candidate, Claimant, CompileOptions, Diagnostic, ObjectKind, ObjectReport, Reason,
    Severity,
};
use crate::routes::{
    Backend, Conditions, HashOn, HashPolicy, HeaderCondition, HostMatch, LoadBalancing, PathKind, PathMatch,
    PathRewrite, Pattern, Policy, Route, Source, SourceKind, ValueMatch,
};

/// Legacy annotation naming an Ingress's class, from before `spec.ingressClassName`.
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Annotation asking for plain-HTTP requests to be redirected to HTTPS: `"true"` or `"false"`.
pub(super) const SSL_REDIRECT_ANNOTATION: &str = "wsgate.dev/ssl-redirect";
/// Annotation marking an IngressClass as the cluster default.
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Decides whether an Ingress belongs to this controller.
///
/// ```text
///   spec.ingressClassName set ─► names an IngressClass? ours iff its spec.controller is ours
///                                 no such IngressClass  ─► ours iff it is the configured class name
///   else kubernetes.io/ingress.class (deprecated) ─► the same test on its value
///   else ─► ours iff an IngressClass of ours carries is-default-class: "true"
/// ```
///
/// why the IngressClass decides over the configured name: `ingressClassName` is a reference to an
/// IngressClass, and that object's `spec.controller` says which controller implements it; the name
/// alone is only the fallback for clusters (and file mode) without IngressClass objects.
pub(super) struct ClassSelector<'a> {
    class: &'a str,
    /// Names of IngressClasses whose `spec.controller` is ours.
    our_classes: BTreeSet<&'a str>,
    /// Names of every IngressClass in the snapshot.
    all_classes: BTreeSet<&'a str>,
    /// Whether an IngressClass of ours is marked as the cluster default.
    default_is_ours: bool,
    /// Other controllers' class names whose Ingresses are served too (`--watch-ingress-class`).
    watched: &'a [String],
}

/// Whether an Ingress is served, and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Selected {
    /// Of our class: served, and its status is ours to write.
    Ours,
    /// Of a watched class (`--watch-ingress-class`): served, status left to its own controller.
    Watched,
    No,
}

impl<'a> ClassSelector<'a> {
    pub fn new(classes: &'a [IngressClass], options: &'a CompileOptions) -> ClassSelector<'a> {
        let ours: Vec<&IngressClass> = classes
            .iter()
            .filter(|c| c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER_NAME))
            .collect();
        let default_is_ours = ours.iter().any(|c| {
            c.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION)).map(String::as_str)
                == Some("true")
        });
        ClassSelector {
            class: &options.ingress_class,
            our_classes: ours.iter().filter_map(|c| c.metadata.name.as_deref()).collect(),
            all_classes: classes.iter().filter_map(|c| c.metadata.name.as_deref()).collect(),
            default_is_ours,
            watched: &options.watch_ingress_classes,
        }
    }

    /// `spec.ingressClassName` decides when set; else the legacy annotation; else the default class.
    pub fn selects(&self, ingress: &Ingress) -> Selected {
        let class_name = ingress.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref()).filter(|c| !c.is_empty());
        let annotation = || {
            let annotations = ingress.metadata.annotations.as_ref()?;
            annotations.get(LEGACY_CLASS_ANNOTATION).map(String::as_str).filter(|c| !c.is_empty())
        };
        match class_name.or_else(annotation) {
            Some(name) if self.is_ours(name) => Selected::Ours,
            // why after ours: a watched class is another controller's; its Ingresses are served here
            // too (a side-by-side migration) but their status stays with that controller.
            Some(name) if self.watched.iter().any(|w| w == name) => Selected::Watched,
            Some(_) => Selected::No,
            None if self.default_is_ours => Selected::Ours,
            None => Selected::No,
        }
    }

    fn is_ours(&self, class_name: &str) -> bool {
        if self.all_classes.contains(class_name) {
            self.our_classes.contains(class_name)
        } else {
            class_name == self.class
        }
    }
}

/// Turns one Ingress of our class into candidate routes, reporting what it has to drop.
pub(super) fn compile_ingress(
    ingress: &Ingress,
    index: &ServiceIndex<'_>,
    nginx_compat: bool,
    diagnostics: &mut Vec<Diagnostic>,
) -> Claimant {
    let mut claimant = Claimant::new(ObjectKind::Ingress, &ingress.metadata);
    let object = claimant.object.clone();
    let id: Arc<str> = format!("ingress/{}/{}", object.namespace, object.name).into();
    let source = Source { kind: SourceKind::Ingress, namespace: object.namespace.clone(), name: object.name.clone() };
    let route = |host: HostMatch, path: PathMatch, backend: Backend| Route {
        id: id.clone(),
        source: source.clone(),
        host,
        path,
        conditions: Default::default(),
        backends: vec![backend],
        policy: Policy::default(),
    };
    let mut report = ObjectReport::new(&object, index, diagnostics);
    let Some(spec) = &ingress.spec else { return claimant };

    if let Some(backend) = &spec.default_backend {
        let field = "spec.defaultBackend";
        if let Some((backend, note)) = ingress_backend(&mut report, backend, field) {
            claimant.default_backend = Some(Candidate {
                raw_path: None,
                route: route(HostMatch::Any, PathMatch::prefix("/"), backend),
                field: field.to_string(),
                backends: vec![note],
            });
        }
    }

    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        let host = match rule.host.as_deref().map(str::to_ascii_lowercase) {
            None => HostMatch::Any,
            Some(host) if host.is_empty() => HostMatch::Any,
            Some(host) => match parse_hostname(&host) {
                Ok(host) => host,
                Err(message) => {
                    report.invalid(format!("spec.rules[{i}].host"), message);
                    continue;
                }
            },
        };
        let Some(http) = &rule.http else { continue };
        for (j, path) in http.paths.iter().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            let matcher = path_match(&mut report, path.path_type.as_str(), path.path.as_deref(), &field);
            let backend = ingress_backend(&mut report, &path.backend, &format!("{field}.backend"));
            if let (Some(matcher), Some((backend, note))) = (matcher, backend) {
                claimant.routes.push(Candidate {
                    raw_path: path.path.clone().filter(|p| !p.is_empty()),
                    route: route(host.clone(), matcher, backend),
                    field,
                    backends: vec![note],
                });
            }
        }
    }
    claimant.tls = tls_requests(&mut report, spec);
    claimant.https_redirect = ssl_redirect(&mut report, ingress);

    let annotations = ingress.metadata.annotations.as_ref();
    let annotated = policy::from_annotations(annotations);
    for (key, message) in annotated.unknown {
        report.warning(Reason::UnknownAnnotation, format!("metadata.annotations[{key:?}]"), message);
    }
    let mut problems: Vec<(String, String)> = annotated
        .errors
        .into_iter()
        .map(|(key, message)| (format!("metadata.annotations[{key:?}]"), message))
        .collect();
    let mut spec = annotated.spec;
    let mut from_nginx = Vec::new();
    let mut cookie_path_per_route = false;
    let mut cookie_secure_on_https = false;
    let mut requests: Option<nginx::Requests> = None;
    let nginx_keys = annotations.map_or(0, |a| a.keys().filter(|k| k.starts_with(nginx::NGINX_PREFIX)).count());
    if nginx_compat {
        let translation = nginx::translate(annotations);
        for note in &translation.notes {
            let field = format!("metadata.annotations[{:?}]", note.annotation);
            match note.support {
                nginx::Support::Refused => problems.push((field, note.message.clone())),
                nginx::Support::Unsupported => {
                    report.warning(Reason::UnsupportedAnnotation, field, note.message.clone())
                }
                _ => report.warning(Reason::TranslatedAnnotation, field, note.message.clone()),
            }
        }
        let (merged, taken) = spec.over(translation.spec);
        spec = merged;
        cookie_path_per_route = translation.cookie_path_per_route && taken.contains(&"loadBalancing");
        cookie_secure_on_https = translation.cookie_secure_on_https && taken.contains(&"loadBalancing");
        requests = Some(translation.requests.clone());
        from_nginx = taken;
        let ssl_redirect_set = annotations.is_some_and(|a| a.contains_key(SSL_REDIRECT_ANNOTATION));
        let has_tls = ingress.spec.as_ref().is_some_and(|s| s.tls.as_ref().is_some_and(|t| !t.is_empty()));
        if !ssl_redirect_set && has_tls && translation.ssl_redirect == Some(true) {
            // ingress-nginx's default: plain HTTP to a host with a certificate is redirected.
            claimant.https_redirect = Some(format!(
                "metadata.annotations[\"{}ssl-redirect\"] (true by default with spec.tls)",
                nginx::NGINX_PREFIX
            ));
        }
    } else if nginx_keys > 0 {
        let message = format!(
            "{nginx_keys} {}… annotation(s) ignored: start wsgate with --nginx-compat to translate them (`wsgate \
             migrate` shows how each one would be)",
            nginx::NGINX_PREFIX
        );
        report.warning(Reason::UnsupportedAnnotation, "metadata.annotations".to_string(), message);
    }
    let mut policy_problems = Vec::new();
    let policy = policy::compile_policy(&spec, &mut policy_problems);
    problems.extend(policy_problems.into_iter().map(|(field, message)| {
        let nginx = from_nginx.iter().any(|taken| field.starts_with(taken));
        let field = if nginx {
            format!("metadata.annotations ({}… annotations, translated to {field})", nginx::NGINX_PREFIX)
        } else {
            FieldSite::Annotations.name(&field)
        };
        (field, message)
    }));
    if !problems.is_empty() {
        // why fail closed: serving the Ingress without a policy its author asked for (an Origin
        // allow-list, a connection cap) would silently turn that protection off.
        for (field, message) in problems {
            report.invalid(field, format!("{message}; the Ingress is not served until this is fixed"));
        }
        claimant.routes.clear();
        claimant.default_backend = None;
        claimant.tls.clear();
        claimant.https_redirect = None;
        return claimant;
    }
    let requests = requests.unwrap_or_default();
    claimant.regex_paths = requests.use_regex || requests.rewrite_target.is_some();
    for candidate in claimant.routes.iter_mut().chain(claimant.default_backend.as_mut()) {
        candidate.route.policy = policy.clone();
        nginx_cookie_defaults(&mut candidate.route, cookie_path_per_route, cookie_secure_on_https);
        let policy = &mut candidate.route.policy;
        policy.redirect = requests.redirect.clone();
        policy.force_https_redirect = requests.force_https;
        policy.rewrite.host = requests.upstream_vhost.clone();
        if let Some(target) = &requests.rewrite_target {
            let source = candidate.raw_path.as_deref().unwrap_or("/");
            match Pattern::prefix(&format!("(?i){source}")) {
                Ok(pattern) => {
                    policy.rewrite.path = Some(PathRewrite { pattern, replacement: target.clone() });
                    // ingress-nginx sends X-Forwarded-Prefix only with a rewrite.
                    if let Some(prefix) = &requests.forwarded_prefix {
                        policy.rewrite.set_headers.push(("x-forwarded-prefix".to_string(), prefix.clone()));
                    }
                }
                Err(error) => report.invalid(
                    format!("{}.path", candidate.field),
                    format!("{source:?} is not a regular expression for rewrite-target: {error}"),
                ),
            }
        }
    }
    claimant
}

/// ingress-nginx's `use-regex` (and `rewrite-target`, which implies it): on every host where one
/// Ingress asks for it, every Ingress path of that host, whichever Ingress it is in, is matched as
/// a case-insensitive regular expression anchored at the start only (`location ~* "^path"`), longest
/// first. A path that is no regular expression is reported and not served.
pub(super) fn regex_hosts(claimants: &mut [Claimant], diagnostics: &mut Vec<Diagnostic>) {
    let hosts: BTreeSet<HostMatch> = claimants
        .iter()
        .filter(|c| c.regex_paths)
        .flat_map(|c| c.routes.iter().map(|r| r.route.host.clone()))
        .collect();
    if hosts.is_empty() {
        return;
    }
    for claimant in claimants.iter_mut().filter(|c| c.object.kind == ObjectKind::Ingress) {
        let object = claimant.object.clone();
        claimant.routes.retain_mut(|candidate| {
            if !hosts.contains(&candidate.route.host) {
                return true;
            }
            let Some(raw) = candidate.raw_path.clone() else { return true };
            match PathMatch::regex(&format!("(?i){raw}.*")) {
                Ok(path) => {
                    candidate.route.path = path;
                    true
                }
                Err(error) => {
                    diagnostics.push(Diagnostic {
                        object: object.clone(),
                        severity: Severity::Error,
                        reason: Reason::Invalid,
                        field: format!("{}.path", candidate.field),
                        message: format!(
                            "use-regex on this host makes {raw:?} a regular expression, and it is not one: {error}"
                        ),
                    });
                    false
                }
            }
        });
    }
}

/// ingress-nginx's defaults for an affinity cookie its annotations left unset: the path of the route
/// (`/` for a regular expression, which is no cookie path), and Secure on answers over HTTPS.
fn nginx_cookie_defaults(route: &mut Route, path_from_route: bool, secure_on_https: bool) {
    if let LoadBalancing::ConsistentHash(HashPolicy { on: HashOn::Cookie(cookie), .. }) =
        &mut route.policy.load_balancing
    {
        if path_from_route {
            cookie.path = match route.path.kind {
                PathKind::Exact | PathKind::Prefix => route.path.value.clone(),
                PathKind::RegularExpression => "/".to_string(),
            };
        }
        cookie.secure_on_https |= secure_on_https;
    }
}

/// Reads the `wsgate.dev/ssl-redirect` annotation: `"true"` asks for the redirect (the field is
/// returned); `"false"` or no annotation: none; any other value is reported and treated as `"false"`.
fn ssl_redirect(report: &mut ObjectReport<'_, '_>, ingress: &Ingress) -> Option<String> {
    let value = ingress.metadata.annotations.as_ref()?.get(SSL_REDIRECT_ANNOTATION)?;
    let field = format!("metadata.annotations[{SSL_REDIRECT_ANNOTATION:?}]");
    match value.as_str() {
        "true" => Some(field),
        "false" => None,
        other => {
            let message =
                format!("{SSL_REDIRECT_ANNOTATION} must be \"true\" or \"false\", not {other:?}; treated as \"false\"");
            report.warning(Reason::Invalid, field, message);
            None
        }
    }
}

/// Reads `spec.tls`. An entry without hosts covers the hosts of every rule, as other controllers do
/// (the Ingress API leaves it to the controller); an entry without `secretName` is reported, since
/// wsgate has no default certificate to serve instead.
fn tls_requests(
    report: &mut ObjectReport<'_, '_>,
    spec: &k8s_openapi::api::networking::v1::IngressSpec,
) -> Vec<TlsRequest> {
    let mut rule_hosts: Vec<HostMatch> = Vec::new();
    for rule in spec.rules.iter().flatten() {
        let host = rule.host.as_deref().unwrap_or_default();
        if let Ok(host) = parse_hostname(&host.to_ascii_lowercase())
            && !rule_hosts.contains(&host)
        {
            rule_hosts.push(host);
        }
    }
    let mut requests = Vec::new();
    for (t, tls) in spec.tls.iter().flatten().enumerate() {
        let field = format!("spec.tls[{t}]");
        let mut hosts = Vec::new();
        for (k, host) in tls.hosts.iter().flatten().enumerate() {
            let host_field = format!("{field}.hosts[{k}]");
            if host.trim().is_empty() {
                report.warning(Reason::Invalid, host_field, "an empty host is ignored".to_string());
                continue;
            }
            match parse_hostname(&host.to_ascii_lowercase()) {
                Ok(host) if !served_by_rules(&host, &rule_hosts) => {
                    // why not served: the certificate of a host belongs to whoever routes it; otherwise
                    // any Ingress could take over the TLS of another namespace's host with a tls entry.
                    let message = format!("{host} is not the host of any rule of this Ingress; not served");
                    report.warning(Reason::Invalid, host_field, message);
                }
                Ok(host) => hosts.push((host, host_field)),
                Err(message) => report.warning(Reason::Invalid, host_field, format!("{message}; ignored")),
            }
        }
        if tls.hosts.as_ref().is_none_or(Vec::is_empty) {
            hosts = rule_hosts.iter().map(|h| (h.clone(), field.clone())).collect();
        }
        let Some(secret) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else {
            let message = "no secretName: wsgate has no default certificate, so these hosts get no TLS".to_string();
            report.warning(Reason::InvalidCertificateRef, format!("{field}.secretName"), message);
            continue;
        };
        if hosts.is_empty() && tls.hosts.as_ref().is_none_or(Vec::is_empty) {
            let message = "no hosts, and no rule has a host: a certificate is chosen by SNI name, so this one \
                           is never served"
                .to_string();
            report.warning(Reason::Invalid, format!("{field}.hosts"), message);
            continue;
        }
        // Hosts given but none served (each reported above): the Secret is still checked, so its
        // problems are reported too.
        requests.push(TlsRequest { secret: secret.to_string(), field: format!("{field}.secretName"), hosts });
    }
    requests
}

/// Whether a `spec.tls` host is one this Ingress routes: a rule with that host, a wildcard rule that
/// covers it (`*.example.com` covers `chat.example.com`), or a rule without a host.
fn served_by_rules(host: &HostMatch, rule_hosts: &[HostMatch]) -> bool {
    rule_hosts.iter().any(|rule| match (rule, host) {
        (HostMatch::Any, _) => true,
        (rule, host) if rule == host => true,
        (HostMatch::Wildcard(suffix), HostMatch::Exact(name)) => name
            .strip_suffix(suffix.as_str())
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        _ => false,
    })
}

/// Reads `pathType` and `path` of `spec.rules[i].http.paths[j]` (named by `field`).
fn path_match(
    report: &mut ObjectReport<'_, '_>,
    path_type: &str,
    path: Option<&str>,
    field: &str,
) -> Option<PathMatch> {
    let path = path.filter(|p| !p.is_empty());
    match (path_type, path) {
        ("", _) => {
            let message = "pathType is required: Exact, Prefix or ImplementationSpecific".to_string();
            report.invalid(format!("{field}.pathType"), message);
            None
        }
        ("Exact" | "Prefix", None) => {
            let message = format!("path is required with pathType {path_type}");
            report.invalid(format!("{field}.path"), message);
            None
        }
        ("Exact" | "Prefix", Some(path)) => match check_path(path) {
            Ok(()) if path_type == "Exact" => Some(PathMatch::exact(path)),
            Ok(()) => Some(PathMatch::prefix(path)),
            Err(message) => {
                report.invalid(format!("{field}.path"), message);
                None
            }
        },
        ("ImplementationSpecific", None) => Some(PathMatch::prefix("/")),
        ("ImplementationSpecific", Some(path)) if path.starts_with('/') => Some(PathMatch::prefix(path)),
        ("ImplementationSpecific", Some(path)) => {
            let message = format!("path {path:?} is invalid: it must start with \"/\"");
            report.invalid(format!("{field}.path"), message);
            None
        }
        (other, _) => {
            let message = format!("pathType {other:?} is not one of Exact, Prefix, ImplementationSpecific");
            report.invalid(format!("{field}.pathType"), message);
            None
        }
    }
}

/// Reads an Ingress backend (at `field`) and resolves its Service port.
fn ingress_backend(
    report: &mut ObjectReport<'_, '_>,
    backend: &IngressBackend,
    field: &str,
) -> Option<(Backend, BackendNote)> {
    if let Some(resource) = &backend.resource {
        let group =
            resource.api_group.as_deref().filter(|g| !g.is_empty()).map(|g| format!("{g}/")).unwrap_or_default();
        let message = format!(
            "resource backends ({group}{} {}) are not supported; wsgate routes only to Services",
            resource.kind, resource.name
        );
        report.unsupported(format!("{field}.resource"), message);
        return None;
    }
    let Some(service) = &backend.service else {
        report.invalid(field.to_string(), "a backend needs a service".to_string());
        return None;
    };
    let mut valid = true;
    if service.name.is_empty() {
        report.invalid(format!("{field}.service.name"), "service name is required".to_string());
        valid = false;
    }
    let port_field = format!("{field}.service.port");
    let port = match service.port.as_ref().map(|p| (p.number, p.name.as_deref().filter(|n| !n.is_empty()))) {
        Some((Some(number), None)) if (1..=65535).contains(&number) => {
            Some((PortRef::Number(number), format!("{port_field}.number")))
        }
        Some((Some(number), None)) => {
            let message = format!("port number {number} is out of range 1-65535");
            report.invalid(format!("{port_field}.number"), message);
            None
        }
        Some((None, Some(name))) => Some((PortRef::Name(name.to_string()), format!("{port_field}.name"))),
        Some((Some(_), Some(_))) => {
            let message = "set either port.number or port.name, not both".to_string();
            report.invalid(port_field.clone(), message);
            None
        }
        None | Some((None, None)) => {
            let message = "service port is required (port.number or port.name)".to_string();
            report.invalid(port_field.clone(), message);
            None
        }
    };
    let (port, port_field) = port?;
    if !valid {
        return None;
    }
    Some(report.resolve(&service.name, &port, 1, &format!("{field}.service"), &port_field))
}

/// Joins a canary Ingress (`nginx.ingress.kubernetes.io/canary: "true"`, under `--nginx-compat`) to the
/// main Ingress routes it shares a host, path and path type with, as ingress-nginx does:
///
/// ```text
///   header == always (or == value, ~ pattern) ─► canary backend      ┐ routes with a header condition,
///   header == never                           ─► main backend only   │ header ones first: they win
///   Cookie NAME=always                        ─► canary backend      │ over the cookie ones
///   Cookie NAME=never                         ─► main backend only   ┘
///   anything else                             ─► main (total - weight) + canary (weight)
/// ```
///
/// The canary's own routes are not served, and its other annotations are ignored (the main Ingress's
/// policy applies to every route). A canary path without a main route serves nothing (a warning).
pub(super) fn merge_canary(
    claimants: &mut [Claimant],
    canary: Claimant,
    settings: Result<nginx::Canary, String>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let warn = |diagnostics: &mut Vec<Diagnostic>, severity: Severity, field: String, message: String| {
        diagnostics.push(Diagnostic { object: canary.object.clone(), severity, reason: Reason::Canary, field, message })
    };
    let settings = match settings {
        Ok(settings) => settings,
        Err(message) => {
            let field = "metadata.annotations".to_string();
            warn(diagnostics, Severity::Error, field, format!("{message}; the canary is not served"));
            return;
        }
    };
    for candidate in &canary.routes {
        let route = &candidate.route;
        // The oldest Ingress serving the same host and path without conditions is the main one.
        let main = claimants.iter_mut().filter(|c| c.object.kind == ObjectKind::Ingress).find_map(|c| {
            let object = c.object.clone();
            let at = c.routes.iter().position(|m| {
                m.route.host == route.host && m.route.path == route.path && m.route.conditions.is_empty()
            })?;
            Some((object, &mut c.routes, at))
        });
        let Some((main_object, routes, at)) = main else {
            let message = format!(
                "no Ingress serves {} {} for this canary to join; it serves nothing (as in ingress-nginx)",
                route.host, route.path
            );
            warn(diagnostics, Severity::Warning, candidate.field.clone(), message);
            continue;
        };
        let canary_backends = route.backends.clone();
        let canary_notes = candidate.backends.clone();
        let main_candidate = routes[at].clone();
        let variant = |condition: HeaderCondition, to_canary: bool| {
            let mut variant = main_candidate.clone();
            variant.route.conditions = Conditions { headers: vec![condition], query: Vec::new() };
            if to_canary {
                variant.route.backends = canary_backends.clone();
                variant.backends = canary_notes.clone();
            }
            variant.field = format!("{} (canary {})", main_candidate.field, canary.object);
            variant
        };
        let exact = |name: &str, value: &str| HeaderCondition {
            name: name.to_string(),
            value: ValueMatch::Exact(value.to_string()),
        };
        let mut variants = Vec::new();
        let mut problem = None;
        if let Some((name, how)) = &settings.header {
            match how {
                nginx::CanaryHeader::AlwaysNever => {
                    variants.push(variant(exact(name, "always"), true));
                    variants.push(variant(exact(name, "never"), false));
                }
                nginx::CanaryHeader::Value(value) => variants.push(variant(exact(name, value), true)),
                nginx::CanaryHeader::Pattern(pattern) => match Pattern::new(&nginx::Canary::header_pattern(pattern)) {
                    Ok(compiled) => variants.push(variant(
                        HeaderCondition { name: name.clone(), value: ValueMatch::RegularExpression(compiled) },
                        true,
                    )),
                    Err(error) => {
                        problem = Some(format!("canary-by-header-pattern {pattern:?} does not compile: {error}"))
                    }
                },
            }
        }
        if let Some(cookie) = &settings.cookie {
            for (value, to_canary) in [("always", true), ("never", false)] {
                let pattern = nginx::Canary::cookie_pattern(cookie, value);
                let compiled = Pattern::new(&pattern).expect("an escaped cookie name makes a valid pattern");
                let condition =
                    HeaderCondition { name: "cookie".to_string(), value: ValueMatch::RegularExpression(compiled) };
                variants.push(variant(condition, to_canary));
            }
        }
        if let Some(problem) = problem {
            warn(
                diagnostics,
                Severity::Error,
                "metadata.annotations".to_string(),
                format!("{problem}; the canary is not served"),
            );
            return;
        }
        // The weighted split, on the main route itself.
        if settings.weight > 0 {
            let main = &mut routes[at];
            let share = settings.total - settings.weight;
            for backend in &mut main.route.backends {
                backend.weight = backend.weight.saturating_mul(share);
            }
            for backend in &canary_backends {
                let mut backend = backend.clone();
                backend.weight = backend.weight.saturating_mul(settings.weight);
                main.route.backends.push(backend);
            }
            main.backends.extend(canary_notes.iter().cloned());
        }
        let joined = format!(
            "joins {main_object}'s route for {} {} (weight {} of {}{}{})",
            route.host,
            route.path,
            settings.weight,
            settings.total,
            settings.header.as_ref().map(|(name, _)| format!(", header {name}")).unwrap_or_default(),
            settings.cookie.as_ref().map(|name| format!(", cookie {name}")).unwrap_or_default(),
        );
        routes.splice(at + 1..at + 1, variants);
        warn(diagnostics, Severity::Warning, candidate.field.clone(), joined);
    }
}
