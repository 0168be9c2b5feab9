//! ingress-nginx annotations (`nginx.ingress.kubernetes.io/…`) under `--nginx-compat`: translated into
//! the same [`PolicySpec`] the `wsgate.dev/` annotations and the WebSocketRoute fields fill, with
//! ingress-nginx's meaning and units, and every annotation that is not translated reported.
//!
//! ```text
//!   metadata.annotations["nginx.ingress.kubernetes.io/…"]
//!        │  NGINX_ANNOTATIONS: one row per annotation (or family): how wsgate supports it
//!        ▼
//!   translate() ─► PolicySpec (the fields below)  +  Notes (what differs, what is not translated)
//!                      │ wsgate.dev/ annotations set on the same Ingress win, field by field
//!                      ▼
//!                  compile_policy (the one validation)
//! ```
//!
//! The table is also what `docs/migrating-from-ingress-nginx.md` is generated from (see
//! [`markdown_table`]) and what `wsgate migrate` reports per Ingress. Snippets are never executed.
//!
//! How ingress-nginx treats a value it cannot parse decides what wsgate does with it: where
//! ingress-nginx falls back to its default (timeouts, affinity), wsgate does too and warns; where it
//! rejects the Ingress (limits, hash keys, load-balance), the Ingress is not served.

use std::collections::BTreeMap;

use super::policy::PolicySpec;
use crate::crd::{
    AffinityCookie, ConnectionLimits, CorsSpec, HashOnSpec, HashOnType, LoadBalancingPolicy, LoadBalancingSpec,
    SameSiteSpec, SourceRangesSpec,
};
use crate::routes::cidr::Cidr;
use crate::routes::policy::Origin;
use crate::routes::{RedirectTarget, RouteRedirect};
use http::HeaderValue;

/// Prefix of ingress-nginx's annotations.
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// ingress-nginx's default session cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "INGRESSCOOKIE";

/// ingress-nginx's default `limit-burst-multiplier`.
const DEFAULT_BURST_MULTIPLIER: u32 = 5;

/// The load bound that stands for `affinity-mode: persistent`: the largest wsgate accepts, so an
/// endpoint keeps its cookies until it is ten times over the mean.
const PERSISTENT_LOAD_BOUND_PERCENT: u32 = 1000;

/// How wsgate supports one ingress-nginx annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Support {
    /// Translated, with ingress-nginx's meaning.
    Same,
    /// Translated; what differs is in the note.
    Differs,
    /// Accepted and changes nothing (the note says why that is right).
    NoEffect,
    /// Not translated; the Ingress is served without it (the note gives the nearest wsgate field, or
    /// why there is none).
    Unsupported,
    /// Not translated, and serving the Ingress without it would drop a protection or send traffic
    /// where its author did not want it: the Ingress is not served.
    Refused,
}

impl Support {
    /// As the migration page and `wsgate migrate` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Support::Same => "supported",
            Support::Differs => "differs",
            Support::NoEffect => "accepted, no effect",
            Support::Unsupported => "not supported",
            Support::Refused => "not supported (Ingress not served)",
        }
    }
}

/// One row of the table: an annotation (without the prefix), or a family ending in `*`.
#[derive(Debug, Clone, Copy)]
pub struct NginxAnnotation {
    pub name: &'static str,
    pub support: Support,
    /// The wsgate field it maps to (a WebSocketRoute path), or the nearest one; `""` when none.
    pub field: &'static str,
    pub note: &'static str,
}

const fn row(name: &'static str, support: Support, field: &'static str, note: &'static str) -> NginxAnnotation {
    NginxAnnotation { name, support, field, note }
}

use Support::{Differs, NoEffect, Refused, Same, Unsupported};

/// Every ingress-nginx annotation wsgate knows, in the order of the migration page.
pub const NGINX_ANNOTATIONS: &[NginxAnnotation] = &[
    row(
        "proxy-read-timeout",
        Differs,
        "timeouts.idle",
        "whole seconds, as in ingress-nginx; the larger of proxy-read-timeout and proxy-send-timeout. wsgate's idle \
         timeout counts both directions: a WebSocket closes after that long with no bytes either way (ingress-nginx \
         closed it when the backend alone was silent that long). Without it, wsgate's default is 1h, not \
         ingress-nginx's 60s",
    ),
    row(
        "proxy-send-timeout",
        Differs,
        "timeouts.idle",
        "whole seconds; see proxy-read-timeout (wsgate has one idle timeout for both directions)",
    ),
    row(
        "proxy-connect-timeout",
        Differs,
        "timeouts.handshake",
        "whole seconds; wsgate's handshake timeout covers connecting to the backend and its answer to the WebSocket \
         handshake (the TCP connect alone is capped at 3s)",
    ),
    row(
        "affinity",
        Same,
        "loadBalancing.hashOn (type Cookie)",
        "`cookie`: consistent hashing on a cookie wsgate sets on the first answer (HttpOnly, as ingress-nginx's)",
    ),
    row(
        "affinity-mode",
        Differs,
        "loadBalancing.loadBoundPercent",
        "`balanced` (the default) keeps the bounded-load default (+25%); `persistent` sets the bound to +1000%, so a \
         cookie moves only from an endpoint ten times over the mean (ingress-nginx never moves it)",
    ),
    row("session-cookie-name", Same, "loadBalancing.hashOn.name", "default INGRESSCOOKIE, as in ingress-nginx"),
    row(
        "session-cookie-path",
        Same,
        "loadBalancing.hashOn.cookie.path",
        "default: the Ingress path the route came from, as in ingress-nginx (`/` for a regular-expression path)",
    ),
    row("session-cookie-max-age", Same, "loadBalancing.hashOn.cookie.maxAge", "whole seconds"),
    row(
        "session-cookie-expires",
        Differs,
        "loadBalancing.hashOn.cookie.maxAge",
        "whole seconds; written as Max-Age (which browsers prefer over Expires) when session-cookie-max-age is not set",
    ),
    row("session-cookie-samesite", Same, "loadBalancing.hashOn.cookie.sameSite", "None, Lax or Strict"),
    row(
        "session-cookie-secure",
        Same,
        "loadBalancing.hashOn.cookie.secure",
        "`true` sets Secure. Without it, Secure is set on answers to requests over HTTPS (here, or per a \
         --trusted-proxies peer's X-Forwarded-Proto), as in ingress-nginx",
    ),
    row(
        "session-cookie-conditional-samesite-none",
        Unsupported,
        "loadBalancing.hashOn.cookie.sameSite",
        "wsgate does not sniff user agents; SameSite is sent as configured",
    ),
    row(
        "session-cookie-change-on-failure",
        Unsupported,
        "",
        "wsgate does not retry a handshake on another endpoint; a client whose endpoint is gone gets a new one by the \
         hash ring",
    ),
    row(
        "session-cookie-domain",
        Unsupported,
        "loadBalancing.hashOn.cookie",
        "the affinity cookie is a host-only cookie",
    ),
    row(
        "affinity-canary-behavior",
        Unsupported,
        "",
        "a canary is chosen per connection by header, cookie and weight; the affinity cookie does not keep a client \
         on the canary",
    ),
    row(
        "upstream-hash-by",
        Same,
        "loadBalancing.hashOn",
        "`$remote_addr` (source IP), `$http_NAME` (a header), `$cookie_NAME` (a cookie, which wsgate sets when \
         missing), `$arg_NAME` (a query parameter); other keys and combinations are refused",
    ),
    row(
        "upstream-hash-by-subset",
        Unsupported,
        "loadBalancing.loadBoundPercent",
        "wsgate hashes to one endpoint, with a load bound instead of a subset",
    ),
    row("upstream-hash-by-subset-size", Unsupported, "", "see upstream-hash-by-subset"),
    row(
        "load-balance",
        Differs,
        "loadBalancing.policy",
        "`round_robin` → RoundRobin; `ewma` → LeastConnections (the nearest: wsgate has no latency-weighted \
         choice). Without it wsgate's default is LeastConnections, not round robin",
    ),
    row(
        "limit-connections",
        Differs,
        "limits.maxConnectionsPerClient",
        "open WebSockets per client IP on each route of the Ingress (plain HTTP requests are not counted); above it \
         wsgate answers 429, not 503",
    ),
    row(
        "limit-rps",
        Differs,
        "limits.handshakesPerSecondPerClient",
        "WebSocket handshakes per second per client IP, burst limit-rps × limit-burst-multiplier (plain HTTP \
         requests are not limited); above it wsgate answers 429 with Retry-After, not 503",
    ),
    row("limit-burst-multiplier", Same, "limits.handshakeBurstPerClient", "default 5, with limit-rps"),
    row(
        "limit-rpm",
        Unsupported,
        "limits.handshakesPerSecondPerClient",
        "wsgate's rates are per second: write limit-rps, or the field",
    ),
    row("limit-allowlist", Unsupported, "", "wsgate's limits have no exempt addresses"),
    row("limit-whitelist", Unsupported, "", "see limit-allowlist"),
    row(
        "whitelist-source-range",
        Same,
        "sourceRanges.allow",
        "comma-separated CIDRs or addresses (host bits cleared, as ingress-nginx does); other clients get 403, plain \
         HTTP and WebSocket handshakes alike. The older name of allowlist-source-range, read when that is not set",
    ),
    row(
        "allowlist-source-range",
        Same,
        "sourceRanges.allow",
        "comma-separated CIDRs or addresses; other clients get 403. An entry that is not one keeps the Ingress from \
         being served (ingress-nginx answered 503 on all its paths)",
    ),
    row(
        "denylist-source-range",
        Same,
        "sourceRanges.deny",
        "comma-separated CIDRs or addresses; those clients get 403, checked before the allow-list",
    ),
    row(
        "canary",
        Same,
        "rules[].backends[].weight",
        "`true`: the Ingress's backends join the main Ingress's route with the same host, path and pathType, chosen \
         by header, then cookie, then weight, as in ingress-nginx; the canary Ingress's other annotations are \
         ignored (the main Ingress's policy applies). Without a main Ingress it serves nothing (a warning)",
    ),
    row(
        "canary-weight",
        Same,
        "rules[].backends[].weight",
        "0 to canary-weight-total: that share of new connections and requests without a canary header or cookie",
    ),
    row(
        "canary-weight-total",
        Same,
        "rules[].backends[].weight",
        "default 100 (values up to 100 count as 100, as in ingress-nginx)",
    ),
    row(
        "canary-by-header",
        Same,
        "rules[].matches[].headers",
        "the header's value `always` sends to the canary, `never` to the main backend (cookie and weight are not \
         consulted); other values fall through",
    ),
    row(
        "canary-by-header-value",
        Same,
        "rules[].matches[].headers",
        "with canary-by-header: this exact value sends to the canary (then always/never mean nothing)",
    ),
    row(
        "canary-by-header-pattern",
        Differs,
        "rules[].matches[].headers (type RegularExpression)",
        "with canary-by-header, when no value is set: a value the regular expression matches anywhere sends to the \
         canary; wsgate's expressions are RE2-like (no backreferences or lookaround, which PCRE has)",
    ),
    row(
        "canary-by-cookie",
        Same,
        "rules[].matches[].headers (the Cookie header)",
        "the cookie's value `always` sends to the canary, `never` to the main backend; other values fall through to \
         the weight",
    ),
    row(
        "backend-protocol",
        Differs,
        "",
        "`HTTP` (the default) and `AUTO_HTTP` are served over HTTP/1.1; `HTTPS`, `GRPC`, `GRPCS` and `FCGI` are \
         refused: wsgate does not speak them to backends yet",
    ),
    row(
        "ssl-redirect",
        Same,
        "tls.redirect",
        "on by default for an Ingress with spec.tls, as in ingress-nginx: plain HTTP to its hosts with a usable \
         certificate gets 308 to https:// (WebSocket handshakes too); `false` turns it off",
    ),
    row(
        "force-ssl-redirect",
        Same,
        "",
        "plain HTTP gets 308 to https:// even without a certificate here (TLS ends in front of wsgate); a request \
         whose X-Forwarded-Proto is https from a --trusted-proxies peer is served. The port is \
         --https-redirect-port, else 443. No WebSocketRoute field yet",
    ),
    row(
        "proxy-body-size",
        Same,
        "maxRequestBodyBytes",
        "nginx sizes (`8m`, `512k`, `1g`, plain bytes; `0`: no limit): a larger plain HTTP body gets 413. Without \
         it wsgate sets no limit (ingress-nginx's default was 1m)",
    ),
    row(
        "enable-cors",
        Same,
        "cors",
        "`true`: a preflight (OPTIONS) from an allowed origin is answered 204 by wsgate, other answers get the \
         Access-Control-* headers; ingress-nginx's defaults for every cors-* left out",
    ),
    row(
        "cors-allow-origin",
        Differs,
        "cors.allowOrigins",
        "default `*`; a list of origins is matched and the request's origin echoed. `https://*.example.com` \
         matches subdomains at any depth (ingress-nginx: one label). A value ingress-nginx would not take falls \
         back to `*`, as there",
    ),
    row("cors-allow-methods", Same, "cors.allowMethods", "default GET, PUT, POST, DELETE, PATCH, OPTIONS"),
    row("cors-allow-headers", Same, "cors.allowHeaders", "default ingress-nginx's list"),
    row("cors-expose-headers", Same, "cors.exposeHeaders", "default none"),
    row("cors-allow-credentials", Same, "cors.allowCredentials", "default true, as in ingress-nginx"),
    row("cors-max-age", Same, "cors.maxAge", "seconds, default 1728000 (20 days), as in ingress-nginx"),
    row(
        "rewrite-target",
        Same,
        "",
        "the backend gets this path instead, with `$1`, `$2`, … from the path's regular expression (matched \
         case-insensitively at the start of the path); the query is kept. Like ingress-nginx, it turns every path \
         of the host into a regular expression (see use-regex). No WebSocketRoute field yet: keep the Ingress",
    ),
    row(
        "use-regex",
        Same,
        "",
        "every path of the host, in every Ingress, becomes a case-insensitive regular expression anchored at the \
         start only, longest first, as in ingress-nginx (Exact and Prefix paths too). No WebSocketRoute field yet: \
         keep the Ingress",
    ),
    row(
        "app-root",
        Same,
        "",
        "a request for `/` gets 302 to this path on the same scheme and host; other paths are proxied. No \
         WebSocketRoute field yet",
    ),
    row(
        "permanent-redirect",
        Same,
        "",
        "every request gets a redirect to this URL (the path is not appended), 301 unless permanent-redirect-code \
         (300 to 308) says otherwise. No WebSocketRoute field yet",
    ),
    row("permanent-redirect-code", Same, "", "see permanent-redirect"),
    row(
        "temporal-redirect",
        Same,
        "",
        "as permanent-redirect, with 302 unless temporal-redirect-code (300 to 307); it wins over permanent-redirect",
    ),
    row("temporal-redirect-code", Same, "", "see temporal-redirect"),
    row(
        "upstream-vhost",
        Same,
        "",
        "the backend gets this Host header (X-Forwarded-Host keeps the client's). No WebSocketRoute field yet",
    ),
    row(
        "x-forwarded-prefix",
        Same,
        "",
        "sent as X-Forwarded-Prefix, only with rewrite-target (as ingress-nginx does). No WebSocketRoute field yet",
    ),
    row(
        "proxy-buffering",
        NoEffect,
        "",
        "wsgate streams requests and responses and never buffers a WebSocket, whatever the value",
    ),
    row("proxy-request-buffering", NoEffect, "", "see proxy-buffering"),
    row("proxy-buffer-size", NoEffect, "", "see proxy-buffering"),
    row("proxy-buffers-number", NoEffect, "", "see proxy-buffering"),
    row("proxy-http-version", NoEffect, "", "wsgate speaks HTTP/1.1 to backends, which WebSockets need"),
    row(
        "websocket-services",
        NoEffect,
        "",
        "every wsgate route proxies WebSocket upgrades (this key came from the nginx.org controller; ingress-nginx \
         ignored it too)",
    ),
    row(
        "configuration-snippet",
        Unsupported,
        "",
        "raw nginx configuration is never executed by wsgate (snippets let any Ingress author run configuration on \
         the controller: CVE-2021-25742, CVE-2025-1974); write the policy as a wsgate field",
    ),
    row("server-snippet", Unsupported, "", "see configuration-snippet"),
    row("stream-snippet", Unsupported, "", "see configuration-snippet"),
    row(
        "auth-*",
        Refused,
        "",
        "wsgate does not authenticate requests: serving the Ingress would open what it protects. Put authentication \
         in the application or in front of wsgate",
    ),
    row("satisfy", Refused, "", "see auth-*"),
    row("enable-global-auth", NoEffect, "", "wsgate has no global authentication to opt out of"),
    row(
        "enable-modsecurity",
        Unsupported,
        "",
        "wsgate has no web application firewall; the Ingress is served without one",
    ),
    row("enable-owasp-core-rules", Unsupported, "", "see enable-modsecurity"),
    row("modsecurity-*", Unsupported, "", "see enable-modsecurity"),
];

impl NginxAnnotation {
    /// The note, with a `see other-row` reference replaced by that row's note.
    pub fn explanation(&self) -> &'static str {
        let referenced = self.note.strip_prefix("see ").and_then(|target| {
            let name = target.split_whitespace().next()?;
            NGINX_ANNOTATIONS.iter().find(|row| row.name == name)
        });
        match referenced {
            Some(row) if !row.note.starts_with("see ") => row.note,
            _ => self.note,
        }
    }
}

/// The row for `name` (without the prefix): an exact row, else the family it belongs to.
pub fn lookup(name: &str) -> Option<&'static NginxAnnotation> {
    NGINX_ANNOTATIONS.iter().find(|row| row.name == name).or_else(|| {
        NGINX_ANNOTATIONS.iter().find(|row| row.name.strip_suffix('*').is_some_and(|family| name.starts_with(family)))
    })
}

/// What one annotation turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The full annotation key.
    pub annotation: String,
    pub support: Support,
    pub message: String,
}

/// The translation of one Ingress's ingress-nginx annotations.
#[derive(Debug, Clone, Default)]
pub(super) struct Translation {
    pub spec: PolicySpec,
    /// One per annotation that is not simply translated (and one per bad value).
    pub notes: Vec<Note>,
    /// The affinity cookie's path was not set: each route's own path is used.
    pub cookie_path_per_route: bool,
    /// `session-cookie-secure` was not `true`: the cookie is Secure on answers over HTTPS.
    pub cookie_secure_on_https: bool,
    /// `ssl-redirect` asked for, or left at its default: `Some(true)`; `"false"`: `Some(false)`.
    pub ssl_redirect: Option<bool>,
    /// What happens to requests before the backend (no WebSocketRoute fields for these yet).
    pub requests: Requests,
}

/// ingress-nginx's request rewrites and redirects of one Ingress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Requests {
    pub use_regex: bool,
    pub rewrite_target: Option<String>,
    pub forwarded_prefix: Option<String>,
    pub upstream_vhost: Option<String>,
    /// permanent-redirect, temporal-redirect or app-root.
    pub redirect: Option<RouteRedirect>,
    /// force-ssl-redirect.
    pub force_https: bool,
}

impl Requests {
    /// Whether a WebSocketRoute cannot say this yet.
    pub fn any(&self) -> bool {
        *self != Requests::default()
    }
}

impl Translation {
    /// Whether an annotation makes the Ingress unservable.
    #[cfg(test)]
    pub fn refused(&self) -> bool {
        self.notes.iter().any(|note| note.support == Support::Refused)
    }
}

/// Translates the `nginx.ingress.kubernetes.io/` annotations of one Ingress.
pub(super) fn translate(annotations: Option<&BTreeMap<String, String>>) -> Translation {
    let mut out = Translation::default();
    let Some(annotations) = annotations else { return out };
    let get = |name: &str| annotations.get(&format!("{NGINX_PREFIX}{name}")).map(|v| v.trim());
    let key = |name: &str| format!("{NGINX_PREFIX}{name}");
    let mut notes = Notes::default();

    // Every annotation present gets its row's verdict; translated ones are read below.
    for (full, value) in annotations.range(NGINX_PREFIX.to_string()..) {
        let Some(name) = full.strip_prefix(NGINX_PREFIX) else { break };
        match lookup(name) {
            None => notes.add(
                name,
                Support::Unsupported,
                format!("{full} is not an ingress-nginx annotation wsgate knows; it is ignored"),
            ),
            Some(row) if row.support == Support::Same => {}
            // Read below: their notes depend on the value.
            Some(row) if matches!(row.name, "backend-protocol" | "load-balance") => {}
            Some(row) => {
                let nearest =
                    if row.field.is_empty() { String::new() } else { format!(" (wsgate field: {})", row.field) };
                let text = row.explanation();
                let message = match row.support {
                    Support::Differs => format!("{full}: {text}{nearest}"),
                    Support::NoEffect => format!("{full}: accepted, no effect: {text}"),
                    _ if value.trim().is_empty() && row.support != Support::Refused => continue,
                    _ => format!("{full} is not supported: {text}{nearest}"),
                };
                notes.add(name, row.support, message);
            }
        }
    }

    let seconds = |name: &str, notes: &mut Notes| -> Option<u64> {
        let value = get(name)?;
        match value.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                notes.fallback(name, value, "whole seconds, e.g. \"3600\"");
                None
            }
        }
    };

    // Timeouts: idle is the larger of read and send (wsgate's counts both ways).
    let read = seconds("proxy-read-timeout", &mut notes);
    let send = seconds("proxy-send-timeout", &mut notes);
    if let Some(idle) = read.max(send) {
        out.spec.timeouts.idle = Some(format!("{idle}s"));
    }
    if let Some(connect) = seconds("proxy-connect-timeout", &mut notes) {
        out.spec.timeouts.handshake = Some(format!("{connect}s"));
    }

    // Load balancing: affinity > upstream-hash-by > load-balance, as in ingress-nginx.
    let mut lb: Option<LoadBalancingSpec> = None;
    match get("affinity") {
        Some("cookie") => {
            let name = get("session-cookie-name").filter(|n| !n.is_empty()).unwrap_or(DEFAULT_COOKIE_NAME);
            let mut cookie = AffinityCookie::default();
            match get("session-cookie-path").filter(|p| !p.is_empty()) {
                Some(path) => cookie.path = Some(path.to_string()),
                None => out.cookie_path_per_route = true,
            }
            let max_age = seconds("session-cookie-max-age", &mut notes);
            let expires = seconds("session-cookie-expires", &mut notes);
            cookie.max_age = max_age.or(expires).map(|s| format!("{s}s"));
            if let Some(same_site) = get("session-cookie-samesite") {
                match same_site.to_ascii_lowercase().as_str() {
                    "none" => cookie.same_site = Some(SameSiteSpec::None),
                    "lax" => cookie.same_site = Some(SameSiteSpec::Lax),
                    "strict" => cookie.same_site = Some(SameSiteSpec::Strict),
                    _ => notes.fallback("session-cookie-samesite", same_site, "None, Lax or Strict"),
                }
            }
            out.cookie_secure_on_https = true;
            match get("session-cookie-secure") {
                Some(v) if parse_bool(v) == Some(true) => {
                    cookie.secure = Some(true);
                    out.cookie_secure_on_https = false;
                }
                Some(v) if parse_bool(v).is_none() => notes.fallback("session-cookie-secure", v, "true or false"),
                _ => {}
            }
            let mut spec = LoadBalancingSpec {
                policy: LoadBalancingPolicy::ConsistentHash,
                hash_on: Some(HashOnSpec {
                    kind: HashOnType::Cookie,
                    name: Some(name.to_string()),
                    cookie: Some(cookie),
                }),
                load_bound_percent: None,
            };
            match get("affinity-mode") {
                None | Some("" | "balanced") => {}
                Some("persistent") => spec.load_bound_percent = Some(PERSISTENT_LOAD_BOUND_PERCENT),
                Some(other) => notes.fallback("affinity-mode", other, "balanced or persistent"),
            }
            lb = Some(spec);
        }
        Some(other) => notes.fallback("affinity", other, "cookie (the only affinity ingress-nginx has)"),
        None => {}
    }
    if let Some(by) = get("upstream-hash-by")
        && !by.is_empty()
    {
        match hash_key(by) {
            Ok(hash_on) if lb.is_none() => {
                lb = Some(LoadBalancingSpec {
                    policy: LoadBalancingPolicy::ConsistentHash,
                    hash_on: Some(hash_on),
                    load_bound_percent: None,
                })
            }
            Ok(_) => {}
            Err(message) => notes.add("upstream-hash-by", Support::Refused, message),
        }
    }
    if let Some(balance) = get("load-balance").filter(|v| !v.is_empty()) {
        let policy = match balance.to_ascii_lowercase().as_str() {
            "round_robin" => Ok((LoadBalancingPolicy::RoundRobin, None)),
            "ewma" => Ok((
                LoadBalancingPolicy::LeastConnections,
                Some("`ewma` is translated to LeastConnections, the nearest wsgate has (no latency-weighted choice)"),
            )),
            other => Err(format!(
                "{} {other:?} has no wsgate equivalent (round_robin and ewma have; ingress-nginx refuses values it \
                 does not know too)",
                key("load-balance")
            )),
        };
        match policy {
            Ok((policy, differs)) => {
                if let Some(differs) = differs {
                    notes.add("load-balance", Support::Differs, format!("{}: {differs}", key("load-balance")));
                }
                if lb.is_none() {
                    lb = Some(LoadBalancingSpec { policy, hash_on: None, load_bound_percent: None });
                }
            }
            Err(message) => notes.add("load-balance", Support::Refused, message),
        }
    }
    out.spec.load_balancing = lb;

    // Limits (ingress-nginx refuses an Ingress whose limit is not a number).
    let mut limits = ConnectionLimits::default();
    let mut count = |name: &str| -> Option<u32> {
        let value = get(name).filter(|v| !v.is_empty())?;
        match value.parse::<u32>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                let message =
                    format!("{} must be a whole number, not {value:?} (ingress-nginx refuses it too)", key(name));
                notes.add(name, Support::Refused, message);
                None
            }
        }
    };
    limits.max_connections_per_client = count("limit-connections");
    if let Some(rps) = count("limit-rps") {
        let multiplier = count("limit-burst-multiplier").unwrap_or(DEFAULT_BURST_MULTIPLIER);
        limits.handshakes_per_second_per_client = Some(rps);
        limits.handshake_burst_per_client = Some(rps.saturating_mul(multiplier));
    }
    if limits.max_connections_per_client.is_some() || limits.handshakes_per_second_per_client.is_some() {
        out.spec.limits = Some(limits);
    }

    // Canary settings are read by the compiler (they change another Ingress's route); without
    // `canary: "true"` ingress-nginx ignores them.
    let canary_keys = annotations.keys().filter(|k| k.starts_with(&format!("{NGINX_PREFIX}canary-"))).count();
    if canary_keys > 0 && canary(Some(annotations)).is_none() {
        let message = format!(
            "{NGINX_PREFIX}canary-… annotations are ignored without {NGINX_PREFIX}canary: \"true\", as in ingress-nginx"
        );
        notes.add("canary", Support::Unsupported, message);
    }

    // Source ranges: allowlist-source-range, else its old name; ingress-nginx clears host bits.
    let ranges = |value: &str| -> Vec<String> {
        let entries = value.split(',').map(str::trim).filter(|e| !e.is_empty());
        entries.map(|e| Cidr::parse_masked(e).map_or_else(|_| e.to_string(), |c| c.to_string())).collect()
    };
    let allow = get("allowlist-source-range").filter(|v| !v.is_empty()).or(get("whitelist-source-range"));
    let deny = get("denylist-source-range");
    let (allow, deny) = (allow.map(ranges).unwrap_or_default(), deny.map(ranges).unwrap_or_default());
    if !allow.is_empty() || !deny.is_empty() {
        out.spec.source_ranges = Some(SourceRangesSpec { allow, deny });
    }

    // Rewrites and redirects (ingress-nginx refuses an Ingress whose redirect URL it cannot take).
    let requests = &mut out.requests;
    requests.use_regex = get("use-regex").and_then(parse_bool) == Some(true);
    requests.force_https = get("force-ssl-redirect").and_then(parse_bool) == Some(true);
    requests.rewrite_target = get("rewrite-target").filter(|v| !v.is_empty()).map(str::to_string);
    requests.forwarded_prefix = get("x-forwarded-prefix").filter(|v| !v.is_empty()).map(str::to_string);
    requests.upstream_vhost = get("upstream-vhost").filter(|v| !v.is_empty()).map(str::to_string);
    let code = |name: &str, default: u16, max: u16| -> u16 {
        get(name).and_then(|v| v.parse::<u16>().ok()).filter(|c| (300..=max).contains(c)).unwrap_or(default)
    };
    let url = |name: &str, notes: &mut Notes| -> Option<String> {
        let value = get(name).filter(|v| !v.is_empty())?;
        if (value.starts_with("http://") || value.starts_with("https://")) && HeaderValue::from_str(value).is_ok() {
            Some(value.to_string())
        } else {
            let message = format!(
                "{} must be an http:// or https:// URL, not {value:?} (ingress-nginx refuses it too)",
                key(name)
            );
            notes.add(name, Support::Refused, message);
            None
        }
    };
    let temporal = url("temporal-redirect", &mut notes);
    let permanent = url("permanent-redirect", &mut notes);
    requests.redirect = match (temporal, permanent) {
        (Some(url), _) => {
            Some(RouteRedirect { status: code("temporal-redirect-code", 302, 307), target: RedirectTarget::Url(url) })
        }
        (None, Some(url)) => {
            Some(RouteRedirect { status: code("permanent-redirect-code", 301, 308), target: RedirectTarget::Url(url) })
        }
        (None, None) => match get("app-root").filter(|v| !v.is_empty()) {
            Some(root) if root.starts_with('/') && HeaderValue::from_str(root).is_ok() => {
                Some(RouteRedirect { status: 302, target: RedirectTarget::RootTo(root.to_string()) })
            }
            Some(root) => {
                notes.fallback("app-root", root, "a path starting with /");
                None
            }
            None => None,
        },
    };

    // CORS, with ingress-nginx's defaults (which differ from a WebSocketRoute's).
    if get("enable-cors").and_then(parse_bool) == Some(true) {
        let list = |name: &str| -> Vec<String> {
            get(name)
                .map(|v| v.split(',').map(str::trim).filter(|e| !e.is_empty()).map(String::from).collect())
                .unwrap_or_default()
        };
        let mut origins = list("cors-allow-origin");
        let valid = |o: &String| o == "*" || o == "null" || Origin::parse(o).is_some();
        if origins.is_empty() || !origins.iter().all(valid) {
            if !origins.is_empty() {
                let value = get("cors-allow-origin").unwrap_or_default();
                notes.fallback("cors-allow-origin", value, "origins such as https://app.example.com");
            }
            origins = vec!["*".to_string()];
        }
        let credentials = get("cors-allow-credentials").is_none_or(|v| parse_bool(v) != Some(false));
        let max_age = get("cors-max-age").and_then(|v| v.parse::<u64>().ok()).unwrap_or(1_728_000);
        let methods = list("cors-allow-methods");
        out.spec.cors = Some(CorsSpec {
            allow_origins: origins,
            allow_methods: methods,
            allow_headers: list("cors-allow-headers"),
            expose_headers: list("cors-expose-headers"),
            allow_credentials: Some(credentials),
            max_age: Some(max_age),
        });
    }

    // Request bodies: nginx sizes; 0 turns the check off; a bad value falls back (no limit here).
    if let Some(size) = get("proxy-body-size").filter(|v| !v.is_empty()) {
        match nginx_size(size) {
            Some(0) => {}
            Some(bytes) => out.spec.max_request_body_bytes = Some(bytes),
            None => notes.fallback("proxy-body-size", size, "an nginx size such as 8m, 512k or 1g"),
        }
    }

    // Backend protocol: only HTTP is spoken to backends.
    if let Some(protocol) = get("backend-protocol").filter(|v| !v.is_empty()) {
        match protocol.to_ascii_uppercase().as_str() {
            "HTTP" => {}
            "AUTO_HTTP" => notes.add(
                "backend-protocol",
                Support::Differs,
                format!(
                    "{}: AUTO_HTTP is served over HTTP/1.1 (wsgate does not speak TLS to backends yet)",
                    key("backend-protocol")
                ),
            ),
            other => notes.add(
                "backend-protocol",
                Support::Refused,
                format!(
                    "{} {other} is not supported: wsgate speaks only HTTP/1.1 to backends yet, and the backend would \
                     not understand it",
                    key("backend-protocol")
                ),
            ),
        }
    }

    match get("ssl-redirect") {
        None => out.ssl_redirect = Some(true),
        Some(v) => match parse_bool(v) {
            Some(on) => out.ssl_redirect = Some(on),
            None => {
                notes.fallback("ssl-redirect", v, "true or false");
                out.ssl_redirect = Some(true);
            }
        },
    }

    // A value that was not read needs no note on how it would have been translated.
    let fell_back: Vec<String> = notes
        .0
        .iter()
        .filter(|n| n.message.contains("; ignored, as ingress-nginx does"))
        .map(|n| n.annotation.clone())
        .collect();
    notes.0.retain(|n| !(matches!(n.support, Support::Differs | Support::Same) && fell_back.contains(&n.annotation)));
    out.notes = notes.0;
    out
}

/// The notes of one translation.
#[derive(Default)]
struct Notes(Vec<Note>);

impl Notes {
    fn add(&mut self, name: &str, support: Support, message: String) {
        self.0.push(Note { annotation: format!("{NGINX_PREFIX}{name}"), support, message });
    }

    /// A value ingress-nginx would fall back from: the same here, said so.
    fn fallback(&mut self, name: &str, value: &str, form: &str) {
        let message = format!("{NGINX_PREFIX}{name} must be {form}, not {value:?}; ignored, as ingress-nginx does");
        self.add(name, Support::Unsupported, message);
    }
}

/// A canary Ingress's choice of requests (`canary: "true"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Canary {
    /// Share of new connections and requests, out of `total`.
    pub weight: u32,
    pub total: u32,
    /// `canary-by-header` (lower case) and how its value decides.
    pub header: Option<(String, CanaryHeader)>,
    /// `canary-by-cookie`.
    pub cookie: Option<String>,
}

/// How the value of a `canary-by-header` header decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CanaryHeader {
    /// `always` to the canary, `never` to the main backend.
    AlwaysNever,
    /// This exact value to the canary.
    Value(String),
    /// A value this regular expression matches (anywhere in it) to the canary.
    Pattern(String),
}

impl Canary {
    /// The whole-value pattern a `canary-by-header-pattern` becomes (ingress-nginx matches it anywhere
    /// in the value).
    pub fn header_pattern(pattern: &str) -> String {
        format!(".*(?:{pattern}).*")
    }

    /// The whole-value pattern of a `Cookie` header carrying cookie `name` with `value`.
    pub fn cookie_pattern(name: &str, value: &str) -> String {
        let name = regex::escape(name);
        format!("(?:.*;[ \\t]*)?{name}={value}(?:[ \\t]*;.*)?")
    }
}

/// The canary settings of an Ingress: `None` when it is not a canary; an error text for a value
/// ingress-nginx would not take either.
pub(super) fn canary(annotations: Option<&BTreeMap<String, String>>) -> Option<Result<Canary, String>> {
    let annotations = annotations?;
    let get =
        |name: &str| annotations.get(&format!("{NGINX_PREFIX}{name}")).map(|v| v.trim()).filter(|v| !v.is_empty());
    if get("canary").and_then(parse_bool) != Some(true) {
        return None;
    }
    let number = |name: &str, default: u32| -> Result<u32, String> {
        match get(name) {
            None => Ok(default),
            Some(v) => v.parse::<u32>().map_err(|_| format!("{NGINX_PREFIX}{name} must be a whole number, not {v:?}")),
        }
    };
    let parsed = (|| {
        // why at least 100: ingress-nginx ignores totals up to 100.
        let total = number("canary-weight-total", 100)?.max(100);
        let weight = number("canary-weight", 0)?.min(total);
        let header = match get("canary-by-header") {
            None => None,
            Some(name) => {
                let how = match (get("canary-by-header-value"), get("canary-by-header-pattern")) {
                    (Some(value), _) => CanaryHeader::Value(value.to_string()),
                    (None, Some(pattern)) => CanaryHeader::Pattern(pattern.to_string()),
                    (None, None) => CanaryHeader::AlwaysNever,
                };
                Some((name.to_ascii_lowercase(), how))
            }
        };
        let cookie = get("canary-by-cookie").map(str::to_string);
        Ok(Canary { weight, total, header, cookie })
    })();
    Some(parsed)
}

/// An nginx size: digits with an optional `k`, `m` or `g` (either case), in bytes.
fn nginx_size(value: &str) -> Option<u64> {
    let (digits, unit) = match value.char_indices().last()? {
        (at, c) if c.is_ascii_alphabetic() => (&value[..at], c.to_ascii_lowercase()),
        _ => (value, 'b'),
    };
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit {
        'b' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// ingress-nginx's booleans (Go's `ParseBool`).
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// An `upstream-hash-by` key as a wsgate hash key: one nginx variable, `$name` or `${name}`.
fn hash_key(value: &str) -> Result<HashOnSpec, String> {
    let refuse = |why: &str| {
        format!(
            "{NGINX_PREFIX}upstream-hash-by {value:?} {why}; wsgate hashes on $remote_addr, $http_NAME, $cookie_NAME \
             or $arg_NAME (loadBalancing.hashOn), and serving the Ingress without its key would lose its clients' \
             stickiness"
        )
    };
    let variable = value.strip_prefix('$').ok_or_else(|| refuse("is not an nginx variable"))?;
    let variable = match variable.strip_prefix('{') {
        Some(inner) => inner.strip_suffix('}').ok_or_else(|| refuse("is not one nginx variable"))?,
        None => variable,
    };
    if variable.is_empty() || !variable.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(refuse("is not one nginx variable"));
    }
    let named = |kind: HashOnType, name: &str| HashOnSpec { kind, name: Some(name.to_string()), cookie: None };
    if matches!(variable, "remote_addr" | "binary_remote_addr") {
        return Ok(HashOnSpec { kind: HashOnType::SourceIp, name: None, cookie: None });
    }
    if let Some(header) = variable.strip_prefix("http_").filter(|n| !n.is_empty()) {
        // nginx's $http_ variables name a header in lower case with `_` for `-`.
        return Ok(named(HashOnType::Header, &header.to_ascii_lowercase().replace('_', "-")));
    }
    if let Some(cookie) = variable.strip_prefix("cookie_").filter(|n| !n.is_empty()) {
        return Ok(named(HashOnType::Cookie, cookie));
    }
    if let Some(arg) = variable.strip_prefix("arg_").filter(|n| !n.is_empty()) {
        return Ok(named(HashOnType::QueryParam, arg));
    }
    Err(refuse("has no wsgate equivalent"))
}

/// The migration page's annotation table, generated from [`NGINX_ANNOTATIONS`].
pub fn markdown_table() -> String {
    let mut out = String::from("| annotation | wsgate | field | notes |\n|---|---|---|---|\n");
    for row in NGINX_ANNOTATIONS {
        let field = if row.field.is_empty() { "—".to_string() } else { format!("`{}`", row.field) };
        out.push_str(&format!("| `{}` | {} | {field} | {} |\n", row.name, row.support.as_str(), row.note));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (format!("{NGINX_PREFIX}{k}"), v.to_string())).collect()
    }

    #[test]
    fn the_migration_page_shows_the_table_the_translator_uses() {
        let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/migrating-from-ingress-nginx.md");
        let text = std::fs::read_to_string(&page).expect("docs/migrating-from-ingress-nginx.md");
        let begin = "<!-- BEGIN annotation table (generated from src/controller/compile/nginx.rs) -->\n";
        let end = "<!-- END annotation table -->";
        let (head, rest) = text.split_once(begin).expect("the page has the BEGIN marker");
        let (current, tail) = rest.split_once(end).expect("the page has the END marker");
        let table = markdown_table();
        if std::env::var_os("WSGATE_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
            std::fs::write(&page, format!("{head}{begin}{table}{end}{tail}")).expect("rewrite the page");
            return;
        }
        assert_eq!(current, table, "the page's table is stale: rerun with WSGATE_UPDATE_GOLDEN=1");
    }

    #[test]
    fn body_sizes_are_read_in_nginx_units() {
        assert_eq!(nginx_size("8m"), Some(8 << 20));
        assert_eq!(nginx_size("512K"), Some(512 << 10));
        assert_eq!(nginx_size("1g"), Some(1 << 30));
        assert_eq!(nginx_size("1000"), Some(1000));
        assert_eq!(nginx_size("0"), Some(0));
        assert_eq!(nginx_size("8mb"), None);
        assert_eq!(nginx_size("m"), None);
        let t = translate(Some(&annotations(&[("proxy-body-size", "8m")])));
        assert_eq!(t.spec.max_request_body_bytes, Some(8 << 20));
        let off = translate(Some(&annotations(&[("proxy-body-size", "0")])));
        assert_eq!(off.spec.max_request_body_bytes, None);
    }

    #[test]
    fn every_row_is_found_by_its_name_and_families_by_prefix() {
        for row in NGINX_ANNOTATIONS {
            let name = row.name.replace('*', "url");
            assert_eq!(lookup(&name).map(|r| r.name), Some(row.name), "{name}");
        }
        assert_eq!(lookup("auth-tls-secret").map(|r| r.support), Some(Support::Refused));
        assert_eq!(lookup("modsecurity-snippet").map(|r| r.support), Some(Support::Unsupported));
        assert!(lookup("no-such-thing").is_none());
    }

    #[test]
    fn read_and_send_timeouts_become_one_idle_timeout_the_larger_of_the_two() {
        let t = translate(Some(&annotations(&[("proxy-read-timeout", "3600"), ("proxy-send-timeout", "600")])));
        assert_eq!(t.spec.timeouts.idle.as_deref(), Some("3600s"));
        assert!(t.notes.iter().all(|n| n.support == Support::Differs), "{:?}", t.notes);
        let bad = translate(Some(&annotations(&[("proxy-read-timeout", "60s")])));
        assert_eq!(bad.spec.timeouts.idle, None, "ingress-nginx ignores a value with a unit");
        assert!(bad.notes.iter().any(|n| n.message.contains("whole seconds")), "{:?}", bad.notes);
        assert!(!bad.refused());
    }

    #[test]
    fn cookie_affinity_takes_ingress_nginx_defaults() {
        let t = translate(Some(&annotations(&[("affinity", "cookie"), ("session-cookie-expires", "172800")])));
        let lb = t.spec.load_balancing.expect("affinity sets load balancing");
        assert_eq!(lb.policy, LoadBalancingPolicy::ConsistentHash);
        let hash_on = lb.hash_on.expect("a hash key");
        assert_eq!(hash_on.name.as_deref(), Some(DEFAULT_COOKIE_NAME));
        let cookie = hash_on.cookie.expect("cookie attributes");
        assert_eq!(cookie.max_age.as_deref(), Some("172800s"));
        assert_eq!(cookie.path, None);
        assert!(t.cookie_path_per_route, "the cookie path defaults to the route's path");
    }

    #[test]
    fn hash_keys_map_onto_wsgate_keys_and_others_refuse_the_ingress() {
        let kind = |v: &str| hash_key(v).map(|h| (h.kind, h.name));
        assert_eq!(kind("$remote_addr"), Ok((HashOnType::SourceIp, None)));
        assert_eq!(kind("$http_x_user_id"), Ok((HashOnType::Header, Some("x-user-id".into()))));
        assert_eq!(kind("${cookie_session}"), Ok((HashOnType::Cookie, Some("session".into()))));
        assert_eq!(kind("$arg_room"), Ok((HashOnType::QueryParam, Some("room".into()))));
        assert!(kind("$request_uri$host").is_err());
        assert!(kind("$request_uri").is_err());
        let t = translate(Some(&annotations(&[("upstream-hash-by", "$host")])));
        assert!(t.refused());
    }

    #[test]
    fn snippets_and_auth_are_reported_and_auth_refuses_the_ingress() {
        let t = translate(Some(&annotations(&[("configuration-snippet", "more_set_headers \"X: y\";")])));
        assert!(!t.refused());
        assert!(t.notes.iter().any(|n| n.message.contains("never executed")), "{:?}", t.notes);
        let t = translate(Some(&annotations(&[("auth-url", "http://auth.example/check")])));
        assert!(t.refused());
    }
}
