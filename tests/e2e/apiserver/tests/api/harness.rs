//! Test harness: a running server, kube clients built from the kubeconfigs it writes (the admin's,
//! or a ServiceAccount's), a raw HTTP client for exact bodies and watch streams (as the admin unless
//! told otherwise), and time limits for everything.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use wsgate_test_apiserver::authn::ADMIN_TOKEN;
use wsgate_test_apiserver::{Config, TestApiServer};

/// Fails the test if `fut` takes longer than `secs`.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wsgate-test-apiserver-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn client_from(kubeconfig: &Path) -> kube::Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kube config");
    kube::Client::try_from(config).expect("kube client")
}

/// What a test needs to act as a ServiceAccount.
pub struct ServiceAccountAccess {
    pub token: String,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
}

/// A running server plus ways to talk to it.
pub struct Cluster {
    pub server: TestApiServer,
    pub dir: TempDir,
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

impl Cluster {
    pub async fn start() -> Self {
        Self::with_config(Config::default()).await
    }

    pub async fn with_config(config: Config) -> Self {
        let mut server = TestApiServer::new(config);
        server.start().await.expect("server starts");
        let dir = TempDir::new();
        server.write_kubeconfig(&dir.path().join("kubeconfig")).expect("kubeconfig written");
        let http = HttpClient::builder(TokioExecutor::new()).build_http();
        Cluster { server, dir, http }
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A kube client configured from the kubeconfig file the server wrote (the admin).
    pub async fn client(&self) -> kube::Client {
        client_from(&self.kubeconfig_path()).await
    }

    /// A token for the ServiceAccount `namespace/name` (created first, by the admin, if missing), a
    /// kubeconfig file using it, and a kube client made from that file.
    pub async fn service_account(&self, namespace: &str, name: &str) -> ServiceAccountAccess {
        let path = format!("/api/v1/namespaces/{namespace}/serviceaccounts");
        let (s, body) = self.raw(Method::POST, &path, Some(&serde_json::json!({"metadata": {"name": name}}))).await;
        assert!(s == StatusCode::CREATED || s == StatusCode::CONFLICT, "create ServiceAccount: {body}");
        let token = self.server.service_account_token(namespace, name).expect("the ServiceAccount exists");
        let kubeconfig = self.dir.path().join(format!("kubeconfig-{namespace}-{name}"));
        self.server.write_kubeconfig_for_token(&kubeconfig, &token).expect("kubeconfig written");
        let client = client_from(&kubeconfig).await;
        ServiceAccountAccess { token, kubeconfig, client }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Request<Full<Bytes>> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.server.url()))
            .header("content-type", content_type)
            .header("accept", "application/json");
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        req.body(Full::new(bytes)).expect("request builds")
    }

    /// One JSON request with `token` (`None`: no credentials); returns the status and the decoded body.
    pub async fn raw_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let req = self.request(method, path, "application/json", token, body);
        let resp = within(10, path, self.http.request(req)).await.expect("response");
        let status = resp.status();
        let bytes = within(10, path, resp.into_body().collect()).await.expect("body").to_bytes();
        let value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    /// One request with a raw body; returns the status and the body as text.
    pub async fn raw_text(&self, method: Method, path: &str, content_type: &str, body: &str) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.server.url()))
            .header("content-type", content_type)
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request builds");
        let resp = within(10, path, self.http.request(req)).await.expect("response");
        let status = resp.status();
        let bytes = within(10, path, resp.into_body().collect()).await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// One JSON request; returns the status and the decoded body.
    pub async fn raw(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        self.raw_typed(method, path, "application/json", body).await
    }

    /// One request with an explicit content type.
    pub async fn raw_typed(&self, method: Method, path: &str, ct: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let req = self.request(method, path, ct, Some(ADMIN_TOKEN), body);
        let resp = within(10, path, self.http.request(req)).await.expect("response");
        let status = resp.status();
        let bytes = within(10, path, resp.into_body().collect()).await.expect("body").to_bytes();
        let value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    /// Opens a watch (GET `path`) and returns its event lines until `done` says stop, the stream
    /// ends, or `secs` pass.
    pub async fn watch_lines(&self, path: &str, secs: u64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let req = self.request(Method::GET, path, "application/json", Some(ADMIN_TOKEN), None);
        let resp = within(10, path, self.http.request(req)).await.expect("watch response");
        assert_eq!(resp.status(), StatusCode::OK, "watch {path}");
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !done(&events) {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) | Ok(None) => break,
                Ok(Some(f)) => f.expect("frame"),
            };
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    events.push(serde_json::from_slice(&line).expect("event line is JSON"));
                }
            }
        }
        events
    }

    /// Creates a namespace through the API.
    pub async fn namespace(&self, name: &str) {
        let (s, body) =
            self.raw(Method::POST, "/api/v1/namespaces", Some(&serde_json::json!({"metadata": {"name": name}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
}
