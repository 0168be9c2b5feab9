//! The dataplane end to end: real sockets on 127.0.0.1:0, a hand-built route table, the echo backend
//! (tests/support/echo.rs) and real WebSocket / HTTP clients.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::Request;
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};

use support::*;
use wsgate::routes::{HostMatch, LoadBalancing, PathMatch, Policy};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The next data or close message, skipping nothing: a test that expects a pong asks for it explicitly.
async fn next(ws: &mut Ws) -> Message {
    within("next websocket message", ws.next()).await.expect("stream open").expect("message")
}

async fn echo_once(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    assert_eq!(next(ws).await, Message::text(text));
}

/// The echo server's name, from the 101 it sent through the proxy.
fn served_by(response: &tokio_tungstenite::tungstenite::handshake::client::Response) -> String {
    response.headers()["x-echo-name"].to_str().expect("ascii").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echoes_text_binary_fragmented_and_large_messages() {
    let echo = echo_server("e1").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[echo.addr])])).await;
    let (mut ws, response) = gateway.ws("/chat").await;
    assert_eq!(response.status(), 101);
    assert_eq!(served_by(&response), "e1");

    echo_once(&mut ws, "hello through wsgate").await;

    let binary: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    ws.send(Message::binary(binary.clone())).await.expect("send binary");
    assert_eq!(next(&mut ws).await, Message::binary(binary));

    // A text message in three frames: the echo server gets (and returns) the whole message.
    let parts = ["frag", "mented ", "message"];
    ws.send(Message::Frame(WsFrame::message(Bytes::from(parts[0]), OpCode::Data(Data::Text), false)))
        .await
        .expect("first fragment");
    ws.send(Message::Frame(WsFrame::message(Bytes::from(parts[1]), OpCode::Data(Data::Continue), false)))
        .await
        .expect("middle fragment");
    ws.send(Message::Frame(WsFrame::message(Bytes::from(parts[2]), OpCode::Data(Data::Continue), true)))
        .await
        .expect("last fragment");
    assert_eq!(next(&mut ws).await, Message::text(parts.concat()));

    let large: Vec<u8> = (0..16 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    ws.send(Message::binary(large.clone())).await.expect("send 16 MiB");
    match next(&mut ws).await {
        Message::Binary(echoed) => {
            assert_eq!(echoed.len(), large.len());
            assert!(echoed[..] == large[..], "16 MiB message echoed intact");
        }
        other => panic!("expected the large binary echo, got {other:?}"),
    }
    ws.close(None).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_with_pong_through_the_tunnel() {
    let echo = echo_server("e1").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[echo.addr])])).await;
    let (mut ws, _) = gateway.ws("/").await;
    ws.send(Message::Ping(Bytes::from_static(b"are you there"))).await.expect("ping");
    assert_eq!(next(&mut ws).await, Message::Pong(Bytes::from_static(b"are you there")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes_are_relayed_both_ways() {
    let echo = echo_server("e1").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[echo.addr])])).await;

    // Client-initiated: the server's echoed close frame comes back with our code and reason.
    let (mut ws, _) = gateway.ws("/").await;
    let frame = CloseFrame { code: CloseCode::Away, reason: "client leaving".into() };
    ws.close(Some(frame.clone())).await.expect("send close");
    assert_eq!(next(&mut ws).await, Message::Close(Some(frame)));
    assert!(within("end of stream", ws.next()).await.is_none(), "stream ends after the close handshake");

    // Server-initiated: /server-close echoes once, then closes with 4001 "bye".
    let (mut ws, _) = gateway.ws("/server-close").await;
    echo_once(&mut ws, "last words").await;
    match next(&mut ws).await {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), echo::SERVER_CLOSE_CODE);
            assert_eq!(frame.reason, "bye");
        }
        other => panic!("expected the server's close frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_is_negotiated_end_to_end() {
    let echo = echo_server("e1").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[echo.addr])])).await;
    let (mut ws, response) = gateway.ws_with(None, "/", Some("unknown, echo, chat")).await.expect("handshake");
    assert_eq!(response.headers()["sec-websocket-protocol"], "echo");
    echo_once(&mut ws, "with a subprotocol").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_get_preserves_host_sets_forwarding_headers_and_drops_hop_by_hop() {
    let echo = echo_server("e1").await;
    let chat = route_for(
        "chat",
        HostMatch::Exact("chat.example".into()),
        PathMatch::prefix("/api"),
        vec![backend("b", 1, &[echo.addr])],
        Policy::default(),
    );
    let gateway = Gateway::start(table(1, vec![chat])).await;
    let request = Request::get("/api/items?page=2")
        .header("host", "Chat.Example:8080")
        .header("connection", "keep-alive, X-Secret")
        .header("x-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-connection", "keep-alive")
        .header("x-forwarded-for", "203.0.113.7")
        .header("cookie", "session=abc")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = gateway.http(request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-echo-name"], "e1");
    let seen: serde_json::Value = serde_json::from_str(&body_text(response).await).expect("json");
    let header = |name: &str| seen["headers"][name][0].as_str().map(str::to_string);
    assert_eq!(seen["path"], "/api/items?page=2");
    assert_eq!(seen["method"], "GET");
    assert_eq!(header("host").as_deref(), Some("Chat.Example:8080"));
    assert_eq!(header("x-forwarded-for").as_deref(), Some("203.0.113.7, 127.0.0.1"));
    assert_eq!(header("x-real-ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(header("x-forwarded-host").as_deref(), Some("Chat.Example:8080"));
    assert_eq!(header("x-forwarded-port"), Some(gateway.addr.port().to_string()));
    assert_eq!(header("cookie").as_deref(), Some("session=abc"));
    for hop in ["x-secret", "keep-alive", "te", "proxy-connection", "upgrade"] {
        assert!(header(hop).is_none(), "{hop} must not reach the backend: {seen}");
    }
    // `Connection` may be added by the proxy's own client for its keep-alive, never the client's list.
    assert!(!seen["headers"]["connection"].to_string().contains("X-Secret"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_bodies_stream_both_ways() {
    let echo = echo_server("e1").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[echo.addr])])).await;

    // A full body.
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let request = Request::post("/upload")
        .header("host", "test.local")
        .body(Full::new(Bytes::from(payload.clone())))
        .expect("request");
    let response = gateway.http(request).await;
    assert_eq!(response.status(), 200);
    let echoed = within("echoed body", response.into_body().collect()).await.expect("body").to_bytes();
    assert!(echoed[..] == payload[..], "1 MB body echoed intact");

    // A streamed body: the first chunk's echo arrives before the second chunk is even sent, which only
    // works if neither the request nor the response is buffered whole.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, std::convert::Infallible>(Frame::data(chunk)), rx))
    });
    let request = Request::post("/stream").header("host", "test.local").body(StreamBody::new(chunks)).expect("request");
    tx.send(Bytes::from_static(b"first chunk")).await.expect("send first");
    let mut body = gateway.http(request).await.into_body();
    let first = within("first echoed chunk", body.frame()).await.expect("frame").expect("ok").into_data();
    assert_eq!(first.expect("data"), Bytes::from_static(b"first chunk"));
    tx.send(Bytes::from_static(b"second chunk")).await.expect("send second");
    drop(tx);
    let rest = within("rest of the body", body.collect()).await.expect("rest").to_bytes();
    assert_eq!(rest, Bytes::from_static(b"second chunk"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_reuse_upstream_connections() {
    let echo = echo_server("e1").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[echo.addr])])).await;
    for i in 0..10 {
        let (status, _, body) = gateway.get("any.host", &format!("/n/{i}")).await;
        assert_eq!(status, 200);
        assert!(body.contains(&format!("/n/{i}")), "{body}");
    }
    // A connection goes back to the pool only after the proxy has seen the end of the response, which
    // can be a moment after the client has read it; so the next request may now and then find none idle
    // (more so on a loaded machine). Without a pool every request would open its own.
    let accepted = echo.stats.accepted();
    assert!(accepted <= 3, "ten sequential requests should share keep-alive connections; the backend saw {accepted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_routing_and_404_names_host_and_path() {
    let echo = echo_server("e1").await;
    let chat = route_for(
        "chat",
        HostMatch::Exact("chat.example".into()),
        PathMatch::prefix("/ws"),
        vec![backend("b", 1, &[echo.addr])],
        Policy::default(),
    );
    let gateway = Gateway::start(table(1, vec![chat])).await;

    // Case-insensitive host, port stripped, query ignored for matching.
    let (status, _, _) = gateway.get("CHAT.example:8080", "/ws/room?x=1").await;
    assert_eq!(status, 200);
    let (mut ws, _) = gateway.ws_with(Some("Chat.Example"), "/ws", None).await.expect("routed by host");
    echo_once(&mut ws, "routed").await;

    let (status, headers, body) = gateway.get("other.example", "/ws").await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(body, "no route for host \"other.example\" path \"/ws\"\n");
    let (status, _, body) = gateway.get("chat.example", "/elsewhere").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"/elsewhere\""), "{body}");

    // An upgrade that matches nothing gets the same 404, and the connection is closed.
    let raw =
        raw_exchange(gateway.addr, &upgrade_request("/nowhere", KEY, "13").replace("test.local", "x.example")).await;
    assert_eq!(status_of(&raw), 404);
    assert_eq!(header_of(&raw, "connection"), Some("close"));
    assert!(body_of(&raw).contains("no route for host \"x.example\" path \"/nowhere\""), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_without_endpoints_answers_503() {
    let gateway = Gateway::start(table(1, vec![route("empty", "/", &[])])).await;
    let (status, headers, body) = gateway.get("a", "/").await;
    assert_eq!(status, 503);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert!(!body.is_empty());
    let raw = raw_exchange(gateway.addr, &upgrade_request("/", KEY, "13")).await;
    assert_eq!(status_of(&raw), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_answers_502() {
    let dead = dead_addr().await;
    let gateway = Gateway::start(table(1, vec![route("dead", "/", &[dead])])).await;
    let (status, _, _) = gateway.get("a", "/").await;
    assert_eq!(status, 502);
    let raw = raw_exchange(gateway.addr, &upgrade_request("/", KEY, "13")).await;
    assert_eq!(status_of(&raw), 502);
    assert_eq!(header_of(&raw, "content-type"), Some("text/plain; charset=utf-8"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_accept_from_backend_answers_502() {
    let echo = echo_server("e1").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[echo.addr])])).await;
    let raw = raw_exchange(gateway.addr, &upgrade_request("/bad-accept", KEY, "13")).await;
    assert_eq!(status_of(&raw), 502);
    assert!(body_of(&raw).contains("Sec-WebSocket-Accept"), "{raw}");
    // A real client is refused the same way.
    assert!(gateway.ws_with(None, "/bad-accept", None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_backend_answers_504_after_the_handshake_timeout() {
    let echo = echo_server("e1").await;
    let mut slow = route("slow", "/", &[echo.addr]);
    slow.policy.handshake_timeout = Duration::from_millis(300);
    let gateway = Gateway::start(table(1, vec![slow])).await;
    let started = Instant::now();
    let raw = raw_exchange(gateway.addr, &upgrade_request("/slow", KEY, "13")).await;
    assert_eq!(status_of(&raw), 504);
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_are_refused() {
    let echo = echo_server("e1").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[echo.addr])])).await;
    let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "x".repeat(70 * 1024));
    let raw = raw_exchange(gateway.addr, &big).await;
    assert_eq!(status_of(&raw), 431, "{raw}");
    assert_eq!(echo.stats.accepted(), 0);
    // Just under the limit is fine.
    let fits = format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: {}\r\n\r\n", "x".repeat(60 * 1024));
    assert_eq!(status_of(&raw_exchange(gateway.addr, &fits).await), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_refusal_is_relayed_unchanged() {
    let echo = echo_server("e1").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[echo.addr])])).await;
    let raw = raw_exchange(
        gateway.addr,
        &upgrade_request("/reject", KEY, "13").replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status_of(&raw), 403, "{raw}");
    assert_eq!(header_of(&raw, "x-echo-name"), Some("e1"));
    assert!(body_of(&raw).ends_with("rejected by e1\n"), "{raw}");
    let text = gateway.metrics.render();
    assert_eq!(sample(&text, r#"wsgate_websocket_upgrades_total{outcome="rejected",route="test/echo"}"#), Some(1.0));
}

/// A backend that completes the handshake itself and then speaks raw TCP, to watch how a tunnel ends.
/// With `backend_first` it sends a last message and closes; otherwise it reads until the client's EOF,
/// reports what it got, and keeps its own side open.
async fn raw_backend(backend_first: bool) -> (SocketAddr, tokio::sync::oneshot::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _, accept) = accept_handshake(&listener).await;
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        stream.write_all(answer.as_bytes()).await.expect("write 101");
        if backend_first {
            stream.write_all(b"last words").await.expect("write");
            drop(stream);
            let _ = tx.send(Vec::new());
        } else {
            let mut received = Vec::new();
            let _ = stream.read_to_end(&mut received).await;
            let _ = tx.send(received);
            // Keeps its side open well past the test's patience: the tunnel must not wait for it.
            tokio::time::sleep(WAIT * 3).await;
            drop(stream);
        }
    });
    (addr, rx)
}

/// Completes a raw handshake through the proxy and returns the stream positioned after the 101 head.
async fn raw_tunnel(gateway: &Gateway) -> TcpStream {
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    stream.write_all(upgrade_request("/", KEY, "13").as_bytes()).await.expect("write handshake");
    let head = read_head(&mut stream).await;
    assert_eq!(status_of(&head), 101, "{head}");
    assert_eq!(header_of(&head, "sec-websocket-accept"), Some(derive_accept_key(KEY.as_bytes()).as_str()));
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_side_closing_delivers_its_last_bytes_and_closes_the_tunnel() {
    // The client sends its last bytes and half-closes: the backend gets them, then its EOF, and the
    // client's read side is closed as well (the tunnel ends on the first EOF, as nginx's does).
    let (addr, received) = raw_backend(false).await;
    let gateway = Gateway::start(table(1, vec![route("raw", "/", &[addr])])).await;
    let mut stream = raw_tunnel(&gateway).await;
    stream.write_all(b"client data").await.expect("write");
    stream.shutdown().await.expect("client half-close");
    assert_eq!(within("backend saw", received).await.expect("backend result"), b"client data");
    let mut rest = Vec::new();
    within("client EOF", stream.read_to_end(&mut rest)).await.expect("read");
    assert!(rest.is_empty(), "nothing after the client's EOF: {rest:?}");

    // The backend sends its last bytes and closes: the client gets them, then EOF.
    let (addr, _) = raw_backend(true).await;
    gateway.swap(table(2, vec![route("raw", "/", &[addr])]));
    let mut stream = raw_tunnel(&gateway).await;
    let mut last = Vec::new();
    within("backend data then EOF", stream.read_to_end(&mut last)).await.expect("read");
    assert_eq!(last, b"last words");

    // Both tunnels are gone from the gauge once closed.
    let gone = async {
        loop {
            let text = gateway.metrics.render();
            if sample(&text, r#"wsgate_websocket_connections_active{route="test/raw"}"#) == Some(0.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    within("active gauge back to 0", gone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_silent_tunnels_only() {
    let echo = echo_server("e1").await;
    let mut idle = route("idle", "/", &[echo.addr]);
    idle.policy.idle_timeout = Duration::from_millis(400);
    let gateway = Gateway::start(table(1, vec![idle])).await;

    let (mut silent, _) = gateway.ws("/").await;
    let (mut active, _) = gateway.ws("/").await;
    let started = Instant::now();
    // Keep one tunnel busy for three idle periods; the other says nothing.
    for i in 0..12 {
        echo_once(&mut active, &format!("tick {i}")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match within("silent tunnel closed", silent.next()).await {
        None | Some(Err(_)) => {}
        Some(Ok(message)) => panic!("silent tunnel should be closed, got {message:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(400));
    echo_once(&mut active, "still open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_websocket_survives_100_table_swaps_while_new_connections_follow_the_table() {
    let first = echo_server("first").await;
    let second = echo_server("second").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[first.addr])])).await;
    let (mut ws, response) = gateway.ws("/").await;
    assert_eq!(served_by(&response), "first");

    for generation in 2..102u64 {
        // Alternate between tables; generation 50 drops the live session's endpoint entirely.
        let endpoints = match generation {
            50 => vec![second.addr],
            g if g % 2 == 0 => vec![first.addr, second.addr],
            _ => vec![second.addr],
        };
        gateway.swap(table(generation, vec![route("echo", "/", &endpoints), route("other", "/other", &[])]));
        echo_once(&mut ws, &format!("generation {generation}")).await;
    }
    // The last table (generation 101) only has the second backend: new sessions go there.
    for _ in 0..3 {
        let (mut fresh, response) = gateway.ws("/").await;
        assert_eq!(served_by(&response), "second");
        echo_once(&mut fresh, "new table").await;
    }
    echo_once(&mut ws, "old session still alive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_spreads_100_concurrent_sessions_evenly() {
    let a = echo_server("a").await;
    let b = echo_server("b").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[a.addr, b.addr])])).await;
    let sessions = futures_util::future::join_all((0..100).map(|_| gateway.ws("/"))).await;
    let mut per_server: HashMap<String, usize> = HashMap::new();
    for (_, response) in &sessions {
        *per_server.entry(served_by(response)).or_default() += 1;
    }
    let (on_a, on_b) = (per_server.get("a").copied().unwrap_or(0), per_server.get("b").copied().unwrap_or(0));
    assert_eq!(on_a + on_b, 100);
    assert!(on_a.abs_diff(on_b) <= 1, "a={on_a} b={on_b}");
    // The backends agree: their open sockets match (allow the last upgrades a moment to land).
    within("backends count their sessions", async {
        while a.stats.open_websockets() + b.stats.open_websockets() < 100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(a.stats.open_websockets().abs_diff(b.stats.open_websockets()) <= 1);

    // Closing ten sessions on `a` makes it the least loaded: the next ten go there.
    let mut sessions = sessions;
    let mut closed = 0;
    sessions.retain_mut(|(_, response)| {
        let keep = closed == 10 || served_by(response) != "a";
        if !keep {
            closed += 1;
        }
        keep
    });
    within("closed sessions released", async {
        while a.stats.open_websockets() > on_a - 10 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for _ in 0..10 {
        let (_ws, response) = gateway.ws("/").await;
        assert_eq!(served_by(&response), "a");
        sessions.push((_ws, response));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_alternates_between_endpoints() {
    let a = echo_server("a").await;
    let b = echo_server("b").await;
    let mut rr = route("echo", "/", &[a.addr, b.addr]);
    rr.policy.load_balancing = LoadBalancing::RoundRobin;
    let gateway = Gateway::start(table(1, vec![rr])).await;
    // One long session makes its endpoint the busier one: least-connections would now send every
    // short request to the other endpoint, round-robin keeps alternating.
    let (_long, response) = gateway.ws("/").await;
    let busy = served_by(&response);
    let mut names = Vec::new();
    for _ in 0..6 {
        let (status, headers, _) = gateway.get("a", "/").await;
        assert_eq!(status, 200);
        names.push(headers["x-echo-name"].to_str().expect("ascii").to_string());
    }
    for pair in names.windows(2) {
        assert_ne!(pair[0], pair[1], "{names:?}");
    }
    assert_eq!(names.iter().filter(|n| **n == busy).count(), 3, "{names:?}");
    // WebSocket sessions alternate too.
    let mut ws_names = Vec::new();
    for _ in 0..4 {
        let (mut ws, response) = gateway.ws("/").await;
        ws_names.push(served_by(&response));
        echo_once(&mut ws, "rr").await;
    }
    for pair in ws_names.windows(2) {
        assert_ne!(pair[0], pair[1], "{ws_names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_is_skipped() {
    let live = echo_server("live").await;
    let dead = dead_addr().await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[dead, live.addr])])).await;
    for i in 0..10 {
        let (mut ws, response) = gateway.ws("/").await;
        assert_eq!(served_by(&response), "live");
        echo_once(&mut ws, &format!("attempt {i}")).await;
        let (status, headers, _) = gateway.get("a", "/").await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-echo-name"], "live");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_traffic() {
    let echo = echo_server("e1").await;
    let gateway = Gateway::start(table(1, vec![route("echo", "/", &[echo.addr])])).await;
    let (mut ws, _) = gateway.ws("/").await;
    echo_once(&mut ws, "0123456789").await;
    let text = gateway.metrics.render();
    assert_eq!(sample(&text, r#"wsgate_websocket_connections_active{route="test/echo"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"wsgate_websocket_upgrades_total{outcome="success",route="test/echo"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"wsgate_websocket_handshake_duration_seconds_count{route="test/echo"}"#), Some(1.0));

    ws.close(None).await.expect("close");
    while let Some(Ok(_)) = within("close handshake", ws.next()).await {}
    drop(ws);
    let closed = within("tunnel closed in metrics", async {
        loop {
            let text = gateway.metrics.render();
            if sample(&text, r#"wsgate_websocket_connections_active{route="test/echo"}"#) == Some(0.0) {
                // One render reads the duration histogram before the gauge (families come out sorted
                // by name), so the close may land between the two reads: read again once it is seen.
                return gateway.metrics.render();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(sample(&closed, r#"wsgate_websocket_connection_duration_seconds_count{route="test/echo"}"#), Some(1.0));
    // A masked 10-byte text frame is 16 bytes, plus the close frames.
    let up = sample(&closed, r#"wsgate_proxied_bytes_total{direction="upstream",route="test/echo"}"#).expect("up");
    let down =
        sample(&closed, r#"wsgate_proxied_bytes_total{direction="downstream",route="test/echo"}"#).expect("down");
    assert!(up >= 16.0 && down >= 12.0, "up={up} down={down}");

    let (status, _, _) = gateway.get("a", "/").await;
    assert_eq!(status, 200);
    let (status, _, _) = gateway.get("a", "/").await;
    assert_eq!(status, 200);
    let gateway_404 = Gateway::start(table(1, vec![])).await;
    gateway_404.get("a", "/").await;
    // A request is counted when its response is done, which may be a moment after the client has it.
    for (gateway, series, count) in [
        (&gateway, r#"wsgate_http_requests_total{code="200",route="test/echo"}"#, 2.0),
        (&gateway_404, r#"wsgate_http_requests_total{code="404",route=""}"#, 1.0),
    ] {
        within("requests counted", async {
            while sample(&gateway.metrics.render(), series) != Some(count) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_open_tunnels_before_returning() {
    let echo = echo_server("e1").await;
    let mut gateway = Gateway::start_with_drain(table(1, vec![route("echo", "/", &[echo.addr])]), WAIT).await;
    let (mut ws, _) = gateway.ws("/").await;
    gateway.begin_shutdown();
    let mut serving = gateway.serving.take().expect("serving");

    // The listener is gone, but the open tunnel keeps echoing during the drain.
    within("listener closed", async {
        while TcpStream::connect(gateway.addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    for i in 0..5 {
        echo_once(&mut ws, &format!("draining {i}")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!serving.is_finished(), "serve must wait for the open tunnel");
    }
    ws.close(None).await.expect("close");
    while let Some(Ok(_)) = within("close handshake", ws.next()).await {}
    // The client closes its socket after the close handshake, as browsers do; the tunnel then ends.
    drop(ws);
    let closed = Instant::now();
    let result = within("serve returns once the tunnel closed", &mut serving).await.expect("serve task");
    result.expect("serve result");
    assert!(closed.elapsed() < Duration::from_secs(2), "serve returned {:?} after the tunnel closed", closed.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_what_is_left_at_the_drain_deadline() {
    let echo = echo_server("e1").await;
    let drain = Duration::from_millis(300);
    let mut gateway = Gateway::start_with_drain(table(1, vec![route("echo", "/", &[echo.addr])]), drain).await;
    let (mut ws, _) = gateway.ws("/").await;
    let started = Instant::now();
    gateway.begin_shutdown();
    let serving = gateway.serving.take().expect("serving");
    within("serve returns at the deadline", serving).await.expect("serve task").expect("serve result");
    assert!(started.elapsed() >= drain, "{:?}", started.elapsed());
    match within("tunnel closed by the deadline", ws.next()).await {
        None | Some(Err(_)) => {}
        Some(Ok(message)) => panic!("tunnel should be closed, got {message:?}"),
    }
}
