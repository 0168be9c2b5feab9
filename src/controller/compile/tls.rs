//! TLS: `kubernetes.io/tls` Secrets → checked certificates → the table's SNI map.
//!
//! ```text
//!   Ingress spec.tls[t] {hosts, secretName} ─┐                      (hosts empty: the rules' hosts)
//!   WebSocketRoute spec.tls {secretName} ────┴─► TlsRequest {secret, field, hosts}
//!                                                        │
//!   Secret <ns>/<secretName>: type kubernetes.io/tls, tls.crt (PEM chain), tls.key (PEM key)
//!     ─► parse, key matches leaf, notAfter, DNS SANs ─► Certificate   (else InvalidCertificateRef)
//!                                                        │
//!   claim per host: oldest object first; another Secret for a taken host is Conflicted
//!   host not in the certificate's SANs ─► warning CertificateHostMismatch (still served)
//! ```
//!
//! Checking is pure computation (no clock: an expired certificate is served and its notAfter exported
//! for alerting). A bad Secret never fails the compile: its hosts get no certificate, and their routes
//! are still served over plain HTTP.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::{Claimant, Diagnostic, Reason, Severity};
use crate::routes::{Certificate, HostMatch, TlsTable};

/// The Secret type TLS certificates must have.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";
/// The key holding the PEM certificate chain, leaf first.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// The key holding the PEM private key.
pub const TLS_PRIVATE_KEY: &str = "tls.key";

/// A certificate one object asks to serve for some hosts.
#[derive(Debug, Clone)]
pub(super) struct TlsRequest {
    /// Name of the Secret, in the object's namespace.
    pub secret: String,
    /// The `secretName` field, e.g. `spec.tls[0].secretName`.
    pub field: String,
    /// Hosts to serve it for, each with the field it came from.
    pub hosts: Vec<(HostMatch, String)>,
}

/// Secrets by namespace and name.
struct SecretIndex<'s> {
    secrets: HashMap<(&'s str, &'s str), &'s Secret>,
}

impl<'s> SecretIndex<'s> {
    fn new(secrets: &'s [Secret]) -> SecretIndex<'s> {
        let secrets = secrets
            .iter()
            .map(|s| {
                let namespace = s.metadata.namespace.as_deref().unwrap_or_default();
                ((namespace, s.metadata.name.as_deref().unwrap_or_default()), s)
            })
            .collect();
        SecretIndex { secrets }
    }
}

/// Per claimant: the problems with its Secrets, and the hosts it asked a usable certificate for.
type Findings = (Vec<Vec<(Reason, String)>>, Vec<Vec<HostMatch>>);

/// Resolves every claimant's TLS requests. Claimants come oldest first. Returns the SNI table and, per
/// claimant, the problems with its Secrets (for the ResolvedRefs condition of WebSocketRoutes) and the
/// hosts it asked a usable certificate for (whichever object's certificate ends up served for them).
pub(super) fn assign(
    claimants: &[Claimant],
    secrets: &[Secret],
    diagnostics: &mut Vec<Diagnostic>,
) -> (TlsTable, Findings) {
    let index = SecretIndex::new(secrets);
    let provider = rustls::crypto::ring::default_provider();
    let mut checked: HashMap<String, Result<Arc<Certificate>, String>> = HashMap::new();
    // Host → (claimant index, Secret id, field that claimed it).
    let mut owners: HashMap<HostMatch, (usize, Arc<str>, String)> = HashMap::new();
    let mut table = TlsTable::default();
    let mut problems = vec![Vec::new(); claimants.len()];
    let mut usable: Vec<Vec<HostMatch>> = vec![Vec::new(); claimants.len()];

    for (at, claimant) in claimants.iter().enumerate() {
        let object = &claimant.object;
        let mut push = |severity, reason, field: &str, message: String| {
            diagnostics.push(Diagnostic { object: object.clone(), severity, reason, field: field.to_string(), message })
        };
        for request in &claimant.tls {
            let id = format!("{}/{}", object.namespace, request.secret);
            let certificate = checked
                .entry(id.clone())
                .or_insert_with(|| {
                    let secret = index.secrets.get(&(object.namespace.as_str(), request.secret.as_str()));
                    match secret {
                        None => Err(format!("Secret {id} not found")),
                        Some(secret) => check_secret(secret, &id, &provider).map(Arc::new),
                    }
                })
                .clone();
            let certificate = match certificate {
                Ok(certificate) => certificate,
                Err(message) => {
                    problems[at].push((Reason::InvalidCertificateRef, message.clone()));
                    push(Severity::Error, Reason::InvalidCertificateRef, &request.field, message);
                    continue;
                }
            };
            usable[at].extend(request.hosts.iter().map(|(host, _)| host.clone()));
            for (host, field) in &request.hosts {
                match owners.get(host) {
                    None => {
                        if !covers(&certificate.dns_names, host) {
                            let names = match certificate.dns_names.is_empty() {
                                true => "none".to_string(),
                                false => certificate.dns_names.join(", "),
                            };
                            let message = format!(
                                "the certificate in Secret {id} is not valid for {host} (its DNS names: {names}); \
                                 clients that verify the name will refuse it"
                            );
                            push(Severity::Warning, Reason::CertificateHostMismatch, field, message);
                        }
                        owners.insert(host.clone(), (at, certificate.secret.clone(), field.clone()));
                        table.insert(host, certificate.clone());
                    }
                    Some((_, secret, _)) if *secret == certificate.secret => {}
                    Some((owner, secret, first_field)) if *owner == at => {
                        let message = format!(
                            "{host} already has the certificate of Secret {secret} from {first_field}; \
                             Secret {id} is not served for it"
                        );
                        push(Severity::Warning, Reason::Duplicate, field, message);
                    }
                    Some((owner, secret, _)) => {
                        let message = format!(
                            "{host} is already served with the certificate of Secret {secret} by {}; \
                             Secret {id} is not served for it",
                            super::precedence(&claimants[*owner], claimant)
                        );
                        push(Severity::Error, Reason::Conflicted, field, message);
                    }
                }
            }
        }
    }
    (table, (problems, usable))
}

/// Reads one value of a Secret: `stringData` wins over `data`, as the API server merges them.
fn value<'s>(secret: &'s Secret, key: &str) -> Option<&'s [u8]> {
    if let Some(text) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return Some(text.as_bytes());
    }
    secret.data.as_ref().and_then(|d| d.get(key)).map(|bytes| bytes.0.as_slice())
}

/// Checks a TLS Secret and builds its certificate. The error names the Secret and the key at fault;
/// it never quotes the Secret's content.
fn check_secret(secret: &Secret, id: &str, provider: &CryptoProvider) -> Result<Certificate, String> {
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    if kind != TLS_SECRET_TYPE {
        return Err(format!("Secret {id} has type {kind:?}, not {TLS_SECRET_TYPE}"));
    }
    let cert_pem = value(secret, TLS_CERT_KEY).ok_or_else(|| format!("Secret {id} has no key {TLS_CERT_KEY}"))?;
    let key_pem = value(secret, TLS_PRIVATE_KEY).ok_or_else(|| format!("Secret {id} has no key {TLS_PRIVATE_KEY}"))?;

    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|error| format!("Secret {id}: {TLS_CERT_KEY} is not a PEM certificate: {error}"))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("Secret {id}: {TLS_CERT_KEY} is not a PEM certificate (no CERTIFICATE block)"));
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|error| format!("Secret {id}: {TLS_CERT_KEY} holds a certificate that cannot be parsed: {error}"))?;
    let not_after = parsed.validity().not_after.timestamp();
    let dns_names = match parsed.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(error) => {
            return Err(format!("Secret {id}: {TLS_CERT_KEY} has an invalid subjectAltName extension: {error}"));
        }
    };

    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|_| format!("Secret {id}: {TLS_PRIVATE_KEY} is not a PEM private key (PKCS#8, PKCS#1 or SEC1)"))?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| format!("Secret {id}: {TLS_PRIVATE_KEY} is not a usable private key: {error}"))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(format!(
                "Secret {id}: {TLS_PRIVATE_KEY} does not match the certificate in {TLS_CERT_KEY} (the first one)"
            ));
        }
        Err(error) => return Err(format!("Secret {id}: {TLS_CERT_KEY} is not a usable certificate: {error}")),
    }
    Ok(Certificate { secret: id.into(), not_after, dns_names, key: Arc::new(certified) })
}

/// Whether a certificate with these DNS names is valid for `host` (RFC 6125: a `*.` name covers exactly
/// one label; a wildcard host is covered only by the same wildcard name).
fn covers(dns_names: &[String], host: &HostMatch) -> bool {
    dns_names.iter().any(|name| match (host, name.strip_prefix("*.")) {
        (HostMatch::Exact(h), None) => h == name,
        (HostMatch::Exact(h), Some(suffix)) => {
            h.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
        }
        (HostMatch::Wildcard(s), Some(suffix)) => s == suffix,
        (HostMatch::Wildcard(_), None) | (HostMatch::Any, _) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_names_cover_one_label() {
        let names = vec!["chat.example.com".to_string(), "*.apps.example.com".to_string()];
        let host = |h: &str| HostMatch::parse(h);
        assert!(covers(&names, &host("chat.example.com")));
        assert!(covers(&names, &host("a.apps.example.com")));
        assert!(covers(&names, &host("*.apps.example.com")));
        assert!(!covers(&names, &host("a.b.apps.example.com")));
        assert!(!covers(&names, &host("apps.example.com")));
        assert!(!covers(&names, &host("*.example.com")));
    }
}
