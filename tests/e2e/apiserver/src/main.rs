//! `wsgate-test-apiserver --addr 127.0.0.1:0 --kubeconfig-out PATH`: runs the test API server
//! until killed, after writing a kubeconfig for it and printing its address on stdout.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use wsgate_test_apiserver::{Config, TestApiServer};

/// A Kubernetes API server for tests (plain HTTP, in memory).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Where to write a kubeconfig pointing at the server.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Watch events kept per resource (older resourceVersions get 410 Gone).
    #[arg(long, default_value_t = 1000)]
    history_window: usize,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 60)]
    bookmark_interval_seconds: u64,
    /// Version reported by /version.
    #[arg(long, default_value = "v1.32.0")]
    server_version: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config {
        addr: args.addr,
        history_window: args.history_window,
        bookmark_interval: Duration::from_secs(args.bookmark_interval_seconds.max(1)),
        server_version: args.server_version,
        ..Config::default()
    };
    let mut server = TestApiServer::new(config);
    server.start().await.context("starting the API server")?;
    if let Some(path) = &args.kubeconfig_out {
        server.write_kubeconfig(path).context("writing the kubeconfig")?;
    }
    println!("{}", server.addr());
    tokio::signal::ctrl_c().await.context("waiting for a signal")?;
    server.stop().await;
    Ok(())
}
