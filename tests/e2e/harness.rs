//! The e2e harness: an API server (the in-repo one, or a real cluster when `KUBECONFIG` is set), a
//! private network namespace holding the echo backends, and the real `wsgate` binary.
//!
//! ```text
//!   test ──kube client──► API server ◄──watch/patch── wsgate (real binary, --namespace <fresh ns>)
//!     │                                                  │ dials EndpointSlice addresses
//!     └──ws://127.0.0.1:<port>──► wsgate ──veth──► netns wsgate-e2e-N: echo on 198.18.N.2–9
//! ```
//!
//! A real kube-apiserver refuses loopback EndpointSlice addresses, so the backends live on addresses
//! that exist only inside a network namespace this test creates (root, iproute2) and removes on drop.
//! Traffic goes only to loopback and to that namespace. Services are headless, so nothing can send
//! traffic to a ClusterIP that exists nowhere on this machine.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsgate_test_apiserver::TestApiServer;

#[path = "../support/echo.rs"]
pub mod echo;

/// Upper bound for any single wait.
pub const WAIT: Duration = Duration::from_secs(20);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Awaits `future`, failing the test after [`WAIT`].
pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// Polls `probe` every 10 ms until it is true; returns how long that took. Fails after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if probe().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Parses a Kubernetes object from JSON.
pub fn object<K: DeserializeOwned>(value: serde_json::Value) -> K {
    serde_json::from_value(value).expect("test object matches its type")
}

/// The API server the suite talks to.
pub struct Cluster {
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    /// The in-repo server, when no `KUBECONFIG` was given.
    pub local: Option<TestApiServer>,
    _dir: TempDir,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let cluster = Cluster::start_without_crd().await;
        cluster.install_crd().await;
        cluster
    }

    /// A cluster as found, without installing the WebSocketRoute CRD.
    pub async fn start_without_crd() -> Cluster {
        let dir = TempDir::new("cluster");
        let (kubeconfig, local) = match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            Some(path) => (PathBuf::from(path), None),
            None => {
                let server = TestApiServer::launch().await.expect("start the in-repo API server");
                let path = dir.0.join("kubeconfig");
                server.write_kubeconfig(&path).expect("write kubeconfig");
                (path, Some(server))
            }
        };
        let client = client_for(&kubeconfig).await;
        Cluster { client, kubeconfig, local, _dir: dir }
    }

    /// Installs `crds/` (create, or replace what is there) and waits until it is served.
    pub async fn install_crd(&self) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/websocketroutes.wsgate.dev.yaml");
        let text = std::fs::read_to_string(&path).expect("read crds/");
        let mut crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("CRD parses");
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let name = crd.metadata.name.clone().expect("CRD name");
        match api.get_opt(&name).await.expect("get CRD") {
            None => {
                if let Err(error) = api.create(&PostParams::default(), &crd).await {
                    // Another test process may have created it first.
                    assert!(matches!(&error, kube::Error::Api(s) if s.code == 409), "create CRD: {error}");
                }
            }
            Some(existing) if existing.spec != crd.spec => {
                crd.metadata.resource_version = existing.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &crd).await.expect("update CRD");
            }
            Some(_) => {}
        }
        eventually("the CRD is established", WAIT, || async {
            api.get(&name)
                .await
                .ok()
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
        })
        .await;
    }

    /// Creates a fresh namespace (a deleted one refuses new objects while it terminates).
    pub async fn namespace(&self, test: &str) -> TestNamespace {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("e2e-{test}-{}-{nanos:x}", std::process::id());
        let api: Api<Namespace> = Api::all(self.client.clone());
        api.create(&PostParams::default(), &object(serde_json::json!({"metadata": {"name": name}})))
            .await
            .expect("create namespace");
        TestNamespace { name, api }
    }
}

async fn client_for(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    kube::Client::try_from(config).expect("kube client")
}

/// A namespace deleted (with everything in it) when the test ends.
pub struct TestNamespace {
    pub name: String,
    api: Api<Namespace>,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let api = self.api.clone();
        let name = self.name.clone();
        // Best effort, bounded: the runtime may already be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), api.delete(&name, &DeleteParams::default())).await;
                });
            }
        })
        .join();
    }
}

/// A folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("wsgate-e2e-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A network namespace with a veth pair: the host side is 198.18.N.1, the namespace holds
/// 198.18.N.2 to 198.18.N.9 (RFC 2544's benchmarking range, on no network of this machine).
pub struct TestNet {
    name: String,
    host_if: String,
    subnet: u8,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl TestNet {
    /// Endpoint addresses available inside the namespace.
    pub const HOSTS: u8 = 8;

    pub fn create() -> TestNet {
        // `ip netns add` fails for a name in use, which makes it the allocator between test processes.
        let subnet = (1..=250u8)
            .find(|n| ip(&["netns", "add", &format!("wsgate-e2e-{n}")]).is_ok())
            .expect("a free network namespace name (are we root with iproute2?)");
        let net = TestNet { name: format!("wsgate-e2e-{subnet}"), host_if: format!("wsge{subnet}h"), subnet };
        let ns_if = format!("wsge{subnet}n");
        let _ = ip(&["link", "del", &net.host_if]); // left over by a killed run
        let host_cidr = format!("198.18.{subnet}.1/24");
        let steps: Vec<Vec<String>> = vec![
            vec![
                "link".into(),
                "add".into(),
                net.host_if.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                ns_if.clone(),
            ],
            vec!["link".into(), "set".into(), ns_if.clone(), "netns".into(), net.name.clone()],
            vec!["addr".into(), "add".into(), host_cidr, "dev".into(), net.host_if.clone()],
            vec!["link".into(), "set".into(), net.host_if.clone(), "up".into()],
            vec!["-n".into(), net.name.clone(), "link".into(), "set".into(), "lo".into(), "up".into()],
            vec!["-n".into(), net.name.clone(), "link".into(), "set".into(), ns_if.clone(), "up".into()],
        ];
        for step in steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            ip(&args).expect("set up the test network");
        }
        for k in 0..Self::HOSTS {
            let cidr = format!("{}/24", net.host(k));
            ip(&["-n", &net.name, "addr", "add", &cidr, "dev", &ns_if]).expect("add a test address");
        }
        net
    }

    /// The k-th endpoint address inside the namespace.
    pub fn host(&self, k: u8) -> Ipv4Addr {
        assert!(k < Self::HOSTS, "only {} test hosts", Self::HOSTS);
        Ipv4Addr::new(198, 18, self.subnet, 2 + k)
    }

    /// Binds a listener inside the namespace (a socket keeps the namespace it was created in).
    pub fn bind(&self, addr: SocketAddr) -> tokio::net::TcpListener {
        let path = format!("/var/run/netns/{}", self.name);
        let listener = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open the network namespace");
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd affects only this short-lived thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let listener = std::net::TcpListener::bind(addr).expect("bind inside the test namespace");
            listener.set_nonblocking(true).expect("non-blocking");
            listener
        })
        .join()
        .expect("bind thread");
        tokio::net::TcpListener::from_std(listener).expect("tokio listener")
    }

    /// Starts an echo backend named `name` on host `k`, port `port`, inside the namespace.
    pub fn echo(&self, k: u8, port: u16, name: &str) -> Backend {
        let addr = SocketAddr::from((self.host(k), port));
        let listener = self.bind(addr);
        let stats = Arc::new(echo::Stats::default());
        let task = tokio::spawn(echo::serve_with_stats(listener, name.to_string(), stats.clone()));
        Backend { addr, stats, task }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// An echo backend inside the test namespace; stops on drop.
pub struct Backend {
    pub addr: SocketAddr,
    pub stats: Arc<echo::Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The real `wsgate` binary in Kubernetes mode, killed on drop.
pub struct Wsgate {
    child: Child,
    pub http: SocketAddr,
    /// The HTTPS listener, when started with `--https-addr`.
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Wsgate {
    /// Starts `wsgate run` against `cluster` as its admin, watching `namespace`, with `extra` flags.
    pub fn start(cluster: &Cluster, namespace: &str, extra: &[&str]) -> Wsgate {
        let mut args: Vec<String> =
            ["run", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log-format", "json"]
                .into_iter()
                .map(String::from)
                .collect();
        args.extend(["--namespace", namespace, "--lease-namespace", namespace].map(String::from));
        args.extend(extra.iter().map(|a| a.to_string()));
        Wsgate::launch(&cluster.kubeconfig, &args, &[])
    }

    /// Starts the wsgate binary with exactly `args` (which must make it log JSON and listen on
    /// 127.0.0.1:0), `KUBECONFIG=kubeconfig` (any user: the admin's, or a ServiceAccount's) and `env`.
    pub fn launch(kubeconfig: &Path, args: &[String], env: &[(&str, &str)]) -> Wsgate {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "wsgate=debug,info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsgate");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line)
                    && entry["fields"]["message"] == "listening"
                    && let Some(tx) = tx.take()
                {
                    let addr = |k: &str| entry["fields"][k].as_str().and_then(|a| a.parse::<SocketAddr>().ok());
                    // Logged as `Some(ADDR)` or `None`.
                    let https = entry["fields"]["https"]
                        .as_str()
                        .and_then(|a| a.strip_prefix("Some(")?.strip_suffix(')')?.parse::<SocketAddr>().ok());
                    let _ = tx.send((addr("http"), https, addr("admin")));
                }
                lines.lock().expect("log lock").push(line);
            }
        });
        let (http, https, admin) = match rx.recv_timeout(WAIT) {
            Ok((Some(http), https, Some(admin))) => (http, https, admin),
            other => {
                let _ = child.kill();
                panic!(
                    "wsgate did not report its listeners ({other:?}); log:\n{}",
                    log.lock().expect("log").join("\n")
                );
            }
        };
        Wsgate { child, http, https, admin, log }
    }

    /// The log so far (JSON lines), for failure messages.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, "admin", path).await
    }

    /// The value of one Prometheus series (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.admin_get("/metrics").await;
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
    }

    /// Opens a WebSocket through wsgate; `Err(status)` when the handshake is refused.
    pub async fn ws(&self, host: &str, path: &str) -> Result<Ws, u16> {
        self.ws_named(host, path).await.map(|(ws, _)| ws)
    }

    /// Like [`Wsgate::ws`], also returning the name of the echo backend that answered.
    pub async fn ws_named(&self, host: &str, path: &str) -> Result<(Ws, String), u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}{path}", self.http).into_client_request().expect("request");
        request.headers_mut().insert("host", host.parse().expect("host header"));
        match within("handshake", tokio_tungstenite::connect_async(request)).await {
            Ok((ws, response)) => {
                let name = response.headers().get("x-echo-name").and_then(|v| v.to_str().ok()).unwrap_or("");
                Ok((ws, name.to_string()))
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(error) => panic!("handshake failed below HTTP: {error}"),
        }
    }

    pub async fn get(&self, host: &str, path: &str) -> (u16, String) {
        http_get(self.http, host, path).await
    }
}

impl Drop for Wsgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- wsgate log ---\n{}", self.log());
        }
    }
}

async fn http_get(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    let stream = within("connect", TcpStream::connect(addr)).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", host)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = within("response", sender.send_request(request)).await.expect("response");
    let status = response.status().as_u16();
    let body = within("body", response.into_body().collect()).await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Sends `text` and expects it back.
pub async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    let reply = within("echo", ws.next()).await.expect("open").expect("message");
    assert_eq!(reply.into_text().expect("text").as_str(), text);
}

/// The IPs in an Ingress's `status.loadBalancer` (none when it has no status, or no such Ingress).
pub async fn ingress_addresses(ingresses: &Api<k8s_openapi::api::networking::v1::Ingress>, name: &str) -> Vec<String> {
    ingresses
        .get(name)
        .await
        .ok()
        .and_then(|i| i.status)
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|lb| lb.ip)
        .collect()
}
