//! Server lifecycle: stop/start on the same port with the store kept, namespace termination, and
//! the standalone binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use hyper::{Method, StatusCode};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;
use wsgate_test_apiserver::Config;

use crate::harness::{Cluster, within};

#[tokio::test]
async fn restart_keeps_objects_address_and_versions() {
    let mut c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "kept"}})).expect("cm");
    let created = api.create(&PostParams::default(), &cm).await.expect("create");
    let addr = c.server.addr();
    let rv_before = c.server.resource_version();

    c.server.stop().await;
    assert!(!c.server.is_running());
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "nothing listens while stopped");

    c.server.start().await.expect("start again");
    assert_eq!(c.server.addr(), addr, "same address after restart");
    let got = within(10, "get after restart", api.get("kept")).await.expect("object kept");
    assert_eq!(got.metadata.uid, created.metadata.uid);
    let second: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "after"}})).expect("cm");
    let after = api.create(&PostParams::default(), &second).await.expect("create after restart");
    let rv_after: u64 = after.metadata.resource_version.expect("rv").parse().expect("numeric");
    assert!(rv_after > rv_before, "resourceVersions continue: {rv_before} -> {rv_after}");
}

#[tokio::test]
async fn deleted_namespaces_terminate_then_vanish_with_their_contents() {
    // Long enough for the 403 check below to run while the namespace is still terminating.
    let config = Config { namespace_cleanup_delay: Duration::from_secs(3), ..Config::default() };
    let c = Cluster::with_config(config).await;
    c.namespace("doomed").await;
    let cm = json!({"metadata": {"name": "inside"}});
    let (s, _) = c.raw(Method::POST, "/api/v1/namespaces/doomed/configmaps", Some(&cm)).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, ns) = c.raw(Method::DELETE, "/api/v1/namespaces/doomed", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ns["status"]["phase"], "Terminating");
    let (s, body) =
        c.raw(Method::POST, "/api/v1/namespaces/doomed/configmaps", Some(&json!({"metadata": {"name": "late"}}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["details"]["causes"][0]["reason"], "NamespaceTerminating");
    within(10, "namespace removal", async {
        loop {
            let (s, _) = c.raw(Method::GET, "/api/v1/namespaces/doomed", None).await;
            if s == StatusCode::NOT_FOUND {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (s, _) = c.raw(Method::GET, "/api/v1/namespaces/doomed/configmaps/inside", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// Kills the child on drop, by its own pid.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_writes_a_kubeconfig_and_prints_its_address() {
    let dir = crate::harness::TempDir::new();
    let kubeconfig = dir.path().join("kc");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_wsgate-test-apiserver"))
            .args(["--addr", "127.0.0.1:0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = within(20, "address line", line).await.expect("join").expect("read");
    let addr: std::net::SocketAddr = line.trim().parse().expect("an address");
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig written");
    assert!(text.contains(&format!("server: https://{addr}")), "{text}");
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let version = within(10, "version", client.apiserver_version()).await.expect("version");
    assert_eq!(version.git_version, "v1.32.0");
}
