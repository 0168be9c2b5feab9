//! The `WebSocketRoute` custom resource (`wsgate.dev/v1alpha1`).
//!
//! These Rust types are the source of `crds/websocketroutes.wsgate.dev.yaml`: `wsgate crd` prints the
//! CustomResourceDefinition generated from them, and a test fails when the committed file differs. The
//! doc comments below become the field descriptions `kubectl explain` shows.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Routes WebSocket (and plain HTTP) traffic for a set of hostnames and a path to weighted Service
/// backends, with WebSocket-aware timeouts and load balancing.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "wsgate.dev",
    version = "v1alpha1",
    kind = "WebSocketRoute",
    namespaced,
    status = "WebSocketRouteStatus",
    shortname = "wsr",
    category = "wsgate",
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hostnames"}"#,
    printcolumn = r#"{"name":"Path","type":"string","jsonPath":".spec.path.value"}"#,
    printcolumn = r#"{"name":"Programmed","type":"string","jsonPath":".status.conditions[?(@.type==\"Programmed\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.rules) != has(self.backends)",
        "message": "set either backends (with an optional path) or rules, not both"
    },
    {
        "rule": "!has(self.rules) || !has(self.path)",
        "message": "path is not allowed with rules: write it in rules[].matches[].path"
    }
]))]
pub struct WebSocketRouteSpec {
    /// Hostnames this route answers for, matched against the request's Host header without its port.
    /// `*.example.com` matches exactly one extra label (`chat.example.com`, not `example.com` nor
    /// `a.b.example.com`). Empty or omitted matches every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub hostnames: Vec<String>,

    /// The request path to match, with `backends` (the short form of a route with one rule). Omitted
    /// means `Prefix /`. Not allowed with `rules`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatchSpec>,

    /// Services that receive the connections, chosen by weight: the short form, for every request
    /// matching `path`. Either `backends` or `rules` is required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 16))]
    pub backends: Vec<BackendRef>,

    /// Rules, each with its matches (path, headers, query parameters) and its backends: the long form,
    /// for routes that send different requests to different Services. Precedence, for a request that
    /// several matches accept (across this route and every other route on the same host): an Exact path,
    /// then the longest Prefix path, then RegularExpression paths (longest pattern first); at equal
    /// paths, more header matches, then more query matches; then the oldest route, then rule and match
    /// order. The policy fields of the route (timeouts, loadBalancing, allowedOrigins, subprotocols,
    /// limits) apply to every rule: use two WebSocketRoutes for two policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 16))]
    pub rules: Vec<RouteRule>,

    /// Handshake and idle timeouts. Omitted values use the defaults (handshake `10s`, idle `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,

    /// How new connections are spread over the ready endpoints of a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancing: Option<LoadBalancingSpec>,

    /// Browser origins allowed to open a WebSocket on this route (cross-site WebSocket hijacking
    /// protection, RFC 6455 §10.2): exact origins such as `https://chat.example.com` (scheme, host and
    /// port; the scheme's default port may be omitted), wildcards such as `https://*.example.com`
    /// (any subdomain, one or more labels, not `example.com` itself), and the literal `null` for the
    /// opaque origin of sandboxed frames and `file:` pages. A handshake whose `Origin` is not listed is
    /// answered 403 and no backend is contacted. Empty or omitted: every origin is allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 300)))]
    pub allowed_origins: Vec<String>,

    /// Whether a handshake without an `Origin` header is allowed when `allowedOrigins` is set. Browsers
    /// always send `Origin`; other clients (native apps, servers, `websocat`) usually do not. Default true;
    /// set false for a route only browsers may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_missing_origin: Option<bool>,

    /// Client addresses that may use this route at all, plain HTTP requests and WebSocket handshakes alike:
    /// a request from an address in `deny`, or (when `allow` is set) from one not in `allow`, is answered
    /// 403 before any backend is contacted. The client is the socket peer, or the address
    /// `--trusted-proxies` and `X-Forwarded-For` give. Omitted: every client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ranges: Option<SourceRangesSpec>,

    /// Cross-origin plain HTTP requests from browsers (CORS). A preflight (`OPTIONS`) from an allowed
    /// origin is answered 204 by wsgate; other answers to an allowed origin get the `Access-Control-*`
    /// headers (replacing the backend's). WebSocket handshakes are not CORS requests: see
    /// `allowedOrigins`. Omitted: no CORS headers are added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,

    /// The WebSocket subprotocols (`Sec-WebSocket-Protocol`) this route speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subprotocols: Option<Subprotocols>,

    /// Connection and handshake limits, enforced by each wsgate replica on its own (with N replicas
    /// behind one Service, the route as a whole admits up to N times these numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ConnectionLimits>,

    /// wsgate's own WebSocket pings, to keep idle NAT and load-balancer paths open and to find peers
    /// that went away without a close. Puts the route's WebSockets on the frame layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<Keepalive>,

    /// Largest WebSocket message either side may send, in bytes: the payload of a data frame and all
    /// its continuation frames, as on the wire (compressed, with permessage-deflate). A message over it
    /// closes the WebSocket: the sender gets Close 1009 (Message Too Big), the other side 1001. Puts the
    /// route's WebSockets on the frame layer. Omitted: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_message_bytes: Option<u64>,

    /// Largest body of a plain HTTP request on this route, in bytes: a request whose `Content-Length` is
    /// larger is answered 413 before any backend is contacted, and a streamed (chunked) body is cut off
    /// with 413 when it passes the limit. WebSocket messages are not counted (see `maxMessageBytes`).
    /// Omitted: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_request_body_bytes: Option<u64>,

    /// What happens to open WebSockets when their endpoint is terminating (a rollout, a scale-in) or
    /// leaves its EndpointSlice. Omitted: they stay until they end (`Keep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<Drain>,

    /// Moving long-lived WebSockets onto endpoints added by a scale-out. Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceSpec>,

    /// TLS termination on the HTTPS listener for `hostnames`: the certificate is chosen by the SNI name
    /// the client sends, so without `hostnames` this is ignored (with a warning). The route is still
    /// served over plain HTTP too, unless `redirect` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RouteTls>,
}

/// The certificate served for a route's hostnames.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteTls {
    /// Name of a Secret of type `kubernetes.io/tls` in the route's namespace, with the PEM certificate
    /// chain (leaf first) in `tls.crt` and the PEM private key in `tls.key`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Answer plain-HTTP requests for the hostnames with `308 Permanent Redirect` to the same URL over
    /// `https://` (when the HTTPS listener is on and the certificate is usable). Default false.
    /// WebSocket handshakes are redirected too, and WebSocket clients do not follow redirects: a
    /// `ws://` client then fails and must be switched to `wss://`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redirect: bool,
}

/// One rule: requests accepted by any of its matches go to its backends.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteRule {
    /// The rule applies to a request accepted by any of these matches. Empty or omitted: every request
    /// (`Prefix /`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub matches: Vec<RouteMatch>,
    /// Services that receive the rule's connections, chosen by weight.
    #[schemars(length(min = 1, max = 16))]
    pub backends: Vec<BackendRef>,
}

/// A request matches when its path and every listed header and query parameter match.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    /// The request path. Omitted means `Prefix /`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatchSpec>,
    /// Request headers that must be present with a matching value (any one value of a repeated
    /// header). Names are case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HeaderMatchSpec>,
    /// Query parameters that must be present with a matching value (the first occurrence; names and
    /// values compared as sent, without percent-decoding). Names are case-sensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub query_params: Vec<QueryParamMatchSpec>,
}

/// A request header match.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.name.matches('^[!#$%&\\'*+.^_`|~0-9A-Za-z-]+$')",
        "message": "a header name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
    }
]))]
pub struct HeaderMatchSpec {
    /// `Exact` (default) compares the whole value, case-sensitively; `RegularExpression` matches the
    /// whole value against an RE2-syntax pattern.
    #[serde(rename = "type", default)]
    pub kind: ValueMatchType,
    /// The header name, e.g. `X-Canary`.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// The value, or the pattern.
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// A query parameter match.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryParamMatchSpec {
    /// `Exact` (default) compares the whole value; `RegularExpression` matches the whole value against
    /// an RE2-syntax pattern.
    #[serde(rename = "type", default)]
    pub kind: ValueMatchType,
    /// The parameter name, e.g. `room`.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// The value, or the pattern.
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// How a header or query value is compared.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ValueMatchType {
    #[default]
    Exact,
    RegularExpression,
}

/// A path matcher, with the semantics of Ingress paths, plus regular expressions.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PathMatchSpec {
    /// `Exact` matches the path exactly (case-sensitive); `Prefix` matches element-wise on `/`, so
    /// `/chat` matches `/chat` and `/chat/room`, not `/chatroom`; `RegularExpression` matches the whole
    /// path against an RE2-syntax pattern (e.g. `/rooms/[0-9]+`; no backreferences or lookaround, so
    /// matching takes linear time). Default `Prefix`.
    #[serde(rename = "type", default)]
    pub kind: PathMatchType,
    /// The path (must start with `/`), or the pattern.
    #[schemars(length(min = 1, max = 1024))]
    pub value: String,
}

/// How a path is matched.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PathMatchType {
    Exact,
    #[default]
    Prefix,
    RegularExpression,
}

/// One weighted backend.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// The Service in the route's namespace, and its port.
    pub service: ServiceRef,
    /// Relative share of new connections among this route's backends (0 to 1000000, default 1). A
    /// backend with weight 0 receives no new connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub weight: Option<u32>,
}

/// A Service port reference.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// Name of the Service, in the same namespace as the route.
    pub name: String,
    /// The Service port, by number (`8080`) or by name (`ws`).
    pub port: IntOrString,
}

/// WebSocket timeouts, as duration strings such as `500ms`, `10s`, `5m`, `1h` or `1h30m`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// How long the backend has to answer the upgrade request; the client gets 504 after it. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<String>,
    /// How long an established WebSocket may carry no data in either direction before wsgate closes it
    /// (on the frame layer with Close 1001 to both sides; wsgate's own keepalive pings and the pongs
    /// that answer them do not count as data). Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<String>,
    /// Age at which an established WebSocket is closed however busy it is, so clients reconnect (and
    /// are balanced again) at least this often, e.g. `24h`. On the frame layer (a route with keepalive,
    /// maxMessageBytes, drain Close or rebalance) both sides get Close 1001 (Going Away); otherwise it is
    /// a TCP close, which clients see as an abnormal close (1006). Omitted: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<String>,
}

/// CORS settings, as Gateway API's HTTPCORSFilter names them.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorsSpec {
    /// Origins allowed to make cross-origin requests: exact (`https://app.example.com`), wildcard
    /// (`https://*.example.com`), `null`, or `*` alone for any origin (then `Access-Control-Allow-Origin: *`;
    /// otherwise the request's origin is echoed).
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 300)))]
    pub allow_origins: Vec<String>,
    /// `Access-Control-Allow-Methods`. Default `GET, PUT, POST, DELETE, PATCH, OPTIONS`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub allow_methods: Vec<String>,
    /// `Access-Control-Allow-Headers`. Default: ingress-nginx's list (`DNT, Keep-Alive, User-Agent,
    /// X-Requested-With, If-Modified-Since, Cache-Control, Content-Type, Range, Authorization`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allow_headers: Vec<String>,
    /// `Access-Control-Expose-Headers`. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub expose_headers: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true`. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// `Access-Control-Max-Age`, in seconds. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
}

/// Client address blocks, as CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses (`203.0.113.7`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRangesSpec {
    /// Only these clients are served (when not empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 64)))]
    pub allow: Vec<String>,
    /// These clients are refused, even inside an `allow` block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 64)))]
    pub deny: Vec<String>,
}

/// Load-balancing settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.policy) && self.policy == 'ConsistentHash') == has(self.hashOn)",
        "message": "hashOn is required with policy ConsistentHash, and allowed only with it"
    },
    {
        "rule": "!has(self.loadBoundPercent) || (has(self.policy) && self.policy == 'ConsistentHash')",
        "message": "loadBoundPercent applies only to policy ConsistentHash"
    }
]))]
pub struct LoadBalancingSpec {
    /// `LeastConnections` (default) sends a new connection to the endpoint with the fewest active ones,
    /// so long-lived sockets spread evenly over new pods; `RoundRobin` rotates; `ConsistentHash` sends
    /// the same key (see `hashOn`) to the same endpoint, for sticky sessions. The ring is a function of
    /// the endpoints alone, so every wsgate replica sends a key to the same endpoint.
    #[serde(default)]
    pub policy: LoadBalancingPolicy,
    /// What the `ConsistentHash` key is read from. Required with `ConsistentHash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOnSpec>,
    /// Bounded load for `ConsistentHash`, in percent: an endpoint takes no new connection while it holds
    /// more than (100 + loadBoundPercent)% of its backend's mean (counting the new one, rounded up) plus
    /// 2 connections of slack, so one hot key cannot overload a pod while a client reconnecting at low
    /// load stays put; such a key goes to the next endpoint on the ring while its own is over the bound
    /// (each replica counts only its own connections). 1 to 1000, default 25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub load_bound_percent: Option<u32>,
}

/// A load-balancing policy.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum LoadBalancingPolicy {
    #[default]
    LeastConnections,
    RoundRobin,
    ConsistentHash,
}

/// The source of a consistent-hash key.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type == 'SourceIP' || has(self.name)",
        "message": "name is required for type Header, Cookie and QueryParam"
    },
    {
        "rule": "self.type != 'SourceIP' || !has(self.name)",
        "message": "name is not allowed for type SourceIP"
    },
    {
        "rule": "!has(self.cookie) || self.type == 'Cookie'",
        "message": "cookie applies only to type Cookie"
    },
    {
        "rule": "!has(self.name) || self.type == 'QueryParam' || self.name.matches('^[!#$%&\\'*+.^_`|~0-9A-Za-z-]+$')",
        "message": "a header or cookie name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
    }
]))]
pub struct HashOnSpec {
    /// `Header` (a request header, e.g. `X-User-Id`), `Cookie` (a cookie; wsgate sets it with a random
    /// value when the client has none, on its first answer, a plain response or the 101), `QueryParam`
    /// (a query parameter of the request URL) or `SourceIP` (the client address, see
    /// `--trusted-proxies`). A request without the header or query parameter is balanced by least
    /// connections.
    #[serde(rename = "type")]
    pub kind: HashOnType,
    /// The header, cookie or query parameter name. Required except for `SourceIP`. Header names are
    /// case-insensitive; cookie and query names are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub name: Option<String>,
    /// How wsgate sets the cookie (type `Cookie` only). Omitted: `Path=/; HttpOnly`, a session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<AffinityCookie>,
}

/// Where a consistent-hash key comes from.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum HashOnType {
    Header,
    Cookie,
    QueryParam,
    #[serde(rename = "SourceIP")]
    SourceIp,
}

/// Attributes of the affinity cookie wsgate sets.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.sameSite) || self.sameSite != 'None' || (has(self.secure) && self.secure)",
        "message": "sameSite None requires secure: true (browsers drop such cookies otherwise)"
    }
]))]
pub struct AffinityCookie {
    /// `Path` attribute; must start with `/`. Default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub path: Option<String>,
    /// `Max-Age`, as a duration such as `1h` or `48h`. Omitted: a session cookie, dropped when the
    /// browser closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// `Secure` attribute: sent over HTTPS only. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    /// `HttpOnly` attribute: hidden from page scripts. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    /// `SameSite` attribute: `Strict`, `Lax` or `None` (which requires `secure`). Omitted: not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<SameSiteSpec>,
}

/// The `SameSite` cookie attribute.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SameSiteSpec {
    Strict,
    Lax,
    None,
}

/// Subprotocols a route speaks.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.allowed.all(p, p.matches('^[!#$%&\\'*+.^_`|~0-9A-Za-z-]+$'))",
        "message": "a subprotocol name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
    }
]))]
pub struct Subprotocols {
    /// The subprotocol names the backend speaks, e.g. `graphql-transport-ws`. Offered names that are
    /// not listed are not forwarded to the backend.
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 128)))]
    pub allowed: Vec<String>,
    /// A client must offer one of `allowed`, else its handshake is answered 400. Default true; when
    /// false, a client offering none is proxied without `Sec-WebSocket-Protocol`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

/// Limits on a route's WebSockets, per wsgate replica. Omitted: no limit.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.handshakeBurstPerClient) || has(self.handshakesPerSecondPerClient)",
        "message": "handshakeBurstPerClient needs handshakesPerSecondPerClient"
    },
    {
        "rule": "!has(self.handshakeBurstPerClient) || !has(self.handshakesPerSecondPerClient) || self.handshakeBurstPerClient >= self.handshakesPerSecondPerClient",
        "message": "handshakeBurstPerClient must be at least handshakesPerSecondPerClient"
    }
]))]
pub struct ConnectionLimits {
    /// Open WebSockets on this route; a handshake above it is answered 503 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_connections: Option<u32>,
    /// Open WebSockets per client IP address on this route; a handshake above it is answered 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_connections_per_client: Option<u32>,
    /// Sustained WebSocket handshakes per second per client IP address on this route (a token bucket);
    /// a handshake above it is answered 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub handshakes_per_second_per_client: Option<u32>,
    /// Handshakes a client may make at once before the rate applies. Default: equal to
    /// `handshakesPerSecondPerClient`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub handshake_burst_per_client: Option<u32>,
}

/// wsgate's WebSocket pings (RFC 6455 §5.5.2). wsgate sends its own Ping frames, never forwards the
/// Pongs that answer them, and forwards the endpoints' own pings and pongs untouched.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Keepalive {
    /// How often a ping is sent to each peer it is `toward`, e.g. `30s`. At least `1s`.
    pub ping_interval: String,
    /// How long a peer has to answer a ping with a Pong. A peer that does not is closed: the other side
    /// gets Close 1001 (Going Away), the silent one a Close 1001 and then the TCP close. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pong_timeout: Option<String>,
    /// Which peers are pinged: `Client` (default: the side behind NATs and mobile networks), `Backend`
    /// or `Both`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toward: Option<KeepaliveToward>,
}

/// Which peers wsgate pings.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum KeepaliveToward {
    #[default]
    Client,
    Backend,
    Both,
}

/// Draining the WebSockets of an endpoint that goes away.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.gracePeriod) || (has(self.onEndpointTermination) && self.onEndpointTermination == 'Close')",
        "message": "gracePeriod applies only to onEndpointTermination Close"
    }
]))]
pub struct Drain {
    /// `Keep` (default): WebSockets on a terminating endpoint stay until they end, or until the pod's
    /// own shutdown cuts them (clients see 1006). `Close`: `gracePeriod` after wsgate sees the endpoint
    /// terminating or removed, both sides get Close 1001 (Going Away), so clients reconnect to a live
    /// endpoint. `Close` puts the route's WebSockets on the frame layer. An endpoint that is merely not
    /// ready (failing its readiness probe, not terminating) is never drained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_endpoint_termination: Option<EndpointTermination>,
    /// How long the WebSockets of a terminating endpoint may keep running before the Close, e.g. `5s`
    /// (keep it below the pods' terminationGracePeriodSeconds). Default `0s`. Only with `Close`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<String>,
}

/// What happens to the WebSockets of a terminating endpoint.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum EndpointTermination {
    // why Close first: the schema lists values in this order, and a sample built from the first of
    // each enum (the manifests schema test) is then one where every field applies.
    Close,
    #[default]
    Keep,
}

/// Rebalancing after endpoints are added.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceSpec {
    /// When endpoints are added to a backend, close WebSockets on endpoints holding more than their
    /// fair share (this replica's WebSockets of the route over the backend's ready endpoints) with
    /// Close 1012 (Service Restart), so their clients reconnect and land on the new endpoints; never
    /// taking an endpoint below its fair share, only until every endpoint is within `tolerancePercent`.
    /// Meant for `LeastConnections` (and `RoundRobin`); with `ConsistentHash` a reconnecting key may
    /// return to its endpoint. Puts the route's WebSockets on the frame layer. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// How far above the fair share, in percent, an endpoint may stay. 0 to 100, default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub tolerance_percent: Option<u32>,
    /// Most rebalancing closes per second, per route and wsgate replica. 1 to 10000, default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_closes_per_second: Option<u32>,
}

/// Observed state, written by the controller.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketRouteStatus {
    /// `Accepted` (the spec is valid and not in conflict), `ResolvedRefs` (every backend Service and port
    /// exists) and `Programmed` (the route is served and has at least one ready endpoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The CustomResourceDefinition as YAML, exactly as committed in `crds/`.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let crd = WebSocketRoute::crd();
    let yaml = serde_yaml::to_string(&crd).expect("a CRD always serializes to YAML");
    format!("# Generated by `wsgate crd` from src/crd/mod.rs. Do not edit by hand.\n{yaml}")
}
