//! Which host a request is for (RFC 9112 §3.2, RFC 9110 §7.2): the one checked answer both request
//! paths (`fast_upgrade` and hyper's `server::handle`) route on.
//!
//! ```text
//!   more than one Host line, or a Host value that is not uri-host[:port] ─► 400 (any version)
//!   absolute-form target  GET http://a.example/x HTTP/1.1 ─► the target's authority wins (§3.2.2);
//!                                                             userinfo in it ─► 400
//!   authority-form target GET a.example:80 HTTP/1.1 (not CONNECT) ─► 400
//!   HTTP/1.1 without Host ─► 400 (even in absolute-form: §3.2 makes no exception)
//!   HTTP/1.0 without Host ─► host "" (rules without a host, then the default backend)
//!   otherwise             ─► the Host value; `RouteTable::lookup` lower-cases it and drops
//!                            the port and a trailing dot
//! ```
//!
//! An empty `Host:` is valid (RFC 9110 §7.2: sent when the target has no authority) and routes like a
//! request without one. Nothing here allocates: the answer borrows the request.

use std::net::Ipv6Addr;

use http::header::HOST;
use http::{HeaderMap, Method, Uri, Version};

use super::error::ProxyError;

/// The host to route `uri` + `headers` by, or why the request is a 400.
pub fn routing_host<'a>(
    method: &Method,
    version: Version,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<&'a str, ProxyError> {
    let mut lines = headers.get_all(HOST).iter();
    let header = match (lines.next(), lines.next()) {
        (_, Some(_)) => return Err(ProxyError::BadRequest("more than one Host header")),
        (Some(value), None) => {
            let value = value.to_str().map_err(|_| ProxyError::BadRequest("the Host header is not a valid host"))?;
            let value = value.trim_matches([' ', '\t']);
            if !is_valid_host(value.as_bytes()) {
                return Err(ProxyError::BadRequest("the Host header is not a valid host"));
            }
            Some(value)
        }
        (None, None) => None,
    };
    if header.is_none() && version >= Version::HTTP_11 {
        return Err(ProxyError::BadRequest("an HTTP/1.1 request needs a Host header"));
    }
    match (uri.scheme(), uri.authority()) {
        (Some(_), Some(authority)) => {
            let authority = authority.as_str();
            if authority.contains('@') {
                return Err(ProxyError::BadRequest("the request target must not carry userinfo"));
            }
            if !is_valid_host(authority.as_bytes()) {
                return Err(ProxyError::BadRequest("the request target's host is not a valid host"));
            }
            Ok(authority)
        }
        (None, Some(_)) if method != Method::CONNECT => {
            Err(ProxyError::BadRequest("an authority-form request target is only for CONNECT"))
        }
        _ => Ok(header.unwrap_or("")),
    }
}

/// Whether `value` is `uri-host [ ":" port ]` (RFC 3986 §3.2.2, §3.2.3); an empty value is valid.
fn is_valid_host(value: &[u8]) -> bool {
    let (host_ok, port) = match value.strip_prefix(b"[") {
        // IP-literal: an IPv6 address in brackets (IPvFuture is not accepted).
        Some(rest) => {
            let Some(end) = rest.iter().position(|&b| b == b']') else { return false };
            let literal = std::str::from_utf8(&rest[..end]).ok().and_then(|s| s.parse::<Ipv6Addr>().ok());
            match &rest[end + 1..] {
                [] => (literal.is_some(), &[][..]),
                [b':', port @ ..] => (literal.is_some(), port),
                _ => return false,
            }
        }
        // IPv4address or reg-name; neither contains ':', so the first one starts the port.
        None => match value.iter().position(|&b| b == b':') {
            Some(colon) => (is_reg_name(&value[..colon]), &value[colon + 1..]),
            None => (is_reg_name(value), &[][..]),
        },
    };
    host_ok && port.iter().all(u8::is_ascii_digit)
}

/// reg-name = *( unreserved / pct-encoded / sub-delims ); an IPv4 address is one too.
fn is_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'%' => {
                let hex = name.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn host_of(method: Method, version: Version, target: &str, hosts: &[&str]) -> Result<String, ProxyError> {
        let uri: Uri = target.parse().expect("target");
        let mut headers = HeaderMap::new();
        for host in hosts {
            headers.append(HOST, HeaderValue::from_str(host).expect("header value"));
        }
        routing_host(&method, version, &uri, &headers).map(str::to_string)
    }

    fn get11(target: &str, hosts: &[&str]) -> Result<String, ProxyError> {
        host_of(Method::GET, Version::HTTP_11, target, hosts)
    }

    #[test]
    fn valid_hosts_are_returned_as_sent() {
        for host in [
            "chat.example",
            "Chat.Example:8080",
            "chat.example.",
            "chat.example:",
            "127.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:443",
            "xn--bcher-kva.example",
            "a_b~c%41",
            "",
        ] {
            assert_eq!(get11("/", &[host]).expect(host), host);
        }
        // Surrounding whitespace is not part of the value (hyper and httparse trim it already).
        assert_eq!(get11("/", &[" chat.example\t"]).expect("trimmed"), "chat.example");
    }

    #[test]
    fn missing_duplicate_and_invalid_hosts_are_400() {
        let bad = |result: Result<String, ProxyError>| match result {
            Err(error @ ProxyError::BadRequest(_)) => assert_eq!(error.status(), http::StatusCode::BAD_REQUEST),
            other => panic!("expected 400, got {other:?}"),
        };
        bad(get11("/", &[]));
        bad(get11("/", &["a.example", "a.example"]));
        bad(host_of(Method::GET, Version::HTTP_10, "/", &["a", "b"]));
        for host in [
            "a b",
            "a/b",
            "a.example:http",
            "a.example:80:90",
            "user@a.example",
            "[::1",
            "[not-ip]",
            "[::1]x",
            "a%zz",
            "a\"b",
        ] {
            bad(get11("/", &[host]));
        }
    }

    #[test]
    fn http_10_may_omit_host() {
        assert_eq!(host_of(Method::GET, Version::HTTP_10, "/", &[]).expect("1.0"), "");
        assert_eq!(host_of(Method::GET, Version::HTTP_10, "/", &["a.example"]).expect("1.0"), "a.example");
    }

    #[test]
    fn absolute_form_target_wins_over_host() {
        assert_eq!(get11("http://a.example:81/x", &["b.example"]).expect("abs"), "a.example:81");
        // Still HTTP/1.1: the Host line is required, and it must still be valid.
        assert!(get11("http://a.example/x", &[]).is_err());
        assert!(get11("http://a.example/x", &["b c"]).is_err());
        assert!(get11("http://user@a.example/x", &["a.example"]).is_err());
        assert_eq!(host_of(Method::GET, Version::HTTP_10, "http://a.example/x", &[]).expect("1.0"), "a.example");
    }

    #[test]
    fn authority_form_is_only_for_connect() {
        assert!(get11("a.example:443", &["a.example"]).is_err());
        assert_eq!(
            host_of(Method::CONNECT, Version::HTTP_11, "a.example:443", &["a.example"]).expect("c"),
            "a.example"
        );
    }
}
