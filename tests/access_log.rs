//! "Why did my socket go there?" as an operator asks it: the real binary in file mode with
//! `--access-log on`, real WebSocket and HTTP clients, and the lines it writes; plus `/debug/explain`
//! on its admin listener and `wsgate check --explain`.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use support::{EchoServer, WAIT, Ws, echo_server, within};

/// A temporary manifest folder, removed on drop.
struct Folder(PathBuf);

impl Folder {
    fn new(test: &str) -> Folder {
        let dir = std::env::temp_dir().join(format!("wsgate-access-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create manifest folder");
        Folder(dir)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Service `echo` on `backend`, and three WebSocketRoutes:
/// `chat` (chat.example.com /chat), `quiet` (chat.example.com /quiet, idle timeout 300ms) and
/// `wild` (*.example.com /).
fn manifests(test: &str, backend: SocketAddr) -> Folder {
    let folder = Folder::new(test);
    let port = backend.port();
    let route = |name: &str, host: &str, path: &str, idle: &str| {
        format!(
            "---\napiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {{name: {name}}}\nspec:\n  \
             hostnames: [\"{host}\"]\n  path: {{type: Prefix, value: {path}}}\n  \
             backends: [{{service: {{name: echo, port: ws}}}}]\n  timeouts: {{idle: {idle}}}\n"
        )
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: echo, namespace: default}}\nspec:\n  \
         ports: [{{name: ws, port: 80}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: echo-1\n  labels: {{kubernetes.io/service-name: echo}}\naddressType: IPv4\n\
         ports: [{{name: ws, port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n{}{}{}",
        route("chat", "chat.example.com", "/chat", "1h"),
        route("quiet", "chat.example.com", "/quiet", "300ms"),
        route("wild", "*.example.com", "/", "1h"),
    );
    // A route on the frame layer (keepalive), for the shutdown test.
    let yaml = format!(
        "{yaml}---\napiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {{name: framed}}\nspec:\n  \
         hostnames: [\"framed.example.com\"]\n  backends: [{{service: {{name: echo, port: ws}}}}]\n  \
         keepalive: {{pingInterval: 30s}}\n"
    );
    std::fs::write(folder.0.join("all.yaml"), yaml).expect("write manifests");
    folder
}

/// The real binary, serving `folder`; killed on drop. Its stderr is collected line by line.
struct Wsgate {
    child: Child,
    http: SocketAddr,
    admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Wsgate {
    /// Starts `wsgate run` with `--log-format json` and `extra` flags.
    fn start(folder: &Folder, extra: &[&str]) -> Wsgate {
        Wsgate::launch_with(folder, Format::Json, extra, &[])
    }

    /// Starts `wsgate run` in `format` with `env` set.
    fn launch(folder: &Folder, format: Format, env: &[(&str, &str)]) -> Wsgate {
        Wsgate::launch_with(folder, format, &[], env)
    }

    fn launch_with(folder: &Folder, format: Format, extra: &[&str], env: &[(&str, &str)]) -> Wsgate {
        let dir = folder.0.to_str().expect("utf-8 path");
        let format_name = match format {
            Format::Json => "json",
            Format::Text => "text",
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .args(["run", "--manifests", dir, "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
            .args(["--log-format", format_name])
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("WSGATE_ACCESS_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsgate");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addresses) = listening(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addresses);
                }
                lines.lock().expect("log lock").push(line);
            }
        });
        let Ok((Some(http), Some(admin))) = rx.recv_timeout(WAIT) else {
            let _ = child.kill();
            panic!("wsgate did not report its listeners; log:\n{}", log.lock().expect("log").join("\n"));
        };
        Wsgate { child, http, admin, log }
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Every access line so far, parsed (each line must be JSON).
    fn access(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
            .filter(|entry| entry["target"] == "wsgate::access")
            .map(|entry| entry["fields"].clone())
            .collect()
    }

    /// Waits for the access line for `path` (and `end`, when given); fails after [`WAIT`].
    async fn access_line(&self, path: &str, end: Option<&str>) -> Value {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                let hit = self.access().into_iter().find(|l| l["path"] == path && end.is_none_or(|e| l["end"] == e));
                if let Some(line) = hit {
                    return line;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no access line for {path} {end:?}; log:\n{}", self.lines().join("\n")))
    }

    async fn get(&self, host: &str, path: &str) -> (u16, String) {
        http_get(self.http, host, path).await
    }

    /// Waits until the admin listener says a table is published.
    async fn ready(&self) {
        within("ready", async {
            while http_get(self.admin, "admin", "/readyz").await.0 != 200 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    async fn ws(&self, host: &str, path: &str) -> Ws {
        let mut request = format!("ws://{}{path}", self.http).into_client_request().expect("request");
        request.headers_mut().insert("host", host.parse().expect("host header"));
        within("handshake", tokio_tungstenite::connect_async(request)).await.expect("handshake").0
    }
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Json,
    Text,
}

/// The listener addresses of the "listening" line, in either log format.
fn listening(line: &str) -> Option<(Option<SocketAddr>, Option<SocketAddr>)> {
    if let Ok(entry) = serde_json::from_str::<Value>(line) {
        if entry["fields"]["message"] != "listening" {
            return None;
        }
        let addr = |k: &str| entry["fields"][k].as_str().and_then(|a| a.parse::<SocketAddr>().ok());
        return Some((addr("http"), addr("admin")));
    }
    if !line.contains(" listening ") {
        return None;
    }
    let addr = |k: &str| {
        let prefix = format!("{k}=");
        line.split_whitespace().find_map(|word| word.strip_prefix(prefix.as_str())?.parse::<SocketAddr>().ok())
    };
    Some((addr("http"), addr("admin")))
}

impl Drop for Wsgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One GET on a new connection; status and body.
async fn http_get(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let request = hyper::Request::get(path)
        .header("host", host)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let response = support::http_to(addr, request).await;
    let status = response.status().as_u16();
    (status, support::body_text(response).await)
}

/// Reads one HTTP answer with a Content-Length body from `stream`, leaving the connection usable.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    within("answer", async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = support::header_of(&text, "content-length").and_then(|v| v.parse::<usize>().ok());
                if body.len() >= length.unwrap_or(0) {
                    return format!("{head}\r\n\r\n{body}");
                }
            }
        }
    })
    .await
}

async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    let reply = within("echo", ws.next()).await.expect("open").expect("message");
    assert_eq!(reply.into_text().expect("text").as_str(), text);
}

fn backend_of(echo: &EchoServer) -> (String, String) {
    ("default/echo:ws".to_string(), echo.addr.to_string())
}

#[tokio::test]
async fn each_request_and_session_gets_one_line_saying_where_it_went_and_why() {
    let backend = echo_server("one").await;
    let folder = manifests("on", backend.addr);
    let wsgate = Wsgate::start(&folder, &["--access-log", "on"]);
    wsgate.ready().await;
    let (backend_name, endpoint) = backend_of(&backend);

    // A WebSocket (first request of its connection: the fast path) that the client drops.
    let mut session = wsgate.ws("chat.example.com", "/chat/room?token=s3cret").await;
    echo(&mut session, "hello").await;
    drop(session);
    let line = wsgate.access_line("/chat/room", None).await;
    assert_eq!(line["kind"], "websocket", "{line}");
    assert_eq!(line["listener"], "http");
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["host"], "chat.example.com");
    assert_eq!(line["status"], 101);
    assert_eq!(line["route"], "websocketroute/default/chat");
    assert_eq!(line["backend"], backend_name.as_str());
    assert_eq!(line["endpoint"], endpoint.as_str());
    assert_eq!(line["pick"], "least_connections");
    assert_eq!((&line["candidates"], &line["ejected"], &line["attempt"]), (&1.into(), &0.into(), &1.into()));
    assert_eq!(line["end"], "client_closed");
    // One masked 5-byte text frame up (2 + 4 + 5), its echo down (2 + 5).
    assert_eq!((line["bytes_up"].as_u64(), line["bytes_down"].as_u64()), (Some(11), Some(7)), "{line}");
    assert!(line["upstream_ms"].is_u64() && line["duration_ms"].is_u64(), "{line}");

    // A route with a 300 ms idle timeout: the session ends by itself.
    let mut quiet = wsgate.ws("chat.example.com", "/quiet").await;
    let line = wsgate.access_line("/quiet", None).await;
    assert_eq!(
        (&line["route"], &line["end"]),
        (&Value::from("websocketroute/default/quiet"), &Value::from("idle_timeout"))
    );
    assert!(line["duration_ms"].as_u64().is_some_and(|ms| ms >= 300), "{line}");
    assert!(matches!(within("closed", quiet.next()).await, None | Some(Ok(Message::Close(_))) | Some(Err(_))));

    // Plain requests: one answered by the backend, one without a route.
    let (status, _) = wsgate.get("chat.example.com", "/chat/info?key=s3cret").await;
    assert_eq!(status, 200);
    let line = wsgate.access_line("/chat/info", None).await;
    assert_eq!(
        (&line["kind"], &line["status"], &line["route"]),
        (&"http".into(), &200.into(), &"websocketroute/default/chat".into())
    );
    assert_eq!(line["endpoint"], endpoint.as_str());
    assert!(line["end"].is_null() && line["bytes_down"].as_u64().is_some_and(|n| n > 0), "{line}");
    let (status, _) = wsgate.get("nowhere.test", "/missing").await;
    assert_eq!(status, 404);
    let line = wsgate.access_line("/missing", None).await;
    assert_eq!((&line["status"], &line["route"], &line["host"]), (&404.into(), &"".into(), &"nowhere.test".into()));
    assert!(line["endpoint"].is_null() && line["backend"].is_null(), "no endpoint was picked: {line}");

    // A handshake the backend refuses (403): one line, with the backend's status.
    let mut request = format!("ws://{}/reject", wsgate.http).into_client_request().expect("request");
    request.headers_mut().insert("host", "a.example.com".parse().expect("host"));
    let refused = within("refused handshake", tokio_tungstenite::connect_async(request)).await;
    assert!(refused.is_err());
    let line = wsgate.access_line("/reject", None).await;
    assert_eq!(
        (&line["kind"], &line["status"], &line["route"]),
        (&"websocket".into(), &403.into(), &"websocketroute/default/wild".into())
    );
    assert!(line["end"].is_null(), "{line}");

    // A WebSocket after a plain request on the same connection (the hyper path); the backend closes it.
    let mut stream = within("connect", TcpStream::connect(wsgate.http)).await.expect("connect");
    stream.write_all(b"GET /first HTTP/1.1\r\nHost: b.example.com\r\n\r\n").await.expect("write");
    let answer = read_answer(&mut stream).await;
    assert_eq!(support::status_of(&answer), 200, "{answer}");
    let mut request = "ws://b.example.com/server-close".into_client_request().expect("request");
    request.headers_mut().insert("host", "b.example.com".parse().expect("host"));
    let (mut second, _) =
        within("second handshake", tokio_tungstenite::client_async(request, stream)).await.expect("101");
    second.send(Message::text("bye?")).await.expect("send");
    // Reading on after the backend's Close frame sends the client's reply; then the backend closes.
    while let Some(Ok(_)) = within("server close", second.next()).await {}
    let line = wsgate.access_line("/server-close", None).await;
    assert_eq!((&line["route"], &line["status"]), (&"websocketroute/default/wild".into(), &101.into()));
    assert_eq!(line["end"], "backend_closed", "{line}");

    // One line per exchange, never a query string or a header.
    let access = wsgate.access();
    for path in ["/chat/room", "/quiet", "/chat/info", "/missing", "/reject", "/first", "/server-close"] {
        assert_eq!(access.iter().filter(|l| l["path"] == path).count(), 1, "{path}: {access:?}");
    }
    let text = wsgate.lines().join("\n");
    assert!(!text.contains("s3cret"), "a query string leaked: {text}");
    assert!(!text.to_ascii_lowercase().contains("sec-websocket-key"), "a header leaked: {text}");
}

#[tokio::test]
async fn nothing_is_logged_with_the_access_log_off() {
    let backend = echo_server("one").await;
    let folder = manifests("off", backend.addr);
    let wsgate = Wsgate::start(&folder, &[]);
    wsgate.ready().await;
    let mut session = wsgate.ws("chat.example.com", "/chat").await;
    echo(&mut session, "hello").await;
    drop(session);
    assert_eq!(wsgate.get("chat.example.com", "/chat/info").await.0, 200);
    assert_eq!(wsgate.get("nowhere.test", "/missing").await.0, 404);
    // The session's end shows in the metrics: by then its line would have been written.
    within("the session ended", async {
        loop {
            let (_, metrics) = http_get(wsgate.admin, "admin", "/metrics").await;
            let ended =
                support::sample(&metrics, "wsgate_websocket_connections_active{route=\"websocketroute/default/chat\"}");
            if ended == Some(0.0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(wsgate.access().is_empty(), "{:?}", wsgate.access());
    assert!(!wsgate.lines().is_empty(), "the log itself is written");
}

#[tokio::test]
async fn text_lines_follow_the_log_format() {
    let backend = echo_server("one").await;
    let folder = manifests("text", backend.addr);
    let wsgate = Wsgate::launch(&folder, Format::Text, &[("WSGATE_ACCESS_LOG", "on")]);
    wsgate.ready().await;
    let mut session = wsgate.ws("chat.example.com", "/chat").await;
    echo(&mut session, "hello").await;
    drop(session);
    let line = within("a text access line", async {
        loop {
            if let Some(line) = wsgate.lines().into_iter().find(|l| l.contains("wsgate::access")) {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for field in [
        "kind=\"websocket\"",
        "route=\"websocketroute/default/chat\"",
        "status=101",
        "end=\"client_closed\"",
        "bytes_up=11",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    assert!(serde_json::from_str::<Value>(&line).is_err(), "text, not JSON: {line}");
}

#[tokio::test]
async fn debug_explain_says_which_route_a_request_would_take_and_why() {
    let backend = echo_server("one").await;
    let folder = manifests("explain", backend.addr);
    let wsgate = Wsgate::start(&folder, &[]);
    wsgate.ready().await;
    let explain = |query: &'static str| {
        let admin = wsgate.admin;
        async move {
            let (status, body) = http_get(admin, "admin", &format!("/debug/explain?{query}")).await;
            assert_eq!(status, 200, "{body}");
            serde_json::from_str::<Value>(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
        }
    };

    // Exact host, with a port and capitals as a client may send them; the longer /quiet was tried first.
    let exact = explain("host=Chat.Example.com:8080&path=%2Fchat%2Froom").await;
    assert_eq!((&exact["host"], &exact["path"]), (&"chat.example.com".into(), &"/chat/room".into()), "{exact}");
    assert_eq!((&exact["outcome"], &exact["group"]), (&"routed".into(), &"exact".into()), "{exact}");
    assert_eq!(exact["route"]["id"], "websocketroute/default/chat");
    assert_eq!(exact["skipped"][0]["route"], "websocketroute/default/quiet", "{exact}");
    assert_eq!(exact["skipped"][0]["path"]["value"], "/quiet");
    let backends = &exact["route"]["backends"];
    assert_eq!((&backends[0]["name"], &backends[0]["weight"]), (&"default/echo:ws".into(), &1.into()), "{exact}");
    assert_eq!(backends[0]["endpoints"][0]["addr"], backend.addr.to_string().as_str());
    assert!(exact["generation"].as_u64().is_some_and(|g| g >= 1), "{exact}");

    // A host only the wildcard covers; the exact group's routes for that host are not involved.
    let wildcard = explain("host=a.example.com&path=/chat").await;
    assert_eq!(
        (&wildcard["group"], &wildcard["route"]["id"]),
        (&"wildcard".into(), &"websocketroute/default/wild".into())
    );
    assert_eq!(wildcard["skipped"], serde_json::json!([]));

    // chat.example.com with a path its exact routes do not serve: both skipped, then the wildcard.
    let fallthrough = explain("host=chat.example.com&path=/other").await;
    assert_eq!(fallthrough["group"], "wildcard", "{fallthrough}");
    assert_eq!(fallthrough["skipped"].as_array().map(Vec::len), Some(2), "{fallthrough}");

    let none = explain("host=nowhere.test&path=/x").await;
    assert_eq!((&none["outcome"], &none["route"], &none["group"]), (&"no_route".into(), &Value::Null, &Value::Null));

    let (status, body) = http_get(wsgate.admin, "admin", "/debug/explain?path=/x").await;
    assert_eq!(status, 400, "a host is required: {body}");
}

#[test]
fn check_explain_prints_the_route_a_request_would_take() {
    let run = |host: &str, path: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .args(["check", "examples/quickstart", "--explain", host, path])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run wsgate check");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stdout = run("Echo.Localhost", "/http/x");
    assert!(stdout.contains("explain: host \"echo.localhost\" path \"/http/x\":"), "{stdout}");
    assert!(
        stdout.contains("matched  ingress/default/echo-http (exact host echo.localhost, path Prefix /http)"),
        "{stdout}"
    );
    assert!(stdout.contains("backend  default/echo:80 weight 1: 127.0.0.1:9001, 127.0.0.1:9002"), "{stdout}");
    // Another path on that host: the exact group has nothing for it, the route for any host takes it.
    let stdout = run("echo.localhost", "/chat");
    assert!(
        stdout.contains("skipped  ingress/default/echo-http (exact host echo.localhost, path Prefix /http)"),
        "{stdout}"
    );
    assert!(stdout.contains("matched  websocketroute/default/echo (any host *, path Prefix /)"), "{stdout}");
    assert!(stdout.contains("0 error(s)"), "the usual summary follows: {stdout}");
}

#[tokio::test]
async fn a_session_cut_at_the_drain_deadline_ends_with_drain() {
    let backend = echo_server("one").await;
    let folder = manifests("drain", backend.addr);
    let mut wsgate = Wsgate::start(&folder, &["--access-log", "on", "--drain-timeout", "1", "--shutdown-delay", "0"]);
    wsgate.ready().await;
    let mut session = wsgate.ws("chat.example.com", "/chat").await;
    echo(&mut session, "hello").await;
    let pid = libc::pid_t::try_from(wsgate.child.id()).expect("pid");
    // SAFETY: kill(2) with a valid signal on our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
    let status = within("wsgate exits after the drain", async {
        loop {
            if let Some(status) = wsgate.child.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(status.success(), "{status:?}");
    let line = wsgate.access_line("/chat", None).await;
    assert_eq!((&line["status"], &line["end"]), (&101.into(), &"drain".into()), "{line}");
    assert!(line["duration_ms"].as_u64().is_some_and(|ms| ms >= 1000), "open for the whole drain: {line}");
    drop(session);
}

/// `manifests` plus `guarded` (guarded.example.com): an Origin allow-list, header hashing and a
/// per-client cap of 1, from a WebSocketRoute as a user writes it.
fn guarded_manifests(test: &str, backend: SocketAddr) -> Folder {
    let folder = manifests(test, backend);
    let yaml = "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {name: guarded}\nspec:\n  \
                hostnames: [guarded.example.com]\n  backends: [{service: {name: echo, port: ws}}]\n  \
                allowedOrigins: [\"https://app.example.com\", \"https://*.example.org\"]\n  \
                loadBalancing: {policy: ConsistentHash, hashOn: {type: Header, name: X-User}}\n  \
                limits: {maxConnectionsPerClient: 1}\n";
    std::fs::write(folder.0.join("guarded.yaml"), yaml).expect("write manifests");
    folder
}

#[tokio::test]
async fn policy_decisions_are_in_the_access_log_and_in_debug_explain() {
    let backend = echo_server("one").await;
    let folder = guarded_manifests("decisions", backend.addr);
    let wsgate = Wsgate::start(&folder, &["--access-log", "on"]);
    wsgate.ready().await;
    let handshake = |path: &'static str, origin: &'static str| {
        let mut request = format!("ws://{}{path}", wsgate.http).into_client_request().expect("request");
        let headers = request.headers_mut();
        headers.insert("host", "guarded.example.com".parse().expect("host"));
        headers.insert("origin", origin.parse().expect("origin"));
        headers.insert("x-user", "ann".parse().expect("user"));
        within("handshake", tokio_tungstenite::connect_async(request))
    };

    // Admitted by the wildcard rule, hashed by the header.
    let (mut open, _) = handshake("/admitted", "https://chat.example.org").await.expect("101");

    // The same client again, while its first WebSocket is open: the per-client cap refuses it.
    assert!(handshake("/second", "https://app.example.com").await.is_err());
    let line = wsgate.access_line("/second", None).await;
    assert_eq!((&line["status"], &line["refused"]), (&429.into(), &"client_max_connections".into()), "{line}");

    // A session's line is written when it ends: it says which rule admitted it and which key it had.
    open.close(None).await.expect("close");
    while let Some(Ok(_)) = within("close", open.next()).await {}
    let line = wsgate.access_line("/admitted", None).await;
    assert_eq!((&line["status"], &line["origin"]), (&101.into(), &"https://*.example.org".into()), "{line}");
    let key = format!("{:016x}", wsgate::routes::ring::hash64(b"ann"));
    assert_eq!((&line["affinity"], &line["hash_key"]), (&"header".into(), &key.as_str().into()), "{line}");

    // A foreign Origin: 403, and the line says the Origin policy refused it.
    assert!(handshake("/foreign", "https://evil.example.net").await.is_err());
    let line = wsgate.access_line("/foreign", None).await;
    assert_eq!(
        (&line["status"], &line["origin"], &line["refused"]),
        (&403.into(), &"refused".into(), &"origin".into())
    );

    // /debug/explain tells the same story before any handshake is made.
    let query = "host=guarded.example.com&path=/x&header=Origin:%20https://evil.example.net&header=X-User:%20ann";
    let (status, body) = http_get(wsgate.admin, "admin", &format!("/debug/explain?{query}")).await;
    assert_eq!(status, 200, "{body}");
    let explained: Value = serde_json::from_str(&body).expect("JSON");
    let decision = &explained["decision"];
    assert_eq!((&decision["answer"], &decision["origin"]["rule"]), (&"403 (origin)".into(), &"refused".into()));
    assert_eq!(decision["hash"]["key"], key.as_str(), "{decision}");
    assert_eq!(decision["hash"]["owner"], backend.addr.to_string().as_str(), "{decision}");
    assert_eq!(decision["limits"]["max_connections_per_client"], 1, "{decision}");
}

#[test]
fn check_explain_with_headers_names_the_rule_and_the_policy_decision() {
    let folder = Folder::new("check-explain-headers");
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: chat}\nspec:\n  ports: [{name: ws, port: 80}]\n---\n\
                apiVersion: v1\nkind: Service\nmetadata: {name: canary}\nspec:\n  ports: [{name: ws, port: 80}]\n---\n\
                apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {name: chat}\nspec:\n  \
                hostnames: [chat.example.com]\n  allowedOrigins: [\"https://app.example.com\"]\n  rules:\n  \
                - matches: [{path: {value: /ws}, headers: [{name: X-Canary, value: \"yes\"}]}]\n    \
                backends: [{service: {name: canary, port: ws}}]\n  \
                - backends: [{service: {name: chat, port: ws}}]\n";
    std::fs::write(folder.0.join("chat.yaml"), yaml).expect("write");
    let run = |headers: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsgate"));
        command.arg("check").arg(&folder.0).args(["--explain", "chat.example.com", "/ws/room"]);
        for header in headers {
            command.args(["--header", header]);
        }
        let out = command.output().expect("run wsgate check");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let canary = run(&["X-Canary: yes", "Origin: https://app.example.com"]);
    assert!(canary.contains("path Prefix /ws, header x-canary = \"yes\")"), "{canary}");
    assert!(canary.contains("backend  default/canary:ws"), "{canary}");
    assert!(canary.contains("origin   https://app.example.com: allowed by https://app.example.com"), "{canary}");
    assert!(canary.contains("answer   proxied"), "{canary}");
    let stable = run(&["Origin: https://evil.example"]);
    assert!(stable.contains("header x-canary = \"yes\"): a header or query match fails"), "{stable}");
    assert!(stable.contains("backend  default/chat:ws"), "{stable}");
    assert!(stable.contains("answer   403 (origin)"), "{stable}");
}

#[tokio::test]
async fn sigterm_fails_readyz_keeps_accepting_for_the_delay_then_closes_every_websocket_with_1001() {
    let backend = echo_server("one").await;
    let folder = manifests("sigterm", backend.addr);
    let args = ["--access-log", "on", "--shutdown-delay", "1", "--drain-timeout", "5"];
    let mut wsgate = Wsgate::start(&folder, &args);
    wsgate.ready().await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let mut ws = wsgate.ws("framed.example.com", "/").await;
        echo(&mut ws, "hello").await;
        sessions.push(ws);
    }
    let pid = libc::pid_t::try_from(wsgate.child.id()).expect("pid");
    let signalled = std::time::Instant::now();
    // SAFETY: kill(2) with a valid signal on our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
    within("/readyz fails", async {
        while http_get(wsgate.admin, "admin", "/readyz").await.0 != 503 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(signalled.elapsed() < Duration::from_secs(1), "at once: {:?}", signalled.elapsed());
    // Still accepting during the delay: a late client is served, and drained like the others.
    let mut late = wsgate.ws("framed.example.com", "/").await;
    echo(&mut late, "just in time").await;
    sessions.push(late);
    for ws in &mut sessions {
        let close = within("Close 1001", async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(frame))) => return frame,
                    Some(Ok(_)) => {}
                    other => panic!("no Close: {other:?}"),
                }
            }
        })
        .await;
        let frame = close.expect("a code");
        assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
        assert!(signalled.elapsed() >= Duration::from_secs(1), "after the delay: {:?}", signalled.elapsed());
    }
    // The clients answer the Close (tungstenite writes its reply when polled again), as browsers do.
    for ws in &mut sessions {
        within("the client's side of the closing handshake", async { while ws.next().await.is_some() {} }).await;
    }
    let status = within("wsgate exits", async {
        loop {
            if let Some(status) = wsgate.child.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(status.success(), "exit 0: {status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "the closing handshakes end the drain: {:?}",
        signalled.elapsed()
    );
    let line = wsgate.access_line("/", Some("shutdown")).await;
    assert_eq!(line["status"], 101, "{line}");
}
