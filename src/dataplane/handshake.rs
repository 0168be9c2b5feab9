//! The WebSocket opening handshake (RFC 6455 §4): checking the client's request and the backend's answer.
//!
//! ```text
//!   a request with Upgrade: websocket, Sec-WebSocket-Key or Sec-WebSocket-Version is a handshake:
//!   client ── GET, HTTP/1.1, Upgrade: websocket, Connection: upgrade, no body,
//!             Sec-WebSocket-Key (16 bytes, base64), Sec-WebSocket-Version: 13 ──► wsgate
//!   wsgate ── 426 + Sec-WebSocket-Version: 13   (version missing or not 13)
//!          ── 400 + one-line reason             (anything else wrong, a body included)
//!   backend ── 101 + Upgrade: websocket + Connection: upgrade
//!              + Sec-WebSocket-Accept = base64(SHA-1(key ‖ GUID)) ──► relayed, else 502
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::header::{
    CONNECTION, CONTENT_LENGTH, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, TRANSFER_ENCODING,
    UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, Version};
use sha1::{Digest, Sha1};

use super::error::ProxyError;
use super::headers::has_token;

/// The GUID RFC 6455 appends to the key before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Whether a request asks to switch to WebSocket: `Upgrade: websocket`, or a `Sec-WebSocket-Key` or
/// `Sec-WebSocket-Version` header (only a handshake carries those). Such a request is then held to
/// RFC 6455: a malformed one is refused (§4.2.1: 400) rather than forwarded as plain HTTP, where the
/// backend would see a handshake with its `Upgrade` and `Connection` removed as hop-by-hop.
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    has_token(headers, &UPGRADE, "websocket")
        || headers.contains_key(SEC_WEBSOCKET_KEY)
        || headers.contains_key(SEC_WEBSOCKET_VERSION)
}

/// A client handshake that passed every check: what the proxy needs to forward it and check the answer.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    /// The client's `Sec-WebSocket-Key`, forwarded unchanged.
    pub key: HeaderValue,
}

/// Checks a client's upgrade request against RFC 6455 §4.2.1.
pub fn validate(method: &Method, version: Version, headers: &HeaderMap) -> Result<ClientHandshake, ProxyError> {
    if method != Method::GET {
        return Err(ProxyError::BadHandshake("a WebSocket handshake must use GET"));
    }
    if version != Version::HTTP_11 {
        return Err(ProxyError::BadHandshake("a WebSocket handshake must use HTTP/1.1"));
    }
    if !has_token(headers, &UPGRADE, "websocket") {
        return Err(ProxyError::BadHandshake("the Upgrade header must contain \"websocket\""));
    }
    if !has_token(headers, &CONNECTION, "upgrade") {
        return Err(ProxyError::BadHandshake("the Connection header must contain \"upgrade\""));
    }
    // why refuse a body: RFC 6455 gives the GET no body, and whatever follows the head is WebSocket
    // frames; relaying a body would hand the backend bytes it reads as frames. (`Content-Length: 0` is
    // no body.)
    let has_body = headers.contains_key(TRANSFER_ENCODING)
        || headers.get_all(CONTENT_LENGTH).iter().any(|v| v.as_bytes().trim_ascii() != b"0");
    if has_body {
        return Err(ProxyError::BadHandshake("a WebSocket handshake must not have a body"));
    }
    // why the version before the key: a client speaking another version may format its key differently;
    // telling it which version we speak (426) is the useful answer.
    let version_ok = headers.get_all(SEC_WEBSOCKET_VERSION).iter().any(|v| v.as_bytes().trim_ascii() == b"13");
    if !version_ok {
        return Err(ProxyError::UnsupportedVersion);
    }
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key,
        (None, _) => return Err(ProxyError::BadHandshake("the Sec-WebSocket-Key header is missing")),
        (Some(_), Some(_)) => return Err(ProxyError::BadHandshake("Sec-WebSocket-Key is given more than once")),
    };
    if !is_valid_key(key.as_bytes()) {
        return Err(ProxyError::BadHandshake("Sec-WebSocket-Key must be 16 bytes in base64"));
    }
    Ok(ClientHandshake { key: key.clone() })
}

/// A key is valid when it base64-decodes to exactly 16 bytes.
fn is_valid_key(key: &[u8]) -> bool {
    let key = key.trim_ascii();
    // 16 bytes are 24 base64 characters with padding; decoding into a 18-byte stack buffer avoids a Vec.
    let mut decoded = [0u8; 18];
    key.len() == 24 && matches!(BASE64.decode_slice(key, &mut decoded), Ok(16))
}

/// The `Sec-WebSocket-Accept` a correct server derives from `key`.
pub fn accept_for(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim_ascii());
    sha.update(ACCEPT_GUID);
    BASE64.encode(sha.finalize())
}

/// Checks a backend's 101 answer as RFC 6455 §4.1 has a client check it: `Upgrade: websocket`,
/// `Connection: upgrade` and a `Sec-WebSocket-Accept` matching the client's key.
///
/// why the proxy checks, not only the client: the proxy rewrites `Upgrade` and `Connection` on the 101
/// it relays, so a client could not see that the backend left them out. `Sec-WebSocket-Protocol` and
/// `Sec-WebSocket-Extensions` are relayed unchanged and left to the client, which knows what it offered.
pub fn check_accept(handshake: &ClientHandshake, answer: &HeaderMap) -> Result<(), ProxyError> {
    if !has_token(answer, &UPGRADE, "websocket") {
        return Err(ProxyError::BadSwitch("no Upgrade: websocket"));
    }
    if !has_token(answer, &CONNECTION, "upgrade") {
        return Err(ProxyError::BadSwitch("no Connection: upgrade"));
    }
    let expected = accept_for(handshake.key.as_bytes());
    let mut accepts = answer.get_all(SEC_WEBSOCKET_ACCEPT).iter();
    match (accepts.next(), accepts.next()) {
        (Some(accept), None) if accept.as_bytes().trim_ascii() == expected.as_bytes() => Ok(()),
        _ => Err(ProxyError::BadSwitch("a wrong Sec-WebSocket-Accept")),
    }
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

    const GOOD: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];

    fn with(replace: (&str, Option<&str>)) -> HeaderMap {
        let mut pairs: Vec<(&str, &str)> = GOOD.iter().copied().filter(|(k, _)| *k != replace.0).collect();
        if let Some(v) = replace.1 {
            pairs.push((replace.0, v));
        }
        headers(&pairs)
    }

    #[test]
    fn rfc_example_accept() {
        // RFC 6455 §1.3.
        assert_eq!(accept_for(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn accepts_a_good_handshake() {
        let hs = validate(&Method::GET, Version::HTTP_11, &headers(GOOD)).expect("valid");
        assert_eq!(hs.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert!(wants_websocket(&headers(GOOD)));
        assert!(!wants_websocket(&headers(&[("upgrade", "h2c"), ("connection", "upgrade")])));
    }

    #[test]
    fn refuses_bad_handshakes() {
        let bad = |method: Method, version: Version, h: HeaderMap| validate(&method, version, &h).unwrap_err();
        assert!(matches!(bad(Method::POST, Version::HTTP_11, headers(GOOD)), ProxyError::BadHandshake(_)));
        assert!(matches!(bad(Method::GET, Version::HTTP_10, headers(GOOD)), ProxyError::BadHandshake(_)));
        assert!(matches!(
            bad(Method::GET, Version::HTTP_11, with(("connection", Some("keep-alive")))),
            ProxyError::BadHandshake(_)
        ));
        for upgrade in [None, Some("h2c"), Some("websocket2")] {
            let h = with(("upgrade", upgrade));
            assert!(wants_websocket(&h), "the key and version mark a handshake");
            assert!(matches!(bad(Method::GET, Version::HTTP_11, h), ProxyError::BadHandshake(_)), "{upgrade:?}");
        }
        for key in [None, Some("short"), Some("dGhlIHNhbXBsZSBub25jZQ"), Some("AAAAAAAAAAAAAAAAAAAAAAAA")] {
            let err = bad(Method::GET, Version::HTTP_11, with(("sec-websocket-key", key)));
            assert!(matches!(err, ProxyError::BadHandshake(_)), "{key:?}: {err}");
        }
        for body in [("content-length", "5"), ("transfer-encoding", "chunked")] {
            let mut h = headers(GOOD);
            h.append(HeaderName::from_static(body.0), HeaderValue::from_static(body.1));
            assert!(matches!(bad(Method::GET, Version::HTTP_11, h), ProxyError::BadHandshake(_)), "{body:?}");
        }
        let mut empty_body = headers(GOOD);
        empty_body.append(CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(validate(&Method::GET, Version::HTTP_11, &empty_body).is_ok());
        for version in [None, Some("8"), Some("13x")] {
            let err = bad(Method::GET, Version::HTTP_11, with(("sec-websocket-version", version)));
            assert!(matches!(err, ProxyError::UnsupportedVersion), "{version:?}: {err}");
        }
    }

    #[test]
    fn checks_the_backend_accept() {
        let hs = ClientHandshake { key: HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==") };
        let answer = |accept: Option<&str>, upgrade: &str, connection: &str| {
            let mut pairs = vec![("upgrade", upgrade), ("connection", connection)];
            pairs.extend(accept.map(|a| ("sec-websocket-accept", a)));
            check_accept(&hs, &headers(&pairs))
        };
        let right = Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(answer(right, "websocket", "Upgrade").is_ok());
        assert!(answer(right, "WebSocket", "keep-alive, upgrade").is_ok());
        assert!(answer(Some("AAAA"), "websocket", "Upgrade").is_err());
        assert!(answer(None, "websocket", "Upgrade").is_err());
        assert!(answer(right, "h2c", "Upgrade").is_err());
        assert!(answer(right, "websocket", "keep-alive").is_err());
    }
}
