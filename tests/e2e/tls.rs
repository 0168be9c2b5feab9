//! TLS termination through the API server: `kubernetes.io/tls` Secrets written with a kube client,
//! named by an Ingress `spec.tls` and a WebSocketRoute `spec.tls.secretName`, served by the real binary
//! on `--https-addr`, and checked with rustls clients that verify against a test CA (with SNI).
//!
//! ```text
//!   test ──create/replace/delete Secret──► API server ──watch (type=kubernetes.io/tls)──► wsgate
//!   test ──https:// and wss:// (SNI, verified against the test CA)──► wsgate :https ──► echo (netns)
//! ```

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use wsgate::crd::WebSocketRoute;

use crate::ca::{Ca, Issued};
use crate::harness::{self, Wsgate, eventually, object, within};
use crate::{Fixture, LIVE, PORT, conditions, ready, service, slice};

/// Served by the Ingress (HTTPS and plain HTTP).
const WEB_HOST: &str = "web.tls.e2e.example";
/// Served by the WebSocketRoute (wss and plain ws).
const WS_HOST: &str = "ws.tls.e2e.example";
/// Named by an Ingress whose Secret is Opaque: wsgate must never see that Secret.
const OPAQUE_HOST: &str = "opaque.tls.e2e.example";

/// TLS connections for the test CA.
trait Connect {
    async fn connect(&self, addr: SocketAddr, sni: &str) -> std::io::Result<TlsStream<TcpStream>>;
}

impl Connect for Ca {
    /// A TLS connection to `addr` with SNI `sni`, verified against this CA.
    async fn connect(&self, addr: SocketAddr, sni: &str) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = within("connect", TcpStream::connect(addr)).await?;
        let name = ServerName::try_from(sni.to_string()).expect("a DNS name");
        within("TLS handshake", self.connector().connect(name, tcp)).await
    }
}

fn secret(name: &str, type_: &str, issued: &Issued) -> Secret {
    object(json!({
        "metadata": {"name": name},
        "type": type_,
        "stringData": {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem},
    }))
}

fn tls_ingress(name: &str, host: &str, secret: &str) -> k8s_openapi::api::networking::v1::Ingress {
    object(json!({
        "metadata": {"name": name},
        "spec": {
            "ingressClassName": "wsgate",
            "tls": [{"hosts": [host], "secretName": secret}],
            "rules": [{"host": host, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "chat", "port": {"number": 80}}}
            }]}}]
        }
    }))
}

fn tls_route(name: &str, host: &str, secret: &str) -> WebSocketRoute {
    object(json!({
        "apiVersion": "wsgate.dev/v1alpha1",
        "kind": "WebSocketRoute",
        "metadata": {"name": name},
        "spec": {
            "hostnames": [host],
            "tls": {"secretName": secret},
            "backends": [{"service": {"name": "chat", "port": "ws"}}]
        }
    }))
}

/// The leaf certificate the server presented.
fn presented(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().and_then(|c| c.first()).expect("a server certificate").to_vec()
}

/// GET over TLS (SNI = Host = `host`): status, body and the certificate presented.
async fn https_get(ca: &Ca, addr: SocketAddr, host: &str, path: &str) -> std::io::Result<(u16, String, Vec<u8>)> {
    use http_body_util::BodyExt;
    let stream = ca.connect(addr, host).await?;
    let der = presented(&stream);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("HTTP over TLS");
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", host)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = within("https response", sender.send_request(request)).await.expect("response");
    let status = response.status().as_u16();
    let body = within("body", response.into_body().collect()).await.expect("body").to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned(), der))
}

type Wss = WebSocketStream<TlsStream<TcpStream>>;

/// A WebSocket over TLS (SNI = Host = `host`) and the certificate presented.
async fn wss(ca: &Ca, addr: SocketAddr, host: &str, path: &str) -> (Wss, Vec<u8>) {
    let stream = ca.connect(addr, host).await.expect("TLS handshake");
    let der = presented(&stream);
    let url = format!("wss://{host}{path}");
    let ws =
        within("WebSocket handshake over TLS", tokio_tungstenite::client_async(url, stream)).await.expect("upgrade").0;
    (ws, der)
}

async fn echo_wss(ws: &mut Wss, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    let reply = within("echo", ws.next()).await.expect("open").expect("message");
    assert_eq!(reply.into_text().expect("text").as_str(), text);
}

/// Whether a Warning Event on `object` has `reason` and a note containing `note`.
async fn has_event(events: &Api<Event>, object: &str, reason: &str, note: &str) -> bool {
    events.list(&ListParams::default()).await.is_ok_and(|list| {
        list.items.iter().any(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object)
                && e.note.as_deref().is_some_and(|n| n.contains(note))
        })
    })
}

async fn expiry(gw: &Wsgate, secret: &str) -> f64 {
    gw.metric(&format!("wsgate_tls_certificate_expiry_timestamp_seconds{{secret=\"{secret}\"}}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_secrets_are_served_rotated_and_withdrawn_through_the_api() {
    let f = Fixture::new("tls").await;
    let pod = f.net.echo(0, PORT, "pod-0");
    f.create(&service("chat")).await;
    f.create(&slice("chat", &[(pod.addr, true)])).await;
    let ca = Ca::new();
    let first = ca.issue_until(&[WEB_HOST, WS_HOST], 2031);
    let second = ca.issue_until(&[WEB_HOST, WS_HOST], 2032);
    let ns = f.ns.name.clone();
    let secret_id = format!("{ns}/web-tls");
    f.create(&secret("web-tls", "kubernetes.io/tls", &first)).await;
    // A perfectly good certificate, in a Secret of another type: the field selector keeps it out.
    f.create(&secret("opaque-tls", "Opaque", &ca.issue_until(&[OPAQUE_HOST], 2031))).await;
    f.create(&tls_ingress("web", WEB_HOST, "web-tls")).await;
    f.create(&tls_ingress("opaque", OPAQUE_HOST, "opaque-tls")).await;
    f.create(&tls_route("ws", WS_HOST, "web-tls")).await;

    let gw = f.wsgate(&["--https-addr", "127.0.0.1:0"]);
    let https = gw.https.expect("wsgate reports its HTTPS listener");
    ready(&gw).await;

    // HTTPS and wss, verified against the test CA with SNI.
    eventually("HTTPS is served", LIVE * 5, || async {
        https_get(&ca, https, WEB_HOST, "/").await.is_ok_and(|(status, _, _)| status == 200)
    })
    .await;
    let (status, body, der) = https_get(&ca, https, WEB_HOST, "/hello").await.expect("HTTPS");
    assert_eq!((status, der == first.der), (200, true), "{body}");
    assert!(body.contains("pod-0"), "the echo backend answered: {body}");
    let (mut session, der) = wss(&ca, https, WS_HOST, "/room").await;
    assert!(der == first.der, "the WebSocketRoute's host presents the Secret's certificate");
    echo_wss(&mut session, "over TLS through the cluster").await;
    assert_eq!(expiry(&gw, &secret_id).await, first.not_after as f64, "the metric shows the notAfter");

    // Only kubernetes.io/tls Secrets are watched: the Opaque one is "not found", never "has type Opaque",
    // and no certificate is served for its host.
    let events: Api<Event> = f.api();
    let missing = format!("Secret {ns}/opaque-tls not found");
    eventually("the Ingress naming an Opaque Secret gets an Event", LIVE * 10, || async {
        has_event(&events, "opaque", "InvalidCertificateRef", &missing).await
    })
    .await;
    let (_, debug) = gw.admin_get("/debug/routes").await;
    let debug: serde_json::Value = serde_json::from_str(&debug).expect("JSON");
    let mut served: Vec<&str> =
        debug["tls"].as_array().expect("tls list").iter().filter_map(|h| h["host"].as_str()).collect();
    served.sort_unstable();
    assert_eq!(served, [WEB_HOST, WS_HOST], "every served SNI name, none for the Opaque Secret");
    assert!(!debug.to_string().contains("opaque-tls"), "the Opaque Secret shows up nowhere: {debug}");
    assert!(ca.connect(https, OPAQUE_HOST).await.is_err(), "no certificate for the Opaque Secret's host");

    // Replace the Secret's data (update): new connections get the new certificate, the open wss goes on.
    let secrets: Api<Secret> = f.api();
    let mut updated = secrets.get("web-tls").await.expect("get Secret");
    updated.data = None;
    updated.string_data = secret("web-tls", "kubernetes.io/tls", &second).string_data;
    secrets.replace("web-tls", &PostParams::default(), &updated).await.expect("replace Secret");
    let took = eventually("new connections get the new certificate", LIVE * 5, || async {
        https_get(&ca, https, WEB_HOST, "/").await.is_ok_and(|(_, _, der)| der == second.der)
    })
    .await;
    eprintln!("Secret replaced → new certificate served in {took:?}");
    let (mut renewed, der) = wss(&ca, https, WS_HOST, "/room").await;
    assert!(der == second.der, "wss gets the new certificate too");
    echo_wss(&mut renewed, "renewed").await;
    echo_wss(&mut session, "the open WebSocket keeps echoing").await;
    eventually("the metric follows the new notAfter", LIVE * 5, || async {
        expiry(&gw, &secret_id).await == second.not_after as f64
    })
    .await;

    // Delete it: new handshakes for those hosts fail, the objects say why, plain HTTP keeps serving.
    secrets.delete("web-tls", &DeleteParams::default()).await.expect("delete Secret");
    let took = eventually("handshakes fail without the Secret", LIVE * 5, || async {
        ca.connect(https, WEB_HOST).await.is_err()
    })
    .await;
    eprintln!("Secret deleted → handshakes refused in {took:?}");
    assert!(ca.connect(https, WS_HOST).await.is_err(), "the WebSocketRoute's host has no certificate either");
    let gone = format!("Secret {secret_id} not found");
    eventually("the Ingress gets a Warning Event naming the Secret", LIVE * 10, || async {
        has_event(&events, "web", "InvalidCertificateRef", &gone).await
    })
    .await;
    let routes = f.api::<WebSocketRoute>();
    eventually("the WebSocketRoute gets ResolvedRefs=False naming the Secret", LIVE * 10, || async {
        conditions(&routes, "ws").await.iter().any(|(t, s, r, m)| {
            t == "ResolvedRefs" && s == "False" && r == "InvalidCertificateRef" && m.contains(&gone)
        })
    })
    .await;
    let (status, body) = gw.get(WEB_HOST, "/plain").await;
    assert_eq!(status, 200, "the Ingress keeps serving plain HTTP: {body}");
    let mut plain = gw.ws(WS_HOST, "/plain").await.expect("the WebSocketRoute keeps serving plain ws");
    harness::echo(&mut plain, "plain").await;
    echo_wss(&mut session, "the open WebSocket outlives its Secret").await;
    assert_eq!(expiry(&gw, &secret_id).await, 0.0, "a Secret no longer served leaves the metric");
}
