//! TLS termination on the HTTPS listener: the certificate is picked per handshake from the route table.
//!
//! ```text
//!   accept ─► read ClientHello (≤ 10 s) ─► SNI name ─► table.tls().lookup ─┬─ found: handshake with it,
//!                                                                          │  ALPN http/1.1 only ─► hyper
//!                                                                          └─ none (or no SNI): refused,
//!                                                     rustls sends a fatal alert; counted no_certificate
//! ```
//!
//! The resolver loads the current table on every handshake, so a replaced certificate applies to the
//! next connection without a restart, and established connections keep the one they negotiated.
//!
//! Unknown or missing SNI is refused rather than answered with some default certificate: wsgate has no
//! certificate of its own, and presenting another host's certificate would leak which names it serves
//! and fail validation anyway. (rustls answers a resolver that finds nothing with an `access_denied`
//! alert; clients report it as a handshake failure.)

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::debug;

use crate::metrics::{Metrics, TlsFailure};
use crate::routes::SharedTable;

use super::conn::Prefixed;

/// Time a client has to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Picks the certificate for each handshake from the table being served.
struct TableResolver {
    table: SharedTable,
}

impl std::fmt::Debug for TableResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for TableResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        self.table.load().tls().lookup(name).map(|certificate| Arc::clone(&certificate.key))
    }
}

/// The rustls configuration of the HTTPS listener: TLS 1.2 and 1.3 with ring's defaults, no client
/// certificates, ALPN `http/1.1` only (wsgate speaks HTTP/1.1, and WebSockets need it).
pub fn server_config(table: SharedTable) -> io::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(TableResolver { table }));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Runs the server side of a TLS handshake; `None` when it failed (counted, logged at debug). `read`
/// is what was already read from the socket (after a PROXY protocol header): the start of the
/// ClientHello.
pub async fn accept(
    config: &Arc<rustls::ServerConfig>,
    table: &SharedTable,
    metrics: &Metrics,
    stream: TcpStream,
    read: BytesMut,
) -> Option<TlsStream<Prefixed>> {
    let stream = Prefixed::new(read.freeze(), stream);
    let failed = |reason: TlsFailure, error: &dyn std::fmt::Display| {
        metrics.tls_handshake_failures_total.with_label_values(&[reason.as_str()]).inc();
        debug!(reason = reason.as_str(), %error, "TLS handshake failed");
        None
    };
    let handshake = async {
        let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await.map_err(|e| (e, true))?;
        // Looked up here only to name the failure: the resolver decides.
        let known = start.client_hello().server_name().is_some_and(|name| table.load().tls().lookup(name).is_some());
        start.into_stream(Arc::clone(config)).await.map_err(|e| (e, known))
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err((error, true))) => failed(TlsFailure::HandshakeError, &error),
        Ok(Err((error, false))) => failed(TlsFailure::NoCertificate, &error),
        Err(elapsed) => failed(TlsFailure::HandshakeError, &elapsed),
    }
}
