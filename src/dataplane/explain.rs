//! What a route's policies would decide for a handshake, without making it: for `/debug/explain` and
//! `wsgate check --explain`. Uses the same checks as the admit phase (`OriginPolicy::check`,
//! `SubprotocolPolicy::filter`) and the same key and ring as the pick, so the explanation cannot drift
//! from what the dataplane does.
//!
//! ```text
//!   Origin header        ─► the allow-list entry that admits it (or 403)
//!   Sec-WebSocket-Protocol ─► what is forwarded (or 400)
//!   limits               ─► what applies (per replica; counts are live state, not explained)
//!   hash key             ─► where it comes from, its hash, the backend it picks by weight, and the
//!                           endpoint owning it on the ring (before health and the load bound)
//! ```

use std::net::{IpAddr, SocketAddr};

use http::header::ORIGIN;
use http::{HeaderMap, Uri};
use serde::Serialize;

use super::affinity;
use crate::routes::{HashOn, LoadBalancing, Route, RouteLimits};

/// The policy decisions for one handshake on one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What the client would get from the policies: `proxied` (then the backend answers) or the
    /// refusal's status and reason.
    pub answer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<OriginDecision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subprotocols: Option<SubprotocolDecision>,
    /// The limits that apply, per wsgate replica.
    #[serde(skip_serializing_if = "RouteLimits::is_unlimited")]
    pub limits: RouteLimits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<HashDecision>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OriginDecision {
    /// The request's `Origin` (`None`: none sent).
    pub origin: Option<String>,
    /// The allow-list entry that admits it, `null`, `missing`, or `refused`.
    pub rule: String,
    pub allowed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubprotocolDecision {
    pub offered: Vec<String>,
    /// Offered and allowed: forwarded to the backend, in the client's order.
    pub forwarded: Vec<String>,
    pub allowed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HashDecision {
    /// `header:x-user`, `cookie:SESSION`, `query:room`, `source_ip`.
    pub on: String,
    /// Where this request's key came from; `None`: it has none (least connections decides), or
    /// `new_cookie` (wsgate would set a new random cookie: any endpoint).
    pub source: Option<&'static str>,
    /// The key's 64-bit hash in hex, as the access log writes it (never the key itself).
    pub key: Option<String>,
    /// The backend the key picks by weight.
    pub backend: Option<String>,
    /// The endpoint owning the key on that backend's ring. The pick takes it unless it is unhealthy
    /// or, on this replica, above the load bound: then the next endpoint on the ring.
    pub owner: Option<SocketAddr>,
    pub load_bound_percent: u32,
}

/// What `route`'s policies decide for a handshake with `headers` and `uri` from `client`.
pub fn decide(route: &Route, headers: &HeaderMap, uri: &Uri, client: IpAddr) -> Decision {
    let admission = &route.policy.admission;
    let mut answer = "proxied".to_string();
    if route.policy.source_ranges.as_ref().is_some_and(|ranges| !ranges.allows(client)) {
        answer = format!("403 (source range: {client} is not allowed)");
    }
    let origin = admission.origins.as_ref().map(|policy| {
        let verdict = super::pipeline::origin_verdict(policy, headers);
        if !verdict.allowed() && answer == "proxied" {
            answer = "403 (origin)".to_string();
        }
        OriginDecision {
            origin: headers.get(ORIGIN).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            rule: policy.describe(verdict),
            allowed: verdict.allowed(),
        }
    });
    let subprotocols = admission.subprotocols.as_ref().map(|policy| {
        let offered: Vec<String> = super::pipeline::offered_subprotocols(headers).map(String::from).collect();
        let forwarded: Vec<String> =
            policy.filter(offered.iter().map(String::as_str)).into_iter().map(String::from).collect();
        let allowed = !forwarded.is_empty() || !policy.required;
        if !allowed && answer == "proxied" {
            answer = "400 (subprotocol)".to_string();
        }
        SubprotocolDecision { offered, forwarded, allowed }
    });
    let hash = match &route.policy.load_balancing {
        LoadBalancing::ConsistentHash(hash) => {
            Some(hash_decision(route, &hash.on, hash.load_bound_percent, headers, uri, client))
        }
        _ => None,
    };
    Decision { answer, origin, subprotocols, limits: admission.limits, hash }
}

fn hash_decision(
    route: &Route,
    on: &HashOn,
    load_bound_percent: u32,
    headers: &HeaderMap,
    uri: &Uri,
    client: IpAddr,
) -> HashDecision {
    let mut decision =
        HashDecision { on: on.describe(), source: None, key: None, backend: None, owner: None, load_bound_percent };
    let Some(found) = affinity::key(on, headers, uri, client) else { return decision };
    decision.source = Some(found.source);
    if found.set_cookie.is_some() {
        // A new random key: it says nothing about where this client will land.
        decision.source = Some("new_cookie");
        return decision;
    }
    decision.key = Some(format!("{:016x}", found.key));
    // The same choice as the balancer's when every backend is offered: the key picks by weight.
    let total: u64 = route.backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return decision;
    }
    let backend = super::balancer::by_weight(route.backends.iter().enumerate(), found.key % total).map(|(_, b)| b);
    if let Some(backend) = backend {
        decision.backend = Some(backend.name.clone());
        decision.owner =
            backend.ring.as_ref().and_then(|ring| ring.owner(found.key)).map(|i| backend.endpoints[i].addr);
    }
    decision
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(origin) = &self.origin {
            let sent = origin.origin.as_deref().unwrap_or("(none)");
            let verdict = if origin.allowed { format!("allowed by {}", origin.rule) } else { "refused: 403".into() };
            writeln!(f, "  origin   {sent}: {verdict}")?;
        }
        if let Some(sub) = &self.subprotocols {
            let verdict = if sub.allowed { "" } else { ": none allowed, 400" };
            writeln!(f, "  subprotocols offered {:?}, forwarded {:?}{verdict}", sub.offered, sub.forwarded)?;
        }
        if !self.limits.is_unlimited() {
            let limits = &self.limits;
            let mut parts = Vec::new();
            if let Some(n) = limits.max_connections {
                parts.push(format!("{n} connections on the route"));
            }
            if let Some(n) = limits.max_connections_per_client {
                parts.push(format!("{n} per client"));
            }
            if let Some(rate) = limits.handshakes_per_client {
                parts.push(format!("{} handshakes/s per client, burst {}", rate.per_second, rate.burst));
            }
            writeln!(f, "  limits   {} (per replica)", parts.join(", "))?;
        }
        if let Some(hash) = &self.hash {
            match (&hash.source, &hash.key) {
                (Some(source), Some(key)) => {
                    let owner = hash.owner.map_or("no endpoint".to_string(), |a| a.to_string());
                    let backend = hash.backend.as_deref().unwrap_or("no backend");
                    writeln!(
                        f,
                        "  hash     {} from {source}: key {key} -> {backend}, owner {owner} (unless unhealthy or \
                         over the load bound of +{}%)",
                        hash.on, hash.load_bound_percent
                    )?;
                }
                (Some(source), None) => {
                    writeln!(f, "  hash     {} ({source}): wsgate sets a new cookie; any endpoint", hash.on)?
                }
                _ => writeln!(f, "  hash     {}: the request has no key; least connections decides", hash.on)?,
            }
        }
        writeln!(f, "  answer   {}", self.answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::policy::OriginWildcard;
    use crate::routes::{
        Admission, Backend, Conditions, Endpoint, HashPolicy, HostMatch, OriginPolicy, PathMatch, Policy, RouteTable,
        Source, SourceKind, SubprotocolPolicy,
    };

    fn route(policy: Policy) -> Route {
        let endpoints = (1..=4).map(|p| Endpoint { addr: SocketAddr::from(([127, 0, 0, 1], p)) }).collect();
        let route = Route {
            id: "websocketroute/ns/chat".into(),
            source: Source { kind: SourceKind::WebSocketRoute, namespace: "ns".into(), name: "chat".into() },
            host: HostMatch::Any,
            path: PathMatch::prefix("/"),
            conditions: Conditions::default(),
            backends: vec![Backend { name: "ns/chat:80".into(), weight: 1, endpoints, ..Backend::default() }],
            policy,
        };
        // Built through the table, which makes the rings.
        let table = RouteTable::new(vec![route], None);
        (**table.routes().next().expect("one route")).clone()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("value"));
        }
        map
    }

    #[test]
    fn names_the_origin_rule_the_forwarded_subprotocols_and_the_refusal() {
        let policy = Policy {
            admission: Admission {
                origins: Some(OriginPolicy {
                    exact: vec!["https://chat.example.com".into()],
                    wildcard: vec![OriginWildcard { scheme: "https".into(), suffix: "example.org".into(), port: None }],
                    allow_null: false,
                    allow_missing: true,
                }),
                subprotocols: Some(SubprotocolPolicy { allowed: vec!["v2".into()], required: true }),
                ..Admission::default()
            },
            ..Policy::default()
        };
        let route = route(policy);
        let uri: Uri = "/".parse().expect("uri");
        let client = IpAddr::from([127, 0, 0, 1]);
        let ok = decide(
            &route,
            &headers(&[("origin", "https://a.example.org"), ("sec-websocket-protocol", "v1, v2")]),
            &uri,
            client,
        );
        assert_eq!(ok.answer, "proxied");
        assert_eq!(ok.origin.as_ref().map(|o| o.rule.as_str()), Some("https://*.example.org"));
        assert_eq!(ok.subprotocols.as_ref().map(|s| s.forwarded.clone()), Some(vec!["v2".to_string()]));
        let refused = decide(&route, &headers(&[("origin", "https://evil.example")]), &uri, client);
        assert_eq!(refused.answer, "403 (origin)");
        assert!(refused.to_string().contains("origin   https://evil.example: refused: 403"), "{refused}");
        let no_protocol = decide(&route, &headers(&[]), &uri, client);
        assert_eq!(no_protocol.answer, "400 (subprotocol)");
        assert_eq!(no_protocol.origin.map(|o| o.rule), Some("missing".to_string()));
    }

    #[test]
    fn the_hash_owner_is_the_endpoint_the_ring_gives_the_key() {
        let policy = Policy {
            load_balancing: LoadBalancing::ConsistentHash(HashPolicy {
                on: HashOn::Header("x-user".into()),
                load_bound_percent: 25,
            }),
            ..Policy::default()
        };
        let route = route(policy);
        let uri: Uri = "/".parse().expect("uri");
        let client = IpAddr::from([127, 0, 0, 1]);
        let decision = decide(&route, &headers(&[("x-user", "ann")]), &uri, client);
        let hash = decision.hash.expect("a hash decision");
        let key = crate::routes::ring::hash64(b"ann");
        assert_eq!(hash.key, Some(format!("{key:016x}")));
        let backend = &route.backends[0];
        let owner = backend.ring.as_ref().and_then(|r| r.owner(key)).map(|i| backend.endpoints[i].addr);
        assert_eq!(hash.owner, owner);
        assert!(hash.owner.is_some());
        let none = decide(&route, &headers(&[]), &uri, client);
        assert_eq!(none.hash.map(|h| h.source), Some(None), "no header: no key");
    }
}
