//! Measures the memory an idle WebSocket costs wsgate, over TLS (`wss`) or plain (`ws`): starts the given
//! wsgate binary in file mode with a test certificate (made here by rcgen) and an echo backend in this
//! process, opens N WebSockets (each echoes one message), and reads how much wsgate's resident memory
//! (`VmRSS` in /proc/PID/status) grew per connection.
//!
//! ```text
//!   this process: N clients ──wss──► wsgate (child, --https-addr) ──ws──► echo backend (this process)
//!   RSS(after N opened, 1 s settle) − RSS(after 4 warm-up connections) ─► ÷ N ─► bytes per idle WebSocket
//! ```
//!
//! `cargo build --release --bin wsgate --example idle_wss && target/release/examples/idle_wss target/release/wsgate 2000 tls`
//! (the last argument `plain` measures `ws://` through the same process, for comparison).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const HOST: &str = "idle.test";
/// Handshakes in flight at once while opening.
const PARALLEL: usize = 64;

/// A client stream, plain or TLS, behind one type.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How the clients reach wsgate.
#[derive(Clone)]
enum Dial {
    Plain(SocketAddr),
    Tls(SocketAddr, TlsConnector),
}

impl Dial {
    async fn open(&self) -> anyhow::Result<WebSocketStream<Box<dyn Stream>>> {
        let (addr, scheme) = match self {
            Dial::Plain(addr) => (*addr, "ws"),
            Dial::Tls(addr, _) => (*addr, "wss"),
        };
        let tcp = TcpStream::connect(addr).await?;
        let stream: Box<dyn Stream> = match self {
            Dial::Plain(_) => Box::new(tcp),
            Dial::Tls(_, connector) => Box::new(connector.connect(ServerName::try_from(HOST)?, tcp).await?),
        };
        let url = format!("{scheme}://{HOST}/idle");
        let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), stream).await?;
        ws.send(Message::text("hello")).await?;
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) if text.as_str() == "hello" => Ok(ws),
            other => bail!("no echo: {other:?}"),
        }
    }
}

/// Opens `n` WebSockets, `PARALLEL` at a time; returns the open ones and the number of failures.
async fn open_many(dial: &Dial, n: usize) -> (Vec<WebSocketStream<Box<dyn Stream>>>, usize) {
    let mut open = Vec::with_capacity(n);
    let mut failed = 0;
    let mut started = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while started < n || !tasks.is_empty() {
        while started < n && tasks.len() < PARALLEL {
            let dial = dial.clone();
            tasks.spawn(async move { tokio::time::timeout(Duration::from_secs(20), dial.open()).await });
            started += 1;
        }
        match tasks.join_next().await {
            Some(Ok(Ok(Ok(ws)))) => open.push(ws),
            Some(Ok(Ok(Err(error)))) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("open failed: {error:#}");
                }
            }
            _ => failed += 1,
        }
    }
    (open, failed)
}

/// An echo backend: accepts WebSockets and sends every data message back.
async fn echo_backend() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                while let Some(Ok(message)) = ws.next().await {
                    if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

fn manifests(backend: SocketAddr, cert_pem: &str, key_pem: &str) -> String {
    let indent = |pem: &str| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: idle-tls}}\ntype: kubernetes.io/tls\nstringData:\n  \
         tls.crt: |\n{}  tls.key: |\n{}---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: echo}}\nspec:\n  ports: [{{name: ws, port: 80}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: echo-1\n  \
         labels: {{kubernetes.io/service-name: echo}}\naddressType: IPv4\nports: [{{name: ws, port: {}}}]\n\
         endpoints: [{{addresses: [127.0.0.1]}}]\n---\n\
         apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {{name: idle}}\nspec:\n  \
         hostnames: [{HOST}]\n  tls: {{secretName: idle-tls}}\n  timeouts: {{idle: 1h}}\n  \
         backends: [{{service: {{name: echo, port: ws}}}}]\n",
        indent(cert_pem),
        indent(key_pem),
        backend.port()
    )
}

fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    let kib: u64 = line.split_whitespace().nth(1).context("VmRSS value")?.parse()?;
    Ok(kib * 1024)
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Kills the child when dropped.
struct Wsgate(Child);

impl Drop for Wsgate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_wsgate(binary: &Path, dir: &Path, http: SocketAddr, https: SocketAddr) -> anyhow::Result<Wsgate> {
    let admin = free_addr()?;
    let child = Command::new(binary)
        .args(["run", "--manifests"])
        .arg(dir)
        .args(["--http-addr", &http.to_string(), "--https-addr", &https.to_string()])
        .args(["--admin-addr", &admin.to_string(), "--log-level", "warn"])
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    Ok(Wsgate(child))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = args.next().context("usage: idle_wss WSGATE_BINARY [N] [tls|plain]")?;
    let n: usize = args.next().map_or(Ok(2000), |s| s.parse())?;
    let tls = match args.next().as_deref() {
        None | Some("tls") => true,
        Some("plain") => false,
        Some(other) => bail!("mode is tls or plain, not {other}"),
    };

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec![HOST.to_string()])?.signed_by(&key, &issuer)?;

    let dir = std::env::temp_dir().join(format!("idle-wss-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let backend = echo_backend().await?;
    std::fs::write(dir.join("idle.yaml"), manifests(backend, &cert.pem(), &key.serialize_pem()))?;
    let (http, https) = (free_addr()?, free_addr()?);
    let wsgate = start_wsgate(Path::new(&binary), &dir, http, https)?;
    let pid = wsgate.0.id();

    let dial = if tls {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca_cert.der().to_vec()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Dial::Tls(https, TlsConnector::from(Arc::new(config)))
    } else {
        Dial::Plain(http)
    };

    // Wait (bounded) for wsgate to serve, then warm it up before the baseline.
    let mut ready = false;
    for _ in 0..100 {
        if dial.open().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !ready {
        bail!("wsgate did not serve within 10 s");
    }
    let (warm, _) = open_many(&dial, 4).await;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes(pid)?;
    let (open, failed) = open_many(&dial, n).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_bytes(pid)?;
    let per = after.saturating_sub(before) as f64 / open.len().max(1) as f64;
    println!(
        "{} idle {} WebSockets ({failed} failed): wsgate RSS {:.1} MiB -> {:.1} MiB, {:.0} B ({:.1} KiB) each",
        open.len(),
        if tls { "wss" } else { "ws" },
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per,
        per / 1024.0
    );
    drop(open);
    drop(wsgate);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
