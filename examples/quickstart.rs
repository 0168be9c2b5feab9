//! Quickstart: two echo backends on loopback and wsgate in file mode on `examples/quickstart/`.
//!
//! ```text
//!   cargo run --release --example quickstart
//!
//!   client ──► 127.0.0.1:8080 (wsgate) ──┬─► 127.0.0.1:9001 (echo-1)
//!                                         └─► 127.0.0.1:9002 (echo-2)
//!   admin: 127.0.0.1:9090/metrics, /readyz, /debug/routes, /debug/explain?host=H&path=P
//!   the access log is on: one line per request and per WebSocket session
//! ```
//!
//! Edit the YAML in `examples/quickstart/` while it runs: wsgate reloads it without dropping sockets.

#[path = "../tests/support/echo.rs"]
mod echo;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use wsgate::controller::compile::CompileOptions;
use wsgate::server::{self, ServerConfig, Source};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wsgate::telemetry::init(wsgate::telemetry::LogFormat::Text, "info", true);
    for (addr, name) in [("127.0.0.1:9001", "echo-1"), ("127.0.0.1:9002", "echo-2")] {
        let listener =
            TcpListener::bind(addr).await.with_context(|| format!("echo backend cannot listen on {addr}"))?;
        tokio::spawn(echo::serve(listener, name.to_string()));
    }
    let config = ServerConfig {
        http_addr: "127.0.0.1:8080".parse()?,
        https_addr: None,
        admin_addr: "127.0.0.1:9090".parse()?,
        source: Source::Manifests {
            dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart"),
            compile: CompileOptions::default(),
        },
        drain: Duration::from_secs(5),
        // why none: Ctrl-C on a laptop should not wait for load balancers.
        shutdown_delay: Duration::ZERO,
        access_log: wsgate::dataplane::AccessLog::On,
        https_redirect_port: None,
        max_connections: None,
        max_tracked_clients: wsgate::dataplane::DEFAULT_MAX_TRACKED_CLIENTS,
        trusted_proxies: Default::default(),
        proxy_protocol: false,
    };
    let bound = config.bind().await?;
    let server = tokio::spawn(server::run(config, bound, async {
        let _ = tokio::signal::ctrl_c().await;
    }));

    // Prove the route works before telling the user how to use it.
    let reply = self_check().await.context("quickstart self-check failed")?;
    println!(
        "\nwsgate is serving examples/quickstart/ (self-check echoed {reply:?}).\n\
         \n  WebSocket: cargo run --example wsclient -- ws://127.0.0.1:8080/chat hello\
         \n  HTTP:      curl -H 'Host: echo.localhost' http://127.0.0.1:8080/http\
         \n  Routes:    curl http://127.0.0.1:9090/debug/routes\
         \n  Why there: curl 'http://127.0.0.1:9090/debug/explain?host=echo.localhost&path=/http'\
         \n  Metrics:   curl http://127.0.0.1:9090/metrics\
         \n\nPress Ctrl-C to stop.\n"
    );
    server.await??;
    Ok(())
}

/// Waits until the admin listener reports ready (the first route table is published), so the self-check
/// does not race the first build (and leave a 404 in the access log).
async fn wait_ready() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    for _ in 0..100 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect("127.0.0.1:9090").await {
            stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await?;
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await??;
            if answer.starts_with(b"HTTP/1.1 200") {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("wsgate did not become ready within 5 s (see the log above)")
}

async fn self_check() -> anyhow::Result<String> {
    wait_ready().await?;
    let mut last_error = None;
    for _ in 0..50 {
        match tokio_tungstenite::connect_async("ws://127.0.0.1:8080/quickstart").await {
            Ok((mut ws, _)) => {
                ws.send(Message::text("hello")).await?;
                let reply = tokio::time::timeout(Duration::from_secs(5), ws.next()).await?.context("closed")??;
                ws.close(None).await?;
                return Ok(reply.into_text()?.to_string());
            }
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last_error.map(anyhow::Error::from).unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
}
