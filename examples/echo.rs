//! Runs the echo backend (tests/support/echo.rs) on the addresses given on the command line.
//!
//! ```text
//!   cargo run --example echo -- 127.0.0.1:9001 127.0.0.1:9002
//! ```
//!
//! Each listener is named after its address (`echo-127.0.0.1:9001`), which it reports in the
//! `X-Echo-Name` header and in GET answers. Without arguments it listens on 127.0.0.1:9001.

#[path = "../tests/support/echo.rs"]
mod echo;

use anyhow::Context as _;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut addresses: Vec<String> = std::env::args().skip(1).collect();
    if addresses.is_empty() {
        addresses.push("127.0.0.1:9001".to_string());
    }
    let mut servers = tokio::task::JoinSet::new();
    for address in addresses {
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        let local = listener.local_addr()?;
        println!("echo listening on {local} (ws://{local}/, http://{local}/)");
        servers.spawn(echo::serve(listener, format!("echo-{local}")));
    }
    tokio::select! {
        _ = servers.join_next() => anyhow::bail!("an echo listener stopped"),
        signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C")?,
    }
    Ok(())
}
