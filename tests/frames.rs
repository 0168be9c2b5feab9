//! The frame layer as a client and a backend see it, through real sockets on loopback: wsgate's own
//! keepalive pings (answered, swallowed, or unanswered and closed), the message-size limit, invalid
//! frames, the max lifetime and the idle timeout as Close frames, shutdown with Close 1001, and the
//! endpoints' own pings passing through untouched. Clients are tungstenite or raw sockets that write
//! frames by hand; the backend is a tungstenite server that records what reaches it.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use support::*;
use wsgate::routes::{FramePolicy, HostMatch, Keepalive, PathMatch, Policy, Toward};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A WebSocket backend that echoes data messages and records every message it receives (pings and
/// pongs included: tungstenite answers pings itself and reports them).
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Message>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn recorder() -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                while let Some(Ok(message)) = ws.next().await {
                    log.lock().unwrap().push(message.clone());
                    if message.is_text() || message.is_binary() {
                        let _ = ws.send(message).await;
                    }
                }
            });
        }
    });
    Recorder { addr, seen, task }
}

fn frames_route(
    backend_addr: SocketAddr,
    frames: FramePolicy,
    tweak: impl FnOnce(&mut Policy),
) -> wsgate::routes::Route {
    let mut policy = Policy { frames, ..Policy::default() };
    tweak(&mut policy);
    route_for("chat", HostMatch::Any, PathMatch::prefix("/"), vec![backend("b", 1, &[backend_addr])], policy)
}

fn keepalive(interval_ms: u64, timeout_ms: u64, toward: Toward) -> FramePolicy {
    FramePolicy {
        keepalive: Some(Keepalive {
            ping_interval: Duration::from_millis(interval_ms),
            pong_timeout: Duration::from_millis(timeout_ms),
            toward,
        }),
        ..FramePolicy::default()
    }
}

/// A raw client: the handshake, then frames by hand.
async fn raw_client(gateway: &Gateway) -> TcpStream {
    let mut stream = within("connect", TcpStream::connect(gateway.addr)).await.expect("connect");
    stream.write_all(upgrade_request("/chat", KEY, "13").as_bytes()).await.expect("write");
    let head = read_head(&mut stream).await;
    assert_eq!(status_of(&head), 101, "{head}");
    stream
}

/// A client frame (masked), written by hand.
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// Reads one server frame (unmasked): (opcode, payload); `None` at EOF.
async fn read_frame(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    within("a frame", stream.read_exact(&mut head)).await.ok()?;
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7F {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).await.ok()?;
            u64::from(u16::from_be_bytes(ext))
        }
        127 => {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).await.ok()?;
            u64::from_be_bytes(ext)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).await.ok()?;
    Some((head[0] & 0x0F, payload))
}

/// Reads frames until a Close; returns its code and reason, and the frames before it.
async fn read_until_close(stream: &mut TcpStream) -> (u16, String, Vec<(u8, Vec<u8>)>) {
    let mut before = Vec::new();
    for _ in 0..1000 {
        let (opcode, payload) = read_frame(stream).await.expect("a Close before EOF");
        if opcode == 0x8 {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return (code, String::from_utf8_lossy(&payload[2..]).into_owned(), before);
        }
        before.push((opcode, payload));
    }
    panic!("no Close in 1000 frames");
}

/// The Close the backend recorded, waiting for it.
async fn backend_close(recorder: &Recorder) -> Option<CloseFrame> {
    let mut found = None;
    eventually("the backend sees a Close", || {
        let seen = recorder.seen.lock().unwrap().clone();
        found = seen.into_iter().find_map(|m| match m {
            Message::Close(frame) => Some(frame),
            _ => None,
        });
        let done = found.is_some();
        async move { done }
    })
    .await;
    found.flatten()
}

fn closed_count(gateway: &Gateway, reason: &str) -> f64 {
    let text = gateway.metrics.render();
    text.lines()
        .filter(|l| l.starts_with("wsgate_websocket_closed_total{") && l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_keep_a_live_client_and_close_a_silent_one_after_the_pong_timeout() {
    let recorder = recorder().await;
    let route = frames_route(recorder.addr, keepalive(150, 300, Toward::Client), |_| {});
    let gateway = Gateway::start(table(1, vec![route])).await;

    // A silent client: a raw socket that reads but never answers.
    let mut silent = raw_client(&gateway).await;
    let opened = Instant::now();
    let (code, reason, before) = within("the silent client is closed", read_until_close(&mut silent)).await;
    let took = opened.elapsed();
    assert_eq!(code, 1001, "{reason}");
    assert!(before.iter().all(|(op, payload)| *op == 0x9 && payload.starts_with(b"wsgate")), "{before:?}");
    assert!(took >= Duration::from_millis(450), "after the interval and the pong timeout: {took:?}");
    assert!(took < Duration::from_millis(2000), "soon after them: {took:?}");
    let mut rest = Vec::new();
    let _ = within("EOF", silent.read_to_end(&mut rest)).await;
    let frame = backend_close(&recorder).await.expect("the backend got a Close with a code");
    assert_eq!(frame.code, CloseCode::Away);
    eventually("the pong timeout counted", || {
        let n = closed_count(&gateway, "pong_timeout");
        async move { n == 1.0 }
    })
    .await;

    // A live client (tungstenite answers pings) stays up for 10 intervals and sees the pings.
    recorder.seen.lock().unwrap().clear();
    let (mut ws, _) = gateway.ws("/chat").await;
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        ws.send(Message::text("still here")).await.expect("send");
        loop {
            match within("a message", ws.next()).await {
                Some(Ok(Message::Ping(payload))) => {
                    assert!(payload.starts_with(b"wsgate"));
                    pings += 1;
                }
                Some(Ok(Message::Text(text))) => {
                    assert_eq!(text.as_str(), "still here");
                    break;
                }
                other => panic!("the live client was closed: {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pings >= 7, "a ping every 150 ms for 1.5 s: {pings}");
    let seen = recorder.seen.lock().unwrap().clone();
    assert!(!seen.iter().any(|m| matches!(m, Message::Pong(_))), "wsgate's pongs never reach the backend: {seen:?}");
    let sent =
        sample(&gateway.metrics.render(), "wsgate_websocket_pings_sent_total{route=\"test/chat\",toward=\"client\"}");
    assert!(sent.unwrap_or(0.0) >= 9.0, "{sent:?}");
    ws.close(None).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_is_pinged_and_endpoint_pings_pass_through_untouched() {
    let recorder = recorder().await;
    let route = frames_route(recorder.addr, keepalive(100, 2000, Toward::Backend), |_| {});
    let gateway = Gateway::start(table(1, vec![route])).await;
    let (mut ws, _) = gateway.ws("/chat").await;
    ws.send(Message::Ping(b"client-ping".to_vec().into())).await.expect("ping");
    let pong = within("the backend's pong", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(payload))) => return payload,
                Some(Ok(Message::Ping(payload))) => panic!("wsgate pinged the client: {payload:?}"),
                other => assert!(matches!(other, Some(Ok(_))), "{other:?}"),
            }
        }
    })
    .await;
    assert_eq!(&pong[..], b"client-ping");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = recorder.seen.lock().unwrap().clone();
    let wsgate_pings = seen.iter().filter(|m| matches!(m, Message::Ping(p) if p.starts_with(b"wsgate"))).count();
    assert!(wsgate_pings >= 3, "the backend is pinged every 100 ms: {seen:?}");
    assert!(seen.iter().any(|m| matches!(m, Message::Ping(p) if &p[..] == b"client-ping")), "{seen:?}");
    ws.send(Message::text("after")).await.expect("send");
    let echoed = within("echo", async {
        loop {
            if let Some(Ok(Message::Text(text))) = ws.next().await {
                return text;
            }
        }
    })
    .await;
    assert_eq!(echoed.as_str(), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_fragmented_message_gets_1009_and_the_backend_1001() {
    let recorder = recorder().await;
    let frames = FramePolicy { max_message_bytes: Some(1000), ..FramePolicy::default() };
    let gateway = Gateway::start(table(1, vec![frames_route(recorder.addr, frames, |_| {})])).await;
    let mut client = raw_client(&gateway).await;
    // A message within the limit, in fragments with a ping between them, is relayed whole.
    let mut ok = client_frame(false, 0x1, &[b'a'; 400]);
    ok.extend(client_frame(true, 0x9, b"mid"));
    ok.extend(client_frame(true, 0x0, &[b'b'; 400]));
    client.write_all(&ok).await.expect("write");
    let (opcode, payload) = read_frame(&mut client).await.expect("pong");
    assert_eq!((opcode, &payload[..]), (0xA, &b"mid"[..]));
    let (opcode, payload) = read_frame(&mut client).await.expect("echo");
    assert_eq!((opcode, payload.len()), (0x1, 800));
    // Then one over it: 3 fragments of 400.
    let mut big = client_frame(false, 0x2, &[1; 400]);
    big.extend(client_frame(false, 0x0, &[2; 400]));
    big.extend(client_frame(true, 0x0, &[3; 400]));
    client.write_all(&big).await.expect("write");
    let (code, reason, _) = within("the client's Close", read_until_close(&mut client)).await;
    assert_eq!(code, 1009, "{reason}");
    let frame = backend_close(&recorder).await.expect("a code");
    assert_eq!(frame.code, CloseCode::Away);
    let seen = recorder.seen.lock().unwrap().clone();
    assert!(!seen.iter().any(|m| matches!(m, Message::Binary(_))), "no part of it was delivered: {seen:?}");
    eventually("counted", || {
        let n = closed_count(&gateway, "message_too_big");
        async move { n == 1.0 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_frames_get_1002_toward_the_sender_and_1001_to_the_other_side() {
    let recorder = recorder().await;
    let frames = FramePolicy { max_message_bytes: Some(1 << 20), ..FramePolicy::default() };
    let gateway = Gateway::start(table(1, vec![frames_route(recorder.addr, frames, |_| {})])).await;
    let cases: [(&str, Vec<u8>); 4] = [
        ("unmasked", vec![0x81, 0x02, b'h', b'i']),
        ("reserved opcode", client_frame(true, 0x3, b"x")),
        ("continuation without a start", client_frame(true, 0x0, b"x")),
        ("fragmented ping", client_frame(false, 0x9, b"x")),
    ];
    for (what, bytes) in cases {
        recorder.seen.lock().unwrap().clear();
        let mut client = raw_client(&gateway).await;
        client.write_all(&bytes).await.expect("write");
        let (code, reason, _) = within(what, read_until_close(&mut client)).await;
        assert_eq!(code, 1002, "{what}: {reason}");
        let frame = backend_close(&recorder).await.expect("a code");
        assert_eq!(frame.code, CloseCode::Away, "{what}");
    }
    // Counted when each session ends, just after its Closes went out.
    eventually("every refusal counted", || {
        let n = closed_count(&gateway, "protocol_error");
        async move { n == 4.0 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_lifetime_and_idle_timeout_close_with_1001_on_the_frame_layer() {
    let recorder = recorder().await;
    let frames = FramePolicy { max_message_bytes: Some(1 << 20), ..FramePolicy::default() };
    let lifetime = frames_route(recorder.addr, frames.clone(), |p| p.max_lifetime = Some(Duration::from_millis(500)));
    let gateway = Gateway::start(table(1, vec![lifetime])).await;
    let (mut ws, _) = gateway.ws("/chat").await;
    let opened = Instant::now();
    let close = within("max lifetime", async {
        loop {
            ws.send(Message::text("tick")).await.ok();
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                other => panic!("no Close: {other:?}"),
            }
        }
    })
    .await;
    assert!(opened.elapsed() >= Duration::from_millis(500));
    assert_eq!(close.expect("a code").code, CloseCode::Away);

    let idle = frames_route(recorder.addr, frames, |p| p.idle_timeout = Duration::from_millis(300));
    gateway.swap(table(2, vec![idle]));
    let (mut ws, _) = gateway.ws("/chat").await;
    assert_eq!(close_code(&mut ws).await, 1001, "idle timeout");
    drop(ws);
    eventually("counted", || {
        let n = closed_count(&gateway, "idle_timeout");
        async move { n == 1.0 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_every_frame_layer_websocket_1001_and_ends_within_the_drain() {
    let recorder = recorder().await;
    let route = frames_route(recorder.addr, keepalive(10_000, 10_000, Toward::Client), |_| {});
    let mut gateway = Gateway::start_with_drain(table(1, vec![route]), Duration::from_secs(5)).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let (mut ws, _) = gateway.ws("/chat").await;
        echo(&mut ws, "hello").await;
        clients.push(ws);
    }
    let started = Instant::now();
    gateway.begin_shutdown();
    for ws in &mut clients {
        assert_eq!(close_code(ws).await, 1001, "shutdown");
    }
    drop(clients);
    let serving = gateway.serving.take().expect("serving");
    within("serve returns", serving).await.expect("task").expect("serve");
    assert!(started.elapsed() < Duration::from_secs(2), "well before the drain deadline: {:?}", started.elapsed());
    assert_eq!(closed_count(&gateway, "shutdown"), 20.0);
}

/// Opens a WebSocket; returns it and the name of the echo server that took it.
async fn open_named(gateway: &Gateway) -> (Ws, String) {
    let (ws, response) = gateway.ws("/chat").await;
    let name = response.headers().get("x-echo-name").expect("named").to_str().expect("ascii").to_string();
    (ws, name)
}

/// Waits for the Close a client is sent; its code.
async fn close_code(ws: &mut Ws) -> u16 {
    within("a Close", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map_or(1005, |f| u16::from(f.code)),
                Some(Ok(_)) => {}
                other => panic!("no Close: {other:?}"),
            }
        }
    })
    .await
}

fn drain_route(endpoints: &[SocketAddr], unready: &[SocketAddr], grace: Duration) -> wsgate::routes::Route {
    let frames = FramePolicy { drain: Some(wsgate::routes::DrainPolicy { grace }), ..FramePolicy::default() };
    let mut b = backend("b", 1, endpoints);
    b.unready = unready.iter().map(|addr| wsgate::routes::Endpoint { addr: *addr }).collect();
    route_for("chat", HostMatch::Any, PathMatch::prefix("/"), vec![b], Policy { frames, ..Policy::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_endpoint_is_drained_with_1001_after_the_grace_period_and_clients_reconnect_elsewhere() {
    let (a, b) = (echo_server("a").await, echo_server("b").await);
    let grace = Duration::from_millis(400);
    let gateway = Gateway::start(table(1, vec![drain_route(&[a.addr, b.addr], &[], grace)])).await;
    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    for _ in 0..6 {
        let (ws, name) = open_named(&gateway).await;
        if name == "a" { on_a.push(ws) } else { on_b.push(ws) }
    }
    assert_eq!((on_a.len(), on_b.len()), (3, 3), "least connections spreads them");

    // `a` fails its readiness probe without terminating: its WebSockets stay.
    gateway.swap(table(2, vec![drain_route(&[b.addr], &[a.addr], grace)]));
    tokio::time::sleep(grace + Duration::from_millis(300)).await;
    for ws in &mut on_a {
        echo(ws, "still up").await;
    }

    // `a` is terminating (gone from the ready and the unready sets).
    gateway.swap(table(3, vec![drain_route(&[b.addr], &[], grace)]));
    let seen = Instant::now();
    for ws in &mut on_a {
        assert_eq!(close_code(ws).await, 1001);
    }
    let took = seen.elapsed();
    assert!(took >= grace - Duration::from_millis(50), "not before the grace period: {took:?}");
    assert!(took <= grace + Duration::from_secs(1), "within the grace period + 1 s: {took:?}");
    for ws in &mut on_b {
        echo(ws, "untouched").await;
    }
    let (mut again, name) = open_named(&gateway).await;
    assert_eq!(name, "b", "the reconnect lands on the remaining endpoint");
    echo(&mut again, "hello").await;
    eventually("counted", || {
        let n = closed_count(&gateway, "endpoint_drain");
        async move { n == 3.0 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_moves_1000_websockets_from_2_to_4_endpoints_within_tolerance_with_the_fewest_closes() {
    const CLIENTS: usize = 1000;
    let servers = [echo_server("e0").await, echo_server("e1").await, echo_server("e2").await, echo_server("e3").await];
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let rebalance = wsgate::routes::Rebalance { tolerance_percent: 10, max_closes_per_second: 2000 };
    let route = |endpoints: &[SocketAddr]| {
        let frames = FramePolicy { rebalance: Some(rebalance), ..FramePolicy::default() };
        route_for(
            "chat",
            HostMatch::Any,
            PathMatch::prefix("/"),
            vec![backend("b", 1, endpoints)],
            Policy { frames, ..Policy::default() },
        )
    };
    let gateway = Arc::new(Gateway::start(table(1, vec![route(&addrs[..2])])).await);
    // Each client holds its WebSocket; on a 1012 it reconnects once, as a client library would.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, bool)>(CLIENTS * 2);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let gateway = Arc::clone(&gateway);
        let tx = tx.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, name) = open_named(&gateway).await;
            tx.send((name, false)).await.expect("report");
            let code = tokio::select! {
                code = async {
                    loop {
                        match ws.next().await {
                            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                            Some(Ok(_)) => {}
                            _ => return None,
                        }
                    }
                } => code,
                _ = stop.wait_for(|s| *s) => return,
            };
            assert_eq!(code, Some(1012), "a rebalancing close says Service Restart");
            drop(ws);
            let (ws, name) = open_named(&gateway).await;
            tx.send((name, true)).await.expect("report");
            let _ = stop.wait_for(|s| *s).await;
            drop(ws);
        }));
    }
    let mut count: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for _ in 0..CLIENTS {
        let (name, _) = within("connected", rx.recv()).await.expect("report");
        *count.entry(name).or_default() += 1;
    }
    assert_eq!(count.get("e0").copied().unwrap_or(0) + count.get("e1").copied().unwrap_or(0), CLIENTS as i64);

    gateway.swap(table(2, vec![route(&addrs)]));
    let mut reconnects = 0;
    // The closes, then quiet: no new report for 1.5 s ends the wait (bounded by 30 s in all).
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        match tokio::time::timeout(Duration::from_millis(1500), rx.recv()).await {
            Ok(Some((name, true))) => {
                reconnects += 1;
                *count.entry(name).or_default() += 1;
            }
            Ok(_) => panic!("unexpected report"),
            Err(_) => break,
        }
    }
    // Each closed client left its endpoint.
    eventually("every close counted", || {
        let closes = closed_count(&gateway, "rebalance");
        async move { closes == f64::from(reconnects) }
    })
    .await;
    let on: Vec<i64> = ["e0", "e1", "e2", "e3"].iter().map(|n| *count.get(*n).unwrap_or(&0)).collect();
    // The servers' own count of open WebSockets is the truth (the tallies also count closed ones).
    let fair = CLIENTS as f64 / 4.0;
    let mut live: Vec<i64> = Vec::new();
    eventually("the closed WebSockets are gone from the old endpoints", || {
        live = servers.iter().map(|s| s.stats.open_websockets() as i64).collect();
        let total = live.iter().sum::<i64>();
        async move { total == CLIENTS as i64 }
    })
    .await;
    for (name, n) in ["e0", "e1", "e2", "e3"].iter().zip(&live) {
        assert!((*n as f64) <= fair * 1.1, "{name} holds {n}, above 10% over {fair}: {live:?}");
        assert!((*n as f64) >= fair * 0.9, "{name} holds {n}, below 10% under {fair}: {live:?}");
    }
    // The fewest closes that bring e0 and e1 down to 275 each: 2 × 225.
    assert_eq!(reconnects, 450, "closes: {reconnects} (tallies {on:?}, live {live:?})");
    println!("rebalance: {reconnects} closes for {CLIENTS} WebSockets, 2 → 4 endpoints, now {live:?}");
    let _ = stop_tx.send(true);
    for task in tasks {
        within("client", task).await.expect("client task");
    }
}
