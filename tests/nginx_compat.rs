//! `--nginx-compat` as an ingress-nginx user meets it: Ingresses of class `nginx` (watched with
//! `--watch-ingress-class nginx`) with their `nginx.ingress.kubernetes.io/` annotations, served in file
//! mode by `server::run`, driven through real sockets on loopback: source allow- and deny-lists (the
//! refused client speaks from 127.0.0.2), socket.io-style cookie affinity (polling requests, then the
//! upgrade, on one pod), `upstream-hash-by: $arg_room`, and `proxy-read-timeout` as an idle timeout.

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use support::*;
use wsgate::controller::compile::CompileOptions;
use wsgate::server;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The Service `app` with one endpoint per echo server (all on 127.0.0.1, one EndpointSlice each).
fn service_yaml(backends: &[&EchoServer]) -> String {
    named_service_yaml("app", backends)
}

fn named_service_yaml(name: &str, backends: &[&EchoServer]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ports: [{{name: http, port: 80}}]\n",
    );
    for backend in backends {
        let port = backend.addr.port();
        out.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-{port}\n  \
             labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\n\
             endpoints: [{{addresses: [127.0.0.1]}}]\n"
        ));
    }
    out
}

/// An Ingress of class `nginx` for `host`, path `/`, with `annotations` (`key: value` lines).
fn ingress_yaml(name: &str, host: &str, annotations: &[(&str, &str)]) -> String {
    let mut lines = String::new();
    for (key, value) in annotations {
        lines.push_str(&format!("    nginx.ingress.kubernetes.io/{key}: {value:?}\n"));
    }
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  annotations:\n{lines}spec:\n  \
         ingressClassName: nginx\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: /, pathType: \
         Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}\n"
    )
}

struct Running {
    http: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), server::ServerError>>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        within("wsgate stops", self.task).await.expect("join").expect("clean exit");
    }
}

/// wsgate in file mode on `dir` with `--nginx-compat --watch-ingress-class nginx`, ready to serve.
async fn start(dir: &Path) -> Running {
    start_trusting(dir, "").await
}

/// [`start`], with `--trusted-proxies` set to `trusted`.
async fn start_trusting(dir: &Path, trusted: &str) -> Running {
    let compile =
        CompileOptions { nginx_compat: true, watch_ingress_classes: vec!["nginx".into()], ..CompileOptions::default() };
    let config = server::ServerConfig {
        trusted_proxies: trusted.parse().expect("trusted proxies"),
        ..support::file_mode_config(dir, compile)
    };
    let bound = config.bind().await.expect("bind");
    let http = bound.http.local_addr().expect("http address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::run(config, bound, async {
        let _ = stopped.await;
    }));
    Running { http, stop: Some(stop), task }
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind the client address");
    within("connect", socket.connect(to)).await.expect("connect")
}

/// Sends one request head from `from` and reads the answer head (and a short body, if any).
async fn exchange_from(from: IpAddr, to: SocketAddr, request: &str) -> String {
    let mut stream = connect_from(from, to).await;
    stream.write_all(request.as_bytes()).await.expect("write request");
    let mut head = read_head(&mut stream).await;
    if let Some(length) = header_of(&head, "content-length").and_then(|l| l.parse::<usize>().ok()) {
        let mut body = vec![0u8; length];
        within("body", stream.read_exact(&mut body)).await.expect("read body");
        head.push_str(&String::from_utf8_lossy(&body));
    }
    head
}

fn get(host: &str, path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n")
}

fn upgrade(host: &str, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Waits until `host` answers something other than 404 (the folder was compiled and served).
async fn served(http: SocketAddr, host: &str) {
    eventually("the Ingress is served", || async {
        status_of(&exchange_from([127, 0, 0, 1].into(), http, &get(host, "/", "")).await) != 404
    })
    .await;
}

#[tokio::test]
async fn allow_and_deny_lists_refuse_other_clients_with_403_on_requests_and_handshakes() {
    let one = echo_server("one").await;
    let folder = Folder::new("nginx-source-ranges");
    folder.write("app.yaml", &service_yaml(&[&one]));
    folder.write(
        "allow.yaml",
        &ingress_yaml("allow", "allow.example.com", &[("whitelist-source-range", "127.0.0.1/32, 10.0.0.0/8")]),
    );
    folder.write("deny.yaml", &ingress_yaml("deny", "deny.example.com", &[("denylist-source-range", "127.0.0.2")]));
    let wsgate = start(&folder.0).await;
    served(wsgate.http, "allow.example.com").await;
    served(wsgate.http, "deny.example.com").await;

    let (allowed, refused): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
    for host in ["allow.example.com", "deny.example.com"] {
        let answer = exchange_from(allowed, wsgate.http, &get(host, "/", "")).await;
        assert_eq!(status_of(&answer), 200, "{host} from 127.0.0.1: {answer}");
        let answer = exchange_from(allowed, wsgate.http, &upgrade(host, "/", "")).await;
        assert_eq!(status_of(&answer), 101, "{host} handshake from 127.0.0.1: {answer}");

        let accepted_before = one.stats.accepted();
        let answer = exchange_from(refused, wsgate.http, &get(host, "/", "")).await;
        assert_eq!(status_of(&answer), 403, "{host} from 127.0.0.2: {answer}");
        let answer = exchange_from(refused, wsgate.http, &upgrade(host, "/", "")).await;
        assert_eq!(status_of(&answer), 403, "{host} handshake from 127.0.0.2: {answer}");
        assert_eq!(one.stats.accepted(), accepted_before, "{host}: a refused client never reaches the backend");
    }
    wsgate.stop().await;
}

#[tokio::test]
async fn socketio_cookie_affinity_keeps_polling_and_the_upgrade_on_one_pod() {
    let (one, two) = (echo_server("one").await, echo_server("two").await);
    let folder = Folder::new("nginx-cookie-affinity");
    folder.write("app.yaml", &service_yaml(&[&one, &two]));
    let annotations = [("affinity", "cookie"), ("session-cookie-name", "io"), ("session-cookie-max-age", "3600")];
    folder.write("socketio.yaml", &ingress_yaml("socketio", "chat.example.com", &annotations));
    let wsgate = start(&folder.0).await;
    served(wsgate.http, "chat.example.com").await;

    let client: IpAddr = [127, 0, 0, 1].into();
    let mut pods = BTreeSet::new();
    for n in 0..24 {
        // socket.io's first request: a polling GET without the cookie, which sets it.
        let first =
            exchange_from(client, wsgate.http, &get("chat.example.com", "/socket.io/?EIO=4&transport=polling", ""))
                .await;
        assert_eq!(status_of(&first), 200, "client {n}: {first}");
        let set_cookie =
            header_of(&first, "set-cookie").unwrap_or_else(|| panic!("client {n}: no Set-Cookie: {first}"));
        assert!(set_cookie.starts_with("io="), "the cookie is named by session-cookie-name: {set_cookie}");
        assert!(set_cookie.contains("Max-Age=3600"), "session-cookie-max-age: {set_cookie}");
        assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
        let cookie = set_cookie.split(';').next().expect("name=value").to_string();
        let pod = header_of(&first, "x-echo-name").expect("X-Echo-Name").to_string();
        let with_cookie = format!("Cookie: {cookie}\r\n");
        for _ in 0..3 {
            let poll = exchange_from(
                client,
                wsgate.http,
                &get("chat.example.com", "/socket.io/?EIO=4&transport=polling", &with_cookie),
            )
            .await;
            assert_eq!(header_of(&poll, "x-echo-name"), Some(pod.as_str()), "client {n}: a poll moved: {poll}");
        }
        let upgraded = exchange_from(
            client,
            wsgate.http,
            &upgrade("chat.example.com", "/socket.io/?EIO=4&transport=websocket", &with_cookie),
        )
        .await;
        assert_eq!(status_of(&upgraded), 101, "client {n}: {upgraded}");
        assert_eq!(
            header_of(&upgraded, "x-echo-name"),
            Some(pod.as_str()),
            "client {n}: the upgrade moved: {upgraded}"
        );
        pods.insert(pod);
    }
    assert_eq!(pods.len(), 2, "24 clients use both pods, not one: {pods:?}");
    wsgate.stop().await;
}

#[tokio::test]
async fn upstream_hash_by_a_query_argument_puts_each_room_on_one_pod() {
    let (one, two, three) = (echo_server("one").await, echo_server("two").await, echo_server("three").await);
    let folder = Folder::new("nginx-hash-by");
    folder.write("app.yaml", &service_yaml(&[&one, &two, &three]));
    folder.write("rooms.yaml", &ingress_yaml("rooms", "rooms.example.com", &[("upstream-hash-by", "$arg_room")]));
    let wsgate = start(&folder.0).await;
    served(wsgate.http, "rooms.example.com").await;

    let client: IpAddr = [127, 0, 0, 1].into();
    let mut pods = BTreeSet::new();
    for room in 0..12 {
        let mut seen = BTreeSet::new();
        for _ in 0..4 {
            let answer =
                exchange_from(client, wsgate.http, &upgrade("rooms.example.com", &format!("/ws?room=r{room}"), ""))
                    .await;
            assert_eq!(status_of(&answer), 101, "{answer}");
            seen.insert(header_of(&answer, "x-echo-name").expect("X-Echo-Name").to_string());
        }
        assert_eq!(seen.len(), 1, "room r{room} went to {seen:?}");
        pods.extend(seen);
    }
    assert!(pods.len() >= 2, "12 rooms spread over more than one pod: {pods:?}");
    wsgate.stop().await;
}

#[tokio::test]
async fn proxy_read_timeout_closes_an_idle_websocket_after_that_many_seconds() {
    let one = echo_server("one").await;
    let folder = Folder::new("nginx-read-timeout");
    folder.write("app.yaml", &service_yaml(&[&one]));
    folder.write(
        "chat.yaml",
        &ingress_yaml("chat", "chat.example.com", &[("proxy-read-timeout", "2"), ("proxy-send-timeout", "1")]),
    );
    let wsgate = start(&folder.0).await;
    served(wsgate.http, "chat.example.com").await;

    let mut stream = connect_from([127, 0, 0, 1].into(), wsgate.http).await;
    stream.write_all(upgrade("chat.example.com", "/ws", "").as_bytes()).await.expect("handshake");
    let head = read_head(&mut stream).await;
    assert_eq!(status_of(&head), 101, "{head}");
    let opened = Instant::now();
    let mut rest = Vec::new();
    within("the idle WebSocket is closed", stream.read_to_end(&mut rest)).await.expect("closed cleanly");
    let after = opened.elapsed();
    // The larger of the two (2 s), plus at most one check period (an eighth of it), never before.
    assert!(after >= Duration::from_millis(1900), "closed after {after:?}, before the 2 s timeout");
    assert!(after <= Duration::from_secs(4), "closed after {after:?}, long after the 2 s timeout");
    wsgate.stop().await;
}

#[tokio::test]
async fn a_canary_ingress_takes_its_weight_of_1000_websockets_and_every_tester_by_header() {
    let (stable, canary) = (echo_server("stable").await, echo_server("canary").await);
    let folder = Folder::new("nginx-canary");
    folder.write("app.yaml", &service_yaml(&[&stable]));
    let canary_service = named_service_yaml("app-v2", &[&canary]);
    folder.write("app-v2.yaml", &canary_service);
    folder.write("main.yaml", &ingress_yaml("main", "live.example.com", &[]));
    let canary_ingress = ingress_yaml(
        "main-canary",
        "live.example.com",
        &[("canary", "true"), ("canary-weight", "20"), ("canary-by-header", "X-Canary")],
    )
    .replace("name: app, port", "name: app-v2, port");
    folder.write("canary.yaml", &canary_ingress);
    let wsgate = start(&folder.0).await;
    let client: IpAddr = [127, 0, 0, 1].into();
    eventually("the canary joined the main route", || async {
        let answer = exchange_from(client, wsgate.http, &get("live.example.com", "/", "X-Canary: always\r\n")).await;
        header_of(&answer, "x-echo-name") == Some("canary")
    })
    .await;

    let mut to_canary = 0;
    for _ in 0..1000 {
        let answer = exchange_from(client, wsgate.http, &upgrade("live.example.com", "/ws", "")).await;
        assert_eq!(status_of(&answer), 101, "{answer}");
        match header_of(&answer, "x-echo-name") {
            Some("canary") => to_canary += 1,
            Some("stable") => {}
            other => panic!("answered by {other:?}"),
        }
    }
    assert!((150..=250).contains(&to_canary), "canary-weight 20 took {to_canary} of 1000 WebSockets (want 200 ± 50)");

    for _ in 0..20 {
        let answer =
            exchange_from(client, wsgate.http, &upgrade("live.example.com", "/ws", "X-Canary: always\r\n")).await;
        assert_eq!(header_of(&answer, "x-echo-name"), Some("canary"), "a tester with X-Canary: always: {answer}");
        let answer =
            exchange_from(client, wsgate.http, &upgrade("live.example.com", "/ws", "X-Canary: never\r\n")).await;
        assert_eq!(header_of(&answer, "x-echo-name"), Some("stable"), "X-Canary: never: {answer}");
    }
    wsgate.stop().await;
}

/// The JSON an echo backend answers a GET with: what it received.
fn received(answer: &str) -> serde_json::Value {
    serde_json::from_str(body_of(answer)).unwrap_or_else(|e| panic!("not the echo's JSON ({e}): {answer}"))
}

#[tokio::test]
async fn rewrite_target_upstream_vhost_and_x_forwarded_prefix_reach_the_backend() {
    let one = echo_server("one").await;
    let folder = Folder::new("nginx-rewrite");
    folder.write("app.yaml", &service_yaml(&[&one]));
    let ingress = ingress_yaml(
        "api",
        "api.example.com",
        &[("rewrite-target", "/$2"), ("upstream-vhost", "internal.svc"), ("x-forwarded-prefix", "/api")],
    )
    .replace("{path: /, pathType: Prefix,", "{path: \"/api(/|$)(.*)\", pathType: ImplementationSpecific,");
    folder.write("api.yaml", &ingress);
    let wsgate = start(&folder.0).await;
    let client: IpAddr = [127, 0, 0, 1].into();
    eventually("the rewrite is served", || async {
        status_of(&exchange_from(client, wsgate.http, &get("api.example.com", "/api/x", "")).await) == 200
    })
    .await;

    let answer = exchange_from(client, wsgate.http, &get("api.example.com", "/API/users/7?full=1", "")).await;
    let seen = received(&answer);
    assert_eq!(seen["path"], "/users/7?full=1", "the path is rewritten, case-insensitively, the query kept: {seen}");
    assert_eq!(seen["headers"]["host"], serde_json::json!(["internal.svc"]), "upstream-vhost: {seen}");
    assert_eq!(
        seen["headers"]["x-forwarded-host"],
        serde_json::json!(["api.example.com"]),
        "the client's host is kept there: {seen}"
    );
    assert_eq!(seen["headers"]["x-forwarded-prefix"], serde_json::json!(["/api"]), "{seen}");
    let answer = exchange_from(client, wsgate.http, &upgrade("api.example.com", "/api/socket", "")).await;
    assert_eq!(status_of(&answer), 101, "a handshake through the rewrite: {answer}");
    wsgate.stop().await;
}

#[tokio::test]
async fn use_regex_on_one_ingress_makes_every_path_of_its_host_a_case_insensitive_prefix() {
    let (events, headers) = (echo_server("events").await, echo_server("headers").await);
    let folder = Folder::new("nginx-use-regex");
    folder.write("app.yaml", &service_yaml(&[&events]));
    folder.write("other.yaml", &named_service_yaml("other", &[&headers]));
    let regex = ingress_yaml("events", "regex.example.com", &[("use-regex", "true")])
        .replace("{path: /, pathType: Prefix,", "{path: \"/v[0-9]+/events\", pathType: ImplementationSpecific,");
    folder.write("events.yaml", &regex);
    // Another Ingress of the same host, without use-regex, with an Exact path.
    let exact = ingress_yaml("plain", "regex.example.com", &[])
        .replace("{path: /, pathType: Prefix,", "{path: /Header, pathType: Exact,")
        .replace("name: app, port", "name: other, port")
        .replace("annotations:\n", "annotations: {}\n");
    folder.write("plain.yaml", &exact);
    let wsgate = start(&folder.0).await;
    let client: IpAddr = [127, 0, 0, 1].into();
    eventually("both Ingresses are served", || async {
        let answer = exchange_from(client, wsgate.http, &get("regex.example.com", "/Header", "")).await;
        header_of(&answer, "x-echo-name") == Some("headers")
    })
    .await;
    for (path, want) in [
        ("/v2/events", Some("events")),
        ("/V12/EVENTS/stream", Some("events")),
        ("/headers", Some("headers")),
        ("/HEADER/anything", Some("headers")),
        ("/x/v2/events", None),
    ] {
        let answer = exchange_from(client, wsgate.http, &get("regex.example.com", path, "")).await;
        match want {
            Some(name) => assert_eq!(header_of(&answer, "x-echo-name"), Some(name), "{path}: {answer}"),
            None => assert_eq!(status_of(&answer), 404, "{path}: {answer}"),
        }
    }
    wsgate.stop().await;
}

#[tokio::test]
async fn redirect_annotations_answer_without_the_backend() {
    let one = echo_server("one").await;
    let folder = Folder::new("nginx-redirects");
    folder.write("app.yaml", &service_yaml(&[&one]));
    folder.write(
        "moved.yaml",
        &ingress_yaml("moved", "old.example.com", &[("permanent-redirect", "https://new.example.com/")]),
    );
    let temporal = [("temporal-redirect", "https://status.example.com/down"), ("temporal-redirect-code", "307")];
    folder.write("down.yaml", &ingress_yaml("down", "down.example.com", &temporal));
    folder.write("root.yaml", &ingress_yaml("root", "app.example.com", &[("app-root", "/app")]));
    let wsgate = start(&folder.0).await;
    let client: IpAddr = [127, 0, 0, 1].into();
    served(wsgate.http, "app.example.com").await;
    served(wsgate.http, "old.example.com").await;
    served(wsgate.http, "down.example.com").await;

    let accepted = one.stats.accepted();
    let answer = exchange_from(client, wsgate.http, &get("old.example.com", "/some/path?q=1", "")).await;
    assert_eq!(status_of(&answer), 301, "{answer}");
    assert_eq!(header_of(&answer, "location"), Some("https://new.example.com/"), "the path is not appended");
    let answer = exchange_from(client, wsgate.http, &upgrade("old.example.com", "/ws", "")).await;
    assert_eq!(status_of(&answer), 301, "handshakes are redirected too: {answer}");
    let answer = exchange_from(client, wsgate.http, &get("down.example.com", "/", "")).await;
    assert_eq!(status_of(&answer), 307, "temporal-redirect-code: {answer}");
    assert_eq!(header_of(&answer, "location"), Some("https://status.example.com/down"));
    let answer = exchange_from(client, wsgate.http, &get("app.example.com", "/", "")).await;
    assert_eq!(status_of(&answer), 302, "app-root: {answer}");
    assert_eq!(header_of(&answer, "location"), Some("http://app.example.com/app"));
    assert_eq!(one.stats.accepted(), accepted, "no redirect reached the backend");
    let answer = exchange_from(client, wsgate.http, &get("app.example.com", "/app", "")).await;
    assert_eq!(status_of(&answer), 200, "app-root redirects / only: {answer}");
    wsgate.stop().await;
}

#[tokio::test]
async fn proxy_body_size_refuses_larger_bodies_with_413() {
    let one = echo_server("one").await;
    let folder = Folder::new("nginx-body-size");
    folder.write("app.yaml", &service_yaml(&[&one]));
    folder.write("upload.yaml", &ingress_yaml("upload", "upload.example.com", &[("proxy-body-size", "1k")]));
    let wsgate = start(&folder.0).await;
    served(wsgate.http, "upload.example.com").await;
    let client: IpAddr = [127, 0, 0, 1].into();
    let post = |body: &str| {
        format!(
            "POST /upload HTTP/1.1\r\nHost: upload.example.com\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };

    let small = "x".repeat(1024);
    let answer = exchange_from(client, wsgate.http, &post(&small)).await;
    assert_eq!(status_of(&answer), 200, "1 KiB is allowed: {answer}");
    assert!(answer.ends_with(&small), "and reaches the backend whole");

    let accepted = one.stats.accepted();
    let answer = exchange_from(client, wsgate.http, &post(&"x".repeat(1025))).await;
    assert_eq!(status_of(&answer), 413, "one byte over: {answer}");
    assert_eq!(one.stats.accepted(), accepted, "a declared oversized body never reaches the backend");

    // A chunked body that passes the limit is cut off: the client never gets it echoed whole.
    let mut stream = connect_from(client, wsgate.http).await;
    let head =
        "POST /upload HTTP/1.1\r\nHost: upload.example.com\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = "y".repeat(800);
    for _ in 0..4 {
        let _ = stream.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes()).await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = within("the cut-off answer", stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains(&chunk.repeat(4)), "3,200 bytes were relayed whole past a 1 KiB limit: {answer}");
    wsgate.stop().await;
}

#[tokio::test]
async fn enable_cors_answers_preflights_itself_and_adds_the_headers_to_answers() {
    let one = echo_server("one").await;
    let folder = Folder::new("nginx-cors");
    folder.write("app.yaml", &service_yaml(&[&one]));
    folder.write("any.yaml", &ingress_yaml("any", "any.example.com", &[("enable-cors", "true")]));
    let listed = [
        ("enable-cors", "true"),
        ("cors-allow-origin", "https://app.example.com, https://*.example.org"),
        ("cors-allow-credentials", "false"),
        ("cors-max-age", "600"),
    ];
    folder.write("listed.yaml", &ingress_yaml("listed", "listed.example.com", &listed));
    let wsgate = start(&folder.0).await;
    served(wsgate.http, "any.example.com").await;
    served(wsgate.http, "listed.example.com").await;
    let client: IpAddr = [127, 0, 0, 1].into();
    let options = |host: &str, origin: &str| {
        format!(
            "OPTIONS /api HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: PUT\r\n\
             Connection: close\r\n\r\n"
        )
    };

    // ingress-nginx's defaults: any origin, credentials, 20 days, its methods.
    let accepted = one.stats.accepted();
    let answer = exchange_from(client, wsgate.http, &options("any.example.com", "https://x.test")).await;
    assert_eq!(status_of(&answer), 204, "{answer}");
    assert_eq!(header_of(&answer, "access-control-allow-origin"), Some("*"));
    assert_eq!(header_of(&answer, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header_of(&answer, "access-control-max-age"), Some("1728000"));
    assert_eq!(header_of(&answer, "access-control-allow-methods"), Some("GET, PUT, POST, DELETE, PATCH, OPTIONS"));
    assert_eq!(one.stats.accepted(), accepted, "the preflight never reaches the backend");
    let answer =
        exchange_from(client, wsgate.http, &get("any.example.com", "/api", "Origin: https://x.test\r\n")).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(header_of(&answer, "access-control-allow-origin"), Some("*"), "added to the backend's answer");

    // A list: the allowed origin is echoed, another gets nothing and its preflight goes to the backend.
    let answer = exchange_from(client, wsgate.http, &options("listed.example.com", "https://app.example.com")).await;
    assert_eq!(status_of(&answer), 204, "{answer}");
    assert_eq!(header_of(&answer, "access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(header_of(&answer, "access-control-allow-credentials"), None, "cors-allow-credentials: false");
    assert_eq!(header_of(&answer, "access-control-max-age"), Some("600"));
    let answer = exchange_from(client, wsgate.http, &options("listed.example.com", "https://a.example.org")).await;
    assert_eq!(header_of(&answer, "access-control-allow-origin"), Some("https://a.example.org"), "{answer}");
    let answer = exchange_from(client, wsgate.http, &options("listed.example.com", "https://evil.test")).await;
    assert_ne!(status_of(&answer), 204, "not answered by wsgate: {answer}");
    assert_eq!(header_of(&answer, "access-control-allow-origin"), None, "{answer}");
    assert_eq!(header_of(&answer, "x-echo-name"), Some("one"), "the backend answered it: {answer}");
    wsgate.stop().await;
}

#[tokio::test]
async fn force_ssl_redirect_redirects_unless_a_trusted_proxy_says_https() {
    let one = echo_server("one").await;
    let folder = Folder::new("nginx-force-ssl");
    folder.write("app.yaml", &service_yaml(&[&one]));
    folder.write("secure.yaml", &ingress_yaml("secure", "secure.example.com", &[("force-ssl-redirect", "true")]));
    // 127.0.0.1 stands for the TLS-terminating load balancer in front of wsgate.
    let wsgate = start_trusting(&folder.0, "127.0.0.1").await;
    served(wsgate.http, "secure.example.com").await;
    let (proxy, other): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());

    let answer = exchange_from(other, wsgate.http, &get("secure.example.com", "/login?next=/", "")).await;
    assert_eq!(status_of(&answer), 308, "plain HTTP, no certificate here: {answer}");
    assert_eq!(header_of(&answer, "location"), Some("https://secure.example.com/login?next=/"));
    let answer = exchange_from(other, wsgate.http, &upgrade("secure.example.com", "/ws", "")).await;
    assert_eq!(status_of(&answer), 308, "handshakes too: {answer}");
    let https = "X-Forwarded-Proto: https\r\n";
    let answer = exchange_from(proxy, wsgate.http, &get("secure.example.com", "/login", https)).await;
    assert_eq!(status_of(&answer), 200, "the trusted proxy terminated TLS: {answer}");
    let answer = exchange_from(proxy, wsgate.http, &upgrade("secure.example.com", "/ws", https)).await;
    assert_eq!(status_of(&answer), 101, "{answer}");
    let answer = exchange_from(other, wsgate.http, &get("secure.example.com", "/login", https)).await;
    assert_eq!(status_of(&answer), 308, "X-Forwarded-Proto from an untrusted peer is not believed: {answer}");
    wsgate.stop().await;
}

#[tokio::test]
async fn the_affinity_cookie_is_secure_on_answers_over_https_unless_told_otherwise() {
    let one = echo_server("one").await;
    let folder = Folder::new("nginx-cookie-secure");
    folder.write("app.yaml", &service_yaml(&[&one]));
    folder.write("sticky.yaml", &ingress_yaml("sticky", "sticky.example.com", &[("affinity", "cookie")]));
    folder.write(
        "always.yaml",
        &ingress_yaml("always", "always.example.com", &[("affinity", "cookie"), ("session-cookie-secure", "true")]),
    );
    let wsgate = start_trusting(&folder.0, "127.0.0.1").await;
    served(wsgate.http, "sticky.example.com").await;
    served(wsgate.http, "always.example.com").await;
    let (proxy, other): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
    let set_cookie = |answer: String| header_of(&answer, "set-cookie").map(str::to_string).expect("a Set-Cookie");
    let https = "X-Forwarded-Proto: https\r\n";

    let plain = set_cookie(exchange_from(other, wsgate.http, &get("sticky.example.com", "/", "")).await);
    assert!(plain.starts_with("INGRESSCOOKIE=") && !plain.contains("Secure"), "plain HTTP: {plain}");
    let tls = set_cookie(exchange_from(proxy, wsgate.http, &get("sticky.example.com", "/", https)).await);
    assert!(tls.ends_with("; Secure"), "over HTTPS at the trusted proxy: {tls}");
    let always = set_cookie(exchange_from(other, wsgate.http, &get("always.example.com", "/", "")).await);
    assert!(always.contains("; Secure"), "session-cookie-secure: true, even on plain HTTP: {always}");
    wsgate.stop().await;
}
