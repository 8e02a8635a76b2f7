//! One HTTPS connection's TLS state after a real handshake with a rustls client in memory:
//! the client sends the fuzzer's plaintext in the fuzzer's pieces, maybe a close_notify, then
//! raw bytes of the fuzzer's choosing. Whatever arrives, `receive` returns (a hang is a
//! finding, as the close_notify one was), and before any raw bytes the server gets exactly
//! the plaintext the client sent.
#![no_main]

use std::io::Write;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use ringserve::tls::{server_config, BufferPool, CertFiles, Tls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, SignatureScheme,
};

/// The server's settings, with a certificate made once by openssl(1).
fn server() -> &'static Arc<ServerConfig> {
    static CONFIG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ringserve-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let status = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(status.status.success());
        let files = CertFiles {
            cert: &cert,
            key: &key,
            ocsp: None,
        };
        server_config(&[files]).unwrap().0
    })
}

/// A client that takes any certificate: this target is about the stream, not trust.
#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

fn client() -> &'static Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        #[allow(deprecated)] // the server's provider
        let provider = rustls::crypto::ring::default_provider();
        let config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert))
            .with_no_client_auth();
        Arc::new(config)
    })
}

fuzz_target!(|input: (Vec<u8>, Vec<u16>, bool, Vec<u8>)| {
    let (plaintext, cuts, close, raw) = input;
    let mut server = Tls::new(server()).unwrap();
    let mut client =
        ClientConnection::new(Arc::clone(client()), "localhost".try_into().unwrap()).unwrap();
    let (mut got, mut pool) = (Vec::new(), BufferPool::default());
    while client.is_handshaking() {
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        server.receive(&wire, &mut got, &mut pool).unwrap();
        let mut back = Vec::new();
        server.write_records(&mut back, &mut pool).unwrap();
        client.read_tls(&mut &back[..]).unwrap();
        client.process_new_packets().unwrap();
    }
    client.writer().write_all(&plaintext).unwrap();
    if close {
        client.send_close_notify();
    }
    let mut wire = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut wire).unwrap();
    }
    let mut rest = &wire[..];
    let mut cuts = cuts.into_iter();
    while !rest.is_empty() {
        let n = cuts
            .next()
            .map_or(rest.len(), |c| usize::from(c) % rest.len() + 1);
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        server
            .receive(piece, &mut got, &mut pool)
            .expect("a well-behaved client's records");
    }
    assert_eq!(got, plaintext);
    let _ = server.receive(&raw, &mut got, &mut pool);
    server.release(&mut pool);
});
