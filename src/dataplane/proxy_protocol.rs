// TEMPORARY STUB written by the lead engineer so the crate compiles; overwrite this file freely.
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct ProxyProtocolError;
pub async fn read_header(
    _s: &tokio::net::TcpStream,
    _b: &mut bytes::BytesMut,
    _t: std::time::Duration,
) -> Result<Option<std::net::SocketAddr>, ProxyProtocolError> {
    Ok(None)
}
