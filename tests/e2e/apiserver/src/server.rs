//! The listening server and its lifecycle handle.
//!
//! ```text
//!   TestApiServer::new(config) ──start()──► bound on config.addr (port 0 → a free port, kept)
//!          ▲                                   │ accept loop: one hyper HTTP/1 task per connection
//!          └───────────── start() ◄── stop() ──┘ (stop closes every connection and watch; the
//!                                               store, and so every object and rv, is kept)
//! ```

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::FutureExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::authn::{self, Tokens};
use crate::handler;
use crate::registry;
use crate::store::Store;
use crate::tls;

/// Errors of the server's own lifecycle (request errors are answered as `Status` bodies).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot write kubeconfig {path}: {source}")]
    Kubeconfig { path: String, source: std::io::Error },
    #[error("serviceaccounts \"{name}\" not found in namespace {namespace}")]
    NoServiceAccount { namespace: String, name: String },
}

/// One request the authorizer refused (answered 403), as the real server's audit log would show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The user name, e.g. `system:serviceaccount:NS:NAME`.
    pub user: String,
    /// The `Status` message the client got.
    pub message: String,
}

/// Settings of a test API server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free port on the first `start()`.
    pub addr: SocketAddr,
    /// Change events kept per resource for watches; older resourceVersions get 410 Gone.
    pub history_window: usize,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Watch duration when the client sends no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
    /// The `gitVersion` `/version` reports, e.g. `v1.32.0`.
    pub server_version: String,
    /// How long a deleted namespace stays `Terminating` before its contents and it are removed
    /// (the real namespace controller takes about as long).
    pub namespace_cleanup_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            history_window: 1000,
            bookmark_interval: Duration::from_secs(60),
            default_watch_timeout: Duration::from_secs(1800),
            server_version: "v1.32.0".into(),
            namespace_cleanup_delay: Duration::from_millis(500),
        }
    }
}

/// State shared by every connection: the store, settings, issued tokens and refused requests.
#[derive(Debug)]
pub struct App {
    pub store: Arc<Store>,
    pub config: Config,
    pub tokens: Tokens,
    pub tls: tls::Identity,
    addr: Mutex<SocketAddr>,
    denials: Mutex<Vec<Denial>>,
}

impl App {
    /// Remembers a refused request.
    pub fn record_denial(&self, user: &str, message: &str) {
        let denial = Denial { user: user.to_string(), message: message.to_string() };
        self.denials.lock().unwrap_or_else(|p| p.into_inner()).push(denial);
    }

    /// The address clients reach the server at.
    pub fn addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `/version` document.
    pub fn version_info(&self) -> Value {
        let v = self.config.server_version.trim_start_matches('v');
        let mut parts = v.split('.');
        let major = parts.next().unwrap_or("1");
        let minor = parts.next().unwrap_or("0");
        json!({
            "major": major,
            "minor": minor,
            "gitVersion": self.config.server_version,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.23.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        })
    }
}

struct Running {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A Kubernetes API server for tests: in-memory, plain HTTP, bearer tokens and RBAC.
pub struct TestApiServer {
    app: Arc<App>,
    running: Option<Running>,
}

impl TestApiServer {
    /// A server with an empty store (plus the namespaces every cluster has), not yet listening.
    pub fn new(config: Config) -> Self {
        let store = Arc::new(Store::new(config.history_window));
        store.write(registry::bootstrap);
        let addr = Mutex::new(config.addr);
        let tls = tls::identity(config.addr.ip());
        let app = App { store, config, tokens: Tokens::default(), tls, addr, denials: Mutex::new(Vec::new()) };
        TestApiServer { app: Arc::new(app), running: None }
    }

    /// `new(Config::default())` and `start()`: listening on 127.0.0.1 at a free port.
    pub async fn launch() -> Result<Self, Error> {
        let mut server = Self::new(Config::default());
        server.start().await?;
        Ok(server)
    }

    /// Starts listening (again). After a `stop()` it binds the same address as before.
    pub async fn start(&mut self) -> Result<(), Error> {
        if self.running.is_some() {
            return Ok(());
        }
        let addr = self.app.addr();
        let listener = TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
        let bound = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        *self.app.addr.lock().unwrap_or_else(|p| p.into_inner()) = bound;
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, self.app.clone(), rx));
        tracing::info!(addr = %bound, "test API server listening");
        self.running = Some(Running { shutdown, task });
        Ok(())
    }

    /// Stops listening and closes every open connection and watch; the store is kept.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.shutdown.send(true);
            if let Err(e) = r.task.await {
                tracing::error!(error = %e, "accept loop ended abnormally");
            }
            tracing::info!(addr = %self.app.addr(), "test API server stopped");
        }
    }

    /// Whether the server is listening.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The listening address (stable across `stop()`/`start()`).
    pub fn addr(&self) -> SocketAddr {
        self.app.addr()
    }

    /// `http://127.0.0.1:PORT` (plain HTTP; the same port answers HTTPS).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `https://127.0.0.1:PORT`, verified with [`TestApiServer::ca_pem`].
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr())
    }

    /// The PEM certificate of the CA that signed the server's certificate (new for every server).
    pub fn ca_pem(&self) -> &str {
        &self.app.tls.ca_pem
    }

    /// A kubeconfig (YAML) for this server: the cluster over HTTPS with its CA (client-go sends
    /// credentials only over TLS), the admin token's user (in `system:masters`, allowed everything),
    /// context `wsgate-test`.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_for_token(authn::ADMIN_TOKEN)
    }

    /// Writes `kubeconfig()` to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        self.write_kubeconfig_for_token(path, authn::ADMIN_TOKEN)
    }

    /// A kubeconfig like `kubeconfig()` whose user authenticates with `token`.
    pub fn kubeconfig_for_token(&self, token: &str) -> String {
        crate::kubeconfig::render(&self.https_url(), &self.app.tls.ca_pem, "default", token)
    }

    /// Writes `kubeconfig_for_token(token)` to `path`.
    pub fn write_kubeconfig_for_token(&self, path: &Path, token: &str) -> Result<(), Error> {
        std::fs::write(path, self.kubeconfig_for_token(token))
            .map_err(|source| Error::Kubeconfig { path: path.display().to_string(), source })
    }

    /// Issues a bearer token for the ServiceAccount `namespace/name`, as the TokenRequest API does:
    /// requests with it authenticate as `system:serviceaccount:NAMESPACE:NAME` (groups
    /// `system:serviceaccounts`, `system:serviceaccounts:NAMESPACE`, `system:authenticated`) and are
    /// authorized by RBAC. The ServiceAccount must exist; the token stops working (401) once it is
    /// deleted or recreated.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> Result<String, Error> {
        let st = self.app.store.read();
        self.app
            .tokens
            .issue(&st, namespace, name)
            .ok_or_else(|| Error::NoServiceAccount { namespace: namespace.into(), name: name.into() })
    }

    /// Every request the authorizer refused so far (403), oldest first.
    pub fn denied_requests(&self) -> Vec<Denial> {
        self.app.denials.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.app.store.read().rv
    }

    /// Drops all retained watch history: resuming a watch from any earlier resourceVersion now
    /// gets 410 Gone (`Expired`), which forces clients to relist.
    pub fn compact_history(&self) {
        self.app.store.write(|st| st.compact());
    }

    /// Changes how many events per resource are kept for watches.
    pub fn set_history_window(&self, events: usize) {
        self.app.store.write(|st| st.set_window(events));
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.shutdown.send(true);
            r.task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let app = app.clone();
                let rx = shutdown.clone();
                conns.spawn(async move {
                    let acceptor = app.tls.acceptor.clone();
                    let service = service_fn(move |req| {
                        let app = app.clone();
                        let rx = rx.clone();
                        async move {
                            // A bug in a handler must not take the connection down without an answer.
                            let answer = AssertUnwindSafe(handler::handle(app, rx, req)).catch_unwind().await;
                            Ok::<_, std::convert::Infallible>(answer.unwrap_or_else(|_| handler::internal_error()))
                        }
                    });
                    let mut first = [0u8; 1];
                    let served = if matches!(stream.peek(&mut first).await, Ok(1) if first[0] == tls::HANDSHAKE_RECORD) {
                        match acceptor.accept(stream).await {
                            Ok(tls) => http1::Builder::new().serve_connection(TokioIo::new(tls), service).await,
                            Err(e) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                        }
                    } else {
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
                    };
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}
