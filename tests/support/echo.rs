//! An echo backend: a real WebSocket and HTTP server for tests, the quickstart and the benchmark.
//!
//! ```text
//!   WebSocket upgrade  ─► 101 (+ X-Echo-Name, first offered subprotocol of SUBPROTOCOLS)
//!                          every text/binary message echoed, pings answered, close echoed
//!     /reject          ─► 403 with a body
//!     /bad-accept      ─► 101 with a wrong Sec-WebSocket-Accept
//!     /server-close    ─► echoes the first message, then closes with 4001 "bye"
//!     /slow            ─► never answers
//!   GET (any path)     ─► JSON {server, method, path, headers} (what the server received)
//!   POST               ─► the request body, streamed back
//! ```
//!
//! `X-Echo-Name` on every answer names the server, so tests can tell backends apart. [`Stats`] counts
//! accepted TCP connections and open WebSockets.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, CONTENT_TYPE, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

/// Subprotocols the echo server speaks; it picks the client's first offer that is in this list.
pub const SUBPROTOCOLS: &[&str] = &["chat", "echo"];
/// The close code `/server-close` sends after its first echo.
pub const SERVER_CLOSE_CODE: u16 = 4001;
/// Largest message the echo server accepts (the tests send 16 MiB).
pub const MAX_MESSAGE: usize = 64 << 20;

/// What a test can ask an echo server about its traffic.
#[derive(Debug, Default)]
pub struct Stats {
    /// TCP connections accepted so far.
    pub accepted: AtomicUsize,
    /// WebSocket sessions open right now.
    pub open_websockets: AtomicUsize,
}

impl Stats {
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn open_websockets(&self) -> usize {
        self.open_websockets.load(Ordering::SeqCst)
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, name: String) {
    serve_with_stats(listener, name, Arc::new(Stats::default())).await;
}

/// Serves until the task is dropped, counting into `stats`.
pub async fn serve_with_stats(listener: TcpListener, name: String, stats: Arc<Stats>) {
    let name: Arc<str> = name.into();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("echo {name}: accept failed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_nodelay(true);
        let name = Arc::clone(&name);
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let name = Arc::clone(&name);
                let stats = Arc::clone(&stats);
                async move { Ok::<_, Infallible>(answer(req, name, stats).await) }
            });
            // Errors are clients going away mid-request; nothing to do about them here.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades().await;
        });
    }
}

async fn answer(req: Request<Incoming>, name: Arc<str>, stats: Arc<Stats>) -> Response<Body> {
    if req.uri().path() == "/slow" {
        std::future::pending::<()>().await;
    }
    let wants_websocket = req
        .headers()
        .get_all(UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("websocket")));
    let mut response = if wants_websocket {
        upgrade(req, &name, stats)
    } else if req.method() == Method::POST {
        echo_body(req)
    } else {
        describe(&req, &name)
    };
    response.headers_mut().insert("x-echo-name", HeaderValue::from_str(&name).expect("test names are ASCII"));
    response
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// GET: what the server received, as JSON.
fn describe(req: &Request<Incoming>, name: &str) -> Response<Body> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in req.headers() {
        headers.entry(key.as_str().to_string()).or_default().push(String::from_utf8_lossy(value.as_bytes()).into());
    }
    let body = serde_json::json!({
        "server": name,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
    });
    let mut response = text(StatusCode::OK, body.to_string());
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// POST: the body goes back as it arrives.
fn echo_body(req: Request<Incoming>) -> Response<Body> {
    let content_type = req.headers().get(CONTENT_TYPE).cloned();
    let mut response = Response::new(req.into_body().boxed());
    if let Some(content_type) = content_type {
        response.headers_mut().insert(CONTENT_TYPE, content_type);
    }
    response
}

fn upgrade(mut req: Request<Incoming>, name: &str, stats: Arc<Stats>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/reject" {
        return text(StatusCode::FORBIDDEN, format!("rejected by {name}\n"));
    }
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).cloned() else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n".into());
    };
    let accept = if path == "/bad-accept" {
        derive_accept_key(b"not the key the client sent")
    } else {
        derive_accept_key(key.as_bytes())
    };
    let protocol = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|offer| SUBPROTOCOLS.contains(offer))
        .map(str::to_string);

    let mut response = text(StatusCode::SWITCHING_PROTOCOLS, String::new());
    let headers = response.headers_mut();
    headers.remove(CONTENT_TYPE);
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).expect("base64 is a valid header value"));
    if let Some(protocol) = protocol {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(&protocol).expect("from the fixed list"));
    }
    if path == "/bad-accept" {
        return response;
    }

    let on_upgrade = hyper::upgrade::on(&mut req);
    let close_after_first = path == "/server-close";
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        stats.open_websockets.fetch_add(1, Ordering::SeqCst);
        echo(ws, close_after_first).await;
        stats.open_websockets.fetch_sub(1, Ordering::SeqCst);
    });
    response
}

/// Echoes until the peer closes. Pings are answered and a peer's close is echoed by tungstenite itself
/// while the loop keeps reading.
async fn echo<S>(mut ws: WebSocketStream<S>, close_after_first: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = ws.next().await {
        if !(message.is_text() || message.is_binary()) {
            continue;
        }
        if ws.send(message).await.is_err() {
            return;
        }
        if close_after_first {
            let frame = CloseFrame { code: CloseCode::from(SERVER_CLOSE_CODE), reason: "bye".into() };
            let _ = ws.close(Some(frame)).await;
        }
    }
}
