//! HTTPS: rustls driven by the engine's own loop, no async runtime.
//!
//! [`server_config`] loads the certificates and keys and builds the server's TLS settings
//! (with an SNI resolver choosing among several certificates); [`Tls`] is one connection's
//! state, sans I/O: the engine's transport feeds it the ciphertext it receives and hands the
//! plaintext to the HTTP/1 session, and encrypts what the session sends into records it writes
//! to the socket. TLS thus sits between the transport and the session, which sees plaintext
//! only. File bytes pass through user space here (userspace TLS must encrypt them), read and
//! encrypted a few records at a time. rustls runs through its unbuffered API: the bytes a
//! connection has waiting (a partial record in, records out) sit in buffers lent from the
//! worker's [`BufferPool`] only while they wait, so an idle connection holds none.

mod buffers;
mod certs;
mod kernel;
mod ocsp;
mod stream;

pub use buffers::BufferPool;
pub use certs::{per_worker, server_config, CertFiles};
pub use stream::{Fatal, Tls, CHUNK};

#[cfg(test)]
pub(crate) mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Writes a self-signed certificate for `name` and its key into `dir` with openssl(1);
    /// returns their paths.
    pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
            .args(["-addext", &format!("subjectAltName=DNS:{name}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(status.status.success(), "openssl: {status:?}");
        (cert, key)
    }

    /// A certificate and key without OCSP.
    pub fn files<'a>(cert: &'a Path, key: &'a Path) -> super::CertFiles<'a> {
        super::CertFiles {
            cert,
            key,
            ocsp: None,
        }
    }

    /// Server settings with a fresh self-signed certificate for `localhost`.
    pub fn localhost_config() -> std::sync::Arc<rustls::ServerConfig> {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "localhost");
        super::server_config(&[files(&cert, &key)]).unwrap().0
    }

    #[test]
    fn a_key_that_does_not_match_its_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_a, _) = self_signed(dir.path(), "a.test");
        let (_, key_b) = self_signed(dir.path(), "b.test");
        let err = super::server_config(&[files(&cert_a, &key_b)]).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        let (cert, key) = self_signed(dir.path(), "c.test");
        assert!(super::server_config(&[files(&cert, &key)]).is_ok());
        let missing = dir.path().join("missing.pem");
        let err = super::server_config(&[files(&missing, &key)]).unwrap_err();
        assert!(err.starts_with("--tls-cert"), "{err}");
    }
}
