//! Conformance of the dataplane to RFC 9112 (Host, request targets) and RFC 6455 (opening handshake,
//! frames relayed unchanged), seen from a raw TCP client. Every handshake case runs on both request
//! paths, which must answer alike:
//!
//! ```text
//!   fast path : the handshake is the connection's first request (fast_upgrade, no hyper)
//!   hyper path: a plain GET first on the same keep-alive connection, then the handshake (server::handle)
//! ```

mod support;

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use support::*;
use wsgate::routes::{HostMatch, PathMatch, Policy};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Which request path a handshake takes through the proxy.
#[derive(Debug, Clone, Copy)]
enum Path {
    Fast,
    Hyper,
}

const PATHS: [Path; 2] = [Path::Fast, Path::Hyper];

/// Reads one response: the head, then a `Content-Length` body (none without one). A 101 leaves the
/// stream positioned at the first tunnelled byte.
async fn read_response(stream: &mut TcpStream) -> String {
    let head = read_head(stream).await;
    let length: usize = header_of(&head, "content-length").map_or(0, |v| v.parse().expect("content-length"));
    let mut body = vec![0u8; length];
    within("response body", stream.read_exact(&mut body)).await.expect("read body");
    head + &String::from_utf8_lossy(&body)
}

/// Sends `request` on `path` and reads its answer; returns the stream too (for a 101).
async fn send_on(path: Path, addr: SocketAddr, request: &str) -> (String, TcpStream) {
    let mut stream = within("connect", TcpStream::connect(addr)).await.expect("connect");
    if let Path::Hyper = path {
        stream.write_all(b"GET /first HTTP/1.1\r\nHost: test.local\r\n\r\n").await.expect("write first request");
        let first = read_response(&mut stream).await;
        assert_eq!(status_of(&first), 200, "the first request must succeed: {first}");
        assert_ne!(header_of(&first, "connection"), Some("close"), "keep-alive expected: {first}");
    }
    stream.write_all(request.as_bytes()).await.expect("write request");
    let answer = read_response(&mut stream).await;
    (answer, stream)
}

/// `upgrade_request` with a header line replaced (`None` removes it) or added.
fn handshake_with(name: &str, value: Option<&str>) -> String {
    let base = upgrade_request("/", KEY, "13");
    let mut lines: Vec<String> = Vec::new();
    let mut replaced = false;
    for line in base.trim_end_matches("\r\n").split("\r\n") {
        match line.split_once(':') {
            Some((key, _)) if key.eq_ignore_ascii_case(name) => {
                replaced = true;
                if let Some(value) = value {
                    lines.push(format!("{name}: {value}"));
                }
            }
            _ => lines.push(line.to_string()),
        }
    }
    if !replaced && let Some(value) = value {
        lines.push(format!("{name}: {value}"));
    }
    lines.join("\r\n") + "\r\n\r\n"
}

/// A masked client frame (RFC 6455 §5.2): FIN, RSV1, opcode, payload (< 126 bytes).
fn client_frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// An unmasked server frame.
fn server_frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode, payload.len() as u8];
    frame.extend_from_slice(payload);
    frame
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    [&code.to_be_bytes()[..], reason.as_bytes()].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_exactly_one_valid_host_get_400_on_every_path() {
    let echo = echo_server("e1").await;
    let first = echo_server("first").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[echo.addr]), first_route(&first)])).await;
    let plain = "GET / HTTP/1.1\r\nHost: test.local\r\n\r\n".to_string();
    let cases = [
        ("no Host", None),
        ("two Host lines", Some("Host: test.local\r\nHost: test.local")),
        ("two different Host lines", Some("Host: a.example\r\nHost: b.example")),
        ("a path in Host", Some("Host: a.example/x")),
        ("a space in Host", Some("Host: a b")),
        ("userinfo in Host", Some("Host: user@a.example")),
        ("a non-numeric port", Some("Host: a.example:http")),
        ("an unclosed IPv6 literal", Some("Host: [::1")),
    ];
    for (what, host_lines) in cases {
        let replace = |request: &str| match host_lines {
            Some(lines) => request.replace("Host: test.local", lines),
            None => request.replace("Host: test.local\r\n", ""),
        };
        let (answer, _) = send_on(Path::Fast, gateway.addr, &replace(&plain)).await;
        assert_eq!(status_of(&answer), 400, "plain GET with {what}: {answer}");
        assert!(body_of(&answer).contains("Host"), "the reason names the Host header: {answer}");
        for path in PATHS {
            let (answer, _) = send_on(path, gateway.addr, &replace(&upgrade_request("/", KEY, "13"))).await;
            assert_eq!(status_of(&answer), 400, "handshake on the {path:?} path with {what}: {answer}");
            assert_eq!(header_of(&answer, "connection"), Some("close"), "{answer}");
        }
    }
    assert_eq!(echo.stats.accepted(), 0, "requests refused for their Host never reach the backend");
    let text = gateway.metrics.render();
    let refused = sample(&text, r#"wsgate_websocket_upgrades_total{outcome="bad_request",route=""}"#);
    assert_eq!(refused, Some((2 * cases.len()) as f64), "{text}");
}

/// A gateway with a route for host `chat.example` (backend "chat") and one for every other host
/// (backend "other"); the backends stop when the returned pair is dropped.
async fn chat_and_other() -> (Gateway, (EchoServer, EchoServer)) {
    let chat = echo_server("chat").await;
    let other = echo_server("other").await;
    let exact = route_for(
        "chat",
        HostMatch::Exact("chat.example".into()),
        PathMatch::prefix("/"),
        vec![backend("b", 1, &[chat.addr])],
        Policy::default(),
    );
    let gateway = Gateway::start(table(1, vec![exact, route("other", "/", &[other.addr])])).await;
    (gateway, (chat, other))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_matched_without_case_port_or_trailing_dot_on_every_path() {
    let (gateway, _backends) = chat_and_other().await;
    let cases = [
        ("chat.example", "chat"),
        ("CHAT.Example", "chat"),
        ("chat.example:8080", "chat"),
        ("chat.example.", "chat"),
        ("Chat.Example.:80", "chat"),
        ("chat.example:", "chat"),
        ("other.example", "other"),
        ("[::1]:8080", "other"),
        ("", "other"),
    ];
    for (host, served_by) in cases {
        let plain = format!("GET /x HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let (answer, _) = send_on(Path::Fast, gateway.addr, &plain).await;
        assert_eq!(status_of(&answer), 200, "GET with Host {host:?}: {answer}");
        assert_eq!(header_of(&answer, "x-echo-name"), Some(served_by), "GET with Host {host:?}");
        let seen: serde_json::Value = serde_json::from_str(body_of(&answer)).expect("echo json");
        assert_eq!(seen["headers"]["host"][0], host, "the backend sees the Host as sent");
        for path in PATHS {
            let handshake = upgrade_request("/", KEY, "13").replace("Host: test.local", &format!("Host: {host}"));
            let (answer, _) = send_on(path, gateway.addr, &handshake).await;
            assert_eq!(status_of(&answer), 101, "{path:?} handshake with Host {host:?}: {answer}");
            assert_eq!(header_of(&answer, "x-echo-name"), Some(served_by), "{path:?} handshake with Host {host:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_overrides_the_host_header() {
    let (gateway, _backends) = chat_and_other().await;

    let plain = "GET http://Chat.Example:8080/x?y=1 HTTP/1.1\r\nHost: other.example\r\n\r\n";
    let (answer, _) = send_on(Path::Fast, gateway.addr, plain).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(header_of(&answer, "x-echo-name"), Some("chat"));
    let seen: serde_json::Value = serde_json::from_str(body_of(&answer)).expect("echo json");
    assert_eq!(seen["path"], "/x?y=1", "the backend gets the origin form");
    assert_eq!(seen["headers"]["host"][0], "Chat.Example:8080", "the Host is the target's authority");
    assert_eq!(seen["headers"]["host"].as_array().map(Vec::len), Some(1));

    for path in PATHS {
        let handshake = upgrade_request("/", KEY, "13")
            .replacen("GET /", "GET http://chat.example/", 1)
            .replace("Host: test.local", "Host: other.example");
        let (answer, _) = send_on(path, gateway.addr, &handshake).await;
        assert_eq!(status_of(&answer), 101, "{path:?}: {answer}");
        assert_eq!(header_of(&answer, "x-echo-name"), Some("chat"), "{path:?}");
        // Userinfo in the target is refused (RFC 9110 §4.2.4), and so is the authority form outside CONNECT.
        for target in ["GET http://user@chat.example/", "GET chat.example:80"] {
            let bad = upgrade_request("/", KEY, "13").replacen("GET /", target, 1);
            let (answer, _) = send_on(path, gateway.addr, &bad).await;
            assert_eq!(status_of(&answer), 400, "{path:?} {target}: {answer}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_10_without_host_is_served_by_rules_without_a_host() {
    let any = echo_server("any").await;
    let gateway = Gateway::start(table(1, vec![route("any", "/", &[any.addr])])).await;
    let answer = raw_exchange(gateway.addr, "GET /old HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let seen: serde_json::Value = serde_json::from_str(body_of(&answer)).expect("echo json");
    assert_eq!(seen["path"], "/old");
    // The backend is spoken to in HTTP/1.1, where Host is required: it gets an empty one.
    assert_eq!(seen["headers"]["host"][0], "");
    assert!(seen["headers"].get("x-forwarded-host").is_none(), "{seen}");

    // With only host-bound rules and no default backend, such a request matches nothing.
    let chat = echo_server("chat").await;
    let exact = route_for(
        "chat",
        HostMatch::Exact("chat.example".into()),
        PathMatch::prefix("/"),
        vec![backend("b", 1, &[chat.addr])],
        Policy::default(),
    );
    gateway.swap(table(2, vec![exact]));
    let answer = raw_exchange(gateway.addr, "GET /old HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&answer), 404, "{answer}");
    assert_eq!(chat.stats.accepted(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_checks_give_the_same_answer_on_both_paths() {
    let echo = echo_server("e1").await;
    let first = echo_server("first").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[echo.addr]), first_route(&first)])).await;
    let good = upgrade_request("/", KEY, "13");
    let refused: Vec<(&str, String, u16)> = vec![
        ("POST", good.replacen("GET", "POST", 1), 400),
        ("HTTP/1.0", good.replacen("HTTP/1.1", "HTTP/1.0", 1), 400),
        ("no Upgrade", handshake_with("Upgrade", None), 400),
        ("Upgrade without websocket", handshake_with("Upgrade", Some("h2c")), 400),
        ("no Connection", handshake_with("Connection", None), 400),
        ("Connection without upgrade", handshake_with("Connection", Some("keep-alive")), 400),
        ("no key", handshake_with("Sec-WebSocket-Key", None), 400),
        ("a 15-byte key", handshake_with("Sec-WebSocket-Key", Some("AAAAAAAAAAAAAAAAAAAA")), 400),
        ("a key that is not base64", handshake_with("Sec-WebSocket-Key", Some("!!!!!!!!!!!!!!!!!!!!!!==")), 400),
        ("two keys", good.replace("\r\n\r\n", &format!("\r\nSec-WebSocket-Key: {KEY}\r\n\r\n")), 400),
        ("a body", good.replace("\r\n\r\n", "\r\nContent-Length: 4\r\n\r\nbody"), 400),
        ("a chunked body", good.replace("\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400),
        ("no version", handshake_with("Sec-WebSocket-Version", None), 426),
        ("version 8", handshake_with("Sec-WebSocket-Version", Some("8")), 426),
        ("version 14", handshake_with("Sec-WebSocket-Version", Some("14")), 426),
    ];
    for (what, request, status) in &refused {
        for path in PATHS {
            let (answer, mut stream) = send_on(path, gateway.addr, request).await;
            assert_eq!(status_of(&answer), *status, "{what} on the {path:?} path: {answer}");
            assert_eq!(body_of(&answer).lines().count(), 1, "a one-line reason: {answer}");
            if what.contains("key") {
                assert!(body_of(&answer).contains("Sec-WebSocket-Key"), "the reason names the header: {answer}");
            }
            if *status == 426 {
                // RFC 6455 §4.4: the versions the server speaks; RFC 9110 §15.5.22: the protocol to
                // upgrade to, listed in Connection too (§7.8).
                assert_eq!(header_of(&answer, "sec-websocket-version"), Some("13"), "{answer}");
                assert_eq!(header_of(&answer, "upgrade"), Some("websocket"), "{answer}");
                assert_eq!(header_of(&answer, "connection"), Some("upgrade, close"), "{answer}");
            } else {
                assert_eq!(header_of(&answer, "connection"), Some("close"), "{what} on the {path:?} path: {answer}");
            }
            // Either way the connection is closed after the answer.
            let mut rest = Vec::new();
            let read = within("close after the refusal", stream.read_to_end(&mut rest)).await;
            assert!(read.is_err() || rest.is_empty(), "nothing follows the refusal: {rest:?}");
        }
    }
    assert_eq!(echo.stats.accepted(), 0, "no refused handshake reached the backend");

    // Tokens are case-insensitive and may sit in lists (RFC 6455 §4.2.1, RFC 9110 §7.6.1, §7.8).
    let accepted = [
        ("mixed-case tokens", handshake_with("Upgrade", Some("WebSocket")).replace("Upgrade\r\n", "UPGRADE\r\n")),
        ("a Connection list", handshake_with("Connection", Some("keep-alive, Upgrade"))),
        ("an Upgrade list", handshake_with("Upgrade", Some("foo/2, websocket"))),
        ("Connection on two lines", handshake_with("Connection", Some("keep-alive\r\nConnection: upgrade"))),
        ("an empty body", good.replace("\r\n\r\n", "\r\nContent-Length: 0\r\n\r\n")),
    ];
    for (what, request) in &accepted {
        for path in PATHS {
            let (answer, mut stream) = send_on(path, gateway.addr, request).await;
            assert_eq!(status_of(&answer), 101, "{what} on the {path:?} path: {answer}");
            let accept = derive_accept_key(KEY.as_bytes());
            assert_eq!(header_of(&answer, "sec-websocket-accept"), Some(accept.as_str()), "{answer}");
            assert!(header_of(&answer, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")), "{answer}");
            assert!(header_of(&answer, "connection").is_some_and(|v| v.eq_ignore_ascii_case("upgrade")), "{answer}");
            // The tunnel works: a masked text frame comes back as the echo server's unmasked one.
            stream.write_all(&client_frame(true, false, 1, b"hi")).await.expect("write frame");
            let mut echoed = [0u8; 4];
            within("echoed frame", stream.read_exact(&mut echoed)).await.expect("read echo");
            assert_eq!(echoed, server_frame(true, false, 1, b"hi")[..], "{what} on the {path:?} path");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_errors_give_the_same_answer_on_both_paths() {
    let echo = echo_server("e1").await;
    let dead = dead_addr().await;
    let mut slow = route("slow", "/slow", &[echo.addr]);
    slow.policy.handshake_timeout = std::time::Duration::from_millis(200);
    let routes =
        vec![route("echo", "/", &[echo.addr]), route("dead", "/dead", &[dead]), route("empty", "/empty", &[]), slow];
    let gateway = Gateway::start(table(1, routes)).await;
    for (target, status) in [("/bad-accept", 502), ("/dead", 502), ("/empty", 503), ("/slow", 504), ("/reject", 403)] {
        for path in PATHS {
            let (answer, _) = send_on(path, gateway.addr, &upgrade_request(target, KEY, "13")).await;
            assert_eq!(status_of(&answer), status, "{target} on the {path:?} path: {answer}");
            assert!(header_of(&answer, "sec-websocket-accept").is_none(), "{answer}");
        }
    }
}

/// What a scripted backend saw: the handshake head and every byte after it.
struct Seen {
    head: String,
    bytes: Vec<u8>,
}

/// A backend that answers the handshake with `extra` headers after a correct 101, writes `frames`,
/// then reads until the client's EOF and reports what it saw.
async fn scripted_backend(extra: &'static str, frames: Vec<u8>) -> (SocketAddr, oneshot::Receiver<Seen>) {
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
    );
    backend_answering(answer, frames).await
}

/// Stands for the right `Sec-WebSocket-Accept` in a [`backend_answering`] answer.
const ACCEPT: &str = "<accept>";

/// A backend that reads one handshake head, writes `answer` (with [`ACCEPT`] replaced by the right
/// accept value) and `frames`, then reads until EOF and reports what it saw.
async fn backend_answering(answer: String, frames: Vec<u8>) -> (SocketAddr, oneshot::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, head, accept) = accept_handshake(&listener).await;
        let answer = answer.replace(ACCEPT, &accept);
        stream.write_all(answer.as_bytes()).await.expect("write answer");
        stream.write_all(&frames).await.expect("write frames");
        let mut bytes = Vec::new();
        // The proxy may close without a clean shutdown after refusing the answer.
        let _ = stream.read_to_end(&mut bytes).await;
        let _ = tx.send(Seen { head, bytes });
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_that_is_not_a_websocket_handshake_is_a_502_on_both_paths() {
    // RFC 6455 §4.1: a client fails a 101 without `Upgrade: websocket`, `Connection: upgrade` or the
    // right accept. The proxy rewrites the first two on the 101 it relays, so it must check them itself.
    let status = "HTTP/1.1 101 Switching Protocols\r\n";
    let accept = format!("Sec-WebSocket-Accept: {ACCEPT}\r\n");
    // What is wrong, the answer, and the word the 502's reason must name.
    let answers = [
        ("no Upgrade", format!("{status}Connection: Upgrade\r\n{accept}\r\n"), "Upgrade"),
        ("Upgrade: h2c", format!("{status}Upgrade: h2c\r\nConnection: Upgrade\r\n{accept}\r\n"), "Upgrade"),
        ("no Connection", format!("{status}Upgrade: websocket\r\n{accept}\r\n"), "Connection"),
        ("no accept", format!("{status}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), "Sec-WebSocket-Accept"),
    ];
    let first = echo_server("first").await;
    for (what, answer, named) in answers {
        for path in PATHS {
            let (backend, _seen) = backend_answering(answer.clone(), Vec::new()).await;
            let gateway = Gateway::start(table(1, vec![route("broken", "/", &[backend]), first_route(&first)])).await;
            let (reply, _) = send_on(path, gateway.addr, &upgrade_request("/", KEY, "13")).await;
            assert_eq!(status_of(&reply), 502, "{what} on the {path:?} path: {reply}");
            assert!(body_of(&reply).contains(named), "{what} on the {path:?} path: {reply}");
            let text = gateway.metrics.render();
            let failed =
                sample(&text, r#"wsgate_websocket_upgrades_total{outcome="backend_error",route="test/broken"}"#);
            assert_eq!(failed, Some(1.0), "{what} on the {path:?} path");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_extensions_and_subprotocols_pass_through_unchanged() {
    // Client → backend: a fragmented text message with a ping between its fragments, a compressed
    // (RSV1) binary message as permessage-deflate would send it, and a close with code and reason.
    let upstream: Vec<u8> = [
        client_frame(false, false, 0x1, b"Hel"),
        client_frame(true, false, 0x9, b"ping?"),
        client_frame(true, false, 0x0, b"lo"),
        client_frame(true, true, 0x2, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        client_frame(true, false, 0x8, &close_payload(1000, "done")),
    ]
    .concat();
    // Backend → client: a pong, a fragmented binary message, a compressed text frame, a close 4002.
    let downstream: Vec<u8> = [
        server_frame(true, false, 0xA, b"ping?"),
        server_frame(false, false, 0x2, &[1, 2, 3]),
        server_frame(false, false, 0x0, &[4, 5]),
        server_frame(true, false, 0x0, &[6]),
        server_frame(true, true, 0x1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        server_frame(true, false, 0x8, &close_payload(4002, "going away, politely")),
    ]
    .concat();
    let extra = "Sec-WebSocket-Protocol: chat.v2\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=10\r\n";
    let offer = "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-webkit-deflate-frame\r\n\
                 Origin: http://app.example\r\n\r\n";
    for path in PATHS {
        let (backend, seen) = scripted_backend(extra, downstream.clone()).await;
        // The hyper path starts with a plain GET: that goes to an echo server, since the scripted
        // backend takes one connection only.
        let first = echo_server("first").await;
        let gateway = Gateway::start(table(1, vec![route("frames", "/", &[backend]), first_route(&first)])).await;
        let handshake = upgrade_request("/", KEY, "13").replace("\r\n\r\n", "\r\n") + offer;
        let (answer, mut stream) = send_on(path, gateway.addr, &handshake).await;
        check_relay(path, &answer, &mut stream, &upstream, &downstream, seen).await;
    }
}

/// A route for the hyper path's first request (`GET /first`) only.
fn first_route(echo: &EchoServer) -> wsgate::routes::Route {
    route_for(
        "first",
        HostMatch::Any,
        PathMatch::exact("/first"),
        vec![backend("b", 1, &[echo.addr])],
        Policy::default(),
    )
}

async fn check_relay(
    path: Path,
    answer: &str,
    stream: &mut TcpStream,
    upstream: &[u8],
    downstream: &[u8],
    seen: oneshot::Receiver<Seen>,
) {
    assert_eq!(status_of(answer), 101, "{path:?}: {answer}");
    // The backend's choices reach the client as it wrote them.
    assert_eq!(header_of(answer, "sec-websocket-protocol"), Some("chat.v2"), "{path:?}: {answer}");
    assert_eq!(
        header_of(answer, "sec-websocket-extensions"),
        Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=10"),
        "{path:?}: {answer}"
    );
    stream.write_all(upstream).await.expect("write frames");
    let mut received = vec![0u8; downstream.len()];
    within("downstream frames", stream.read_exact(&mut received)).await.expect("read frames");
    assert_eq!(received, downstream, "{path:?}: backend frames arrive byte for byte");
    stream.shutdown().await.expect("half-close");
    let seen = within("backend report", seen).await.expect("backend saw the session");
    assert_eq!(seen.bytes, upstream, "{path:?}: client frames arrive byte for byte");
    // The client's offers reach the backend as the client wrote them.
    assert_eq!(header_of(&seen.head, "sec-websocket-protocol"), Some("chat.v1, chat.v2"), "{}", seen.head);
    assert_eq!(
        header_of(&seen.head, "sec-websocket-extensions"),
        Some("permessage-deflate; client_max_window_bits, x-webkit-deflate-frame"),
        "{}",
        seen.head
    );
    assert_eq!(header_of(&seen.head, "origin"), Some("http://app.example"), "{}", seen.head);
    assert_eq!(header_of(&seen.head, "sec-websocket-key"), Some(KEY), "{}", seen.head);
    assert_eq!(header_of(&seen.head, "sec-websocket-version"), Some("13"), "{}", seen.head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subprotocol_the_client_did_not_offer_is_relayed_and_the_client_fails() {
    // RFC 6455 §4.1: the *client* must fail a connection whose server picked a protocol it did not
    // offer. The proxy stays transparent and relays the backend's answer as is.
    let (backend, _seen) = scripted_backend("Sec-WebSocket-Protocol: surprise\r\n", Vec::new()).await;
    let gateway = Gateway::start(table(1, vec![route("surprise", "/", &[backend])])).await;
    let result = gateway.ws_with(None, "/", Some("chat")).await;
    assert!(result.is_err(), "a conforming client refuses the unoffered subprotocol");

    let (backend, _seen) = scripted_backend("Sec-WebSocket-Protocol: surprise\r\n", Vec::new()).await;
    gateway.swap(table(2, vec![route("surprise", "/", &[backend])]));
    let handshake = upgrade_request("/", KEY, "13").replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\n\r\n");
    let (answer, _) = send_on(Path::Fast, gateway.addr, &handshake).await;
    assert_eq!(status_of(&answer), 101, "{answer}");
    assert_eq!(header_of(&answer, "sec-websocket-protocol"), Some("surprise"), "{answer}");
}
