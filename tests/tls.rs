//! TLS termination end to end: file mode with Ingress / WebSocketRoute `spec.tls` and kubernetes.io/tls
//! Secrets, an HTTPS listener on 127.0.0.1:0, certificates made by rcgen at test time, and real rustls
//! clients that verify the presented certificate against the test CA.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use wsgate::controller::compile::CompileOptions;
use wsgate::server::{self, ServerConfig};

use support::ca::{Ca, Issued};
use support::{Folder, echo, echo_server, eventually, sample, within};

/// A kubernetes.io/tls Secret manifest, written with `data` (base64) or `stringData`.
fn secret_yaml(name: &str, issued: &Issued, string_data: bool) -> String {
    if string_data {
        let indent = |pem: &str| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\nstringData:\n  \
             tls.crt: |\n{}  tls.key: |\n{}",
            indent(&issued.cert_pem),
            indent(&issued.key_pem)
        )
    } else {
        let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\ndata:\n  \
             tls.crt: {}\n  tls.key: {}\n",
            b64(&issued.cert_pem),
            b64(&issued.key_pem)
        )
    }
}

/// A Service `echo` with one endpoint, the echo backend.
fn backend_yaml(port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: echo}}\nspec:\n  ports: [{{name: ws, port: 80}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: echo-1\n  \
         labels: {{kubernetes.io/service-name: echo}}\naddressType: IPv4\nports: [{{name: ws, port: {port}}}]\n\
         endpoints: [{{addresses: [127.0.0.1]}}]\n"
    )
}

/// An Ingress of class wsgate serving `host` with TLS from `secret`.
fn ingress_yaml(name: &str, host: &str, secret: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  \
         ingressClassName: wsgate\n  tls:\n  - hosts: [{host}]\n    secretName: {secret}\n  rules:\n  \
         - host: {host}\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        \
         backend: {{service: {{name: echo, port: {{name: ws}}}}}}\n"
    )
}

/// A WebSocketRoute serving `host` with TLS from `secret`.
fn route_yaml(name: &str, host: &str, secret: &str) -> String {
    format!(
        "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {{name: {name}}}\nspec:\n  \
         hostnames: [{host}]\n  tls: {{secretName: {secret}}}\n  backends: [{{service: {{name: echo, port: ws}}}}]\n"
    )
}

struct Running {
    http: SocketAddr,
    https: SocketAddr,
    admin: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(dir: &Path) -> Running {
    start_with(dir, true, None).await
}

/// Starts file mode on `dir`; `https`: with an HTTPS listener (else `Running::https` is the HTTP
/// address, and nothing is redirected); `redirect_port`: `--https-redirect-port`.
async fn start_with(dir: &Path, https: bool, redirect_port: Option<u16>) -> Running {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let config = ServerConfig {
        https_addr: https.then_some(any),
        https_redirect_port: redirect_port,
        ..support::file_mode_config(dir, CompileOptions::default())
    };
    let bound = config.bind().await.expect("bind");
    let http = bound.http.local_addr().expect("http address");
    let https = bound.https.as_ref().map_or(Ok(http), |l| l.local_addr()).expect("https address");
    let admin = bound.admin.local_addr().expect("admin address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::run(config, bound, async {
        let _ = stopped.await;
    }));
    Running { http, https, admin, _stop: stop }
}

async fn get(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let request = hyper::Request::get(path).header("host", host).body(Full::new(bytes::Bytes::new())).expect("request");
    let response = support::http_to(addr, request).await;
    let status = response.status().as_u16();
    (status, support::body_text(response).await)
}

async fn metrics(running: &Running) -> String {
    get(running.admin, "admin", "/metrics").await.1
}

/// Opens a TLS connection to the HTTPS listener with `sni` as the server name.
async fn tls_connect(ca: &Ca, addr: SocketAddr, sni: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = within("connect", TcpStream::connect(addr)).await?;
    let name = ServerName::try_from(sni.to_string()).expect("a DNS name");
    within("TLS handshake", ca.connector().connect(name, tcp)).await
}

/// The leaf certificate the server presented.
fn presented(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().and_then(|c| c.first()).expect("a server certificate").to_vec()
}

/// GET over TLS (SNI = Host = `host`); returns status and body.
async fn https_get(ca: &Ca, addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let stream = tls_connect(ca, addr, host).await.expect("TLS handshake");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("HTTP over TLS");
    tokio::spawn(connection);
    let request = hyper::Request::get(path).header("host", host).body(Full::new(bytes::Bytes::new())).expect("request");
    let response = within("https response", sender.send_request(request)).await.expect("response");
    let status = response.status().as_u16();
    (status, support::body_text(response).await)
}

type Wss = WebSocketStream<TlsStream<TcpStream>>;

/// A WebSocket over TLS through the HTTPS listener.
async fn wss(ca: &Ca, addr: SocketAddr, host: &str, path: &str) -> Wss {
    let stream = tls_connect(ca, addr, host).await.expect("TLS handshake");
    let url = format!("wss://{host}{path}");
    within("WebSocket handshake over TLS", tokio_tungstenite::client_async(url, stream)).await.expect("upgrade").0
}

#[tokio::test]
async fn https_and_websockets_are_served_per_sni_name_and_unknown_names_are_refused() {
    let backend = echo_server("echo").await;
    let ca = Ca::new();
    let chat = ca.issue(&["chat.example.com"]);
    let other = ca.issue(&["other.example.com"]);
    let folder = Folder::new("sni");
    folder.write("backend.yaml", &backend_yaml(backend.addr.port()));
    folder.write(
        "chat.yaml",
        &format!(
            "{}---\n{}",
            secret_yaml("chat-tls", &chat, true),
            ingress_yaml("chat", "chat.example.com", "chat-tls")
        ),
    );
    folder.write(
        "other.yaml",
        &format!(
            "{}---\n{}",
            secret_yaml("other-tls", &other, false),
            route_yaml("other", "other.example.com", "other-tls")
        ),
    );
    let running = start(&folder.0).await;
    eventually("ready", || async { get(running.admin, "admin", "/readyz").await.0 == 200 }).await;

    // HTTPS GET, routed by Host, with X-Forwarded-Proto: https.
    let (status, body) = https_get(&ca, running.https, "chat.example.com", "/hello").await;
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
    assert_eq!(seen["path"], "/hello");
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "https", "{seen}");
    // The same route over plain HTTP says http.
    let (status, body) = get(running.http, "chat.example.com", "/hello").await;
    assert_eq!(status, 200);
    let seen: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "http");

    // Each host gets its own certificate on the one port.
    let stream = tls_connect(&ca, running.https, "chat.example.com").await.expect("chat handshake");
    assert_eq!(presented(&stream), chat.der);
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let stream = tls_connect(&ca, running.https, "other.example.com").await.expect("other handshake");
    assert_eq!(presented(&stream), other.der);

    // WebSockets through both (an Ingress and a WebSocketRoute), over TLS.
    let mut chat_ws = wss(&ca, running.https, "chat.example.com", "/chat").await;
    echo(&mut chat_ws, "hello over TLS").await;
    let big = "x".repeat(200_000);
    echo(&mut chat_ws, &big).await;
    let mut other_ws = wss(&ca, running.https, "other.example.com", "/").await;
    echo(&mut other_ws, "other").await;

    // A name without a certificate is refused during the handshake, and counted.
    let refused = tls_connect(&ca, running.https, "unknown.example.com").await;
    assert!(refused.is_err(), "unknown SNI must be refused");
    eventually("the refusal is counted", || async {
        let text = metrics(&running).await;
        sample(&text, "wsgate_tls_handshake_failures_total{reason=\"no_certificate\"}") == Some(1.0)
    })
    .await;
    let text = metrics(&running).await;
    assert!(sample(&text, "wsgate_tls_certificate_expiry_timestamp_seconds{secret=\"default/chat-tls\"}").is_some());
    assert!(sample(&text, "wsgate_tls_certificate_expiry_timestamp_seconds{secret=\"default/other-tls\"}").is_some());
    assert_eq!(
        sample(&text, "wsgate_websocket_connections_active{route=\"ingress/default/chat\"}"),
        Some(1.0),
        "{text}"
    );

    // Close from the client: the backend's close comes back through the relay.
    chat_ws.close(None).await.expect("close");
    let after = within("close answered", chat_ws.next()).await;
    assert!(matches!(after, Some(Ok(Message::Close(_))) | None), "{after:?}");
    drop(chat_ws);
    eventually("the TLS tunnel ended and its bytes are counted", || async {
        let text = metrics(&running).await;
        let active = sample(&text, "wsgate_websocket_connections_active{route=\"ingress/default/chat\"}");
        let up = sample(&text, "wsgate_proxied_bytes_total{direction=\"upstream\",route=\"ingress/default/chat\"}");
        active == Some(0.0) && up.unwrap_or(0.0) >= 200_000.0
    })
    .await;

    let (_, routes) = get(running.admin, "admin", "/debug/routes").await;
    let routes: serde_json::Value = serde_json::from_str(&routes).expect("JSON");
    let tls: Vec<String> = routes["tls"]
        .as_array()
        .expect("tls list")
        .iter()
        .map(|h| format!("{} {}", h["host"].as_str().unwrap_or("?"), h["secret"].as_str().unwrap_or("?")))
        .collect();
    assert_eq!(tls, ["chat.example.com default/chat-tls", "other.example.com default/other-tls"]);
    let raw = serde_json::to_string(&routes).expect("JSON");
    assert!(!raw.contains("PRIVATE KEY") && !raw.contains(&chat.key_pem), "no key material in /debug/routes");
}

#[tokio::test]
async fn a_replaced_certificate_applies_to_new_connections_and_open_websockets_keep_going() {
    let backend = echo_server("echo").await;
    let ca = Ca::new();
    let first = ca.issue(&["chat.example.com"]);
    let second = ca.issue(&["chat.example.com", "www.chat.example.com"]);
    let folder = Folder::new("rotate");
    folder.write("backend.yaml", &backend_yaml(backend.addr.port()));
    folder.write("ingress.yaml", &ingress_yaml("chat", "chat.example.com", "chat-tls"));
    folder.write("secret.yaml", &secret_yaml("chat-tls", &first, false));
    let running = start(&folder.0).await;
    eventually("ready", || async { get(running.admin, "admin", "/readyz").await.0 == 200 }).await;

    let mut open = wss(&ca, running.https, "chat.example.com", "/live").await;
    echo(&mut open, "before").await;
    let stream = tls_connect(&ca, running.https, "chat.example.com").await.expect("handshake");
    assert_eq!(presented(&stream), first.der);

    folder.write("secret.yaml", &secret_yaml("chat-tls", &second, true));
    eventually("new connections get the new certificate", || async {
        let stream = tls_connect(&ca, running.https, "chat.example.com").await.expect("handshake");
        presented(&stream) == second.der
    })
    .await;
    echo(&mut open, "after the swap").await;
    let mut fresh = wss(&ca, running.https, "chat.example.com", "/new").await;
    echo(&mut fresh, "new").await;
}

#[tokio::test]
async fn a_broken_secret_is_reported_and_everything_else_keeps_working() {
    let backend = echo_server("echo").await;
    let ca = Ca::new();
    let good = ca.issue(&["good.example.com"]);
    let stranger = ca.issue(&["bad.example.com"]);
    let folder = Folder::new("broken");
    folder.write("backend.yaml", &backend_yaml(backend.addr.port()));
    folder.write(
        "good.yaml",
        &format!(
            "{}---\n{}",
            secret_yaml("good-tls", &good, false),
            ingress_yaml("good", "good.example.com", "good-tls")
        ),
    );
    // The key of another certificate.
    let mismatched = Issued { key_pem: good.key_pem.clone(), ..stranger };
    folder.write(
        "bad.yaml",
        &format!(
            "{}---\n{}",
            secret_yaml("bad-tls", &mismatched, false),
            ingress_yaml("bad", "bad.example.com", "bad-tls")
        ),
    );
    folder.write("missing.yaml", &ingress_yaml("missing", "missing.example.com", "nowhere"));
    let running = start(&folder.0).await;
    eventually("ready", || async { get(running.admin, "admin", "/readyz").await.0 == 200 }).await;

    assert_eq!(https_get(&ca, running.https, "good.example.com", "/").await.0, 200);
    assert!(tls_connect(&ca, running.https, "bad.example.com").await.is_err(), "no certificate for bad");
    // The broken hosts are still served over plain HTTP.
    assert_eq!(get(running.http, "bad.example.com", "/").await.0, 200);
    assert_eq!(get(running.http, "missing.example.com", "/").await.0, 200);
    let text = metrics(&running).await;
    assert_eq!(sample(&text, "wsgate_config_errors"), Some(2.0), "{text}");

    let out = Command::new(env!("CARGO_BIN_EXE_wsgate")).arg("check").arg(&folder.0).output().expect("run check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "error: Ingress default/bad: spec.tls[0].secretName: Secret default/bad-tls: tls.key does not match \
             the certificate in tls.crt"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("error: Ingress default/missing: spec.tls[0].secretName: Secret default/nowhere not found"),
        "{stdout}"
    );
    assert!(!stdout.contains("default/good"), "the good Ingress has no diagnostic: {stdout}");
    assert!(!stdout.contains("PRIVATE KEY"), "{stdout}");
}

/// An Ingress like [`ingress_yaml`] with the `wsgate.dev/ssl-redirect` annotation set to `value`.
fn redirect_ingress_yaml(name: &str, host: &str, secret: &str, value: &str) -> String {
    ingress_yaml(name, host, secret).replacen(
        &format!("metadata: {{name: {name}}}"),
        &format!("metadata:\n  name: {name}\n  annotations: {{wsgate.dev/ssl-redirect: \"{value}\"}}"),
        1,
    )
}

/// A raw WebSocket handshake for `host` and `target`.
fn raw_upgrade(host: &str, target: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Asserts a raw answer is the redirect to `location`, with no body, closing the connection.
fn assert_redirect(raw: &str, location: &str) {
    assert_eq!(support::status_of(raw), 308, "{raw}");
    assert_eq!(support::header_of(raw, "location"), Some(location), "{raw}");
    assert_eq!(support::header_of(raw, "content-length"), Some("0"), "{raw}");
    assert_eq!(support::header_of(raw, "connection"), Some("close"), "{raw}");
    assert_eq!(support::body_of(raw), "", "{raw}");
}

/// Files for the redirect tests: `chat.example.com` asks for the redirect, `other.example.com` does not
/// (both with a certificate).
fn write_redirect_manifests(folder: &support::Folder, ca: &Ca, backend: SocketAddr) {
    let chat = ca.issue(&["chat.example.com"]);
    let other = ca.issue(&["other.example.com"]);
    folder.write("backend.yaml", &backend_yaml(backend.port()));
    folder.write(
        "chat.yaml",
        &format!(
            "{}---\n{}",
            secret_yaml("chat-tls", &chat, true),
            redirect_ingress_yaml("chat", "chat.example.com", "chat-tls", "true")
        ),
    );
    folder.write(
        "other.yaml",
        &format!(
            "{}---\n{}",
            secret_yaml("other-tls", &other, false),
            ingress_yaml("other", "other.example.com", "other-tls")
        ),
    );
}

#[tokio::test]
async fn plain_http_is_redirected_to_https_on_routes_that_ask_for_it() {
    let backend = echo_server("echo").await;
    let ca = Ca::new();
    let folder = support::Folder::new("tls-redirect");
    write_redirect_manifests(&folder, &ca, backend.addr);
    let running = start(&folder.0).await;
    eventually("ready", || async { get(running.admin, "admin", "/readyz").await.0 == 200 }).await;
    let port = running.https.port();

    // A plain GET: 308 to the HTTPS listener's port (not 443, so it is kept), path and query as sent,
    // host as routed (lower-case, without the port the client named).
    let raw =
        support::raw_exchange(running.http, "GET /room/1?id=7&x=%20y HTTP/1.1\r\nHost: Chat.Example.com:8080\r\n\r\n")
            .await;
    assert_redirect(&raw, &format!("https://chat.example.com:{port}/room/1?id=7&x=%20y"));
    let raw = support::raw_exchange(running.http, "GET /hello HTTP/1.1\r\nHost: chat.example.com\r\n\r\n").await;
    assert_redirect(&raw, &format!("https://chat.example.com:{port}/hello"));

    // Over HTTPS the same route is served.
    let (status, body) = https_get(&ca, running.https, "chat.example.com", "/hello").await;
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "https", "{seen}");
    // A route without the annotation is served over plain HTTP.
    let (status, body) = get(running.http, "other.example.com", "/hello").await;
    assert_eq!(status, 200, "{body}");

    // A WebSocket handshake as the first request of a connection (the fast path) gets the 308 too, and a
    // ws:// client fails on it.
    let raw = support::raw_exchange(running.http, &raw_upgrade("chat.example.com", "/ws?t=1")).await;
    assert_redirect(&raw, &format!("https://chat.example.com:{port}/ws?t=1"));
    let tcp = TcpStream::connect(running.http).await.expect("connect");
    match within("ws:// handshake", tokio_tungstenite::client_async("ws://chat.example.com/ws", tcp)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 308),
        other => panic!("a ws:// handshake on a redirecting route must get the 308, got {other:?}"),
    }
    // … and as a later request of a keep-alive connection (hyper's path).
    let tcp = TcpStream::connect(running.http).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.expect("HTTP");
    tokio::spawn(connection);
    let request = hyper::Request::get("/hello")
        .header("host", "other.example.com")
        .body(Full::new(bytes::Bytes::new()))
        .expect("request");
    let response = within("first response", sender.send_request(request)).await.expect("response");
    assert_eq!(response.status(), 200);
    support::body_text(response).await;
    let request = hyper::Request::get("/ws")
        .header("host", "chat.example.com")
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .body(Full::new(bytes::Bytes::new()))
        .expect("request");
    let response = within("second response", sender.send_request(request)).await.expect("response");
    assert_eq!(response.status(), 308);
    let location = response.headers().get("location").and_then(|v| v.to_str().ok());
    assert_eq!(location, Some(format!("https://chat.example.com:{port}/ws").as_str()));

    // Every redirect is counted as a request of its route with status 308; the served one as 200.
    let text = metrics(&running).await;
    let redirected = sample(&text, "wsgate_http_requests_total{code=\"308\",route=\"ingress/default/chat\"}");
    assert_eq!(redirected, Some(5.0), "{text}");
    let served = sample(&text, "wsgate_http_requests_total{code=\"200\",route=\"ingress/default/chat\"}");
    assert_eq!(served, Some(1.0), "{text}");
}

#[tokio::test]
async fn redirect_port_443_is_left_out_and_nothing_is_redirected_without_https_listener() {
    let backend = echo_server("echo").await;
    let ca = Ca::new();
    let folder = support::Folder::new("tls-redirect-port");
    write_redirect_manifests(&folder, &ca, backend.addr);

    // Behind a Service mapping 443 to the HTTPS listener: --https-redirect-port 443.
    let running = start_with(&folder.0, true, Some(443)).await;
    eventually("ready", || async { get(running.admin, "admin", "/readyz").await.0 == 200 }).await;
    let raw = support::raw_exchange(running.http, "GET /a?b=c HTTP/1.1\r\nHost: chat.example.com\r\n\r\n").await;
    assert_redirect(&raw, "https://chat.example.com/a?b=c");
    drop(running);

    // Without --https-addr the certificate is there but nothing is redirected (plain and WebSocket).
    let running = start_with(&folder.0, false, Some(443)).await;
    eventually("ready", || async { get(running.admin, "admin", "/readyz").await.0 == 200 }).await;
    let (status, body) = get(running.http, "chat.example.com", "/a?b=c").await;
    assert_eq!(status, 200, "{body}");
    let tcp = TcpStream::connect(running.http).await.expect("connect");
    let url = "ws://chat.example.com/ws";
    let (mut ws, _) = within("ws:// handshake", tokio_tungstenite::client_async(url, tcp)).await.expect("upgrade");
    echo(&mut ws, "still plain").await;
}

#[tokio::test]
async fn a_frame_layer_route_over_tls_pings_the_client_and_refuses_an_oversized_message_with_1009() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let backend = echo_server("echo").await;
    let ca = Ca::new();
    let chat = ca.issue(&["chat.example.com"]);
    let folder = Folder::new("tls-frames");
    folder.write("backend.yaml", &backend_yaml(backend.addr.port()));
    let route = route_yaml("chat", "chat.example.com", "chat-tls")
        + "  keepalive: {pingInterval: 1s}\n  maxMessageBytes: 1000\n";
    folder.write("chat.yaml", &format!("{}---\n{route}", secret_yaml("chat-tls", &chat, true)));
    let running = start(&folder.0).await;
    eventually("ready", || async { get(running.admin, "admin", "/readyz").await.0 == 200 }).await;

    let mut ws = wss(&ca, running.https, "chat.example.com", "/").await;
    ws.send(Message::text("small")).await.expect("send");
    let mut pinged = false;
    let mut echoed = false;
    within("an echo and a ping from wsgate", async {
        while !(pinged && echoed) {
            match ws.next().await {
                Some(Ok(Message::Ping(payload))) => pinged = payload.starts_with(b"wsgate"),
                Some(Ok(Message::Text(text))) => echoed = text.as_str() == "small",
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
    ws.send(Message::binary(vec![0u8; 2000])).await.expect("send");
    let close = within("the Close", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1009));
}
