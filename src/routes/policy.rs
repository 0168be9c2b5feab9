//! What a route asks of the dataplane besides where to send traffic: timeouts, balancing, and the
//! admission rules of its WebSocket handshakes. Plain data, compiled from WebSocketRoute fields and
//! `wsgate.dev/` Ingress annotations; the dataplane only reads it.
//!
//! ```text
//!   Policy
//!     ├─ handshake_timeout, idle_timeout, max_lifetime
//!     ├─ load_balancing   LeastConnections | RoundRobin | ConsistentHash { on, load bound }
//!     ├─ https_redirect
//!     ├─ source_ranges   client addresses allowed / denied (403), every request and handshake
//!     ├─ redirect        answered by wsgate with a redirect instead of being proxied
//!     ├─ max_request_body_bytes   plain HTTP bodies (413 above it)
//!     ├─ cors            cross-origin plain requests from browsers (preflights answered 204 by wsgate)
//!     ├─ rewrite         the path, Host and extra headers the backend gets
//!     ├─ frames       (WebSocket sessions: keepalive pings, message limit, drain, rebalance; any of
//!     │                them puts the route's sessions on the frame layer instead of the byte tunnel)
//!     └─ admission        (WebSocket handshakes only; checked before any backend is contacted)
//!          ├─ origins       allow-list of Origin values (403 when not allowed)
//!          ├─ subprotocols  the client must offer one of these (400), others are not forwarded
//!          └─ limits        per route, per client, handshake rate per client (503 / 429)
//! ```
//!
//! [`Admission::is_open`] says whether a route checks anything at all; the dataplane skips the admission
//! step for routes where it is true.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::cidr::Cidr;
use super::duration_secs;
use super::matches::Pattern;

/// Per-route limits and choices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Time the backend has to answer the WebSocket handshake (504 after it).
    #[serde(with = "duration_secs")]
    pub handshake_timeout: Duration,
    /// Time an upgraded connection may carry no bytes in either direction before it is closed.
    #[serde(with = "duration_secs")]
    pub idle_timeout: Duration,
    /// Age at which an upgraded connection is closed, however busy (`None`: no limit): a Close 1001 on
    /// the frame layer, a TCP close on the byte tunnel.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "optional_secs")]
    pub max_lifetime: Option<Duration>,
    pub load_balancing: LoadBalancing,
    /// Answer plain-HTTP requests (WebSocket handshakes included) with 308 to `https://` when the
    /// HTTPS listener is on. Set only when the route's object has a usable certificate for its host.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub https_redirect: bool,
    /// Redirect plain HTTP to HTTPS (308) even without a certificate here: TLS is terminated in front
    /// of wsgate, which then reports `X-Forwarded-Proto: https` from a `--trusted-proxies` peer
    /// (ingress-nginx's `force-ssl-redirect`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force_https_redirect: bool,
    /// Which client addresses may use the route at all (plain requests and WebSocket handshakes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ranges: Option<SourceRanges>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RouteRedirect>,
    /// Largest plain-HTTP request body (413 above it; a declared Content-Length is refused before any
    /// backend is contacted). WebSocket frames are not counted (see `frames.max_message_bytes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_body_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
    #[serde(skip_serializing_if = "RequestRewrite::is_empty")]
    pub rewrite: RequestRewrite,
    #[serde(skip_serializing_if = "Admission::is_open")]
    pub admission: Admission,
    #[serde(skip_serializing_if = "FramePolicy::is_off")]
    pub frames: FramePolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            handshake_timeout: super::DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: super::DEFAULT_IDLE_TIMEOUT,
            max_lifetime: None,
            load_balancing: LoadBalancing::default(),
            https_redirect: false,
            force_https_redirect: false,
            source_ranges: None,
            redirect: None,
            max_request_body_bytes: None,
            cors: None,
            rewrite: RequestRewrite::default(),
            admission: Admission::default(),
            frames: FramePolicy::default(),
        }
    }
}

fn optional_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Client address blocks a route serves (`allow`, when not empty) and refuses (`deny`, checked first),
/// for the client as `--trusted-proxies` decides it. A refused client gets 403 before any backend is
/// contacted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SourceRanges {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl SourceRanges {
    /// Whether `client` may use the route.
    pub fn allows(&self, client: IpAddr) -> bool {
        !self.deny.iter().any(|c| c.contains(client))
            && (self.allow.is_empty() || self.allow.iter().any(|c| c.contains(client)))
    }
}

/// Cross-origin requests from browsers on plain HTTP (WebSocket handshakes have `allowedOrigins`). A
/// preflight (`OPTIONS` from an allowed origin) is answered 204 by wsgate; other answers to an allowed
/// origin get the `Access-Control-*` headers (replacing the backend's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorsPolicy {
    /// `None`: any origin (`Access-Control-Allow-Origin: *`); else these, and the request's `Origin`
    /// is echoed.
    pub origins: Option<OriginPolicy>,
    pub allow_methods: String,
    pub allow_headers: String,
    /// Empty: no `Access-Control-Expose-Headers`.
    pub expose_headers: String,
    pub allow_credentials: bool,
    pub max_age_secs: u64,
}

/// A route that answers with a redirect instead of proxying (plain requests and handshakes alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteRedirect {
    /// 301, 302, 307, 308, …
    pub status: u16,
    pub target: RedirectTarget,
}

/// Where a [`RouteRedirect`] sends the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectTarget {
    /// This URL, as written (the request's path is not appended).
    Url(String),
    /// Requests for `/` only, to this path on the same scheme and host (`app-root`); others are proxied.
    RootTo(String),
}

/// What the backend gets instead of what the client sent (after the hop-by-hop cleanup).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RequestRewrite {
    /// A new path for requests whose path the pattern matches (the query is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    /// The `Host` header sent to the backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Headers set on the request (replacing any the client sent), lower-case names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub set_headers: Vec<(String, String)>,
}

impl RequestRewrite {
    pub fn is_empty(&self) -> bool {
        self.path.is_none() && self.host.is_none() && self.set_headers.is_empty()
    }
}

/// A path rewrite: when `pattern` matches the start of the path, the whole path becomes `replacement`
/// with `$1`, `$2`, … (or `${name}`) replaced by the pattern's captures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathRewrite {
    pub pattern: Pattern,
    pub replacement: String,
}

impl PathRewrite {
    /// The new path, when the pattern matches `path`.
    pub fn apply(&self, path: &str) -> Option<String> {
        self.pattern.expand(path, &self.replacement)
    }
}

/// How a route spreads new connections over ready endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub enum LoadBalancing {
    /// Fewest active proxied connections; ties are broken round-robin.
    #[default]
    LeastConnections,
    RoundRobin,
    /// The same key goes to the same endpoint (a ring over the backend's endpoints, a function of the
    /// table alone, so every replica agrees), unless that endpoint is above the load bound.
    ConsistentHash(HashPolicy),
}

impl LoadBalancing {
    /// The policy with its settings, for people: `consistent_hash on header:x-user, load bound +25%`.
    pub fn describe(&self) -> String {
        match self {
            LoadBalancing::ConsistentHash(hash) => {
                format!("consistent_hash on {}, load bound +{}%", hash.on.describe(), hash.load_bound_percent)
            }
            other => other.name().to_string(),
        }
    }

    /// The policy's name, as the access log and `/debug/explain` write it.
    pub fn name(&self) -> &'static str {
        match self {
            LoadBalancing::LeastConnections => "least_connections",
            LoadBalancing::RoundRobin => "round_robin",
            LoadBalancing::ConsistentHash(_) => "consistent_hash",
        }
    }
}

/// Consistent hashing with bounded load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HashPolicy {
    pub on: HashOn,
    /// ε in percent: no endpoint takes a new connection while it holds more than (1 + ε) times the
    /// mean of its backend (25: 1.25 × mean).
    pub load_bound_percent: u32,
}

/// Default ε of the bounded load, in percent.
pub const DEFAULT_LOAD_BOUND_PERCENT: u32 = 25;

/// What the hash key is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashOn {
    /// A request header (name lower-case); requests without it are balanced by least connections.
    Header(String),
    /// A cookie; a client without it gets one set by wsgate (a random value) on its first answer.
    Cookie(CookieAffinity),
    /// A query parameter; requests without it are balanced by least connections.
    QueryParam(String),
    /// The client's IP address (as `--trusted-proxies` decides it).
    SourceIp,
}

impl HashOn {
    /// `header:x-user`, `cookie:SESSION`, `query:room`, `source_ip`: for logs and explanations.
    pub fn describe(&self) -> String {
        match self {
            HashOn::Header(name) => format!("header:{name}"),
            HashOn::Cookie(cookie) => format!("cookie:{}", cookie.name),
            HashOn::QueryParam(name) => format!("query:{name}"),
            HashOn::SourceIp => "source_ip".to_string(),
        }
    }
}

/// The affinity cookie and how wsgate sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CookieAffinity {
    pub name: String,
    /// `Path` attribute; default `/`.
    pub path: String,
    /// `Max-Age`; `None`: a session cookie.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "optional_secs")]
    pub max_age: Option<Duration>,
    pub secure: bool,
    /// `Secure` on answers to requests that came over HTTPS (here, or per a trusted proxy's
    /// `X-Forwarded-Proto`), when `secure` is not set: ingress-nginx's default.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub secure_on_https: bool,
    pub http_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_site: Option<SameSite>,
}

impl CookieAffinity {
    /// A cookie named `name` with the defaults: path `/`, a session cookie, `HttpOnly`, not `Secure`,
    /// no `SameSite`.
    pub fn named(name: &str) -> CookieAffinity {
        CookieAffinity {
            name: name.to_string(),
            path: "/".to_string(),
            max_age: None,
            secure: false,
            secure_on_https: false,
            http_only: true,
            same_site: None,
        }
    }

    /// The `Set-Cookie` value for `value` (a token wsgate generated: no quoting needed).
    pub fn set_cookie(&self, value: &str) -> String {
        let mut out = format!("{}={value}; Path={}", self.name, self.path);
        if let Some(max_age) = self.max_age {
            out.push_str(&format!("; Max-Age={}", max_age.as_secs()));
        }
        if let Some(same_site) = self.same_site {
            out.push_str("; SameSite=");
            out.push_str(same_site.as_str());
        }
        if self.secure {
            out.push_str("; Secure");
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        out
    }
}

/// The `SameSite` cookie attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// What a route's WebSocket sessions need wsgate to understand frames for (RFC 6455 §5). When none of
/// it is set ([`is_off`](FramePolicy::is_off)), sessions keep the plain byte tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct FramePolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<Keepalive>,
    /// Largest message (the payload of a data frame and its continuations, as on the wire) either side
    /// may send; the sender gets Close 1009, the other side 1001.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
    /// Sessions on an endpoint that leaves the ready set as terminating (or is removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<Rebalance>,
}

impl FramePolicy {
    /// Whether the route keeps the byte tunnel: no feature that needs frames is set.
    pub fn is_off(&self) -> bool {
        self.keepalive.is_none() && self.max_message_bytes.is_none() && self.drain.is_none() && self.rebalance.is_none()
    }
}

/// wsgate's own pings (never forwarded; their pongs are swallowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Keepalive {
    #[serde(with = "super::duration_secs")]
    pub ping_interval: Duration,
    /// How long a peer has to answer a ping before the session is closed (`pong_timeout`).
    #[serde(with = "super::duration_secs")]
    pub pong_timeout: Duration,
    pub toward: Toward,
}

/// Which peers wsgate pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Toward {
    Client,
    Backend,
    Both,
}

impl Toward {
    pub fn client(self) -> bool {
        matches!(self, Toward::Client | Toward::Both)
    }
    pub fn backend(self) -> bool {
        matches!(self, Toward::Backend | Toward::Both)
    }
}

/// Close 1001 to both sides of every session on an endpoint that is terminating or gone, `grace`
/// after wsgate sees it go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DrainPolicy {
    #[serde(with = "super::duration_secs")]
    pub grace: Duration,
}

/// Closing (1012 Service Restart) sessions on over-loaded endpoints after endpoints were added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rebalance {
    /// How far above the even share (in percent) an endpoint may stay.
    pub tolerance_percent: u32,
    pub max_closes_per_second: u32,
}

/// Default of [`Rebalance::tolerance_percent`].
pub const DEFAULT_REBALANCE_TOLERANCE_PERCENT: u32 = 10;
/// Default of [`Rebalance::max_closes_per_second`].
pub const DEFAULT_REBALANCE_CLOSES_PER_SECOND: u32 = 10;

/// Checks on a WebSocket handshake before any backend is contacted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Admission {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origins: Option<OriginPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subprotocols: Option<SubprotocolPolicy>,
    #[serde(skip_serializing_if = "RouteLimits::is_unlimited")]
    pub limits: RouteLimits,
}

impl Admission {
    /// Whether nothing is checked.
    pub fn is_open(&self) -> bool {
        self.origins.is_none() && self.subprotocols.is_none() && self.limits.is_unlimited()
    }
}

/// Which `Origin` values may open a WebSocket (RFC 6455 §10.2: the server's defence against
/// cross-site WebSocket hijacking, since browsers send cookies with the handshake).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct OriginPolicy {
    /// Serialized origins, normalized (lower case, default port dropped): `https://chat.example.com`.
    pub exact: Vec<String>,
    /// `https://*.example.com[:port]`: scheme, the suffix after `*.` and the port (default dropped);
    /// matches any subdomain of the suffix (one or more labels), not the suffix itself.
    pub wildcard: Vec<OriginWildcard>,
    /// `Origin: null` (sandboxed frames, `file:` pages, some redirects) is allowed: only when listed.
    pub allow_null: bool,
    /// A handshake without `Origin` (not from a browser: browsers always send it) is allowed.
    pub allow_missing: bool,
}

/// One `scheme://*.suffix[:port]` entry of an [`OriginPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OriginWildcard {
    pub scheme: String,
    pub suffix: String,
    pub port: Option<u16>,
}

/// Which rule of an [`OriginPolicy`] decided, for the access log and explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginVerdict {
    /// Allowed by `exact[i]`.
    Exact(usize),
    /// Allowed by `wildcard[i]`.
    Wildcard(usize),
    /// `Origin: null`, allowed.
    Null,
    /// No `Origin`, allowed.
    Missing,
    /// Refused: not listed (or `null`, or missing, when those are not allowed).
    Refused,
}

impl OriginVerdict {
    pub fn allowed(self) -> bool {
        self != OriginVerdict::Refused
    }
}

impl OriginPolicy {
    /// Decides on the `Origin` header value (`None` when the handshake has none).
    pub fn check(&self, origin: Option<&[u8]>) -> OriginVerdict {
        let Some(origin) = origin else {
            return if self.allow_missing { OriginVerdict::Missing } else { OriginVerdict::Refused };
        };
        let origin = origin.trim_ascii();
        if origin.eq_ignore_ascii_case(b"null") {
            return if self.allow_null { OriginVerdict::Null } else { OriginVerdict::Refused };
        }
        let Some(parsed) = std::str::from_utf8(origin).ok().and_then(Origin::parse) else {
            return OriginVerdict::Refused;
        };
        if !self.exact.is_empty() {
            let serialized = parsed.serialized();
            if let Some(i) = self.exact.iter().position(|e| *e == serialized) {
                return OriginVerdict::Exact(i);
            }
        }
        let found = self.wildcard.iter().position(|w| {
            w.scheme == parsed.scheme
                && w.port == parsed.port
                && parsed
                    .host
                    .strip_suffix(w.suffix.as_str())
                    .and_then(|label| label.strip_suffix('.'))
                    .is_some_and(|label| !label.is_empty())
        });
        found.map_or(OriginVerdict::Refused, OriginVerdict::Wildcard)
    }
}

impl OriginPolicy {
    /// The rule a verdict names, as written in the allow-list (`https://chat.example.com`,
    /// `https://*.example.com`, `null`), or `missing` / `refused`: for the access log and explanations.
    pub fn describe(&self, verdict: OriginVerdict) -> String {
        match verdict {
            OriginVerdict::Exact(i) => self.exact.get(i).cloned().unwrap_or_default(),
            OriginVerdict::Wildcard(i) => self.wildcard.get(i).map_or_else(String::new, |w| match w.port {
                Some(port) => format!("{}://*.{}:{port}", w.scheme, w.suffix),
                None => format!("{}://*.{}", w.scheme, w.suffix),
            }),
            OriginVerdict::Null => "null".to_string(),
            OriginVerdict::Missing => "missing".to_string(),
            OriginVerdict::Refused => "refused".to_string(),
        }
    }
}

/// A serialized origin (RFC 6454 §6.2), parsed and normalized: lower case, default port dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
}

impl Origin {
    /// Parses `scheme://host[:port]` (no path, no userinfo); `None` when it is not one.
    pub fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.split_once("://")?;
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (inside, after) = v6.split_once(']')?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            (format!("[{}]", inside.to_ascii_lowercase()), port)
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host.to_ascii_lowercase(), Some(port)),
                None => (rest.to_ascii_lowercase(), None),
            }
        };
        let bad_host = |b: u8| !(b.is_ascii_alphanumeric() || b"-._[]:*".contains(&b));
        if host.is_empty() || host.bytes().any(bad_host) {
            return None;
        }
        let port = match port {
            None => None,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse::<u16>().ok()?),
            Some(_) => return None,
        };
        let default = match scheme.as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        };
        let port = port.filter(|p| Some(*p) != default);
        Some(Origin { scheme, host, port })
    }

    /// `scheme://host[:port]`, as compared.
    pub fn serialized(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{port}", self.scheme, self.host),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }
}

/// The subprotocols a route speaks (`Sec-WebSocket-Protocol`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubprotocolPolicy {
    /// Allowed names, in the route's order. Offered names not listed are not forwarded.
    pub allowed: Vec<String>,
    /// A client must offer one of them (400 otherwise); when false, a client offering none is proxied.
    pub required: bool,
}

impl SubprotocolPolicy {
    /// The allowed names among those the client offered, in the client's order (RFC 6455 §4.1: the
    /// client's order is its preference).
    pub fn filter<'a>(&self, offered: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        offered.filter(|name| self.allowed.iter().any(|a| a == name)).collect()
    }
}

/// A token-bucket rate: `per_second` sustained, bursts of up to `burst` (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// Connection and handshake limits of one route, per wsgate replica (`None`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RouteLimits {
    /// Open WebSockets on the route (503 with `Retry-After` above it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Open WebSockets per client IP on the route (429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_client: Option<u32>,
    /// Handshakes per client IP on the route (429 with `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshakes_per_client: Option<Rate>,
}

impl RouteLimits {
    pub fn is_unlimited(&self) -> bool {
        self.max_connections.is_none()
            && self.max_connections_per_client.is_none()
            && self.handshakes_per_client.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str], null: bool, missing: bool) -> OriginPolicy {
        let mut policy = OriginPolicy { allow_null: null, allow_missing: missing, ..OriginPolicy::default() };
        for entry in list {
            let origin = Origin::parse(entry).expect("a valid origin");
            match origin.host.strip_prefix("*.") {
                Some(suffix) => policy.wildcard.push(OriginWildcard {
                    scheme: origin.scheme.clone(),
                    suffix: suffix.to_string(),
                    port: origin.port,
                }),
                None => policy.exact.push(origin.serialized()),
            }
        }
        policy
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain_wildcard() {
        let policy =
            origins(&["https://chat.example.com", "https://*.example.org", "http://localhost:3000"], false, true);
        let check = |o: &str| policy.check(Some(o.as_bytes()));
        assert_eq!(check("https://chat.example.com"), OriginVerdict::Exact(0));
        assert_eq!(check("HTTPS://Chat.Example.com:443"), OriginVerdict::Exact(0), "case and default port");
        assert_eq!(check("http://chat.example.com"), OriginVerdict::Refused, "another scheme");
        assert_eq!(check("https://chat.example.com:8443"), OriginVerdict::Refused, "another port");
        assert_eq!(check("https://evil-chat.example.com"), OriginVerdict::Refused);
        assert_eq!(check("https://chat.example.com.evil.net"), OriginVerdict::Refused);
        assert_eq!(check("https://a.example.org"), OriginVerdict::Wildcard(0));
        assert_eq!(check("https://a.b.example.org"), OriginVerdict::Wildcard(0), "any depth");
        assert_eq!(check("https://example.org"), OriginVerdict::Refused, "not the apex");
        assert_eq!(check("https://badexample.org"), OriginVerdict::Refused);
        assert_eq!(check("http://localhost:3000"), OriginVerdict::Exact(1));
        assert_eq!(check("null"), OriginVerdict::Refused, "null only when listed");
        assert_eq!(check("https://chat.example.com/path"), OriginVerdict::Refused, "not an origin");
        assert_eq!(policy.check(None), OriginVerdict::Missing);
        let strict = origins(&["https://a.example"], true, false);
        assert_eq!(strict.check(Some(b"null")), OriginVerdict::Null);
        assert_eq!(strict.check(None), OriginVerdict::Refused);
    }

    #[test]
    fn source_ranges_deny_first_then_allow_when_listed() {
        let cidr = |t: &str| t.parse::<Cidr>().expect("a CIDR");
        let ip = |t: &str| t.parse::<IpAddr>().expect("an address");
        let ranges = SourceRanges { allow: vec![cidr("10.0.0.0/8")], deny: vec![cidr("10.9.0.0/16")] };
        assert!(ranges.allows(ip("10.1.2.3")));
        assert!(!ranges.allows(ip("10.9.1.1")), "deny wins inside an allowed block");
        assert!(!ranges.allows(ip("192.168.1.1")), "not listed while allow is set");
        assert!(ranges.allows(ip("::ffff:10.1.2.3")), "an IPv4-mapped peer is its IPv4 address");
        let deny_only = SourceRanges { allow: vec![], deny: vec![cidr("127.0.0.2")] };
        assert!(deny_only.allows(ip("127.0.0.1")));
        assert!(!deny_only.allows(ip("127.0.0.2")));
    }

    #[test]
    fn cookie_attributes_are_written_as_configured() {
        let mut cookie = CookieAffinity::named("SESSION");
        assert_eq!(cookie.set_cookie("abc"), "SESSION=abc; Path=/; HttpOnly");
        cookie.max_age = Some(Duration::from_secs(3600));
        cookie.same_site = Some(SameSite::Lax);
        cookie.secure = true;
        cookie.path = "/chat".into();
        assert_eq!(cookie.set_cookie("abc"), "SESSION=abc; Path=/chat; Max-Age=3600; SameSite=Lax; Secure; HttpOnly");
    }

    #[test]
    fn subprotocols_keep_the_clients_order_and_drop_unlisted() {
        let policy = SubprotocolPolicy { allowed: vec!["chat.v2".into(), "chat.v1".into()], required: true };
        assert_eq!(policy.filter(["x", "chat.v1", "chat.v2"].into_iter()), ["chat.v1", "chat.v2"]);
        assert!(policy.filter(["x"].into_iter()).is_empty());
    }
}
