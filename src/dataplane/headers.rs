//! Header hygiene between the client and the backend.
//!
//! ```text
//!   client headers ─► remove hop-by-hop ─► Host kept ─► X-Forwarded-* / X-Real-IP ─► backend
//!   backend headers ─► remove hop-by-hop ─────────────────────────────────────────► client
//! ```
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) describe one TCP connection, not the message: `Connection` and
//! every header it names, plus `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`
//! and `Upgrade`. hyper frames bodies itself on each side, so dropping `Transfer-Encoding` is safe.

use std::net::IpAddr;

use http::header::{CONNECTION, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Uri, Version};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// How many header names one `Connection` header may list before the rest is ignored; a list longer
/// than this is not a real client, and the fixed hop-by-hop set is removed regardless.
const MAX_CONNECTION_TOKENS: usize = 32;

/// Removes the hop-by-hop headers, including every header named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // why collect first: the names live inside `headers`, which is about to be mutated. Most requests
    // list nothing but `keep-alive`/`close`/`upgrade`, so the Vec usually never allocates past zero.
    let mut listed: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if listed.len() >= MAX_CONNECTION_TOKENS {
                break;
            }
            // `close`, `keep-alive` and `upgrade` are options, not always header names; removing a
            // header of the same name is what RFC 9110 asks anyway.
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                listed.push(name);
            }
        }
    }
    for name in &listed {
        headers.remove(name);
    }
    for name in [&CONNECTION, &KEEP_ALIVE, &PROXY_CONNECTION, &TE, &TRAILER, &TRANSFER_ENCODING, &UPGRADE] {
        headers.remove(name);
    }
}

/// What the proxy knows about one client connection, with the header values it adds precomputed once
/// per connection instead of once per request.
#[derive(Debug, Clone)]
pub struct ClientAddr {
    ip: IpAddr,
    https: bool,
    ip_value: HeaderValue,
    port_value: HeaderValue,
    /// `http`, or `https` on the TLS listener: `X-Forwarded-Proto`.
    proto_value: HeaderValue,
}

impl ClientAddr {
    /// `listener_port` is the port the client connected to (for `X-Forwarded-Port`).
    pub fn new(ip: IpAddr, listener_port: u16) -> ClientAddr {
        let ip = ip.to_canonical();
        ClientAddr {
            ip,
            https: false,
            ip_value: HeaderValue::from_str(&ip.to_string()).expect("an IP address is a valid header value"),
            port_value: HeaderValue::from(listener_port),
            proto_value: HeaderValue::from_static("http"),
        }
    }

    /// The same client, connected over TLS: `X-Forwarded-Proto: https`.
    pub fn https(mut self) -> ClientAddr {
        self.https = true;
        self.proto_value = HeaderValue::from_static("https");
        self
    }

    /// The client's IP address (an IPv4-mapped IPv6 address as IPv4).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Whether the client came through the HTTPS listener.
    pub fn is_https(&self) -> bool {
        self.https
    }
}

/// Sets the forwarding headers on a request about to go to a backend. `host` is the client's `Host`
/// (restored here in case the client named it in `Connection`) and becomes `X-Forwarded-Host` too.
pub fn set_forwarded(headers: &mut HeaderMap, client: &ClientAddr, host: Option<&HeaderValue>) {
    // why append rather than replace: earlier proxies' entries stay, and the backend decides which to
    // trust; `X-Real-IP` is ours alone and always the direct peer.
    let mut previous = headers.get_all(&X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).peekable();
    let forwarded_for = if previous.peek().is_none() {
        client.ip_value.clone()
    } else {
        let mut joined = String::with_capacity(64);
        for value in previous {
            joined.push_str(value);
            joined.push_str(", ");
        }
        joined.push_str(client.ip_value.to_str().expect("built from an IP address"));
        HeaderValue::from_str(&joined).unwrap_or_else(|_| client.ip_value.clone())
    };
    headers.insert(X_FORWARDED_FOR.clone(), forwarded_for);
    headers.insert(X_REAL_IP.clone(), client.ip_value.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), client.proto_value.clone());
    headers.insert(X_FORWARDED_PORT.clone(), client.port_value.clone());
    match host {
        Some(host) => {
            headers.insert(HOST, host.clone());
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// Rewrites the client's request head for the backend: origin-form URI, HTTP/1.1, no hop-by-hop headers,
/// Host kept, forwarding headers set.
///
/// The Host sent is the one the request was routed by (`host::routing_host`): an absolute-form target's
/// authority replaces the Host header (RFC 9112 §3.2.2), and a request without one (HTTP/1.0) gets an
/// empty Host, since the backend is spoken to in HTTP/1.1, where Host is required (§3.2).
pub fn prepare_head(parts: &mut http::request::Parts, client: &ClientAddr) {
    let target_authority = match (parts.uri.scheme(), parts.uri.authority()) {
        (Some(_), Some(authority)) => HeaderValue::from_str(authority.as_str()).ok(),
        _ => None,
    };
    let host = target_authority.or_else(|| parts.headers.get(HOST).cloned());
    remove_hop_by_hop(&mut parts.headers);
    set_forwarded(&mut parts.headers, client, host.as_ref());
    if host.is_none() {
        parts.headers.insert(HOST, HeaderValue::from_static(""));
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
    }
    parts.version = Version::HTTP_11;
    // why: extensions are per-connection state of the client side (e.g. hyper's upgrade handle).
    parts.extensions.clear();
}

/// Whether a comma-separated header contains `token` (case-insensitive), across every value it has.
pub fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn removes_fixed_and_listed_hop_by_hop_headers() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "x-other"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("cookie", "a=b"),
            ("origin", "http://x"),
        ]);
        remove_hop_by_hop(&mut headers);
        let mut left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["cookie", "origin"]);
    }

    #[test]
    fn forwarded_headers_append_and_set() {
        let client = ClientAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), 8080);
        let mut headers =
            map(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2"), ("x-real-ip", "9.9.9.9")]);
        let host = HeaderValue::from_static("Chat.Example:8080");
        set_forwarded(&mut headers, &client, Some(&host));
        assert_eq!(headers["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.1.2.3");
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(headers["x-real-ip"], "10.1.2.3");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-port"], "8080");
        assert_eq!(headers["x-forwarded-host"], "Chat.Example:8080");
        assert_eq!(headers["host"], "Chat.Example:8080");
    }

    #[test]
    fn tls_clients_are_forwarded_as_https() {
        let mut headers = HeaderMap::new();
        let client = ClientAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8443).https();
        set_forwarded(&mut headers, &client, None);
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-port"], "8443");
    }

    #[test]
    fn ipv4_mapped_clients_show_as_ipv4() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        set_forwarded(&mut headers, &ClientAddr::new(mapped, 80), None);
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert!(headers.get("x-forwarded-host").is_none());
    }

    #[test]
    fn tokens_are_case_insensitive_across_values() {
        let headers = map(&[("connection", "keep-alive"), ("connection", " Upgrade ")]);
        assert!(has_token(&headers, &CONNECTION, "upgrade"));
        assert!(!has_token(&headers, &CONNECTION, "close"));
        let headers = map(&[("upgrade", "h2c, WebSocket")]);
        assert!(has_token(&headers, &UPGRADE, "websocket"));
    }
}
