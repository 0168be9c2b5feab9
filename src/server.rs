//! Wiring for `wsgate run`: the route source, the dataplane and the admin listener, started together
//! and stopped in order. Shared by the binary and the quickstart example.
//!
//! ```text
//!   source (file mode | Kubernetes) ─► Publisher ─► SharedTable ─► Proxy (HTTP listener, HTTPS listener;
//!                                                                  redirects name the HTTPS port)
//!                                          └─► Readiness ─► Admin (admin listener)
//!   shutdown ─► /readyz fails, still serving (shutdown_delay) ─► stop source and accepting ─► drain open
//!     connections (≤ drain; frame-layer WebSockets get Close 1001) ─► return
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::admin::{Admin, Readiness};
use crate::controller::compile::CompileOptions;
use crate::controller::file_mode::{self, FileModeError};
use crate::controller::kube_mode::{self, KubeConfig, KubeModeError};
use crate::controller::publish::Publisher;
use crate::dataplane::{AccessLog, Proxy, ProxyOptions, TrustedProxies};
use crate::metrics::Metrics;
use crate::routes::SharedTable;

/// Where routes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A folder of YAML manifests, watched for changes.
    Manifests { dir: PathBuf, compile: CompileOptions },
    /// The Kubernetes API (in-cluster config or KUBECONFIG).
    Kubernetes(KubeConfig),
}

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub http_addr: SocketAddr,
    /// The HTTPS listener (TLS terminated with the certificates of the route table); `None`: no HTTPS.
    pub https_addr: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
    pub source: Source,
    /// How long open connections may keep running after shutdown begins.
    pub drain: Duration,
    /// After SIGTERM, how long wsgate keeps accepting with `/readyz` failing, before the drain starts.
    pub shutdown_delay: Duration,
    /// Whether the dataplane writes access lines (target `wsgate::access`).
    pub access_log: AccessLog,
    /// The port plain-HTTP requests are redirected to on routes that ask for it (`https://host:port`,
    /// the port left out when 443). `None`: the HTTPS listener's port. No effect without `https_addr`.
    pub https_redirect_port: Option<u16>,
    /// Most client connections open at once, WebSockets included (`--max-connections`; `None`: no limit).
    pub max_connections: Option<usize>,
    /// Most per-(route, client IP) entries the per-client limits keep (`--max-tracked-clients`; 0: the
    /// default, [`crate::dataplane::DEFAULT_MAX_TRACKED_CLIENTS`]).
    pub max_tracked_clients: usize,
    /// Peers whose `X-Forwarded-For` names the client (`--trusted-proxies`).
    pub trusted_proxies: TrustedProxies,
    /// Every connection starts with a PROXY protocol v1/v2 header (`--proxy-protocol`).
    pub proxy_protocol: bool,
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    FileMode(#[from] FileModeError),
    #[error(transparent)]
    Kubernetes(#[from] KubeModeError),
    #[error("the {0} task failed: {1}")]
    Task(&'static str, String),
    #[error("the traffic listener failed: {0}")]
    Listener(std::io::Error),
}

/// Listening sockets, bound before anything else starts so that a port in use fails fast.
pub struct Bound {
    pub http: TcpListener,
    pub https: Option<TcpListener>,
    pub admin: TcpListener,
}

impl ServerConfig {
    pub async fn bind(&self) -> Result<Bound, ServerError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })
        };
        let https = match self.https_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Bound { http: bind(self.http_addr).await?, https, admin: bind(self.admin_addr).await? })
    }
}

/// Serves until `shutdown` resolves (then drains) or the source fails.
pub async fn run(config: ServerConfig, bound: Bound, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let metrics = Arc::new(Metrics::new());
    let table = SharedTable::default();
    let readiness = Readiness::default();
    let publisher = Publisher::new(table.clone(), metrics.clone(), readiness.clone());
    let readiness_on_signal = readiness.clone();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    // why the bound port: `https_addr` may ask for port 0.
    let https_port = bound.https.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port());
    let options = ProxyOptions {
        access_log: config.access_log,
        https_redirect_port: https_port.map(|port| config.https_redirect_port.unwrap_or(port)),
        max_connections: config.max_connections,
        trusted_proxies: config.trusted_proxies,
        proxy_protocol: config.proxy_protocol,
        max_tracked_clients: config.max_tracked_clients,
    };
    let proxy = Proxy::with_options(table.clone(), metrics.clone(), options);
    let admin = Admin { metrics: metrics.clone(), table, readiness, proxy: Some(proxy.clone()) };
    let admin_task = tokio::spawn(admin.serve(bound.admin, stopped()));
    let drain = config.drain;
    let proxy_stopped = stopped();
    let https_task = bound.https.map(|listener| {
        let proxy = proxy.clone();
        let stopped = stopped();
        tokio::spawn(async move { proxy.serve_tls(listener, stopped, drain).await })
    });
    let proxy_task = tokio::spawn(async move { proxy.serve(bound.http, proxy_stopped, drain).await });

    let source =
        match config.source {
            Source::Manifests { dir, compile } => tokio::spawn(async move {
                file_mode::run(dir, compile, publisher, stopped()).await.map_err(ServerError::from)
            }),
            Source::Kubernetes(kube) => tokio::spawn(async move {
                kube_mode::run(kube, publisher, metrics, stopped()).await.map_err(ServerError::from)
            }),
        };

    let mut result = Ok(());
    tokio::select! {
        ended = source => {
            result = match ended {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error),
                Err(error) => Err(ServerError::Task("route source", error.to_string())),
            };
        }
        _ = shutdown => {
            // Load balancers see /readyz fail and stop sending; what still comes is served meanwhile.
            readiness_on_signal.set_shutting_down();
            let delay = config.shutdown_delay;
            tracing::info!(delay_seconds = delay.as_secs_f64(), "shutting down: /readyz fails, still accepting");
            tokio::time::sleep(delay).await;
            tracing::info!(drain_seconds = drain.as_secs_f64(), "shutting down: draining open connections");
        }
    }
    let _ = stop_tx.send(true);
    for task in std::iter::once(proxy_task).chain(https_task) {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => result = result.and(Err(ServerError::Listener(error))),
            Err(error) => result = result.and(Err(ServerError::Task("dataplane", error.to_string()))),
        }
    }
    if let Err(error) = admin_task.await {
        result = result.and(Err(ServerError::Task("admin", error.to_string())));
    }
    result
}
