//! The hash key of a consistent-hash route, read from the request: a header, a cookie, a query
//! parameter or the client's address. With cookie affinity, a client without the cookie gets one.
//!
//! ```text
//!   HashOn::Header(h)     ─► value of h              ─┐
//!   HashOn::Cookie(c)     ─► value of cookie c        ├─► hash64 ─► Ring::pick (balancer)
//!                            none: a new random value ┤     (the same in every replica)
//!                            and Set-Cookie on the answer
//!   HashOn::QueryParam(q) ─► value of ?q=             │
//!   HashOn::SourceIp      ─► the client's IP ─────────┘
//!   no value (no header, no parameter) ─► no key: least connections
//! ```
//!
//! The key itself is never logged (a session cookie may be a credential); the access log shows where it
//! came from and its hash.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue, Uri};

use crate::routes::ring::hash64;
use crate::routes::{CookieAffinity, HashOn};

/// The key a request is hashed by, and the cookie to set when wsgate made it.
#[derive(Debug, Clone)]
pub struct Affinity {
    pub key: u64,
    /// `header:x-user`, `cookie:SESSION`, `query:room`, `source_ip` (and `new_cookie:SESSION`).
    pub source: &'static str,
    /// The `Set-Cookie` value for the answer, when the client had no affinity cookie.
    pub set_cookie: Option<HeaderValue>,
}

/// The affinity key of a request on a route hashing `on`; `None` when the request has no value.
pub fn key(on: &HashOn, headers: &HeaderMap, uri: &Uri, client: IpAddr) -> Option<Affinity> {
    match on {
        HashOn::Header(name) => {
            let value = headers.get(name.as_str())?;
            Some(Affinity { key: hash64(value.as_bytes()), source: "header", set_cookie: None })
        }
        HashOn::Cookie(cookie) => Some(match cookie_value(headers, &cookie.name) {
            Some(value) => Affinity { key: hash64(value), source: "cookie", set_cookie: None },
            None => new_cookie(cookie),
        }),
        HashOn::QueryParam(name) => {
            let value = query_value(uri.query()?, name)?;
            Some(Affinity { key: hash64(value), source: "query", set_cookie: None })
        }
        HashOn::SourceIp => {
            let key = match client.to_canonical() {
                IpAddr::V4(v4) => hash64(&v4.octets()),
                IpAddr::V6(v6) => hash64(&v6.octets()),
            };
            Some(Affinity { key, source: "source_ip", set_cookie: None })
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (RFC 6265 §5.4: `a=1; b=2`).
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers.get_all(COOKIE).iter().flat_map(|v| v.as_bytes().split(|b| *b == b';')).find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|b| *b == b'=')?;
        (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
    })
}

/// The raw value of query parameter `name` (compared and hashed as sent, without percent-decoding).
fn query_value<'q>(query: &'q str, name: &str) -> Option<&'q [u8]> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value.as_bytes())
    })
}

/// A fresh affinity cookie: 128 random bits in hex, and its `Set-Cookie`.
///
/// why not a cryptographic random source: the value only chooses an endpoint (anyone can pick an
/// endpoint by sending another value); it must be unlikely to repeat, which std's per-process random
/// hasher keys plus a counter give.
fn new_cookie(cookie: &CookieAffinity) -> Affinity {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut halves = [0u64; 2];
    for (i, half) in halves.iter_mut().enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_u64(n);
        hasher.write_usize(i);
        *half = hasher.finish();
    }
    let value = format!("{:016x}{:016x}", halves[0], halves[1]);
    let set_cookie = HeaderValue::from_str(&cookie.set_cookie(&value)).ok();
    Affinity { key: hash64(value.as_bytes()), source: "new_cookie", set_cookie }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn keys_come_from_where_the_route_says() {
        let uri: Uri = "/chat?room=7&user=ann".parse().unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let h = headers(&[("x-user", "ann"), ("cookie", "a=1; SESSION=abc ; b=2")]);
        let by_header = key(&HashOn::Header("x-user".into()), &h, &uri, ip).unwrap();
        assert_eq!((by_header.key, by_header.source), (hash64(b"ann"), "header"));
        let by_cookie = key(&HashOn::Cookie(CookieAffinity::named("SESSION")), &h, &uri, ip).unwrap();
        assert_eq!((by_cookie.key, by_cookie.set_cookie.is_none()), (hash64(b"abc"), true));
        let by_query = key(&HashOn::QueryParam("room".into()), &h, &uri, ip).unwrap();
        assert_eq!(by_query.key, hash64(b"7"));
        assert!(key(&HashOn::QueryParam("nope".into()), &h, &uri, ip).is_none());
        assert!(key(&HashOn::Header("x-other".into()), &h, &uri, ip).is_none());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            key(&HashOn::SourceIp, &h, &uri, ip).unwrap().key,
            key(&HashOn::SourceIp, &h, &uri, mapped).unwrap().key
        );
    }

    #[test]
    fn a_client_without_the_cookie_gets_a_new_one() {
        let uri: Uri = "/".parse().unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let on = HashOn::Cookie(CookieAffinity::named("SESSION"));
        let first = key(&on, &HeaderMap::new(), &uri, ip).unwrap();
        let second = key(&on, &HeaderMap::new(), &uri, ip).unwrap();
        assert_ne!(first.key, second.key, "every new client gets its own value");
        let set = first.set_cookie.expect("a Set-Cookie");
        let set = set.to_str().unwrap();
        let value = set.strip_prefix("SESSION=").and_then(|v| v.split(';').next()).unwrap();
        assert_eq!(value.len(), 32);
        // Sent back, the cookie hashes to the same key.
        let back = key(&on, &headers(&[("cookie", &format!("SESSION={value}"))]), &uri, ip).unwrap();
        assert_eq!(back.key, first.key);
    }
}
