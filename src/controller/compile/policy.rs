//! Policy fields → [`Policy`]: one validation for both ways of writing a policy.
//!
//! ```text
//!   WebSocketRoute spec.timeouts, spec.loadBalancing, spec.allowedOrigins, … ─┐
//!                                                                              ├─► PolicySpec ─► compile_policy ─► Policy
//!   Ingress metadata.annotations["wsgate.dev/…"] ─► from_annotations ─────────┘        (diagnostics name the field
//!                                                                                       or the annotation that set it)
//! ```
//!
//! Annotations are first read into the same [`PolicySpec`] the CRD fields fill, so a rule (a cookie
//! name must be a token, a burst must be at least the rate, …) is written once. A field is named in
//! diagnostics by its logical CRD path (`loadBalancing.hashOn.name`), which [`FieldSite`] turns into
//! `spec.loadBalancing.hashOn.name` or `metadata.annotations["wsgate.dev/hash-on"]`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::duration::parse_duration;
use crate::crd::{
    AffinityCookie, ConnectionLimits, CorsSpec, Drain, EndpointTermination, HashOnSpec, HashOnType,
    Keepalive as KeepaliveSpec, KeepaliveToward, LoadBalancingPolicy, LoadBalancingSpec, RebalanceSpec, SameSiteSpec,
    SourceRangesSpec, Subprotocols, Timeouts, WebSocketRouteSpec,
};
use crate::routes::cidr::Cidr;
use crate::routes::policy::{
    DEFAULT_LOAD_BOUND_PERCENT, DEFAULT_REBALANCE_CLOSES_PER_SECOND, DEFAULT_REBALANCE_TOLERANCE_PERCENT, Origin,
    OriginWildcard,
};
use crate::routes::{
    self, Admission, CookieAffinity, CorsPolicy, DrainPolicy, FramePolicy, HashOn, HashPolicy, Keepalive,
    LoadBalancing, OriginPolicy, Policy, Rate, Rebalance, RouteLimits, SameSite, SourceRanges, SubprotocolPolicy,
    Toward,
};

/// Default `keepalive.pongTimeout`.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest `keepalive.pingInterval` and `keepalive.pongTimeout`.
pub const MIN_KEEPALIVE: Duration = Duration::from_secs(1);

/// Prefix of wsgate's own Ingress annotations.
pub const ANNOTATION_PREFIX: &str = "wsgate.dev/";

/// Every `wsgate.dev/` annotation wsgate reads, with the WebSocketRoute field it stands for and the
/// form of its value (for `wsgate check` messages and the README table).
pub const ANNOTATIONS: &[(&str, &str, &str)] = &[
    ("wsgate.dev/handshake-timeout", "timeouts.handshake", "a duration, e.g. 10s"),
    ("wsgate.dev/idle-timeout", "timeouts.idle", "a duration, e.g. 1h"),
    ("wsgate.dev/max-lifetime", "timeouts.maxLifetime", "a duration, e.g. 24h"),
    ("wsgate.dev/load-balancing", "loadBalancing.policy", "least-connections, round-robin or consistent-hash"),
    ("wsgate.dev/hash-on", "loadBalancing.hashOn", "header:NAME, cookie:NAME, query:NAME or source-ip"),
    ("wsgate.dev/load-bound-percent", "loadBalancing.loadBoundPercent", "1 to 1000"),
    ("wsgate.dev/cookie-path", "loadBalancing.hashOn.cookie.path", "a path starting with /"),
    ("wsgate.dev/cookie-max-age", "loadBalancing.hashOn.cookie.maxAge", "a duration, e.g. 48h"),
    ("wsgate.dev/cookie-secure", "loadBalancing.hashOn.cookie.secure", "true or false"),
    ("wsgate.dev/cookie-http-only", "loadBalancing.hashOn.cookie.httpOnly", "true or false"),
    ("wsgate.dev/cookie-same-site", "loadBalancing.hashOn.cookie.sameSite", "Strict, Lax or None"),
    ("wsgate.dev/allowed-origins", "allowedOrigins", "comma-separated origins"),
    ("wsgate.dev/allow-missing-origin", "allowMissingOrigin", "true or false"),
    ("wsgate.dev/allow-source-ranges", "sourceRanges.allow", "comma-separated CIDRs or addresses"),
    ("wsgate.dev/deny-source-ranges", "sourceRanges.deny", "comma-separated CIDRs or addresses"),
    ("wsgate.dev/subprotocols", "subprotocols.allowed", "comma-separated names"),
    ("wsgate.dev/subprotocols-required", "subprotocols.required", "true or false"),
    ("wsgate.dev/max-connections", "limits.maxConnections", "a positive integer"),
    ("wsgate.dev/max-connections-per-client", "limits.maxConnectionsPerClient", "a positive integer"),
    ("wsgate.dev/handshakes-per-second-per-client", "limits.handshakesPerSecondPerClient", "a positive integer"),
    ("wsgate.dev/handshake-burst-per-client", "limits.handshakeBurstPerClient", "a positive integer"),
    ("wsgate.dev/ping-interval", "keepalive.pingInterval", "a duration, e.g. 30s"),
    ("wsgate.dev/pong-timeout", "keepalive.pongTimeout", "a duration, e.g. 10s"),
    ("wsgate.dev/ping-toward", "keepalive.toward", "Client, Backend or Both"),
    ("wsgate.dev/max-message-bytes", "maxMessageBytes", "a positive integer"),
    ("wsgate.dev/max-request-body-bytes", "maxRequestBodyBytes", "a positive integer"),
    ("wsgate.dev/drain-on-endpoint-termination", "drain.onEndpointTermination", "Keep or Close"),
    ("wsgate.dev/drain-grace-period", "drain.gracePeriod", "a duration, e.g. 5s"),
    ("wsgate.dev/rebalance", "rebalance.enabled", "true or false"),
    ("wsgate.dev/rebalance-tolerance-percent", "rebalance.tolerancePercent", "0 to 100"),
    ("wsgate.dev/rebalance-max-closes-per-second", "rebalance.maxClosesPerSecond", "a positive integer"),
];

/// Annotations with the `wsgate.dev/` prefix that are read elsewhere (not policy fields).
pub const OTHER_ANNOTATIONS: &[&str] = &["wsgate.dev/ssl-redirect"];

/// The policy fields of one route, as written (CRD types, so annotations and spec share one check).
#[derive(Debug, Clone, Default)]
pub(super) struct PolicySpec {
    pub timeouts: Timeouts,
    pub load_balancing: Option<LoadBalancingSpec>,
    pub allowed_origins: Vec<String>,
    pub allow_missing_origin: Option<bool>,
    pub source_ranges: Option<SourceRangesSpec>,
    pub cors: Option<CorsSpec>,
    pub subprotocols: Option<Subprotocols>,
    pub limits: Option<ConnectionLimits>,
    pub keepalive: Option<KeepaliveSpec>,
    pub max_message_bytes: Option<u64>,
    pub max_request_body_bytes: Option<u64>,
    pub drain: Option<Drain>,
    pub rebalance: Option<RebalanceSpec>,
}

impl PolicySpec {
    /// The policy fields of a WebSocketRoute.
    pub fn of_route(spec: &WebSocketRouteSpec) -> PolicySpec {
        PolicySpec {
            timeouts: spec.timeouts.clone().unwrap_or_default(),
            load_balancing: spec.load_balancing.clone(),
            allowed_origins: spec.allowed_origins.clone(),
            allow_missing_origin: spec.allow_missing_origin,
            source_ranges: spec.source_ranges.clone(),
            cors: spec.cors.clone(),
            subprotocols: spec.subprotocols.clone(),
            limits: spec.limits.clone(),
            keepalive: spec.keepalive.clone(),
            max_message_bytes: spec.max_message_bytes,
            max_request_body_bytes: spec.max_request_body_bytes,
            drain: spec.drain.clone(),
            rebalance: spec.rebalance.clone(),
        }
    }

    /// These fields as a WebSocketRoute's (the inverse of [`of_route`](PolicySpec::of_route); every
    /// other field of the route is left empty).
    pub fn to_route(&self) -> WebSocketRouteSpec {
        let timeouts = (self.timeouts != Timeouts::default()).then(|| self.timeouts.clone());
        WebSocketRouteSpec {
            timeouts,
            load_balancing: self.load_balancing.clone(),
            allowed_origins: self.allowed_origins.clone(),
            allow_missing_origin: self.allow_missing_origin,
            source_ranges: self.source_ranges.clone(),
            cors: self.cors.clone(),
            subprotocols: self.subprotocols.clone(),
            limits: self.limits.clone(),
            keepalive: self.keepalive.clone(),
            max_message_bytes: self.max_message_bytes,
            max_request_body_bytes: self.max_request_body_bytes,
            drain: self.drain.clone(),
            rebalance: self.rebalance.clone(),
            ..WebSocketRouteSpec::default()
        }
    }

    /// These fields, with each one left unset taken from `under` instead; also returns the logical names
    /// of the fields taken (`timeouts.idle`, `loadBalancing`, …), so problems in them can be named.
    pub fn over(mut self, under: PolicySpec) -> (PolicySpec, Vec<&'static str>) {
        let mut taken = Vec::new();
        fn take<T>(slot: &mut Option<T>, from: Option<T>, name: &'static str, taken: &mut Vec<&'static str>) {
            if slot.is_none() && from.is_some() {
                *slot = from;
                taken.push(name);
            }
        }
        let t = &mut taken;
        take(&mut self.timeouts.handshake, under.timeouts.handshake, "timeouts.handshake", t);
        take(&mut self.timeouts.idle, under.timeouts.idle, "timeouts.idle", t);
        take(&mut self.timeouts.max_lifetime, under.timeouts.max_lifetime, "timeouts.maxLifetime", t);
        take(&mut self.load_balancing, under.load_balancing, "loadBalancing", t);
        if self.allowed_origins.is_empty() && !under.allowed_origins.is_empty() {
            self.allowed_origins = under.allowed_origins;
            t.push("allowedOrigins");
        }
        take(&mut self.allow_missing_origin, under.allow_missing_origin, "allowMissingOrigin", t);
        take(&mut self.source_ranges, under.source_ranges, "sourceRanges", t);
        take(&mut self.cors, under.cors, "cors", t);
        take(&mut self.subprotocols, under.subprotocols, "subprotocols", t);
        take(&mut self.limits, under.limits, "limits", t);
        take(&mut self.keepalive, under.keepalive, "keepalive", t);
        take(&mut self.max_message_bytes, under.max_message_bytes, "maxMessageBytes", t);
        take(&mut self.max_request_body_bytes, under.max_request_body_bytes, "maxRequestBodyBytes", t);
        take(&mut self.drain, under.drain, "drain", t);
        take(&mut self.rebalance, under.rebalance, "rebalance", t);
        (self, taken)
    }
}

/// Where a policy field was written: in a WebSocketRoute spec or in Ingress annotations.
#[derive(Debug, Clone, Copy)]
pub(super) enum FieldSite {
    Spec,
    Annotations,
}

impl FieldSite {
    /// The user-facing name of logical field `field` (`limits.maxConnections`, `allowedOrigins[2]`).
    pub fn name(self, field: &str) -> String {
        match self {
            FieldSite::Spec => format!("spec.{field}"),
            FieldSite::Annotations => {
                // The annotation whose field is the longest prefix of this one set it.
                let found = ANNOTATIONS
                    .iter()
                    .filter(|(_, logical, _)| {
                        field
                            .strip_prefix(logical)
                            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
                    })
                    .max_by_key(|(_, logical, _)| logical.len());
                match found {
                    Some((annotation, _, _)) => format!("metadata.annotations[{annotation:?}]"),
                    None => format!("metadata.annotations (wsgate.dev/ annotations for {field})"),
                }
            }
        }
    }
}

/// A problem found in a policy field: the logical field and what is wrong.
pub(super) type Problem = (String, String);

/// Validates policy fields and compiles them into a [`Policy`]; problems are pushed to `problems`
/// (any problem makes the route invalid, so the returned policy is then never served).
pub(super) fn compile_policy(spec: &PolicySpec, problems: &mut Vec<Problem>) -> Policy {
    let mut problem = |field: &str, message: String| problems.push((field.to_string(), message));

    let mut duration = |field: &str, value: Option<&String>| {
        let value = value?;
        match parse_duration(value) {
            Ok(d) => Some(d),
            Err(error) => {
                problem(field, format!("timeout {value:?} is not a valid duration: {error}"));
                None
            }
        }
    };
    let handshake_timeout =
        duration("timeouts.handshake", spec.timeouts.handshake.as_ref()).unwrap_or(routes::DEFAULT_HANDSHAKE_TIMEOUT);
    let idle_timeout = duration("timeouts.idle", spec.timeouts.idle.as_ref()).unwrap_or(routes::DEFAULT_IDLE_TIMEOUT);
    let max_lifetime = duration("timeouts.maxLifetime", spec.timeouts.max_lifetime.as_ref());

    let load_balancing = load_balancing(spec.load_balancing.as_ref(), &mut problem);
    let origins = origins(&spec.allowed_origins, spec.allow_missing_origin, &mut problem);
    let subprotocols = spec.subprotocols.as_ref().and_then(|s| subprotocols(s, &mut problem));
    let limits = spec.limits.as_ref().map(|l| limits(l, &mut problem)).unwrap_or_default();
    let frames = frames(spec, &mut problem);
    let source_ranges = spec.source_ranges.as_ref().and_then(|s| source_ranges(s, &mut problem));
    let cors = spec.cors.as_ref().map(|c| cors(c, &mut problem));

    Policy {
        handshake_timeout,
        idle_timeout,
        max_lifetime,
        load_balancing,
        https_redirect: false,
        force_https_redirect: false,
        source_ranges,
        redirect: None,
        max_request_body_bytes: spec.max_request_body_bytes,
        cors,
        rewrite: Default::default(),
        admission: Admission { origins, subprotocols, limits },
        frames,
    }
}

/// `sourceRanges`: every entry a CIDR or an address (host bits must be zero: `10.1.2.3/8` is a typo
/// more often than a wish); `None` when both lists are empty.
fn source_ranges(spec: &SourceRangesSpec, problem: &mut impl FnMut(&str, String)) -> Option<SourceRanges> {
    let mut parse = |list: &[String], field: &str| -> Vec<Cidr> {
        let mut out = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            match entry.trim().parse::<Cidr>() {
                Ok(cidr) => out.push(cidr),
                Err(error) => problem(&format!("sourceRanges.{field}[{i}]"), error.to_string()),
            }
        }
        out
    };
    let ranges = SourceRanges { allow: parse(&spec.allow, "allow"), deny: parse(&spec.deny, "deny") };
    (!spec.allow.is_empty() || !spec.deny.is_empty()).then_some(ranges)
}

/// The fields that put a route on the frame layer.
fn frames(spec: &PolicySpec, problem: &mut impl FnMut(&str, String)) -> FramePolicy {
    fn at_least(field: &str, value: &str, min: Duration, problem: &mut impl FnMut(&str, String)) -> Option<Duration> {
        match parse_duration(value) {
            Ok(d) if d >= min => Some(d),
            Ok(_) => {
                problem(field, format!("{value:?} is under {}", super::duration::format_duration(min)));
                None
            }
            Err(error) => {
                problem(field, format!("{value:?} is not a valid duration: {error}"));
                None
            }
        }
    }
    let mut duration = |field: &str, value: &str, min: Duration| at_least(field, value, min, problem);
    let keepalive = spec.keepalive.as_ref().and_then(|k| {
        let interval = duration("keepalive.pingInterval", &k.ping_interval, MIN_KEEPALIVE);
        let timeout = match &k.pong_timeout {
            Some(text) => duration("keepalive.pongTimeout", text, MIN_KEEPALIVE),
            None => Some(DEFAULT_PONG_TIMEOUT),
        };
        let toward = match k.toward.unwrap_or_default() {
            KeepaliveToward::Client => Toward::Client,
            KeepaliveToward::Backend => Toward::Backend,
            KeepaliveToward::Both => Toward::Both,
        };
        Some(Keepalive { ping_interval: interval?, pong_timeout: timeout?, toward })
    });
    let drain = spec.drain.as_ref().and_then(|d| {
        let grace = match &d.grace_period {
            Some(text) => at_least("drain.gracePeriod", text, Duration::ZERO, problem),
            None => Some(Duration::ZERO),
        };
        match d.on_endpoint_termination.unwrap_or_default() {
            EndpointTermination::Close => grace.map(|grace| DrainPolicy { grace }),
            EndpointTermination::Keep => {
                if d.grace_period.is_some() {
                    problem("drain.gracePeriod", "gracePeriod applies only to onEndpointTermination Close".into());
                }
                None
            }
        }
    });
    let rebalance = spec.rebalance.as_ref().filter(|r| r.enabled).map(|r| {
        let tolerance_percent = r.tolerance_percent.unwrap_or(DEFAULT_REBALANCE_TOLERANCE_PERCENT);
        if tolerance_percent > 100 {
            problem("rebalance.tolerancePercent", format!("{tolerance_percent} is out of range 0-100"));
        }
        let max_closes_per_second = r.max_closes_per_second.unwrap_or(DEFAULT_REBALANCE_CLOSES_PER_SECOND);
        if !(1..=10_000).contains(&max_closes_per_second) {
            problem("rebalance.maxClosesPerSecond", format!("{max_closes_per_second} is out of range 1-10000"));
        }
        Rebalance { tolerance_percent, max_closes_per_second }
    });
    if spec.max_message_bytes == Some(0) {
        problem("maxMessageBytes", "must be at least 1 (omit it for no limit)".into());
    }
    FramePolicy { keepalive, max_message_bytes: spec.max_message_bytes.filter(|n| *n > 0), drain, rebalance }
}

/// Whether `text` is an HTTP token (RFC 9110 §5.6.2): header, cookie and subprotocol names.
pub fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn load_balancing(spec: Option<&LoadBalancingSpec>, problem: &mut impl FnMut(&str, String)) -> LoadBalancing {
    let Some(spec) = spec else { return LoadBalancing::default() };
    if spec.policy != LoadBalancingPolicy::ConsistentHash {
        if spec.hash_on.is_some() {
            problem(
                "loadBalancing.hashOn",
                format!("hashOn applies only to policy ConsistentHash, not {:?}", spec.policy),
            );
        }
        if spec.load_bound_percent.is_some() {
            problem("loadBalancing.loadBoundPercent", "loadBoundPercent applies only to policy ConsistentHash".into());
        }
        return match spec.policy {
            LoadBalancingPolicy::RoundRobin => LoadBalancing::RoundRobin,
            _ => LoadBalancing::LeastConnections,
        };
    }
    let load_bound_percent = spec.load_bound_percent.unwrap_or(DEFAULT_LOAD_BOUND_PERCENT);
    if !(1..=1000).contains(&load_bound_percent) {
        problem("loadBalancing.loadBoundPercent", format!("{load_bound_percent} is out of range 1-1000"));
    }
    let Some(hash_on) = &spec.hash_on else {
        problem("loadBalancing", "policy ConsistentHash needs hashOn (Header, Cookie, QueryParam or SourceIP)".into());
        return LoadBalancing::LeastConnections;
    };
    match hash_on_key(hash_on, problem) {
        Some(on) => LoadBalancing::ConsistentHash(HashPolicy { on, load_bound_percent }),
        None => LoadBalancing::LeastConnections,
    }
}

fn hash_on_key(spec: &HashOnSpec, problem: &mut impl FnMut(&str, String)) -> Option<HashOn> {
    if spec.cookie.is_some() && spec.kind != HashOnType::Cookie {
        problem("loadBalancing.hashOn.cookie", format!("cookie applies only to type Cookie, not {:?}", spec.kind));
    }
    let name = match (spec.kind, spec.name.as_deref()) {
        (HashOnType::SourceIp, None) => return Some(HashOn::SourceIp),
        (HashOnType::SourceIp, Some(_)) => {
            problem("loadBalancing.hashOn.name", "name is not allowed for type SourceIP".into());
            return None;
        }
        (kind, None | Some("")) => {
            problem("loadBalancing.hashOn.name", format!("name is required for type {kind:?}"));
            return None;
        }
        (_, Some(name)) => name,
    };
    match spec.kind {
        HashOnType::Header | HashOnType::Cookie if !is_token(name) => {
            let message = format!(
                "{name:?} is not a valid header or cookie name (an HTTP token: letters, digits and !#$%&'*+-.^_`|~)"
            );
            problem("loadBalancing.hashOn.name", message);
            None
        }
        HashOnType::Header => Some(HashOn::Header(name.to_ascii_lowercase())),
        HashOnType::Cookie => cookie(name, spec.cookie.as_ref(), problem).map(HashOn::Cookie),
        HashOnType::QueryParam => Some(HashOn::QueryParam(name.to_string())),
        HashOnType::SourceIp => Some(HashOn::SourceIp),
    }
}

fn cookie(name: &str, spec: Option<&AffinityCookie>, problem: &mut impl FnMut(&str, String)) -> Option<CookieAffinity> {
    let mut cookie = CookieAffinity::named(name);
    let Some(spec) = spec else { return Some(cookie) };
    let mut ok = true;
    if let Some(path) = &spec.path {
        if !path.starts_with('/') || path.bytes().any(|b| b == b';' || b.is_ascii_control()) {
            problem("loadBalancing.hashOn.cookie.path", format!("{path:?} must start with / and hold no ';'"));
            ok = false;
        }
        cookie.path = path.clone();
    }
    if let Some(max_age) = &spec.max_age {
        match parse_duration(max_age) {
            Ok(d) if d >= Duration::from_secs(1) => cookie.max_age = Some(d),
            Ok(_) => {
                problem("loadBalancing.hashOn.cookie.maxAge", format!("{max_age:?} is under one second"));
                ok = false;
            }
            Err(error) => {
                problem("loadBalancing.hashOn.cookie.maxAge", format!("{max_age:?} is not a valid duration: {error}"));
                ok = false;
            }
        }
    }
    cookie.secure = spec.secure.unwrap_or(false);
    cookie.http_only = spec.http_only.unwrap_or(true);
    cookie.same_site = spec.same_site.map(|s| match s {
        SameSiteSpec::Strict => SameSite::Strict,
        SameSiteSpec::Lax => SameSite::Lax,
        SameSiteSpec::None => SameSite::None,
    });
    if cookie.same_site == Some(SameSite::None) && !cookie.secure {
        let message = "sameSite None requires secure: true (browsers drop such cookies otherwise)".to_string();
        problem("loadBalancing.hashOn.cookie.sameSite", message);
        ok = false;
    }
    ok.then_some(cookie)
}

fn origins(
    list: &[String],
    allow_missing: Option<bool>,
    problem: &mut impl FnMut(&str, String),
) -> Option<OriginPolicy> {
    origin_list("allowedOrigins", list, allow_missing, problem)
}

/// Default `cors.allowMethods`.
pub const DEFAULT_CORS_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
/// Default `cors.allowHeaders` (ingress-nginx's).
pub const DEFAULT_CORS_HEADERS: &str = "DNT, Keep-Alive, User-Agent, X-Requested-With, If-Modified-Since, Cache-Control, Content-Type, Range, Authorization";

/// `cors`: `*` alone allows any origin; anything else is an origin list like `allowedOrigins`.
fn cors(spec: &CorsSpec, problem: &mut impl FnMut(&str, String)) -> CorsPolicy {
    if spec.allow_origins.is_empty() {
        problem("cors.allowOrigins", "at least one origin (or \"*\") is required".into());
    }
    let any = spec.allow_origins.iter().any(|o| o.trim() == "*");
    if any && spec.allow_origins.len() > 1 {
        problem("cors.allowOrigins", "\"*\" allows every origin: list it alone".into());
    }
    let origins = if any { None } else { origin_list("cors.allowOrigins", &spec.allow_origins, Some(false), problem) };
    let joined = |list: &[String], default: &str| {
        if list.is_empty() { default.to_string() } else { list.iter().map(|s| s.trim()).collect::<Vec<_>>().join(", ") }
    };
    CorsPolicy {
        origins,
        allow_methods: joined(&spec.allow_methods, DEFAULT_CORS_METHODS),
        allow_headers: joined(&spec.allow_headers, DEFAULT_CORS_HEADERS),
        expose_headers: joined(&spec.expose_headers, ""),
        allow_credentials: spec.allow_credentials.unwrap_or(false),
        max_age_secs: spec.max_age.unwrap_or(5),
    }
}

fn origin_list(
    name: &str,
    list: &[String],
    allow_missing: Option<bool>,
    problem: &mut impl FnMut(&str, String),
) -> Option<OriginPolicy> {
    if list.is_empty() {
        if allow_missing == Some(false) {
            let message = "allowMissingOrigin: false needs allowedOrigins (without it every origin is allowed)";
            problem("allowMissingOrigin", message.into());
        }
        return None;
    }
    let mut policy = OriginPolicy { allow_missing: allow_missing.unwrap_or(true), ..OriginPolicy::default() };
    for (i, entry) in list.iter().enumerate() {
        let field = format!("{name}[{i}]");
        let text = entry.trim();
        if text == "null" {
            policy.allow_null = true;
            continue;
        }
        if text == "*" {
            problem(&field, "\"*\" is not an origin: omit allowedOrigins to allow every origin".into());
            continue;
        }
        let Some(origin) = Origin::parse(text) else {
            let hint = if text.contains("://") && text.split_once("://").is_some_and(|(_, rest)| rest.contains('/')) {
                " (an origin has no path: remove everything from the first / after the host)"
            } else {
                ""
            };
            problem(&field, format!("{text:?} is not an origin of the form scheme://host[:port]{hint}"));
            continue;
        };
        match origin.host.strip_prefix("*.") {
            Some(suffix) if !suffix.contains('*') && !suffix.is_empty() => policy.wildcard.push(OriginWildcard {
                scheme: origin.scheme,
                suffix: suffix.to_string(),
                port: origin.port,
            }),
            _ if origin.host.contains('*') => {
                let message = format!(
                    "{text:?}: a wildcard is allowed only as the whole first label, as in https://*.example.com"
                );
                problem(&field, message);
            }
            _ => policy.exact.push(origin.serialized()),
        }
    }
    Some(policy)
}

fn subprotocols(spec: &Subprotocols, problem: &mut impl FnMut(&str, String)) -> Option<SubprotocolPolicy> {
    if spec.allowed.is_empty() {
        problem("subprotocols.allowed", "at least one subprotocol is required".into());
        return None;
    }
    let mut allowed: Vec<String> = Vec::new();
    for (i, name) in spec.allowed.iter().enumerate() {
        if !is_token(name) {
            let message = format!(
                "{name:?} is not a valid subprotocol name (an HTTP token: letters, digits and !#$%&'*+-.^_`|~)"
            );
            problem(&format!("subprotocols.allowed[{i}]"), message);
        } else if allowed.contains(name) {
            problem(&format!("subprotocols.allowed[{i}]"), format!("{name:?} is listed twice"));
        } else {
            allowed.push(name.clone());
        }
    }
    Some(SubprotocolPolicy { allowed, required: spec.required.unwrap_or(true) })
}

fn limits(spec: &ConnectionLimits, problem: &mut impl FnMut(&str, String)) -> RouteLimits {
    let mut positive = |field: &str, value: Option<u32>| match value {
        Some(0) => {
            problem(field, "must be at least 1 (omit it for no limit)".into());
            None
        }
        other => other,
    };
    let max_connections = positive("limits.maxConnections", spec.max_connections);
    let max_connections_per_client = positive("limits.maxConnectionsPerClient", spec.max_connections_per_client);
    let rate = positive("limits.handshakesPerSecondPerClient", spec.handshakes_per_second_per_client);
    let burst = positive("limits.handshakeBurstPerClient", spec.handshake_burst_per_client);
    let handshakes_per_client = match (rate, burst) {
        (None, None) => None,
        (None, Some(_)) => {
            problem(
                "limits.handshakeBurstPerClient",
                "handshakeBurstPerClient needs handshakesPerSecondPerClient".into(),
            );
            None
        }
        (Some(per_second), burst) => {
            let burst = burst.unwrap_or(per_second);
            if burst < per_second {
                let message = format!(
                    "handshakeBurstPerClient ({burst}) must be at least handshakesPerSecondPerClient ({per_second})"
                );
                problem("limits.handshakeBurstPerClient", message);
            }
            Some(Rate { per_second, burst })
        }
    };
    RouteLimits { max_connections, max_connections_per_client, handshakes_per_client }
}

/// What the `wsgate.dev/` annotations of an Ingress say.
#[derive(Debug, Default)]
pub(super) struct Annotated {
    pub spec: PolicySpec,
    /// Values that could not be read: (annotation, message). Each makes the Ingress invalid.
    pub errors: Vec<(String, String)>,
    /// `wsgate.dev/` annotations wsgate does not know: (annotation, message). Ignored, reported.
    pub unknown: Vec<(String, String)>,
}

/// Reads the `wsgate.dev/` policy annotations into a [`PolicySpec`]. Values are parsed for their form
/// only (a number, a boolean, a list); [`compile_policy`] then checks them like CRD fields.
pub(super) fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Annotated {
    let mut out = Annotated::default();
    let Some(annotations) = annotations else { return out };
    let mut lb = LoadBalancingSpec::default();
    let mut limits = ConnectionLimits::default();
    let mut cookie = AffinityCookie::default();
    let mut cookie_set: Option<String> = None;
    let mut keepalive = KeepaliveSpec::default();
    let mut drain = Drain::default();
    let mut rebalance = RebalanceSpec::default();
    for (key, value) in annotations.range(ANNOTATION_PREFIX.to_string()..) {
        if !key.starts_with(ANNOTATION_PREFIX) {
            break;
        }
        if OTHER_ANNOTATIONS.contains(&key.as_str()) {
            continue;
        }
        let Some(&(_, _, form)) = ANNOTATIONS.iter().find(|(name, _, _)| name == key) else {
            out.unknown.push((key.clone(), unknown_message(key)));
            continue;
        };
        let value = value.trim();
        let mut bad = || out.errors.push((key.clone(), format!("{key} must be {form}, not {value:?}")));
        let spec = &mut out.spec;
        let boolean = |v: &str| match v {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        let number = |v: &str| v.parse::<u32>().ok();
        let list = |v: &str| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        let text = || Some(value.to_string());
        // Each branch stores the value and says whether it had the annotation's form.
        let parsed = match key.trim_start_matches(ANNOTATION_PREFIX) {
            "handshake-timeout" => store(&mut spec.timeouts.handshake, text()),
            "idle-timeout" => store(&mut spec.timeouts.idle, text()),
            "max-lifetime" => store(&mut spec.timeouts.max_lifetime, text()),
            "load-balancing" => {
                let policy = match value.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
                    "leastconnections" => Some(LoadBalancingPolicy::LeastConnections),
                    "roundrobin" => Some(LoadBalancingPolicy::RoundRobin),
                    "consistenthash" => Some(LoadBalancingPolicy::ConsistentHash),
                    _ => None,
                };
                policy.map(|policy| lb.policy = policy).is_some()
            }
            "hash-on" => store(&mut lb.hash_on, hash_on_annotation(value)),
            "load-bound-percent" => store(&mut lb.load_bound_percent, number(value)),
            "cookie-path" => store(&mut cookie.path, text()),
            "cookie-max-age" => store(&mut cookie.max_age, text()),
            "cookie-secure" => store(&mut cookie.secure, boolean(value)),
            "cookie-http-only" => store(&mut cookie.http_only, boolean(value)),
            "cookie-same-site" => {
                let same_site = match value.to_ascii_lowercase().as_str() {
                    "strict" => Some(SameSiteSpec::Strict),
                    "lax" => Some(SameSiteSpec::Lax),
                    "none" => Some(SameSiteSpec::None),
                    _ => None,
                };
                store(&mut cookie.same_site, same_site)
            }
            "allowed-origins" => {
                spec.allowed_origins = list(value);
                true
            }
            "allow-missing-origin" => store(&mut spec.allow_missing_origin, boolean(value)),
            "allow-source-ranges" => {
                spec.source_ranges.get_or_insert_with(SourceRangesSpec::default).allow = list(value);
                true
            }
            "deny-source-ranges" => {
                spec.source_ranges.get_or_insert_with(SourceRangesSpec::default).deny = list(value);
                true
            }
            "subprotocols" => {
                spec.subprotocols.get_or_insert_with(Subprotocols::default).allowed = list(value);
                true
            }
            "subprotocols-required" => {
                store(&mut spec.subprotocols.get_or_insert_with(Subprotocols::default).required, boolean(value))
            }
            "max-connections" => store(&mut limits.max_connections, number(value)),
            "max-connections-per-client" => store(&mut limits.max_connections_per_client, number(value)),
            "handshakes-per-second-per-client" => store(&mut limits.handshakes_per_second_per_client, number(value)),
            "handshake-burst-per-client" => store(&mut limits.handshake_burst_per_client, number(value)),
            "ping-interval" => {
                keepalive.ping_interval = value.to_string();
                true
            }
            "pong-timeout" => store(&mut keepalive.pong_timeout, text()),
            "ping-toward" => {
                let toward = match value.to_ascii_lowercase().as_str() {
                    "client" => Some(KeepaliveToward::Client),
                    "backend" => Some(KeepaliveToward::Backend),
                    "both" => Some(KeepaliveToward::Both),
                    _ => None,
                };
                store(&mut keepalive.toward, toward)
            }
            "max-message-bytes" => store(&mut spec.max_message_bytes, value.parse::<u64>().ok()),
            "max-request-body-bytes" => {
                store(&mut spec.max_request_body_bytes, value.parse::<u64>().ok().filter(|n| *n > 0))
            }
            "drain-on-endpoint-termination" => {
                let on = match value.to_ascii_lowercase().as_str() {
                    "keep" => Some(EndpointTermination::Keep),
                    "close" => Some(EndpointTermination::Close),
                    _ => None,
                };
                store(&mut drain.on_endpoint_termination, on)
            }
            "drain-grace-period" => store(&mut drain.grace_period, text()),
            "rebalance" => boolean(value).map(|on| rebalance.enabled = on).is_some(),
            "rebalance-tolerance-percent" => store(&mut rebalance.tolerance_percent, number(value)),
            "rebalance-max-closes-per-second" => store(&mut rebalance.max_closes_per_second, number(value)),
            _ => unreachable!("every name in ANNOTATIONS has a branch"),
        };
        if !parsed {
            bad();
        }
        if key.starts_with("wsgate.dev/cookie-") && cookie_set.is_none() {
            cookie_set = Some(key.clone());
        }
    }
    let has = |names: &[&str]| names.iter().any(|name| annotations.contains_key(&format!("{ANNOTATION_PREFIX}{name}")));
    // why: `hash-on` alone is unambiguous; asking for `load-balancing: consistent-hash` too is noise.
    if lb.hash_on.is_some() && !has(&["load-balancing"]) {
        lb.policy = LoadBalancingPolicy::ConsistentHash;
    }
    if let Some(first) = cookie_set {
        match lb.hash_on.as_mut().filter(|h| h.kind == HashOnType::Cookie) {
            Some(hash_on) => hash_on.cookie = Some(cookie),
            None => {
                let message = format!("{first} needs wsgate.dev/hash-on: cookie:NAME (it sets that cookie)");
                out.errors.push((first, message));
            }
        }
    }
    if has(&["load-balancing", "hash-on", "load-bound-percent"]) {
        out.spec.load_balancing = Some(lb);
    }
    if has(&[
        "max-connections",
        "max-connections-per-client",
        "handshakes-per-second-per-client",
        "handshake-burst-per-client",
    ]) {
        out.spec.limits = Some(limits);
    }
    if has(&["ping-interval", "pong-timeout", "ping-toward"]) {
        if keepalive.ping_interval.is_empty() {
            let key = ["pong-timeout", "ping-toward"]
                .iter()
                .map(|name| format!("{ANNOTATION_PREFIX}{name}"))
                .find(|key| annotations.contains_key(key))
                .unwrap_or_default();
            out.errors.push((key.clone(), format!("{key} needs wsgate.dev/ping-interval")));
        } else {
            out.spec.keepalive = Some(keepalive);
        }
    }
    if has(&["drain-on-endpoint-termination", "drain-grace-period"]) {
        out.spec.drain = Some(drain);
    }
    if has(&["rebalance", "rebalance-tolerance-percent", "rebalance-max-closes-per-second"]) {
        out.spec.rebalance = Some(rebalance);
    }
    out
}

/// Stores `value` when it parsed; says whether it did.
fn store<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    let parsed = value.is_some();
    if parsed {
        *slot = value;
    }
    parsed
}

/// `header:NAME`, `cookie:NAME`, `query:NAME` (or `queryparam:NAME`), `source-ip`.
fn hash_on_annotation(value: &str) -> Option<HashOnSpec> {
    let lower = value.to_ascii_lowercase();
    if matches!(lower.as_str(), "source-ip" | "sourceip" | "source_ip") {
        return Some(HashOnSpec { kind: HashOnType::SourceIp, name: None, cookie: None });
    }
    let (kind, name) = value.split_once(':')?;
    let kind = match kind.trim().to_ascii_lowercase().as_str() {
        "header" => HashOnType::Header,
        "cookie" => HashOnType::Cookie,
        "query" | "queryparam" => HashOnType::QueryParam,
        _ => return None,
    };
    Some(HashOnSpec { kind, name: Some(name.trim().to_string()), cookie: None })
}

/// "unknown annotation …; did you mean …?" with the closest known name, when one is close.
fn unknown_message(key: &str) -> String {
    let known = ANNOTATIONS.iter().map(|(name, _, _)| *name).chain(OTHER_ANNOTATIONS.iter().copied());
    let closest = known.map(|name| (edit_distance(key, name), name)).min();
    match closest {
        Some((distance, name)) if distance <= 3 => {
            format!("unknown annotation {key} (ignored); did you mean {name}?")
        }
        _ => format!("unknown annotation {key} (ignored); see the README for the wsgate.dev/ annotations"),
    }
}

/// Levenshtein distance, for "did you mean" (short strings only: annotation names).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn compiled(spec: &PolicySpec) -> (Policy, Vec<Problem>) {
        let mut problems = Vec::new();
        let policy = compile_policy(spec, &mut problems);
        (policy, problems)
    }

    #[test]
    fn cors_takes_defaults_and_star_only_alone() {
        let spec = |origins: &[&str]| PolicySpec {
            cors: Some(CorsSpec {
                allow_origins: origins.iter().map(|o| o.to_string()).collect(),
                ..CorsSpec::default()
            }),
            ..PolicySpec::default()
        };
        let (policy, problems) = compiled(&spec(&["*"]));
        assert!(problems.is_empty(), "{problems:?}");
        let cors = policy.cors.expect("a CORS policy");
        assert_eq!(cors.origins, None, "* is any origin");
        assert_eq!(
            (cors.allow_methods.as_str(), cors.allow_credentials, cors.max_age_secs),
            (DEFAULT_CORS_METHODS, false, 5)
        );
        let (policy, problems) = compiled(&spec(&["https://app.example.com"]));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            policy.cors.and_then(|c| c.origins).map(|o| o.exact),
            Some(vec!["https://app.example.com".to_string()])
        );
        let (_, problems) = compiled(&spec(&["*", "https://app.example.com"]));
        assert_eq!(problems.len(), 1, "{problems:?}");
        let (_, problems) = compiled(&spec(&["https://app.example.com/path"]));
        assert_eq!(problems.first().map(|p| p.0.as_str()), Some("cors.allowOrigins[0]"), "{problems:?}");
    }

    #[test]
    fn annotations_and_spec_fields_compile_to_the_same_policy() {
        let annotated = from_annotations(Some(&annotations(&[
            ("wsgate.dev/hash-on", "cookie:SESSION"),
            ("wsgate.dev/cookie-max-age", "48h"),
            ("wsgate.dev/cookie-secure", "true"),
            ("wsgate.dev/cookie-same-site", "None"),
            ("wsgate.dev/allowed-origins", "https://app.example.com, https://*.example.com:8443, null"),
            ("wsgate.dev/subprotocols", "graphql-transport-ws"),
            ("wsgate.dev/max-connections-per-client", "10"),
            ("wsgate.dev/handshakes-per-second-per-client", "5"),
            ("wsgate.dev/max-lifetime", "24h"),
            ("wsgate.dev/ping-interval", "20s"),
            ("wsgate.dev/ping-toward", "both"),
            ("wsgate.dev/max-message-bytes", "65536"),
            ("wsgate.dev/drain-on-endpoint-termination", "Close"),
            ("wsgate.dev/drain-grace-period", "3s"),
            ("wsgate.dev/rebalance", "true"),
            ("wsgate.dev/allow-source-ranges", "10.0.0.0/8, 192.168.1.7"),
            ("wsgate.dev/max-request-body-bytes", "1048576"),
            ("wsgate.dev/deny-source-ranges", "10.9.0.0/16"),
        ])));
        assert!(annotated.errors.is_empty() && annotated.unknown.is_empty(), "{annotated:?}");
        let spec = PolicySpec {
            timeouts: Timeouts { max_lifetime: Some("24h".into()), ..Timeouts::default() },
            load_balancing: Some(LoadBalancingSpec {
                policy: LoadBalancingPolicy::ConsistentHash,
                hash_on: Some(HashOnSpec {
                    kind: HashOnType::Cookie,
                    name: Some("SESSION".into()),
                    cookie: Some(AffinityCookie {
                        max_age: Some("48h".into()),
                        secure: Some(true),
                        same_site: Some(SameSiteSpec::None),
                        ..AffinityCookie::default()
                    }),
                }),
                load_bound_percent: None,
            }),
            allowed_origins: vec!["https://app.example.com".into(), "https://*.example.com:8443".into(), "null".into()],
            allow_missing_origin: None,
            source_ranges: Some(SourceRangesSpec {
                allow: vec!["10.0.0.0/8".into(), "192.168.1.7".into()],
                deny: vec!["10.9.0.0/16".into()],
            }),
            cors: None,
            subprotocols: Some(Subprotocols { allowed: vec!["graphql-transport-ws".into()], required: None }),
            limits: Some(ConnectionLimits {
                max_connections_per_client: Some(10),
                handshakes_per_second_per_client: Some(5),
                ..ConnectionLimits::default()
            }),
            keepalive: Some(KeepaliveSpec {
                ping_interval: "20s".into(),
                pong_timeout: None,
                toward: Some(KeepaliveToward::Both),
            }),
            max_message_bytes: Some(65536),
            max_request_body_bytes: Some(1 << 20),
            drain: Some(Drain {
                on_endpoint_termination: Some(EndpointTermination::Close),
                grace_period: Some("3s".into()),
            }),
            rebalance: Some(RebalanceSpec { enabled: true, ..RebalanceSpec::default() }),
        };
        let (from_spec, problems) = compiled(&spec);
        assert!(problems.is_empty(), "{problems:?}");
        let (from_annotations, problems) = compiled(&annotated.spec);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(from_spec, from_annotations);

        let LoadBalancing::ConsistentHash(hash) = &from_spec.load_balancing else { panic!("{from_spec:?}") };
        assert_eq!(hash.load_bound_percent, 25);
        let HashOn::Cookie(cookie) = &hash.on else { panic!("{hash:?}") };
        assert_eq!(cookie.set_cookie("v"), "SESSION=v; Path=/; Max-Age=172800; SameSite=None; Secure; HttpOnly");
        let origins = from_spec.admission.origins.as_ref().expect("origins");
        assert_eq!(origins.exact, ["https://app.example.com"]);
        assert_eq!((origins.wildcard[0].suffix.as_str(), origins.wildcard[0].port), ("example.com", Some(8443)));
        assert!(origins.allow_null && origins.allow_missing);
        let rate = from_spec.admission.limits.handshakes_per_client.expect("rate");
        assert_eq!((rate.per_second, rate.burst), (5, 5));
        assert_eq!(from_spec.max_lifetime, Some(Duration::from_secs(86_400)));
        let frames = &from_spec.frames;
        let keepalive = frames.keepalive.expect("keepalive");
        assert_eq!(
            (keepalive.ping_interval, keepalive.pong_timeout, keepalive.toward),
            (Duration::from_secs(20), DEFAULT_PONG_TIMEOUT, Toward::Both)
        );
        assert_eq!(frames.max_message_bytes, Some(65536));
        assert_eq!(frames.drain, Some(DrainPolicy { grace: Duration::from_secs(3) }));
        assert_eq!(frames.rebalance, Some(Rebalance { tolerance_percent: 10, max_closes_per_second: 10 }));
    }

    #[test]
    fn frame_fields_are_checked_and_keep_is_the_byte_tunnel() {
        let spec = |keepalive: Option<KeepaliveSpec>, drain: Option<Drain>, max: Option<u64>| PolicySpec {
            keepalive,
            drain,
            max_message_bytes: max,
            ..PolicySpec::default()
        };
        let ka = |interval: &str, timeout: Option<&str>| {
            Some(KeepaliveSpec { ping_interval: interval.into(), pong_timeout: timeout.map(Into::into), toward: None })
        };
        let (policy, problems) = compiled(&spec(None, None, None));
        assert!(problems.is_empty() && policy.frames.is_off());
        let keep = Some(Drain { on_endpoint_termination: Some(EndpointTermination::Keep), grace_period: None });
        let (policy, problems) = compiled(&spec(None, keep, None));
        assert!(problems.is_empty() && policy.frames.is_off(), "Keep is today's byte tunnel: {policy:?}");
        let (_, problems) = compiled(&spec(ka("500ms", None), None, None));
        assert_eq!(problems, [("keepalive.pingInterval".to_string(), "\"500ms\" is under 1s".to_string())]);
        let (_, problems) = compiled(&spec(ka("30s", Some("soon")), None, Some(0)));
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["keepalive.pongTimeout", "maxMessageBytes"]);
        let grace_with_keep = Some(Drain { on_endpoint_termination: None, grace_period: Some("5s".into()) });
        let (_, problems) = compiled(&spec(None, grace_with_keep, None));
        assert_eq!(problems[0].0, "drain.gracePeriod");
        let (policy, problems) = compiled(&spec(ka("30s", None), None, None));
        assert!(problems.is_empty() && !policy.frames.is_off());
        assert_eq!(policy.frames.keepalive.map(|k| k.toward), Some(Toward::Client), "toward defaults to Client");
        let lonely =
            from_annotations(Some(&BTreeMap::from([("wsgate.dev/pong-timeout".to_string(), "5s".to_string())])));
        assert_eq!(lonely.errors[0].1, "wsgate.dev/pong-timeout needs wsgate.dev/ping-interval");
    }

    #[test]
    fn every_rule_names_the_field_it_refuses() {
        let spec = PolicySpec {
            load_balancing: Some(LoadBalancingSpec {
                policy: LoadBalancingPolicy::ConsistentHash,
                hash_on: Some(HashOnSpec { kind: HashOnType::Cookie, name: Some("bad name".into()), cookie: None }),
                load_bound_percent: Some(0),
            }),
            allowed_origins: vec!["https://a.example.com/".into(), "*".into(), "https://a.*.com".into()],
            subprotocols: Some(Subprotocols {
                allowed: vec!["chat".into(), "chat".into(), "a b".into()],
                required: None,
            }),
            limits: Some(ConnectionLimits {
                max_connections: Some(0),
                handshakes_per_second_per_client: Some(10),
                handshake_burst_per_client: Some(2),
                ..ConnectionLimits::default()
            }),
            ..PolicySpec::default()
        };
        let (_, problems) = compiled(&spec);
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "loadBalancing.loadBoundPercent",
                "loadBalancing.hashOn.name",
                "allowedOrigins[0]",
                "allowedOrigins[1]",
                "allowedOrigins[2]",
                "subprotocols.allowed[1]",
                "subprotocols.allowed[2]",
                "limits.maxConnections",
                "limits.handshakeBurstPerClient",
            ],
            "{problems:#?}"
        );
        assert!(problems[2].1.contains("has no path"), "{}", problems[2].1);
    }

    #[test]
    fn consistent_hash_needs_a_key_and_a_key_needs_consistent_hash() {
        let lb = |policy, hash_on| PolicySpec {
            load_balancing: Some(LoadBalancingSpec { policy, hash_on, load_bound_percent: None }),
            ..PolicySpec::default()
        };
        let (_, problems) = compiled(&lb(LoadBalancingPolicy::ConsistentHash, None));
        assert_eq!(problems[0].0, "loadBalancing");
        let source_ip = HashOnSpec { kind: HashOnType::SourceIp, name: None, cookie: None };
        let (_, problems) = compiled(&lb(LoadBalancingPolicy::RoundRobin, Some(source_ip.clone())));
        assert_eq!(problems[0].0, "loadBalancing.hashOn");
        let (policy, problems) = compiled(&lb(LoadBalancingPolicy::ConsistentHash, Some(source_ip)));
        assert!(problems.is_empty());
        assert_eq!(policy.load_balancing.name(), "consistent_hash");
        let header = HashOnSpec { kind: HashOnType::Header, name: Some("X-User".into()), cookie: None };
        let (policy, _) = compiled(&lb(LoadBalancingPolicy::ConsistentHash, Some(header)));
        assert!(
            matches!(policy.load_balancing, LoadBalancing::ConsistentHash(HashPolicy { on: HashOn::Header(ref h), .. }) if h == "x-user")
        );
    }

    #[test]
    fn annotation_values_of_the_wrong_form_and_unknown_names_are_reported() {
        let annotated = from_annotations(Some(&annotations(&[
            ("wsgate.dev/max-connections", "ten"),
            ("wsgate.dev/hash-on", "body:x"),
            ("wsgate.dev/allowed-origin", "https://a.example.com"),
            ("wsgate.dev/frobnicate", "yes"),
            ("wsgate.dev/ssl-redirect", "true"),
            ("example.com/other", "x"),
        ])));
        let errors: Vec<&str> = annotated.errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(errors, ["wsgate.dev/hash-on", "wsgate.dev/max-connections"]);
        assert!(annotated.errors[1].1.contains("must be a positive integer, not \"ten\""), "{:?}", annotated.errors);
        let unknown: Vec<&str> = annotated.unknown.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(
            unknown,
            [
                "unknown annotation wsgate.dev/allowed-origin (ignored); did you mean wsgate.dev/allowed-origins?",
                "unknown annotation wsgate.dev/frobnicate (ignored); see the README for the wsgate.dev/ annotations",
            ]
        );
    }

    #[test]
    fn annotation_fields_are_named_by_their_annotation() {
        assert_eq!(
            FieldSite::Annotations.name("loadBalancing.hashOn.name"),
            "metadata.annotations[\"wsgate.dev/hash-on\"]"
        );
        assert_eq!(
            FieldSite::Annotations.name("allowedOrigins[2]"),
            "metadata.annotations[\"wsgate.dev/allowed-origins\"]"
        );
        assert_eq!(
            FieldSite::Annotations.name("loadBalancing.hashOn.cookie.maxAge"),
            "metadata.annotations[\"wsgate.dev/cookie-max-age\"]"
        );
        assert_eq!(FieldSite::Spec.name("limits.maxConnections"), "spec.limits.maxConnections");
    }
}
