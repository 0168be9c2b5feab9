//! A minimal WebSocket client: sends each argument as a text message and prints the replies.
//!
//! `cargo run --example wsclient -- ws://127.0.0.1:8080/chat hello world`

use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().context("usage: wsclient URL [MESSAGE...]")?;
    let (mut ws, response) =
        tokio_tungstenite::connect_async(url.as_str()).await.with_context(|| format!("connect {url}"))?;
    println!("connected: HTTP {}", response.status());
    for message in args {
        ws.send(Message::text(message)).await?;
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(reply))) => println!("< {reply}"),
            Ok(Some(Err(error))) => anyhow::bail!("read failed: {error}"),
            Ok(None) => anyhow::bail!("the server closed the connection"),
            Err(_) => anyhow::bail!("no reply within 5 s"),
        }
    }
    ws.close(None).await?;
    Ok(())
}
