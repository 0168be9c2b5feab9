//! `wsgate migrate`: a review of Ingresses written for ingress-nginx, and the WebSocketRoutes that
//! behave the same. Pure, like the compiler: objects in, text out.
//!
//! ```text
//!   Ingress (any class) ─► nginx::translate + wsgate.dev/ annotations ─► PolicySpec ─► compile_policy (checks)
//!        │                      notes: same / differs / unsupported / refused
//!        ├─ per host: use-regex or rewrite-target anywhere on the host changes every path of it
//!        └─► one WebSocketRoute per rule host (rules = its paths), with the policy fields
//!
//!   output: a YAML stream — the review as `#` comments, then the WebSocketRoutes — so it can be
//!   read, checked (`wsgate check`) and applied as it is
//!   exit:   0 the same · 1 some annotation behaves differently · 2 some annotation is not supported
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::nginx::{self, NGINX_PREFIX, Support};
use super::policy::{self, PolicySpec};
use crate::controller::Snapshot;
use crate::crd::{
    BackendRef, HeaderMatchSpec, PathMatchSpec, PathMatchType, RouteMatch, RouteRule, RouteTls, ServiceRef,
    ValueMatchType, WebSocketRoute,
};

/// The outcome of a migration review.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The review (comments) and the WebSocketRoutes, as one YAML stream.
    pub output: String,
    /// 0, 1 or 2 (see the module docs).
    pub exit_code: u8,
}

/// The verdict on one Ingress, worst first in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Same,
    Differs,
    Unsupported,
}

/// Reviews every Ingress of the snapshot (whatever its class: the ones being migrated are usually of
/// class `nginx`).
pub fn migrate(snapshot: &Snapshot) -> Migration {
    let mut ingresses: Vec<&Ingress> = snapshot.ingresses.iter().collect();
    ingresses.sort_by_key(|i| (i.metadata.namespace.clone().unwrap_or_default(), i.metadata.name.clone()));
    let regex_hosts = regex_hosts(&ingresses);

    let mut sections = Vec::new();
    let mut routes = Vec::new();
    let mut worst = Verdict::Same;
    let mut counts = BTreeMap::new();
    let canaries: Vec<(&Ingress, nginx::Canary)> =
        ingresses.iter().filter_map(|i| Some((*i, nginx::canary(i.metadata.annotations.as_ref())?.ok()?))).collect();
    for ingress in &ingresses {
        let (verdict, text, mut made) = review(ingress, &regex_hosts, &canaries);
        *counts.entry(verdict).or_insert(0usize) += 1;
        worst = worst.max(verdict);
        sections.push(text);
        routes.append(&mut made);
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# wsgate migrate: {} Ingress(es): {} the same, {} with differences, {} with unsupported annotations",
        ingresses.len(),
        counts.get(&Verdict::Same).unwrap_or(&0),
        counts.get(&Verdict::Differs).unwrap_or(&0),
        counts.get(&Verdict::Unsupported).unwrap_or(&0),
    );
    out.push_str(
        "# Also different everywhere (not counted in the exit code): ingress-nginx replaced X-Forwarded-For with the\n\
         # client's address; wsgate appends the client to what came in and believes it only from --trusted-proxies.\n",
    );
    for section in sections {
        out.push_str("#\n");
        out.push_str(&section);
    }
    for route in routes {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&route).expect("a WebSocketRoute serializes to YAML"));
    }
    let exit_code = match worst {
        Verdict::Same => 0,
        Verdict::Differs => 1,
        Verdict::Unsupported => 2,
    };
    Migration { output: out, exit_code }
}

/// Hosts on which some Ingress has `use-regex` or a `rewrite-target`: ingress-nginx turns every path of
/// such a host, in every Ingress, into a case-insensitive prefix regular expression. Host → the
/// Ingresses (`namespace/name`) that cause it.
fn regex_hosts(ingresses: &[&Ingress]) -> BTreeMap<String, BTreeSet<String>> {
    let mut hosts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ingress in ingresses {
        let annotations = ingress.metadata.annotations.as_ref();
        let get = |name: &str| annotations.and_then(|a| a.get(&format!("{NGINX_PREFIX}{name}")));
        let regex = get("use-regex").is_some_and(|v| v.trim() == "true") || get("rewrite-target").is_some();
        if regex {
            for host in rule_hosts(ingress) {
                hosts.entry(host).or_default().insert(object_name(ingress));
            }
        }
    }
    hosts
}

fn object_name(ingress: &Ingress) -> String {
    format!(
        "{}/{}",
        ingress.metadata.namespace.as_deref().unwrap_or("default"),
        ingress.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The hosts of an Ingress's rules, in order, once each (`""` for rules without one).
fn rule_hosts(ingress: &Ingress) -> Vec<String> {
    let mut hosts = Vec::new();
    for rule in ingress.spec.iter().flat_map(|s| s.rules.iter().flatten()) {
        let host = rule.host.clone().unwrap_or_default().to_ascii_lowercase();
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

/// One Ingress: its verdict, its review section and the WebSocketRoutes it becomes.
fn review(
    ingress: &Ingress,
    regex_hosts: &BTreeMap<String, BTreeSet<String>>,
    canaries: &[(&Ingress, nginx::Canary)],
) -> (Verdict, String, Vec<WebSocketRoute>) {
    let name = object_name(ingress);
    let annotations = ingress.metadata.annotations.as_ref();
    let class = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.clone())
        .or_else(|| annotations.and_then(|a| a.get("kubernetes.io/ingress.class").cloned()))
        .unwrap_or_else(|| "none: the cluster default".to_string());
    let mut lines: Vec<(Verdict, String)> = Vec::new();

    let translation = nginx::translate(annotations);
    let annotated = policy::from_annotations(annotations);
    for (key, message) in annotated.errors {
        lines.push((Verdict::Unsupported, format!("{:<11} {key}: {message}", "error")));
    }
    let (spec, _) = annotated.spec.over(translation.spec.clone());
    let mut problems = Vec::new();
    policy::compile_policy(&spec, &mut problems);
    for (field, message) in problems {
        lines.push((Verdict::Unsupported, format!("{:<11} {field}: {message}", "error")));
    }

    // Annotations translated with the same meaning: the ones present with a `Same` row and no note.
    let noted: BTreeSet<&str> = translation.notes.iter().map(|n| n.annotation.as_str()).collect();
    for key in annotations.into_iter().flat_map(|a| a.keys()) {
        let Some(short) = key.strip_prefix(NGINX_PREFIX) else { continue };
        if let Some(row) = nginx::lookup(short)
            && row.support == Support::Same
            && !noted.contains(key.as_str())
        {
            let to = if row.field.is_empty() { "translated under --nginx-compat" } else { row.field };
            lines.push((Verdict::Same, format!("{:<11} {key} → {to}", "same")));
        }
    }
    let mut refused = false;
    for note in &translation.notes {
        let (verdict, label) = match note.support {
            Support::Same => (Verdict::Same, "same"),
            Support::NoEffect => (Verdict::Same, "no effect"),
            Support::Differs => (Verdict::Differs, "differs"),
            Support::Unsupported => (Verdict::Unsupported, "unsupported"),
            Support::Refused => {
                refused = true;
                (Verdict::Unsupported, "refused")
            }
        };
        lines.push((verdict, format!("{label:<11} {}", note.message)));
    }
    for host in rule_hosts(ingress) {
        if let Some(causes) = regex_hosts.get(&host) {
            let others: Vec<&String> = causes.iter().filter(|c| **c != name).collect();
            if !others.is_empty() {
                let causes: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
                let shown = if host.is_empty() { "(every host)".to_string() } else { host.clone() };
                lines.push((
                    Verdict::Differs,
                    format!(
                        "{:<11} host {shown}: use-regex or rewrite-target on {} made ingress-nginx match every path of \
                         this host as a case-insensitive prefix regular expression; wsgate matches these paths as written",
                        "differs",
                        causes.join(", ")
                    ),
                ));
            }
        }
    }
    if translation.requests.any() {
        lines.push((
            Verdict::Differs,
            format!(
                "{:<11} use-regex, rewrite-target, redirects, app-root, upstream-vhost and x-forwarded-prefix have no \
                 WebSocketRoute field yet: keep this Ingress, served with --nginx-compat",
                "differs"
            ),
        ));
    }
    lines.extend(default_differences(ingress, &spec).into_iter().map(|line| (Verdict::Same, line)));
    let verdict = lines.iter().map(|(v, _)| *v).max().unwrap_or(Verdict::Same);

    let mut text = String::new();
    let label = match verdict {
        Verdict::Same => "the same",
        Verdict::Differs => "differs",
        Verdict::Unsupported => "unsupported annotations",
    };
    let _ = writeln!(text, "# Ingress {name} (class {class}): {label}");
    for (_, line) in &lines {
        let _ = writeln!(text, "#   {line}");
    }
    let canary = nginx::canary(annotations);
    if let Some(Err(message)) = &canary {
        lines.push((Verdict::Unsupported, format!("{:<11} {message}", "error")));
    }
    let routes = if translation.requests.any() {
        let _ = writeln!(
            text,
            "#   → no WebSocketRoute: keep the Ingress (wsgate serves it the same under --nginx-compat)"
        );
        Vec::new()
    } else if canary.is_some() {
        let _ = writeln!(text, "#   → no WebSocketRoute of its own: its paths join the main Ingress's WebSocketRoute");
        Vec::new()
    } else if refused {
        let _ = writeln!(
            text,
            "#   → no WebSocketRoute: an annotation above has no wsgate equivalent that keeps its protection"
        );
        Vec::new()
    } else {
        let mut routes = websocket_routes(ingress, &spec, translation.cookie_path_per_route, translation.ssl_redirect);
        for (canary, settings) in canaries {
            for route in &mut routes {
                if join_canary(route, canary, settings) {
                    let _ = writeln!(text, "#   ← canary Ingress {} joins it", object_name(canary));
                }
            }
        }
        for route in &routes {
            let _ = writeln!(
                text,
                "#   → WebSocketRoute {}/{}",
                route.metadata.namespace.as_deref().unwrap_or("default"),
                route.metadata.name.as_deref().unwrap_or_default()
            );
        }
        routes
    };
    (verdict, text, routes)
}

/// What changes without any annotation: ingress-nginx's defaults that wsgate does not share.
fn default_differences(ingress: &Ingress, spec: &PolicySpec) -> Vec<String> {
    let annotations = ingress.metadata.annotations.as_ref();
    let has = |name: &str| annotations.is_some_and(|a| a.contains_key(&format!("{NGINX_PREFIX}{name}")));
    let mut out = Vec::new();
    if spec.timeouts.idle.is_none() {
        out.push(
            "default     no proxy-read-timeout: ingress-nginx closed a WebSocket after 60s without a byte from the \
             backend; wsgate's idle timeout is 1h, counting both directions"
                .to_string(),
        );
    }
    if spec.load_balancing.is_none() {
        out.push(
            "default     no affinity, upstream-hash-by or load-balance: ingress-nginx balanced round robin; wsgate \
             gives each new connection to the endpoint with the fewest"
                .to_string(),
        );
    }
    let cookie_secure = annotations
        .and_then(|a| a.get(&format!("{NGINX_PREFIX}session-cookie-secure")))
        .is_some_and(|v| v.trim() == "true");
    if has("affinity") && !cookie_secure {
        out.push(
            "default     ingress-nginx set the affinity cookie Secure on answers over HTTPS (and wsgate does under \
             --nginx-compat); a WebSocketRoute sets it as cookie.secure says: add secure: true for an HTTPS-only host"
                .to_string(),
        );
    }
    if !has("proxy-body-size") {
        out.push("default     ingress-nginx refused request bodies over 1m (413); wsgate sets no limit".to_string());
    }
    for (i, rule) in ingress.spec.iter().flat_map(|s| s.rules.iter().flatten()).enumerate() {
        for (j, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
            let Some(value) = path.path.as_deref() else { continue };
            if value.len() > 1 && value.ends_with('/') {
                let without = value.trim_end_matches('/');
                let what = if path.path_type == "Exact" {
                    format!("wsgate answers {without} with 404 (Exact {value} only)")
                } else {
                    format!("wsgate serves {without} directly (a Prefix ignores the trailing slash)")
                };
                out.push(format!(
                    "default     spec.rules[{i}].http.paths[{j}] {value}: ingress-nginx answered {without} with a 301 to \
                     {value}; {what}"
                ));
            }
        }
    }
    out
}

/// One WebSocketRoute per rule host, with a rule per path and the Ingress's policy fields.
fn websocket_routes(
    ingress: &Ingress,
    spec: &PolicySpec,
    cookie_path_per_route: bool,
    ssl_redirect: Option<bool>,
) -> Vec<WebSocketRoute> {
    let Some(ingress_spec) = &ingress.spec else { return Vec::new() };
    let base = ingress.metadata.name.clone().unwrap_or_default();
    let namespace = ingress.metadata.namespace.clone();
    // Hosts in order, each with its (path, backend) pairs.
    let mut hosts: Vec<(String, Vec<(PathMatchSpec, BackendRef)>)> = Vec::new();
    for rule in ingress_spec.rules.iter().flatten() {
        let host = rule.host.clone().unwrap_or_default().to_ascii_lowercase();
        let at = match hosts.iter().position(|(h, _)| *h == host) {
            Some(at) => at,
            None => {
                hosts.push((host, Vec::new()));
                hosts.len() - 1
            }
        };
        for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
            let Some(backend) = backend_ref(&path.backend) else { continue };
            let kind = if path.path_type == "Exact" { PathMatchType::Exact } else { PathMatchType::Prefix };
            let value = path.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".to_string());
            hosts[at].1.push((PathMatchSpec { kind, value }, backend));
        }
    }
    if let Some(backend) = ingress_spec.default_backend.as_ref().and_then(backend_ref)
        && !hosts.iter().any(|(h, _)| h.is_empty())
    {
        hosts.push((String::new(), vec![(PathMatchSpec { kind: PathMatchType::Prefix, value: "/".into() }, backend)]));
    }
    let many = hosts.len() > 1;
    let mut out = Vec::new();
    for (n, (host, paths)) in hosts.into_iter().enumerate() {
        if paths.is_empty() {
            continue;
        }
        let mut route_spec = spec.to_route();
        if !host.is_empty() {
            route_spec.hostnames = vec![host.clone()];
        }
        if cookie_path_per_route
            && let Some(cookie) =
                route_spec.load_balancing.as_mut().and_then(|lb| lb.hash_on.as_mut()).and_then(|h| h.cookie.as_mut())
        {
            // ingress-nginx's default cookie path is the path; one route has one cookie.
            cookie.path = Some(if paths.len() == 1 { paths[0].0.value.clone() } else { "/".to_string() });
        }
        if paths.len() == 1 {
            let (path, backend) = paths.into_iter().next().expect("one path");
            route_spec.path = Some(path);
            route_spec.backends = vec![backend];
        } else {
            route_spec.rules = paths
                .into_iter()
                .map(|(path, backend)| RouteRule {
                    matches: vec![RouteMatch { path: Some(path), ..RouteMatch::default() }],
                    backends: vec![backend],
                })
                .collect();
        }
        let secret = ingress_spec.tls.iter().flatten().find(|tls| {
            let hosts = tls.hosts.clone().unwrap_or_default();
            hosts.is_empty() || hosts.iter().any(|h| h.eq_ignore_ascii_case(&host))
        });
        if let Some(secret) = secret.and_then(|tls| tls.secret_name.clone()).filter(|_| !host.is_empty()) {
            route_spec.tls = Some(RouteTls { secret_name: secret, redirect: ssl_redirect == Some(true) });
        }
        let name = if many { format!("{base}-{}", n + 1) } else { base.clone() };
        let mut route = WebSocketRoute::new(&name, route_spec);
        route.metadata.namespace = namespace.clone();
        out.push(route);
    }
    out
}

fn backend_ref(backend: &IngressBackend) -> Option<BackendRef> {
    let service = backend.service.as_ref()?;
    let port = service.port.as_ref()?;
    let port = match (port.number, &port.name) {
        (Some(number), _) => IntOrString::Int(number),
        (None, Some(name)) => IntOrString::String(name.clone()),
        (None, None) => return None,
    };
    Some(BackendRef { service: ServiceRef { name: service.name.clone(), port }, weight: None })
}

/// Adds a canary Ingress's paths that match this route's host and paths, as the compiler does under
/// `--nginx-compat`: header and cookie rules before the path's rule, the weight on its backends.
/// Returns whether any path joined.
fn join_canary(route: &mut WebSocketRoute, canary: &Ingress, settings: &nginx::Canary) -> bool {
    let host = route.spec.hostnames.first().cloned().unwrap_or_default();
    let mut joined = false;
    for rule in canary.spec.iter().flat_map(|s| s.rules.iter().flatten()) {
        if rule.host.clone().unwrap_or_default().to_ascii_lowercase() != host {
            continue;
        }
        for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
            let Some(canary_backend) = backend_ref(&path.backend) else { continue };
            let kind = if path.path_type == "Exact" { PathMatchType::Exact } else { PathMatchType::Prefix };
            let value = path.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".to_string());
            let wanted = PathMatchSpec { kind, value };
            let in_short_form = route.spec.path.as_ref() == Some(&wanted);
            if in_short_form {
                // The long form, so header rules can stand beside the path's rule.
                let path = route.spec.path.take();
                let backends = std::mem::take(&mut route.spec.backends);
                route.spec.rules =
                    vec![RouteRule { matches: vec![RouteMatch { path, ..RouteMatch::default() }], backends }];
            }
            let Some(at) = route.spec.rules.iter().position(|r| {
                r.matches.len() == 1 && r.matches[0].path.as_ref() == Some(&wanted) && r.matches[0].headers.is_empty()
            }) else {
                continue;
            };
            let main_backends = route.spec.rules[at].backends.clone();
            let header_rule = |name: &str, kind: ValueMatchType, value: String, backends: Vec<BackendRef>| RouteRule {
                matches: vec![RouteMatch {
                    path: Some(wanted.clone()),
                    headers: vec![HeaderMatchSpec { kind, name: name.to_string(), value }],
                    ..RouteMatch::default()
                }],
                backends,
            };
            let mut extra = Vec::new();
            if let Some((name, how)) = &settings.header {
                match how {
                    nginx::CanaryHeader::AlwaysNever => {
                        extra.push(header_rule(
                            name,
                            ValueMatchType::Exact,
                            "always".into(),
                            vec![canary_backend.clone()],
                        ));
                        extra.push(header_rule(name, ValueMatchType::Exact, "never".into(), main_backends.clone()));
                    }
                    nginx::CanaryHeader::Value(value) => extra.push(header_rule(
                        name,
                        ValueMatchType::Exact,
                        value.clone(),
                        vec![canary_backend.clone()],
                    )),
                    nginx::CanaryHeader::Pattern(pattern) => extra.push(header_rule(
                        name,
                        ValueMatchType::RegularExpression,
                        nginx::Canary::header_pattern(pattern),
                        vec![canary_backend.clone()],
                    )),
                }
            }
            if let Some(cookie) = &settings.cookie {
                for (value, backends) in [("always", vec![canary_backend.clone()]), ("never", main_backends.clone())] {
                    let pattern = nginx::Canary::cookie_pattern(cookie, value);
                    extra.push(header_rule("cookie", ValueMatchType::RegularExpression, pattern, backends));
                }
            }
            if settings.weight > 0 {
                let share = settings.total - settings.weight;
                let rule = &mut route.spec.rules[at];
                for backend in &mut rule.backends {
                    backend.weight = Some(backend.weight.unwrap_or(1).saturating_mul(share));
                }
                rule.backends.push(BackendRef { weight: Some(settings.weight), ..canary_backend.clone() });
            }
            route.spec.rules.splice(at..at, extra);
            joined = true;
        }
    }
    joined
}
