//! Test harness for the dataplane: echo backends, a running proxy on 127.0.0.1:0, hand-built routes,
//! and small raw-socket / HTTP / WebSocket client helpers. Every wait is bounded by [`WAIT`].
#![allow(dead_code)]

pub mod ca;
pub mod echo;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response as WsResponse;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use wsgate::dataplane::{Proxy, ProxyOptions};
use wsgate::metrics::Metrics;
use wsgate::routes::{
    Backend, Endpoint, HostMatch, PathMatch, Policy, Route, RouteTable, SharedTable, Source, SourceKind,
};

/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Awaits `future`, failing the test if it takes longer than [`WAIT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// Polls `probe` every 10 ms until it returns true, failing the test after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        while !probe().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Sends `text` on a WebSocket (plain or TLS) and checks that the same text comes back.
pub async fn echo<S>(ws: &mut WebSocketStream<S>, text: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt as _, StreamExt as _};
    ws.send(tokio_tungstenite::tungstenite::Message::text(text)).await.expect("send");
    let reply = within("echo", ws.next()).await.expect("open").expect("message");
    assert_eq!(reply.into_text().expect("text").as_str(), text);
}

/// wsgate in file mode on `dir`, every listener on 127.0.0.1:0, no HTTPS, a 1 s drain and no shutdown
/// delay: what the file-mode tests start (each changes what it needs).
pub fn file_mode_config(
    dir: &std::path::Path,
    compile: wsgate::controller::compile::CompileOptions,
) -> wsgate::server::ServerConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    wsgate::server::ServerConfig {
        http_addr: any,
        https_addr: None,
        admin_addr: any,
        source: wsgate::server::Source::Manifests { dir: dir.to_path_buf(), compile },
        drain: Duration::from_secs(1),
        shutdown_delay: Duration::ZERO,
        access_log: wsgate::dataplane::AccessLog::Off,
        https_redirect_port: None,
        max_connections: None,
        max_tracked_clients: wsgate::dataplane::DEFAULT_MAX_TRACKED_CLIENTS,
        trusted_proxies: Default::default(),
        proxy_protocol: false,
    }
}

/// A temporary manifest folder for file mode, removed on drop.
pub struct Folder(pub PathBuf);

impl Folder {
    /// A fresh, empty folder named after the test (and this process, so parallel runs do not meet).
    pub fn new(test: &str) -> Folder {
        let dir = std::env::temp_dir().join(format!("wsgate-test-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create manifest folder");
        Folder(dir)
    }

    /// Writes a manifest the way editors and `kubectl`-style tools do (write, then rename), so wsgate
    /// never reads a half-written file.
    pub fn write(&self, file: &str, content: &str) {
        let tmp = self.0.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, content).expect("write manifest");
        std::fs::rename(&tmp, self.0.join(file)).expect("rename manifest");
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.0.join(file)).expect("remove manifest");
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running echo backend; stops when dropped.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub name: String,
    pub stats: Arc<echo::Stats>,
    task: JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn echo_server(name: &str) -> EchoServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo address");
    let stats = Arc::new(echo::Stats::default());
    let task = tokio::spawn(echo::serve_with_stats(listener, name.to_string(), Arc::clone(&stats)));
    EchoServer { addr, name: name.to_string(), stats, task }
}

/// A loopback address with nothing listening on it.
pub async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    addr
}

/// A route `test/<name>` for any host, with one backend holding `endpoints`.
pub fn route(name: &str, path: &str, endpoints: &[SocketAddr]) -> Route {
    route_for(name, HostMatch::Any, PathMatch::prefix(path), vec![backend("b", 1, endpoints)], Policy::default())
}

pub fn backend(name: &str, weight: u32, endpoints: &[SocketAddr]) -> Backend {
    Backend {
        name: name.to_string(),
        weight,
        endpoints: endpoints.iter().map(|addr| Endpoint { addr: *addr }).collect(),
        ..Backend::default()
    }
}

pub fn route_for(name: &str, host: HostMatch, path: PathMatch, backends: Vec<Backend>, policy: Policy) -> Route {
    Route {
        id: format!("test/{name}").into(),
        source: Source { kind: SourceKind::WebSocketRoute, namespace: "test".into(), name: name.into() },
        host,
        path,
        conditions: Default::default(),
        backends,
        policy,
    }
}

pub fn table(generation: u64, routes: Vec<Route>) -> RouteTable {
    let mut table = RouteTable::new(routes, None);
    table.generation = generation;
    table
}

/// The proxy under test, serving on 127.0.0.1:0.
pub struct Gateway {
    pub addr: SocketAddr,
    pub table: SharedTable,
    pub metrics: Arc<Metrics>,
    shutdown: Option<oneshot::Sender<()>>,
    pub serving: Option<JoinHandle<io::Result<()>>>,
}

impl Gateway {
    pub async fn start(table: RouteTable) -> Gateway {
        Gateway::start_with_drain(table, Duration::from_secs(5)).await
    }

    pub async fn start_with_drain(table: RouteTable, drain: Duration) -> Gateway {
        Gateway::start_with(table, drain, ProxyOptions::default()).await
    }

    /// A gateway built with `options` (limits, trusted proxies, PROXY protocol, ...).
    pub async fn start_with(table: RouteTable, drain: Duration, options: ProxyOptions) -> Gateway {
        let shared: SharedTable = Arc::new(ArcSwap::from_pointee(table));
        let metrics = Arc::new(Metrics::new());
        let proxy = Proxy::with_options(Arc::clone(&shared), Arc::clone(&metrics), options);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (tx, rx) = oneshot::channel::<()>();
        let serving = tokio::spawn(async move {
            proxy
                .serve(
                    listener,
                    async move {
                        let _ = rx.await;
                    },
                    drain,
                )
                .await
        });
        Gateway { addr, table: shared, metrics, shutdown: Some(tx), serving: Some(serving) }
    }

    /// Publishes a new table, as the controller would.
    pub fn swap(&self, table: RouteTable) {
        self.table.store(Arc::new(table));
    }

    /// Resolves the shutdown future given to `serve`.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// `ws://` URL of `path` on the proxy.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Opens a WebSocket through the proxy with the given Host header and subprotocol offer.
    pub async fn ws_with(
        &self,
        host: Option<&str>,
        path: &str,
        protocols: Option<&str>,
    ) -> Result<(Ws, WsResponse), tokio_tungstenite::tungstenite::Error> {
        let mut request = self.ws_url(path).into_client_request()?;
        if let Some(host) = host {
            request.headers_mut().insert("host", host.parse().expect("host header"));
        }
        if let Some(protocols) = protocols {
            request.headers_mut().insert("sec-websocket-protocol", protocols.parse().expect("protocol header"));
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(echo::MAX_MESSAGE))
            .max_frame_size(Some(echo::MAX_MESSAGE));
        within("websocket connect", tokio_tungstenite::connect_async_with_config(request, Some(config), true)).await
    }

    /// Opens a WebSocket to `path`, failing the test if the handshake fails.
    pub async fn ws(&self, path: &str) -> (Ws, WsResponse) {
        self.ws_with(None, path, None).await.expect("websocket handshake through the proxy")
    }

    /// Sends one HTTP request on a new connection to the proxy.
    pub async fn http<B>(&self, request: Request<B>) -> Response<Incoming>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        http_to(self.addr, request).await
    }

    /// GET `path` with `Host: host`; returns status, headers and body text.
    pub async fn get(&self, host: &str, path: &str) -> (u16, hyper::HeaderMap, String) {
        let request = Request::get(path).header("host", host).body(Full::new(Bytes::new())).expect("request");
        let response = self.http(request).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, body_text(response).await)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
    }
}

/// Sends one HTTP request on a new connection to `addr`.
pub async fn http_to<B>(addr: SocketAddr, request: Request<B>) -> Response<Incoming>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = within("connect", TcpStream::connect(addr)).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("client handshake");
    tokio::spawn(connection);
    within("http response", sender.send_request(request)).await.expect("http response")
}

pub async fn body_text(response: Response<Incoming>) -> String {
    let bytes = within("body", response.into_body().collect()).await.expect("body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8 body")
}

/// Reads one HTTP head byte by byte, so nothing after it is consumed (a 101 leaves the stream at the
/// first tunnelled byte). Fails the test if the peer closes inside the head or takes longer than [`WAIT`].
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        match within("HTTP head", stream.read(&mut byte)).await.expect("read head") {
            0 => panic!("connection closed inside an HTTP head: {:?}", String::from_utf8_lossy(&head)),
            _ => head.push(byte[0]),
        }
    }
    String::from_utf8(head).expect("ascii head")
}

/// A backend's side of one WebSocket handshake: accepts a connection on `listener`, reads the request
/// head and returns the stream, the head and the `Sec-WebSocket-Accept` value its key calls for.
pub async fn accept_handshake(listener: &TcpListener) -> (TcpStream, String, String) {
    let (mut stream, _) = listener.accept().await.expect("accept");
    let head = read_head(&mut stream).await;
    let key = header_of(&head, "sec-websocket-key").expect("key forwarded");
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    (stream, head, accept)
}

/// Writes `request` on a raw connection to `addr` and reads until the peer closes.
pub async fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = within("connect", TcpStream::connect(addr)).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write request");
    let mut answer = Vec::new();
    within("raw answer until close", stream.read_to_end(&mut answer)).await.expect("read answer");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status code of a raw HTTP answer.
pub fn status_of(raw: &str) -> u16 {
    raw.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("not an HTTP answer: {raw:?}"))
}

/// The value of a header in a raw HTTP answer (case-insensitive name), if present.
pub fn header_of<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    let head = raw.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The body of a raw HTTP answer (everything after the head).
pub fn body_of(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// A raw upgrade request for `path` with the given key and version.
pub fn upgrade_request(path: &str, key: &str, version: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    )
}

/// The value of one sample line in the Prometheus text output, e.g.
/// `sample(&text, "wsgate_http_requests_total{code=\"200\",route=\"test/a\"}")`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
