//! The route table: what the dataplane serves, as plain immutable data.
//!
//! ```text
//!   compile ──► RouteTable ──► ArcSwap ──► dataplane (one load per request or handshake)
//!
//!   RouteTable
//!     ├─ exact hosts     "chat.example.com" ─► [Route, …]   (longest path first, Exact before Prefix)
//!     ├─ wildcard hosts  "*.example.com"    ─► [Route, …]   (matches exactly one extra label)
//!     ├─ any host        (rules without host) [Route, …]
//!     ├─ default backend Route               (Ingress `defaultBackend`)
//!     └─ tls             SNI name ─► certificate (see [`tls`])
//! ```
//!
//! Lookup tries the exact host group, then the wildcard group, then the rules without a host, then the
//! default backend; inside a group the first (most specific) path that matches wins. [`RouteTable::explain`]
//! walks the same steps and reports them (which group, which routes were skipped). Nothing here knows
//! about Kubernetes: the compiler translates objects into these types, the dataplane only reads them.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub mod cidr;
pub mod matches;
pub mod policy;
pub mod ring;
pub mod tls;

pub use matches::{Conditions, HeaderCondition, Pattern, QueryCondition, RequestView, ValueMatch};
pub use policy::{
    Admission, CookieAffinity, CorsPolicy, DrainPolicy, FramePolicy, HashOn, HashPolicy, Keepalive, LoadBalancing,
    OriginPolicy, PathRewrite, Policy, Rate, Rebalance, RedirectTarget, RequestRewrite, RouteLimits, RouteRedirect,
    SameSite, SourceRanges, SubprotocolPolicy, Toward,
};
pub use tls::{Certificate, TlsTable};

/// Default time a backend has to answer a WebSocket handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a WebSocket may stay silent in both directions before it is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The compiled, immutable routing configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// Monotonic number set by the publisher; 0 for a table that was never published.
    pub generation: u64,
    exact: HashMap<String, Vec<Arc<Route>>>,
    /// Keyed by the suffix after `*.`, e.g. `example.com` for `*.example.com`.
    wildcard: HashMap<String, Vec<Arc<Route>>>,
    any_host: Vec<Arc<Route>>,
    default_backend: Option<Arc<Route>>,
    tls: TlsTable,
}

/// Which hosts a route answers for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum HostMatch {
    /// Every host (a rule without host, a WebSocketRoute without hostnames).
    Any,
    /// One host, lower-case, no port.
    Exact(String),
    /// `*.suffix`: stored as the suffix; matches `label.suffix` for exactly one label.
    Wildcard(String),
}

impl HostMatch {
    /// Parses a hostname as written in an Ingress rule or WebSocketRoute (`""` means any host).
    pub fn parse(host: &str) -> HostMatch {
        let host = host.trim().to_ascii_lowercase();
        if host.is_empty() || host == "*" {
            HostMatch::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostMatch::Wildcard(suffix.to_string())
        } else {
            HostMatch::Exact(host)
        }
    }
}

impl std::fmt::Display for HostMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostMatch::Any => f.write_str("*"),
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

/// How a path is compared with the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PathKind {
    /// Case-sensitive match of the whole path.
    Exact,
    /// Element-wise prefix: `/foo` matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`.
    Prefix,
    /// A regular expression matching the whole path (tried after every Exact and Prefix path).
    RegularExpression,
}

/// A path matcher, normalized at compile time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PathMatch {
    pub kind: PathKind,
    /// For `Exact`, the path as written. For `Prefix`, the path without trailing slashes (`/` stays `/`).
    /// For `RegularExpression`, the pattern.
    pub value: String,
    /// The compiled pattern of a `RegularExpression` path.
    #[serde(skip)]
    pub pattern: Option<Pattern>,
}

impl PathMatch {
    pub fn exact(value: &str) -> PathMatch {
        PathMatch { kind: PathKind::Exact, value: value.to_string(), pattern: None }
    }

    /// A regular-expression matcher; the error says why the pattern does not compile.
    pub fn regex(pattern: &str) -> Result<PathMatch, String> {
        let compiled = Pattern::new(pattern)?;
        Ok(PathMatch { kind: PathKind::RegularExpression, value: pattern.to_string(), pattern: Some(compiled) })
    }

    /// A prefix matcher; trailing slashes are ignored, as the Ingress spec requires.
    pub fn prefix(value: &str) -> PathMatch {
        let trimmed = value.trim_end_matches('/');
        let value = if trimmed.is_empty() { "/" } else { trimmed };
        PathMatch { kind: PathKind::Prefix, value: value.to_string(), pattern: None }
    }

    /// Whether `path` (the request path, without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self.kind {
            PathKind::Exact => path == self.value,
            PathKind::Prefix => {
                if self.value == "/" {
                    return true;
                }
                match path.strip_prefix(self.value.as_str()) {
                    Some(rest) => rest.is_empty() || rest.starts_with('/'),
                    None => false,
                }
            }
            PathKind::RegularExpression => self.pattern.as_ref().is_some_and(|p| p.is_match(path)),
        }
    }

    /// Ordering key inside a host group: Exact and Prefix paths before regular expressions; longer
    /// paths (or patterns) first; `Exact` before `Prefix` at equal length.
    fn precedence(&self) -> (bool, std::cmp::Reverse<usize>, PathKind) {
        (self.kind == PathKind::RegularExpression, std::cmp::Reverse(self.value.len()), self.kind)
    }
}

impl std::fmt::Display for PathMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}", self.kind, self.value)
    }
}

pub(crate) mod duration_secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// The kind of object a route was compiled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum SourceKind {
    Ingress,
    WebSocketRoute,
}

/// The object a route came from, for metrics, logs and `/debug/routes`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Source {
    pub kind: SourceKind,
    pub namespace: String,
    pub name: String,
}

/// One upstream endpoint that is ready for new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Endpoint {
    pub addr: SocketAddr,
}

/// A weighted group of endpoints: one Service port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Backend {
    /// `namespace/service:port`, for logs and inspection.
    pub name: String,
    /// Relative share of new connections; 0 means the backend gets none.
    pub weight: u32,
    /// Ready endpoints, sorted; may be empty (the route then answers 503).
    pub endpoints: Vec<Endpoint>,
    /// Endpoints listed but not ready, and not terminating (a failing readiness probe), sorted: they
    /// get no new connections, and their open WebSockets are not drained.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unready: Vec<Endpoint>,
    /// The consistent-hash ring over `endpoints`, built by [`RouteTable::new`] for routes that hash
    /// (a function of the endpoints alone, so every replica builds the same one).
    #[serde(skip)]
    pub ring: Option<Arc<ring::Ring>>,
}

/// A host + path matcher with its backends and policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// `kind/namespace/name` of the source object (`ingress/default/chat`, `websocketroute/default/chat`):
    /// the `route` label of every metric, so an Ingress and a WebSocketRoute of one name never share one.
    pub id: Arc<str>,
    pub source: Source,
    pub host: HostMatch,
    pub path: PathMatch,
    /// Header and query-parameter matches the request must also satisfy (empty: none).
    #[serde(skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    pub backends: Vec<Backend>,
    pub policy: Policy,
}

impl Route {
    /// Whether any backend with a non-zero weight has a ready endpoint.
    pub fn has_ready_endpoint(&self) -> bool {
        self.backends.iter().any(|b| b.weight > 0 && !b.endpoints.is_empty())
    }
}

impl RouteTable {
    /// Builds a table from routes. Routes are grouped by host and ordered by precedence: path (see
    /// [`PathMatch`]), then more header conditions, then more query conditions, then the order given
    /// (the compiler passes them oldest first). When two routes have the same host, path and
    /// conditions, the first one given wins (the compiler reports the conflict itself).
    pub fn new(routes: Vec<Route>, default_backend: Option<Route>) -> RouteTable {
        let default_backend = default_backend.map(with_rings);
        let mut table = RouteTable { default_backend: default_backend.map(Arc::new), ..RouteTable::default() };
        for route in routes.into_iter().map(with_rings) {
            let group = match &route.host {
                HostMatch::Any => &mut table.any_host,
                HostMatch::Exact(h) => table.exact.entry(h.clone()).or_default(),
                HostMatch::Wildcard(s) => table.wildcard.entry(s.clone()).or_default(),
            };
            if group.iter().any(|r| r.path == route.path && r.conditions == route.conditions) {
                continue;
            }
            group.push(Arc::new(route));
        }
        let groups = table.exact.values_mut().chain(table.wildcard.values_mut());
        for group in groups.chain(std::iter::once(&mut table.any_host)) {
            // Stable: equal precedence keeps insertion order.
            group.sort_by_key(|r| {
                let conditions = &r.conditions;
                (r.path.precedence(), Reverse(conditions.headers.len()), Reverse(conditions.query.len()))
            });
        }
        table
    }

    /// Finds the route for a request with only a host and a path (no query, no headers: routes with
    /// header or query conditions never match). `host` may carry a port and any case.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.lookup_request(&RequestView::new(host, path))
    }

    /// Finds the route for a request. `request.host` may carry a port and any case.
    pub fn lookup_request(&self, request: &RequestView<'_>) -> Option<&Arc<Route>> {
        self.walk(request, |_, _| {}).map(|(_, route)| route)
    }

    /// [`explain_request`](RouteTable::explain_request) for a host and a path with an optional query.
    pub fn explain(&self, host: &str, path_and_query: &str) -> Explanation {
        self.explain_request(&RequestView::with_query(host, path_and_query))
    }

    /// The same lookup as [`lookup_request`](RouteTable::lookup_request), step by step: which host group
    /// answered, and which routes were tried and skipped before it (for `/debug/explain` and `wsgate
    /// check --explain`).
    pub fn explain_request(&self, request: &RequestView<'_>) -> Explanation {
        let mut skipped = Vec::new();
        let mut skipped_more = 0;
        let found = self.walk(request, |group, route| {
            if skipped.len() < MAX_SKIPPED_SHOWN {
                skipped.push(Skipped {
                    group,
                    route: Arc::clone(&route.id),
                    host: route.host.clone(),
                    path: route.path.clone(),
                    conditions: route.conditions.clone(),
                    why: if route.path.matches(request.path) {
                        "a header or query match fails"
                    } else {
                        "path does not match"
                    },
                });
            } else {
                skipped_more += 1;
            }
        });
        let outcome = match found {
            None => Outcome::NoRoute,
            Some((_, route)) if route.has_ready_endpoint() => Outcome::Routed,
            Some(_) => Outcome::NoReadyEndpoint,
        };
        Explanation {
            host: normalize_host(request.host).into_owned(),
            path: request.path.to_string(),
            outcome,
            group: found.map(|(group, _)| group),
            route: found.map(|(_, route)| Arc::clone(route)),
            skipped,
            skipped_more,
        }
    }

    /// The lookup itself, shared by `lookup` and `explain` so the two cannot disagree: calls `skip` for
    /// every route whose path or conditions did not match, in the order they were tried.
    fn walk<'t>(
        &'t self,
        request: &RequestView<'_>,
        mut skip: impl FnMut(HostGroup, &'t Arc<Route>),
    ) -> Option<(HostGroup, &'t Arc<Route>)> {
        let path = request.path;
        let mut first = |group: HostGroup, routes: &'t [Arc<Route>]| {
            let found = routes.iter().find(|r| {
                let hit = r.path.matches(path) && (r.conditions.is_empty() || r.conditions.matches(request));
                if !hit {
                    skip(group, r);
                }
                hit
            });
            found.map(|route| (group, route))
        };
        let host = normalize_host(request.host);
        let host = host.as_ref();
        if let Some(found) = self.exact.get(host).and_then(|g| first(HostGroup::Exact, g)) {
            return Some(found);
        }
        // A wildcard covers exactly one label: `a.example.com` → `example.com`.
        if let Some((label, suffix)) = host.split_once('.')
            && !label.is_empty()
            && let Some(found) = self.wildcard.get(suffix).and_then(|g| first(HostGroup::Wildcard, g))
        {
            return Some(found);
        }
        first(HostGroup::AnyHost, &self.any_host)
            .or_else(|| self.default_backend.as_ref().map(|route| (HostGroup::DefaultBackend, route)))
    }

    /// Every route, in lookup order per group, then the default backend: for inspection and tests.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        let mut exact: Vec<_> = self.exact.iter().collect();
        exact.sort_by(|a, b| a.0.cmp(b.0));
        let mut wildcard: Vec<_> = self.wildcard.iter().collect();
        wildcard.sort_by(|a, b| a.0.cmp(b.0));
        exact
            .into_iter()
            .chain(wildcard)
            .flat_map(|(_, g)| g.iter())
            .chain(self.any_host.iter())
            .chain(self.default_backend.iter())
    }

    /// Sets the certificates served on the HTTPS listener.
    pub fn with_tls(mut self, tls: TlsTable) -> RouteTable {
        self.tls = tls;
        self
    }

    /// The certificates served on the HTTPS listener, by SNI name.
    pub fn tls(&self) -> &TlsTable {
        &self.tls
    }

    pub fn default_backend(&self) -> Option<&Arc<Route>> {
        self.default_backend.as_ref()
    }

    /// Whether the table has no route (certificates alone do not count: they route nothing).
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.any_host.is_empty() && self.default_backend.is_none()
    }
}

/// Builds the rings of a consistent-hash route's backends (other routes need none).
fn with_rings(mut route: Route) -> Route {
    if matches!(route.policy.load_balancing, LoadBalancing::ConsistentHash(_)) {
        for backend in &mut route.backends {
            let addrs: Vec<SocketAddr> = backend.endpoints.iter().map(|e| e.addr).collect();
            backend.ring = Some(Arc::new(ring::Ring::new(&addrs)));
        }
    }
    route
}

/// Most skipped candidates an [`Explanation`] lists; the rest are only counted.
pub const MAX_SKIPPED_SHOWN: usize = 10;

/// The part of the table a lookup found its route in, in the order lookup tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostGroup {
    /// Routes for exactly the request's host.
    Exact,
    /// Routes for `*.suffix`, the request's host minus its first label.
    Wildcard,
    /// Routes without a host.
    AnyHost,
    /// The Ingress `defaultBackend`, when nothing else matched.
    DefaultBackend,
}

impl HostGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            HostGroup::Exact => "exact host",
            HostGroup::Wildcard => "wildcard host",
            HostGroup::AnyHost => "any host",
            HostGroup::DefaultBackend => "default backend",
        }
    }
}

/// What the dataplane would answer, as far as the table decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A route with a ready endpoint: proxied.
    Routed,
    /// A route, but no weighted backend has a ready endpoint: 503.
    NoReadyEndpoint,
    /// No route: 404.
    NoRoute,
}

/// A route that was tried before the one that matched (its path or conditions did not match).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub group: HostGroup,
    pub route: Arc<str>,
    pub host: HostMatch,
    pub path: PathMatch,
    #[serde(skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    /// `path does not match`, or (the path matched) `a header or query match fails`.
    pub why: &'static str,
}

/// A lookup, step by step (see [`RouteTable::explain`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The host as matched: lower-case, without port.
    pub host: String,
    pub path: String,
    pub outcome: Outcome,
    /// Where the route was found; `None` with no route.
    pub group: Option<HostGroup>,
    /// The route, with its backends, their weights and ready endpoints, and its policy.
    pub route: Option<Arc<Route>>,
    /// Routes tried before, in order (at most [`MAX_SKIPPED_SHOWN`]).
    pub skipped: Vec<Skipped>,
    /// Further skipped routes, not listed.
    pub skipped_more: usize,
}

/// The explanation for people: what `wsgate check --explain` prints.
impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "host {:?} path {:?}:", self.host, self.path)?;
        for skipped in &self.skipped {
            let conditions =
                if skipped.conditions.is_empty() { String::new() } else { format!(", {}", skipped.conditions) };
            writeln!(
                f,
                "  skipped  {} ({} {}, path {}{conditions}): {}",
                skipped.route,
                skipped.group.as_str(),
                skipped.host,
                skipped.path,
                skipped.why
            )?;
        }
        if self.skipped_more > 0 {
            writeln!(f, "  skipped  {} more", self.skipped_more)?;
        }
        let (Some(route), Some(group)) = (&self.route, self.group) else {
            return writeln!(f, "  no route: the request is answered 404");
        };
        let conditions = if route.conditions.is_empty() { String::new() } else { format!(", {}", route.conditions) };
        writeln!(
            f,
            "  matched  {} ({} {}, path {}{conditions}) from {:?} {}/{}",
            route.id,
            group.as_str(),
            route.host,
            route.path,
            route.source.kind,
            route.source.namespace,
            route.source.name
        )?;
        for backend in &route.backends {
            let endpoints: Vec<String> = backend.endpoints.iter().map(|e| e.addr.to_string()).collect();
            let endpoints = if endpoints.is_empty() { "no ready endpoint".to_string() } else { endpoints.join(", ") };
            writeln!(f, "  backend  {} weight {}: {endpoints}", backend.name, backend.weight)?;
        }
        let policy = &route.policy;
        let lifetime = policy.max_lifetime.map(|d| format!(", max lifetime {}s", d.as_secs_f64())).unwrap_or_default();
        writeln!(
            f,
            "  policy   {}, handshake timeout {}s, idle timeout {}s{lifetime}",
            policy.load_balancing.describe(),
            policy.handshake_timeout.as_secs_f64(),
            policy.idle_timeout.as_secs_f64()
        )?;
        match self.outcome {
            Outcome::Routed => Ok(()),
            _ => writeln!(f, "  no ready endpoint: the request is answered 503"),
        }
    }
}

/// Lower-cases a Host header value and strips its port (and the brackets of an IPv6 literal).
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

/// The table as the dataplane sees it: swapped whole by the publisher, loaded once per request or handshake.
pub type SharedTable = Arc<arc_swap::ArcSwap<RouteTable>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: &str, host: &str, path: PathMatch, endpoints: &[u16]) -> Route {
        Route {
            id: id.into(),
            source: Source { kind: SourceKind::WebSocketRoute, namespace: "ns".into(), name: id.into() },
            host: HostMatch::parse(host),
            path,
            conditions: Conditions::default(),
            backends: vec![Backend {
                name: format!("ns/{id}:80"),
                weight: 1,
                endpoints: endpoints
                    .iter()
                    .map(|p| Endpoint { addr: SocketAddr::from(([127, 0, 0, 1], *p)) })
                    .collect(),
                ..Backend::default()
            }],
            policy: Policy::default(),
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(
            vec![
                route("exact-deep", "chat.example.com", PathMatch::prefix("/chat/admin"), &[1]),
                route("exact-chat", "chat.example.com", PathMatch::prefix("/chat"), &[2]),
                route("wild", "*.example.com", PathMatch::prefix("/"), &[3]),
                route("anyhost", "", PathMatch::exact("/health"), &[]),
            ],
            Some(route("fallback", "", PathMatch::prefix("/"), &[4])),
        )
    }

    #[test]
    fn explain_names_the_group_and_the_skipped_candidates() {
        let table = table();
        let explained = table.explain("Chat.Example.com:8080", "/chat/room");
        assert_eq!(explained.host, "chat.example.com");
        assert_eq!(explained.group, Some(HostGroup::Exact));
        assert_eq!(explained.outcome, Outcome::Routed);
        assert_eq!(explained.route.as_ref().map(|r| &*r.id), Some("exact-chat"));
        let skipped: Vec<&str> = explained.skipped.iter().map(|s| &*s.route).collect();
        assert_eq!(skipped, ["exact-deep"], "the longer path was tried first");

        // The exact group has no matching path: on to the wildcard group.
        let explained = table.explain("chat.example.com", "/other");
        assert_eq!(explained.group, Some(HostGroup::Wildcard));
        assert_eq!(explained.route.as_ref().map(|r| &*r.id), Some("wild"));
        assert_eq!(explained.skipped.len(), 2);

        let explained = table.explain("elsewhere.org", "/health");
        assert_eq!((explained.group, explained.outcome), (Some(HostGroup::AnyHost), Outcome::NoReadyEndpoint));
        let explained = table.explain("elsewhere.org", "/x");
        assert_eq!(explained.group, Some(HostGroup::DefaultBackend));
        assert_eq!(explained.skipped.iter().map(|s| s.group).collect::<Vec<_>>(), [HostGroup::AnyHost]);
        let text = explained.to_string();
        assert!(text.contains("matched  fallback (default backend *, path Prefix /)"), "{text}");
        assert!(text.contains("backend  ns/fallback:80 weight 1: 127.0.0.1:4"), "{text}");
    }

    #[test]
    fn explain_and_lookup_agree() {
        let table = table();
        let without_default = RouteTable::new(table.routes().take(4).map(|r| (**r).clone()).collect(), None);
        for t in [&table, &without_default] {
            for host in ["chat.example.com", "a.example.com", "example.com", "x.y.example.com", "", "[::1]:80"] {
                for path in ["/", "/chat", "/chat/admin/x", "/health", "/other"] {
                    let explained = t.explain(host, path);
                    assert_eq!(explained.route.as_ref(), t.lookup(host, path), "{host} {path}");
                    assert_eq!(explained.outcome == Outcome::NoRoute, explained.route.is_none());
                }
            }
        }
        let explained = without_default.explain("example.com", "/x");
        assert_eq!(explained.outcome, Outcome::NoRoute);
        assert!(explained.to_string().contains("no route: the request is answered 404"), "{explained}");
    }
}
