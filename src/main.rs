//! The `wsgate` command: wiring only. Parses the command line, starts the source, the dataplane and the
//! admin listener, and shuts them down in order on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wsgate::controller::compile::{CompileOptions, Severity, compile};
use wsgate::controller::kube_mode::KubeConfig;
use wsgate::controller::lease::LeaseConfig;
use wsgate::controller::manifests::load_dir;
use wsgate::controller::status::PublishTarget;
use wsgate::dataplane::{AccessLog, TrustedProxies};
use wsgate::server::{self, ServerConfig, Source};
use wsgate::telemetry::{self, LogFormat};

/// wsgate: a Kubernetes ingress controller built for WebSockets.
#[derive(Parser, Debug)]
#[command(name = "wsgate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve traffic. With --manifests, routes come from a folder of YAML manifests (file mode),
    /// reloaded on every change; without it, from the Kubernetes API.
    Run(Box<RunArgs>),
    /// Load and compile a folder of manifests, print every problem, and exit 1 if any is an error. With
    /// --explain HOST PATH, also print which route such a request would take, and why.
    Check(CheckArgs),
    /// Review Ingresses written for ingress-nginx (a file, a folder, or - for standard input, e.g.
    /// `kubectl get ingress -A -o yaml | wsgate migrate -`): per Ingress, what behaves the same, what
    /// differs and why, and what is not supported, as YAML comments, followed by the equivalent
    /// WebSocketRoutes. Exit code 0: the same; 1: differences; 2: unsupported annotations.
    Migrate(MigrateArgs),
    /// Print the WebSocketRoute CustomResourceDefinition (the content of crds/).
    Crd,
    /// Print the RBAC rules the controller needs (what the Helm chart grants).
    Rbac,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Folder of Kubernetes YAML manifests (Ingress, IngressClass, WebSocketRoute, Service,
    /// EndpointSlice, Secret) to serve instead of watching a cluster.
    #[arg(long, env = "WSGATE_MANIFESTS", value_name = "DIR")]
    manifests: Option<PathBuf>,

    /// Address of the traffic listener (HTTP and WebSocket).
    #[arg(long, env = "WSGATE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,

    /// Address of the HTTPS listener, off unless set (e.g. 0.0.0.0:8443). TLS is terminated there with
    /// the certificates named by Ingress spec.tls and WebSocketRoute spec.tls (kubernetes.io/tls
    /// Secrets), chosen by the client's SNI name; a name without a certificate is refused.
    #[arg(long, env = "WSGATE_HTTPS_ADDR", value_name = "ADDR")]
    https_addr: Option<SocketAddr>,

    /// Port named in the 308 redirects to https:// of routes that ask for them (Ingress annotation
    /// wsgate.dev/ssl-redirect: "true", WebSocketRoute spec.tls.redirect), left out when 443. Default:
    /// the --https-addr port; set it when a Service maps another port to it (e.g. 443 -> 8443).
    /// Nothing is redirected without --https-addr.
    #[arg(long, env = "WSGATE_HTTPS_REDIRECT_PORT", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    https_redirect_port: Option<u16>,

    /// Address of the admin listener (/healthz, /readyz, /metrics, /debug/routes, /debug/explain).
    #[arg(long, env = "WSGATE_ADMIN_ADDR", default_value = "0.0.0.0:9090")]
    admin_addr: SocketAddr,

    /// IngressClass name whose Ingresses wsgate serves.
    #[arg(long, env = "WSGATE_INGRESS_CLASS", default_value = "wsgate")]
    ingress_class: String,

    #[command(flatten)]
    nginx: NginxArgs,

    /// Watch only this namespace (Kubernetes mode). Default: all namespaces.
    #[arg(long, env = "WSGATE_NAMESPACE")]
    namespace: Option<String>,

    /// Copy this Service's load-balancer addresses into the status of served Ingresses
    /// (Kubernetes mode), as NAMESPACE/NAME.
    #[arg(long, env = "WSGATE_PUBLISH_SERVICE", value_name = "NAMESPACE/NAME", conflicts_with = "publish_address")]
    publish_service: Option<String>,

    /// Write these IPs or hostnames into the status of served Ingresses (Kubernetes mode).
    #[arg(long, env = "WSGATE_PUBLISH_ADDRESS", value_name = "ADDR", value_delimiter = ',')]
    publish_address: Vec<String>,

    /// Name of the coordination.k8s.io Lease that elects the one replica writing status.
    #[arg(long, env = "WSGATE_LEASE_NAME", default_value = "wsgate-leader")]
    lease_name: String,

    /// Namespace of the Lease. Default: $POD_NAMESPACE, else "default".
    #[arg(long, env = "WSGATE_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,

    /// This replica's identity in the Lease. Default: $POD_NAME, else the host name.
    #[arg(long, env = "WSGATE_IDENTITY")]
    identity: Option<String>,

    /// On SIGTERM, how long open connections (WebSockets included) may keep running before wsgate exits,
    /// in seconds, counted after --shutdown-delay. Frame-layer WebSockets get Close 1001 when it starts
    /// and end with their closing handshakes; byte tunnels run until they end or this deadline.
    #[arg(long, env = "WSGATE_DRAIN_TIMEOUT", default_value = "30", value_name = "SECONDS")]
    drain_timeout: u64,

    /// On SIGTERM, how long wsgate keeps accepting with /readyz failing (503), so load balancers stop
    /// sending before it stops accepting and drains, in seconds.
    #[arg(long, env = "WSGATE_SHUTDOWN_DELAY", default_value = "5", value_name = "SECONDS")]
    shutdown_delay: u64,

    /// Access log: `on` writes one line per HTTP request, per WebSocket session (when it ends, with its
    /// end reason and byte counts) and per refused handshake, at info level on the target
    /// `wsgate::access`, in the --log-format. Off by default: it costs CPU per connection.
    #[arg(long, env = "WSGATE_ACCESS_LOG", value_enum, default_value = "off", value_name = "off|on")]
    access_log: AccessLog,

    /// Most client connections open at once, WebSockets included, over every traffic listener of
    /// this replica. Above it, new connections are closed at accept (counted in
    /// wsgate_refused_total{reason="max_connections"}); open ones are untouched. Default: no limit
    /// (the process's open-file limit is then the real one: about half of it, since every proxied
    /// connection also holds a backend socket).
    #[arg(long, env = "WSGATE_MAX_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,

    /// Most per-(route, client IP) entries the per-client limits keep (a few hundred bytes each); when
    /// every entry is busy, a new client is held only to the route's cap. Entries exist only for routes
    /// with maxConnectionsPerClient or handshakesPerSecondPerClient; idle ones are dropped oldest first.
    #[arg(
        long,
        env = "WSGATE_MAX_TRACKED_CLIENTS",
        value_name = "N",
        default_value_t = wsgate::dataplane::DEFAULT_MAX_TRACKED_CLIENTS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    max_tracked_clients: usize,

    /// Comma-separated CIDRs (or addresses) of proxies in front of wsgate, such as a cloud load
    /// balancer: for requests from these peers the client is the rightmost X-Forwarded-For address
    /// that is not itself trusted (for limits, source-IP hashing and the access log). From any other
    /// peer, X-Forwarded-For is not believed. Default: none.
    #[arg(long, env = "WSGATE_TRUSTED_PROXIES", value_name = "CIDR,...", default_value = "")]
    trusted_proxies: TrustedProxies,

    /// Expect a PROXY protocol (v1 or v2) header at the start of every connection on every traffic
    /// listener, as load balancers send it (AWS NLB, HAProxy, ...), and take the client's address
    /// from it. Connections without a valid header are closed. Off by default.
    #[arg(long, env = "WSGATE_PROXY_PROTOCOL")]
    proxy_protocol: bool,

    #[command(flatten)]
    log: LogArgs,
}

#[derive(Args, Debug)]
struct MigrateArgs {
    /// A manifest file, a folder of them, or - for standard input (a `kubectl get -o yaml` List works).
    input: PathBuf,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// Folder of manifests to check.
    dir: PathBuf,

    /// IngressClass name whose Ingresses wsgate serves.
    #[arg(long, default_value = "wsgate")]
    ingress_class: String,

    #[command(flatten)]
    nginx: NginxArgs,

    /// Also explain which route a request for HOST and PATH (with an optional ?query) would take, and
    /// why (host group, skipped routes, backends and their endpoints), and what the route's policies
    /// decide for it (Origin rule, subprotocols, limits, hash key and its endpoint).
    #[arg(long, num_args = 2, value_names = ["HOST", "PATH"])]
    explain: Option<Vec<String>>,

    /// A request header for --explain, as `Name: value` (repeatable), e.g. `Origin: https://app.example.com`.
    #[arg(long = "header", value_name = "NAME: VALUE", requires = "explain")]
    headers: Vec<String>,
}

/// The ingress-nginx migration switches (the same for `run` and `check`).
#[derive(Args, Debug, Clone)]
struct NginxArgs {
    /// Translate ingress-nginx annotations (nginx.ingress.kubernetes.io/...) on served Ingresses into
    /// wsgate policies, with ingress-nginx's meaning and units; annotations wsgate does not translate
    /// are reported (Warning Events, `wsgate check`), and those whose absence would open what they
    /// protect (auth-*) keep the Ingress from being served. Snippets are never
    /// executed. See docs/migrating-from-ingress-nginx.md.
    #[arg(long, env = "WSGATE_NGINX_COMPAT")]
    nginx_compat: bool,

    /// Also serve the Ingresses of this other IngressClass (repeatable, or comma-separated), e.g.
    /// `nginx` while ingress-nginx still runs beside wsgate: their status is left to that controller.
    #[arg(
        long = "watch-ingress-class",
        env = "WSGATE_WATCH_INGRESS_CLASS",
        value_name = "CLASS",
        value_delimiter = ','
    )]
    watch_ingress_classes: Vec<String>,
}

impl NginxArgs {
    fn options(&self, ingress_class: &str) -> CompileOptions {
        CompileOptions {
            ingress_class: ingress_class.to_string(),
            nginx_compat: self.nginx_compat,
            watch_ingress_classes: self.watch_ingress_classes.clone(),
        }
    }
}

#[derive(Args, Debug)]
struct LogArgs {
    /// Log line format.
    #[arg(long, env = "WSGATE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,

    /// Log filter when RUST_LOG is not set (e.g. `info`, `wsgate=debug`).
    #[arg(long, env = "WSGATE_LOG_LEVEL", default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", wsgate::crd::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Rbac => {
            print!("{}", wsgate::controller::rbac::rules_yaml());
            ExitCode::SUCCESS
        }
        Command::Check(args) => check(&args),
        Command::Migrate(args) => migrate(&args),
        Command::Run(args) => {
            telemetry::init(args.log.log_format, &args.log.log_level, args.access_log == AccessLog::On);
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(error) => {
                    eprintln!("wsgate: cannot start the runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error}");
                    eprintln!("wsgate: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `wsgate check DIR`: what file mode would serve, and what is wrong with it.
fn migrate(args: &MigrateArgs) -> ExitCode {
    use std::io::Read as _;
    let loaded = if args.input.as_os_str() == "-" {
        let mut text = String::new();
        if let Err(error) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("error: cannot read standard input: {error}");
            return ExitCode::from(2);
        }
        wsgate::controller::manifests::load_text(&args.input, &text)
    } else if args.input.is_dir() {
        match load_dir(&args.input) {
            Ok(loaded) => loaded,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        wsgate::controller::manifests::load_files(std::slice::from_ref(&args.input))
    };
    for error in &loaded.errors {
        eprintln!("error: {error}");
    }
    let migration = wsgate::controller::compile::migrate::migrate(&loaded.snapshot);
    print!("{}", migration.output);
    let code = if loaded.errors.is_empty() { migration.exit_code } else { 2 };
    ExitCode::from(code)
}

fn check(args: &CheckArgs) -> ExitCode {
    let loaded = match load_dir(&args.dir) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut errors = loaded.errors.len();
    for error in &loaded.errors {
        println!("error: {error}");
    }
    let mut warnings = loaded.warnings.len();
    for warning in &loaded.warnings {
        println!("warning: {warning}");
    }
    let compiled = compile(&loaded.snapshot, &args.nginx.options(&args.ingress_class));
    for diagnostic in &compiled.report.diagnostics {
        match diagnostic.severity {
            Severity::Error => {
                errors += 1;
                println!("error: {diagnostic}");
            }
            Severity::Warning => {
                warnings += 1;
                println!("warning: {diagnostic}");
            }
        }
    }
    if let Some([host, path]) = args.explain.as_deref() {
        let mut headers = http::HeaderMap::new();
        for header in &args.headers {
            let parsed = header.split_once(':').and_then(|(name, value)| {
                let name = http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
                Some((name, http::HeaderValue::from_str(value.trim()).ok()?))
            });
            match parsed {
                Some((name, value)) => {
                    headers.append(name, value);
                }
                None => {
                    eprintln!("--header {header:?} is not `Name: value`");
                    return ExitCode::from(2);
                }
            }
        }
        let request = wsgate::routes::RequestView::with_query(host, path).headers(&headers);
        let explanation = compiled.table.explain_request(&request);
        print!("explain: {explanation}");
        if let Some(route) = &explanation.route {
            let uri: http::Uri = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
            let client = std::net::IpAddr::from([127, 0, 0, 1]);
            print!("{}", wsgate::dataplane::explain::decide(route, &headers, &uri, client));
        }
    }
    let routes = compiled.table.routes().count();
    println!("{}: {routes} route(s), {errors} error(s), {warnings} warning(s)", args.dir.display());
    if errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let compile = args.nginx.options(&args.ingress_class);
    let source = match args.manifests {
        Some(dir) => Source::Manifests { dir, compile },
        None => {
            let publish = match (args.publish_service, args.publish_address) {
                (Some(service), _) => {
                    let (ns, name) = service
                        .split_once('/')
                        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
                        .ok_or_else(|| anyhow::anyhow!("--publish-service must be NAMESPACE/NAME, got {service:?}"))?;
                    PublishTarget::Service((ns.to_string(), name.to_string()))
                }
                (None, addresses) if !addresses.is_empty() => PublishTarget::Addresses(addresses),
                (None, _) => PublishTarget::None,
            };
            let identity = args
                .identity
                .or_else(|| std::env::var("POD_NAME").ok())
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
                .unwrap_or_else(|| format!("wsgate-{}", std::process::id()));
            let lease_namespace = args
                .lease_namespace
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".to_string());
            Source::Kubernetes(KubeConfig {
                namespace: args.namespace,
                compile,
                publish,
                lease: Some(LeaseConfig::new(lease_namespace, args.lease_name, identity)),
            })
        }
    };
    let config = ServerConfig {
        http_addr: args.http_addr,
        https_addr: args.https_addr,
        admin_addr: args.admin_addr,
        source,
        drain: Duration::from_secs(args.drain_timeout),
        shutdown_delay: Duration::from_secs(args.shutdown_delay),
        access_log: args.access_log,
        https_redirect_port: args.https_redirect_port,
        max_connections: args.max_connections.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        max_tracked_clients: args.max_tracked_clients,
        trusted_proxies: args.trusted_proxies,
        proxy_protocol: args.proxy_protocol,
    };
    let bound = config.bind().await?;
    let https = bound.https.as_ref().map(|l| l.local_addr()).transpose()?;
    tracing::info!(http = %bound.http.local_addr()?, https = ?https, admin = %bound.admin.local_addr()?, "listening");
    server::run(config, bound, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
