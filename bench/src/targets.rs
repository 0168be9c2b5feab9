//! What the load is sent to: the echo backends themselves ("direct"), nginx with the seed's recipe
//! (corrected), HAProxy with the equivalent configuration, and wsgate in file mode.
//!
//! ```text
//!                        ┌─► echo A (127.0.0.1:a)
//!   load ─► direct ──────┤
//!        ─► nginx   ─────┤   upstream backend { server a; server b; }   location /websocket
//!        ─► HAProxy ─────┤   backend be { server a; server b; }         timeout tunnel 1h
//!        ─► wsgate  ─────┤   manifests: Service + 2 EndpointSlices + WebSocketRoute /websocket
//!                        └─► echo B (127.0.0.1:b)
//! ```
//!
//! Every proxy gets the same two backends, two worker processes/threads (the machine's cores) and no
//! access log (wsgate writes none per request either); each listens on a free loopback port.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::client;
use crate::procs::Proc;

/// The path every WebSocket workload asks for (the seed recipe's `location /websocket`).
pub const WS_PATH: &str = "/websocket";
/// How long nginx and HAProxy let old workers finish after a reload (`worker_shutdown_timeout`,
/// `hard-stop-after`): the "drain limit" of the reload figures.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// Longest wait for a started target to answer a handshake.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Direct,
    Nginx,
    Haproxy,
    Wsgate,
    /// wsgate on a route with consistent hashing, an Origin allow-list and per-client limits (none of
    /// which refuses the bench's clients): the cost of the policies, beside the plain route.
    WsgatePolicy,
    /// wsgate on a route on the frame layer (keepalive and a message-size limit, neither of which
    /// fires during the bench): the cost of reading every frame header, beside the byte tunnel.
    WsgateFrames,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Nginx => "nginx",
            Kind::Haproxy => "haproxy",
            Kind::Wsgate => "wsgate",
            Kind::WsgatePolicy => "wsgate-policy",
            Kind::WsgateFrames => "wsgate-frames",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Kind::Direct => "direct (no proxy)",
            Kind::Nginx => "nginx",
            Kind::Haproxy => "HAProxy",
            Kind::Wsgate => "wsgate",
            Kind::WsgatePolicy => "wsgate + policies",
            Kind::WsgateFrames => "wsgate frame layer",
        }
    }

    /// Every target, in the report's column order.
    pub fn all() -> [Kind; 6] {
        [Kind::Direct, Kind::Nginx, Kind::Haproxy, Kind::Wsgate, Kind::WsgatePolicy, Kind::WsgateFrames]
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::all().into_iter().find(|k| k.name() == name)
    }

    /// Whether this target is a wsgate process.
    pub fn is_wsgate(self) -> bool {
        matches!(self, Kind::Wsgate | Kind::WsgatePolicy | Kind::WsgateFrames)
    }
}

/// A free port on 127.0.0.1 (bound and released; the bench is the only thing binding ports here).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The two echo backends.
#[derive(Debug)]
pub struct Backends {
    pub addrs: [SocketAddr; 2],
    _procs: Vec<Proc>,
}

impl Backends {
    /// Starts two echo processes (this executable's `echo` subcommand).
    pub async fn start(work: &Path) -> anyhow::Result<Backends> {
        let exe = std::env::current_exe()?;
        let mut addrs = Vec::new();
        let mut procs = Vec::new();
        for name in ["echo-a", "echo-b"] {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let mut command = Command::new(&exe);
            command.arg("echo").arg(addr.to_string());
            procs.push(Proc::spawn(name, command, work)?);
            addrs.push(addr);
        }
        let addrs = [addrs[0], addrs[1]];
        for addr in addrs {
            wait_ready(&[addr]).await.context("echo backend")?;
        }
        Ok(Backends { addrs, _procs: procs })
    }
}

/// Where wsgate comes from.
#[derive(Debug, Clone)]
pub struct WsgateBinary {
    pub path: PathBuf,
}

/// One target under load.
#[derive(Debug)]
pub struct Target {
    pub kind: Kind,
    /// Addresses clients connect to; connection i uses `addrs[i % len]` (direct spreads over both echoes).
    pub addrs: Vec<SocketAddr>,
    /// The proxy's processes; `None` for direct.
    pub proc: Option<Proc>,
    /// This target's folder (configuration, manifests, logs).
    pub dir: PathBuf,
    backends: [SocketAddr; 2],
    wsgate: Option<WsgateBinary>,
}

impl Target {
    pub async fn start(
        kind: Kind,
        work: &Path,
        backends: &Backends,
        wsgate: Option<&WsgateBinary>,
    ) -> anyhow::Result<Target> {
        let dir = work.join(kind.name());
        std::fs::create_dir_all(&dir)?;
        let mut target = Target {
            kind,
            addrs: backends.addrs.to_vec(),
            proc: None,
            dir,
            backends: backends.addrs,
            wsgate: wsgate.cloned(),
        };
        target.launch().await?;
        Ok(target)
    }

    /// Stops the proxy (if running) and starts a fresh process: the idle-memory workload measures from
    /// a clean start.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.kind == Kind::Direct {
            return Ok(());
        }
        self.proc = None;
        self.launch().await
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let [a, b] = self.backends;
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let proc = match self.kind {
            Kind::Direct => return Ok(()),
            Kind::Nginx => {
                let conf = self.dir.join("nginx.conf");
                std::fs::write(&conf, nginx_conf(&self.dir, listen, a, b))?;
                let mut command = Command::new(find_binary("nginx")?);
                command.arg("-p").arg(&self.dir).arg("-c").arg(&conf);
                Proc::spawn("nginx", command, &self.dir)?
            }
            Kind::Haproxy => {
                let conf = self.dir.join("haproxy.cfg");
                std::fs::write(&conf, haproxy_conf(listen, a, b))?;
                let mut command = Command::new(find_binary("haproxy")?);
                // -W: master-worker (reload = SIGUSR2 to the master); -db: stay in the foreground.
                command.arg("-W").arg("-db").arg("-f").arg(&conf);
                Proc::spawn("haproxy", command, &self.dir)?
            }
            Kind::Wsgate | Kind::WsgatePolicy | Kind::WsgateFrames => {
                let binary = self.wsgate.as_ref().context("no wsgate binary given")?;
                let manifests = self.dir.join("manifests");
                let _ = std::fs::remove_dir_all(&manifests);
                std::fs::create_dir_all(&manifests)?;
                std::fs::write(manifests.join("echo.yaml"), wsgate_manifests(a, b, self.kind))?;
                let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
                let mut command = Command::new(&binary.path);
                command
                    .arg("run")
                    .arg("--manifests")
                    .arg(&manifests)
                    .arg("--http-addr")
                    .arg(listen.to_string())
                    .arg("--admin-addr")
                    .arg(admin.to_string())
                    .arg("--log-level")
                    .arg("warn")
                    .arg("--drain-timeout")
                    .arg("1");
                Proc::spawn("wsgate", command, &self.dir)?
            }
        };
        self.proc = Some(proc);
        self.addrs = vec![listen];
        wait_ready(&self.addrs).await.with_context(|| format!("{} did not come up", self.kind.name()))
    }

    /// Asks nginx or HAProxy to reload its configuration (old workers drain up to [`DRAIN_LIMIT`]).
    pub fn reload(&self) -> anyhow::Result<()> {
        let proc = self.proc.as_ref().context("nothing to reload")?;
        match self.kind {
            Kind::Nginx => proc.signal(libc::SIGHUP),
            Kind::Haproxy => proc.signal(libc::SIGUSR2),
            _ => bail!("{} has no reload", self.kind.name()),
        }
        Ok(())
    }

    /// The wsgate manifest folder (file mode).
    pub fn manifests(&self) -> PathBuf {
        self.dir.join("manifests")
    }

    pub fn cpu_seconds(&self) -> f64 {
        self.proc.as_ref().map_or(0.0, Proc::cpu_seconds)
    }

    pub fn rss_bytes(&self) -> u64 {
        self.proc.as_ref().map_or(0, Proc::rss_bytes)
    }
}

/// Waits until a handshake to each address succeeds.
async fn wait_ready(addrs: &[SocketAddr]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for addr in addrs {
        loop {
            match client::connect(*addr, [127, 0, 0, 1].into(), WS_PATH, 1).await {
                Ok(conn) => {
                    conn.close(Duration::from_secs(1)).await;
                    break;
                }
                Err(error) if Instant::now() >= deadline => bail!("{addr}: {error}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    Ok(())
}

fn find_binary(name: &str) -> anyhow::Result<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return Ok(path);
        }
    }
    bail!("{name} is not installed")
}

/// Whether nginx and HAProxy are installed.
pub fn proxies_installed() -> bool {
    find_binary("nginx").is_ok() && find_binary("haproxy").is_ok()
}

/// Installs nginx and HAProxy from Debian's packages. Services are not started by the packages: a
/// temporary policy-rc.d denies it (only if the machine has none of its own).
pub fn install_proxies() -> anyhow::Result<()> {
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists();
    if ours {
        std::fs::write(policy, "#!/bin/sh\n# written by wsgate-bench during apt-get install\nexit 101\n")?;
        std::fs::set_permissions(policy, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let result = (|| {
        eprintln!("installing nginx and haproxy (apt-get update; apt-get install -y nginx-light haproxy)");
        let update = Command::new("apt-get").arg("update").status()?;
        if !update.success() {
            bail!("apt-get update failed");
        }
        let install = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "nginx-light", "haproxy"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?;
        if !install.success() {
            bail!("apt-get install nginx-light haproxy failed");
        }
        Ok(())
    })();
    if ours {
        let _ = std::fs::remove_file(policy);
    }
    result
}

/// The seed's second recipe (shared/seed/nginx-websocket-reverse-proxy.de.md) with its three mistakes
/// fixed — `server` in the upstream entries, the same port for both (no "300"), `proxy_pass` naming the
/// defined upstream — on loopback ports, plus what a benchmark needs: a foreground master, files in
/// `dir`, enough connections, no access log, and the 10 s drain limit for reloads.
pub fn nginx_conf(dir: &Path, listen: SocketAddr, a: SocketAddr, b: SocketAddr) -> String {
    let dir = dir.display();
    let drain = DRAIN_LIMIT.as_secs();
    format!(
        "daemon off;\n\
         master_process on;\n\
         worker_processes auto;\n\
         worker_rlimit_nofile 20000;\n\
         worker_shutdown_timeout {drain}s;\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log warn;\n\
         \n\
         events {{\n    worker_connections 20000;\n}}\n\
         \n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path {dir}/client_body;\n\
         \x20   proxy_temp_path {dir}/proxy;\n\
         \n\
         \x20   upstream backend {{\n\
         \x20       server {a};\n\
         \x20       server {b};\n\
         \x20   }}\n\
         \n\
         \x20   map $http_upgrade $connection_upgrade {{\n\
         \x20       default upgrade;\n\
         \x20       '' close;\n\
         \x20   }}\n\
         \n\
         \x20   server {{\n\
         \x20       listen {listen};\n\
         \x20       location /websocket {{\n\
         \x20           proxy_pass http://backend;\n\
         \x20           proxy_http_version 1.1;\n\
         \x20           proxy_set_header Host $host;\n\
         \x20           proxy_set_header Upgrade $http_upgrade;\n\
         \x20           proxy_set_header Connection $connection_upgrade;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n"
    )
}

/// HAProxy's equivalent: HTTP mode (it sees the upgrade and switches to a tunnel), round robin over the
/// same two backends, `timeout tunnel` for open WebSockets, and the same 10 s drain limit.
pub fn haproxy_conf(listen: SocketAddr, a: SocketAddr, b: SocketAddr) -> String {
    let drain = DRAIN_LIMIT.as_secs();
    let mut conf = String::new();
    let _ = write!(
        conf,
        "global\n\
         \x20   maxconn 9950\n\
         \x20   hard-stop-after {drain}s\n\
         \n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   timeout tunnel 1h\n\
         \n\
         frontend websocket\n\
         \x20   bind {listen}\n\
         \x20   default_backend backend\n\
         \n\
         backend backend\n\
         \x20   server a {a}\n\
         \x20   server b {b}\n"
    );
    conf
}

/// wsgate's file-mode folder: the Service, one EndpointSlice per echo port, and the WebSocketRoute,
/// with `policies`: consistent hashing on the client's `X-Bench-User` header, an allow-list holding the
/// Origin the bench client sends, and per-client limits set high enough to refuse nothing (every bench
/// client connects from a few loopback addresses), so each handshake runs every check and the hash pick.
pub fn wsgate_manifests(a: SocketAddr, b: SocketAddr, kind: Kind) -> String {
    let slice = |name: &str, addr: SocketAddr| {
        format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  labels:\n    \
             kubernetes.io/service-name: echo\naddressType: IPv4\nports:\n  - name: ws\n    port: {}\n\
             endpoints:\n  - addresses: [\"{}\"]\n    conditions: {{ready: true}}\n",
            addr.port(),
            addr.ip()
        )
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\nspec:\n  ports:\n    - name: ws\n      port: 80\n\
         {}{}---\napiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata:\n  name: bench\nspec:\n  \
         path:\n    type: Prefix\n    value: {WS_PATH}\n  backends:\n    - service:\n        name: echo\n        \
         port: ws\n  timeouts:\n    idle: 1h\n{}",
        slice("echo-a", a),
        slice("echo-b", b),
        match kind {
            Kind::WsgatePolicy => POLICIES,
            Kind::WsgateFrames => FRAMES,
            _ => "",
        }
    )
}

/// The policy fields of the `wsgate-policy` target's route.
const POLICIES: &str = "  allowedOrigins: [\"http://bench.local\", \"https://*.bench.local\"]\n  \
                        loadBalancing:\n    policy: ConsistentHash\n    hashOn: {type: Header, name: X-Bench-User}\n  \
                        limits:\n    maxConnectionsPerClient: 1000000\n    handshakesPerSecondPerClient: 1000000\n";

/// The fields that put the `wsgate-frames` target's route on the frame layer. Why a 1 h ping interval:
/// the bench's clients do not answer pings, and what is measured is the relay reading every frame
/// (with its timer armed), not the pings themselves.
const FRAMES: &str = "  keepalive: {pingInterval: 1h}\n  maxMessageBytes: 16777216\n";

/// A WebSocketRoute `probe` for `path` (the propagation workload rewrites it to add a new path).
pub fn wsgate_probe_route(path: &str) -> String {
    format!(
        "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata:\n  name: probe\nspec:\n  path:\n    \
         type: Prefix\n    value: {path}\n  backends:\n    - service:\n        name: echo\n        port: ws\n"
    )
}

/// Versions of the machine and the programs, for the report.
pub fn describe_machine(wsgate: Option<&WsgateBinary>) -> Vec<(String, String)> {
    let run = |program: &str, args: &[&str]| -> String {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| {
                let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
                String::from_utf8_lossy(&text).lines().next().unwrap_or("").trim().to_string()
            })
            .unwrap_or_else(|| "not found".to_string())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut facts =
        vec![("machine".to_string(), format!("{cores} cores, {cpu}")), ("kernel".to_string(), run("uname", &["-sr"]))];
    if let Ok(nginx) = find_binary("nginx") {
        facts.push(("nginx".to_string(), run(&nginx.to_string_lossy(), &["-v"])));
    }
    if let Ok(haproxy) = find_binary("haproxy") {
        facts.push(("HAProxy".to_string(), run(&haproxy.to_string_lossy(), &["-v"])));
    }
    if let Some(binary) = wsgate {
        facts.push(("wsgate".to_string(), run(&binary.path.to_string_lossy(), &["--version"])));
    }
    facts
}
