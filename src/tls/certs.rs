//! Certificates: PEM chains and keys loaded and checked once (at start-up and on reload), the
//! server's TLS settings built from them, and the SNI resolver that picks a certificate per
//! handshake.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// One certificate the server can present: its key and its end-entity certificate parsed once
/// for name checks.
#[derive(Debug)]
struct Identity {
    key: Arc<CertifiedKey>,
}

impl Identity {
    /// Whether the end-entity certificate is valid for `name` (a DNS name or IP address).
    fn serves(&self, name: &ServerName<'_>) -> bool {
        let Some(der) = self.key.cert.first() else {
            return false;
        };
        webpki::EndEntityCert::try_from(der)
            .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
    }
}

/// Chooses the certificate for a handshake by the client's SNI name: the first whose names
/// cover it, or the first of all for a client without SNI or with an unknown name.
#[derive(Debug)]
struct Sni {
    identities: Vec<Identity>,
}

impl ResolvesServerCert for Sni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|name| ServerName::try_from(name).ok())
            .and_then(|name| self.identities.iter().find(|id| id.serves(&name)));
        chosen
            .or_else(|| self.identities.first())
            .map(|id| Arc::clone(&id.key))
    }
}

/// The cryptography: *ring*, which builds with a C compiler alone (for the static musl build
/// too) into a smaller binary than aws-lc-rs; rustls marks it deprecated because it has no
/// post-quantum key exchange, which is what this choice gives up.
#[allow(deprecated)]
fn crypto() -> rustls::crypto::CryptoProvider {
    provider::default_provider()
}

/// The files of one certificate the server presents.
#[derive(Clone, Copy, Debug)]
pub struct CertFiles<'a> {
    /// PEM certificate chain, the server's certificate first.
    pub cert: &'a Path,
    /// Its PEM private key.
    pub key: &'a Path,
    /// A DER OCSP response to staple, if any.
    pub ocsp: Option<&'a Path>,
}

/// Loads the PEM certificate chain `cert` and its private key `key` (RSA, ECDSA or Ed25519)
/// and checks that they belong together; staples the OCSP response `ocsp` if it holds for the
/// certificate at `now`, and otherwise says why not in `notes`.
fn identity(
    f: CertFiles<'_>,
    now: SystemTime,
    notes: &mut Vec<String>,
) -> Result<Identity, String> {
    let (cert, key) = (f.cert, f.key);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        ));
    }
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let signing = crypto()
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let mut certified = CertifiedKey::new(chain, signing);
    if let Some(ocsp) = f.ocsp {
        let der = std::fs::read(ocsp).map_err(|e| format!("--tls-ocsp {}: {e}", ocsp.display()))?;
        match super::ocsp::check(&der, &certified.cert[0], now) {
            Ok(()) => certified.ocsp = Some(der),
            Err(why) => notes.push(format!("--tls-ocsp {}: not stapled: {why}", ocsp.display())),
        }
    }
    certified.keys_match().map_err(|_| {
        format!(
            "--tls-key {} does not match --tls-cert {}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(Identity {
        key: Arc::new(certified),
    })
}

/// The server's TLS settings for the certificates `files` (the first is the default): TLS 1.2
/// and 1.3 with ECDHE and AEAD suites only (rustls offers nothing else), ALPN `http/1.1`,
/// resumption by tickets whose key rotates (and by session ID: see [`per_worker`]). Also
/// returns notes for the operator: OCSP responses that were not stapled, and why.
pub fn server_config(files: &[CertFiles<'_>]) -> Result<(Arc<ServerConfig>, Vec<String>), String> {
    if files.is_empty() {
        return Err("--tls-listen needs --tls-cert and --tls-key".into());
    }
    let (now, mut notes) = (SystemTime::now(), Vec::new());
    let identities = files
        .iter()
        .map(|f| identity(*f, now, &mut notes))
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(crypto()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Sni { identities }));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ticketer = provider::Ticketer::new().map_err(|e| format!("TLS tickets: {e}"))?;
    Ok((Arc::new(config), notes))
}

/// Most sessions a worker remembers for resumption by session ID (TLS 1.2); tickets, whose key
/// all workers share, resume wherever the connection lands.
const SESSIONS_PER_WORKER: usize = 4096;

/// A worker's own copy of `shared`: the same certificates and ticket key, with a session cache
/// of its own, so no lock is shared between workers on a handshake.
/// `to_kernel`: the worker hands sessions to the kernel (kTLS), which needs their secrets.
pub fn per_worker(shared: &Arc<ServerConfig>, to_kernel: bool) -> Arc<ServerConfig> {
    let mut config = ServerConfig::clone(shared);
    config.enable_secret_extraction = to_kernel;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSIONS_PER_WORKER);
    Arc::new(config)
}
