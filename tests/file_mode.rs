//! File mode end to end: a folder of manifests served by `server::run`, edited while a WebSocket stays
//! open, plus `wsgate check` and the admin listener, as a user would drive them.

mod support;

use std::path::Path;
use std::process::Command;

use wsgate::controller::compile::CompileOptions;
use wsgate::server;

use support::{Folder, Ws, echo, echo_server, eventually, sample, within};

fn backends_yaml(ports: &[u16]) -> String {
    let mut out = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: chat, namespace: default}\nspec:\n  ports: [{name: ws, port: 80}]\n",
    );
    for port in ports {
        out.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: chat-{port}\n  \
             labels: {{kubernetes.io/service-name: chat}}\naddressType: IPv4\nports: [{{name: ws, port: {port}}}]\n\
             endpoints: [{{addresses: [127.0.0.1]}}]\n"
        ));
    }
    out
}

fn route_yaml(path: &str) -> String {
    format!(
        "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {{name: chat}}\nspec:\n  \
         path: {{type: Prefix, value: {path}}}\n  backends: [{{service: {{name: chat, port: ws}}}}]\n"
    )
}

struct Running {
    http: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), server::ServerError>>,
}

async fn start(dir: &Path) -> Running {
    let config = support::file_mode_config(dir, CompileOptions::default());
    let bound = config.bind().await.expect("bind");
    let http = bound.http.local_addr().expect("http address");
    let admin = bound.admin.local_addr().expect("admin address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::run(config, bound, async {
        let _ = stopped.await;
    }));
    Running { http, admin, stop: Some(stop), task }
}

async fn admin_get(admin: std::net::SocketAddr, path: &str) -> (u16, String) {
    let request = hyper::Request::get(path)
        .header("host", "admin")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let response = support::http_to(admin, request).await;
    let status = response.status().as_u16();
    (status, support::body_text(response).await)
}

async fn ws(http: std::net::SocketAddr, path: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    within("handshake", tokio_tungstenite::connect_async(format!("ws://{http}{path}"))).await.map(|(ws, _)| ws)
}

#[tokio::test]
async fn edits_are_served_live_and_a_broken_manifest_keeps_the_last_good_table() {
    let one = echo_server("one").await;
    let two = echo_server("two").await;
    let folder = Folder::new("edits");
    folder.write("backends.yaml", &backends_yaml(&[one.addr.port(), two.addr.port()]));
    folder.write("route.yaml", &route_yaml("/chat"));
    let running = start(&folder.0).await;

    eventually("ready", || async { admin_get(running.admin, "/readyz").await.0 == 200 }).await;
    let mut session = ws(running.http, "/chat/room").await.expect("first session");
    echo(&mut session, "before").await;

    // A broken document: reported, counted, and the table stays as it was.
    folder.write("zz-broken.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: [oops\n");
    eventually("the broken manifest is counted", || async {
        let (_, metrics) = admin_get(running.admin, "/metrics").await;
        sample(&metrics, "wsgate_config_reloads_total{outcome=\"failed\"}").unwrap_or(0.0) >= 1.0
    })
    .await;
    let (_, metrics) = admin_get(running.admin, "/metrics").await;
    assert_eq!(sample(&metrics, "wsgate_route_table_generation"), Some(1.0), "{metrics}");
    assert!(sample(&metrics, "wsgate_config_errors_total").unwrap_or(0.0) >= 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "wsgate_config_errors"), Some(1.0), "one broken document: {metrics}");
    echo(&mut session, "during").await;
    let mut second = ws(running.http, "/chat").await.expect("new sessions still use the last good table");
    echo(&mut second, "second").await;

    // Fixed, and the route moved: the new path answers, the old one is gone, the open session lives on.
    folder.remove("zz-broken.yaml");
    folder.write("route.yaml", &route_yaml("/rooms"));
    eventually("the moved route is live", || async { ws(running.http, "/rooms/1").await.is_ok() }).await;
    match ws(running.http, "/chat").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("the old path must answer 404 now, got {:?}", other.map(|_| "a WebSocket")),
    }
    echo(&mut session, "after").await;
    echo(&mut second, "after").await;

    let (status, routes) = admin_get(running.admin, "/debug/routes").await;
    assert_eq!(status, 200);
    let routes: serde_json::Value = serde_json::from_str(&routes).expect("JSON");
    assert_eq!(routes["generation"], 2);
    assert_eq!(routes["routes"][0]["path"]["value"], "/rooms");
    assert_eq!(routes["routes"][0]["id"], "websocketroute/default/chat");
    let endpoints = &routes["routes"][0]["backends"][0]["endpoints"];
    assert_eq!(endpoints.as_array().map(Vec::len), Some(2), "{routes}");

    let (_, metrics) = admin_get(running.admin, "/metrics").await;
    assert_eq!(
        sample(&metrics, "wsgate_websocket_connections_active{route=\"websocketroute/default/chat\"}"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "wsgate_config_errors"), Some(0.0), "fixed: {metrics}");
    drop((session, second));

    let mut running = running;
    running.stop.take().map(|s| s.send(()));
    within("server stops", running.task).await.expect("no panic").expect("clean stop");
}

#[tokio::test]
async fn readyz_waits_for_a_first_good_table() {
    let folder = Folder::new("ready");
    folder.write("broken.yaml", "kind: [\n");
    let running = start(&folder.0).await;
    eventually("admin answers", || async { admin_get(running.admin, "/healthz").await.0 == 200 }).await;
    let (status, body) = admin_get(running.admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    folder.write("broken.yaml", &route_yaml("/"));
    eventually("ready after a good table", || async { admin_get(running.admin, "/readyz").await.0 == 200 }).await;
    // The route's Service does not exist: served, but with no endpoint, so 503 names the route.
    let request = hyper::Request::get("/")
        .header("host", "x")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    assert_eq!(support::http_to(running.http, request).await.status(), 503);
}

fn wsgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run wsgate")
}

#[test]
fn check_names_each_mistake_of_the_seed_config() {
    let out = wsgate(&["check", "examples/broken"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Service default/backend has no port 300"), "{stdout}");
    assert!(stdout.contains("Service default/upstream not found"), "{stdout}");

    let out = wsgate(&["check", "examples/quickstart"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("0 error(s)"), "{stdout}");
}

#[test]
fn check_reports_a_dangling_service_reference_and_a_broken_document() {
    let folder = Folder::new("check");
    folder.write("route.yaml", &route_yaml("/"));
    folder.write("bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: 7}\n");
    let out = wsgate(&["check", folder.0.to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Service default/chat not found"), "{stdout}");
    assert!(stdout.contains("bad.yaml: document 1"), "{stdout}");
}

#[test]
fn run_refuses_a_missing_manifest_folder_with_a_clear_message() {
    let out = wsgate(&[
        "run",
        "--manifests",
        "/nonexistent/wsgate",
        "--http-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/wsgate is not a readable directory"), "{stderr}");
}
