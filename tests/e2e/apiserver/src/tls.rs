//! The server's TLS identity. kubectl (client-go) sends credentials only over TLS, so the server
//! answers HTTPS as well as plain HTTP on its one port: a connection whose first byte opens a TLS
//! record (0x16, a ClientHello) is served through TLS, any other as plain HTTP.
//!
//! ```text
//!   new server ──► fresh CA (P-256) ──signs──► serving certificate: localhost, 127.0.0.1, ::1, bind address
//!                      └──► kubeconfig `certificate-authority-data`, so kube-rs and kubectl verify the server
//! ```
//!
//! The keys live only in memory and differ for every server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The first byte of a TLS handshake record.
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// What clients trust and what the server presents.
pub struct Identity {
    /// The CA certificate (PEM) that signed the serving certificate.
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("ca_pem", &self.ca_pem).finish_non_exhaustive()
    }
}

/// Makes a CA and a serving certificate valid for loopback and `bind` (when it is a specific address).
pub fn identity(bind: IpAddr) -> Identity {
    let ca_key = KeyPair::generate().expect("generating a P-256 key cannot fail");
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, "wsgate-test-apiserver-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).expect("a CA certificate from fixed parameters");
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().expect("generating a P-256 key cannot fail");
    let mut serving = CertificateParams::new(vec!["localhost".to_string()]).expect("a valid DNS name");
    serving.distinguished_name.push(DnType::CommonName, "wsgate-test-apiserver");
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    if !bind.is_unspecified() && !ips.contains(&bind) {
        ips.push(bind);
    }
    serving.subject_alt_names.extend(ips.into_iter().map(SanType::IpAddress));
    let cert = serving.signed_by(&key, &issuer).expect("a serving certificate from fixed parameters");

    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone(), ca_cert.der().clone()], key_der)
        .expect("the key matches the certificate it signed");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Identity { ca_pem: ca_cert.pem(), acceptor: TlsAcceptor::from(Arc::new(config)) }
}
