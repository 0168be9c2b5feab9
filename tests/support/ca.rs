//! A test certificate authority (rcgen) that signs server certificates at test time, and a rustls
//! client configuration that trusts it alone. Shared by tests/tls.rs and the e2e suite.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::CertificateDer;
use tokio_rustls::TlsConnector;

/// A test certificate authority; every server certificate of a test is signed by it.
pub struct Ca {
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its key, as PEM, plus the leaf's DER (to compare with what a client sees)
/// and its notAfter (Unix seconds).
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
    pub not_after: i64,
}

impl Ca {
    pub fn new() -> Ca {
        let key = KeyPair::generate().expect("P-256 key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "wsgate test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { der: cert.der().clone(), issuer: Issuer::new(params, key) }
    }

    /// A certificate for `names` with rcgen's default validity.
    pub fn issue(&self, names: &[&str]) -> Issued {
        self.sign(names, None)
    }

    /// A certificate for `names` valid until January 1st of `year`.
    pub fn issue_until(&self, names: &[&str], year: i32) -> Issued {
        self.sign(names, Some(year))
    }

    fn sign(&self, names: &[&str], year: Option<i32>) -> Issued {
        let key = KeyPair::generate().expect("P-256 key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("names");
        if let Some(year) = year {
            params.not_after = rcgen::date_time_ymd(year, 1, 1);
        }
        let not_after = params.not_after.unix_timestamp();
        let cert = params.signed_by(&key, &self.issuer).expect("server certificate");
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec(), not_after }
    }

    /// A client that trusts this CA only and offers ALPN `http/1.1`.
    pub fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("CA certificate is valid");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsConnector::from(Arc::new(config))
    }
}
